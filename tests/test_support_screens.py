"""Support screen: the live ticket, its 20 latest messages oldest first, unread admin replies."""

from __future__ import annotations

import seeding

from bot import db
from bot.data.enums import TicketStatus
from bot.data.support import close_ticket, open_ticket, post_support_message, support_context

ALICE, STAFF, EVE = 6001, 6002, 6003


async def people(conn) -> dict[int, int]:
    ids = {
        ALICE: await seeding.user(conn, ALICE, "Alice"),
        STAFF: await seeding.user(conn, STAFF, "Staff"),
        EVE: await seeding.user(conn, EVE, ""),
    }
    await seeding.make_admin(conn, STAFF)
    return ids


async def one_trip(call):
    async with db.meter.measure() as m:
        result = await call
    assert m.round_trips == 1, m.statements
    return result


async def test_a_user_without_tickets_sees_an_empty_screen_in_one_round_trip(conn):
    ids = await people(conn)
    ctx = await one_trip(support_context(conn, telegram_id=ALICE))
    assert (ctx.user_id, ctx.display_name) == (ids[ALICE], "Alice")
    assert ctx.ticket is None and ctx.messages == () and ctx.unread_replies == 0
    # No first name: the username stands in.
    assert (await support_context(conn, telegram_id=EVE)).display_name == f"user{EVE}"


async def test_an_unknown_user_is_none_in_one_round_trip(conn):
    assert await one_trip(support_context(conn, telegram_id=999_999)) is None


async def test_the_live_ticket_with_its_messages_and_unread_replies(conn):
    ids = await people(conn)
    t = await open_ticket(conn, telegram_id=ALICE, subject="Cashout 🐢", body="Where is it? 🤔")
    read = await post_support_message(conn, ticket_id=t.id, telegram_id=STAFF, body="Looking")
    mine = await post_support_message(conn, ticket_id=t.id, telegram_id=ALICE, body="Thanks")
    unread = await post_support_message(conn, ticket_id=t.id, telegram_id=STAFF, body="Sent 🚀")

    ctx = await one_trip(support_context(conn, telegram_id=ALICE))
    assert ctx.ticket.id == t.id and ctx.ticket.user_id == ids[ALICE]
    assert ctx.ticket.subject == "Cashout 🐢"
    assert ctx.ticket.status is TicketStatus.ANSWERED
    assert ctx.ticket.admin_id == ids[STAFF] and ctx.ticket.closed_at is None
    assert [(m.from_admin, m.body) for m in ctx.messages] == [
        (False, "Where is it? 🤔"),
        (True, "Looking"),
        (False, "Thanks"),
        (True, "Sent 🚀"),
    ]
    assert [m.id for m in ctx.messages[1:]] == [read.id, mine.id, unread.id]
    assert ctx.messages[-1].created_at == unread.created_at
    # Alice's answer marked the first reply read; the last one she has not seen.
    assert ctx.messages[1].read_at is not None
    assert ctx.messages[3].read_at is None
    assert ctx.unread_replies == 1


async def test_only_the_20_latest_of_25_messages_are_shown_oldest_first(conn):
    await people(conn)
    t = await open_ticket(conn, telegram_id=ALICE, subject="Long", body="message 1")
    posted = []
    for n in range(2, 26):
        # Staff and Alice take turns; the staff writes the last three.
        who = STAFF if n % 2 == 0 or n >= 23 else ALICE
        m = await post_support_message(conn, ticket_id=t.id, telegram_id=who, body=f"message {n}")
        posted.append(m.id)

    ctx = await one_trip(support_context(conn, telegram_id=ALICE))
    assert len(ctx.messages) == 20
    assert [m.id for m in ctx.messages] == posted[4:]
    assert ctx.messages[0].body == "message 6" and ctx.messages[-1].body == "message 25"
    # Alice last wrote message 21, which marked the replies before it read.
    assert all(m.read_at is not None for m in ctx.messages[:16] if m.from_admin)
    assert ctx.unread_replies == 4
    assert [m.body for m in ctx.messages if m.from_admin and m.read_at is None] == [
        "message 22",
        "message 23",
        "message 24",
        "message 25",
    ]


async def test_a_closed_ticket_leaves_the_screen_with_its_unread_replies(conn):
    await people(conn)
    t = await open_ticket(conn, telegram_id=ALICE, subject="Done", body="Help")
    await post_support_message(conn, ticket_id=t.id, telegram_id=STAFF, body="Fixed")
    await close_ticket(conn, ticket_id=t.id, telegram_id=STAFF)

    ctx = await one_trip(support_context(conn, telegram_id=ALICE))
    assert ctx.ticket is None and ctx.messages == () and ctx.unread_replies == 0

    again = await open_ticket(conn, telegram_id=ALICE, subject="Again", body="New issue")
    ctx = await support_context(conn, telegram_id=ALICE)
    assert ctx.ticket.id == again.id
    assert [m.body for m in ctx.messages] == ["New issue"]


async def test_nothing_leaks_between_users(conn):
    await people(conn)
    a = await open_ticket(conn, telegram_id=ALICE, subject="Alice's", body="from Alice")
    e = await open_ticket(conn, telegram_id=EVE, subject="Eve's", body="from Eve")
    await post_support_message(conn, ticket_id=e.id, telegram_id=STAFF, body="to Eve")
    await post_support_message(conn, ticket_id=e.id, telegram_id=STAFF, body="to Eve again")

    alice = await support_context(conn, telegram_id=ALICE)
    eve = await support_context(conn, telegram_id=EVE)
    assert alice.ticket.id == a.id and [m.body for m in alice.messages] == ["from Alice"]
    assert alice.unread_replies == 0
    assert eve.ticket.id == e.id
    assert [m.body for m in eve.messages] == ["from Eve", "to Eve", "to Eve again"]
    assert eve.unread_replies == 2
    # The admin's own screen shows the admin's tickets, not the ones they answer.
    staff = await support_context(conn, telegram_id=STAFF)
    assert staff.ticket is None and staff.unread_replies == 0
