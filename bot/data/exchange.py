"""Exchange between crypto and naira at a locked rate (`sql/exchange.sql`)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from bot.data.enums import ExchangeStatus
from bot.data.errors import refusal
from bot.db import queries

_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def new_payment_reference() -> str:
    """`EXC-` and 10 random base32 characters: the reference a provider echoes back."""
    return "EXC-" + "".join(secrets.choice(_BASE32) for _ in range(10))


@dataclass(frozen=True, slots=True)
class Quote:
    """A quoted exchange order: `to_amount` for `from_amount`, good until `rate_locked_until`."""

    order_id: int
    from_currency: str
    to_currency: str
    from_amount: Decimal
    to_amount: Decimal  # what the user gets: binding, rounded down
    market_rate: Decimal  # to-currency per from-currency before markup, at 18 decimals
    markup_rate: Decimal
    rate: Decimal  # market_rate less markup, at 18 decimals, for display
    status: ExchangeStatus
    rate_locked_until: datetime
    payment_reference: str
    created_at: datetime


async def lock_rate(
    conn,
    *,
    telegram_id: int,
    from_currency: str,
    to_currency: str,
    amount: Decimal,
    lock_seconds: int | None = None,
) -> Quote:
    """Quotes `amount` of `from_currency` at the newest rates less markup and locks it for
    `lock_seconds` (default: the platform's rate_lock_seconds).

    NotFound (user), Invalid (pair not offered, precision), BelowMinimum, AboveLimit,
    StaleRate (a rate missing or too old).
    """
    row = await queries.exchange_lock_rate(
        conn,
        telegram_id=telegram_id,
        from_currency=from_currency,
        to_currency=to_currency,
        amount=amount,
        lock_seconds=lock_seconds,
        payment_reference=new_payment_reference(),
    )
    outcome = row["outcome"]
    pair = f"{from_currency}/{to_currency}"
    if outcome == "not_found":
        raise refusal(outcome, what="user")
    if outcome == "invalid":
        if row["min_amount"] is None:
            raise refusal(outcome, reason=f"{pair} is not offered.")
        raise refusal(outcome, reason=f"{amount} {from_currency} cannot be exchanged.")
    if outcome == "below_minimum":
        raise refusal(outcome, currency=from_currency, minimum=row["min_amount"])
    if outcome == "above_limit":
        raise refusal(outcome, currency=from_currency, maximum=row["max_amount"])
    if outcome == "stale_rate":
        raise refusal(outcome, pair=pair, fetched_at=row["fetched_at"])
    return Quote(
        order_id=row["id"],
        from_currency=row["from_currency"],
        to_currency=row["to_currency"],
        from_amount=row["from_amount"],
        to_amount=row["to_amount"],
        market_rate=row["market_rate"],
        markup_rate=row["markup_rate"],
        rate=row["rate"],
        status=ExchangeStatus(row["status"]),
        rate_locked_until=row["rate_locked_until"],
        payment_reference=row["payment_reference"],
        created_at=row["created_at"],
    )


@dataclass(frozen=True, slots=True)
class ExchangeResult:
    order_id: int
    from_currency: str
    to_currency: str
    from_amount: Decimal
    to_amount: Decimal
    rate: Decimal
    status: ExchangeStatus
    completed_at: datetime
    transfer_id: int
    from_available: Decimal  # the from-wallet's available balance after the exchange
    to_available: Decimal  # the to-wallet's available balance after the exchange


async def execute_exchange(conn, *, telegram_id: int, order_id: int) -> ExchangeResult:
    """Executes a quoted order at its locked amounts.

    QuoteExpired when the lock ran out (the order is then marked expired, and
    that is all that changes); NotFound (not the user's order), WrongStatus,
    InsufficientFunds change nothing.
    """
    row = await queries.exchange_execute(conn, telegram_id=telegram_id, order_id=order_id)
    outcome = row["outcome"]
    if outcome == "not_found":
        raise refusal(outcome, what="exchange order")
    if outcome == "wrong_status":
        raise refusal(outcome, subject="exchange order", status=row["status"], action="be executed")
    if outcome == "quote_expired":
        raise refusal(outcome, expired_at=row["rate_locked_until"])
    if outcome == "insufficient_funds":
        raise refusal(
            outcome, currency=row["currency"], available=row["available"], needed=row["needed"]
        )
    return ExchangeResult(
        order_id=row["id"],
        from_currency=row["from_currency"],
        to_currency=row["to_currency"],
        from_amount=row["from_amount"],
        to_amount=row["to_amount"],
        rate=row["rate"],
        status=ExchangeStatus(row["new_status"]),
        completed_at=row["completed_at"],
        transfer_id=row["transfer_id"],
        from_available=row["from_balance"],
        to_available=row["to_balance"],
    )
