"""The escrow lifecycle (`sql/escrow.sql`): creation, payment, the parties' actions, auto-release.

Who may do what in which status is the table `escrow_transitions`; every
movement asks it under the escrow's row lock. `TRANSITIONS` mirrors it for
the screens (a test keeps the two equal).
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from bot.data.enums import DisputeStatus, EscrowStatus, FeeSplit, PaymentMethod
from bot.data.errors import refusal
from bot.data.rating import RatingSummary
from bot.data.rows import PageCursor, WalletBalance, keyset, moment, money, request_hash
from bot.db import queries
from bot.money import Handle, normalize_handle

S = EscrowStatus

# (from_status, action, actor, to_status), as in sql/migrations/0004_movements.sql.
TRANSITIONS: frozenset[tuple[EscrowStatus, str, str, EscrowStatus]] = frozenset(
    {
        (S.AWAITING_PAYMENT, "pay", "buyer", S.FUNDED),
        (S.AWAITING_PAYMENT, "cancel", "buyer", S.CANCELLED),
        (S.AWAITING_PAYMENT, "expire", "system", S.EXPIRED),
        (S.FUNDED, "accept", "seller", S.ACCEPTED),
        (S.FUNDED, "decline", "seller", S.DECLINED),
        (S.FUNDED, "refund", "seller", S.REFUNDED),
        (S.FUNDED, "refund", "admin", S.REFUNDED),
        (S.FUNDED, "refund", "system", S.REFUNDED),
        (S.ACCEPTED, "deliver", "seller", S.DELIVERED),
        (S.ACCEPTED, "release", "buyer", S.COMPLETED),
        (S.ACCEPTED, "refund", "seller", S.REFUNDED),
        (S.ACCEPTED, "refund", "admin", S.REFUNDED),
        (S.ACCEPTED, "dispute", "buyer", S.DISPUTED),
        (S.ACCEPTED, "dispute", "seller", S.DISPUTED),
        (S.DELIVERED, "release", "buyer", S.COMPLETED),
        (S.DELIVERED, "release", "system", S.COMPLETED),
        (S.DELIVERED, "refund", "seller", S.REFUNDED),
        (S.DELIVERED, "refund", "admin", S.REFUNDED),
        (S.DELIVERED, "dispute", "buyer", S.DISPUTED),
        (S.DELIVERED, "dispute", "seller", S.DISPUTED),
        (S.DISPUTED, "resolve", "admin", S.COMPLETED),
        (S.DISPUTED, "resolve", "admin", S.REFUNDED),
    }
)

ACTIONS: tuple[str, ...] = (
    "pay",
    "cancel",
    "expire",
    "accept",
    "decline",
    "deliver",
    "release",
    "refund",
    "dispute",
    "resolve",
)
ACTORS: tuple[str, ...] = ("buyer", "seller", "admin", "system")


def allowed_actions(status: EscrowStatus | str, actor: str) -> list[str]:
    """What `actor` may do to an escrow in `status`, in the order of `ACTIONS`."""
    allowed = {a for (s, a, who, _) in TRANSITIONS if s == status and who == actor}
    return [a for a in ACTIONS if a in allowed]


@dataclass(frozen=True, slots=True)
class Escrow:
    id: int
    ref: str
    buyer_id: int
    seller_id: int | None  # None while the seller has not joined
    seller_handle: str
    currency: str
    amount: Decimal
    fee: Decimal
    total: Decimal
    fee_split: FeeSplit
    buyer_fee: Decimal
    seller_fee: Decimal
    description: str
    status: EscrowStatus
    payment_method: PaymentMethod | None
    payment_reference: str | None
    payment_address: str | None
    paid_amount: Decimal
    payment_deadline: datetime
    accept_deadline: datetime | None
    delivery_deadline: datetime | None
    auto_release_at: datetime | None
    created_at: datetime
    updated_at: datetime
    funded_at: datetime | None
    accepted_at: datetime | None
    delivered_at: datetime | None
    closed_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> Escrow:
        return cls(
            id=row["id"],
            ref=row["ref"],
            buyer_id=row["buyer_id"],
            seller_id=row["seller_id"],
            seller_handle=row["seller_handle"],
            currency=row["currency"],
            amount=row["amount"],
            fee=row["fee"],
            total=row["total"],
            fee_split=FeeSplit(row["fee_split"]),
            buyer_fee=row["buyer_fee"],
            seller_fee=row["seller_fee"],
            description=row["description"],
            status=EscrowStatus(row["status"]),
            payment_method=PaymentMethod(row["payment_method"]) if row["payment_method"] else None,
            payment_reference=row["payment_reference"],
            payment_address=row["payment_address"],
            paid_amount=row["paid_amount"],
            payment_deadline=row["payment_deadline"],
            accept_deadline=row["accept_deadline"],
            delivery_deadline=row["delivery_deadline"],
            auto_release_at=row["auto_release_at"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            funded_at=row["funded_at"],
            accepted_at=row["accepted_at"],
            delivered_at=row["delivered_at"],
            closed_at=row["closed_at"],
        )


@dataclass(frozen=True, slots=True)
class ReferralReward:
    """A referrer paid for a referred user's first completed escrow."""

    referrer_id: int
    referred_id: int
    currency: str
    amount: Decimal
    transfer_id: int

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ReferralReward:
        return cls(
            referrer_id=d["referrer_id"],
            referred_id=d["referred_id"],
            currency=d["currency"],
            amount=money(d["amount"]),
            transfer_id=d["transfer_id"],
        )


