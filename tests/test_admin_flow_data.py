"""The admin area's data functions added for the console: the cashout approval queue and the
start-up sync of users.is_admin with the configured admin ids."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import seeding

from bot import db
from bot.data.admin import cashout_queue, sync_admins, user_page
from bot.data.enums import DestinationKind
from bot.data.errors import NotAParty
from bot.data.rows import PageCursor
from bot.data.wallet import approve_cashout, fail_cashout
from bot.db import queries

ADA, BOLA, CHIDI, DAYO = 8201, 8202, 8203, 8204
D = Decimal


async def one_trip(call):
    async with db.meter.measure() as m:
        result = await call
    assert m.round_trips == 1, m.statements
    return result


async def flags(conn) -> dict[int, bool]:
    return {u.telegram_id: u.is_admin for u in (await user_page(conn, limit=100)).users}


# --- cashout_queue ------------------------------------------------------------------------------


async def test_the_queue_holds_pending_cashouts_oldest_first_with_what_the_screen_shows(conn):
    await seeding.user(conn, ADA, "Ada")
    await seeding.block(conn, ADA)
    await seeding.credit(conn, ADA, "USDT", "100")
    first = await seeding.cashout(conn, ADA, "USDT", "20.5", fee="1")
    second = await seeding.cashout(conn, ADA, "USDT", "10", fee="1", n=2)
    decided = await seeding.cashout(conn, ADA, "USDT", "5", fee="1", n=3)
    gone = await seeding.cashout(conn, ADA, "USDT", "6", fee="1", n=4)
    await seeding.user(conn, BOLA)
    await seeding.make_admin(conn, BOLA)
    await approve_cashout(conn, cashout_id=decided, admin_telegram_id=BOLA)
    await fail_cashout(conn, cashout_id=gone, reason="test")

    queue = await one_trip(cashout_queue(conn))

    assert [c.id for c in queue.items] == [first, second] and queue.next_after is None
    c = queue.items[0]
    assert (c.telegram_id, c.display_name, c.is_blocked) == (ADA, f"Ada @user{ADA}", True)
    assert (c.currency, c.decimals, c.amount, c.fee, c.total) == (
        "USDT",
        6,
        D("20.5"),
        1,
        D("21.5"),
    )
    assert c.destination is DestinationKind.CRYPTO_ADDRESS and c.network == "TRC20"
    assert c.address.startswith("T") and c.bank_name is None
    assert isinstance(c.amount, Decimal)


async def test_the_queue_pages_through_equal_timestamps_without_repeats_or_gaps(conn):
    await seeding.user(conn, ADA)
    await seeding.credit(conn, ADA, "USDT", "1000")
    ids = [await seeding.cashout(conn, ADA, "USDT", "10", n=n) for n in range(7)]
    await queries.admin_test_set_cashout_created_at(
        conn, cashout_ids=ids[1:5], created_at=datetime(2024, 5, 1, tzinfo=UTC)
    )
    await queries.admin_test_set_cashout_created_at(
        conn, cashout_ids=[ids[0]], created_at=datetime(2024, 4, 1, tzinfo=UTC)
    )
    seen, after = [], None
    while True:
        page = await one_trip(cashout_queue(conn, after=after, limit=2))
        seen += [c.id for c in page.items]
        if page.next_after is None:
            break
        after = PageCursor.decode(page.next_after.encode())  # as the button carries it
    assert seen == ids
    assert (await cashout_queue(conn, limit=0)).items[0].id == ids[0]  # at least one a page
    assert len((await cashout_queue(conn, limit=1000)).items) == 7


async def test_an_empty_queue(conn):
    assert await one_trip(cashout_queue(conn)) == type(await cashout_queue(conn))((), None)


# --- sync_admins --------------------------------------------------------------------------------


async def test_sync_makes_exactly_the_configured_ids_admins(conn):
    for telegram_id in (ADA, BOLA, CHIDI):
        await seeding.user(conn, telegram_id)
    await seeding.make_admin(conn, ADA)  # an admin no longer configured
    await seeding.make_admin(conn, CHIDI)  # configured and already one

    result = await one_trip(sync_admins(conn, admin_ids={BOLA, CHIDI, DAYO}))

    assert result.promoted == (BOLA,) and result.demoted == (ADA,) and result.missing == (DAYO,)
    assert await flags(conn) == {ADA: False, BOLA: True, CHIDI: True}
    # Twice is the same as once.
    again = await sync_admins(conn, admin_ids=[CHIDI, BOLA, BOLA])
    assert (again.promoted, again.demoted, again.missing) == ((), (), ())
    # No admin configured: nobody is one.
    none = await sync_admins(conn, admin_ids=())
    assert none.demoted == (BOLA, CHIDI) and await flags(conn) == {
        ADA: False,
        BOLA: False,
        CHIDI: False,
    }


async def test_the_movements_follow_the_synced_flags(conn):
    for telegram_id in (ADA, BOLA):
        await seeding.user(conn, telegram_id)
    await seeding.credit(conn, ADA, "USDT", "100")
    cashout_id = await seeding.cashout(conn, ADA, "USDT", "20", fee="1")
    await seeding.make_admin(conn, ADA)
    await sync_admins(conn, admin_ids=[BOLA])

    try:
        await approve_cashout(conn, cashout_id=cashout_id, admin_telegram_id=ADA)
    except NotAParty:
        pass
    else:
        raise AssertionError("a demoted admin approved a cashout")
    done = await approve_cashout(conn, cashout_id=cashout_id, admin_telegram_id=BOLA)
    assert done.status == "approved"
