"""Exchange screens: the exchange context (wallets, destinations, rates with their age, pairs,
open orders) and the keyset-paged order history, one round trip each, nothing of anyone else's."""

from __future__ import annotations

from decimal import Decimal

import pytest
import seeding

from bot import db
from bot.data.contacts import delete_destination
from bot.data.enums import DestinationKind, ExchangeStatus
from bot.data.errors import QuoteExpired
from bot.data.exchange import (
    ExchangePage,
    exchange_context,
    exchange_history,
    execute_exchange,
    lock_rate,
)
from bot.data.rows import PageCursor
from bot.data.wallet import CryptoDestination, request_cashout
from bot.db import queries

ALICE, BOB = 11001, 11002
D = Decimal
TRON = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
LEGS = [("BTC", "USD"), ("ETH", "USD"), ("LTC", "USD"), ("USDT", "USD"), ("USD", "NGN")]


async def one_trip(call):
    async with db.meter.measure() as m:
        result = await call
    assert m.round_trips == 1, m.statements
    return result


async def market(conn) -> None:
    """Fresh USDT and naira rates: 1 USDT = 1 USD = 1500 NGN."""
    await seeding.rate(conn, "USDT", "USD", "1")
    await seeding.rate(conn, "USD", "NGN", "1500")


async def quote(conn, telegram_id: int, amount: str = "10", **kw):
    return await lock_rate(
        conn,
        telegram_id=telegram_id,
        from_currency="USDT",
        to_currency="NGN",
        amount=D(amount),
        **kw,
    )


# --- exchange_context ------------------------------------------------------------


async def test_an_unknown_user_is_none_in_one_round_trip(conn):
    assert await one_trip(exchange_context(conn, telegram_id=404)) is None


async def test_a_new_user_sees_empty_wallets_every_pair_and_no_rate_yet(conn):
    uid = await seeding.user(conn, ALICE)
    ctx = await one_trip(exchange_context(conn, telegram_id=ALICE))
    assert (ctx.user_id, ctx.telegram_id) == (uid, ALICE)
    assert [w.currency for w in ctx.wallets] == ["BTC", "ETH", "LTC", "NGN", "USDT"]
    assert all(w.available == 0 for w in ctx.wallets)
    assert ctx.wallet("NGN").kind == "fiat" and ctx.wallet("NGN").decimals == 2
    assert ctx.wallet("ETH").kind == "crypto" and ctx.wallet("ETH").decimals == 18
    assert ctx.addresses == () and ctx.bank_accounts == ()
    assert ctx.open_orders == () and ctx.open_orders_count == 0
    # Every leg a quote needs, none priced yet: all stale, none pretending otherwise.
    assert [(r.base, r.quote) for r in ctx.rates] == LEGS
    assert all(r.rate is None and r.fetched_at is None and r.age_seconds is None for r in ctx.rates)
    assert all(r.stale for r in ctx.rates)
    assert len(ctx.pairs) == 8
    btc = ctx.pair("BTC", "NGN")
    assert (btc.markup_rate, btc.min_amount, btc.max_amount) == (D("0.015"), D("0.0002"), D(2))
    assert ctx.pair("NGN", "USDT").min_amount == D(5000)
    assert (ctx.rate_lock_seconds, ctx.rate_max_age_seconds) == (600, 900)


async def test_rates_are_the_newest_per_leg_with_their_age_and_staleness(conn):
    await seeding.user(conn, ALICE)
    for base, quote_, rate, age in [
        ("BTC", "USD", "60000", 50),
        ("BTC", "USD", "65000.5", 30),
        ("BTC", "USD", "59000", 40),
        ("ETH", "USD", "3000", 1000),
        ("USD", "NGN", "1533.33", 0),
    ]:
        await queries.exchange_test_rate(
            conn, base=base, quote=quote_, rate=D(rate), age_seconds=age
        )
    # Another pair's rate is no leg of any quote.
    await queries.exchange_test_rate(conn, base="EUR", quote="USD", rate=D("1.1"), age_seconds=0)

    ctx = await one_trip(exchange_context(conn, telegram_id=ALICE))
    assert [(r.base, r.quote) for r in ctx.rates] == LEGS
    btc, eth = ctx.rate("BTC", "USD"), ctx.rate("ETH", "USD")
    assert btc.rate == D("65000.5") and not btc.stale  # the newest fetched, not the last stored
    assert 30 <= btc.age_seconds < 90
    assert int((ctx.as_of - btc.fetched_at).total_seconds()) == btc.age_seconds
    assert eth.rate == D("3000") and eth.stale  # older than 900 seconds: no quote on it
    assert 1000 <= eth.age_seconds < 1060
    naira = ctx.rate("USD", "NGN")
    assert naira.rate == D("1533.33") and not naira.stale and 0 <= naira.age_seconds < 60
    assert ctx.rate("LTC", "USD").rate is None and ctx.rate("LTC", "USD").stale