def rewards_from_json(items: list[dict[str, Any]] | None) -> tuple[ReferralReward, ...]:
    return tuple(ReferralReward.from_json(r) for r in items or ())


@dataclass(frozen=True, slots=True)
class EscrowResult:
    escrow: Escrow  # as it stands after the movement
    transfer_id: int | None  # the ledger transfer that moved its money, None when none moved
    rewards: tuple[ReferralReward, ...] = ()  # referral rewards the completion paid
    replayed: bool = False  # a payment's idempotency key answered again; nothing moved
    # Whom the handler notifies (None for a seller not yet joined) and the currency's
    # decimals for showing the amounts: the next screen needs no other query.
    buyer_telegram_id: int | None = None
    seller_telegram_id: int | None = None
    decimals: int | None = None


def new_ref() -> str:
    """A human escrow reference: `ESC-` and 8 base32 characters (40 random bits)."""
    return "ESC-" + base64.b32encode(secrets.token_bytes(5)).decode()


# Statuses an escrow can only have if nobody paid it.
_NEVER_PAID = frozenset({S.AWAITING_PAYMENT, S.CANCELLED, S.EXPIRED})


def _raise_unless_ok(row: Any, action: str) -> None:
    outcome = row["outcome"]
    if outcome == "ok":
        return
    if outcome == "not_found":
        raise refusal(outcome, what="escrow")
    if outcome == "not_a_party":
        raise refusal(outcome, subject="escrow")
    if outcome == "wrong_status":
        raise refusal(outcome, subject="escrow", status=row["current_status"], action=action)
    raise RuntimeError(f"unexpected outcome {outcome!r}")


def _result(row: Any, action: str) -> EscrowResult:
    _raise_unless_ok(row, action)
    return EscrowResult(
        escrow=Escrow.from_row(row),
        transfer_id=row["transfer_id"],
        rewards=rewards_from_json(row["rewards"]),
        buyer_telegram_id=row["buyer_telegram_id"],
        seller_telegram_id=row["seller_telegram_id"],
        decimals=row["decimals"],
    )


async def create_escrow(
    conn,
    *,
    buyer_telegram_id: int,
    seller_handle: str,
    currency: str,
    amount: Decimal,
    description: str,
    fee_split: FeeSplit,
    payment_method: PaymentMethod | None = None,
) -> Escrow:
    """A new escrow awaiting the buyer's payment. Raises `HandleError` for a handle
    that is no username, e-mail or phone; `NotFound`, `BelowMinimum`, `Invalid`."""
    handle = normalize_handle(seller_handle)
    row = await queries.escrow_create(
        conn,
        buyer_telegram_id=buyer_telegram_id,
        seller_handle=handle.value,
        currency=currency,
        amount=amount,
        description=description.strip(),
        fee_split=FeeSplit(fee_split).value,
        payment_method=PaymentMethod(payment_method).value if payment_method else None,
        ref=new_ref(),
    )
    outcome = row["outcome"]
    if outcome == "not_found":
        raise refusal(outcome, what=row["what"])
    if outcome == "below_minimum":
        raise refusal(outcome, currency=currency, minimum=row["minimum"])
    if outcome == "invalid":
        raise refusal(outcome, reason=row["reason"])
    return Escrow.from_row(row)


