"""The dispute flow through the real Application: opening one, the chat both ways with the
others notified, an admin's resolution, strangers and blocked users refused, `/disputes`."""

from __future__ import annotations

from decimal import Decimal

import pytest
import seeding
from conftest import ADMIN_ID

from bot.data.dispute import my_disputes, open_dispute, post_dispute_message, resolve_dispute
from bot.data.enums import FeeSplit
from bot.data.escrow import Escrow, accept_escrow, create_escrow, fund_escrow_from_wallet
from bot.data.rows import PageCursor
from bot.db import meter, queries
from bot.handlers import dispute as dispute_handlers
from bot.handlers.ui import ADMINS_ONLY, BLOCKED, NOT_REGISTERED

BUYER, SELLER, STRANGER = 7101, 7102, 7103
D = Decimal


async def people(conn) -> None:
    await seeding.user(conn, BUYER, "Ada")
    await seeding.user(conn, SELLER, "Bola")
    await seeding.user(conn, STRANGER, "Chidi")
    await seeding.user(conn, ADMIN_ID, "Root")
    await seeding.make_admin(conn, ADMIN_ID)
    await seeding.credit(conn, BUYER, "USDT", "1000")


async def accepted(conn, amount: str = "100") -> Escrow:
    e = await create_escrow(
        conn,
        buyer_telegram_id=BUYER,
        seller_handle=f"user{SELLER}",
        currency="USDT",
        amount=D(amount),
        description="A phone",
        fee_split=FeeSplit.SPLIT,
    )
    await fund_escrow_from_wallet(
        conn, escrow_id=e.id, telegram_id=BUYER, idempotency_key=f"pay-{e.id}"
    )
    return (await accept_escrow(conn, escrow_id=e.id, telegram_id=SELLER)).escrow


async def disputed(conn, amount: str = "100") -> tuple[Escrow, int]:
    e = await accepted(conn, amount)
    d = await open_dispute(conn, escrow_id=e.id, telegram_id=BUYER, reason="Never came")
    return e, d.id


async def available(conn, telegram_id: int) -> Decimal:
    return await queries.escrow_test_available(conn, telegram_id=telegram_id, currency="USDT")


async def dispute_row(conn, dispute_id: int) -> dict:
    return dict(await queries.dispute_test_row(conn, dispute_id=dispute_id))


async def escrow_status(conn, escrow_id: int) -> str:
    return (await queries.escrow_test_state(conn, escrow_id=escrow_id))["escrow"]["status"]


# --- the whole dispute ---------------------------------------------------------------------


