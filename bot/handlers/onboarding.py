"""Onboarding: `/start` (or a `/start <referral code>` deep link) → e-mail → code → terms → done.

One flow. `/start` costs one statement for everyone: `register_user` creates a
new user (linking the referrer of the deep link) and answers an existing one
untouched, with whether they are blocked and where they stopped, so a user
who left halfway resumes at their step. Every later step is the one movement
it names (start_email_verification, verify_email_otp, accept_terms), keyed on
the presser's Telegram id and re-checked by the database, so the steps need
nothing from the flow's cache but the pending address for "Send a new code".
A wrong code is one statement, the right one two (the try is spent before the
hash is compared). Pure validation (the e-mail's shape, the code's six
digits) costs nothing.

The one-time code goes out through `bot_data["mailer"]`, an async callable
`(email, code) -> None` (bot.mailer.Mailer over SMTP); without one the user is
told the e-mail could not be sent and nothing is written. New codes are
rate-limited by the same statement that stores them (a pause between codes to one
address, a cap per user an hour): a refusal says how long to wait, and the user
stays at their step.
"""

from __future__ import annotations

import dataclasses
import logging
import re

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, MessageHandler

from bot import cache
from bot.data.enums import OnboardingStep
from bot.data.errors import DomainError, Invalid, NotFound, RateLimited, WrongStatus
from bot.data.onboarding import (
    OTP_DIGITS,
    PendingVerification,
    RegisteredUser,
    accept_terms,
    normalize_email,
    register_user,
    start_email_verification,
    verify_email_otp,
)
from bot.handlers.menu import MENU
from bot.handlers.ui import (
    BLOCKED,
    END,
    Context,
    button,
    esc,
    flow,
    keyboard,
    pool,
    show,
    text_input,
)

log = logging.getLogger(__name__)

FLOW = "onboarding"
EMAIL, OTP, TERMS = "email", "otp", "terms"

RESEND = button("🔁 Send a new code", FLOW, "resend")
CHANGE_EMAIL = button("✏️ Change e-mail", FLOW, "email")
ACCEPT = button("✅ I accept", FLOW, "accept")

# Telegram deep-link payloads: up to 64 of these characters; anything else is not a code.
_REFERRAL_CODE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_CODE = re.compile(rf"[0-9]{{{OTP_DIGITS}}}")

ASK_EMAIL = (
    "📧 Send your <b>e-mail address</b>. We will e-mail you a {digits}-digit code to confirm it."
)
BAD_EMAIL = "That does not look like an e-mail address. Send it like <code>name@example.com</code>."
BAD_CODE = "The code is the {digits} digits from the e-mail, like <code>123456</code>. Try again."
NO_MAILER = (
    "⚠️ We could not send the e-mail right now; nothing was changed. "
    "Please try again in a few minutes."
)
MAIL_FAILED = (
    "⚠️ We could not send the e-mail to <b>{email}</b>. "
    "Wait a minute, then press <b>Send a new code</b> to try again, or change the address."
)
SCREEN_GONE = "This screen has expired. Send /start to continue."
TERMS_TEXT = (
    "📜 <b>LockBay terms</b>\n\n"
    "• A buyer's payment is held in escrow until the buyer releases it, or an admin "
    "settles a dispute.\n"
    "• Fees are shown before you confirm anything, and are not refundable once a trade "
    "completes.\n"
    "• Your wallet balances are held for you; cashouts go only to the destinations you give.\n"
    "• Accounts used for fraud are blocked.\n\n"
    "Press <b>I accept</b> to finish setting up your account."
)


def _name(update: Update) -> str:
    return esc(update.effective_user.first_name or "there")


def _ask_code(email: str, note: str = "") -> str:
    lead = f"{note}\n\n" if note else ""
    return (
        f"{lead}🔐 Type the {OTP_DIGITS}-digit code we sent to <b>{esc(email)}</b>.\n"
        "No e-mail? Check your spam folder, or ask for a new code."
    )


def _code_keyboard():
    return keyboard([RESEND], [CHANGE_EMAIL])


