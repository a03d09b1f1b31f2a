"""Why a movement was refused: named errors carrying what a handler needs to explain it.

Movement queries answer with one row whose `outcome` column is `ok` or the
name of a refusal below; `refusal(outcome, **details)` turns it into the
error to raise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

# Told the outcome of every refusal as it is made (bot.metrics counts them).
refusal_listeners: list[Callable[[str], None]] = []


class DomainError(Exception):
    """A movement refused; nothing changed."""

    outcome = "refused"

    def __new__(cls, *args, **kwargs):
        for listener in refusal_listeners:
            listener(cls.outcome)
        return super().__new__(cls, *args, **kwargs)

    def __str__(self) -> str:
        return self.message()

    def message(self) -> str:
        return "That cannot be done."


@dataclass(eq=False)
class NotFound(DomainError):
    what: str
    outcome = "not_found"

    def message(self) -> str:
        return f"No such {self.what}."


@dataclass(eq=False)
class InsufficientFunds(DomainError):
    currency: str
    available: Decimal
    needed: Decimal
    outcome = "insufficient_funds"

    def message(self) -> str:
        return f"Not enough {self.currency}: {self.available} available, {self.needed} needed."


@dataclass(eq=False)
class BelowMinimum(DomainError):
    currency: str
    minimum: Decimal
    outcome = "below_minimum"

    def message(self) -> str:
        return f"The minimum is {self.minimum} {self.currency}."


@dataclass(eq=False)
class AboveLimit(DomainError):
    currency: str
    maximum: Decimal
    outcome = "above_limit"

    def message(self) -> str:
        return f"The maximum is {self.maximum} {self.currency}."


@dataclass(eq=False)
class WrongStatus(DomainError):
    subject: str
    status: str
    action: str
    outcome = "wrong_status"

    def message(self) -> str:
        return f"This {self.subject} is {self.status.replace('_', ' ')}: it cannot {self.action}."


@dataclass(eq=False)
class NotAParty(DomainError):
    subject: str
    outcome = "not_a_party"

    def message(self) -> str:
        return f"You are not a party to this {self.subject}."


@dataclass(eq=False)
class QuoteExpired(DomainError):
    expired_at: datetime
    outcome = "quote_expired"

    def message(self) -> str:
        return "This quote has expired. Ask for a fresh one."


@dataclass(eq=False)
class StaleRate(DomainError):
    pair: str
    fetched_at: datetime | None
    outcome = "stale_rate"

    def message(self) -> str:
        return f"The {self.pair} rate is out of date, so no quote can be made right now."


@dataclass(eq=False)
class Duplicate(DomainError):
    what: str
    outcome = "duplicate"

    def message(self) -> str:
        return f"This {self.what} was already recorded."


@dataclass(eq=False)
class IdempotencyConflict(DomainError):
    key: str
    outcome = "idempotency_conflict"

    def message(self) -> str:
        return "This request was already made with different details."


@dataclass(eq=False)
class Invalid(DomainError):
    """Input the movement's own rules refuse (a bad OTP, a self-trade, ...)."""

    reason: str
    outcome = "invalid"

    def message(self) -> str:
        return self.reason


@dataclass(eq=False)
class AccountBlocked(DomainError):
    """The user is blocked: they may move nothing."""

    outcome = "blocked"

    def message(self) -> str:
        return "Your account is blocked."


@dataclass(eq=False)
class RateLimited(DomainError):
    """Asked again too soon (a new e-mail code, ...): allowed in `retry_after` seconds."""

    retry_after: int
    action: str = "asking again"
    outcome = "rate_limited"

    def message(self) -> str:
        seconds = max(self.retry_after, 1)
        # Minutes read better once the wait is long (the hourly limit).
        wait = f"{seconds} s" if seconds < 120 else f"{-(-seconds // 60)} min"
        return f"Please wait {wait} before {self.action}."


REFUSALS: dict[str, type[DomainError]] = {
    cls.outcome: cls
    for cls in (
        NotFound,
        InsufficientFunds,
        BelowMinimum,
        AboveLimit,
        WrongStatus,
        NotAParty,
        QuoteExpired,
        StaleRate,
        Duplicate,
        IdempotencyConflict,
        Invalid,
        AccountBlocked,
        RateLimited,
    )
}


def refusal(outcome: str, **details) -> DomainError:
    return REFUSALS[outcome](**details)
