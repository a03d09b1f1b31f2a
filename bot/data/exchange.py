"""Exchange between crypto and naira at a locked rate (`sql/exchange.sql`)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from bot.data.contacts import SavedAddress, SavedBankAccount
from bot.data.enums import DestinationKind, ExchangeStatus
from bot.data.errors import refusal
from bot.data.rows import PageCursor, keyset, moment, money, money_or_none
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


# --- screens ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExchangeWallet:
    currency: str
    kind: str  # "crypto" or "fiat"
    decimals: int
    available: Decimal

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ExchangeWallet:
        return cls(
            currency=d["currency"],
            kind=d["kind"],
            decimals=d["decimals"],
            available=money(d["available"]),
        )


@dataclass(frozen=True, slots=True)
class Rate:
    """The newest stored rate of one leg: `base` priced in `quote` (BTC -> USD, USD -> NGN)."""

    base: str
    quote: str
    rate: Decimal | None  # None: no rate stored yet
    fetched_at: datetime | None
    age_seconds: int | None
    stale: bool  # older than the platform's rate_max_age_seconds, or missing: no quote now

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Rate:
        return cls(
            base=d["base"],
            quote=d["quote"],
            rate=money_or_none(d["rate"]),
            fetched_at=moment(d["fetched_at"]),
            age_seconds=d["age_seconds"],
            stale=d["stale"],
        )


@dataclass(frozen=True, slots=True)
class Pair:
    """A direction users may exchange; limits are in the from-currency."""

    from_currency: str
    to_currency: str
    markup_rate: Decimal
    min_amount: Decimal
    max_amount: Decimal

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Pair:
        return cls(
            from_currency=d["from_currency"],
            to_currency=d["to_currency"],
            markup_rate=money(d["markup_rate"]),
            min_amount=money(d["min_amount"]),
            max_amount=money(d["max_amount"]),
        )


@dataclass(frozen=True, slots=True)
class OpenOrder:
    id: int
    from_currency: str
    to_currency: str
    from_amount: Decimal
    to_amount: Decimal
    rate: Decimal
    status: ExchangeStatus
    rate_locked_until: datetime
    payment_reference: str | None
    received_amount: Decimal | None
    created_at: datetime

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> OpenOrder:
        return cls(
            id=d["id"],
            from_currency=d["from_currency"],
            to_currency=d["to_currency"],
            from_amount=money(d["from_amount"]),
            to_amount=money(d["to_amount"]),
            rate=money(d["rate"]),
            status=ExchangeStatus(d["status"]),
            rate_locked_until=moment(d["rate_locked_until"]),
            payment_reference=d["payment_reference"],
            received_amount=money_or_none(d["received_amount"]),
            created_at=moment(d["created_at"]),
        )


@dataclass(frozen=True, slots=True)
class ExchangeContext:
    user_id: int
    telegram_id: int
    is_blocked: bool
    onboarding_complete: bool
    as_of: datetime  # the database's now: ages and lock times are measured against it
    rate_lock_seconds: int
    rate_max_age_seconds: int
    wallets: tuple[ExchangeWallet, ...]  # ordered by currency
    addresses: tuple[SavedAddress, ...]  # live, at most 20, most recently used first
    bank_accounts: tuple[SavedBankAccount, ...]  # live, at most 20, most recently used first
    rates: tuple[Rate, ...]  # every crypto -> USD, then USD -> NGN
    pairs: tuple[Pair, ...]  # the enabled ones, by from- then to-currency
    open_orders: tuple[OpenOrder, ...]  # at most 10, newest first
    open_orders_count: int

    def wallet(self, currency: str) -> ExchangeWallet | None:
        return next((w for w in self.wallets if w.currency == currency), None)

    def rate(self, base: str, quote: str) -> Rate | None:
        return next((r for r in self.rates if (r.base, r.quote) == (base, quote)), None)

    def pair(self, from_currency: str, to_currency: str) -> Pair | None:
        wanted = (from_currency, to_currency)
        return next((p for p in self.pairs if (p.from_currency, p.to_currency) == wanted), None)


async def exchange_context(conn, *, telegram_id: int) -> ExchangeContext | None:
    """Everything the exchange flows show, in one round trip; None for an unknown user.

    Lists are bounded: 20 saved addresses and 20 bank accounts (most recently
    used first), 10 open orders (newest first, with the full count).
    """
    row = await queries.exchange_context(conn, telegram_id=telegram_id)
    if row is None:
        return None
    return ExchangeContext(
        user_id=row["id"],
        telegram_id=row["telegram_id"],
        is_blocked=row["is_blocked"],
        onboarding_complete=row["onboarding_complete"],
        as_of=row["as_of"],
        rate_lock_seconds=row["rate_lock_seconds"],
        rate_max_age_seconds=row["rate_max_age_seconds"],
        wallets=tuple(ExchangeWallet.from_json(w) for w in row["wallets"]),
        addresses=tuple(SavedAddress.from_json(a) for a in row["addresses"]),
        bank_accounts=tuple(SavedBankAccount.from_json(b) for b in row["bank_accounts"]),
        rates=tuple(Rate.from_json(r) for r in row["rates"]),
        pairs=tuple(Pair.from_json(p) for p in row["pairs"]),
        open_orders=tuple(OpenOrder.from_json(o) for o in row["open_orders"]),
        open_orders_count=row["open_orders_count"],
    )


MAX_PAGE = 50


@dataclass(frozen=True, slots=True)
class ExchangeOrder:
    id: int
    from_currency: str
    to_currency: str
    from_amount: Decimal
    to_amount: Decimal
    market_rate: Decimal
    markup_rate: Decimal
    rate: Decimal
    status: ExchangeStatus
    rate_locked_until: datetime
    destination: DestinationKind
    payment_reference: str | None
    received_amount: Decimal | None
    created_at: datetime
    completed_at: datetime | None
    from_decimals: int  # each side's precision, for display
    to_decimals: int


@dataclass(frozen=True, slots=True)
class ExchangePage:
    orders: tuple[ExchangeOrder, ...]  # newest first, at most the page size
    next_before: PageCursor | None  # where the next page starts; None on the last page


async def exchange_history(
    conn, *, telegram_id: int, before: PageCursor | None = None, limit: int = 10
) -> ExchangePage:
    """One page of the user's exchange orders, newest first, in one round trip.

    `limit` is kept between 1 and 50. Pass the page's `next_before` as `before`
    for the next one. An unknown user has an empty page.
    """
    limit = max(1, min(limit, MAX_PAGE))
    rows = [
        r
        async for r in queries.exchange_history(
            conn, telegram_id=telegram_id, page_size=limit, **keyset(before)
        )
    ]
    orders = tuple(
        ExchangeOrder(
            id=r["id"],
            from_currency=r["from_currency"],
            to_currency=r["to_currency"],
            from_amount=r["from_amount"],
            to_amount=r["to_amount"],
            market_rate=r["market_rate"],
            markup_rate=r["markup_rate"],
            rate=r["rate"],
            status=ExchangeStatus(r["status"]),
            rate_locked_until=r["rate_locked_until"],
            destination=DestinationKind(r["destination"]),
            payment_reference=r["payment_reference"],
            received_amount=r["received_amount"],
            created_at=r["created_at"],
            completed_at=r["completed_at"],
            from_decimals=r["from_decimals"],
            to_decimals=r["to_decimals"],
        )
        for r in rows[:limit]
    )
    more = len(rows) > limit
    return ExchangePage(
        orders=orders,
        next_before=PageCursor(orders[-1].created_at, orders[-1].id) if more else None,
    )


# --- rates --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredRate:
    """One rate as the rates job stored it."""

    base: str
    quote: str
    rate: Decimal  # quote per unit of base
    source: str
    fetched_at: datetime


async def store_rates(
    conn, *, rates: Sequence[tuple[str, str, Decimal]], source: str
) -> list[StoredRate]:
    """Stores one fetch of (base, quote, rate) rows, all stamped now, in one statement.
    Pairs naming a currency we do not carry are skipped; the rows stored are returned."""
    if not rates:
        return []
    bases, quotes, values = (list(column) for column in zip(*rates, strict=True))
    return [
        StoredRate(
            base=r["base"],
            quote=r["quote"],
            rate=r["rate"],
            source=r["source"],
            fetched_at=r["fetched_at"],
        )
        async for r in queries.exchange_store_rates(
            conn, bases=bases, quotes=quotes, rates=values, source=source
        )
    ]


async def expire_lapsed_locks(conn, *, limit: int = 500) -> list[int]:
    """The rate-lock expiry job: quoted orders whose lock ran out become expired,
    `limit` per statement, each batch committed on its own (unless the caller holds a
    transaction). An order a payment or confirmation holds is left to it; concurrent runs
    never expire one twice. Returns the ids this run expired."""
    expired: list[int] = []
    while True:
        batch = [r["id"] async for r in queries.exchange_expire_lapsed_locks(conn, batch=limit)]
        expired.extend(batch)
        if len(batch) < limit:
            return expired