async def fund_escrow_from_wallet(
    conn, *, escrow_id: int, telegram_id: int, idempotency_key: str
) -> EscrowResult:
    """The buyer pays amount + buyer_fee from their available balance, once per key.

    One statement, so it runs inside a caller's transaction as well (the payment
    webhooks credit the buyer, then call this with "deposit:<provider>:<event>").
    """
    params = {
        "escrow_id": escrow_id,
        "telegram_id": telegram_id,
        "idempotency_key": idempotency_key,
        "request_hash": request_hash(escrow_id=escrow_id),
    }
    row = await queries.escrow_fund_from_wallet(conn, **params)
    # A concurrent request with the same key may have paid while this statement
    # waited for the escrow (its claim invisible to this statement's snapshot):
    # once more, and the key answers.
    if row["outcome"] == "retry" or (
        row["outcome"] == "wrong_status"
        and row["actor"] == "buyer"
        and row["current_status"] not in _NEVER_PAID
    ):
        row = await queries.escrow_fund_from_wallet(conn, **params)
    outcome = row["outcome"]
    if outcome == "invalid":
        raise refusal(outcome, reason="An idempotency key takes 1 to 128 characters.")
    if outcome in ("idempotency_conflict", "retry"):
        # Still "retry": yet another request is claiming this key right now.
        raise refusal("idempotency_conflict", key=idempotency_key)
    if outcome == "insufficient_funds":
        raise refusal(
            outcome,
            currency=row["wallet_currency"],
            available=row["available"],
            needed=row["needed"],
        )
    _raise_unless_ok(row, "pay")
    return EscrowResult(
        escrow=Escrow.from_row(row),
        transfer_id=row["transfer_id"],
        replayed=row["replayed"],
        buyer_telegram_id=row["buyer_telegram_id"],
        seller_telegram_id=row["seller_telegram_id"],
        decimals=row["decimals"],
    )


async def accept_escrow(conn, *, escrow_id: int, telegram_id: int) -> EscrowResult:
    """The seller takes a funded escrow; the delivery window starts."""
    row = await queries.escrow_accept(conn, escrow_id=escrow_id, telegram_id=telegram_id)
    return _result(row, "accept")


async def decline_escrow(conn, *, escrow_id: int, telegram_id: int) -> EscrowResult:
    """The seller turns a funded escrow down; the buyer gets amount + buyer_fee back."""
    row = await queries.escrow_decline(conn, escrow_id=escrow_id, telegram_id=telegram_id)
    return _result(row, "decline")


async def mark_delivered(conn, *, escrow_id: int, telegram_id: int) -> EscrowResult:
    """The seller has delivered; the auto-release clock starts."""
    row = await queries.escrow_mark_delivered(conn, escrow_id=escrow_id, telegram_id=telegram_id)
    return _result(row, "deliver")


async def release_escrow(conn, *, escrow_id: int, telegram_id: int) -> EscrowResult:
    """The buyer releases: the seller is paid, the platform takes the fee, referrers earn."""
    row = await queries.escrow_release(conn, escrow_id=escrow_id, telegram_id=telegram_id)
    return _result(row, "release")


async def refund_escrow(conn, *, escrow_id: int, telegram_id: int) -> EscrowResult:
    """The seller (or an admin) refunds: the buyer gets amount + buyer_fee back."""
    row = await queries.escrow_refund(conn, escrow_id=escrow_id, telegram_id=telegram_id)
    return _result(row, "refund")


async def cancel_escrow(conn, *, escrow_id: int, telegram_id: int) -> EscrowResult:
    """The buyer withdraws an escrow not yet paid; no money moves."""
    row = await queries.escrow_cancel(conn, escrow_id=escrow_id, telegram_id=telegram_id)
    return _result(row, "cancel")


async def auto_release_due(conn, *, limit: int = 100) -> list[int]:
    """Release every delivered escrow past its auto-release time, `limit` per statement.

    Each batch commits on its own (unless the caller holds a transaction).
    Concurrent runs share the work without releasing any escrow twice.
    Returns the ids released by this run.
    """
    released: list[int] = []
    while True:
        batch = [r["id"] async for r in queries.escrow_auto_release_batch(conn, batch=limit)]
        released.extend(batch)
        if len(batch) < limit:
            return released


# --- screens ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EscrowCurrency:
    code: str
    decimals: int
    escrow_min_amount: Decimal
    kind: str  # "crypto" or "fiat": how an escrow in it is paid from outside the wallet


