"""Support chat through the real Application: tickets, messages both ways, closing, refusals."""

from __future__ import annotations

import pytest
import seeding
from conftest import ADMIN_ID

from bot.data.onboarding import register_user
from bot.data.support import close_ticket, open_ticket, post_support_message
from bot.db import queries

ALICE, EVE, NEWBIE = 401, 402, 403


@pytest.fixture
async def people(conn):
    await seeding.user(conn, ALICE, "Alice")
    await seeding.user(conn, EVE, "Eve")
    await seeding.user(conn, ADMIN_ID, "Root")
    await seeding.make_admin(conn, ADMIN_ID)


async def counts(conn, telegram_id: int = ALICE) -> tuple[int, int]:
    row = await queries.support_test_counts(conn, telegram_id=telegram_id)
    return row["tickets"], row["messages"]


async def ticket_of(conn, ticket_id: int):
    return await queries.support_test_ticket(conn, ticket_id=ticket_id)


async def live_ticket_id(conn, telegram_id: int = ALICE) -> int:
    return (await queries.support_context(conn, telegram_id=telegram_id))["id"]


async def test_a_new_ticket_costs_one_round_trip_to_open_and_one_to_file(conn, people, chat):
    alice = chat(ALICE, "Alice", username="alice")
    steps = []

    screen = await alice.send("/support")
    steps.append(screen)
    assert screen.round_trips == 1
    assert "no open ticket" in screen.text
    assert screen.screen.callbacks == ["support:new", "menu:open"]

    ask = await alice.tap("New ticket")
    steps.append(ask)
    assert ask.round_trips == 0 and "subject" in ask.text

    subject = await alice.send("Cashout <stuck> & late")
    steps.append(subject)
    assert subject.round_trips == 0
    assert "Cashout &lt;stuck&gt; &amp; late" in subject.text

    filed = await alice.send("Where is my <b>money</b>?")
    steps.append(filed)
    assert filed.round_trips == 1
    ticket_id = await live_ticket_id(conn)
    assert f"Ticket #{ticket_id} opened" in filed.text
    assert filed.screen.callbacks == [f"support:close:{ticket_id}", "menu:open"]

    assert [s.round_trips for s in steps] == [1, 0, 0, 1]
    assert sum(s.round_trips for s in steps) == 2
    assert await counts(conn) == (1, 1)
    # The admin hears of it, escaped, with a Reply button.
    [note] = filed.to(ADMIN_ID)
    assert f"New ticket #{ticket_id}" in note and "@alice" in note
    assert "Where is my &lt;b&gt;money&lt;/b&gt;?" in note
    assert alice.telegram.sent_to(ADMIN_ID)[-1].callbacks == [f"support:reply:{ticket_id}"]


async def test_the_menu_button_opens_support(people, chat):
    alice = chat(ALICE, "Alice")
    await alice.send("/menu")
    step = await alice.tap("Support")
    assert step.round_trips == 1 and "💬 <b>Support</b>" in step.text


async def test_messages_both_ways_with_an_admin_reply(conn, people, chat):
    t = await open_ticket(conn, telegram_id=ALICE, subject="Late <cashout>", body="Help & fast")
    alice, admin = chat(ALICE, "Alice"), chat(ADMIN_ID, "Root")

    screen = await alice.send("/support")
    assert screen.round_trips == 1
    assert f"Ticket #{t.id}: <b>Late &lt;cashout&gt;</b> (open)" in screen.text
    assert "Help &amp; fast" in screen.text

    sent = await alice.send("Any news? 🤔")
    assert sent.round_trips == 1 and "Sent to support" in sent.text
    [note] = sent.to(ADMIN_ID)
    assert "Any news? 🤔" in note and f"Ticket #{t.id}" in note

    reply = await admin.tap("Reply")
    assert reply.round_trips == 0 and f"ticket #{t.id}" in reply.text
    answered = await admin.send("Paid <today> ✅")
    assert answered.round_trips == 1
    assert f"Reply sent on ticket #{t.id}" in answered.text
    [told] = answered.to(ALICE)
    assert "Support replied" in told and "Paid &lt;today&gt; ✅" in told
    row = await ticket_of(conn, t.id)
    assert row["status"] == "answered" and row["unread_admin_replies"] == 1

    again = await alice.send("/support")
    assert again.round_trips == 1
    assert "1 new reply(ies)" in again.text and "(answered)" in again.text
    assert "Paid &lt;today&gt; ✅" in again.text and "🆕" in again.text
    # Her next message marks the reply read.
    await alice.send("Thanks!")
    assert (await ticket_of(conn, t.id))["unread_admin_replies"] == 0
    assert (await ticket_of(conn, t.id))["messages"] == 4


