"""Money rules that need no database: formatting (parsing and validation grow here)."""

from __future__ import annotations

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
