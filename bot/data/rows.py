"""Turning what a query returns (columns and aggregated JSON) into Python values."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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


@dataclass(frozen=True, slots=True)
class WalletBalance:
    """One wallet as lists of balances show it."""

    currency: str
    decimals: int  # the currency's precision, for display
    available: Decimal
    held: Decimal  # set aside for cashouts in flight

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> WalletBalance:
        return cls(
            currency=d["currency"],
            decimals=d["decimals"],
            available=money(d["available"]),
            held=money(d["held"]),
        )


@dataclass(frozen=True, slots=True)
class PageCursor:
    """Where a keyset-paged list stopped: the last row's (timestamp, id).

    Rows come newest first ordered by (timestamp, id), so equal timestamps
    neither repeat nor skip. `encode()` is short enough for callback data.
    """

    at: datetime
    id: int

    def encode(self) -> str:
        micros = (self.at - _EPOCH) // timedelta(microseconds=1)
        return f"{micros:x}.{self.id:x}"

    @classmethod
    def decode(cls, text: str) -> PageCursor:
        micros, _, row_id = text.partition(".")
        return cls(_EPOCH + timedelta(microseconds=int(micros, 16)), int(row_id, 16))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def keyset(before: PageCursor | None) -> dict[str, Any]:
    """The two query parameters of a keyset page: `before_at` and `before_id` (None: first page)."""
    return {"before_at": before.at if before else None, "before_id": before.id if before else None}