async def _show_done(update: Update, context: Context) -> int:
    cache.drop(context.user_data, FLOW)
    await show(
        update,
        f"🎉 <b>You are all set, {_name(update)}!</b>\n\n"
        "Your wallets are ready. Open the menu to fund them, exchange or start an escrow.",
        keyboard([MENU]),
    )
    return END


async def _show_terms(update: Update, note: str = "") -> str:
    await show(update, f"{note}\n\n{TERMS_TEXT}" if note else TERMS_TEXT, keyboard([ACCEPT]))
    return TERMS


# --- /start -----------------------------------------------------------------------


async def start(update: Update, context: Context) -> object:
    """Registers a newcomer, or finds where a returning user stopped: one statement."""
    user = update.effective_user
    payload = context.args[0] if context.args else None
    referral_code = payload if payload and _REFERRAL_CODE.fullmatch(payload) else None
    reg: RegisteredUser = await cache.open_flow(
        context.user_data,
        FLOW,
        lambda: register_user(
            pool(context),
            telegram_id=user.id,
            username=user.username,
            first_name=user.first_name or "",
            referral_code=referral_code,
        ),
    )
    if reg.is_blocked:
        cache.drop(context.user_data, FLOW)
        await show(update, BLOCKED)
        return END
    if reg.onboarding is OnboardingStep.COMPLETE:
        cache.drop(context.user_data, FLOW)
        await show(update, f"👋 Welcome back, {_name(update)}!", keyboard([MENU]))
        return END
    if reg.onboarding is OnboardingStep.AWAITING_TERMS:
        return await _show_terms(update, "✅ Your e-mail address is confirmed.")
    pending = reg.pending_verification
    if reg.onboarding is OnboardingStep.AWAITING_OTP and pending is not None:
        if pending.expired:
            note = "⌛ Your last code has expired. Ask for a new one."
        elif pending.attempts_left <= 0:
            note = "⛔ Your last code was tried too many times. Ask for a new one."
        else:
            note = "👋 Welcome back! Let's finish setting up your account."
        await show(update, _ask_code(pending.email, note), _code_keyboard())
        return OTP
    greeting = (
        f"👋 <b>Welcome to LockBay, {_name(update)}!</b>\n"
        "Safe trades with strangers: the buyer's money waits in escrow until the deal is done."
        if reg.created
        else "👋 Welcome back! Let's finish setting up your account."
    )
    await show(update, f"{greeting}\n\n{ASK_EMAIL.format(digits=OTP_DIGITS)}")
    return EMAIL


# --- e-mail -------------------------------------------------------------------------


async def _send_code(update: Update, context: Context, email: str, stay: str) -> str:
    """A new code for `email` (one statement), mailed; `stay` is the step to remain at if not."""
    mailer = context.bot_data.get("mailer")
    if mailer is None:
        # Checked before the write: a code nobody can receive is not worth storing.
        log.warning("no mailer configured: cannot send an e-mail code to %s", email)
        markup = _code_keyboard() if stay == OTP else None
        await show(update, NO_MAILER, markup)
        return stay
    try:
        sent = await start_email_verification(
            pool(context), telegram_id=update.effective_user.id, email=email
        )
    except Invalid as err:  # the address belongs to another account
        await show(update, f"{esc(err.message())} Send another address.")
        return EMAIL
    except RateLimited as err:  # a code went out moments ago: nothing was written
        note = f"⏳ {esc(err.message())}"
        if stay == OTP:
            # The last code may still be valid: it can be typed meanwhile.
            await show(update, _ask_code(email, note), _code_keyboard())
        else:
            await show(update, f"{note}\n\nThen send your e-mail address again.")
        return stay
    except NotFound:
        cache.drop(context.user_data, FLOW)
        await show(update, SCREEN_GONE)
        return END
    reg = cache.cached(context.user_data, FLOW)
    if reg is not None:
        # Kept for "Send a new code"; the database re-checks everything anyway.
        pending = PendingVerification(
            email=sent.email,
            expires_at=sent.expires_at,
            attempts_left=sent.attempts_left,
            expired=False,
        )
        cache.replace(
            context.user_data, FLOW, dataclasses.replace(reg, pending_verification=pending)
        )
    try:
        await mailer(sent.email, sent.code)
    except Exception:  # any mailer failure: the user can ask again
        log.exception("mailing the code to %s failed", sent.email)
        await show(update, MAIL_FAILED.format(email=esc(sent.email)), _code_keyboard())
        return OTP
    await show(update, _ask_code(sent.email, "📨 Code sent."), _code_keyboard())
    return OTP