async def test_a_whole_dispute_from_opening_to_a_split(conn, chat):
    await people(conn)
    e = await accepted(conn)
    buyer, seller, admin = chat(BUYER, "Ada"), chat(SELLER, "Bola"), chat(ADMIN_ID, "Root")
    steps = []

    # The escrow screen's button (another area's screen: the menu stands in for it here).
    await buyer.send("/menu")
    step = await buyer.press(f"dispute:open:{e.id}")
    steps.append(step)
    assert step.round_trips == 0 and "what went wrong" in step.text

    # Bad reasons: a clear message each, the same step, nothing written.
    for bad, says in [("   ", "few words"), ("😡😡😡", "in words"), ("x" * 4000, "1,000")]:
        step = await buyer.send(bad)
        steps.append(step)
        assert step.round_trips == 0 and says in step.text, bad
    assert await escrow_status(conn, e.id) == "accepted"

    step = await buyer.send("The phone never <b>arrived</b>")
    steps.append(step)
    assert step.round_trips == 1
    assert "Dispute opened" in step.text and "Dispute #" in step.text
    assert "The phone never &lt;b&gt;arrived&lt;/b&gt;" in step.text
    assert "dispute:resolve" not in " ".join(step.screen.callbacks)  # not for a party
    [to_seller] = step.to(SELLER)
    assert "Ada (buyer) opened dispute" in to_seller and e.ref in to_seller
    [to_admin] = step.to(ADMIN_ID)
    assert "New dispute" in to_admin and "100 USDT" in to_admin
    assert await escrow_status(conn, e.id) == "disputed"
    dispute_id = int(step.screen.button("Refresh").rsplit(":", 1)[1])

    # The buyer writes: the seller and, with no admin on it yet, every configured admin told.
    step = await buyer.send("Any news?")
    steps.append(step)
    assert step.round_trips == 1
    assert "Posted" in step.text and "Any news?" in step.text and "(the last 1 of 1)" in step.text
    assert "Any news?" in step.to(SELLER)[0] and "Any news?" in step.to(ADMIN_ID)[0]

    # The seller finds it through /disputes and answers.
    step = await seller.send("/disputes")
    steps.append(step)
    assert step.round_trips == 1 and e.ref in step.text and "you are the seller" in step.text
    step = await seller.tap(e.ref)
    steps.append(step)
    assert step.round_trips == 1 and "Any news?" in step.text
    step = await seller.send("I shipped it <i>on Monday</i> & have a receipt")
    steps.append(step)
    assert step.round_trips == 1
    assert "I shipped it &lt;i&gt;on Monday&lt;/i&gt; &amp; have a receipt" in step.text
    assert "on Monday" in step.to(BUYER)[0] and "on Monday" in step.to(ADMIN_ID)[0]

    # The admin: the queue, the chat (with the resolve buttons), a message that takes it.
    step = await admin.send("/disputes")
    steps.append(step)
    assert step.round_trips == 1 and "Dispute queue" in step.text and e.ref in step.text
    step = await admin.press(f"dispute:view:{dispute_id}")
    steps.append(step)
    assert step.round_trips == 1 and "(the last 2 of 2)" in step.text
    assert "Admin: not assigned yet" in step.text
    assert f"dispute:resolve:{dispute_id}:split" in step.screen.callbacks
    step = await admin.send("Please both send photos")
    steps.append(step)
    assert step.round_trips == 1 and "Admin: Root" in step.text and "in review" in step.text
    assert "send photos" in step.to(BUYER)[0] and "send photos" in step.to(SELLER)[0]
    row = await dispute_row(conn, dispute_id)
    assert row["status"] == "in_review" and row["messages"] == 3

    # The admin splits: a bad share each refused with nothing changed, then 40%.
    step = await admin.tap("Split")
    steps.append(step)
    assert step.round_trips == 0 and "how much of 100 USDT" in step.text
    for bad, says in [
        ("lots", "not an amount"),
        ("-5", "more than zero"),
        ("0.0000001", "6 decimal places"),
        ("100", "refund"),
        ("250", "refund"),
        ("100%", "refund"),
        ("0%", "release"),
        ("😀", "not an amount"),
        ("9" * 4000, "far too long"),
    ]:
        step = await admin.send(bad)
        steps.append(step)
        assert step.round_trips == 0 and says in step.text, bad
    step = await admin.send("40%")
    steps.append(step)
    assert step.round_trips == 0 and "the buyer gets 40 USDT" in step.text
    assert await escrow_status(conn, e.id) == "disputed"

    step = await admin.tap("Confirm")
    steps.append(step)
    assert step.round_trips == 1
    assert "resolved" in step.text and "completed" in step.text
    seller_gets = D(60) - e.seller_fee
    assert "Ada receives 40 USDT" in step.text
    assert f"Bola receives {seller_gets.normalize():f} USDT" in step.text
    assert "You receive 40 USDT" in step.to(BUYER)[0]
    assert f"You receive {seller_gets.normalize():f} USDT" in step.to(SELLER)[0]
    assert await available(conn, BUYER) == D(1000) - D(100) - e.buyer_fee + D(40)
    assert await available(conn, SELLER) == seller_gets
    row = await dispute_row(conn, dispute_id)
    assert row["status"] == "resolved" and row["buyer_share"] == D(40)

    # The budget of SCREENS.md: 1 per message posted and per screen, 0 per step, 1 to resolve.
    assert [s.round_trips for s in steps].count(1) == 9
    assert sum(s.round_trips for s in steps) == 9


