"""The admin console through the real Application: refused to anyone not configured, before
any query; each screen one round trip, paged; the user search; cashout approval."""

from __future__ import annotations

from decimal import Decimal

import pytest
import seeding
from conftest import ADMIN_ID

from bot.data.admin import user_page
from bot.data.escrow import create_escrow
from bot.data.wallet import fail_cashout
from bot.db import queries
from bot.handlers import admin as admin_handlers
from bot.handlers.ui import ADMINS_ONLY

ADA, BOLA, MALLORY = 8101, 8102, 8103
D = Decimal


async def people(conn) -> None:
    await seeding.user(conn, ADMIN_ID, "Root")
    await seeding.make_admin(conn, ADMIN_ID)
    await seeding.user(conn, ADA, "Ada")
    await seeding.user(conn, BOLA, "Bola")
    await seeding.user(conn, MALLORY, "Mallory")


async def usdt(conn, telegram_id: int) -> tuple[Decimal, Decimal]:
    """(available, held) of a user's USDT wallet."""
    [u] = (await user_page(conn, search=str(telegram_id))).users
    w = next(w for w in u.wallets if w.currency == "USDT")
    return w.available, w.held


async def cashout_status(conn, cashout_id: int) -> str:
    rows = [r async for r in queries.admin_cashout_queue(conn, after_at=None, after_id=None,
                                                          page_size=100)]  # fmt: skip
    return "pending" if any(r["id"] == cashout_id for r in rows) else "decided"


async def admin_chat(chat):
    root = chat(ADMIN_ID, "Root")
    await root.send("/admin")
    return root


# --- who may enter -------------------------------------------------------------------------


async def test_anyone_not_configured_is_refused_before_any_query(conn, chat):
    await people(conn)
    # An admin flag in the database is not enough: the configured ids decide.
    await seeding.make_admin(conn, MALLORY)
    await seeding.credit(conn, ADA, "USDT", "100")
    cashout_id = await seeding.cashout(conn, ADA, "USDT", "50", fee="1")
    before = await usdt(conn, ADA)
    mallory = chat(MALLORY, "Mallory")

    step = await mallory.send("/admin")
    assert step.round_trips == 0 and step.text == ADMINS_ONLY
    menu = await mallory.send("/menu")
    for data in (
        "admin:open",
        "admin:users",
        "admin:users:0:ada",
        "admin:search",
        "admin:tx:all",
        "admin:tx:flagged",
        "admin:disputes",
        "admin:cashouts",
        f"admin:cashout:{cashout_id}",
        f"admin:approve:{cashout_id}",
        f"admin:reject:{cashout_id}",
    ):
        step = await mallory.press(data, on=menu.screen)
        assert step.round_trips == 0, data
        assert step.replies == [] and step.alerts == [ADMINS_ONLY], data
    assert await cashout_status(conn, cashout_id) == "pending"
    assert await usdt(conn, ADA) == before
    # Mallory's typed text does not reach a search step either.
    step = await mallory.send("ada")
    assert step.round_trips == 0 and step.replies == []


# --- dashboard -------------------------------------------------------------------------------


async def test_the_dashboard_is_one_round_trip(conn, chat):
    await people(conn)
    await seeding.credit(conn, ADA, "USDT", "100.5")
    await seeding.credit(conn, BOLA, "NGN", "250000")
    await seeding.cashout(conn, ADA, "USDT", "50", fee="1")
    root = chat(ADMIN_ID, "Root")

    step = await root.send("/admin")

    assert step.round_trips == 1
    assert "Users: 4 · onboarded 4 · new in 24 h 4" in step.text
    assert "Cashouts in flight: 1 — 50 USDT (1)" in step.text
    # Volume: both deposits and the cashout's hold (51 into held).
    assert "₦250,000.00, 151.5 USDT" in step.text
    assert {"admin:users", "admin:tx:all", "admin:disputes", "admin:cashouts"} <= set(
        step.screen.callbacks
    )
    await seeding.credit(conn, BOLA, "USDT", "7")
    again = await root.press("admin:open")
    assert again.round_trips == 1 and again.screen.message_id == step.screen.message_id
    assert "158.5 USDT" in again.text


async def test_the_menu_admin_button_opens_the_dashboard(conn, chat):
    await people(conn)
    root = chat(ADMIN_ID, "Root")
    menu = await root.send("/menu")
    step = await root.tap("Admin", on=menu.screen)
    assert step.round_trips == 1 and "Admin dashboard" in step.text


# --- users -----------------------------------------------------------------------------------


