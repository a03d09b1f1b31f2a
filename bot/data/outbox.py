"""The outbox (`sql/outbox.sql`): notifications written by the movements' triggers
(migration 0012), claimed by the sender in batches, and the delivery-deadline reminders.

A batch is one transaction: `claim_due` locks up to `batch` due rows (FOR UPDATE SKIP
LOCKED, so two senders never hold the same row) and reads everything their texts need
in the same query; the sender records what became of each row on the batch and the
results are written, in one statement, as the transaction commits. An exception inside
the batch rolls it back: every row claimed stays as it was, due for the next sender.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from bot import db
from bot.data.rows import money_or_none
from bot.db import queries


class OutboxKind(StrEnum):
    """What a row tells; mirrors the outbox_kind check of migration 0012."""

    ESCROW_CREATED = "escrow_created"
    ESCROW_FUNDED = "escrow_funded"
    ESCROW_ACCEPTED = "escrow_accepted"
    ESCROW_DECLINED = "escrow_declined"
    ESCROW_DELIVERED = "escrow_delivered"
    ESCROW_RELEASED = "escrow_released"
    ESCROW_AUTO_RELEASED = "escrow_auto_released"
    ESCROW_REFUNDED = "escrow_refunded"
    ESCROW_CANCELLED = "escrow_cancelled"
    DELIVERY_REMINDER = "delivery_reminder"
    DISPUTE_OPENED = "dispute_opened"
    DISPUTE_OPENED_ADMIN = "dispute_opened_admin"
    DISPUTE_MESSAGE = "dispute_message"
    DISPUTE_RESOLVED = "dispute_resolved"
    DEPOSIT_CREDITED = "deposit_credited"
    CASHOUT_APPROVED = "cashout_approved"
    CASHOUT_PAID = "cashout_paid"
    CASHOUT_FAILED = "cashout_failed"


class Outcome(StrEnum):
    """What became of a claimed row (outbox_settle)."""

    SENT = "sent"
    RETRY = "retry"  # an attempt failed: try again after the delay
    DEFER = "defer"  # not tried (a rate limit): later, attempts unchanged
    FAILED = "failed"  # given up


@dataclass(frozen=True, slots=True)
class Due:
    """One claimed row and what its text is rendered from (None where the kind has none)."""

    id: int
    telegram_id: int
    kind: OutboxKind
    payload: Mapping[str, Any]
    attempts: int
    created_at: datetime
    currency: str | None
    decimals: int | None
    escrow_id: int | None
    escrow_ref: str | None
    escrow_description: str | None
    escrow_status: str | None
    escrow_amount: Decimal | None
    escrow_buyer_fee: Decimal | None
    escrow_seller_fee: Decimal | None
    delivery_deadline: datetime | None
    auto_release_at: datetime | None
    buyer_name: str | None
    dispute_id: int | None
    dispute_reason: str | None
    dispute_resolution: str | None
    opener_name: str | None
    opener_role: str | None
    message_body: str | None
    sender_name: str | None
    sender_role: str | None
    cashout_id: int | None
    cashout_amount: Decimal | None
    cashout_fee: Decimal | None
    cashout_failure_reason: str | None
    cashout_destination: str | None
    cashout_network: str | None
    cashout_address: str | None
    cashout_bank: str | None
    cashout_account_number: str | None
    cashout_account_name: str | None

    def amount(self, key: str) -> Decimal | None:
        """An amount kept in the payload (JSON: Decimal, or int when whole)."""
        return money_or_none(self.payload.get(key))

    @classmethod
    def from_row(cls, row: Any) -> Due:
        values = dict(row)
        values["kind"] = OutboxKind(values["kind"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Settlement:
    id: int
    outcome: Outcome
    delay_seconds: float = 0.0  # float-ok: seconds until the next attempt
    reason: str | None = None


@dataclass
class Batch:
    """The rows one sender holds, and what it made of them (written at commit)."""

    items: list[Due]
    settlements: list[Settlement] = field(default_factory=list)

    def settle(
        self,
        due: Due,
        outcome: Outcome,
        *,
        delay_seconds: float = 0.0,  # float-ok: seconds
        reason: str | None = None,
    ) -> None:
        self.settlements.append(Settlement(due.id, outcome, delay_seconds, reason))


@asynccontextmanager
async def claim_due(pool, *, batch: int) -> AsyncIterator[Batch]:
    """Up to `batch` due rows, locked for this transaction, with their rendering facts
    (one round trip); on leaving, the settlements recorded on the batch are written (one
    more) and the transaction commits. Rows left unsettled stay as they were."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    async with db.transaction(pool, operation="outbox.deliver") as tx:
        claimed = Batch([Due.from_row(r) async for r in queries.outbox_claim(tx, batch=batch)])
        yield claimed
        if claimed.settlements:
            s = claimed.settlements
            await queries.outbox_settle(
                tx,
                ids=[x.id for x in s],
                outcomes=[x.outcome.value for x in s],
                delays=[float(x.delay_seconds) for x in s],  # float-ok: seconds
                reasons=[x.reason[:500] if x.reason else None for x in s],
            )


async def queue_reminders(conn) -> int:
    """Reminder job: queues the delivery-deadline reminders that fell due, each once
    (one statement); how many were queued."""
    return await queries.outbox_queue_reminders(conn)


async def prune(conn, *, keep_days: int = 30, batch: int = 1000) -> int:
    """Deletes up to `batch` rows settled more than `keep_days` ago; how many."""
    return await queries.outbox_prune(conn, keep_days=keep_days, batch=batch)
