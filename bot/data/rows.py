"""Turning what a query returns (columns and aggregated JSON) into Python values."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from decimal import Decimal
from typing import Any


def money(value: Any) -> Decimal:
    """An amount from a numeric column or from JSON (Decimal, or int for whole numbers)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int | str):
        return Decimal(value)
    raise TypeError(f"not an exact amount: {value!r}")


def money_or_none(value: Any) -> Decimal | None:
    return None if value is None else money(value)


def moment(value: Any) -> datetime | None:
    """A timestamp from a timestamptz column or from JSON's ISO 8601 text."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def request_hash(**params: Any) -> str:
    """A stable digest of a request's parameters, to tell a retry from a different request."""
    canonical = json.dumps({k: str(v) for k, v in sorted(params.items())}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()
