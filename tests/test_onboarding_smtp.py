"""Onboarding with the code read from a real mail (aiosmtpd on loopback), and the resend
limit of e-mail codes: through the real Application, and at the data layer."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator

import pytest
from test_mailer import Inbox, LoopbackController, smtp_server

from bot.data.enums import OnboardingStep
from bot.data.errors import RateLimited
from bot.data.onboarding import (
    CODES_PER_HOUR,
    RESEND_AFTER_SECONDS,
    onboarding_context,
    register_user,
    start_email_verification,
    verify_email_otp,
)
from bot.db import queries
from bot.mailer import SUBJECT, Mailer

NEW, OTHER = 401, 402
EMAIL = "nkem@example.com"
WAIT = re.compile(r"Please wait (\d+) s before asking for a new code\.")


@pytest.fixture
def smtp() -> Iterator[tuple[LoopbackController, Inbox]]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def inbox(bot, smtp) -> Inbox:
    """The bot mails through the loopback SMTP server; what it sent lands here."""
    controller, inbox = smtp
    bot.bot_data["mailer"] = Mailer(
        controller.hostname,
        controller.port,
        tls="none",
        sender="LockBay <codes@lockbay.example>",
        timeout_seconds=5,
    )
    return inbox


def code_in(inbox: Inbox, index: int = -1, refused: bool = False) -> str:
    """The code as the user reads it in the mail."""
    text = (inbox.refused if refused else inbox.received)[index].text
    match = re.search(r"confirmation code is (\d{6})\b", text)
    assert match, text
    return match.group(1)


def bot_log(caplog) -> str:
    """Everything the bot's process logged (tracebacks included), but the test mail server's
    own log (aiosmtpd's "mail.log" shows the mail's lines)."""
    return "\n".join(caplog.handler.format(r) for r in caplog.records if r.name != "mail.log")


# --- through the bot ------------------------------------------------------------------------


async def test_onboarding_with_the_code_from_the_mail(conn, chat, inbox):
    nkem = chat(NEW, "Nkem")
    await nkem.send("/start")

    sent = await nkem.send("Nkem@Example.com")
    assert sent.round_trips == 1 and "Code sent" in sent.text
    [mail] = inbox.received
    assert mail.rcpt_tos == [EMAIL] and mail.message["To"] == EMAIL
    assert mail.message["Subject"] == SUBJECT

    typed = await nkem.send(code_in(inbox))
    assert typed.round_trips == 1 and f"{EMAIL}</b> is confirmed" in typed.text
    done = await nkem.tap("I accept")
    assert done.round_trips == 1 and "all set" in done.text

    ctx = await onboarding_context(conn, telegram_id=NEW)
    assert ctx.onboarding_complete and ctx.user.email == EMAIL
    assert len(inbox.received) == 1


async def test_a_new_code_too_soon_is_refused_with_the_wait(conn, chat, inbox):
    nkem = chat(NEW)
    await nkem.send("/start")
    await nkem.send(EMAIL)
    first = code_in(inbox)
    stored = await queries.onboarding_test_verification(conn, telegram_id=NEW)

    soon = await nkem.tap("Send a new code")

    assert soon.round_trips == 1
    wait = WAIT.search(soon.text)
    assert wait and 0 < int(wait.group(1)) <= RESEND_AFTER_SECONDS
    # Still at the code step, and nothing was sent or stored.
    assert EMAIL in soon.text and soon.screen.callbacks == ["onboarding:resend", "onboarding:email"]
    assert len(inbox.received) == 1
    assert (await queries.onboarding_test_verification(conn, telegram_id=NEW))["id"] == stored["id"]

    await queries.onboarding_test_age_codes(conn, telegram_id=NEW, seconds=RESEND_AFTER_SECONDS)

    fresh = await nkem.tap("Send a new code")
    assert fresh.round_trips == 1 and "Code sent" in fresh.text
    assert len(inbox.received) == 2
    second = code_in(inbox)
    if second != first:
        assert "Wrong code" in (await nkem.send(first)).text
    assert "is confirmed" in (await nkem.send(second)).text


async def test_the_last_code_still_works_while_a_new_one_is_refused(conn, chat, inbox):
    nkem = chat(NEW)
    await nkem.send("/start")
    await nkem.send(EMAIL)
    refused = await nkem.tap("Send a new code")
    assert WAIT.search(refused.text) and "Type the 6-digit code" in refused.text
    ok = await nkem.send(code_in(inbox))
    assert "is confirmed" in ok.text and len(inbox.received) == 1


async def test_the_same_address_again_at_once_is_refused_but_another_goes(conn, chat, inbox):
    nkem = chat(NEW)
    await nkem.send("/start")
    await nkem.send("typo@exampel.com")
    await nkem.tap("Change e-mail")

    same = await nkem.send("typo@exampel.com")
    assert WAIT.search(same.text) and "send your e-mail address again" in same.text
    assert len(inbox.received) == 1

    # Still at the address step: the corrected address goes at once.
    fixed = await nkem.send(EMAIL)
    assert "Code sent" in fixed.text
    assert [m.rcpt_tos for m in inbox.received] == [["typo@exampel.com"], [EMAIL]]
    assert "is confirmed" in (await nkem.send(code_in(inbox))).text


async def test_a_refusing_mail_server_leaves_the_user_at_the_code_step(conn, chat, inbox, caplog):
    inbox.refuse_data = "554 5.7.1 Rejected"
    nkem = chat(NEW)
    caplog.set_level(logging.DEBUG)
    await nkem.send("/start")

    step = await nkem.send(EMAIL)

    assert "could not send the e-mail" in step.text
    assert step.screen.button("Send a new code") == "onboarding:resend"
    assert inbox.received == []
    # The failure is logged with the server's answer, and without the code.
    assert "mailing the code to nkem@example.com failed" in bot_log(caplog)
    assert "554 5.7.1 Rejected" in bot_log(caplog)
    assert code_in(inbox, refused=True) not in bot_log(caplog)

    inbox.refuse_data = None
    await queries.onboarding_test_age_codes(conn, telegram_id=NEW, seconds=RESEND_AFTER_SECONDS)
    await nkem.tap("Send a new code")
    code = code_in(inbox)
    assert "is confirmed" in (await nkem.send(code)).text
    assert code not in bot_log(caplog)


# --- the limit, at the data layer -----------------------------------------------------------


async def registered(conn, telegram_id: int = NEW) -> None:
    await register_user(conn, telegram_id=telegram_id, username=None, first_name="N")


async def test_a_second_code_at_once_is_refused_with_the_seconds_to_wait(conn):
    await registered(conn)
    first = await start_email_verification(conn, telegram_id=NEW, email=EMAIL)

    with pytest.raises(RateLimited) as e:
        await start_email_verification(conn, telegram_id=NEW, email=EMAIL)

    assert 0 < e.value.retry_after <= RESEND_AFTER_SECONDS
    assert str(e.value) == f"Please wait {e.value.retry_after} s before asking for a new code."
    latest = await queries.onboarding_test_verification(conn, telegram_id=NEW)
    assert latest["id"] == first.verification_id

    # Half the pause gone: the wait says what is left.
    await queries.onboarding_test_age_codes(conn, telegram_id=NEW, seconds=30)
    with pytest.raises(RateLimited) as e:
        await start_email_verification(conn, telegram_id=NEW, email=EMAIL)
    assert 0 < e.value.retry_after <= RESEND_AFTER_SECONDS - 30

    await queries.onboarding_test_age_codes(conn, telegram_id=NEW, seconds=30)
    again = await start_email_verification(conn, telegram_id=NEW, email=EMAIL)
    assert again.verification_id != first.verification_id
    assert (await verify_email_otp(conn, telegram_id=NEW, code=again.code)).verified


async def test_codes_an_hour_are_capped_whatever_the_address(conn):
    await registered(conn)
    for n in range(CODES_PER_HOUR):
        await start_email_verification(conn, telegram_id=NEW, email=f"n{n}@example.com")
        await queries.onboarding_test_age_codes(conn, telegram_id=NEW, seconds=60)

    # The oldest of the hour was sent 5 minutes ago: 55 more to wait.
    with pytest.raises(RateLimited) as e:
        await start_email_verification(conn, telegram_id=NEW, email="another@example.com")
    assert 3300 - 5 <= e.value.retry_after <= 3300
    assert str(e.value) == "Please wait 55 min before asking for a new code."
    # Other users are not limited by it.
    await registered(conn, OTHER)
    await start_email_verification(conn, telegram_id=OTHER, email="other@example.com")

    await queries.onboarding_test_age_codes(conn, telegram_id=NEW, seconds=3300)
    v = await start_email_verification(conn, telegram_id=NEW, email="another@example.com")
    assert v.email == "another@example.com"


async def test_the_limits_are_parameters(conn):
    await registered(conn)
    await start_email_verification(conn, telegram_id=NEW, email=EMAIL, resend_after_seconds=0)
    await start_email_verification(conn, telegram_id=NEW, email=EMAIL, resend_after_seconds=0)
    with pytest.raises(RateLimited):
        await start_email_verification(
            conn, telegram_id=NEW, email=EMAIL, resend_after_seconds=0, codes_per_hour=2
        )
    with pytest.raises(ValueError):
        await start_email_verification(conn, telegram_id=NEW, email=EMAIL, codes_per_hour=0)


async def test_requests_at_once_get_one_code(pool):
    """Presses at once: each statement's snapshot predates the others' codes, and the
    user's row lock still lets only one code through."""
    async with pool.acquire() as conn:
        await registered(conn)

    async def at_once() -> list:
        async with pool.acquire() as watcher, pool.acquire() as holder:
            async with holder.transaction():
                await queries.onboarding_test_lock_user(holder, telegram_id=NEW)
                # The pool's other two connections: both requests started, then queued.
                tasks = [
                    asyncio.create_task(
                        start_email_verification(pool, telegram_id=NEW, email=EMAIL)
                    )
                    for _ in range(2)
                ]
                while await queries.onboarding_test_lock_waiters(watcher) < len(tasks):
                    pass  # each look is a round trip: the requests get there meanwhile
            return await asyncio.gather(*tasks, return_exceptions=True)

    results = await asyncio.wait_for(at_once(), 30)

    made = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, RateLimited)]
    assert len(made) == 1 and len(refused) == 1, results
    assert all(0 < r.retry_after <= RESEND_AFTER_SECONDS + 1 for r in refused)
    async with pool.acquire() as conn:
        latest = await queries.onboarding_test_verification(conn, telegram_id=NEW)
        ctx = await onboarding_context(conn, telegram_id=NEW)
    assert latest["id"] == made[0].verification_id
    assert ctx.user.onboarding is OnboardingStep.AWAITING_OTP
