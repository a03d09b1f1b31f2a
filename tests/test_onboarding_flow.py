"""/start onboarding through the real Application: e-mail, code, terms, resume, bad input."""

from __future__ import annotations

import asyncio
import logging

import pytest
import seeding

from bot.data.enums import OnboardingStep
from bot.data.errors import Invalid
from bot.data.onboarding import onboarding_context, verify_email_otp
from bot.data.referral import referral_context
from bot.db import queries

NEW, REFERRER, OTHER = 301, 302, 303


class Mailer:
    """Stands in for SMTP: keeps every (email, code) it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def __call__(self, email: str, code: str) -> None:
        self.sent.append((email, code))

    @property
    def code(self) -> str:
        return self.sent[-1][1]


class BrokenMailer:
    async def __call__(self, email: str, code: str) -> None:
        raise ConnectionError("smtp down")


@pytest.fixture
def mailer(bot) -> Mailer:
    bot.bot_data["mailer"] = m = Mailer()
    return m


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


async def step_of(conn, telegram_id: int) -> OnboardingStep:
    return (await onboarding_context(conn, telegram_id=telegram_id)).user.onboarding


async def test_a_new_user_onboards_in_one_round_trip_per_step(conn, chat, mailer):
    nkem = chat(NEW, "Nkem <3", username="nkem")
    steps = []

    start = await nkem.send("/start")
    steps.append(start)
    assert start.round_trips == 1
    assert "Welcome to LockBay, Nkem &lt;3" in start.text
    assert "e-mail address" in start.text
    assert await step_of(conn, NEW) is OnboardingStep.STARTED

    email = await nkem.send("  Nkem@Example.com ")
    steps.append(email)
    assert email.round_trips == 1
    assert mailer.sent == [("nkem@example.com", mailer.code)]
    assert "nkem@example.com" in email.text
    assert email.screen.callbacks == ["onboarding:resend", "onboarding:email"]
    assert await step_of(conn, NEW) is OnboardingStep.AWAITING_OTP

    # The right code: one statement judges it and verifies the address.
    code = await nkem.send(mailer.code[:3] + " " + mailer.code[3:])
    steps.append(code)
    assert code.round_trips == 1
    assert "nkem@example.com</b> is confirmed" in code.text
    assert code.screen.callbacks == ["onboarding:accept"]

    done = await nkem.tap("I accept")
    steps.append(done)
    assert done.round_trips == 1
    assert "all set" in done.text
    assert done.screen.callbacks == ["menu:open"]
    # The terms screen became the welcome, in place.
    assert done.screen.message_id == code.screen.message_id

    assert [s.round_trips for s in steps] == [1, 1, 1, 1]
    assert sum(s.round_trips for s in steps) == 4
    ctx = await onboarding_context(conn, telegram_id=NEW)
    assert ctx.onboarding_complete and ctx.user.email == "nkem@example.com"
    assert len(ctx.wallets) == 5
    # The flow's context went with it.
    assert "onboarding" not in bot_flows(nkem)


def bot_flows(chat) -> dict:
    return chat.app.user_data[chat.id].get("flows", {})


async def test_a_complete_user_is_welcomed_back_in_one_round_trip(conn, chat):
    await seeding.user(conn, NEW, "Ada")
    step = await chat(NEW, "Ada").send("/start")
    assert step.round_trips == 1
    assert "Welcome back, Ada" in step.text
    assert step.screen.callbacks == ["menu:open"]
    assert len(step.replies) == 1


async def test_a_blocked_user_gets_one_message(conn, chat, mailer):
    await seeding.user(conn, NEW, "Kemi")
    await seeding.block(conn, NEW)
    kemi = chat(NEW, "Kemi")
    step = await kemi.send("/start")
    assert step.round_trips == 1
    assert len(step.replies) == 1 and "blocked" in step.text
    assert step.screen.callbacks == []
    # Not in the flow: typing an address does nothing.
    after = await kemi.send("kemi@example.com")
    assert after.replies == [] and after.round_trips == 0 and mailer.sent == []


async def test_a_blocked_user_half_way_through_is_refused_too(conn, chat, mailer):
    await chat(NEW).send("/start")
    await seeding.block(conn, NEW)
    step = await chat(NEW).send("/start")
    assert step.text.startswith("⛔") and "blocked" in step.text
    assert (await onboarding_context(conn, telegram_id=NEW)).user.is_blocked


async def test_a_referral_deep_link_links_the_referrer(conn, chat, mailer):
    await seeding.user(conn, REFERRER, "Boss")
    code = (await referral_context(conn, telegram_id=REFERRER)).referral_code
    before = (await referral_context(conn, telegram_id=REFERRER)).referred_count

    step = await chat(NEW, "Newbie").send(f"/start {code.lower()}")

    assert step.round_trips == 1 and "Welcome to LockBay" in step.text
    ref = await referral_context(conn, telegram_id=REFERRER)
    assert ref.referred_count == before + 1
    assert [r.display_name for r in ref.latest] == ["Newbie"]
    # A later link changes nothing for an existing user.
    await seeding.user(conn, OTHER, "Other")
    other_code = (await referral_context(conn, telegram_id=OTHER)).referral_code
    await chat(NEW, "Newbie").send(f"/start {other_code}")
    assert (await referral_context(conn, telegram_id=OTHER)).referred_count == 0


async def test_a_malformed_deep_link_is_ignored(conn, chat, mailer):
    step = await chat(NEW).send("/start <b>x</b>;drop")
    assert step.round_trips == 1 and "Welcome to LockBay" in step.text
    row = await queries.onboarding_test_user(conn, telegram_id=NEW)
    assert row["referrer_id"] is None


async def test_resume_at_the_code_step_then_at_the_terms(conn, chat, mailer):
    nkem = chat(NEW, "Nkem")
    await nkem.send("/start")
    await nkem.send("nkem@example.com")
    await nkem.send("/cancel")

    back = await nkem.send("/start")
    assert back.round_trips == 1
    assert "Welcome back" in back.text and "nkem@example.com" in back.text
    assert "onboarding:resend" in back.screen.callbacks

    code = await nkem.send(mailer.code)
    assert code.round_trips == 1 and "I accept" in code.screen.buttons[0][0][0]

    # Left again at the terms: /start shows them again.
    await nkem.send("/cancel")
    terms = await nkem.send("/start")
    assert terms.round_trips == 1
    assert "confirmed" in terms.text and terms.screen.callbacks == ["onboarding:accept"]
    done = await nkem.tap("I accept")
    assert "all set" in done.text and done.round_trips == 1
    assert await step_of(conn, NEW) is OnboardingStep.COMPLETE


async def test_accept_works_after_the_flow_was_lost(conn, chat, mailer):
    """A restarted bot forgets conversations; the terms button still completes the sign-up."""
    nkem = chat(NEW)
    await nkem.send("/start")
    await nkem.send("nkem@example.com")
    terms = await nkem.send(mailer.code)
    nkem.app.user_data[NEW].clear()
    await nkem.send("/menu")  # leaves the flow
    done = await nkem.press("onboarding:accept", on=terms.screen)
    assert done.round_trips == 1 and "all set" in done.text
    # Pressed twice: still done, nothing else.
    again = await nkem.press("onboarding:accept", on=terms.screen)
    assert again.round_trips == 1 and again.alerts == []


@pytest.mark.parametrize(
    "garbage",
    ["hello", "nkem@", "@example.com", "a b@example.com", "x" * 4000, "😀🎉", "📧@"],
)
async def test_a_bad_address_gets_a_clear_message_and_changes_nothing(conn, chat, mailer, garbage):
    nkem = chat(NEW)
    await nkem.send("/start")

    step = await nkem.send(garbage)

    assert step.round_trips == 0
    assert "does not look like an e-mail address" in step.text
    assert len(step.replies) == 1
    assert mailer.sent == []
    assert await queries.onboarding_test_verification(conn, telegram_id=NEW) is None
    assert await step_of(conn, NEW) is OnboardingStep.STARTED
    # Same step: a good address now works.
    ok = await nkem.send("nkem@example.com")
    assert ok.round_trips == 1 and mailer.sent[-1][0] == "nkem@example.com"


async def test_an_address_another_account_holds_is_refused_at_the_same_step(conn, chat, mailer):
    await seeding.user(conn, OTHER, email="taken@example.com")
    nkem = chat(NEW)
    await nkem.send("/start")
    step = await nkem.send("TAKEN@example.com")
    assert step.round_trips == 1 and "already in use" in step.text
    assert mailer.sent == []
    ok = await nkem.send("nkem@example.com")
    assert ok.round_trips == 1 and mailer.sent == [("nkem@example.com", mailer.code)]


@pytest.mark.parametrize("typed", ["abcdef", "12345", "1234567", "12 34 5", "١٢٣٤٥٦", "🔢"])
async def test_a_malformed_code_is_refused_without_spending_a_try(conn, chat, mailer, typed):
    nkem = chat(NEW)
    await nkem.send("/start")
    await nkem.send("nkem@example.com")

    step = await nkem.send(typed)

    assert step.round_trips == 0
    assert "6 digits" in step.text
    assert (await queries.onboarding_test_verification(conn, telegram_id=NEW))["attempts_left"] == 5
    ok = await nkem.send(mailer.code)
    assert "is confirmed" in ok.text


async def test_wrong_codes_count_down_then_a_new_code_works(conn, chat, mailer):
    nkem = chat(NEW)
    await nkem.send("/start")
    await nkem.send("nkem@example.com")
    first = mailer.code

    lefts = []
    for _ in range(5):
        step = await nkem.send(wrong(first))
        assert step.round_trips == 1
        lefts.append(step.text)
    assert "4 attempt(s) left" in lefts[0] and "1 attempt(s) left" in lefts[3]
    assert "last try" in lefts[4]
    assert "onboarding:resend" in step.screen.callbacks

    # Even the right code is refused now, and nothing is spent.
    refused = await nkem.send(first)
    assert refused.round_trips == 1 and "too many attempts" in refused.text
    assert refused.screen.button("Send a new code") == "onboarding:resend"
    assert await step_of(conn, NEW) is OnboardingStep.AWAITING_OTP

    await queries.onboarding_test_age_codes(conn, telegram_id=NEW, seconds=60)  # resend limit
    fresh = await nkem.tap("Send a new code")
    assert fresh.round_trips == 1
    assert len(mailer.sent) == 2 and mailer.sent[1][0] == "nkem@example.com"
    ok = await nkem.send(mailer.code)
    assert ok.round_trips == 1 and "is confirmed" in ok.text


async def test_an_expired_code_asks_for_a_new_one(conn, chat, mailer):
    nkem = chat(NEW)
    await nkem.send("/start")
    await nkem.send("nkem@example.com")
    await queries.onboarding_test_expire(conn, telegram_id=NEW)

    step = await nkem.send(mailer.code)
    assert step.round_trips == 1 and "expired" in step.text
    assert (await queries.onboarding_test_verification(conn, telegram_id=NEW))["attempts_left"] == 5

    # /start also says so, and offers the new code.
    back = await nkem.send("/start")
    assert "expired" in back.text and "onboarding:resend" in back.screen.callbacks
    # A code expires long after the resend limit's pause.
    await queries.onboarding_test_age_codes(conn, telegram_id=NEW, seconds=60)
    await nkem.tap("Send a new code")
    ok = await nkem.send(mailer.code)
    assert "is confirmed" in ok.text


async def test_changing_the_address_at_the_code_step(conn, chat, mailer):
    nkem = chat(NEW)
    await nkem.send("/start")
    await nkem.send("typo@exampel.com")
    ask = await nkem.tap("Change e-mail")
    assert ask.round_trips == 0 and "e-mail address" in ask.text
    await nkem.send("nkem@example.com")
    ok = await nkem.send(mailer.code)
    assert "nkem@example.com</b> is confirmed" in ok.text


async def test_without_a_mailer_the_user_is_told_and_nothing_is_written(conn, chat, caplog):
    nkem = chat(NEW)
    await nkem.send("/start")
    with caplog.at_level(logging.WARNING, logger="bot.handlers.onboarding"):
        step = await nkem.send("nkem@example.com")
    assert step.round_trips == 0
    assert "could not send the e-mail" in step.text
    assert any("no mailer" in r.message for r in caplog.records)
    assert await queries.onboarding_test_verification(conn, telegram_id=NEW) is None
    # Same step: once a mailer is there, the address goes through.
    nkem.app.bot_data["mailer"] = mailer = Mailer()
    ok = await nkem.send("nkem@example.com")
    assert ok.round_trips == 1 and mailer.sent[0][0] == "nkem@example.com"


async def test_a_failing_mailer_offers_a_new_code(conn, chat, bot):
    bot.bot_data["mailer"] = BrokenMailer()
    nkem = chat(NEW)
    await nkem.send("/start")
    step = await nkem.send("nkem@example.com")
    assert "could not send the e-mail" in step.text
    assert step.screen.button("Send a new code") == "onboarding:resend"

    bot.bot_data["mailer"] = mailer = Mailer()
    # The code was stored (a timed-out send may still arrive): the resend pause holds.
    soon = await nkem.tap("Send a new code")
    assert soon.round_trips == 1 and "Please wait" in soon.text and mailer.sent == []
    await queries.onboarding_test_age_codes(conn, telegram_id=NEW, seconds=60)
    again = await nkem.tap("Send a new code")
    assert again.round_trips == 1 and "Code sent" in again.text
    ok = await nkem.send(mailer.code)
    assert "is confirmed" in ok.text


async def test_text_at_the_terms_step_only_reminds(conn, chat, mailer):
    nkem = chat(NEW)
    await nkem.send("/start")
    await nkem.send("nkem@example.com")
    await nkem.send(mailer.code)
    step = await nkem.send("ok fine 👍")
    assert step.round_trips == 0
    assert "Press <b>I accept</b>" in step.text and step.screen.callbacks == ["onboarding:accept"]
    assert await step_of(conn, NEW) is OnboardingStep.AWAITING_TERMS


async def test_a_stale_code_button_without_the_flow_sends_back_to_start(conn, chat, mailer):
    nkem = chat(NEW)
    await nkem.send("/start")
    sent = await nkem.send("nkem@example.com")
    await nkem.send("/cancel")
    step = await nkem.press("onboarding:resend", on=sent.screen)
    assert step.round_trips == 0 and "/start" in step.text
    assert len(mailer.sent) == 1


async def test_parallel_guesses_never_get_more_tries_than_the_limit(pool, chat, mailer):
    """The code step spends the try before comparing: ten guesses at once, five judged."""
    nkem = chat(NEW)
    await nkem.send("/start")
    await nkem.send("nkem@example.com")
    guess = wrong(mailer.code)

    results = await asyncio.gather(
        *(verify_email_otp(pool, telegram_id=NEW, code=guess) for _ in range(10)),
        return_exceptions=True,
    )

    judged = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, Invalid)]
    assert len(judged) == 5 and not any(r.verified for r in judged)
    assert sorted(r.attempts_left for r in judged) == [0, 1, 2, 3, 4]
    assert len(refused) == 5
    async with pool.acquire() as conn:
        row = await queries.onboarding_test_verification(conn, telegram_id=NEW)
    assert row["attempts_left"] == 0 and row["verified_at"] is None
