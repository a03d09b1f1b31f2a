"""The history screen through the real Application: signed, formatted entries newest first,
keyset pages through "Older" with neither repeats nor gaps, the currency filter, one round trip
a page; blocked and unknown users; crafted callback data."""

from __future__ import annotations

import re

import seeding

from bot.data.onboarding import register_user
from bot.data.rows import PageCursor
from bot.db import queries
from bot.handlers.ui import BLOCKED, NOT_REGISTERED

ADA = 5101
MINUS = "−"  # noqa: RUF001 - the screen's minus sign
AMOUNT = re.compile(f"<b>([+{MINUS}][^<]+)</b>")


def amounts(text: str) -> list[str]:
    return AMOUNT.findall(text)


async def walk(chat, first) -> tuple[list[list[str]], list[int]]:
    """Press "Older" until the last page: each page's amounts and round trips."""
    pages, trips = [amounts(first.text)], [first.round_trips]
    step = first
    while any("Older" in label for row in step.screen.buttons for label, _ in row):
        data = step.screen.button("Older")
        # The cursor in the button is the page's keyset cursor, as PageCursor encodes it.
        encoded = data.split(":")[2]
        assert PageCursor.decode(encoded).encode() == encoded
        step = await chat.press(data)
        pages.append(amounts(step.text))
        trips.append(step.round_trips)
        assert len(pages) < 20, "the pages never end"
    return pages, trips


async def test_pages_go_older_with_neither_repeats_nor_gaps(conn, chat):
    await seeding.user(conn, ADA)
    for n in range(1, 24):
        await seeding.credit(conn, ADA, "USDT", str(n))
    ada = chat(ADA)

    pages, trips = await walk(ada, await ada.send("/history"))

    assert [len(p) for p in pages] == [10, 10, 3]
    assert [a for p in pages for a in p] == [f"+{n} USDT" for n in range(23, 0, -1)]
    assert trips == [1, 1, 1]


async def test_entries_at_one_instant_neither_repeat_nor_skip(conn, chat):
    await seeding.user(conn, ADA)
    for n in range(1, 13):
        await seeding.credit(conn, ADA, "LTC", str(n))
    await queries.history_test_same_instant(conn, telegram_id=ADA)
    ada = chat(ADA)

    pages, _ = await walk(ada, await ada.send("/history"))

    assert [a for p in pages for a in p] == [f"+{n} LTC" for n in range(12, 0, -1)]


async def test_entries_are_signed_formatted_and_say_what_they_were(conn, chat):
    await seeding.user(conn, ADA)
    await seeding.credit(conn, ADA, "NGN", "1234567.5")
    await seeding.credit(conn, ADA, "BTC", "0.00000001")
    await seeding.credit(conn, ADA, "USDT", "100")
    await seeding.cashout(conn, ADA, "USDT", "40", fee="1")

    step = await chat(ADA).send("/history")

    assert step.round_trips == 1
    # The cashout moved 41 USDT from available to held: one entry each, one transfer.
    assert amounts(step.text) == [
        f"{MINUS}41 USDT",
        "+41 USDT",
        "+100 USDT",
        "+0.00000001 BTC",
        "+₦1,234,567.50",
    ]
    assert "Cashout requested (held balance)" in step.text
    assert "Cashout requested" in step.text and "Deposit" in step.text
    assert re.search(r"<i>\d{2} \w{3} \d{4}, \d{2}:\d{2} UTC</i> · seed", step.text)
    assert "Older" not in str(step.screen.buttons)


async def test_the_currency_filter_pages_within_its_currency(conn, chat):
    await seeding.user(conn, ADA)
    for n in range(1, 13):
        await seeding.credit(conn, ADA, "NGN", str(1000 * n))
        await seeding.credit(conn, ADA, "BTC", "0.001")
    ada = chat(ADA)
    everything = await ada.send("/history")
    assert "history:cur:NGN" in everything.screen.callbacks

    naira = await ada.press("history:cur:NGN")
    assert naira.round_trips == 1
    assert "History</b> · NGN" in naira.text
    assert any(label == "• NGN" for row in naira.screen.buttons for label, _ in row)
    older = naira.screen.button("Older")
    assert older.endswith(":NGN")
    pages, trips = await walk(ada, naira)

    assert [a for p in pages for a in p] == [f"+₦{1000 * n:,}.00" for n in range(12, 0, -1)]
    assert trips == [1, 1]
    # "All" goes back to every currency.
    again = await ada.tap("All")
    assert "BTC" in again.text and "₦" in again.text


async def test_a_filter_with_no_entries_says_so(conn, chat):
    await seeding.user(conn, ADA)
    await seeding.credit(conn, ADA, "USDT", "5")
    ada = chat(ADA)
    await ada.send("/history")
    step = await ada.press("history:cur:ETH")
    assert "No ETH transactions yet." in step.text


async def test_nothing_yet(conn, chat):
    await seeding.user(conn, ADA)
    step = await chat(ADA).send("/history")
    assert "No transactions yet." in step.text and step.round_trips == 1


async def test_the_menu_button_edits_in_place(conn, chat):
    await seeding.user(conn, ADA)
    await seeding.credit(conn, ADA, "USDT", "7")
    ada = chat(ADA)
    menu = await ada.send("/menu")
    step = await ada.tap("History")
    assert step.round_trips == 1 and step.screen.message_id == menu.screen.message_id
    assert amounts(step.text) == ["+7 USDT"]


async def test_crafted_callback_data_is_refused(conn, chat):
    await seeding.user(conn, ADA)
    await seeding.credit(conn, ADA, "USDT", "7")
    ada = chat(ADA)
    await ada.send("/history")

    broken = await ada.press("history:older:-.1")
    assert broken.round_trips == 0 and broken.replies == []
    assert broken.alerts and "broken" in broken.alerts[0]
    unknown = await ada.press("history:cur:XYZ")
    assert unknown.alerts == ["There is no such currency."] and unknown.replies == []


async def test_a_blocked_user_gets_one_clear_message(conn, chat):
    await seeding.user(conn, ADA)
    await seeding.credit(conn, ADA, "USDT", "7")
    ada = chat(ADA)
    first = (await ada.send("/history")).screen
    await seeding.block(conn, ADA)
    for step in (
        await ada.send("/history"),
        await ada.press("history:cur:USDT", on=first),
    ):
        assert step.round_trips == 1
        assert [r.text for r in step.replies] == [BLOCKED]
        assert step.screen.buttons == []


async def test_an_unknown_user_is_sent_to_start(chat):
    step = await chat(5999).send("/history")
    assert step.text == NOT_REGISTERED and step.screen.buttons == []


async def test_a_user_still_onboarding_is_sent_to_start(conn, chat):
    await register_user(conn, telegram_id=5998, username="halfway", first_name="Half")
    step = await chat(5998).send("/history")
    assert step.round_trips == 1 and step.text == NOT_REGISTERED
