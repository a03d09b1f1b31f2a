"""Main menu: who the user is, what they hold, and the counts of what waits for them."""

from __future__ import annotations

from decimal import Decimal

import seeding

from bot import db
from bot.data.dispute import open_dispute, resolve_dispute
from bot.data.enums import FeeSplit, OnboardingStep
from bot.data.escrow import (
    accept_escrow,
    cancel_escrow,
    create_escrow,
    fund_escrow_from_wallet,
    mark_delivered,
    release_escrow,
)
from bot.data.menu import menu_context
from bot.data.onboarding import register_user
from bot.data.rows import WalletBalance
from bot.data.support import close_ticket, open_ticket, post_support_message
from bot.data.wallet import fail_cashout

BUYER, SELLER, STRANGER, ADMIN, NEWBIE = 9501, 9502, 9503, 9504, 9505
D = Decimal


async def one_trip(call):
    async with db.meter.measure() as m:
        result = await call
    assert m.round_trips == 1, m.statements
    return result


async def escrow(conn, buyer: int = BUYER, seller: str = f"@user{SELLER}", *steps: str) -> int:
    """An escrow of 10 USDT taken as far as `steps` say."""
    e = await create_escrow(
        conn,
        buyer_telegram_id=buyer,
        seller_handle=seller,
        currency="USDT",
        amount=D("10"),
        description="Sneakers 👟",
        fee_split=FeeSplit.BUYER,
    )
    for step in steps:
        if step == "fund":
            await fund_escrow_from_wallet(
                conn, escrow_id=e.id, telegram_id=buyer, idempotency_key=f"pay-{e.id}"
            )
        elif step == "accept":
            await accept_escrow(conn, escrow_id=e.id, telegram_id=SELLER)
        elif step == "deliver":
            await mark_delivered(conn, escrow_id=e.id, telegram_id=SELLER)
        elif step == "release":
            await release_escrow(conn, escrow_id=e.id, telegram_id=buyer)
        elif step == "cancel":
            await cancel_escrow(conn, escrow_id=e.id, telegram_id=buyer)
        elif step == "dispute":
            await open_dispute(conn, escrow_id=e.id, telegram_id=buyer, reason="Wrong size")
    return e.id


async def test_an_unknown_user_is_none_in_one_round_trip(conn):
    assert await one_trip(menu_context(conn, telegram_id=404)) is None


async def test_a_new_user_has_nothing_waiting(conn):
    reg = await register_user(conn, telegram_id=NEWBIE, username="newbie", first_name="")
    ctx = await one_trip(menu_context(conn, telegram_id=NEWBIE))
    assert (ctx.user_id, ctx.telegram_id) == (reg.user_id, NEWBIE)
    assert ctx.display_name == "newbie"  # no first name: the username
    assert ctx.onboarding is OnboardingStep.STARTED and not ctx.onboarding_complete
    assert not ctx.is_admin
    assert ctx.balances == ()  # five empty wallets show nothing
    assert (
        ctx.active_escrows,
        ctx.waiting_on_me,
        ctx.open_disputes,
        ctx.unread_support_replies,
        ctx.cashouts_in_flight,
    ) == (0, 0, 0, 0, 0)