async def test_a_disabled_pair_is_not_offered(conn):
    await seeding.user(conn, ALICE)
    await queries.exchange_test_disable_pair(conn, from_currency="BTC", to_currency="NGN")
    ctx = await exchange_context(conn, telegram_id=ALICE)
    assert ctx.pair("BTC", "NGN") is None and ctx.pair("NGN", "BTC") is not None
    assert len(ctx.pairs) == 7


async def test_open_orders_are_the_10_newest_open_ones_with_their_count(conn):
    await seeding.user(conn, ALICE)
    await market(conn)
    await seeding.credit(conn, ALICE, "USDT", "100")
    done = await quote(conn, ALICE)
    await execute_exchange(conn, telegram_id=ALICE, order_id=done.order_id)
    lapsed = await quote(conn, ALICE, lock_seconds=-1)
    with pytest.raises(QuoteExpired):  # and the order is now expired: not open
        await execute_exchange(conn, telegram_id=ALICE, order_id=lapsed.order_id)
    quotes = [await quote(conn, ALICE, amount=str(10 + i)) for i in range(12)]

    ctx = await one_trip(exchange_context(conn, telegram_id=ALICE))
    assert ctx.open_orders_count == 12
    assert [o.id for o in ctx.open_orders] == [q.order_id for q in reversed(quotes)][:10]
    newest, oldest_shown = ctx.open_orders[0], ctx.open_orders[-1]
    assert newest.status is ExchangeStatus.QUOTED
    assert newest.from_amount == D(21) and newest.to_amount == D("31185.00")  # 21 x 1500 x 0.99
    assert newest.rate == quotes[-1].rate and newest.rate_locked_until > ctx.as_of
    assert newest.payment_reference == quotes[-1].payment_reference
    assert newest.received_amount is None
    assert oldest_shown.from_amount == D(12)
    # The exchange moved 10 USDT into 14,850 naira.
    assert ctx.wallet("USDT").available == D(90)
    assert ctx.wallet("NGN").available == D("14850.00")


async def test_saved_destinations_are_live_ones_most_recently_used_first_20_at_most(conn):
    await seeding.user(conn, ALICE)
    addresses = [
        await seeding.address(conn, ALICE, f"T{i:033d}", label=f"#{i} 🚀") for i in range(22)
    ]
    banks = [await seeding.bank_account(conn, ALICE, f"{i:010d}") for i in range(22)]
    await delete_destination(
        conn,
        telegram_id=ALICE,
        kind=DestinationKind.CRYPTO_ADDRESS,
        destination_id=addresses[-1],
    )
    # A cashout to the oldest address makes it the most recently used.
    await seeding.credit(conn, ALICE, "USDT", "100")
    await request_cashout(
        conn,
        telegram_id=ALICE,
        currency="USDT",
        amount=D(10),
        destination=CryptoDestination("TRC20", f"T{0:033d}", saved_address_id=addresses[0]),
        idempotency_key="screen-1",
    )

    ctx = await one_trip(exchange_context(conn, telegram_id=ALICE))
    shown = [a.id for a in ctx.addresses]
    assert len(shown) == 20
    assert shown[0] == addresses[0] and ctx.addresses[0].last_used_at is not None
    # Then the never used ones, newest first, up to the bound; the deleted one is gone.
    assert shown[1:] == list(reversed(addresses[2:21]))
    assert addresses[-1] not in shown
    assert ctx.addresses[1].label == "#20 🚀"
    assert [b.id for b in ctx.bank_accounts] == list(reversed(banks))[:20]
    assert ctx.bank_accounts[0].bank_name == "Guaranty Trust Bank"
    # The cashout holds 10 + 1 fee: available is what can be exchanged.
    assert ctx.wallet("USDT").available == D(89)


async def test_nothing_leaks_between_users(conn):
    await seeding.user(conn, ALICE)
    await seeding.user(conn, BOB)
    await market(conn)
    await seeding.credit(conn, ALICE, "USDT", "7")
    await seeding.credit(conn, BOB, "ETH", "0.000000000000000001")
    alice_address = await seeding.address(conn, ALICE, TRON)
    bob_bank = await seeding.bank_account(conn, BOB, "0123456789")
    alice_quote = await quote(conn, ALICE, amount="5")
    bob_quote = await quote(conn, BOB, amount="6")

    alice = await one_trip(exchange_context(conn, telegram_id=ALICE))
    bob = await one_trip(exchange_context(conn, telegram_id=BOB))
    assert [a.id for a in alice.addresses] == [alice_address] and alice.bank_accounts == ()
    assert bob.addresses == () and [b.id for b in bob.bank_accounts] == [bob_bank]
    assert [o.id for o in alice.open_orders] == [alice_quote.order_id]
    assert [o.id for o in bob.open_orders] == [bob_quote.order_id]
    assert alice.wallet("USDT").available == D(7) and alice.wallet("ETH").available == 0
    assert bob.wallet("ETH").available == D("0.000000000000000001")
    assert bob.wallet("USDT").available == 0


