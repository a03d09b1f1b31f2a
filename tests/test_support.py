"""Support movements: one live ticket per user, owner and admins only, nothing on refusal."""

from __future__ import annotations

import asyncio

import pytest
import seeding

from bot import db
from bot.data.enums import TicketStatus
from bot.data.errors import Duplicate, Invalid, NotAParty, NotFound, WrongStatus
from bot.data.support import close_ticket, open_ticket, post_support_message
from bot.db import queries

ALICE, STAFF, EVE = 3001, 3002, 3003


async def ticket_row(conn, ticket_id: int):
    return await queries.support_test_ticket(conn, ticket_id=ticket_id)


async def counts(conn, telegram_id: int) -> tuple[int, int]:
    row = await queries.support_test_counts(conn, telegram_id=telegram_id)
    return row["tickets"], row["messages"]


@pytest.fixture
async def people(conn):
    await seeding.user(conn, ALICE)
    await seeding.user(conn, STAFF)
    await seeding.user(conn, EVE)
    await seeding.make_admin(conn, STAFF)


async def test_open_ticket_creates_it_with_its_first_message_in_one_round_trip(conn, people):
    async with db.meter.measure() as m:
        t = await open_ticket(
            conn, telegram_id=ALICE, subject=" Cashout late ", body="Where is it?"
        )
    assert m.round_trips == 1
    assert t.status is TicketStatus.OPEN and t.subject == "Cashout late" and t.admin_id is None
    row = await ticket_row(conn, t.id)
    assert row["messages"] == 1 and row["user_id"] == t.user_id


async def test_a_second_live_ticket_is_a_duplicate_and_writes_nothing(conn, people):
    await open_ticket(conn, telegram_id=ALICE, subject="One", body="first")
    with pytest.raises(Duplicate):
        await open_ticket(conn, telegram_id=ALICE, subject="Two", body="second")
    assert await counts(conn, ALICE) == (1, 1)


async def test_concurrent_openings_make_one_ticket(pool, people):
    results = await asyncio.gather(
        *(open_ticket(pool, telegram_id=ALICE, subject=f"S{i}", body="hi") for i in range(6)),
        return_exceptions=True,
    )
    opened = [r for r in results if not isinstance(r, Exception)]
    assert len(opened) == 1
    assert all(isinstance(r, Duplicate) for r in results if isinstance(r, Exception))
    assert await counts(pool, ALICE) == (1, 1)


async def test_after_closing_a_new_ticket_may_be_opened(conn, people):
    first = await open_ticket(conn, telegram_id=ALICE, subject="One", body="first")
    async with db.meter.measure() as m:
        closed = await close_ticket(conn, ticket_id=first.id, telegram_id=ALICE)
    assert m.round_trips == 1
    assert closed.status is TicketStatus.CLOSED and closed.closed_at is not None
    second = await open_ticket(conn, telegram_id=ALICE, subject="Two", body="second")
    assert second.id != first.id
    assert await counts(conn, ALICE) == (2, 2)


@pytest.mark.parametrize(
    ("subject", "body"), [("", "body"), ("s", ""), ("s" * 201, "b"), ("s", "  ")]
)
async def test_bad_subject_or_body_is_refused(conn, people, subject, body):
    with pytest.raises(Invalid):
        await open_ticket(conn, telegram_id=ALICE, subject=subject, body=body)
    assert await counts(conn, ALICE) == (0, 0)


async def test_a_4001_character_body_is_refused_and_nothing_written(conn, people):
    with pytest.raises(Invalid):
        await open_ticket(conn, telegram_id=ALICE, subject="Long", body="x" * 4001)
    assert await counts(conn, ALICE) == (0, 0)
    t = await open_ticket(conn, telegram_id=ALICE, subject="Long", body="x" * 4000)
    with pytest.raises(Invalid):
        await post_support_message(conn, ticket_id=t.id, telegram_id=ALICE, body="🙂" * 4001)
    assert await counts(conn, ALICE) == (1, 1)


async def test_an_unknown_user_cannot_open(conn):
    with pytest.raises(NotFound):
        await open_ticket(conn, telegram_id=ALICE, subject="s", body="b")


async def test_admin_reply_answers_and_assigns_then_owner_reply_reopens_and_reads(conn, people):
    t = await open_ticket(conn, telegram_id=ALICE, subject="Help", body="Hello 👋")
    async with db.meter.measure() as m:
        reply = await post_support_message(
            conn, ticket_id=t.id, telegram_id=STAFF, body="Looking into it 🔍"
        )
    assert m.round_trips == 1
    assert reply.from_admin and reply.ticket_status is TicketStatus.ANSWERED
    assert reply.body == "Looking into it 🔍"
    row = await ticket_row(conn, t.id)
    assert row["status"] == "answered" and row["admin_id"] == reply.sender_id
    assert row["unread_admin_replies"] == 1

    answer = await post_support_message(conn, ticket_id=t.id, telegram_id=ALICE, body="Thanks 🙏🏽")
    assert not answer.from_admin and answer.ticket_status is TicketStatus.OPEN
    assert answer.body == "Thanks 🙏🏽"
    row = await ticket_row(conn, t.id)
    assert row["status"] == "open" and row["unread_admin_replies"] == 0 and row["messages"] == 3
    # The ticket keeps the admin who took it.
    assert row["admin_id"] == reply.sender_id


async def test_a_second_admin_does_not_take_over_the_ticket(conn, people):
    await seeding.make_admin(conn, EVE)
    t = await open_ticket(conn, telegram_id=ALICE, subject="Help", body="Hello")
    first = await post_support_message(conn, ticket_id=t.id, telegram_id=STAFF, body="Mine")
    await post_support_message(conn, ticket_id=t.id, telegram_id=EVE, body="Also here")
    assert (await ticket_row(conn, t.id))["admin_id"] == first.sender_id


async def test_a_stranger_can_neither_post_nor_close(conn, people):
    t = await open_ticket(conn, telegram_id=ALICE, subject="Help", body="Hello")
    with pytest.raises(NotAParty):
        await post_support_message(conn, ticket_id=t.id, telegram_id=EVE, body="Hi")
    with pytest.raises(NotAParty):
        await post_support_message(conn, ticket_id=t.id, telegram_id=9999, body="Hi")
    with pytest.raises(NotAParty):
        await close_ticket(conn, ticket_id=t.id, telegram_id=EVE)
    row = await ticket_row(conn, t.id)
    assert row["messages"] == 1 and row["status"] == "open"


async def test_an_unknown_ticket_is_not_found(conn, people):
    with pytest.raises(NotFound):
        await post_support_message(conn, ticket_id=424242, telegram_id=ALICE, body="Hi")
    with pytest.raises(NotFound):
        await close_ticket(conn, ticket_id=424242, telegram_id=ALICE)


async def test_a_closed_ticket_takes_no_messages_and_no_second_close(conn, people):
    t = await open_ticket(conn, telegram_id=ALICE, subject="Help", body="Hello")
    closed = await close_ticket(conn, ticket_id=t.id, telegram_id=STAFF)
    assert closed.status is TicketStatus.CLOSED
    with pytest.raises(WrongStatus) as e:
        await post_support_message(conn, ticket_id=t.id, telegram_id=ALICE, body="Still there?")
    assert e.value.status == "closed"
    with pytest.raises(WrongStatus):
        await close_ticket(conn, ticket_id=t.id, telegram_id=ALICE)
    row = await ticket_row(conn, t.id)
    assert row["messages"] == 1 and row["closed_at"] == closed.closed_at
