"""Onboarding movements (`sql/onboarding.sql`): registration, e-mail one-time codes, terms."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from bot.data.enums import OnboardingStep
from bot.data.errors import Invalid, NotFound, RateLimited, WrongStatus, refusal
from bot.data.rows import WalletBalance
from bot.db import queries

FIRST_NAME_MAX = 64
# The schema's users_email_shape check, plus the length SMTP allows.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
EMAIL_MAX = 254
OTP_DIGITS = 6
# Resend limits of e-mail codes, so that no mailbox is flooded, nor the SMTP relay's
# reputation spent, by "Send a new code" pressed over and over: a pause between codes to
# one address (another address, a corrected typo, goes at once), and codes per user an hour.
RESEND_AFTER_SECONDS = 60
CODES_PER_HOUR = 5
# A concurrent registration of the same person can win the insert; one more
# try sees it. More tries are for the unlikely: a referral code collision.
_REGISTER_TRIES = 3


@dataclass(frozen=True, slots=True)
class RegisteredUser:
    user_id: int
    telegram_id: int
    created: bool  # false when the user already existed: nothing changed
    referrer_id: int | None
    onboarding: OnboardingStep
    referral_code: str
    invited_escrows: int = 0  # escrows waiting for this user, linked just now
    # For /start to resume an existing user at their step with this one statement.
    is_blocked: bool = False
    pending_verification: PendingVerification | None = None


@dataclass(frozen=True, slots=True)
class EmailVerification:
    verification_id: int
    email: str
    code: str  # plaintext, for the mailer only; the database keeps a salted hash
    expires_at: datetime
    attempts_left: int


@dataclass(frozen=True, slots=True)
class OtpCheck:
    verified: bool
    attempts_left: int
    email: str
    invited_escrows: int = 0  # escrows that invited this address, linked just now


def _pending(row) -> PendingVerification | None:
    if row["pending_email"] is None:
        return None
    return PendingVerification(
        email=row["pending_email"],
        expires_at=row["pending_expires_at"],
        attempts_left=row["pending_attempts_left"],
        expired=row["pending_expired"],
    )


def _registered(row, *, created: bool | None = None) -> RegisteredUser:
    return RegisteredUser(
        user_id=row["id"],
        telegram_id=row["telegram_id"],
        created=row["created"] if created is None else created,
        referrer_id=row["referrer_id"],
        onboarding=OnboardingStep(row["onboarding"]),
        referral_code=row["referral_code"],
        invited_escrows=row["invited_escrows"] if created is None else 0,
    )


async def register_user(
    conn,
    *,
    telegram_id: int,
    username: str | None,
    first_name: str,
    referral_code: str | None = None,
) -> RegisteredUser:
    """The user, created with a wallet per currency on first contact; safe to repeat.

    One statement; a second one only when a concurrent registration of the
    same user committed first (that statement could not see it).
    """
    params = dict(
        telegram_id=telegram_id,
        username=(username or "").lstrip("@") or None,
        first_name=(first_name or "")[:FIRST_NAME_MAX],
        referral_code=(referral_code or "").strip() or None,
    )
    for _ in range(_REGISTER_TRIES):
        row = await queries.onboarding_register_user(conn, **params)
        if row is not None:
            return dataclasses.replace(
                _registered(row), is_blocked=row["is_blocked"], pending_verification=_pending(row)
            )
    raise RuntimeError(f"registering telegram user {telegram_id} kept conflicting")


def normalize_email(email: str) -> str:
    """A lowercase e-mail address, or Invalid when it does not look like one."""
    email = email.strip().lower()
    if len(email) > EMAIL_MAX or not _EMAIL.match(email):
        raise Invalid(reason="That does not look like an e-mail address.")
    return email


def _digest(code: str, salt: bytes) -> bytes:
    # scrypt makes each guess against a leaked hash cost memory and time.
    return hashlib.scrypt(code.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)


async def _hash_code(code: str, telegram_id: int) -> str:
    """The stored form of a code. The salt is the user's own and derived, not stored
    apart: the OTP step can hash what was typed before it asks, and judge the code
    in the same statement that locks the verification (one round trip)."""
    salt = hashlib.sha256(f"lockbay-otp:{telegram_id}".encode()).digest()[:16]
    digest = await asyncio.to_thread(_digest, code, salt)
    return f"{salt.hex()}${digest.hex()}"


async def start_email_verification(
    conn,
    *,
    telegram_id: int,
    email: str,
    resend_after_seconds: int = RESEND_AFTER_SECONDS,
    codes_per_hour: int = CODES_PER_HOUR,
) -> EmailVerification:
    """A fresh one-time code for `email`: its hash stored, the code returned for the mailer.

    RateLimited (with the seconds to wait) sooner than `resend_after_seconds` after the
    user's last code to this address, or past `codes_per_hour` codes (to any address)
    within the last hour.
    """
    if resend_after_seconds < 0 or codes_per_hour < 1:
        raise ValueError("resend limits: seconds cannot be negative, at least 1 code an hour")
    email = normalize_email(email)
    code = f"{secrets.randbelow(10**OTP_DIGITS):0{OTP_DIGITS}d}"
    row = await queries.onboarding_start_email_verification(
        conn,
        telegram_id=telegram_id,
        email=email,
        otp_hash=await _hash_code(code, telegram_id),
        resend_seconds=resend_after_seconds,
        codes_per_hour=codes_per_hour,
    )
    outcome = row["outcome"]
    if outcome == "not_found":
        raise NotFound("user")
    if outcome == "invalid":
        raise Invalid(reason="That e-mail address is already in use.")
    if outcome == "rate_limited":
        raise RateLimited(retry_after=row["retry_after"], action="asking for a new code")
    if outcome != "ok":
        raise refusal(outcome)
    return EmailVerification(
        verification_id=row["verification_id"],
        email=row["email"],
        code=code,
        expires_at=row["expires_at"],
        attempts_left=row["attempts_left"],
    )


async def verify_email_otp(conn, *, telegram_id: int, code: str) -> OtpCheck:
    """Checks `code` against the user's pending verification, in one statement.

    A wrong code is not an error: it costs an attempt and says how many are
    left. Expired codes and exhausted attempts are refused (Invalid) without
    changing anything.
    """
    code = "".join(code.split())  # "123 456" as typed is still the code
    try:
        row = await queries.onboarding_verify_email(
            conn, telegram_id=telegram_id, otp_hash=await _hash_code(code, telegram_id)
        )
    except asyncpg.UniqueViolationError as e:
        # Another account verified the same address in the same instant.
        if e.constraint_name == "users_email_lower":
            raise Invalid(reason="That e-mail address is already in use.") from e
        raise
    outcome = row["outcome"]
    if outcome == "not_found":
        raise NotFound("verification")
    if outcome == "expired":
        raise Invalid(reason="This code has expired. Ask for a new one.")
    if outcome == "exhausted":
        raise Invalid(reason="There were too many attempts with this code. Ask for a new one.")
    if outcome == "taken":
        raise Invalid(reason="That e-mail address is already in use.")
    if outcome == "wrong":
        return OtpCheck(verified=False, attempts_left=row["attempts_left"], email=row["email"])
    if outcome != "ok":
        raise refusal(outcome)
    return OtpCheck(
        verified=True,
        attempts_left=row["attempts_left"],
        email=row["email"],
        invited_escrows=row["invited_escrows"],
    )


async def accept_terms(conn, *, telegram_id: int) -> RegisteredUser:
    """Completes onboarding; only right after the e-mail is verified."""
    row = await queries.onboarding_accept_terms(conn, telegram_id=telegram_id)
    outcome = row["outcome"]
    if outcome == "not_found":
        raise NotFound("user")
    if outcome == "wrong_status":
        raise WrongStatus(subject="sign-up", status=row["onboarding"], action="accept the terms")
    if outcome != "ok":
        raise refusal(outcome)
    return _registered(row, created=False)


# --- screens ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OnboardingUser:
    id: int
    telegram_id: int
    username: str | None
    first_name: str
    email: str | None  # set once verified
    onboarding: OnboardingStep
    referral_code: str
    is_blocked: bool = False


@dataclass(frozen=True, slots=True)
class PendingVerification:
    email: str
    expires_at: datetime
    attempts_left: int
    expired: bool  # as the database clock saw it when the screen was read


@dataclass(frozen=True, slots=True)
class OnboardingContext:
    user: OnboardingUser
    email_verified: bool
    phone_verified: bool
    onboarding_complete: bool
    # The latest code sent, while not verified; older codes can no longer be entered.
    pending_verification: PendingVerification | None
    wallets: tuple[WalletBalance, ...]  # one per currency, by currency


async def onboarding_context(conn, *, telegram_id: int) -> OnboardingContext | None:
    """The sign-up screen in one round trip; None for someone who never registered."""
    row = await queries.onboarding_context(conn, telegram_id=telegram_id)
    if row is None:
        return None
    return OnboardingContext(
        user=OnboardingUser(
            id=row["id"],
            telegram_id=row["telegram_id"],
            username=row["username"],
            first_name=row["first_name"],
            email=row["email"],
            onboarding=OnboardingStep(row["onboarding"]),
            referral_code=row["referral_code"],
            is_blocked=row["is_blocked"],
        ),
        email_verified=row["email_verified"],
        phone_verified=row["phone_verified"],
        onboarding_complete=row["onboarding_complete"],
        pending_verification=_pending(row),
        wallets=tuple(WalletBalance.from_json(w) for w in row["wallets"]),
    )