async def test_the_owner_closes_the_ticket(conn, people, chat):
    t = await open_ticket(conn, telegram_id=ALICE, subject="Done", body="Never mind")
    alice = chat(ALICE)
    await alice.send("/support")
    step = await alice.tap("Close ticket")
    assert step.round_trips == 1
    assert f"Ticket #{t.id} closed" in step.text
    assert step.screen.callbacks == ["support:new", "menu:open"]
    assert (await ticket_of(conn, t.id))["status"] == "closed"
    # Typing now is not a message on the closed ticket.
    after = await alice.send("hello?")
    assert after.round_trips == 0 and "New ticket" in after.text
    assert (await ticket_of(conn, t.id))["messages"] == 1
    # A second ticket, straight from the same screen and cache.
    ask = await alice.tap("New ticket")
    assert ask.round_trips == 0 and "subject" in ask.text


async def test_a_stranger_cannot_close_or_answer_someone_elses_ticket(conn, people, chat):
    t = await open_ticket(conn, telegram_id=ALICE, subject="Mine", body="Private")
    eve = chat(EVE, "Eve")
    screen = await eve.send("/support")

    closing = await eve.press(f"support:close:{t.id}", on=screen.screen)
    assert closing.round_trips == 1
    assert closing.alerts == ["You are not a party to this ticket."]
    assert closing.replies == []

    replying = await eve.press(f"support:reply:{t.id}", on=screen.screen)
    assert replying.round_trips == 0
    assert replying.alerts == ["This is for LockBay admins only."]
    # Her own typing still goes nowhere near Alice's ticket.
    typed = await eve.send("I am an admin, honest")
    assert typed.round_trips == 0
    row = await ticket_of(conn, t.id)
    assert row["status"] == "open" and row["messages"] == 1
    assert await counts(conn, EVE) == (0, 0)


async def test_a_configured_admin_without_admin_rights_in_the_database_is_refused(conn, chat):
    await seeding.user(conn, ALICE, "Alice")
    await seeding.user(conn, ADMIN_ID, "Root")  # configured, but not is_admin
    t = await open_ticket(conn, telegram_id=ALICE, subject="Hi", body="Hello")
    admin = chat(ADMIN_ID)
    await admin.press(f"support:reply:{t.id}", on=(await admin.send("/support")).screen)
    step = await admin.send("Sneaky")
    assert step.round_trips == 1 and "not a party" in step.text
    assert step.to(ALICE) == []
    assert (await ticket_of(conn, t.id))["messages"] == 1


async def test_unknown_unfinished_and_blocked_users(conn, people, chat):
    assert "/start" in (await chat(999).send("/support")).text
    await register_user(conn, telegram_id=NEWBIE, username="newbie", first_name="N")
    half = await chat(NEWBIE).send("/support")
    assert half.round_trips == 1 and "/start" in half.text
    await seeding.block(conn, EVE)
    blocked = await chat(EVE).send("/support")
    assert blocked.round_trips == 1 and len(blocked.replies) == 1
    assert "blocked" in blocked.text and blocked.screen.callbacks == []
    # Not in the flow: typing does nothing.
    typed = await chat(EVE).send("let me in")
    assert typed.replies == [] and typed.round_trips == 0


@pytest.mark.parametrize(
    ("typed", "why"),
    [("   ", "is empty"), ("s" * 201, "201 characters"), ("x" * 4000, "4,000 characters")],
)
async def test_a_bad_subject_is_refused_at_the_same_step(conn, people, chat, typed, why):
    alice = chat(ALICE)
    await alice.send("/support")
    await alice.tap("New ticket")
    step = await alice.send(typed)
    assert step.round_trips == 0 and why in step.text
    # Emoji alone is a fine subject.
    ok = await alice.send("🆘🆘")
    assert ok.round_trips == 0 and "Subject: <b>🆘🆘</b>" in ok.text
    assert await counts(conn) == (0, 0)