async def got_email(update: Update, context: Context) -> str:
    try:
        email = normalize_email(update.effective_message.text)
    except Invalid:
        await show(update, BAD_EMAIL)
        return EMAIL
    return await _send_code(update, context, email, stay=EMAIL)


async def change_email(update: Update, context: Context) -> object:
    if cache.cached(context.user_data, FLOW) is None:
        await show(update, SCREEN_GONE)
        return END
    await show(update, ASK_EMAIL.format(digits=OTP_DIGITS))
    return EMAIL


async def resend(update: Update, context: Context) -> object:
    reg = cache.cached(context.user_data, FLOW)
    if reg is None:
        await show(update, SCREEN_GONE)
        return END
    if reg.pending_verification is None:
        await show(update, ASK_EMAIL.format(digits=OTP_DIGITS))
        return EMAIL
    return await _send_code(update, context, reg.pending_verification.email, stay=OTP)


# --- code ---------------------------------------------------------------------------


async def got_code(update: Update, context: Context) -> object:
    code = "".join(update.effective_message.text.split())
    if not _CODE.fullmatch(code):
        await show(update, BAD_CODE.format(digits=OTP_DIGITS), _code_keyboard())
        return OTP
    try:
        check = await verify_email_otp(
            pool(context), telegram_id=update.effective_user.id, code=code
        )
    except Invalid as err:  # expired, used up, or the address was taken meanwhile
        await show(update, f"⛔ {esc(err.message())}", _code_keyboard())
        return OTP
    except NotFound:  # no code waiting: it was verified already, or never asked for
        await show(update, f"There is no code waiting.\n\n{ASK_EMAIL.format(digits=OTP_DIGITS)}")
        return EMAIL
    if not check.verified:
        if check.attempts_left <= 0:
            note = "❌ Wrong code, and that was the last try. Ask for a new code."
        else:
            note = f"❌ Wrong code. {check.attempts_left} attempt(s) left."
        await show(update, note, _code_keyboard())
        return OTP
    return await _show_terms(update, f"✅ <b>{esc(check.email)}</b> is confirmed.")


# --- terms --------------------------------------------------------------------------


async def accept(update: Update, context: Context) -> object:
    """Completes the sign-up; works from the terms screen even after a restart."""
    try:
        await accept_terms(pool(context), telegram_id=update.effective_user.id)
    except WrongStatus as err:
        if err.status == OnboardingStep.COMPLETE:  # a second press
            return await _show_done(update, context)
        cache.drop(context.user_data, FLOW)
        await show(update, "Your e-mail address is not confirmed yet. Send /start to continue.")
        return END
    except DomainError:
        cache.drop(context.user_data, FLOW)
        await show(update, SCREEN_GONE)
        return END
    return await _show_done(update, context)


async def terms_reminder(update: Update, context: Context) -> str:
    return await _show_terms(update, "Press <b>I accept</b> below to finish.")


def handlers() -> list[BaseHandler]:
    return [
        flow(
            FLOW,
            entry_points=[
                CommandHandler("start", start),
                CallbackQueryHandler(resend, pattern=r"^onboarding:resend$"),
                CallbackQueryHandler(change_email, pattern=r"^onboarding:email$"),
                CallbackQueryHandler(accept, pattern=r"^onboarding:accept$"),
            ],
            states={
                EMAIL: [MessageHandler(text_input(), got_email)],
                OTP: [MessageHandler(text_input(), got_code)],
                TERMS: [MessageHandler(text_input(), terms_reminder)],
            },
        )
    ]
