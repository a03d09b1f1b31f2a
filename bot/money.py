"""Money rules that need no database: formatting, parsing, validation of destinations."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

FIAT_SYMBOLS = {"NGN": "₦", "USD": "$"}


def format_amount(amount: Decimal, currency: str, decimals: int) -> str:
    """`1234567.5` NGN -> `₦1,234,567.50`; `0.00012000` BTC -> `0.00012 BTC`.

    Rounds toward zero at the currency's precision, so a balance is never shown
    larger than it is. Fiat keeps its cents; crypto drops trailing zeros.
    """
    step = Decimal(1).scaleb(-decimals)
    value = amount.quantize(step, rounding=ROUND_DOWN)
    symbol = FIAT_SYMBOLS.get(currency)
    if symbol:
        return f"{symbol}{value:,.{decimals}f}"
    text = f"{value:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} {currency}"


def format_usd(amount: Decimal) -> str:
    return format_amount(amount, "USD", 2)


# --- people's handles ---------------------------------------------------------

_USERNAME = re.compile(r"^@?([A-Za-z][A-Za-z0-9_]{4,31})$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class HandleError(ValueError):
    """Text that is not a Telegram username, an e-mail address or a phone number."""


@dataclass(frozen=True, slots=True)
class Handle:
    kind: str  # "username", "email" or "phone"
    value: str  # lowercase username without "@", lowercase e-mail, or E.164 phone


def normalize_phone(text: str) -> str:
    """A phone number in E.164; Nigerian local numbers get +234.

    `0803 123 4567`, `+234 803 123 4567` and `2348031234567` all give `+2348031234567`.
    """
    raw = text.strip()
    digits = re.sub(r"[\s\-().]", "", raw)
    if digits.startswith("+"):
        digits = digits[1:]
    elif digits.startswith("0") and len(digits) == 11:
        digits = "234" + digits[1:]
    if not digits.isdigit() or not digits.isascii() or digits.startswith("0"):
        raise HandleError(f"{text!r} is not a phone number")
    if digits.startswith("234") and len(digits) != 13:
        raise HandleError(f"{text!r} is not a Nigerian phone number (+234 and 10 digits)")
    if not 8 <= len(digits) <= 15:
        raise HandleError(f"{text!r} is not a phone number")
    return "+" + digits


def normalize_handle(text: str) -> Handle:
    """How a user names another: `@Username`, `username`, an e-mail or a phone number."""
    text = text.strip()
    if "@" in text[1:]:
        if not _EMAIL.match(text):
            raise HandleError(f"{text!r} is not an e-mail address")
        return Handle("email", text.lower())
    if m := _USERNAME.match(text):
        return Handle("username", m.group(1).lower())
    if re.fullmatch(r"[+\d][\d\s\-().]{6,}", text):
        return Handle("phone", normalize_phone(text))
    raise HandleError(f"{text!r} is not a username, e-mail address or phone number")
