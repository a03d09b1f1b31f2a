"""Onboarding movements: registration once and only once, hashed one-time codes, terms."""

from __future__ import annotations

import asyncio

import pytest
import seeding

from bot import db
from bot.data.enums import OnboardingStep
from bot.data.errors import Invalid, NotFound, WrongStatus
from bot.data.onboarding import (
    accept_terms,
    register_user,
    start_email_verification,
    verify_email_otp,
)
from bot.db import queries

ALICE, BOB, CAROL = 2001, 2002, 2003


async def stored(conn, telegram_id: int):
    return await queries.onboarding_test_user(conn, telegram_id=telegram_id)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


# --- registration ---------------------------------------------------------------


async def test_register_creates_user_and_a_wallet_per_currency_in_one_round_trip(conn):
    async with db.meter.measure() as m:
        user = await register_user(conn, telegram_id=ALICE, username="Alice_1", first_name="Alice")
    assert m.round_trips == 1
    assert user.created and user.telegram_id == ALICE
    assert user.onboarding is OnboardingStep.STARTED and user.referrer_id is None
    row = await stored(conn, ALICE)
    assert row["id"] == user.user_id and row["username"] == "Alice_1"
    # Five currencies; the trigger opened available and held accounts for each.
    assert row["wallets"] == 5 and row["wallet_accounts"] == 10


async def test_register_twice_creates_nothing_the_second_time(conn):
    first = await register_user(conn, telegram_id=ALICE, username="alice_1", first_name="A")
    async with db.meter.measure() as m:
        again = await register_user(conn, telegram_id=ALICE, username="renamed", first_name="B")
    assert m.round_trips == 1
    assert not again.created
    assert again.user_id == first.user_id and again.referral_code == first.referral_code
    row = await stored(conn, ALICE)
    assert row["username"] == "alice_1" and row["first_name"] == "A" and row["wallets"] == 5
    assert await queries.onboarding_test_user_count(conn) == 1


async def test_ten_concurrent_registrations_make_one_user(database_url):
    pool = await db.create_pool(database_url, min_size=10, max_size=10)
    try:
        results = await asyncio.gather(
            *(
                register_user(pool, telegram_id=ALICE, username="alice_1", first_name="Alice")
                for _ in range(10)
            )
        )
        assert sum(r.created for r in results) == 1
        assert len({r.user_id for r in results}) == 1
        assert await queries.onboarding_test_user_count(pool) == 1
        row = await stored(pool, ALICE)
        assert row["wallets"] == 5 and row["wallet_accounts"] == 10
    finally:
        await pool.close()


async def test_a_registration_racing_an_uncommitted_one_returns_the_winner(pool):
    async with pool.acquire() as a, pool.acquire() as b, pool.acquire() as watcher:
        tx = a.transaction()
        await tx.start()
        winner = await register_user(a, telegram_id=ALICE, username="alice_1", first_name="A")
        loser = asyncio.create_task(
            register_user(b, telegram_id=ALICE, username="alice_1", first_name="A")
        )
        # The second insert waits on the first one's unique key: no sleeping, just look.
        for _ in range(10_000):
            if await queries.ledger_test_lock_waiters(watcher) or loser.done():
                break
        assert not loser.done()
        await tx.commit()
        late = await loser
    assert winner.created and not late.created
    assert late.user_id == winner.user_id
    assert await queries.onboarding_test_user_count(pool) == 1


async def test_referral_code_links_the_referrer_in_any_case(conn):
    referrer = await register_user(conn, telegram_id=ALICE, username="alice_1", first_name="A")
    user = await register_user(
        conn,
        telegram_id=BOB,
        username="bob_1",
        first_name="B",
        referral_code=f" {referrer.referral_code.lower()} ",
    )
    assert user.created and user.referrer_id == referrer.user_id
    assert (await stored(conn, BOB))["referrer_id"] == referrer.user_id


async def test_unknown_or_own_referral_code_is_ignored(conn):
    unknown = await register_user(
        conn, telegram_id=ALICE, username="alice_1", first_name="A", referral_code="NOPE1234"
    )
    assert unknown.created and unknown.referrer_id is None
    own = await register_user(
        conn,
        telegram_id=ALICE,
        username="alice_1",
        first_name="A",
        referral_code=unknown.referral_code,
    )
    assert not own.created and own.referrer_id is None
    assert (await stored(conn, ALICE))["referrer_id"] is None


async def test_a_later_referral_code_does_not_change_an_existing_user(conn):
    referrer = await register_user(conn, telegram_id=ALICE, username="alice_1", first_name="A")
    await register_user(conn, telegram_id=BOB, username="bob_1", first_name="B")
    again = await register_user(
        conn,
        telegram_id=BOB,
        username="bob_1",
        first_name="B",
        referral_code=referrer.referral_code,
    )
    assert not again.created and again.referrer_id is None