@pytest.mark.parametrize(
    ("label", "buyer_gets_all", "escrow_after"),
    [("Release to seller", False, "completed"), ("Refund buyer", True, "refunded")],
)
async def test_release_and_refund_are_confirmed_then_one_round_trip(
    conn, chat, label, buyer_gets_all, escrow_after
):
    await people(conn)
    e, dispute_id = await disputed(conn)
    admin = chat(ADMIN_ID, "Root")
    await admin.press(f"dispute:view:{dispute_id}", on=(await admin.send("/disputes")).screen)

    ask = await admin.tap(label)
    assert ask.round_trips == 0 and "cannot be undone" in ask.text
    back = await admin.tap("Back")
    assert back.round_trips == 0 and f"Dispute #{dispute_id}" in back.text
    await admin.tap(label)
    done = await admin.tap("Confirm")

    assert done.round_trips == 1
    assert await escrow_status(conn, e.id) == escrow_after
    if buyer_gets_all:
        assert await available(conn, BUYER) == D(1000)
        assert "You receive 0 USDT" in done.to(SELLER)[0]
    else:
        assert await available(conn, SELLER) == D(100) - e.seller_fee
        assert "You receive 0 USDT" in done.to(BUYER)[0]


# --- the cache is never trusted with money ----------------------------------------------------


async def test_a_dispute_resolved_behind_the_confirm_is_said_and_shown_fresh(conn, chat):
    await people(conn)
    e, dispute_id = await disputed(conn)
    admin = chat(ADMIN_ID, "Root")
    await admin.send("/disputes")
    await admin.press(f"dispute:view:{dispute_id}")
    await admin.tap("Refund buyer")
    # Another admin (here: the data function) releases it first.
    await resolve_dispute(conn, dispute_id=dispute_id, admin_telegram_id=ADMIN_ID, buyer_share=D(0))
    seller_after = await available(conn, SELLER)

    step = await admin.tap("Confirm")

    assert step.round_trips == 2  # the refused movement, then the fresh dispute
    assert "completed: it cannot resolve" in step.text and "Resolved: <b>release</b>" in step.text
    assert step.to(BUYER) == [] and step.to(SELLER) == []
    assert await available(conn, SELLER) == seller_after
    assert await escrow_status(conn, e.id) == "completed"


async def test_a_post_into_a_dispute_resolved_meanwhile_is_refused_and_refreshed(conn, chat):
    await people(conn)
    _, dispute_id = await disputed(conn)
    buyer = chat(BUYER, "Ada")
    await buyer.send("/disputes")
    await buyer.tap("⚖️")
    await resolve_dispute(conn, dispute_id=dispute_id, admin_telegram_id=ADMIN_ID, buyer_share=D(0))

    step = await buyer.send("Hello?")
    assert step.round_trips == 2
    assert "cannot post" in step.text and "This dispute is closed" in step.text
    assert step.to(SELLER) == [] and step.to(ADMIN_ID) == []
    assert (await dispute_row(conn, dispute_id))["messages"] == 0

    again = await buyer.send("Hello?")  # the fresh screen knows: no query at all
    assert again.round_trips == 0 and "closed" in again.text


# --- input at the chat step ---------------------------------------------------------------------


async def test_chat_input_is_checked_before_anything_is_posted(conn, chat):
    await people(conn)
    _, dispute_id = await disputed(conn)
    buyer = chat(BUYER, "Ada")
    await buyer.send("/disputes")
    await buyer.tap("⚖️")

    for bad, says in [("🙂🙂", "in words"), ("y" * 4001, "4,000"), (" ", "few words")]:
        step = await buyer.send(bad)
        assert step.round_trips == 0 and says in step.text and step.to(SELLER) == []
    assert (await dispute_row(conn, dispute_id))["messages"] == 0

    longest = await buyer.send("z" * 4000)  # at the limit: posted, and the screen still fits
    assert longest.round_trips == 1 and "(the last 1 of 1)" in longest.text
    assert "z" * 900 in longest.to(SELLER)[0]