# --- exchange_history -------------------------------------------------------------


async def walk(conn, telegram_id: int, limit: int) -> list[ExchangePage]:
    """Every page, each in one round trip, the cursor passed along as callback data would."""
    pages, before = [], None
    while True:
        page = await one_trip(
            exchange_history(conn, telegram_id=telegram_id, before=before, limit=limit)
        )
        pages.append(page)
        if page.next_before is None:
            return pages
        before = PageCursor.decode(page.next_before.encode())
        assert len(pages) < 100, "the pages never end"


async def test_history_pages_newest_first_through_every_status(conn):
    await seeding.user(conn, ALICE)
    await market(conn)
    await seeding.credit(conn, ALICE, "USDT", "1000")
    made = []
    for i in range(23):
        q = await quote(conn, ALICE, amount=str(5 + i), lock_seconds=-1 if i % 7 == 3 else None)
        if i % 4 == 0:
            await execute_exchange(conn, telegram_id=ALICE, order_id=q.order_id)
        made.append(q)

    pages = await walk(conn, ALICE, 10)
    assert [len(p.orders) for p in pages] == [10, 10, 3]
    orders = [o for p in pages for o in p.orders]
    assert [o.id for o in orders] == [q.order_id for q in reversed(made)]
    by_id = {o.id: o for o in orders}
    first, expired_unexecuted = by_id[made[0].order_id], by_id[made[3].order_id]
    assert first.status is ExchangeStatus.COMPLETED and first.completed_at is not None
    assert first.from_amount == D(5) and first.to_amount == D("7425.00")
    assert first.destination is DestinationKind.WALLET
    assert first.market_rate == D(1500) and first.markup_rate == D("0.01")
    # A lapsed lock nobody tried to execute is still "quoted": the history shows what is stored.
    assert expired_unexecuted.status is ExchangeStatus.QUOTED
    assert expired_unexecuted.rate_locked_until < expired_unexecuted.created_at
    assert pages[0].next_before == PageCursor(orders[9].created_at, orders[9].id)


async def test_history_rows_with_equal_times_neither_repeat_nor_skip(conn):
    await seeding.user(conn, ALICE)
    await market(conn)
    ids = [(await quote(conn, ALICE, amount=str(5 + i))).order_id for i in range(7)]
    await queries.exchange_test_same_instant(conn, telegram_id=ALICE)

    pages = await walk(conn, ALICE, 3)
    assert [len(p.orders) for p in pages] == [3, 3, 1]
    seen = [o.id for p in pages for o in p.orders]
    assert seen == sorted(ids, reverse=True)  # one instant: id decides
    assert len({o.created_at for p in pages for o in p.orders}) == 1


async def test_history_of_an_unknown_user_or_of_one_without_orders_is_empty(conn):
    await seeding.user(conn, ALICE)
    for telegram_id in (404, ALICE):
        page = await one_trip(exchange_history(conn, telegram_id=telegram_id))
        assert page == ExchangePage(orders=(), next_before=None)


async def test_history_pages_hold_1_to_50_orders(conn):
    await seeding.user(conn, ALICE)
    await market(conn)
    for i in range(52):
        await quote(conn, ALICE, amount=str(5 + i))
    big = await one_trip(exchange_history(conn, telegram_id=ALICE, limit=500))
    assert len(big.orders) == 50 and big.next_before is not None
    rest = await exchange_history(conn, telegram_id=ALICE, before=big.next_before, limit=500)
    assert len(rest.orders) == 2 and rest.next_before is None
    tiny = await exchange_history(conn, telegram_id=ALICE, limit=0)
    assert len(tiny.orders) == 1 and tiny.orders[0].from_amount == D(56)


async def test_history_shows_only_the_users_own_orders(conn):
    await seeding.user(conn, ALICE)
    await seeding.user(conn, BOB)
    await market(conn)
    mine = [(await quote(conn, ALICE, amount="5")).order_id for _ in range(3)]
    theirs = [(await quote(conn, BOB, amount="6")).order_id for _ in range(2)]
    alice = await exchange_history(conn, telegram_id=ALICE)
    bob = await exchange_history(conn, telegram_id=BOB)
    assert [o.id for o in alice.orders] == list(reversed(mine))
    assert [o.id for o in bob.orders] == list(reversed(theirs))
