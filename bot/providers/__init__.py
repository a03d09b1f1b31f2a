"""Payment providers: their webhooks, verified and parsed into typed events, and their
outgoing API clients.

Each provider module keeps two halves apart:

- the webhook side: `verify...(...)` checks the signature on the raw request, before
  anything is parsed, and raises `SignatureError`; `parse...(...)` turns the verified
  bytes into one of the events below, or raises `PayloadError`;
- the client side (payout requests, payment look-ups, deposit addresses), below the
  webhook side of the same module, on the retrying httpx plumbing of `http.py`.

The webhook side touches neither the database nor Telegram: `bot.web` applies the events through
`bot.data.wallet`. Amounts are `Decimal`, parsed from the JSON text itself
(`parse_float=Decimal`), never through a float.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from bot.data.enums import PaymentProvider


class SignatureError(Exception):
    """The request is not signed by the provider (missing, malformed or wrong signature,
    or a stale timestamp): answer 401 and change nothing."""


class PayloadError(Exception):
    """A verified request that cannot be acted on: 400 for bytes that are no JSON object
    (or form), 422 for a well-formed payload with an unknown event, a missing field, an
    unacceptable currency or amount. Nothing changes."""

    def __init__(self, reason: str, *, status: int = 422) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


# --- events -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PaymentConfirmed:
    """Money arrived for one of our references and is final: credit it."""

    provider: PaymentProvider
    event_id: str  # the provider's identity of this event: the exactly-once key
    event_type: str
    order_ref: str  # DEP-, ESC- or EXC-: a top-up, an escrow or an exchange order
    currency: str
    amount: Decimal  # what arrived (not what was asked for)
    payload: dict[str, Any] = field(default_factory=dict)  # kept with the event
    underpaid: bool = False  # the provider itself says it fell short of what was asked


@dataclass(frozen=True, slots=True)
class PaymentPending:
    """A payment seen but not final (in the mempool, awaiting confirmations): no money moves."""

    provider: PaymentProvider
    event_id: str
    event_type: str
    order_ref: str
    currency: str | None = None
    amount: Decimal | None = None
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PayoutSucceeded:
    """The provider paid a cashout out: settle it."""

    provider: PaymentProvider
    event_id: str
    event_type: str
    cashout_ref: str  # what we gave the provider (`cashout_reference`)
    cashout_id: int | None  # None: the reference is none of ours
    provider_reference: str | None  # the provider's own id of the payout
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PayoutFailed:
    """The provider could not pay a cashout out: fail it, releasing the hold."""

    provider: PaymentProvider
    event_id: str
    event_type: str
    cashout_ref: str
    cashout_id: int | None
    reason: str
    payload: dict[str, Any] = field(default_factory=dict)


ProviderEvent = PaymentConfirmed | PaymentPending | PayoutSucceeded | PayoutFailed


# --- references ---------------------------------------------------------------

CASHOUT_PREFIX = "CSH-"
_CASHOUT_REF = re.compile(r"CSH-([1-9][0-9]{0,17})")


def cashout_reference(cashout_id: int) -> str:
    """The reference a payout request carries, echoed back by the provider's payout events."""
    return f"{CASHOUT_PREFIX}{cashout_id}"


def cashout_id_from_reference(ref: str) -> int | None:
    """The cashout id in `CSH-<id>`; None for any other text."""
    m = _CASHOUT_REF.fullmatch(ref.strip())
    return int(m[1]) if m else None


# --- parsing helpers ------------------------------------------------------------


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def load_json_object(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object, numbers with a fraction as Decimal.
    PayloadError(400) for anything else (bad UTF-8, bad JSON, NaN, not an object)."""
    try:
        data = json.loads(raw, parse_float=Decimal, parse_constant=_no_constants)
    except (ValueError, RecursionError) as e:
        raise PayloadError(f"the body is not JSON: {e}", status=400) from None
    if not isinstance(data, dict):
        raise PayloadError("the body is not a JSON object", status=400)
    return data


_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]{1,3})?")
# numeric(38, 18): 20 digits before the point, 18 after.
_MAX_ADJUSTED = 19
_MIN_EXPONENT = -18


def parse_amount(value: Any, name: str) -> Decimal:
    """A positive amount from a JSON number (int or Decimal) or a numeric string.
    PayloadError(422) for a missing, non-numeric, non-finite, zero or negative amount,
    or one the ledger cannot hold. Extra decimals past the currency's are the ledger's
    to refuse."""
    if value is None:
        raise PayloadError(f"{name} is missing")
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        raise PayloadError(f"{name} is not a number")
    if isinstance(value, str):
        value = value.strip()
        # Decimal() would also take "1_000", "NaN" and "Infinity": a provider sends digits.
        if not _NUMBER.fullmatch(value):
            raise PayloadError(f"{name} is not a number: {value!r}")
    try:
        amount = Decimal(value)
    except (InvalidOperation, ValueError):
        raise PayloadError(f"{name} is not a number: {value!r}") from None
    if not amount.is_finite():
        raise PayloadError(f"{name} is not a number: {value!r}")
    if amount <= 0:
        raise PayloadError(f"{name} must be more than zero, not {value}")
    if amount.adjusted() > _MAX_ADJUSTED:
        raise PayloadError(f"{name} is too large: {value}")
    # Trailing zeros past 18 decimals are harmless; dropped exactly (no context rounding).
    sign, digits, exponent = amount.as_tuple()
    while exponent < _MIN_EXPONENT and digits[-1] == 0:
        digits, exponent = digits[:-1], exponent + 1
    if exponent < _MIN_EXPONENT:
        raise PayloadError(f"{name} has more than 18 decimals: {value}")
    return Decimal((sign, digits, exponent))


def required_text(value: Any, name: str, *, max_length: int = 200) -> str:
    """A non-empty identifier or reference (a JSON string or integer)."""
    if isinstance(value, bool) or value is None:
        raise PayloadError(f"{name} is missing")
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise PayloadError(f"{name} is missing")
    value = value.strip()
    if len(value) > max_length:
        raise PayloadError(f"{name} is too long")
    return value


def optional_text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, str)):
        return str(value).strip() or None
    return None


_CURRENCY = re.compile(r"[A-Z][A-Z0-9]{1,9}")


def currency_code(value: Any, name: str = "currency") -> str:
    """Our currency code for a provider's: `usdt` -> USDT, BlockBee's `trc20_usdt` -> USDT.
    Whether the order is in that currency is the ledger's to decide."""
    text = required_text(value, name, max_length=32)
    code = text.rsplit("_", 1)[-1].upper()
    if not _CURRENCY.fullmatch(code):
        raise PayloadError(f"{name} is not a currency: {text!r}")
    return code
