"""The main menu through the real Application: one round trip, blocked and unknown users."""

from __future__ import annotations

import seeding
from conftest import ADMIN_ID


async def test_menu_is_one_round_trip_and_shows_balances(conn, chat):
    await seeding.user(conn, 101, "Ada")
    await seeding.credit(conn, 101, "NGN", "1234567.5")
    await seeding.credit(conn, 101, "BTC", "0.00012")
    ada = chat(101, "Ada")

    step = await ada.send("/menu")

    assert step.round_trips == 1
    assert "Hello, Ada" in step.text
    assert "₦1,234,567.50" in step.text
    assert "0.00012 BTC" in step.text
    assert "wallet:open" in step.screen.callbacks
    assert "admin:open" not in step.screen.callbacks


async def test_menu_button_edits_the_message_in_place(conn, chat):
    await seeding.user(conn, 102, "Bola")
    bola = chat(102, "Bola")
    first = await bola.send("/menu")
    same = await bola.press("menu:open", on=first.screen)
    await seeding.credit(conn, 102, "USDT", "25")

    again = await bola.press("menu:open", on=first.screen)

    # Nothing changed: Telegram's "not modified" is not an error for the user.
    assert same.replies == [] and same.round_trips == 1
    assert again.round_trips == 1
    assert again.screen.message_id == first.screen.message_id
    assert "25 USDT" in again.text
    assert [c.method for c in again.calls] == ["answerCallbackQuery", "editMessageText"]


async def test_user_names_are_escaped(conn, chat):
    await seeding.user(conn, 103, "<b>Tolu</b> & co")
    step = await chat(103).send("/menu")
    assert "&lt;b&gt;Tolu&lt;/b&gt; &amp; co" in step.text


async def test_unknown_user_is_sent_to_start(chat):
    step = await chat(104).send("/menu")
    assert "/start" in step.text
    assert step.screen.callbacks == []


async def test_blocked_user_gets_one_clear_message(conn, chat):
    await seeding.user(conn, 105, "Kemi")
    await seeding.block(conn, 105)
    step = await chat(105).send("/menu")
    assert len(step.replies) == 1
    assert "blocked" in step.text
    assert step.screen.callbacks == []


async def test_admin_sees_the_admin_button(conn, chat):
    await seeding.user(conn, ADMIN_ID, "Root")
    await seeding.make_admin(conn, ADMIN_ID)
    step = await chat(ADMIN_ID).send("/menu")
    assert "admin:open" in step.screen.callbacks


async def test_cancel_outside_a_flow_says_there_is_nothing_to_cancel(conn, chat):
    await seeding.user(conn, 106, "Femi")
    step = await chat(106).send("/cancel")
    assert step.round_trips == 0
    assert [r.text for r in step.replies] == ["There is nothing to cancel. /menu"]


async def test_cancel_inside_a_flow_answers_once(conn, chat):
    await seeding.user(conn, 107, "Gbenga")
    await seeding.credit(conn, 107, "USDT", "50")
    gbenga = chat(107)
    await gbenga.send("/wallet")

    step = await gbenga.send("/cancel")

    assert [r.text for r in step.replies] == ["Cancelled. Nothing was changed. /menu"]
    assert "flows" not in gbenga.app.user_data[107] or not gbenga.app.user_data[107]["flows"]
