"""Is the baseline's screen the project's screen? Field by field, every field.

`same(screen, a, b)` compares two screens after `normalise`, which blanks the only fields
that cannot match exactly: those measured against the clock at the moment each side read
it (the exchange screen's `as_of` and each rate's `age_seconds`). Everything else, every
amount, timestamp, name and list order, must be equal, including fields a dataclass leaves
out of `==` (the history page's viewer and currencies).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from enum import Enum
from typing import Any

# screen -> what is blanked before comparing, and why.
NORMALISED = {
    "exchange_context": "as_of (each side's now) and each rate's age_seconds (now - fetched_at)",
}


def normalise(screen: str, value: Any) -> Any:
    if screen == "exchange_context" and value is not None:
        return dataclasses.replace(
            value,
            as_of=None,
            rates=tuple(dataclasses.replace(r, age_seconds=None) for r in value.rates),
        )
    return value


def as_data(value: Any) -> Any:
    """Plain nested data of a screen: every dataclass field (compare=False ones too)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            "<type>": type(value).__name__,
            **{f.name: as_data(getattr(value, f.name)) for f in dataclasses.fields(value)},
        }
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {k: as_data(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [as_data(v) for v in value]
    return value


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two plain values differ, as `path: a != b` lines."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                out.append(f"{path}.{k}: only on one side")
            else:
                out.extend(differences(a[k], b[k], f"{path}.{k}"))
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items != {len(b)} items"]
        out = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            out.extend(differences(x, y, f"{path}[{i}]"))
        return out
    # Decimal('5') and Decimal('5.000') are the same amount; an aware datetime in UTC and the
    # same instant at +00:00 (from JSON) are the same moment.
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def same(screen: str, project: Any, baseline: Any) -> list[str]:
    """[] when the two screens hold the same content; else where they differ."""
    p, b = normalise(screen, project), normalise(screen, baseline)
    found = differences(as_data(p), as_data(b))
    if not found and p != b:  # pragma: no cover - as_data sees every field `==` sees
        found = ["== says they differ"]
    return found
