"""Disputes (`sql/dispute.sql`): opening one, the chat, and the admin's resolution."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from bot.data.enums import DisputeResolution, DisputeStatus, EscrowStatus
from bot.data.errors import AccountBlocked, refusal
from bot.data.escrow import ReferralReward, rewards_from_json
from bot.data.rows import PageCursor, keyset, moment, money
from bot.db import queries


@dataclass(frozen=True, slots=True)
class Dispute:
    id: int
    escrow_id: int
    opened_by_id: int
    reason: str
    status: DisputeStatus
    admin_id: int | None
    resolution: DisputeResolution | None
    buyer_share: Decimal | None
    resolution_note: str | None
    created_at: datetime
    last_message_at: datetime | None
    resolved_at: datetime | None
    # What the dispute chat screen and the notifications need, as open_dispute answers it.
    escrow: DisputedEscrow | None = None
    buyer: Person | None = None
    seller: Person | None = None

    @classmethod
    def from_row(cls, row: Any) -> Dispute:
        escrow = None
        if row.get("escrow_ref") is not None:
            escrow = DisputedEscrow(
                id=row["escrow_id"],
                ref=row["escrow_ref"],
                currency=row["currency"],
                amount=row["amount"],
                buyer_fee=row["buyer_fee"],
                seller_fee=row["seller_fee"],
                status=EscrowStatus(row["escrow_status"]),
                decimals=row["decimals"],
            )
        return cls(
            id=row["id"],
            escrow_id=row["escrow_id"],
            opened_by_id=row["opened_by_id"],
            reason=row["reason"],
            status=DisputeStatus(row["status"]),
            admin_id=row["admin_id"],
            resolution=DisputeResolution(row["resolution"]) if row["resolution"] else None,
            buyer_share=row["buyer_share"],
            resolution_note=row["resolution_note"],
            created_at=row["created_at"],
            last_message_at=row["last_message_at"],
            resolved_at=row["resolved_at"],
            escrow=escrow,
            buyer=Person.from_json(row.get("buyer")),
            seller=Person.from_json(row.get("seller")),
        )

    def as_context(self) -> DisputeContext:
        """The dispute screen of a dispute just opened (no admin, no messages yet), built
        from what open_dispute answered: no query."""
        if self.escrow is None or self.buyer is None:
            raise ValueError("only a dispute as open_dispute answers it has its screen")
        return DisputeContext(
            dispute=DisputeSummary(
                id=self.id,
                status=self.status,
                reason=self.reason,
                resolution=self.resolution,
                buyer_share=self.buyer_share,
                created_at=self.created_at,
                resolved_at=self.resolved_at,
            ),
            escrow=self.escrow,
            buyer=self.buyer,
            seller=self.seller,
            admin=None,
            messages=(),
            message_count=0,
        )


@dataclass(frozen=True, slots=True)
class DisputeMessage:
    id: int
    dispute_id: int
    sender_id: int
    body: str
    created_at: datetime
    # After the post, for the chat screen and the notifications (no refetch needed).
    sender_name: str = ""  # first name, else username
    dispute_status: DisputeStatus | None = None  # in_review once an admin wrote
    admin: Person | None = None  # the admin handling the dispute, if one does


@dataclass(frozen=True, slots=True)
class Resolution:
    dispute_id: int
    escrow_id: int
    currency: str
    resolution: DisputeResolution
    buyer_share: Decimal
    buyer_amount: Decimal  # paid to the buyer's wallet (with the buyer_fee on a refund)
    seller_amount: Decimal  # paid to the seller's wallet, net of the seller's fee
    platform_fee: Decimal  # what the platform kept
    escrow_status: EscrowStatus  # completed or refunded
    transfer_id: int
    resolved_at: datetime
    rewards: tuple[ReferralReward, ...]  # referral rewards the completion paid


def _raise_unless_ok(
    row: Any, *, subject: str, action: str, reason: str, status_of: str | None = None
) -> None:
    """Raise the refusal a query answered; `status_of` names what `current_status` is of."""
    outcome = row["outcome"]
    if outcome == "ok":
        return
    if outcome == "blocked":
        raise AccountBlocked()
    if outcome == "not_found":
        raise refusal(outcome, what=subject)
    if outcome == "not_a_party":
        raise refusal(outcome, subject=subject)
    if outcome == "wrong_status":
        raise refusal(
            outcome, subject=status_of or subject, status=row["current_status"], action=action
        )
    raise refusal(outcome, reason=reason)


async def open_dispute(conn, *, escrow_id: int, telegram_id: int, reason: str) -> Dispute:
    """The buyer or the seller disputes an accepted or delivered escrow.

    The answer carries the escrow and both parties (`as_context()` is the chat screen).
    NotFound, NotAParty, AccountBlocked, WrongStatus, Invalid; a refusal changes nothing.
    """
    row = await queries.dispute_open(
        conn, escrow_id=escrow_id, telegram_id=telegram_id, reason=reason.strip()
    )
    _raise_unless_ok(
        row, subject="escrow", action="dispute", reason="A reason takes 1 to 1000 characters."
    )
    return Dispute.from_row(row)


async def post_dispute_message(
    conn, *, dispute_id: int, telegram_id: int, body: str
) -> DisputeMessage:
    """The buyer, the seller or an admin writes into a live dispute.

    NotFound, NotAParty, AccountBlocked, WrongStatus (resolved), Invalid."""
    row = await queries.dispute_post_message(
        conn, dispute_id=dispute_id, telegram_id=telegram_id, body=body.strip()
    )
    _raise_unless_ok(
        row, subject="dispute", action="post", reason="A message takes 1 to 4000 characters."
    )
    return DisputeMessage(
        id=row["id"],
        dispute_id=row["dispute_id"],
        sender_id=row["sender_id"],
        body=row["body"],
        created_at=row["created_at"],
        sender_name=row["sender_name"],
        dispute_status=DisputeStatus(row["dispute_status"]),
        admin=Person.from_json(row["handling_admin"]),
    )


async def resolve_dispute(
    conn, *, dispute_id: int, admin_telegram_id: int, buyer_share: Decimal
) -> Resolution:
    """An admin pays out the held funds: `buyer_share` of the amount to the buyer.

    All of it refunds the escrow, none releases it, anything between splits it.
    """
    row = await queries.dispute_resolve(
        conn, dispute_id=dispute_id, admin_telegram_id=admin_telegram_id, buyer_share=buyer_share
    )
    _raise_unless_ok(
        row,
        subject="dispute",
        status_of="escrow",  # the escrow's status says whether it can still be resolved
        action="resolve",
        reason="The buyer's share is between 0 and the escrow amount, in the currency's precision.",
    )
    return Resolution(
        dispute_id=row["dispute_id"],
        escrow_id=row["escrow_id"],
        currency=row["currency"],
        resolution=DisputeResolution(row["resolution"]),
        buyer_share=row["buyer_share"],
        buyer_amount=row["buyer_amount"],
        seller_amount=row["seller_amount"],
        platform_fee=row["platform_fee"],
        escrow_status=EscrowStatus(row["escrow_status"]),
        transfer_id=row["transfer_id"],
        resolved_at=row["resolved_at"],
        rewards=rewards_from_json(row["rewards"]),
    )


# --- screens ------------------------------------------------------------------


class SenderRole(StrEnum):
    """Who wrote a dispute message, as the trade sees them."""

    BUYER = "buyer"
    SELLER = "seller"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Person:
    id: int
    telegram_id: int
    display_name: str  # first name, else username
    username: str | None
    is_blocked: bool = False

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> Person | None:
        if d is None:
            return None
        return cls(
            id=d["id"],
            telegram_id=d["telegram_id"],
            display_name=d["display_name"],
            username=d["username"],
            is_blocked=d.get("is_blocked", False),
        )


@dataclass(frozen=True, slots=True)
class DisputeSummary:
    id: int
    status: DisputeStatus
    reason: str
    resolution: DisputeResolution | None
    buyer_share: Decimal | None
    created_at: datetime
    resolved_at: datetime | None


@dataclass(frozen=True, slots=True)
class DisputedEscrow:
    id: int
    ref: str
    currency: str
    amount: Decimal
    buyer_fee: Decimal
    seller_fee: Decimal
    status: EscrowStatus
    decimals: int  # the currency's, for showing the amounts


@dataclass(frozen=True, slots=True)
class ChatLine:
    id: int
    sender_id: int
    sender_name: str
    sender_role: SenderRole
    body: str
    created_at: datetime

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ChatLine:
        return cls(
            id=d["id"],
            sender_id=d["sender_id"],
            sender_name=d["sender_name"],
            sender_role=SenderRole(d["sender_role"]),
            body=d["body"],
            created_at=moment(d["created_at"]),
        )


@dataclass(frozen=True, slots=True)
class DisputeContext:
    dispute: DisputeSummary
    escrow: DisputedEscrow
    buyer: Person
    seller: Person | None  # None while an invited seller has no account
    admin: Person | None  # None until an admin takes the dispute
    messages: tuple[ChatLine, ...]  # the 50 latest, oldest first
    message_count: int  # all of them


async def dispute_context(conn, *, dispute_id: int) -> DisputeContext | None:
    """The dispute screen in one round trip; None for an unknown dispute.

    Shows the latest 50 messages, oldest first; `message_count` says how many there are.
    """
    row = await queries.dispute_context(conn, dispute_id=dispute_id)
    if row is None:
        return None
    return DisputeContext(
        dispute=DisputeSummary(
            id=row["id"],
            status=DisputeStatus(row["status"]),
            reason=row["reason"],
            resolution=DisputeResolution(row["resolution"]) if row["resolution"] else None,
            buyer_share=row["buyer_share"],
            created_at=row["created_at"],
            resolved_at=row["resolved_at"],
        ),
        escrow=DisputedEscrow(
            id=row["escrow_id"],
            ref=row["escrow_ref"],
            currency=row["currency"],
            amount=row["amount"],
            buyer_fee=row["buyer_fee"],
            seller_fee=row["seller_fee"],
            status=EscrowStatus(row["escrow_status"]),
            decimals=row["decimals"],
        ),
        buyer=Person.from_json(row["buyer"]),
        seller=Person.from_json(row["seller"]),
        admin=Person.from_json(row["handling_admin"]),
        messages=tuple(ChatLine.from_json(m) for m in row["messages"]),
        message_count=row["message_count"],
    )


@dataclass(frozen=True, slots=True)
class QueuedDispute:
    id: int
    escrow_id: int
    escrow_ref: str
    amount: Decimal
    currency: str
    decimals: int  # the currency's, for showing the amount
    buyer_name: str
    seller_name: str  # the handle the buyer typed while the seller has no account
    status: DisputeStatus
    created_at: datetime
    last_message_at: datetime | None  # None before the first message


@dataclass(frozen=True, slots=True)
class DisputePage:
    items: tuple[QueuedDispute, ...]  # newest first by (created_at, id)
    next_before: PageCursor | None  # None on the last page


async def open_disputes(conn, *, before: PageCursor | None = None, limit: int = 20) -> DisputePage:
    """The admin's queue of disputes open or in review, newest first, `limit` per page.

    Keyset-paged: pass the page's `next_before` to get the following one.
    """
    if limit < 1:
        raise ValueError("a page holds at least one dispute")
    rows = [r async for r in queries.open_disputes(conn, **keyset(before), page_size=limit)]
    items = tuple(
        QueuedDispute(
            id=r["id"],
            escrow_id=r["escrow_id"],
            escrow_ref=r["escrow_ref"],
            amount=money(r["amount"]),
            currency=r["currency"],
            decimals=r["decimals"],
            buyer_name=r["buyer_name"],
            seller_name=r["seller_name"],
            status=DisputeStatus(r["status"]),
            created_at=r["created_at"],
            last_message_at=r["last_message_at"],
        )
        for r in rows[:limit]
    )
    more = len(rows) > limit
    return DisputePage(
        items=items,
        next_before=PageCursor(items[-1].created_at, items[-1].id) if more else None,
    )


@dataclass(frozen=True, slots=True)
class MyDispute:
    """One of the user's disputed escrows with its live dispute."""

    dispute_id: int
    status: DisputeStatus  # open or in_review
    escrow_id: int
    escrow_ref: str
    role: str  # the user's role in the escrow: "buyer" or "seller"
    counterparty_name: str
    currency: str
    decimals: int
    amount: Decimal
    escrow_created_at: datetime  # the page's order and cursor
    opened_at: datetime
    last_message_at: datetime | None