async def test_the_menu_counts_each_users_own_rows_in_one_round_trip(conn):
    await seeding.user(conn, BUYER, "Bola")
    await seeding.user(conn, SELLER, "Sade")
    await seeding.user(conn, STRANGER, "Tunde")
    await seeding.user(conn, ADMIN, "Admin")
    await seeding.make_admin(conn, ADMIN)
    await seeding.credit(conn, BUYER, "USDT", "1000")
    await seeding.credit(conn, BUYER, "BTC", "0.5")
    await seeding.credit(conn, STRANGER, "USDT", "100")

    await escrow(conn)  # awaiting payment: the buyer's move
    await escrow(conn, BUYER, "@ghost")  # an invited seller with no account yet
    await escrow(conn, BUYER, f"@user{SELLER}", "fund")  # the seller's move
    await escrow(conn, BUYER, f"@user{SELLER}", "fund", "accept")  # the seller's move
    await escrow(conn, BUYER, f"@user{SELLER}", "fund", "accept", "deliver")  # the buyer's
    await escrow(conn, BUYER, f"@user{SELLER}", "fund", "accept", "dispute")  # the admin's
    await escrow(conn, BUYER, f"@user{SELLER}", "fund", "accept", "deliver", "release")
    await escrow(conn, BUYER, f"@user{SELLER}", "cancel")
    refunded = await escrow(conn, BUYER, f"@user{SELLER}", "fund", "accept")
    d = await open_dispute(conn, escrow_id=refunded, telegram_id=SELLER, reason="Cannot ship")
    await resolve_dispute(conn, dispute_id=d.id, admin_telegram_id=ADMIN, buyer_share=D("10"))
    await escrow(conn, STRANGER, f"@user{SELLER}", "fund")  # the seller's move, not Bola's

    await seeding.cashout(conn, BUYER, "USDT", "50", fee="1", n=1)
    failed = await seeding.cashout(conn, BUYER, "USDT", "20", fee="1", n=2)
    await fail_cashout(conn, cashout_id=failed, reason="bank down")

    old = await open_ticket(conn, telegram_id=BUYER, subject="Old", body="Hi")
    await post_support_message(conn, ticket_id=old.id, telegram_id=ADMIN, body="Unread, closed")
    await close_ticket(conn, ticket_id=old.id, telegram_id=ADMIN)
    live = await open_ticket(conn, telegram_id=BUYER, subject="Live", body="Hello")
    await post_support_message(conn, ticket_id=live.id, telegram_id=ADMIN, body="One")
    await post_support_message(conn, ticket_id=live.id, telegram_id=ADMIN, body="Two")
    theirs = await open_ticket(conn, telegram_id=STRANGER, subject="Mine", body="Hey")
    await post_support_message(conn, ticket_id=theirs.id, telegram_id=ADMIN, body="For Tunde")

    bola = await one_trip(menu_context(conn, telegram_id=BUYER))
    assert bola.display_name == "Bola" and not bola.is_admin
    assert bola.onboarding is OnboardingStep.COMPLETE and bola.onboarding_complete
    # Six escrows paid 10.5 each; one came back; 51 held for the cashout in flight.
    assert bola.balances == (
        WalletBalance("BTC", 8, D("0.5"), D("0")),
        WalletBalance("USDT", 6, D("1000") - 5 * D("10.5") - D("51"), D("51")),
    )
    assert bola.active_escrows == 6  # awaiting payment (2), funded, accepted, delivered, disputed
    assert bola.waiting_on_me == 3  # two to pay, one to release
    assert bola.open_disputes == 1
    assert bola.unread_support_replies == 2
    assert bola.cashouts_in_flight == 1

    sade = await one_trip(menu_context(conn, telegram_id=SELLER))
    assert sade.active_escrows == 6  # Bola's five with her as seller, and Tunde's
    assert sade.waiting_on_me == 3  # two funded to accept, one accepted to deliver
    assert sade.open_disputes == 1
    assert (sade.unread_support_replies, sade.cashouts_in_flight) == (0, 0)
    # One release, the fee paid by the buyer.
    assert sade.balances == (WalletBalance("USDT", 6, D("10"), D("0")),)

    tunde = await menu_context(conn, telegram_id=STRANGER)
    assert (tunde.active_escrows, tunde.waiting_on_me, tunde.open_disputes) == (1, 0, 0)
    assert (tunde.unread_support_replies, tunde.cashouts_in_flight) == (1, 0)
    assert tunde.balances == (WalletBalance("USDT", 6, D("89.5"), D("0")),)

    admin = await menu_context(conn, telegram_id=ADMIN)
    assert admin.is_admin
    assert (admin.active_escrows, admin.open_disputes, admin.unread_support_replies) == (0, 0, 0)
