"""Exchange: quotes worked out by hand in both directions, rounding toward the platform,
locks that expire, stale rates, limits, and execution at the locked amounts."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, localcontext

import pytest
import seeding

from bot import db
from bot.data.enums import ExchangeStatus
from bot.data.errors import (
    AboveLimit,
    BelowMinimum,
    InsufficientFunds,
    Invalid,
    NotFound,
    QuoteExpired,
    StaleRate,
    WrongStatus,
)
from bot.data.exchange import execute_exchange, lock_rate
from bot.data.wallet import wallet_context
from bot.db import queries

ALICE, BOB = 4001, 4002
D = Decimal


async def one_trip(awaitable):
    """Runs one movement and asserts it cost exactly one round trip."""
    async with db.meter.measure() as m:
        result = await awaitable
    assert m.round_trips == 1, m.statements
    return result


async def available(conn, telegram_id: int, currency: str) -> Decimal:
    ctx = await wallet_context(conn, telegram_id=telegram_id)
    return ctx.wallet(currency).available


async def market(conn, btc_usd: str = "65000", usd_ngn: str = "1500") -> None:
    """A user, and rates that make one BTC 97,500,000 NGN."""
    await seeding.user(conn, ALICE)
    await seeding.rate(conn, "BTC", "USD", btc_usd)
    await seeding.rate(conn, "USD", "NGN", usd_ngn)


def down(x: Decimal, decimals: int) -> Decimal:
    return x.quantize(D(1).scaleb(-decimals), rounding=ROUND_DOWN)


async def quote(conn, from_currency: str, to_currency: str, amount: str, **kw):
    return await lock_rate(
        conn,
        telegram_id=ALICE,
        from_currency=from_currency,
        to_currency=to_currency,
        amount=D(amount),
        **kw,
    )


async def test_crypto_to_naira_by_hand(conn):
    await market(conn)
    q = await one_trip(quote(conn, "BTC", "NGN", "0.01234567"))
    # 0.01234567 x 65000 x 1500 = 1,203,702.825; less 1.5% markup = 1,185,647.282625
    assert q.to_amount == D("1185647.28")
    assert q.market_rate == D("97500000")
    assert q.markup_rate == D("0.015")
    assert q.rate == D("96037500")  # 97,500,000 x 0.985
    assert (q.from_currency, q.to_currency, q.from_amount) == ("BTC", "NGN", D("0.01234567"))
    assert q.status is ExchangeStatus.QUOTED
    assert q.payment_reference.startswith("EXC-") and len(q.payment_reference) == 14
    # The platform's rate_lock_seconds: 600.
    assert q.rate_locked_until - q.created_at == timedelta(seconds=600)


async def test_naira_to_crypto_by_hand(conn):
    await market(conn)
    q = await one_trip(quote(conn, "NGN", "BTC", "1000000"))
    # 1,000,000 x 0.985 / 97,500,000 = 0.010102564102564... BTC, 8 decimals kept
    assert q.to_amount == D("0.01010256")
    assert q.market_rate == D("0.000000010256410256")  # 1 / 97,500,000 at 18 decimals
    assert q.rate == D("0.000000010102564102")  # x 0.985
    # An exact result stays exact: 97,500 x 0.985 / 97,500,000 = 0.000985, not 0.00098499.
    exact = await quote(conn, "NGN", "BTC", "97500")
    assert exact.to_amount == D("0.000985")


async def test_rounding_is_down_toward_the_platform_by_less_than_one_unit(conn):
    await seeding.user(conn, ALICE)
    await seeding.rate(conn, "USDT", "USD", "1")
    await seeding.rate(conn, "USD", "NGN", "1533.33")

    to_naira = await quote(conn, "USDT", "NGN", "7")
    exact = D(7) * D("1533.33") * D("0.99")
    assert exact == D("10625.9769")
    assert to_naira.to_amount == D("10625.97")  # half-up would have paid 10625.98
    assert D(0) <= exact - to_naira.to_amount < D("0.01")

    to_usdt = await quote(conn, "NGN", "USDT", "10000")
    with localcontext() as ctx:
        ctx.prec = 60
        exact = D(10000) * D("0.99") / D("1533.33")
    assert to_usdt.to_amount == D("6.456535") == down(exact, 6)
    assert exact.quantize(D("0.000001"), rounding=ROUND_HALF_UP) == D("6.456536")
    assert D(0) <= exact - to_usdt.to_amount < D("0.000001")


async def test_executing_moves_the_locked_amounts_whatever_the_rate_does_since(conn):
    await market(conn)
    await seeding.credit(conn, ALICE, "BTC", "0.5")
    q = await quote(conn, "BTC", "NGN", "0.01234567")
    await seeding.rate(conn, "BTC", "USD", "30000")  # the market crashes after the lock

    done = await one_trip(execute_exchange(conn, telegram_id=ALICE, order_id=q.order_id))
    assert done.status is ExchangeStatus.COMPLETED and done.completed_at is not None
    assert (done.from_amount, done.to_amount) == (D("0.01234567"), D("1185647.28"))
    assert done.from_available == D("0.48765433")
    assert done.to_available == D("1185647.28")
    assert await available(conn, ALICE, "BTC") == D("0.48765433")
    assert await available(conn, ALICE, "NGN") == D("1185647.28")

    with pytest.raises(WrongStatus) as twice:
        await execute_exchange(conn, telegram_id=ALICE, order_id=q.order_id)
    assert twice.value.status == "completed"
    assert await available(conn, ALICE, "NGN") == D("1185647.28")

    # And back: naira to crypto from the proceeds.
    back = await quote(conn, "NGN", "BTC", "1000000")
    assert back.to_amount == D("0.02188888")  # 1,000,000 x 0.985 / (30,000 x 1,500)
    await execute_exchange(conn, telegram_id=ALICE, order_id=back.order_id)
    assert await available(conn, ALICE, "NGN") == D("185647.28")
    assert await available(conn, ALICE, "BTC") == D("0.50954321")


async def test_an_expired_lock_is_refused_and_only_marks_the_order_expired(conn):
    await market(conn)
    await seeding.credit(conn, ALICE, "BTC", "0.5")
    q = await quote(conn, "BTC", "NGN", "0.1", lock_seconds=-1)
    with pytest.raises(QuoteExpired) as expired:
        await one_trip(execute_exchange(conn, telegram_id=ALICE, order_id=q.order_id))
    assert expired.value.expired_at == q.rate_locked_until
    assert (await queries.exchange_test_order(conn, order_id=q.order_id))["status"] == "expired"
    assert await available(conn, ALICE, "BTC") == D("0.5")
    assert await available(conn, ALICE, "NGN") == 0
    with pytest.raises(WrongStatus) as again:
        await execute_exchange(conn, telegram_id=ALICE, order_id=q.order_id)
    assert again.value.status == "expired"


async def test_a_stale_or_missing_rate_gives_no_quote(conn):
    await seeding.user(conn, ALICE)
    await queries.exchange_test_rate(
        conn, base="BTC", quote="USD", rate=D("65000"), age_seconds=901
    )
    await seeding.rate(conn, "USD", "NGN", "1500")
    with pytest.raises(StaleRate) as stale:
        await quote(conn, "BTC", "NGN", "0.01")
    assert stale.value.pair == "BTC/NGN" and stale.value.fetched_at is not None
    ctx = await wallet_context(conn, telegram_id=ALICE)
    assert stale.value.fetched_at == ctx.wallet("BTC").rate_at  # the newest BTC rate, too old

    with pytest.raises(StaleRate) as missing:
        await quote(conn, "ETH", "NGN", "0.1")  # no ETH rate at all
    assert missing.value.fetched_at is None

    # Within the platform's 900 seconds it is fresh enough; the newest row wins.
    await queries.exchange_test_rate(
        conn, base="BTC", quote="USD", rate=D("64000"), age_seconds=899
    )
    q = await quote(conn, "BTC", "NGN", "0.01")
    assert q.market_rate == D("96000000")

    # Either leg can be the stale one.
    await queries.exchange_test_rate(conn, base="USDT", quote="USD", rate=D("1"), age_seconds=0)
    await queries.exchange_test_rate(conn, base="USD", quote="NGN", rate=D("1"), age_seconds=-5)
    assert (await quote(conn, "USDT", "NGN", "10")).to_amount == D("9.90")
    assert await queries.exchange_test_user_orders(conn, telegram_id=ALICE) == 2


async def test_limits_precision_and_pairs_are_refused_creating_nothing(conn):
    await market(conn)
    with pytest.raises(BelowMinimum) as below:
        await quote(conn, "BTC", "NGN", "0.00019999")
    assert below.value.minimum == D("0.0002") and below.value.currency == "BTC"
    with pytest.raises(AboveLimit) as above:
        await quote(conn, "BTC", "NGN", "2.00000001")
    assert above.value.maximum == D("2")
    with pytest.raises(BelowMinimum) as below_ngn:
        await quote(conn, "NGN", "BTC", "4999.99")
    assert below_ngn.value.minimum == D("5000")
    with pytest.raises(Invalid):
        await quote(conn, "BTC", "NGN", "0.000300001")  # 9 decimals
    with pytest.raises(Invalid):
        await quote(conn, "NGN", "BTC", "5000.001")
    with pytest.raises(Invalid, match="not offered"):
        await quote(conn, "BTC", "ETH", "0.01")
    await queries.exchange_test_disable_pair(conn, from_currency="BTC", to_currency="NGN")
    with pytest.raises(Invalid, match="not offered"):
        await quote(conn, "BTC", "NGN", "0.01")
    with pytest.raises(NotFound):
        await lock_rate(
            conn, telegram_id=999, from_currency="NGN", to_currency="BTC", amount=D("5000")
        )
    assert await queries.exchange_test_user_orders(conn, telegram_id=ALICE) == 0
    # The edges themselves are in.
    assert (await quote(conn, "NGN", "BTC", "5000")).to_amount == D("0.00005051")
    assert (await quote(conn, "NGN", "BTC", "20000000")).to_amount == D("0.20205128")


async def test_too_little_money_or_someone_elses_order_moves_nothing(conn):
    await market(conn)
    await seeding.user(conn, BOB)
    await seeding.credit(conn, ALICE, "BTC", "0.0099")
    q = await quote(conn, "BTC", "NGN", "0.01")
    with pytest.raises(InsufficientFunds) as short:
        await execute_exchange(conn, telegram_id=ALICE, order_id=q.order_id)
    assert (short.value.currency, short.value.available, short.value.needed) == (
        "BTC",
        D("0.0099"),
        D("0.01"),
    )
    with pytest.raises(NotFound):
        await execute_exchange(conn, telegram_id=BOB, order_id=q.order_id)
    assert (await queries.exchange_test_order(conn, order_id=q.order_id))["status"] == "quoted"
    assert await available(conn, ALICE, "BTC") == D("0.0099")

    await seeding.credit(conn, ALICE, "BTC", "0.0001")
    done = await execute_exchange(conn, telegram_id=ALICE, order_id=q.order_id)
    assert done.from_available == 0 and done.to_available == D("960375")


async def test_two_confirmations_at_once_execute_once(pool):
    await market(pool)
    await seeding.credit(pool, ALICE, "BTC", "1")
    q = await quote(pool, "BTC", "NGN", "0.4")
    results = await asyncio.gather(
        *(execute_exchange(pool, telegram_id=ALICE, order_id=q.order_id) for _ in range(3)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, WrongStatus) for r in results) == 2
    assert await available(pool, ALICE, "BTC") == D("0.6")
    assert await available(pool, ALICE, "NGN") == D("38415000")  # 0.4 x 97,500,000 x 0.985
