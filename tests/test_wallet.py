"""The wallet screen: one round trip, exact money, nothing of anyone else's."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import seeding

from bot import db
from bot.data.enums import CashoutStatus
from bot.data.wallet import WalletContext, wallet_context

ALICE, BOB = 1001, 1002


async def screen(conn, telegram_id: int) -> tuple[WalletContext | None, int]:
    async with db.meter.measure() as m:
        ctx = await wallet_context(conn, telegram_id=telegram_id)
    return ctx, m.round_trips


async def test_unknown_user_is_none_in_one_round_trip(conn):
    ctx, trips = await screen(conn, 424242)
    assert ctx is None
    assert trips == 1


async def test_new_user_has_every_wallet_in_currency_order_and_empty_lists(conn):
    await seeding.user(conn, ALICE)
    ctx, trips = await screen(conn, ALICE)
    assert trips == 1
    assert [w.currency for w in ctx.wallets] == ["BTC", "ETH", "LTC", "NGN", "USDT"]
    assert all(w.available == 0 and w.held == 0 for w in ctx.wallets)
    assert ctx.addresses == () and ctx.bank_accounts == () and ctx.cashouts_in_flight == ()
    assert ctx.cashouts_in_flight_count == 0
    # No rates stored yet: nothing can be valued, and nothing pretends to be.
    assert all(w.usd_value is None and w.rate_at is None for w in ctx.wallets)
    assert ctx.total_usd == 0


async def test_extreme_amounts_come_back_exact_from_aggregated_json(conn):
    await seeding.user(conn, ALICE)
    await seeding.credit(conn, ALICE, "ETH", "12345678901234567890.123456789012345679")
    await seeding.cashout(conn, ALICE, "ETH", "0.000000000000000001")
    await seeding.rate(conn, "ETH", "USD", "2")

    ctx, trips = await screen(conn, ALICE)
    eth = ctx.wallet("ETH")
    assert trips == 1
    assert type(eth.available) is Decimal and type(eth.held) is Decimal
    assert eth.available == Decimal("12345678901234567890.123456789012345678")
    assert eth.held == Decimal("0.000000000000000001")
    assert eth.usd_value == Decimal("24691357802469135780.25")
    assert ctx.total_usd == Decimal("24691357802469135780.25")
    assert ctx.cashouts_in_flight[0].amount == Decimal("0.000000000000000001")


async def test_valuation_uses_the_newest_rate_each_way(conn):
    await seeding.user(conn, ALICE)
    await seeding.credit(conn, ALICE, "NGN", "1530000")
    await seeding.credit(conn, ALICE, "BTC", "0.5")
    await seeding.rate(conn, "USD", "NGN", "1000")
    await seeding.rate(conn, "USD", "NGN", "1530")
    await seeding.rate(conn, "BTC", "USD", "100000.10")

    ctx, _ = await screen(conn, ALICE)
    assert ctx.wallet("NGN").usd_value == Decimal("1000.00")
    assert ctx.wallet("BTC").usd_value == Decimal("50000.05")
    assert ctx.wallet("ETH").usd_value is None
    assert ctx.total_usd == Decimal("51000.05")


async def test_unicode_names_survive(conn):
    name = "Ọlá 🌍 Zoë 李"
    await seeding.user(conn, ALICE, first_name=name)
    ctx, _ = await screen(conn, ALICE)
    assert ctx.user.first_name == name
    assert ctx.user.telegram_id == ALICE


async def test_lists_are_bounded_and_most_recent_first(conn):
    await seeding.user(conn, ALICE)
    ids = [await seeding.address(conn, ALICE, f"T{n:033d}") for n in range(25)]
    await seeding.credit(conn, ALICE, "USDT", "1000")
    for n in range(12):
        await seeding.cashout(conn, ALICE, "USDT", "5", fee="1", n=n)

    ctx, trips = await screen(conn, ALICE)
    assert trips == 1
    assert [a.id for a in ctx.addresses] == sorted(ids, reverse=True)[:20]
    assert len(ctx.cashouts_in_flight) == 10
    assert ctx.cashouts_in_flight_count == 12
    assert [c.id for c in ctx.cashouts_in_flight] == sorted(
        (c.id for c in ctx.cashouts_in_flight), reverse=True
    )
    assert all(c.status is CashoutStatus.PENDING for c in ctx.cashouts_in_flight)
    usdt = ctx.wallet("USDT")
    assert usdt.available == Decimal("928") and usdt.held == Decimal("72")
    assert {n.network for n in usdt.networks} == {"TRC20", "ERC20", "BEP20"}
    assert (usdt.cashout_min, usdt.cashout_fee_flat) == (Decimal("5"), Decimal("1"))


async def test_one_users_screen_holds_nothing_of_another(conn):
    await seeding.user(conn, ALICE)
    await seeding.user(conn, BOB)
    await seeding.address(conn, ALICE, "TAlice000000000000000000000000000")
    await seeding.bank_account(conn, ALICE, "0000000001")
    await seeding.address(conn, BOB, "TBob00000000000000000000000000000")
    await seeding.bank_account(conn, BOB, "0000000002")
    await seeding.credit(conn, BOB, "USDT", "50")
    await seeding.cashout(conn, BOB, "USDT", "10")

    alice, _ = await screen(conn, ALICE)
    bob, _ = await screen(conn, BOB)
    assert [a.address for a in alice.addresses] == ["TAlice000000000000000000000000000"]
    assert [b.account_number for b in alice.bank_accounts] == ["0000000001"]
    assert alice.cashouts_in_flight == () and alice.wallet("USDT").available == 0
    assert [a.address for a in bob.addresses] == ["TBob00000000000000000000000000000"]
    assert [b.bank_name for b in bob.bank_accounts] == ["Guaranty Trust Bank"]
    assert bob.cashouts_in_flight_count == 1


async def test_meter_counts_each_tasks_own_queries(pool):
    await seeding.user(pool, ALICE)

    async def two_screens() -> int:
        async with db.meter.measure() as m:
            await wallet_context(pool, telegram_id=ALICE)
            await wallet_context(pool, telegram_id=ALICE)
        return m.round_trips

    async def one_screen() -> int:
        async with db.meter.measure() as m:
            await wallet_context(pool, telegram_id=ALICE)
        return m.round_trips

    assert await asyncio.gather(two_screens(), one_screen(), two_screens()) == [2, 1, 2]