@dataclass(frozen=True, slots=True)
class MyDisputes:
    is_blocked: bool
    onboarding_complete: bool
    items: tuple[MyDispute, ...]  # newest escrow first
    next_before: PageCursor | None  # None on the last page


MY_DISPUTES_MAX = 50  # the largest page my_disputes serves


async def my_disputes(
    conn, *, telegram_id: int, before: PageCursor | None = None, limit: int = 10
) -> MyDisputes | None:
    """The user's disputed escrows (as buyer or seller) with their live disputes, newest
    escrow first, keyset-paged, with the user's flags; None for an unknown user. `limit`
    is held to 1..50."""
    limit = max(1, min(limit, MY_DISPUTES_MAX))
    row = await queries.my_disputes(
        conn, telegram_id=telegram_id, page_size=limit, **keyset(before)
    )
    if row is None:
        return None
    items = tuple(
        MyDispute(
            dispute_id=i["dispute_id"],
            status=DisputeStatus(i["status"]),
            escrow_id=i["escrow_id"],
            escrow_ref=i["escrow_ref"],
            role=i["role"],
            counterparty_name=i["counterparty_name"],
            currency=i["currency"],
            decimals=i["decimals"],
            amount=money(i["amount"]),
            escrow_created_at=moment(i["escrow_created_at"]),
            opened_at=moment(i["opened_at"]),
            last_message_at=moment(i["last_message_at"]),
        )
        for i in row["items"]
    )
    next_before = None
    if len(items) > limit:
        items = items[:limit]
        next_before = PageCursor(at=items[-1].escrow_created_at, id=items[-1].escrow_id)
    return MyDisputes(
        is_blocked=row["is_blocked"],
        onboarding_complete=row["onboarding"] == "complete",
        items=items,
        next_before=next_before,
    )