@dataclass(frozen=True, slots=True)
class SellerCard:
    """The seller a handle named, as the buyer sees them before trading."""

    id: int
    telegram_id: int  # for the new escrow's notice
    display_name: str  # first name, else username
    username: str | None
    completed_trades: int  # completed escrows, as buyer or as seller
    rating: RatingSummary


@dataclass(frozen=True, slots=True)
class EscrowCreationContext:
    buyer_id: int
    buyer_name: str
    buyer_username: str | None
    buyer_blocked: bool
    buyer_onboarded: bool
    wallets: tuple[WalletBalance, ...]  # one per currency, in currency order
    handle: Handle  # the seller's handle as normalised (what the escrow will record)
    seller_status: str  # "found", "not_found" (an invitation goes out) or "self"
    seller: SellerCard | None  # only when found
    fee_rate: Decimal  # the platform's share of the amount
    fee_splits: tuple[FeeSplit, ...]  # who may pay the fee: buyer, seller, split
    currencies: tuple[EscrowCurrency, ...]  # every currency, with its escrow minimum

    def wallet(self, currency: str) -> WalletBalance | None:
        return next((w for w in self.wallets if w.currency == currency), None)


async def escrow_creation_context(
    conn, *, buyer_telegram_id: int, seller_handle: str
) -> EscrowCreationContext | None:
    """The create-escrow flow's one lookup; None when the buyer is unknown.

    The handle is normalised first (`@Name` and `name` alike, e-mail in any
    case, a phone in any spelling to E.164): `HandleError` for text that is
    none of them, before any query runs.
    """
    handle = normalize_handle(seller_handle)
    row = await queries.escrow_creation_context(
        conn, buyer_telegram_id=buyer_telegram_id, handle_kind=handle.kind, handle=handle.value
    )
    if row is None:
        return None
    seller = None
    if row["seller_status"] == "found":
        seller = SellerCard(
            id=row["seller_id"],
            telegram_id=row["seller_telegram_id"],
            display_name=row["seller_name"],
            username=row["seller_username"],
            completed_trades=row["seller_completed_trades"],
            rating=RatingSummary.from_json(row["seller_rating"]),
        )
    return EscrowCreationContext(
        buyer_id=row["buyer_id"],
        buyer_name=row["buyer_name"],
        buyer_username=row["buyer_username"],
        buyer_blocked=row["buyer_blocked"],
        buyer_onboarded=row["buyer_onboarded"],
        wallets=tuple(WalletBalance.from_json(w) for w in row["buyer_wallets"]),
        handle=handle,
        seller_status=row["seller_status"],
        seller=seller,
        fee_rate=row["fee_rate"],
        fee_splits=tuple(FeeSplit(f) for f in row["fee_splits"]),
        currencies=tuple(
            EscrowCurrency(c["code"], c["decimals"], money(c["escrow_min_amount"]), c["kind"])
            for c in row["currencies"]
        ),
    )


@dataclass(frozen=True, slots=True)
class Party:
    id: int
    display_name: str  # first name, else username
    username: str | None


@dataclass(frozen=True, slots=True)
class LiveDispute:
    id: int
    status: DisputeStatus  # open or in_review
    reason: str
    opened_by_id: int
    opened_by_role: str  # "buyer" or "seller"
    created_at: datetime
    message_count: int


@dataclass(frozen=True, slots=True)
class EscrowView:
    escrow: Escrow
    buyer: Party
    seller: Party | None  # None while the invited seller (escrow.seller_handle) has no account
    viewer_role: str  # "buyer", "seller" or "admin"
    allowed_actions: tuple[str, ...]  # in the order of ACTIONS
    dispute: LiveDispute | None
    decimals: int  # the currency's, for showing the amounts


