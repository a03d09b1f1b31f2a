"""Onboarding screen: the user's sign-up state, the pending e-mail code, the wallets."""

from __future__ import annotations

from decimal import Decimal

import seeding

from bot import db
from bot.data.enums import OnboardingStep
from bot.data.onboarding import (
    accept_terms,
    onboarding_context,
    register_user,
    start_email_verification,
    verify_email_otp,
)
from bot.db import queries

NEW, OTHER, SEEDED = 7001, 7002, 7003
D = Decimal
CURRENCIES = ["BTC", "ETH", "LTC", "NGN", "USDT"]


async def one_trip(call):
    async with db.meter.measure() as m:
        result = await call
    assert m.round_trips == 1, m.statements
    return result


async def test_an_unknown_user_is_none_in_one_round_trip(conn):
    assert await one_trip(onboarding_context(conn, telegram_id=404)) is None


async def test_a_new_user_starts_with_empty_wallets_and_nothing_pending(conn):
    reg = await register_user(conn, telegram_id=NEW, username="Newbie", first_name="Nkem 🌱")
    ctx = await one_trip(onboarding_context(conn, telegram_id=NEW))
    u = ctx.user
    assert (u.id, u.telegram_id, u.username, u.first_name) == (
        reg.user_id,
        NEW,
        "Newbie",
        "Nkem 🌱",
    )
    assert u.email is None and u.onboarding is OnboardingStep.STARTED
    assert u.referral_code == reg.referral_code
    assert not ctx.email_verified and not ctx.phone_verified and not ctx.onboarding_complete
    assert ctx.pending_verification is None
    assert [w.currency for w in ctx.wallets] == CURRENCIES
    assert all(w.available == 0 and w.held == 0 for w in ctx.wallets)


async def test_a_code_pending_then_spent_then_expired(conn):
    await register_user(conn, telegram_id=NEW, username="newbie", first_name="Nkem")
    sent = await start_email_verification(conn, telegram_id=NEW, email="Nkem@Example.com")

    ctx = await one_trip(onboarding_context(conn, telegram_id=NEW))
    assert ctx.user.onboarding is OnboardingStep.AWAITING_OTP
    p = ctx.pending_verification
    assert (p.email, p.expires_at, p.attempts_left) == ("nkem@example.com", sent.expires_at, 5)
    assert p.expired is False
    assert ctx.user.email is None and not ctx.email_verified

    wrong = "000000" if sent.code != "000000" else "111111"
    await verify_email_otp(conn, telegram_id=NEW, code=wrong)
    assert (await onboarding_context(conn, telegram_id=NEW)).pending_verification.attempts_left == 4

    await queries.onboarding_test_expire(conn, telegram_id=NEW)
    assert (await onboarding_context(conn, telegram_id=NEW)).pending_verification.expired is True


async def test_a_verified_code_is_no_longer_pending_and_terms_complete_the_sign_up(conn):
    await register_user(conn, telegram_id=NEW, username="newbie", first_name="Nkem")
    # Two codes asked for: only the latest one can still be entered.
    await start_email_verification(conn, telegram_id=NEW, email="old@example.com")
    latest = await start_email_verification(conn, telegram_id=NEW, email="nkem@example.com")
    assert (
        await onboarding_context(conn, telegram_id=NEW)
    ).pending_verification.email == "nkem@example.com"
    await verify_email_otp(conn, telegram_id=NEW, code=latest.code)

    ctx = await one_trip(onboarding_context(conn, telegram_id=NEW))
    # The older code was never verified, and is still not offered.
    assert ctx.pending_verification is None
    assert ctx.email_verified and ctx.user.email == "nkem@example.com"
    assert ctx.user.onboarding is OnboardingStep.AWAITING_TERMS and not ctx.onboarding_complete

    await accept_terms(conn, telegram_id=NEW)
    ctx = await onboarding_context(conn, telegram_id=NEW)
    assert ctx.user.onboarding is OnboardingStep.COMPLETE and ctx.onboarding_complete


async def test_wallets_show_available_and_held_exactly(conn):
    await seeding.user(conn, SEEDED, phone="+2348012345678")
    await seeding.credit(conn, SEEDED, "USDT", "100.123456")
    await seeding.credit(conn, SEEDED, "ETH", "0.000000000000000001")
    await seeding.cashout(conn, SEEDED, "USDT", "50", fee="1")

    ctx = await one_trip(onboarding_context(conn, telegram_id=SEEDED))
    wallets = {w.currency: (w.available, w.held) for w in ctx.wallets}
    assert list(wallets) == CURRENCIES
    assert wallets["USDT"] == (D("49.123456"), D("51"))
    assert wallets["ETH"] == (D("0.000000000000000001"), D("0"))
    assert wallets["BTC"] == (D("0"), D("0"))
    assert ctx.onboarding_complete and ctx.user.onboarding is OnboardingStep.COMPLETE
    # The seeded phone carries no verification until it gets one.
    assert not ctx.phone_verified
    await queries.onboarding_test_verify_phone(conn, telegram_id=SEEDED)
    assert (await onboarding_context(conn, telegram_id=SEEDED)).phone_verified


async def test_nothing_leaks_between_users(conn):
    await register_user(conn, telegram_id=NEW, username="newbie", first_name="Nkem")
    await register_user(conn, telegram_id=OTHER, username="other", first_name="Obi")
    await start_email_verification(conn, telegram_id=OTHER, email="obi@example.com")
    await seeding.credit(conn, OTHER, "NGN", "5000")

    mine = await onboarding_context(conn, telegram_id=NEW)
    theirs = await onboarding_context(conn, telegram_id=OTHER)
    assert mine.pending_verification is None
    assert all(w.available == 0 for w in mine.wallets)
    assert theirs.pending_verification.email == "obi@example.com"
    assert {w.currency: w.available for w in theirs.wallets}["NGN"] == D("5000")
    assert mine.user.referral_code != theirs.user.referral_code