async def test_users_page_by_id_one_round_trip_each(conn, chat, monkeypatch):
    await people(conn)
    await seeding.credit(conn, ADA, "USDT", "12.345")
    await seeding.block(conn, MALLORY)
    monkeypatch.setattr(admin_handlers, "USERS_PAGE", 3)
    root = await admin_chat(chat)

    first = await root.tap("Users")
    assert first.round_trips == 1
    assert "Root" in first.text and "Ada" in first.text and "Bola" in first.text
    assert "12.345 USDT" in first.text and "Mallory" not in first.text
    second = await root.tap("Next")
    assert second.round_trips == 1
    assert "Mallory" in second.text and "🛑 blocked" in second.text and "Ada" not in second.text
    assert not any(c.startswith("admin:users:") for c in second.screen.callbacks)


async def test_the_user_search_refuses_bad_input_then_pages_its_matches(conn, chat, monkeypatch):
    await people(conn)
    await seeding.user(conn, 8104, "Adaeze")
    await seeding.user(conn, 8105, "Adamu")
    monkeypatch.setattr(admin_handlers, "USERS_PAGE", 2)
    root = await admin_chat(chat)
    await root.tap("Users")

    ask = await root.tap("Search")
    assert ask.round_trips == 0 and "Find a user" in ask.text
    for bad, says in [
        ("😀😀", "letters or digits"),
        ("a" * 4000, "too long"),
        ("ada:b", "cannot contain"),
        ("   ", "Please send"),
    ]:
        step = await root.send(bad)
        assert step.round_trips == 0 and says in step.text, bad

    found = await root.send("ADA")
    assert found.round_trips == 1
    assert "matching “ADA”" in found.text
    assert "Ada" in found.text and "Adaeze" in found.text and "Adamu" not in found.text
    more = await root.tap("Next")
    assert more.round_trips == 1 and "Adamu" in more.text and "Adaeze" not in more.text
    # The search step has ended: typed text is no search any more.
    after = await root.send("bola")
    assert after.round_trips == 0 and after.replies == []
    cleared = await root.tap("Clear search", on=more.screen)
    assert cleared.round_trips == 1 and "matching" not in cleared.text


async def test_a_search_by_telegram_id(conn, chat):
    await people(conn)
    root = await admin_chat(chat)
    await root.tap("Users")
    await root.tap("Search")
    step = await root.send(str(BOLA))
    assert step.round_trips == 1 and "Bola" in step.text and "Ada" not in step.text


# --- transactions ----------------------------------------------------------------------------


async def test_transactions_page_and_filter_by_status(conn, chat, monkeypatch):
    await people(conn)
    for n in range(3):
        await seeding.credit(conn, ADA, "USDT", str(10 + n))
    ada_transfers = [t async for t in queries.admin_test_transfer_ids(conn, telegram_id=ADA)]
    flagged = ada_transfers[0]
    await queries.admin_test_set_transfer_status(
        conn, transfer_ids=[flagged["transfer_id"]], status="flagged"
    )
    monkeypatch.setattr(admin_handlers, "TRANSFERS_PAGE", 2)
    root = await admin_chat(chat)

    first = await root.tap("Transactions")
    assert first.round_trips == 1
    assert "Ada @user8101: +12 USDT" in first.text and "Ada @user8101: +11" in first.text
    assert "provider clearing: -12 USDT" in first.text
    older = await root.tap("Older")
    assert older.round_trips == 1
    assert "Ada @user8101: +10 USDT" in older.text and "⚠️ flagged" in older.text
    assert not any(c.startswith("admin:tx:all:") for c in older.screen.callbacks)

    only = await root.tap("Flagged")
    assert only.round_trips == 1
    assert "Ada @user8101: +10 USDT" in only.text and "+11 USDT" not in only.text
    assert "✓ Flagged" in [label for row in only.screen.buttons for label, _ in row]
    none = await root.tap("Reviewed")
    assert none.round_trips == 1 and "No transfers." in none.text


# --- disputes --------------------------------------------------------------------------------


async def test_the_dispute_queue_pages_older_and_opens_a_dispute(conn, chat, monkeypatch):
    from bot.data.dispute import open_dispute
    from bot.data.enums import FeeSplit
    from bot.data.escrow import accept_escrow, fund_escrow_from_wallet

    await people(conn)
    await seeding.credit(conn, ADA, "USDT", "1000")
    refs = []
    for n in range(3):
        e = await create_escrow(
            conn,
            buyer_telegram_id=ADA,
            seller_handle=f"user{BOLA}",
            currency="USDT",
            amount=D(20 + n),
            description="goods",
            fee_split=FeeSplit.BUYER,
        )
        await fund_escrow_from_wallet(conn, escrow_id=e.id, telegram_id=ADA, idempotency_key=f"{n}")
        await accept_escrow(conn, escrow_id=e.id, telegram_id=BOLA)
        await open_dispute(conn, escrow_id=e.id, telegram_id=ADA, reason=f"problem {n}")
        refs.append(e.ref)
    monkeypatch.setattr(admin_handlers, "DISPUTES_PAGE", 2)
    root = await admin_chat(chat)

    first = await root.tap("Disputes")
    assert first.round_trips == 1
    assert refs[2] in first.text and refs[1] in first.text and refs[0] not in first.text
    assert "Ada (buyer) vs Bola (seller)" in first.text and "22 USDT" in first.text
    older = await root.tap("Older")
    assert older.round_trips == 1 and refs[0] in older.text and refs[1] not in older.text
    chat_screen = await root.tap(refs[0])
    assert chat_screen.round_trips == 1 and "problem 0" in chat_screen.text