async def test_many_long_messages_show_the_latest_that_fit(conn, chat):
    await people(conn)
    _, dispute_id = await disputed(conn)
    for n in range(60):
        body = f"message {n} " + "<&>" * 1300
        await post_dispute_message(conn, dispute_id=dispute_id, telegram_id=BUYER, body=body)
    buyer = chat(BUYER, "Ada")
    await buyer.send("/disputes")
    step = await buyer.tap("⚖️")
    assert step.round_trips == 1
    assert "message 59" in step.text and "message 0 " not in step.text
    assert "of 60)" in step.text


# --- who may see and do what ---------------------------------------------------------------


async def test_a_stranger_sees_nothing_and_changes_nothing(conn, chat):
    await people(conn)
    e, dispute_id = await disputed(conn)
    stranger = chat(STRANGER, "Chidi")
    menu = await stranger.send("/menu")

    for data in (f"dispute:view:{dispute_id}", "dispute:view:987654"):
        step = await stranger.press(data, on=menu.screen)
        assert step.round_trips == 1 and step.replies == []
        assert step.alerts == ["You are not a party to this dispute."]
    for data in (
        f"dispute:resolve:{dispute_id}:refund",
        f"dispute:resolve:{dispute_id}:split",
        f"dispute:confirm:{dispute_id}",
    ):
        step = await stranger.press(data, on=menu.screen)
        assert step.round_trips == 0 and step.replies == [] and step.alerts == [ADMINS_ONLY]

    # The parties may not resolve either.
    buyer = chat(BUYER, "Ada")
    await buyer.send("/disputes")
    await buyer.tap("⚖️")
    step = await buyer.press(f"dispute:resolve:{dispute_id}:refund")
    assert step.round_trips == 0 and step.alerts == [ADMINS_ONLY]

    # A stranger's dispute on someone else's escrow: refused by the movement.
    other = await accepted(conn)
    await stranger.press(f"dispute:open:{other.id}", on=menu.screen)
    step = await stranger.send("I want in")
    assert step.round_trips == 1 and "not a party to this escrow" in step.text
    assert step.to(BUYER) == [] and step.to(SELLER) == [] and step.to(ADMIN_ID) == []
    assert await escrow_status(conn, other.id) == "accepted"
    assert (await dispute_row(conn, dispute_id))["status"] == "open"
    assert await escrow_status(conn, e.id) == "disputed"


async def test_a_dispute_cannot_be_opened_twice(conn, chat):
    await people(conn)
    e, _ = await disputed(conn)
    seller = chat(SELLER, "Bola")
    await seller.send("/menu")
    await seller.press(f"dispute:open:{e.id}")
    step = await seller.send("Me too")
    assert step.round_trips == 1 and "is disputed: it cannot dispute" in step.text
    assert step.to(BUYER) == []


async def test_blocked_users_get_one_clear_message(conn, chat):
    await people(conn)
    _, dispute_id = await disputed(conn)
    fresh = await accepted(conn)
    buyer = chat(BUYER, "Ada")
    listed = await buyer.send("/disputes")
    await seeding.block(conn, BUYER)

    step = await buyer.press(f"dispute:view:{dispute_id}", on=listed.screen)
    assert step.round_trips == 1 and step.text == BLOCKED and step.screen.callbacks == []
    step = await buyer.send("/disputes")
    assert step.round_trips == 1 and step.text == BLOCKED and step.screen.callbacks == []
    await buyer.press(f"dispute:open:{fresh.id}")
    step = await buyer.send("Something is wrong")
    assert step.round_trips == 1 and step.text == BLOCKED and step.to(SELLER) == []
    assert await escrow_status(conn, fresh.id) == "accepted"


async def test_unknown_users_are_sent_to_start(chat):
    step = await chat(7199).send("/disputes")
    assert step.round_trips == 1 and step.text == NOT_REGISTERED


# --- /disputes for a user -----------------------------------------------------------------


