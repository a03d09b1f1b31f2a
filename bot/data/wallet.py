"""The wallet screen and its money (`sql/wallet.sql`): deposits and cashouts."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from bot import db
from bot.data.contacts import SavedAddress, SavedBankAccount
from bot.data.enums import CashoutStatus, DepositStatus, DestinationKind, PaymentProvider
from bot.data.errors import DomainError, InsufficientFunds, refusal
from bot.data.escrow import fund_escrow_from_wallet
from bot.data.exchange import execute_exchange
from bot.data.rows import moment, money, money_or_none, request_hash
from bot.db import queries


@dataclass(frozen=True, slots=True)
class WalletUser:
    id: int
    telegram_id: int
    username: str | None
    first_name: str
    email: str | None
    phone: str | None
    email_verified: bool
    phone_verified: bool
    is_blocked: bool
    onboarding_complete: bool


@dataclass(frozen=True, slots=True)
class Bank:
    code: str  # NIP code
    name: str


@dataclass(frozen=True, slots=True)
class Network:
    network: str
    label: str


@dataclass(frozen=True, slots=True)
class Wallet:
    currency: str
    kind: str
    decimals: int
    available: Decimal
    held: Decimal
    usd_value: Decimal | None  # None while the currency has no rate
    rate_at: datetime | None
    rate_stale: bool  # the rate is older than the platform's rate_max_age_seconds
    cashout_min: Decimal
    cashout_max: Decimal
    cashout_fee_flat: Decimal
    cashout_fee_rate: Decimal
    networks: tuple[Network, ...]

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Wallet:
        return cls(
            currency=d["currency"],
            kind=d["kind"],
            decimals=d["decimals"],
            available=money(d["available"]),
            held=money(d["held"]),
            usd_value=money_or_none(d["usd_value"]),
            rate_at=moment(d["rate_at"]),
            rate_stale=d["rate_stale"],
            cashout_min=money(d["cashout_min"]),
            cashout_max=money(d["cashout_max"]),
            cashout_fee_flat=money(d["cashout_fee_flat"]),
            cashout_fee_rate=money(d["cashout_fee_rate"]),
            networks=tuple(Network(n["network"], n["label"]) for n in d["networks"]),
        )


@dataclass(frozen=True, slots=True)
class CashoutInFlight:
    id: int
    currency: str
    amount: Decimal
    fee: Decimal
    status: CashoutStatus
    destination: DestinationKind
    network: str | None
    address: str | None
    bank_code: str | None
    account_number: str | None
    created_at: datetime

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CashoutInFlight:
        return cls(
            id=d["id"],
            currency=d["currency"],
            amount=money(d["amount"]),
            fee=money(d["fee"]),
            status=CashoutStatus(d["status"]),
            destination=DestinationKind(d["destination"]),
            network=d["network"],
            address=d["address"],
            bank_code=d["bank_code"],
            account_number=d["account_number"],
            created_at=moment(d["created_at"]),
        )


@dataclass(frozen=True, slots=True)
class WalletContext:
    user: WalletUser
    wallets: tuple[Wallet, ...]  # ordered by currency
    total_usd: Decimal  # of the wallets that have a rate
    addresses: tuple[SavedAddress, ...]  # at most 20, most recently used first
    bank_accounts: tuple[SavedBankAccount, ...]  # at most 20, most recently used first
    cashouts_in_flight: tuple[CashoutInFlight, ...]  # at most 10, newest first
    cashouts_in_flight_count: int
    banks: tuple[Bank, ...] = ()  # at most 200, by name: where a new bank account can be

    def wallet(self, currency: str) -> Wallet | None:
        return next((w for w in self.wallets if w.currency == currency), None)


async def wallet_context(conn, *, telegram_id: int) -> WalletContext | None:
    row = await queries.wallet_context(conn, telegram_id=telegram_id)
    if row is None:
        return None
    return WalletContext(
        user=WalletUser(
            id=row["id"],
            telegram_id=row["telegram_id"],
            username=row["username"],
            first_name=row["first_name"],
            email=row["email"],
            phone=row["phone"],
            email_verified=row["email_verified"],
            phone_verified=row["phone_verified"],
            is_blocked=row["is_blocked"],
            onboarding_complete=row["onboarding_complete"],
        ),
        wallets=tuple(Wallet.from_json(w) for w in row["wallets"]),
        total_usd=row["total_usd"] if row["total_usd"] is not None else Decimal(0),
        addresses=tuple(SavedAddress.from_json(a) for a in row["addresses"]),
        bank_accounts=tuple(SavedBankAccount.from_json(b) for b in row["bank_accounts"]),
        cashouts_in_flight=tuple(CashoutInFlight.from_json(c) for c in row["cashouts_in_flight"]),
        cashouts_in_flight_count=row["cashouts_in_flight_count"],
        banks=tuple(Bank(b["code"], b["name"]) for b in row["banks"]),
    )


# --- movements ----------------------------------------------------------------

_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def new_reference(prefix: str) -> str:
    """`prefix` and 10 random base32 characters (50 bits): what a provider echoes back."""
    return prefix + "".join(secrets.choice(_BASE32) for _ in range(10))


@dataclass(frozen=True, slots=True)
class DepositOrder:
    id: int
    ref: str
    user_id: int
    currency: str
    provider: PaymentProvider
    address: str | None
    status: DepositStatus
    received_amount: Decimal
    created_at: datetime


async def create_deposit_order(
    conn, *, telegram_id: int, currency: str, provider: PaymentProvider
) -> DepositOrder:
    """A wallet top-up order with a fresh `DEP-` reference. NotFound (user), Invalid (currency)."""
    row = await queries.wallet_create_deposit_order(
        conn,
        telegram_id=telegram_id,
        currency=currency,
        provider=PaymentProvider(provider).value,
        ref=new_reference("DEP-"),
    )
    if row["outcome"] == "not_found":
        raise refusal("not_found", what="user")
    if row["outcome"] == "invalid":
        raise refusal("invalid", reason=f"There is no {currency} wallet.")
    return DepositOrder(
        id=row["id"],
        ref=row["ref"],
        user_id=row["user_id"],
        currency=row["currency"],
        provider=PaymentProvider(row["provider"]),
        address=row["address"],
        status=DepositStatus(row["status"]),
        received_amount=row["received_amount"],
        created_at=row["created_at"],
    )


@dataclass(frozen=True, slots=True)
class DepositCredit:
    """What one provider payment event did."""

    duplicate: bool  # the event was seen before: nothing moved this time
    provider: PaymentProvider
    event_id: str
    order_ref: str
    currency: str
    amount: Decimal
    order_kind: str | None = None  # "deposit", "escrow" or "exchange"
    order_id: int | None = None
    telegram_id: int | None = None  # the payer, whose wallet was credited
    transfer_id: int | None = None  # the deposit's ledger transfer
    wallet_available: Decimal | None = None  # the payer's available balance after the credit
    # The escrow funding or exchange the payment was for (its own result), when it went through.
    applied: Any = None
    # Why the escrow funding or exchange was refused; the money then stays in the wallet.
    refused: DomainError | None = None
    # What the escrow or exchange order still asked for before this payment (0 when it was
    # no longer payable; None for a top-up, which takes any amount), and `amount` less that:
    # negative for an underpayment, positive for an overpayment. Recorded on the event.
    expected_amount: Decimal | None = None
    difference: Decimal | None = None
    counterparty_telegram_id: int | None = None  # an escrow's seller, when there is one
    # An exchange order the payment fell short of (and the wallet could not make up) is
    # marked underpaid: what arrived stays in the wallet.
    marked_underpaid: bool = False


async def credit_deposit(
    conn,
    *,
    provider: PaymentProvider,
    event_id: str,
    order_ref: str,
    currency: str,
    amount: Decimal,
    event_type: str = "payment",
    payload: dict | None = None,
) -> DepositCredit:
    """Credits a provider's payment exactly once per (provider, event_id).

    One transaction: claim the event, credit the payer's wallet, then pay what
    the order was for (an escrow, an exchange) from that wallet. When that
    payment is refused (a cancelled escrow, an expired quote, too little), the
    money stays in the wallet. NotFound (unknown ref), Invalid (currency or
    amount) roll everything back, the event claim included.
    """
    provider = PaymentProvider(provider)
    seen = DepositCredit(
        duplicate=True,
        provider=provider,
        event_id=event_id,
        order_ref=order_ref,
        currency=currency,
        amount=amount,
    )
    async with db.transaction(conn) as tx:
        event_row_id = await _claim_event(
            tx, provider, event_id, event_type=event_type, order_ref=order_ref, payload=payload
        )
        if event_row_id is None:
            return seen
        row = await queries.wallet_credit_deposit(
            tx,
            event_row_id=event_row_id,
            provider=provider.value,
            order_ref=order_ref,
            currency=currency,
            amount=amount,
        )
        outcome = row["outcome"]
        if outcome == "not_found":
            raise refusal(outcome, what="order" if row["order_id"] is None else "wallet")
        if outcome == "invalid":
            if row["order_currency"] != currency:
                reason = f"Order {order_ref} is paid in {row['order_currency']}, not {currency}."
            else:
                reason = f"{amount} is not an amount of {currency}."
            raise refusal(outcome, reason=reason)
        applied = refused = None
        try:
            if row["kind"] == "escrow":
                applied = await fund_escrow_from_wallet(
                    tx,
                    escrow_id=row["order_id"],
                    telegram_id=row["telegram_id"],
                    idempotency_key=f"deposit:{provider.value}:{event_id}",
                )
            elif row["kind"] == "exchange":
                applied = await execute_exchange(
                    tx, telegram_id=row["telegram_id"], order_id=row["order_id"]
                )
        except DomainError as e:
            # Each refusal changed nothing but its own note (an expired quote is
            # marked expired): the credit stands and the money waits in the wallet.
            refused = e
        difference = row["difference"]
        marked_underpaid = False
        if (
            row["kind"] == "exchange"
            and isinstance(refused, InsufficientFunds)
            and difference is not None
            and difference < 0
        ):
            marked_underpaid = (
                await queries.wallet_mark_exchange_underpaid(tx, order_id=row["order_id"])
                is not None
            )
        return DepositCredit(
            duplicate=False,
            provider=provider,
            event_id=event_id,
            order_ref=order_ref,
            currency=currency,
            amount=amount,
            order_kind=row["kind"],
            order_id=row["order_id"],
            telegram_id=row["telegram_id"],
            transfer_id=row["transfer_id"],
            wallet_available=row["available"],
            applied=applied,
            refused=refused,
            expected_amount=row["expected_amount"],
            difference=difference,
            counterparty_telegram_id=row["counterparty_telegram_id"],
            marked_underpaid=marked_underpaid,
        )


async def record_unmatched_event(
    conn,
    *,
    provider: PaymentProvider,
    event_id: str,
    event_type: str,
    order_ref: str | None,
    payload: dict | None = None,
) -> bool:
    """Records a verified provider event that names no order or cashout of ours: it moves
    no money, waits (unprocessed) for an admin, and its redeliveries become duplicates.
    False when the event was already on record."""
    row_id = await _claim_event(
        conn, provider, event_id, event_type=event_type, order_ref=order_ref, payload=payload
    )
    return row_id is not None


async def _claim_event(
    conn,
    provider: PaymentProvider,
    event_id: str,
    *,
    event_type: str,
    order_ref: str | None,
    payload: dict | None,
) -> int | None:
    """Claims (provider, event_id) exactly once: the event's row id, or None when it was
    already claimed (a redelivery). Every provider event goes through here first."""
    return await queries.wallet_claim_webhook_event(
        conn,
        provider=PaymentProvider(provider).value,
        event_id=event_id,
        event_type=event_type,
        order_ref=order_ref,
        payload=payload,
    )


@dataclass(frozen=True, slots=True)
class CryptoDestination:
    network: str
    address: str
    saved_address_id: int | None = None


@dataclass(frozen=True, slots=True)
class BankDestination:
    bank_code: str
    account_number: str
    account_name: str
    saved_bank_account_id: int | None = None
    # A new account to save as a contact under this label, with the cashout (same statement).
    save_label: str | None = None


def _destination_json(destination: CryptoDestination | BankDestination) -> dict[str, Any]:
    if isinstance(destination, CryptoDestination):
        return {
            "kind": DestinationKind.CRYPTO_ADDRESS.value,
            "network": destination.network,
            "address": destination.address,
            "saved_address_id": destination.saved_address_id,
        }
    bank = {
        "kind": DestinationKind.BANK_ACCOUNT.value,
        "bank_code": destination.bank_code,
        "account_number": destination.account_number,
        "account_name": destination.account_name,
        "saved_bank_account_id": destination.saved_bank_account_id,
    }
    # Only when set, so the request hash of a plain bank cashout is what it always was.
    if destination.save_label is not None:
        bank["save_label"] = destination.save_label
    return bank


@dataclass(frozen=True, slots=True)
class Cashout:
    id: int
    user_id: int
    currency: str
    amount: Decimal
    fee: Decimal
    status: CashoutStatus
    destination: DestinationKind
    network: str | None
    address: str | None
    bank_code: str | None
    account_number: str | None
    account_name: str | None
    saved_address_id: int | None
    saved_bank_account_id: int | None
    provider: str | None
    provider_reference: str | None
    failure_reason: str | None
    idempotency_key: str
    created_at: datetime
    approved_at: datetime | None
    completed_at: datetime | None
    # The wallet right after the movement (or as it stands, for a replay or an approval).
    wallet_available: Decimal
    wallet_held: Decimal
    transfer_id: int | None = None  # the ledger transfer this call posted; None when none
    replayed: bool = False  # the idempotency key answered with the first request's cashout

    @property
    def total(self) -> Decimal:
        """What leaves (or left) the wallet: amount plus fee."""
        return self.amount + self.fee

    @classmethod
    def from_row(cls, row: Any) -> Cashout:
        c = row["cashout"]
        return cls(
            id=c["id"],
            user_id=c["user_id"],
            currency=c["currency"],
            amount=money(c["amount"]),
            fee=money(c["fee"]),
            status=CashoutStatus(c["status"]),
            destination=DestinationKind(c["destination"]),
            network=c["network"],
            address=c["address"],
            bank_code=c["bank_code"],
            account_number=c["account_number"],
            account_name=c["account_name"],
            saved_address_id=c["saved_address_id"],
            saved_bank_account_id=c["saved_bank_account_id"],
            provider=c["provider"],
            provider_reference=c["provider_reference"],
            failure_reason=c["failure_reason"],
            idempotency_key=c["idempotency_key"],
            created_at=moment(c["created_at"]),
            approved_at=moment(c["approved_at"]),
            completed_at=moment(c["completed_at"]),
            wallet_available=row["available"],
            wallet_held=row["held"],
            transfer_id=row.get("transfer_id"),
            replayed=row.get("replay", False),
        )


async def request_cashout(
    conn,
    *,
    telegram_id: int,
    currency: str,
    amount: Decimal,
    destination: CryptoDestination | BankDestination,
    idempotency_key: str,
) -> Cashout:
    """Holds amount + fee and records a pending cashout, once per idempotency key.

    The same key with the same details returns the first cashout (`replayed`);
    with other details, IdempotencyConflict. Else NotFound, Invalid,
    BelowMinimum, AboveLimit, InsufficientFunds; a refusal changes nothing.
    """
    dest = _destination_json(destination)
    params = {
        "telegram_id": telegram_id,
        "currency": currency,
        "amount": amount,
        "destination": dest,
        "idempotency_key": idempotency_key,
        # 30 and 30.00 are the same request.
        "request_hash": request_hash(
            currency=currency, amount=amount.normalize(), destination=dest
        ),
    }
    row = await queries.wallet_request_cashout(conn, **params)
    # A concurrent request committed while this one waited for the wallet or
    # the key, and this statement's snapshot cannot see its claim: once more,
    # with a fresh snapshot. Each rerun needs yet another commit on the same
    # wallet in between to race again.
    for _ in range(5):
        if row["outcome"] != "retry":
            break
        row = await queries.wallet_request_cashout(conn, **params)
    outcome = row["outcome"]
    if outcome == "ok":
        return Cashout.from_row(row)
    if outcome == "not_found":
        raise refusal(outcome, what=row["detail"])
    if outcome == "idempotency_conflict":
        raise refusal(outcome, key=idempotency_key)
    if outcome == "invalid":
        raise refusal(outcome, reason=row["detail"])
    if outcome == "below_minimum":
        raise refusal(outcome, currency=currency, minimum=row["minimum"])
    if outcome == "above_limit":
        raise refusal(outcome, currency=currency, maximum=row["maximum"])
    if outcome in ("insufficient_funds", "retry"):
        # Still racing after the reruns: the wallet is busy; what it holds now is too little.
        raise refusal(
            "insufficient_funds",
            currency=currency,
            available=row["available"],
            needed=row["needed"],
        )
    raise refusal(outcome)  # pragma: no cover - the query answers with the outcomes above


def _cashout_or_refusal(row: Any, action: str) -> Cashout:
    outcome = row["outcome"]
    if outcome == "ok":
        return Cashout.from_row(row)
    if outcome == "not_found":
        raise refusal(outcome, what="cashout")
    if outcome == "not_a_party":
        raise refusal(outcome, subject="cashout")
    if outcome == "wrong_status":
        raise refusal(outcome, subject="cashout", status=row["status"], action=action)
    raise refusal(outcome)  # pragma: no cover - the queries answer with the outcomes above


async def approve_cashout(conn, *, cashout_id: int, admin_telegram_id: int) -> Cashout:
    """An admin approves a pending cashout. NotAParty (not an admin), NotFound, WrongStatus."""
    row = await queries.wallet_approve_cashout(
        conn, cashout_id=cashout_id, admin_telegram_id=admin_telegram_id
    )
    return _cashout_or_refusal(row, "be approved")


async def settle_cashout(
    conn, *, cashout_id: int, provider: PaymentProvider, provider_reference: str
) -> Cashout:
    """The provider paid it out: the hold goes to its clearing account and the fee to the
    platform. NotFound, WrongStatus (already settled or failed: nothing moves)."""
    row = await queries.wallet_settle_cashout(
        conn,
        cashout_id=cashout_id,
        provider=PaymentProvider(provider).value,
        provider_reference=provider_reference,
    )
    return _cashout_or_refusal(row, "be paid out")


async def fail_cashout(conn, *, cashout_id: int, reason: str) -> Cashout:
    """The payout cannot be made: the hold goes back to available. NotFound, WrongStatus."""
    row = await queries.wallet_fail_cashout(conn, cashout_id=cashout_id, reason=reason)
    return _cashout_or_refusal(row, "fail")


@dataclass(frozen=True, slots=True)
class PayoutResult:
    """What one provider payout event did."""

    duplicate: bool  # the event was seen before: nothing moved this time
    provider: PaymentProvider
    event_id: str
    cashout_id: int
    succeeded: bool  # the event's news: paid out (settle), or not (fail)
    cashout: Cashout | None = None  # the cashout after the movement; None when nothing moved
    telegram_id: int | None = None  # the cashout's owner, to tell them
    # Why nothing moved: NotFound (no such cashout), WrongStatus (already settled or failed).
    refused: DomainError | None = None


async def apply_payout_event(
    conn,
    *,
    provider: PaymentProvider,
    event_id: str,
    event_type: str,
    cashout_id: int,
    succeeded: bool,
    provider_reference: str | None = None,
    reason: str | None = None,
    order_ref: str | None = None,
    payload: dict | None = None,
) -> PayoutResult:
    """Settles (succeeded) or fails a cashout on the provider's word, exactly once per
    (provider, event_id).

    One transaction: claim the event, settle_cashout or fail_cashout, mark the event
    processed with the cashout's transfer. A refusal (no such cashout, or one already
    settled or failed) moves nothing and is returned in `refused`; the claim stays, so the
    event is on record for an admin and its redeliveries are duplicates.
    """
    provider = PaymentProvider(provider)
    result = PayoutResult(
        duplicate=True,
        provider=provider,
        event_id=event_id,
        cashout_id=cashout_id,
        succeeded=succeeded,
    )
    async with db.transaction(conn) as tx:
        event_row_id = await _claim_event(
            tx, provider, event_id, event_type=event_type, order_ref=order_ref, payload=payload
        )
        if event_row_id is None:
            return result
        try:
            if succeeded:
                cashout = await settle_cashout(
                    tx,
                    cashout_id=cashout_id,
                    provider=provider,
                    provider_reference=provider_reference or event_id,
                )
            else:
                cashout = await fail_cashout(
                    tx, cashout_id=cashout_id, reason=reason or f"{provider.value}: payout failed"
                )
        except DomainError as e:
            return PayoutResult(
                duplicate=False,
                provider=provider,
                event_id=event_id,
                cashout_id=cashout_id,
                succeeded=succeeded,
                refused=e,
            )
        telegram_id = await queries.wallet_payout_event_processed(
            tx, event_row_id=event_row_id, cashout_id=cashout_id, transfer_id=cashout.transfer_id
        )
        return PayoutResult(
            duplicate=False,
            provider=provider,
            event_id=event_id,
            cashout_id=cashout_id,
            succeeded=succeeded,
            cashout=cashout,
            telegram_id=telegram_id,
        )


# --- the payout worker ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PayoutClaim:
    """A cashout a payout worker has taken (processing, its claim committed) and must now
    pay out through `provider`, or, when `recovering`, first look up there."""

    cashout_id: int
    user_id: int
    telegram_id: int
    currency: str
    amount: Decimal  # what the destination receives (the fee stays with the platform)
    destination: DestinationKind
    network: str | None
    address: str | None
    bank_code: str | None
    account_number: str | None
    account_name: str | None
    provider: PaymentProvider
    claimed_at: datetime  # the claim's payout_started_at: releasing it needs it
    attempts: int  # claims so far, this one included
    recovering: bool  # it was processing already: a call may have been made before
    created_at: datetime


async def claim_payouts(
    conn,
    *,
    bank_provider: PaymentProvider | None,
    crypto_provider: PaymentProvider | None,
    lease_seconds: int,
    batch_size: int,
    skip_ids: Sequence[int] = (),
) -> list[PayoutClaim]:
    """Takes up to `batch_size` cashouts to pay out (one statement, committed when `conn`
    is outside a transaction), skipping those another worker holds and `skip_ids`:
    approved ones, and processing ones without a provider reference whose claim was
    released or is older than `lease_seconds`. A rail whose provider is None is left
    alone."""
    rows = queries.wallet_claim_payouts(
        conn,
        bank_provider=None if bank_provider is None else PaymentProvider(bank_provider).value,
        crypto_provider=(
            None if crypto_provider is None else PaymentProvider(crypto_provider).value
        ),
        lease_seconds=lease_seconds,
        batch_size=batch_size,
        skip_ids=list(skip_ids),
    )
    return [
        PayoutClaim(
            cashout_id=r["id"],
            user_id=r["user_id"],
            telegram_id=r["telegram_id"],
            currency=r["currency"],
            amount=r["amount"],
            destination=DestinationKind(r["destination"]),
            network=r["network"],
            address=r["address"],
            bank_code=r["bank_code"],
            account_number=r["account_number"],
            account_name=r["account_name"],
            provider=PaymentProvider(r["provider"]),
            claimed_at=r["payout_started_at"],
            attempts=r["payout_attempts"],
            recovering=r["recovering"],
            created_at=r["created_at"],
        )
        async for r in rows
    ]


@dataclass(frozen=True, slots=True)
class PayoutRecord:
    status: CashoutStatus  # the cashout's status
    recorded: bool  # False: it had a reference already, or was settled or failed meanwhile
    provider_reference: str | None


async def record_payout(
    conn, *, cashout_id: int, provider: PaymentProvider, provider_reference: str
) -> PayoutRecord:
    """Records the provider's reference on a processing cashout and ends its claim; the
    money moves on the provider's confirmation. NotFound for no such cashout."""
    row = await queries.wallet_record_payout(
        conn,
        cashout_id=cashout_id,
        provider=PaymentProvider(provider).value,
        provider_reference=provider_reference,
    )
    if row is None:
        raise refusal("not_found", what="cashout")
    return PayoutRecord(
        status=CashoutStatus(row["status"]),
        recorded=row["recorded"],
        provider_reference=row["provider_reference"],
    )


async def release_payout_claim(conn, *, cashout_id: int, claimed_at: datetime) -> bool:
    """Ends the claim made at `claimed_at`, so that the next run takes the cashout again
    at once (looking it up before any new call). False when the claim is no longer that
    one (recorded, settled, failed, or taken again)."""
    released = await queries.wallet_release_payout_claim(
        conn, cashout_id=cashout_id, claimed_at=claimed_at
    )
    return released is not None


async def expire_stale_deposit_orders(conn, *, limit: int = 500) -> list[int]:
    """The deposit-order expiry job: top-up orders open for longer than
    platform_settings.deposit_window_hours become expired, `limit` per statement, each
    batch committed on its own (unless the caller holds a transaction). Moves no money: a
    later payment to one is credited as ever. Concurrent runs never expire one twice.
    Returns the ids this run expired."""
    expired: list[int] = []
    while True:
        batch = [
            r["id"] async for r in queries.wallet_expire_stale_deposit_orders(conn, batch=limit)
        ]
        expired.extend(batch)
        if len(batch) < limit:
            return expired
