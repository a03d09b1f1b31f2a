"""Support movements (`sql/support.sql`): tickets, their messages, closing them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.data.enums import TicketStatus
from bot.data.errors import Duplicate, Invalid, NotAParty, NotFound, WrongStatus, refusal
from bot.data.rows import moment
from bot.db import queries

SUBJECT_MAX = 200
BODY_MAX = 4000


@dataclass(frozen=True, slots=True)
class Ticket:
    id: int
    user_id: int
    subject: str
    status: TicketStatus
    admin_id: int | None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None


@dataclass(frozen=True, slots=True)
class SupportMessage:
    id: int
    ticket_id: int
    sender_id: int
    from_admin: bool
    body: str
    created_at: datetime
    ticket_status: TicketStatus  # after this message
    subject: str = ""  # the ticket's, for the notification
    owner_telegram_id: int | None = None  # whom to tell about an admin reply


def _ticket(row) -> Ticket:
    return Ticket(
        id=row["id"],
        user_id=row["user_id"],
        subject=row["subject"],
        status=TicketStatus(row["status"]),
        admin_id=row["admin_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        closed_at=row["closed_at"],
    )


def _refuse(outcome: str) -> Exception:
    if outcome == "not_found":
        return NotFound("ticket")
    if outcome == "not_a_party":
        return NotAParty("ticket")
    return refusal(outcome)


async def open_ticket(conn, *, telegram_id: int, subject: str, body: str) -> Ticket:
    """A new ticket with its first message; one live ticket per user (else Duplicate)."""
    row = await queries.support_open_ticket(
        conn, telegram_id=telegram_id, subject=subject.strip(), body=body.strip()
    )
    outcome = row["outcome"]
    if outcome == "not_found":
        raise NotFound("user")
    if outcome == "invalid":
        raise Invalid(
            reason=f"A subject takes 1 to {SUBJECT_MAX} characters, a message 1 to {BODY_MAX}."
        )
    if outcome == "duplicate":
        raise Duplicate("open ticket")
    if outcome != "ok":
        raise refusal(outcome)
    return _ticket(row)


async def post_support_message(
    conn, *, ticket_id: int, telegram_id: int, body: str
) -> SupportMessage:
    """A message on a ticket, by its owner or an admin; not on a closed ticket."""
    row = await queries.support_post_message(
        conn, ticket_id=ticket_id, telegram_id=telegram_id, body=body.strip()
    )
    outcome = row["outcome"]
    if outcome == "wrong_status":
        raise WrongStatus(subject="ticket", status=row["ticket_status"], action="take messages")
    if outcome == "invalid":
        raise Invalid(reason=f"A message takes 1 to {BODY_MAX} characters.")
    if outcome != "ok":
        raise _refuse(outcome)
    return SupportMessage(
        id=row["id"],
        ticket_id=row["ticket_id"],
        sender_id=row["sender_id"],
        from_admin=row["from_admin"],
        body=row["body"],
        created_at=row["created_at"],
        ticket_status=TicketStatus(row["new_status"]),
        subject=row["subject"],
        owner_telegram_id=row["owner_telegram_id"],
    )


async def close_ticket(conn, *, ticket_id: int, telegram_id: int) -> Ticket:
    """Closes the ticket, by its owner or an admin."""
    row = await queries.support_close_ticket(conn, ticket_id=ticket_id, telegram_id=telegram_id)
    outcome = row["outcome"]
    if outcome == "wrong_status":
        raise WrongStatus(subject="ticket", status=row["status"], action="be closed again")
    if outcome != "ok":
        raise _refuse(outcome)
    return _ticket(row)


# --- screens ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TicketMessage:
    id: int
    from_admin: bool
    body: str
    created_at: datetime
    read_at: datetime | None  # when the owner saw an admin reply; None while unread

    @classmethod
    def from_json(cls, d) -> TicketMessage:
        return cls(
            id=d["id"],
            from_admin=d["from_admin"],
            body=d["body"],
            created_at=moment(d["created_at"]),
            read_at=moment(d["read_at"]),
        )


@dataclass(frozen=True, slots=True)
class SupportContext:
    user_id: int
    display_name: str  # first name, else username
    ticket: Ticket | None  # the one ticket not closed, if any
    messages: tuple[TicketMessage, ...]  # the ticket's 20 latest, oldest first
    unread_replies: int  # admin replies on that ticket the user has not read
    is_blocked: bool = False
    onboarding_complete: bool = True


async def support_context(conn, *, telegram_id: int) -> SupportContext | None:
    """The support screen in one round trip; None for an unknown user."""
    row = await queries.support_context(conn, telegram_id=telegram_id)
    if row is None:
        return None
    return SupportContext(
        user_id=row["user_id"],
        display_name=row["display_name"],
        ticket=_ticket(row) if row["id"] is not None else None,
        messages=tuple(TicketMessage.from_json(m) for m in row["messages"]),
        unread_replies=row["unread_replies"],
        is_blocked=row["is_blocked"],
        onboarding_complete=row["onboarding_complete"],
    )
