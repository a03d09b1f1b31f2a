"""Dispute screens: the dispute with its latest 50 messages, and the admin's keyset-paged queue."""

from __future__ import annotations

from decimal import Decimal

import seeding

from bot import db
from bot.data.dispute import (
    DisputePage,
    SenderRole,
    dispute_context,
    open_dispute,
    open_disputes,
    post_dispute_message,
    resolve_dispute,
)
from bot.data.enums import DisputeResolution, DisputeStatus, EscrowStatus, FeeSplit
from bot.data.escrow import Escrow, accept_escrow, create_escrow, fund_escrow_from_wallet
from bot.data.rows import PageCursor
from bot.db import queries

BUYER, SELLER, ADMIN, OTHER_BUYER = 5001, 5002, 5003, 5004
D = Decimal


async def people(conn) -> dict[int, int]:
    ids = {
        BUYER: await seeding.user(conn, BUYER, "Ada"),
        SELLER: await seeding.user(conn, SELLER, ""),  # no first name: shown by username
        ADMIN: await seeding.user(conn, ADMIN, "Moderator"),
        OTHER_BUYER: await seeding.user(conn, OTHER_BUYER, "Chidi"),
    }
    await seeding.make_admin(conn, ADMIN)
    await seeding.credit(conn, BUYER, "USDT", "1000")
    await seeding.credit(conn, OTHER_BUYER, "USDT", "1000")
    return ids


async def accepted(conn, buyer: int = BUYER, amount: str = "100") -> Escrow:
    e = await create_escrow(
        conn,
        buyer_telegram_id=buyer,
        seller_handle=f"@user{SELLER}",
        currency="USDT",
        amount=D(amount),
        description="A phone",
        fee_split=FeeSplit.SPLIT,
    )
    await fund_escrow_from_wallet(
        conn, escrow_id=e.id, telegram_id=buyer, idempotency_key=f"pay-{e.id}"
    )
    return (await accept_escrow(conn, escrow_id=e.id, telegram_id=SELLER)).escrow


async def disputed(conn, buyer: int = BUYER, amount: str = "100") -> int:
    e = await accepted(conn, buyer, amount)
    return (await open_dispute(conn, escrow_id=e.id, telegram_id=buyer, reason="Never came")).id


async def one_trip(call):
    async with db.meter.measure() as m:
        result = await call
    assert m.round_trips == 1, m.statements
    return result


# --- dispute_context ---------------------------------------------------------------------------


async def test_the_dispute_screen_shows_everything_in_one_round_trip(conn):
    ids = await people(conn)
    e = await accepted(conn, amount="100")
    d = await open_dispute(conn, escrow_id=e.id, telegram_id=BUYER, reason="Screen cracked 📱")
    first = await post_dispute_message(conn, dispute_id=d.id, telegram_id=BUYER, body="Look 📷")
    await post_dispute_message(conn, dispute_id=d.id, telegram_id=SELLER, body="It was fine")
    last = await post_dispute_message(conn, dispute_id=d.id, telegram_id=ADMIN, body="Checking")

    ctx = await one_trip(dispute_context(conn, dispute_id=d.id))

    assert ctx.dispute.id == d.id
    assert ctx.dispute.status is DisputeStatus.IN_REVIEW  # the admin's message took it
    assert ctx.dispute.reason == "Screen cracked 📱"
    assert ctx.dispute.resolution is None and ctx.dispute.resolved_at is None
    assert ctx.escrow.id == e.id and ctx.escrow.ref == e.ref
    assert (ctx.escrow.currency, ctx.escrow.amount) == ("USDT", D("100"))
    assert (ctx.escrow.buyer_fee, ctx.escrow.seller_fee) == (e.buyer_fee, e.seller_fee)
    assert ctx.escrow.status is EscrowStatus.DISPUTED
    assert (ctx.buyer.id, ctx.buyer.telegram_id) == (ids[BUYER], BUYER)
    assert (ctx.buyer.display_name, ctx.buyer.username) == ("Ada", f"user{BUYER}")
    assert ctx.seller.id == ids[SELLER]
    assert ctx.seller.display_name == f"user{SELLER}"
    assert (ctx.admin.id, ctx.admin.display_name) == (ids[ADMIN], "Moderator")
    assert [(m.sender_role, m.sender_name, m.body) for m in ctx.messages] == [
        (SenderRole.BUYER, "Ada", "Look 📷"),
        (SenderRole.SELLER, f"user{SELLER}", "It was fine"),
        (SenderRole.ADMIN, "Moderator", "Checking"),
    ]
    assert ctx.messages[0].id == first.id and ctx.messages[-1].id == last.id
    assert ctx.messages[0].created_at == first.created_at
    assert ctx.message_count == 3


async def test_a_fresh_dispute_has_no_admin_and_no_messages(conn):
    await people(conn)
    d = await disputed(conn)
    ctx = await one_trip(dispute_context(conn, dispute_id=d))
    assert ctx.dispute.status is DisputeStatus.OPEN
    assert ctx.admin is None
    assert ctx.messages == () and ctx.message_count == 0