async def escrow_view(conn, *, escrow_id: int, viewer_telegram_id: int) -> EscrowView | None:
    """The escrow screen for one viewer: a party, or an admin who is not one.

    None for an unknown escrow and for anyone else alike, so a stranger cannot
    tell whether the escrow exists.
    """
    row = await queries.escrow_view(
        conn, escrow_id=escrow_id, viewer_telegram_id=viewer_telegram_id
    )
    if row is None:
        return None
    dispute = None
    if row["dispute_id"] is not None:
        dispute = LiveDispute(
            id=row["dispute_id"],
            status=DisputeStatus(row["dispute_status"]),
            reason=row["dispute_reason"],
            opened_by_id=row["dispute_opened_by_id"],
            opened_by_role=row["dispute_opened_by_role"],
            created_at=row["dispute_created_at"],
            message_count=row["dispute_message_count"],
        )
    seller = None
    if row["seller_id"] is not None:
        seller = Party(row["seller_id"], row["seller_name"], row["seller_username"])
    return EscrowView(
        escrow=Escrow.from_row(row),
        buyer=Party(row["buyer_id"], row["buyer_name"], row["buyer_username"]),
        seller=seller,
        viewer_role=row["viewer_role"],
        # The table's actions, in the screen's button order (an unknown one fails loudly).
        allowed_actions=tuple(sorted(row["allowed_actions"], key=ACTIONS.index)),
        dispute=dispute,
        decimals=row["decimals"],
    )


# The my-escrows tabs: which statuses each shows.
STATUS_GROUPS: dict[str, frozenset[EscrowStatus]] = {
    "active": frozenset({S.AWAITING_PAYMENT, S.FUNDED, S.ACCEPTED, S.DELIVERED, S.DISPUTED}),
    "completed": frozenset({S.COMPLETED}),
    "closed": frozenset({S.REFUNDED, S.CANCELLED, S.DECLINED, S.EXPIRED}),
    "all": frozenset(S),
}
MY_ESCROWS_MAX = 50  # the largest page my_escrows serves


@dataclass(frozen=True, slots=True)
class EscrowListItem:
    id: int
    ref: str
    role: str  # the user's role in it: "buyer" or "seller"
    counterparty_name: str  # display name, or the handle of a seller not yet joined
    counterparty_invited: bool  # true when counterparty_name is that handle
    currency: str
    amount: Decimal
    status: EscrowStatus
    created_at: datetime
    decimals: int  # the currency's, for showing the amount


@dataclass(frozen=True, slots=True)
class EscrowPage:
    items: tuple[EscrowListItem, ...]  # newest first by (created_at, id)
    next_before: PageCursor | None  # the next page's cursor; None on the last page
    is_blocked: bool  # the user's flags, checked at the screen's entry
    onboarding_complete: bool


async def my_escrows(
    conn,
    *,
    telegram_id: int,
    status_group: str,
    before: PageCursor | None = None,
    limit: int = 10,
) -> EscrowPage | None:
    """The user's escrows as buyer or seller, newest first, keyset-paged; None for an
    unknown user. `status_group`: "active", "completed", "closed" or "all" (else
    ValueError); `limit` is held to 1..50."""
    statuses = STATUS_GROUPS.get(status_group)
    if statuses is None:
        raise ValueError(f"unknown status group {status_group!r}")
    limit = max(1, min(limit, MY_ESCROWS_MAX))
    row = await queries.my_escrows(
        conn,
        telegram_id=telegram_id,
        statuses=sorted(statuses),
        page_size=limit,
        **keyset(before),
    )
    if row is None:
        return None
    items = tuple(
        EscrowListItem(
            id=i["id"],
            ref=i["ref"],
            role=i["role"],
            counterparty_name=i["counterparty_name"],
            counterparty_invited=i["counterparty_invited"],
            currency=i["currency"],
            amount=money(i["amount"]),
            status=EscrowStatus(i["status"]),
            created_at=moment(i["created_at"]),
            decimals=i["decimals"],
        )
        for i in row["items"]
    )
    next_before = None
    if len(items) > limit:
        items = items[:limit]
        next_before = PageCursor(at=items[-1].created_at, id=items[-1].id)
    return EscrowPage(
        items=items,
        next_before=next_before,
        is_blocked=row["is_blocked"],
        onboarding_complete=row["onboarding_complete"],
    )


async def expire_unpaid_escrows(conn, *, limit: int = 100) -> list[int]:
    """The payment-deadline job: escrows still awaiting payment past their deadline
    take the 'expire' action as the 'system' actor, `limit` per statement, each batch
    committed on its own (unless the caller holds a transaction). Nothing was paid into
    them, so no money moves. Concurrent runs never expire one twice; one being paid right
    now is left to its payment. Returns the ids this run expired."""
    expired: list[int] = []
    while True:
        batch = [r["id"] async for r in queries.escrow_expire_unpaid_batch(conn, batch=limit)]
        expired.extend(batch)
        if len(batch) < limit:
            return expired