@pytest.mark.parametrize(("typed", "why"), [("  ", "is empty"), ("y" * 4001, "4,001 characters")])
async def test_a_bad_first_message_is_refused_at_the_same_step(conn, people, chat, typed, why):
    alice = chat(ALICE)
    await alice.send("/support")
    await alice.tap("New ticket")
    await alice.send("Subject")
    step = await alice.send(typed)
    assert step.round_trips == 0 and why in step.text
    assert await counts(conn) == (0, 0)
    ok = await alice.send("😭")
    assert ok.round_trips == 1 and "opened" in ok.text
    assert await counts(conn) == (1, 1)


async def test_a_bad_chat_message_is_refused_and_a_4000_character_one_is_fine(conn, people, chat):
    t = await open_ticket(conn, telegram_id=ALICE, subject="Long", body="Start")
    alice = chat(ALICE)
    await alice.send("/support")
    too_long = await alice.send("z" * 4001)
    assert too_long.round_trips == 0 and "the limit is 4,000" in too_long.text
    assert (await ticket_of(conn, t.id))["messages"] == 1
    ok = await alice.send("z" * 4000)
    assert ok.round_trips == 1 and (await ticket_of(conn, t.id))["messages"] == 2
    # The admin's copy stays within Telegram's limit (the fake refuses anything longer).
    assert len(ok.to(ADMIN_ID)) == 1


async def test_a_bad_admin_reply_is_refused_at_the_same_step(conn, people, chat):
    t = await open_ticket(conn, telegram_id=ALICE, subject="Q", body="?")
    admin = chat(ADMIN_ID)
    await admin.press(f"support:reply:{t.id}", on=(await admin.send("/support")).screen)
    for typed in ("   ", "r" * 4001):
        step = await admin.send(typed)
        assert step.round_trips == 0 and step.to(ALICE) == []
    assert (await ticket_of(conn, t.id))["messages"] == 1
    ok = await admin.send("👍")
    assert ok.round_trips == 1 and len(ok.to(ALICE)) == 1


async def test_a_long_history_is_cut_to_fit_one_message(conn, people, chat):
    t = await open_ticket(conn, telegram_id=ALICE, subject="Essay", body="a" * 4000)
    for n in range(19):
        who = ADMIN_ID if n % 2 else ALICE
        await post_support_message(conn, ticket_id=t.id, telegram_id=who, body=f"{n} " + "<" * 3990)
    step = await chat(ALICE).send("/support")
    assert step.round_trips == 1
    assert "earlier message(s) not shown" in step.text
    # The newest is shown, shortened, escaped.
    assert "18 " + "&lt;" * 10 in step.text and "…" in step.text


async def test_a_ticket_closed_meanwhile_is_said_and_shown_fresh(conn, people, chat):
    t = await open_ticket(conn, telegram_id=ALICE, subject="Q", body="?")
    alice = chat(ALICE)
    await alice.send("/support")
    await close_ticket(conn, ticket_id=t.id, telegram_id=ADMIN_ID)

    step = await alice.send("Still there?")

    # The refused post, then the fresh screen.
    assert step.round_trips == 2
    assert "closed" in step.text and "no open ticket" in step.text
    assert step.screen.callbacks == ["support:new", "menu:open"]
    assert (await ticket_of(conn, t.id))["messages"] == 1
    assert step.to(ADMIN_ID) == []


async def test_a_ticket_opened_elsewhere_meanwhile_is_shown_instead(conn, people, chat):
    alice = chat(ALICE)
    await alice.send("/support")
    await alice.tap("New ticket")
    await alice.send("From the phone")
    other = await open_ticket(conn, telegram_id=ALICE, subject="From the laptop", body="Hi")

    step = await alice.send("Details")

    assert step.round_trips == 2
    assert "already have an open ticket" in step.text
    assert f"Ticket #{other.id}: <b>From the laptop</b>" in step.text
    assert await counts(conn) == (1, 1)
    assert step.to(ADMIN_ID) == []


async def test_an_admin_who_blocked_the_bot_does_not_fail_the_users_step(
    conn, people, chat, telegram
):
    t = await open_ticket(conn, telegram_id=ALICE, subject="Q", body="?")
    telegram.blocked_by.add(ADMIN_ID)
    alice = chat(ALICE)
    await alice.send("/support")
    step = await alice.send("Hello?")
    assert step.round_trips == 1 and "Sent to support" in step.text
    assert (await ticket_of(conn, t.id))["messages"] == 2