async def test_my_disputes_pages_with_older_and_says_when_there_are_none(conn, chat, monkeypatch):
    await people(conn)
    buyer = chat(BUYER, "Ada")
    none = await buyer.send("/disputes")
    assert none.round_trips == 1 and "no open disputes" in none.text
    assert "escrow:list" in none.screen.callbacks

    made = [(await disputed(conn, amount=str(10 + n)))[1] for n in range(3)]
    monkeypatch.setattr(dispute_handlers, "MY_PAGE", 2)
    first = await buyer.send("/disputes")
    assert first.round_trips == 1
    shown = [int(c.rsplit(":", 1)[1]) for c in first.screen.callbacks if "dispute:view" in c]
    assert shown == made[:0:-1]  # newest first
    older = await buyer.tap("Older")
    assert older.round_trips == 1
    assert [c for c in older.screen.callbacks if "dispute:view" in c] == [f"dispute:view:{made[0]}"]
    assert not any(c.startswith("dispute:mine:") for c in older.screen.callbacks)


async def test_my_disputes_is_one_round_trip_and_only_the_users_own(conn):
    await people(conn)
    e, dispute_id = await disputed(conn)
    await accepted(conn)  # not disputed: not listed
    async with meter.measure() as m:
        page = await my_disputes(conn, telegram_id=SELLER)
    assert m.round_trips == 1
    assert [(i.dispute_id, i.escrow_id, i.role) for i in page.items] == [
        (dispute_id, e.id, "seller")
    ]
    assert page.items[0].counterparty_name == "Ada" and page.items[0].decimals == 6
    assert page.next_before is None and not page.is_blocked and page.onboarding_complete
    assert (await my_disputes(conn, telegram_id=STRANGER)).items == ()
    assert await my_disputes(conn, telegram_id=424242) is None
    # A cursor survives callback data.
    cursor = PageCursor(page.items[0].escrow_created_at, page.items[0].escrow_id)
    later = await my_disputes(conn, telegram_id=SELLER, before=PageCursor.decode(cursor.encode()))
    assert later.items == ()


# --- whom a post reaches ----------------------------------------------------------------------


async def test_a_post_reaches_every_admin_until_one_takes_the_dispute(conn, chat, bot):
    from bot.handlers.ui import Settings

    second_admin = 7190
    await people(conn)
    await seeding.user(conn, second_admin, "Sade")
    await seeding.make_admin(conn, second_admin)
    bot.bot_data["settings"] = Settings(admin_ids=frozenset({ADMIN_ID, second_admin}))
    _, dispute_id = await disputed(conn)
    buyer, admin = chat(BUYER, "Ada"), chat(ADMIN_ID, "Root")
    await buyer.send("/disputes")
    await buyer.tap("⚖️")

    before = await buyer.send("Hello admins")
    assert before.to(ADMIN_ID) and before.to(second_admin) and before.to(SELLER)

    await admin.send("/disputes")
    await admin.press(f"dispute:view:{dispute_id}")
    took = await admin.send("I have it")
    assert took.to(BUYER) and took.to(SELLER) and took.to(second_admin) == []

    # The buyer's chat was fetched before the admin took it: the post itself answers who
    # handles the dispute now, and only that admin is told.
    after = await buyer.send("Thanks")
    assert after.round_trips == 1 and "Admin: Root" in after.text
    assert after.to(ADMIN_ID) and after.to(SELLER) and after.to(second_admin) == []


async def test_a_party_who_blocked_the_bot_does_not_fail_the_post(conn, chat, telegram):
    await people(conn)
    _, dispute_id = await disputed(conn)
    telegram.blocked_by.add(SELLER)
    buyer = chat(BUYER, "Ada")
    await buyer.send("/disputes")
    await buyer.tap("⚖️")
    step = await buyer.send("Are you there?")
    assert step.round_trips == 1 and "Posted" in step.text
    assert (await dispute_row(conn, dispute_id))["messages"] == 1


async def test_cancel_at_the_reason_step_changes_nothing(conn, chat):
    await people(conn)
    e = await accepted(conn)
    buyer = chat(BUYER, "Ada")
    await buyer.send("/menu")
    await buyer.press(f"dispute:open:{e.id}")
    cancelled = await buyer.send("/cancel")
    assert cancelled.round_trips == 0 and "Cancelled" in cancelled.text
    later = await buyer.send("This is no reason any more")
    assert later.round_trips == 0 and later.replies == []
    assert await escrow_status(conn, e.id) == "accepted"
