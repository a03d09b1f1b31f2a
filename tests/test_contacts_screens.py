"""Contacts screen: live saved destinations, most recently used first, 50 of each at most."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import seeding

from bot import db
from bot.data.contacts import (
    contacts_context,
    delete_destination,
    save_address,
    save_bank_account,
)
from bot.data.enums import DestinationKind
from bot.db import queries

ALICE, BOB = 8001, 8002
TRON = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
SEGWIT = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


async def one_trip(call):
    async with db.meter.measure() as m:
        result = await call
    assert m.round_trips == 1, m.statements
    return result


async def test_a_user_with_nothing_saved_sees_empty_lists_in_one_round_trip(conn):
    uid = await seeding.user(conn, ALICE)
    ctx = await one_trip(contacts_context(conn, telegram_id=ALICE))
    assert ctx.user_id == uid
    assert ctx.addresses == () and ctx.address_count == 0
    assert ctx.bank_accounts == () and ctx.bank_account_count == 0


async def test_an_unknown_user_is_none_in_one_round_trip(conn):
    assert await one_trip(contacts_context(conn, telegram_id=404)) is None


async def test_saved_destinations_show_what_was_saved(conn):
    await seeding.user(conn, ALICE)
    a = await save_address(
        conn, telegram_id=ALICE, currency="BTC", network="BTC", address=SEGWIT, label="Cold 🧊"
    )
    b = await save_bank_account(
        conn,
        telegram_id=ALICE,
        bank_code="058",
        account_number="0123456789",
        account_name="ALICE ADEYEMI",
        label="Salary",
    )
    ctx = await one_trip(contacts_context(conn, telegram_id=ALICE))
    assert ctx.addresses == (a,)
    assert ctx.bank_accounts == (b,)
    assert ctx.bank_accounts[0].bank_name == "Guaranty Trust Bank"
    assert (ctx.address_count, ctx.bank_account_count) == (1, 1)


async def test_60_addresses_show_the_50_most_recently_used_and_count_60(conn):
    await seeding.user(conn, ALICE)
    ids = [await seeding.address(conn, ALICE, f"T{n:033d}") for n in range(60)]
    # Three were used, the oldest made the most recently; the rest never were.
    used = {ids[0]: T0 + timedelta(days=3), ids[30]: T0 + timedelta(days=2), ids[59]: T0}
    for address_id, at in used.items():
        await queries.contacts_test_touch_address(conn, address_id=address_id, last_used_at=at)

    ctx = await one_trip(contacts_context(conn, telegram_id=ALICE))
    assert ctx.address_count == 60
    assert len(ctx.addresses) == 50
    never_used = sorted(set(ids) - set(used), reverse=True)
    assert [a.id for a in ctx.addresses] == [ids[0], ids[30], ids[59], *never_used[:47]]
    assert ctx.addresses[0].last_used_at == T0 + timedelta(days=3)
    assert all(a.last_used_at is None for a in ctx.addresses[3:])


async def test_bank_accounts_are_bounded_and_ordered_the_same_way(conn):
    await seeding.user(conn, ALICE)
    ids = [await seeding.bank_account(conn, ALICE, f"{n:010d}") for n in range(52)]
    await queries.contacts_test_touch_bank_account(conn, bank_account_id=ids[1], last_used_at=T0)

    ctx = await one_trip(contacts_context(conn, telegram_id=ALICE))
    assert ctx.bank_account_count == 52
    assert [b.id for b in ctx.bank_accounts] == [ids[1], *ids[:1:-1]][:50]
    assert ctx.bank_accounts[0].last_used_at == T0


async def test_deleted_destinations_are_not_shown_nor_counted(conn):
    await seeding.user(conn, ALICE)
    keep = await save_address(
        conn, telegram_id=ALICE, currency="USDT", network="TRC20", address=TRON
    )
    drop = await save_address(
        conn, telegram_id=ALICE, currency="BTC", network="BTC", address=SEGWIT
    )
    bank = await save_bank_account(
        conn, telegram_id=ALICE, bank_code="044", account_number="1111111111", account_name="A"
    )
    await delete_destination(
        conn, telegram_id=ALICE, kind=DestinationKind.CRYPTO_ADDRESS, destination_id=drop.id
    )
    await delete_destination(
        conn, telegram_id=ALICE, kind=DestinationKind.BANK_ACCOUNT, destination_id=bank.id
    )

    ctx = await one_trip(contacts_context(conn, telegram_id=ALICE))
    assert [a.id for a in ctx.addresses] == [keep.id] and ctx.address_count == 1
    assert ctx.bank_accounts == () and ctx.bank_account_count == 0

    # Saved again after deleting: a new live row, shown once.
    again = await save_address(
        conn, telegram_id=ALICE, currency="BTC", network="BTC", address=SEGWIT
    )
    ctx = await contacts_context(conn, telegram_id=ALICE)
    assert [a.id for a in ctx.addresses] == [again.id, keep.id] and again.id != drop.id


async def test_nothing_leaks_between_users(conn):
    await seeding.user(conn, ALICE)
    await seeding.user(conn, BOB)
    mine = await save_address(
        conn, telegram_id=ALICE, currency="USDT", network="TRC20", address=TRON
    )
    # Bob saves the very same address, and a bank account of his own.
    his = await save_address(conn, telegram_id=BOB, currency="USDT", network="TRC20", address=TRON)
    bank = await seeding.bank_account(conn, BOB, "2222222222")

    alice = await contacts_context(conn, telegram_id=ALICE)
    bob = await contacts_context(conn, telegram_id=BOB)
    assert [a.id for a in alice.addresses] == [mine.id] and alice.bank_accounts == ()
    assert (alice.address_count, alice.bank_account_count) == (1, 0)
    assert [a.id for a in bob.addresses] == [his.id]
    assert [b.id for b in bob.bank_accounts] == [bank]
    assert (bob.address_count, bob.bank_account_count) == (1, 1)