async def test_an_unknown_dispute_is_none_in_one_round_trip(conn):
    assert await one_trip(dispute_context(conn, dispute_id=987654)) is None


async def test_only_the_50_latest_messages_are_shown_oldest_first(conn):
    await people(conn)
    d = await disputed(conn)
    posted = [
        (
            await post_dispute_message(
                conn, dispute_id=d, telegram_id=(BUYER, SELLER)[n % 2], body=f"message {n}"
            )
        ).id
        for n in range(1, 121)
    ]
    ctx = await one_trip(dispute_context(conn, dispute_id=d))
    assert ctx.message_count == 120
    assert len(ctx.messages) == 50
    assert ctx.messages[0].body == "message 71" and ctx.messages[-1].body == "message 120"
    assert [m.id for m in ctx.messages] == posted[70:]


async def test_a_resolved_dispute_shows_its_resolution_and_nothing_of_another(conn):
    await people(conn)
    mine = await disputed(conn)
    other = await disputed(conn, buyer=OTHER_BUYER, amount="50")
    await post_dispute_message(conn, dispute_id=other, telegram_id=OTHER_BUYER, body="not yours")
    await post_dispute_message(conn, dispute_id=mine, telegram_id=BUYER, body="mine")
    await resolve_dispute(conn, dispute_id=mine, admin_telegram_id=ADMIN, buyer_share=D("40"))

    ctx = await one_trip(dispute_context(conn, dispute_id=mine))
    assert ctx.dispute.status is DisputeStatus.RESOLVED
    assert ctx.dispute.resolution is DisputeResolution.SPLIT
    assert ctx.dispute.buyer_share == D("40") and ctx.dispute.resolved_at is not None
    assert ctx.escrow.status is EscrowStatus.COMPLETED and ctx.escrow.amount == D("100")
    assert [m.body for m in ctx.messages] == ["mine"] and ctx.message_count == 1
    assert ctx.buyer.telegram_id == BUYER


# --- open_disputes -----------------------------------------------------------------------------


async def walk(conn, limit: int) -> list[DisputePage]:
    pages, before = [], None
    while True:
        page = await one_trip(open_disputes(conn, before=before, limit=limit))
        pages.append(page)
        if page.next_before is None:
            return pages
        before = PageCursor.decode(page.next_before.encode())  # as callback data carries it


async def test_the_queue_lists_live_disputes_newest_first_with_their_trade(conn):
    await people(conn)
    older = await disputed(conn, amount="100")
    newer = await disputed(conn, buyer=OTHER_BUYER, amount="50")
    msg = await post_dispute_message(conn, dispute_id=older, telegram_id=ADMIN, body="On it")
    gone = await disputed(conn, amount="20")
    await resolve_dispute(conn, dispute_id=gone, admin_telegram_id=ADMIN, buyer_share=D("20"))

    page = await one_trip(open_disputes(conn))
    assert [q.id for q in page.items] == [newer, older]
    assert page.next_before is None
    n, o = page.items
    assert (n.amount, n.currency, n.buyer_name, n.seller_name) == (
        D("50"),
        "USDT",
        "Chidi",
        f"user{SELLER}",
    )
    assert (n.status, n.last_message_at) == (DisputeStatus.OPEN, None)
    assert (o.status, o.last_message_at) == (DisputeStatus.IN_REVIEW, msg.created_at)
    assert o.buyer_name == "Ada" and o.escrow_ref.startswith("ESC-")
    row = await queries.dispute_test_row(conn, dispute_id=older)
    assert o.escrow_id == row["escrow_id"] and o.created_at == row["created_at"]


async def test_an_empty_queue_is_one_empty_page(conn):
    page = await one_trip(open_disputes(conn))
    assert page.items == () and page.next_before is None


async def test_paging_with_equal_timestamps_neither_repeats_nor_skips(conn):
    await people(conn)
    made = [await disputed(conn, amount="10") for _ in range(7)]
    # Five opened in the very same instant, between an older and a newer one.
    same = (await queries.dispute_test_row(conn, dispute_id=made[3]))["created_at"]
    await queries.dispute_test_set_created_at(conn, dispute_ids=made[1:6], created_at=same)

    pages = await walk(conn, limit=2)
    assert [len(p.items) for p in pages] == [2, 2, 2, 1]
    seen = [q.id for p in pages for q in p.items]
    assert sorted(seen) == sorted(made)  # each exactly once
    keys = [(q.created_at, q.id) for p in pages for q in p.items]
    assert keys == sorted(keys, reverse=True)
    # The last made is newest; the five tied follow by id, newest first; the first made last.
    assert seen == [made[6], *reversed(made[1:6]), made[0]]
    assert pages[0].next_before == PageCursor(same, made[5])
    # One per page: more executions than a prepared statement takes to get a generic plan.
    assert [q.id for p in await walk(conn, limit=1) for q in p.items] == seen


async def test_a_page_of_exactly_the_rest_says_there_is_no_next(conn):
    await people(conn)
    made = [await disputed(conn, amount="10") for _ in range(4)]
    pages = await walk(conn, limit=2)
    assert [[q.id for q in p.items] for p in pages] == [made[:1:-1], made[1::-1]]
    assert pages[-1].next_before is None