# --- cashouts --------------------------------------------------------------------------------


async def test_cashouts_are_approved_and_rejected_with_the_user_told(conn, chat):
    await people(conn)
    await seeding.credit(conn, ADA, "USDT", "100")
    await seeding.credit(conn, BOLA, "USDT", "80")
    first = await seeding.cashout(conn, ADA, "USDT", "50", fee="1")
    second = await seeding.cashout(conn, BOLA, "USDT", "30", fee="1", n=2)
    root = await admin_chat(chat)

    queue = await root.tap("Cashouts")
    assert queue.round_trips == 1
    assert queue.text.index(f"#{first}") < queue.text.index(f"#{second}")  # oldest first
    assert "50 USDT (fee 1 USDT)" in queue.text and "TRC20" in queue.text
    card = await root.tap(f"#{first}")
    assert card.round_trips == 0 and "held 51 USDT" in card.text

    approved = await root.tap("Approve")
    assert approved.round_trips == 1
    assert f"Approved cashout #{first}" in approved.text and f"#{second}" in approved.text
    [told] = approved.to(ADA)
    assert "was approved" in told and "50 USDT" in told
    assert await usdt(conn, ADA) == (D(49), D(51))  # approval moves no money
    assert await cashout_status(conn, first) == "decided"

    await root.tap(f"#{second}")
    rejected = await root.tap("Reject")
    assert rejected.round_trips == 1
    assert f"Rejected cashout #{second}" in rejected.text and "Nothing waits" in rejected.text
    [told] = rejected.to(BOLA)
    assert "not approved" in told and "31 USDT" in told
    assert await usdt(conn, BOLA) == (D(80), D(0))  # the hold is back
    assert await cashout_status(conn, second) == "decided"


async def test_a_cashout_decided_meanwhile_is_said_and_the_queue_refetched(conn, chat):
    await people(conn)
    await seeding.credit(conn, ADA, "USDT", "100")
    cashout_id = await seeding.cashout(conn, ADA, "USDT", "50", fee="1")
    root = await admin_chat(chat)
    await root.tap("Cashouts")
    await root.tap(f"#{cashout_id}")
    await fail_cashout(conn, cashout_id=cashout_id, reason="the provider refused")

    step = await root.tap("Approve")

    assert step.round_trips == 2  # the refused movement, then the fresh queue
    assert "is failed: it cannot be approved" in step.text and "Nothing waits" in step.text
    assert step.to(ADA) == []
    assert await usdt(conn, ADA) == (D(100), D(0))


async def test_the_cashout_queue_pages_oldest_first(conn, chat, monkeypatch):
    await people(conn)
    await seeding.credit(conn, ADA, "USDT", "1000")
    ids = [await seeding.cashout(conn, ADA, "USDT", str(10 + n), n=n) for n in range(3)]
    monkeypatch.setattr(admin_handlers, "CASHOUTS_PAGE", 2)
    root = await admin_chat(chat)

    first = await root.tap("Cashouts")
    assert first.round_trips == 1
    assert [c for c in first.screen.callbacks if c.startswith("admin:cashout:")] == [
        f"admin:cashout:{i}" for i in ids[:2]
    ]
    later = await root.tap("Next")
    assert later.round_trips == 1
    assert [c for c in later.screen.callbacks if c.startswith("admin:cashout:")] == [
        f"admin:cashout:{ids[2]}"
    ]
    assert not any(c.startswith("admin:cashouts:") for c in later.screen.callbacks)


async def test_a_stale_cashout_card_is_expired_not_guessed(conn, chat):
    await people(conn)
    await seeding.credit(conn, ADA, "USDT", "100")
    cashout_id = await seeding.cashout(conn, ADA, "USDT", "50", fee="1")
    root = await admin_chat(chat)
    # Never shown in a queue on this screen: nothing to approve from.
    step = await root.press(f"admin:approve:{cashout_id}")
    assert step.round_trips == 0 and "expired" in step.text
    assert await cashout_status(conn, cashout_id) == "pending"


@pytest.mark.parametrize("where", ["admin:users:abc", "admin:tx:bogus:zz", "admin:disputes:ffff"])
async def test_crafted_paging_data_shows_a_first_page(conn, chat, where):
    await people(conn)
    root = await admin_chat(chat)
    step = await root.press(where)
    assert step.round_trips == 1 and step.replies