async def test_a_username_another_account_still_holds_is_not_stored(conn):
    await seeding.user(conn, BOB, username="shared_name")
    user = await register_user(conn, telegram_id=ALICE, username="Shared_Name", first_name="A")
    assert user.created
    row = await stored(conn, ALICE)
    assert row["username"] is None and row["wallets"] == 5
    assert (await stored(conn, BOB))["username"] == "shared_name"


async def test_first_name_keeps_unicode_and_is_cut_at_64_characters(conn):
    name = "Ọlá 🌍 Zoë 李" + "é" * 100
    await register_user(conn, telegram_id=ALICE, username=None, first_name=name)
    row = await stored(conn, ALICE)
    assert row["first_name"] == name[:64] and len(row["first_name"]) == 64
    assert row["username"] is None


async def test_an_escrow_inviting_the_username_is_linked_on_registration(conn):
    await seeding.user(conn, BOB)
    invited = await queries.onboarding_test_invite(
        conn, buyer_telegram_id=BOB, seller_handle="carol_x", ref="T-1"
    )
    other = await queries.onboarding_test_invite(
        conn, buyer_telegram_id=BOB, seller_handle="someone_else", ref="T-2"
    )
    carol = await register_user(conn, telegram_id=CAROL, username="Carol_X", first_name="C")
    assert carol.invited_escrows == 1
    assert await queries.onboarding_test_escrow_seller(conn, escrow_id=invited) == carol.user_id
    assert await queries.onboarding_test_escrow_seller(conn, escrow_id=other) is None


# --- e-mail verification ------------------------------------------------------


async def registered(conn, telegram_id: int = ALICE, username: str = "alice_1"):
    return await register_user(conn, telegram_id=telegram_id, username=username, first_name="A")


async def test_start_stores_only_a_salted_hash_in_one_round_trip(conn):
    await registered(conn)
    async with db.meter.measure() as m:
        v = await start_email_verification(conn, telegram_id=ALICE, email=" Alice@Example.COM ")
    assert m.round_trips == 1
    assert v.email == "alice@example.com"
    assert len(v.code) == 6 and v.code.isdigit()
    assert v.attempts_left == 5
    row = await queries.onboarding_test_verification(conn, telegram_id=ALICE)
    salt, _, digest = row["otp_hash"].partition("$")
    assert len(salt) == 32 and len(digest) == 64
    assert v.code not in row["otp_hash"]
    assert row["expires_at"] == v.expires_at and row["attempts_left"] == 5
    assert (await stored(conn, ALICE))["onboarding"] == "awaiting_otp"
    # The same code twice gets two different hashes: the salt is per row.
    await queries.onboarding_test_age_codes(conn, telegram_id=ALICE, seconds=60)  # resend limit
    again = await start_email_verification(conn, telegram_id=ALICE, email="alice@example.com")
    second = await queries.onboarding_test_verification(conn, telegram_id=ALICE)
    assert second["otp_hash"] != row["otp_hash"] and again.verification_id != v.verification_id


@pytest.mark.parametrize("email", ["", "alice", "alice@", "@example.com", "a b@example.com", "a@b"])
async def test_a_malformed_address_is_refused_before_anything_is_stored(conn, email):
    await registered(conn)
    with pytest.raises(Invalid):
        await start_email_verification(conn, telegram_id=ALICE, email=email)
    assert await queries.onboarding_test_verification(conn, telegram_id=ALICE) is None


async def test_an_unknown_user_cannot_start(conn):
    with pytest.raises(NotFound):
        await start_email_verification(conn, telegram_id=ALICE, email="alice@example.com")


async def test_an_address_another_user_verified_is_refused(conn):
    await seeding.user(conn, BOB, email="taken@example.com")
    await registered(conn)
    with pytest.raises(Invalid, match="already in use"):
        await start_email_verification(conn, telegram_id=ALICE, email="TAKEN@example.com")
    assert await queries.onboarding_test_verification(conn, telegram_id=ALICE) is None
    assert (await stored(conn, ALICE))["onboarding"] == "started"


async def test_the_right_code_verifies_and_terms_complete_onboarding(conn):
    await registered(conn)
    v = await start_email_verification(conn, telegram_id=ALICE, email="alice@example.com")
    check = await verify_email_otp(conn, telegram_id=ALICE, code=v.code)
    assert check.verified and check.email == "alice@example.com" and check.attempts_left == 5
    row = await stored(conn, ALICE)
    assert row["email"] == "alice@example.com" and row["email_verified_at"] is not None
    assert row["onboarding"] == "awaiting_terms"
    # Verified once: there is nothing pending any more.
    with pytest.raises(NotFound):
        await verify_email_otp(conn, telegram_id=ALICE, code=v.code)

    async with db.meter.measure() as m:
        done = await accept_terms(conn, telegram_id=ALICE)
    assert m.round_trips == 1
    assert done.onboarding is OnboardingStep.COMPLETE and not done.created
    assert (await stored(conn, ALICE))["terms_accepted_at"] is not None


async def test_a_wrong_code_costs_an_attempt_and_the_limit_refuses_even_the_right_one(conn):
    await registered(conn)
    v = await start_email_verification(conn, telegram_id=ALICE, email="alice@example.com")
    lefts = []
    for _ in range(5):
        check = await verify_email_otp(conn, telegram_id=ALICE, code=wrong(v.code))
        assert not check.verified
        lefts.append(check.attempts_left)
    assert lefts == [4, 3, 2, 1, 0]
    with pytest.raises(Invalid, match="too many attempts"):
        await verify_email_otp(conn, telegram_id=ALICE, code=v.code)
    row = await stored(conn, ALICE)
    assert row["email"] is None and row["onboarding"] == "awaiting_otp"


async def test_an_expired_code_is_refused_and_nothing_changes(conn):
    await registered(conn)
    v = await start_email_verification(conn, telegram_id=ALICE, email="alice@example.com")
    await queries.onboarding_test_expire(conn, telegram_id=ALICE)
    with pytest.raises(Invalid, match="expired"):
        await verify_email_otp(conn, telegram_id=ALICE, code=v.code)
    assert (await queries.onboarding_test_verification(conn, telegram_id=ALICE))[
        "attempts_left"
    ] == 5
    assert (await stored(conn, ALICE))["email"] is None


async def test_only_the_latest_code_counts(conn):
    await registered(conn)
    old = await start_email_verification(conn, telegram_id=ALICE, email="old@example.com")
    new = await start_email_verification(conn, telegram_id=ALICE, email="new@example.com")
    if old.code != new.code:
        assert not (await verify_email_otp(conn, telegram_id=ALICE, code=old.code)).verified
    check = await verify_email_otp(conn, telegram_id=ALICE, code=new.code)
    assert check.verified and check.email == "new@example.com"


async def test_an_address_verified_elsewhere_meanwhile_is_refused(conn):
    await registered(conn)
    await registered(conn, BOB, "bob_1")
    a = await start_email_verification(conn, telegram_id=ALICE, email="both@example.com")
    b = await start_email_verification(conn, telegram_id=BOB, email="both@example.com")
    assert (await verify_email_otp(conn, telegram_id=BOB, code=b.code)).verified
    with pytest.raises(Invalid, match="already in use"):
        await verify_email_otp(conn, telegram_id=ALICE, code=a.code)
    assert (await stored(conn, ALICE))["email"] is None


async def test_verification_links_escrows_that_invited_the_address_but_not_own(conn):
    await seeding.user(conn, BOB)
    alice = await registered(conn)
    invited = await queries.onboarding_test_invite(
        conn, buyer_telegram_id=BOB, seller_handle="alice@example.com", ref="T-1"
    )
    own = await queries.onboarding_test_invite(
        conn, buyer_telegram_id=ALICE, seller_handle="alice@example.com", ref="T-2"
    )
    v = await start_email_verification(conn, telegram_id=ALICE, email="alice@example.com")
    check = await verify_email_otp(conn, telegram_id=ALICE, code=v.code)
    assert check.verified and check.invited_escrows == 1
    assert await queries.onboarding_test_escrow_seller(conn, escrow_id=invited) == alice.user_id
    assert await queries.onboarding_test_escrow_seller(conn, escrow_id=own) is None


async def test_no_pending_verification_is_not_found(conn):
    await registered(conn)
    with pytest.raises(NotFound):
        await verify_email_otp(conn, telegram_id=ALICE, code="123456")


async def test_terms_only_after_the_email_is_verified(conn):
    await registered(conn)
    with pytest.raises(WrongStatus) as e:
        await accept_terms(conn, telegram_id=ALICE)
    assert e.value.status == "started"
    assert (await stored(conn, ALICE))["terms_accepted_at"] is None
    with pytest.raises(NotFound):
        await accept_terms(conn, telegram_id=BOB)


async def test_a_completed_user_changing_address_stays_complete(conn):
    await registered(conn)
    v = await start_email_verification(conn, telegram_id=ALICE, email="alice@example.com")
    await verify_email_otp(conn, telegram_id=ALICE, code=v.code)
    await accept_terms(conn, telegram_id=ALICE)
    v2 = await start_email_verification(conn, telegram_id=ALICE, email="alice2@example.com")
    assert (await stored(conn, ALICE))["onboarding"] == "complete"
    assert (await verify_email_otp(conn, telegram_id=ALICE, code=v2.code)).verified
    row = await stored(conn, ALICE)
    assert row["onboarding"] == "complete" and row["email"] == "alice2@example.com"
