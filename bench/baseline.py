"""The baseline: LockBay's screens written the way the old bot wrote them.

SQLAlchemy 2 async ORM on asyncpg (`postgresql+asyncpg`), declarative models mapped onto the
project's own tables (only the columns the screens need), one query per entity, awaited one
after the other: the user, then the user's wallets, then each wallet's currency and rates,
then the saved addresses, ... Lists load their related rows per row, as lazy loading does
(`awaitable_attrs`, with the session's identity map sparing a row already loaded). Sums and
counts are the ORM's `func.count`/`func.sum` over the tables, or Python over the loaded rows.

Each screen opens a session of its own (so a transaction: BEGIN ... ROLLBACK) and returns the
project's own frozen dataclasses (`bot.data.*`), so that a test compares the two with `==`.
Nothing here writes SQL by hand: every statement is what SQLAlchemy generates.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal, localcontext
from types import MappingProxyType
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    FetchedValue,
    ForeignKey,
    Integer,
    Numeric,
    String,
    event,
    func,
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ENUM, JSONB
from sqlalchemy.ext.asyncio import (
    AsyncAttrs,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import DateTime

from bot.data import admin as admin_data
from bot.data import contacts as contacts_data
from bot.data import dispute as dispute_data
from bot.data import escrow as escrow_data
from bot.data import exchange as exchange_data
from bot.data import history as history_data
from bot.data import menu as menu_data
from bot.data import onboarding as onboarding_data
from bot.data import rating as rating_data
from bot.data import referral as referral_data
from bot.data import support as support_data
from bot.data import wallet as wallet_data
from bot.data.enums import (
    AccountKind,
    CashoutStatus,
    DestinationKind,
    DisputeResolution,
    DisputeStatus,
    EscrowStatus,
    ExchangeStatus,
    FeeSplit,
    OnboardingStep,
    PartyRole,
    PaymentMethod,
    PaymentProvider,
    TicketStatus,
    TransferKind,
    TransferStatus,
)
from bot.data.errors import refusal
from bot.data.rows import PageCursor, WalletBalance, request_hash
from bot.money import normalize_handle

# --- the models: the project's tables, as an ORM maps them ----------------------------------

MONEY = Numeric(38, 18)
RATE = Numeric(10, 6)
TS = DateTime(timezone=True)


def pg_enum(enum: type, name: str) -> ENUM:
    """An existing PostgreSQL enum type, by its members' values."""
    return ENUM(enum, name=name, create_type=False, values_callable=lambda e: [m.value for m in e])


class Base(AsyncAttrs, DeclarativeBase):
    pass


class Currency(Base):
    __tablename__ = "currencies"
    code: Mapped[str] = mapped_column(String, primary_key=True)
    kind: Mapped[str] = mapped_column(String)
    decimals: Mapped[int] = mapped_column(Integer)
    cashout_min: Mapped[Decimal] = mapped_column(MONEY)
    cashout_max: Mapped[Decimal] = mapped_column(MONEY)
    cashout_fee_flat: Mapped[Decimal] = mapped_column(MONEY)
    cashout_fee_rate: Mapped[Decimal] = mapped_column(RATE)
    escrow_min_amount: Mapped[Decimal] = mapped_column(MONEY)
    sort_order: Mapped[int] = mapped_column(Integer)
    networks: Mapped[list[Network]] = relationship(order_by="Network.network")


class Network(Base):
    __tablename__ = "networks"
    currency: Mapped[str] = mapped_column(ForeignKey("currencies.code"), primary_key=True)
    network: Mapped[str] = mapped_column(String, primary_key=True)
    label: Mapped[str] = mapped_column(String)


class Bank(Base):
    __tablename__ = "banks"
    code: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str] = mapped_column(String)


class PlatformSettings(Base):
    __tablename__ = "platform_settings"
    id: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    escrow_fee_rate: Mapped[Decimal] = mapped_column(RATE)
    rate_lock_seconds: Mapped[int] = mapped_column(Integer)
    rate_max_age_seconds: Mapped[int] = mapped_column(Integer)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    telegram_id: Mapped[int] = mapped_column(BigInteger)
    username: Mapped[str | None] = mapped_column(String)
    first_name: Mapped[str] = mapped_column(String)
    last_name: Mapped[str | None] = mapped_column(String)
    email: Mapped[str | None] = mapped_column(String)
    email_verified_at: Mapped[datetime | None] = mapped_column(TS)
    phone: Mapped[str | None] = mapped_column(String)
    phone_verified_at: Mapped[datetime | None] = mapped_column(TS)
    referral_code: Mapped[str] = mapped_column(String)
    referrer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    is_admin: Mapped[bool] = mapped_column(Boolean)
    is_blocked: Mapped[bool] = mapped_column(Boolean)
    onboarding: Mapped[OnboardingStep] = mapped_column(pg_enum(OnboardingStep, "onboarding_step"))
    created_at: Mapped[datetime] = mapped_column(TS)
    wallets: Mapped[list[Wallet]] = relationship(order_by="Wallet.currency")


class EmailVerification(Base):
    __tablename__ = "email_verifications"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    email: Mapped[str] = mapped_column(String)
    expires_at: Mapped[datetime] = mapped_column(TS)
    attempts_left: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(TS)
    verified_at: Mapped[datetime | None] = mapped_column(TS)


class SavedAddress(Base):
    __tablename__ = "saved_addresses"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    currency: Mapped[str] = mapped_column(String)
    network: Mapped[str] = mapped_column(String)
    address: Mapped[str] = mapped_column(String)
    label: Mapped[str | None] = mapped_column(String)
    last_used_at: Mapped[datetime | None] = mapped_column(TS)
    deleted_at: Mapped[datetime | None] = mapped_column(TS)


class SavedBankAccount(Base):
    __tablename__ = "saved_bank_accounts"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    bank_code: Mapped[str] = mapped_column(ForeignKey("banks.code"))
    account_number: Mapped[str] = mapped_column(String)
    account_name: Mapped[str] = mapped_column(String)
    label: Mapped[str | None] = mapped_column(String)
    last_used_at: Mapped[datetime | None] = mapped_column(TS)
    deleted_at: Mapped[datetime | None] = mapped_column(TS)
    bank: Mapped[Bank] = relationship()


class Wallet(Base):
    __tablename__ = "wallets"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    currency: Mapped[str] = mapped_column(ForeignKey("currencies.code"))
    available: Mapped[Decimal] = mapped_column(MONEY)
    held: Mapped[Decimal] = mapped_column(MONEY)
    updated_at: Mapped[datetime] = mapped_column(TS, server_default=FetchedValue())
    currency_row: Mapped[Currency] = relationship()


class ExchangeRate(Base):
    __tablename__ = "exchange_rates"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    base: Mapped[str] = mapped_column(String)
    quote: Mapped[str] = mapped_column(String)
    rate: Mapped[Decimal] = mapped_column(MONEY)
    fetched_at: Mapped[datetime] = mapped_column(TS)


class ExchangePair(Base):
    __tablename__ = "exchange_pairs"
    from_currency: Mapped[str] = mapped_column(String, primary_key=True)
    to_currency: Mapped[str] = mapped_column(String, primary_key=True)
    markup_rate: Mapped[Decimal] = mapped_column(RATE)
    min_amount: Mapped[Decimal] = mapped_column(MONEY)
    max_amount: Mapped[Decimal] = mapped_column(MONEY)
    enabled: Mapped[bool] = mapped_column(Boolean)


class ExchangeOrder(Base):
    __tablename__ = "exchange_orders"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    from_currency: Mapped[str] = mapped_column(ForeignKey("currencies.code"))
    to_currency: Mapped[str] = mapped_column(ForeignKey("currencies.code"))
    from_amount: Mapped[Decimal] = mapped_column(MONEY)
    to_amount: Mapped[Decimal] = mapped_column(MONEY)
    market_rate: Mapped[Decimal] = mapped_column(MONEY)
    markup_rate: Mapped[Decimal] = mapped_column(RATE)
    rate: Mapped[Decimal] = mapped_column(MONEY)
    status: Mapped[ExchangeStatus] = mapped_column(pg_enum(ExchangeStatus, "exchange_status"))
    rate_locked_until: Mapped[datetime] = mapped_column(TS)
    destination: Mapped[DestinationKind] = mapped_column(
        pg_enum(DestinationKind, "destination_kind")
    )
    payment_reference: Mapped[str | None] = mapped_column(String)
    received_amount: Mapped[Decimal | None] = mapped_column(MONEY)
    created_at: Mapped[datetime] = mapped_column(TS)
    completed_at: Mapped[datetime | None] = mapped_column(TS)
    from_currency_row: Mapped[Currency] = relationship(foreign_keys=[from_currency])
    to_currency_row: Mapped[Currency] = relationship(foreign_keys=[to_currency])


class Cashout(Base):
    __tablename__ = "cashouts"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    wallet_id: Mapped[int] = mapped_column(ForeignKey("wallets.id"))
    currency: Mapped[str] = mapped_column(String)
    amount: Mapped[Decimal] = mapped_column(MONEY)
    fee: Mapped[Decimal] = mapped_column(MONEY)
    destination: Mapped[DestinationKind] = mapped_column(
        pg_enum(DestinationKind, "destination_kind")
    )
    network: Mapped[str | None] = mapped_column(String)
    address: Mapped[str | None] = mapped_column(String)
    bank_code: Mapped[str | None] = mapped_column(String)
    account_number: Mapped[str | None] = mapped_column(String)
    account_name: Mapped[str | None] = mapped_column(String)
    saved_address_id: Mapped[int | None] = mapped_column(BigInteger)
    saved_bank_account_id: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[CashoutStatus] = mapped_column(pg_enum(CashoutStatus, "cashout_status"))
    provider: Mapped[str | None] = mapped_column(String)
    provider_reference: Mapped[str | None] = mapped_column(String)
    idempotency_key: Mapped[str] = mapped_column(String)
    failure_reason: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(TS, server_default=FetchedValue())
    approved_at: Mapped[datetime | None] = mapped_column(TS)
    completed_at: Mapped[datetime | None] = mapped_column(TS)


class Escrow(Base):
    __tablename__ = "escrows"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ref: Mapped[str] = mapped_column(String)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    seller_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    seller_handle: Mapped[str] = mapped_column(String)
    currency: Mapped[str] = mapped_column(ForeignKey("currencies.code"))
    amount: Mapped[Decimal] = mapped_column(MONEY)
    fee: Mapped[Decimal] = mapped_column(MONEY)
    total: Mapped[Decimal] = mapped_column(MONEY)
    fee_split: Mapped[FeeSplit] = mapped_column(pg_enum(FeeSplit, "fee_split"))
    buyer_fee: Mapped[Decimal] = mapped_column(MONEY)
    seller_fee: Mapped[Decimal] = mapped_column(MONEY)
    description: Mapped[str] = mapped_column(String)
    status: Mapped[EscrowStatus] = mapped_column(pg_enum(EscrowStatus, "escrow_status"))
    payment_method: Mapped[PaymentMethod | None] = mapped_column(
        pg_enum(PaymentMethod, "payment_method")
    )
    payment_reference: Mapped[str | None] = mapped_column(String)
    payment_address: Mapped[str | None] = mapped_column(String)
    paid_amount: Mapped[Decimal] = mapped_column(MONEY)
    payment_deadline: Mapped[datetime] = mapped_column(TS)
    accept_deadline: Mapped[datetime | None] = mapped_column(TS)
    delivery_deadline: Mapped[datetime | None] = mapped_column(TS)
    auto_release_at: Mapped[datetime | None] = mapped_column(TS)
    created_at: Mapped[datetime] = mapped_column(TS)
    updated_at: Mapped[datetime] = mapped_column(TS)
    funded_at: Mapped[datetime | None] = mapped_column(TS)
    accepted_at: Mapped[datetime | None] = mapped_column(TS)
    delivered_at: Mapped[datetime | None] = mapped_column(TS)
    closed_at: Mapped[datetime | None] = mapped_column(TS)
    buyer: Mapped[User] = relationship(foreign_keys=[buyer_id])
    seller: Mapped[User | None] = relationship(foreign_keys=[seller_id])
    currency_row: Mapped[Currency] = relationship()


class EscrowTransition(Base):
    __tablename__ = "escrow_transitions"
    from_status: Mapped[EscrowStatus] = mapped_column(
        pg_enum(EscrowStatus, "escrow_status"), primary_key=True
    )
    action: Mapped[str] = mapped_column(String, primary_key=True)
    actor: Mapped[str] = mapped_column(String, primary_key=True)
    to_status: Mapped[EscrowStatus] = mapped_column(
        pg_enum(EscrowStatus, "escrow_status"), primary_key=True
    )


class Dispute(Base):
    __tablename__ = "disputes"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    escrow_id: Mapped[int] = mapped_column(ForeignKey("escrows.id"))
    opened_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(String)
    status: Mapped[DisputeStatus] = mapped_column(pg_enum(DisputeStatus, "dispute_status"))
    admin_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    resolution: Mapped[DisputeResolution | None] = mapped_column(
        pg_enum(DisputeResolution, "dispute_resolution")
    )
    buyer_share: Mapped[Decimal | None] = mapped_column(MONEY)
    created_at: Mapped[datetime] = mapped_column(TS)
    last_message_at: Mapped[datetime | None] = mapped_column(TS)
    resolved_at: Mapped[datetime | None] = mapped_column(TS)
    escrow: Mapped[Escrow] = relationship()
    admin: Mapped[User | None] = relationship(foreign_keys=[admin_id])


class DisputeMessage(Base):
    __tablename__ = "dispute_messages"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    dispute_id: Mapped[int] = mapped_column(ForeignKey("disputes.id"))
    sender_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(TS)
    sender: Mapped[User] = relationship()


class Rating(Base):
    __tablename__ = "ratings"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    escrow_id: Mapped[int] = mapped_column(ForeignKey("escrows.id"))
    rater_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    ratee_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    rater_role: Mapped[PartyRole] = mapped_column(pg_enum(PartyRole, "party_role"))
    stars: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(TS)
    rater: Mapped[User] = relationship(foreign_keys=[rater_id])


class SupportTicket(Base):
    __tablename__ = "support_tickets"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    subject: Mapped[str] = mapped_column(String)
    status: Mapped[TicketStatus] = mapped_column(pg_enum(TicketStatus, "ticket_status"))
    admin_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(TS)
    updated_at: Mapped[datetime] = mapped_column(TS)
    closed_at: Mapped[datetime | None] = mapped_column(TS)


class SupportMessage(Base):
    __tablename__ = "support_messages"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("support_tickets.id"))
    from_admin: Mapped[bool] = mapped_column(Boolean)
    body: Mapped[str] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(TS)
    read_at: Mapped[datetime | None] = mapped_column(TS)


class LedgerAccount(Base):
    __tablename__ = "ledger_accounts"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[AccountKind] = mapped_column(pg_enum(AccountKind, "account_kind"))
    currency: Mapped[str] = mapped_column(ForeignKey("currencies.code"))
    wallet_id: Mapped[int | None] = mapped_column(BigInteger)
    escrow_id: Mapped[int | None] = mapped_column(BigInteger)
    provider: Mapped[PaymentProvider | None] = mapped_column(
        pg_enum(PaymentProvider, "payment_provider")
    )


class LedgerTransfer(Base):
    __tablename__ = "ledger_transfers"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[TransferKind] = mapped_column(pg_enum(TransferKind, "transfer_kind"))
    status: Mapped[TransferStatus] = mapped_column(
        pg_enum(TransferStatus, "transfer_status"), server_default=FetchedValue()
    )
    memo: Mapped[str | None] = mapped_column(String)
    escrow_id: Mapped[int | None] = mapped_column(BigInteger)
    cashout_id: Mapped[int | None] = mapped_column(ForeignKey("cashouts.id"))
    exchange_order_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(TS, server_default=FetchedValue())
    entries: Mapped[list[LedgerEntry]] = relationship(order_by="LedgerEntry.id")


class LedgerEntry(Base):
    __tablename__ = "ledger_entries"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    transfer_id: Mapped[int] = mapped_column(ForeignKey("ledger_transfers.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    currency: Mapped[str] = mapped_column(ForeignKey("currencies.code"))
    amount: Mapped[Decimal] = mapped_column(MONEY)
    created_at: Mapped[datetime] = mapped_column(TS, server_default=FetchedValue())
    account: Mapped[LedgerAccount] = relationship()
    transfer: Mapped[LedgerTransfer] = relationship(back_populates="entries")
    user: Mapped[User | None] = relationship()
    currency_row: Mapped[Currency] = relationship()


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    scope: Mapped[str] = mapped_column(String, primary_key=True)
    key: Mapped[str] = mapped_column(String, primary_key=True)
    request_hash: Mapped[str] = mapped_column(String)
    result: Mapped[Any] = mapped_column(JSONB, nullable=True)


class ReferralReward(Base):
    __tablename__ = "referral_rewards"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    referrer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    referred_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    currency: Mapped[str] = mapped_column(ForeignKey("currencies.code"))
    amount: Mapped[Decimal] = mapped_column(MONEY)
    currency_row: Mapped[Currency] = relationship()


# --- the engine and its round trips -----------------------------------------------------


def create_engine(dsn: str, *, pool_size: int = 5) -> AsyncEngine:
    """An AsyncEngine on the asyncpg driver for the same DSN the project's pool uses, with
    room in asyncpg's statement cache for every statement the screens send."""
    return create_async_engine(
        "postgresql+asyncpg://",
        connect_args={"dsn": dsn, "prepared_statement_cache_size": 1000},
        pool_size=pool_size,
        max_overflow=0,
    )


class RoundTripCounter:
    """Counts what the engine sends: each statement (`before_cursor_execute`), and the
    BEGIN and COMMIT/ROLLBACK of each transaction (asyncpg sends each as a query of its own,
    so each costs a round trip too)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.statements = 0
        self.transactions = 0  # BEGIN, COMMIT and ROLLBACK
        sync = engine.sync_engine
        event.listen(sync, "before_cursor_execute", self._statement)
        for name in ("begin", "commit", "rollback"):
            event.listen(sync, name, self._transaction)

    def _statement(self, *_: Any) -> None:
        self.statements += 1

    def _transaction(self, *_: Any) -> None:
        self.transactions += 1

    @property
    def round_trips(self) -> int:
        return self.statements + self.transactions


# --- small rules the old code spelled out in Python -----------------------------------------

LIVE_DISPUTE = (DisputeStatus.OPEN, DisputeStatus.IN_REVIEW)
IN_FLIGHT = (CashoutStatus.PENDING, CashoutStatus.APPROVED, CashoutStatus.PROCESSING)
OPEN_ORDERS = (
    ExchangeStatus.QUOTED,
    ExchangeStatus.AWAITING_PAYMENT,
    ExchangeStatus.PAID,
    ExchangeStatus.UNDERPAID,
)
S = EscrowStatus
ACTIVE = (S.AWAITING_PAYMENT, S.FUNDED, S.ACCEPTED, S.DELIVERED, S.DISPUTED)
HOLDING = (S.FUNDED, S.ACCEPTED, S.DELIVERED, S.DISPUTED)
CENT = Decimal("0.01")


def coalesce(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def nullif(value: Any, empty: Any = "") -> Any:
    return None if value == empty else value


def display_name(u: User) -> str:
    """First name, else username, else ''."""
    return coalesce(nullif(u.first_name), u.username, "")


def admin_display_name(u: User) -> str:
    """First name and @username, or the Telegram id when there is neither."""
    parts = [nullif(u.first_name), None if u.username is None else "@" + u.username]
    return nullif(" ".join(p for p in parts if p is not None)) or str(u.telegram_id)


def cents(value: Decimal) -> Decimal:
    """Rounded to cents, halves away from zero (as PostgreSQL's round)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def average(stars: list[int]) -> Decimal | None:
    return cents(Decimal(sum(stars)) / len(stars)) if stars else None


def hour_floor(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def keyset_before(columns: tuple[Any, Any], before: PageCursor | None) -> list[Any]:
    return [] if before is None else [tuple_(*columns) < tuple_(before.at, before.id)]


async def first(session: AsyncSession, statement: Any) -> Any:
    return (await session.execute(statement)).scalars().first()


async def every(session: AsyncSession, statement: Any) -> list[Any]:
    return list((await session.execute(statement)).scalars().all())


async def scalar(session: AsyncSession, statement: Any) -> Any:
    return (await session.execute(statement)).scalar_one()


# --- the screens -------------------------------------------------------------------------


class Baseline:
    """Every screen of SCREENS.md, the old way, with the project's keyword arguments."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.counter = RoundTripCounter(engine)

    # Lookups every screen starts with.

    async def _user(self, s: AsyncSession, telegram_id: int) -> User | None:
        return await first(s, select(User).where(User.telegram_id == telegram_id))

    async def _balances(self, user: User) -> list[tuple[Wallet, Currency]]:
        wallets = await user.awaitable_attrs.wallets
        return [(w, await w.awaitable_attrs.currency_row) for w in wallets]

    async def _latest_rate(self, s: AsyncSession, base: str, quote: str) -> ExchangeRate | None:
        return await first(
            s,
            select(ExchangeRate)
            .where(ExchangeRate.base == base, ExchangeRate.quote == quote)
            .order_by(ExchangeRate.fetched_at.desc())
            .limit(1),
        )

    async def _addresses(
        self, s: AsyncSession, user_id: int, limit: int | None
    ) -> list[contacts_data.SavedAddress]:
        rows = await every(
            s,
            select(SavedAddress)
            .where(SavedAddress.user_id == user_id, SavedAddress.deleted_at.is_(None))
            .order_by(SavedAddress.last_used_at.desc().nulls_last(), SavedAddress.id.desc())
            .limit(limit),
        )
        return [
            contacts_data.SavedAddress(
                a.id, a.currency, a.network, a.address, a.label, a.last_used_at
            )
            for a in rows
        ]

    async def _bank_accounts(
        self, s: AsyncSession, user_id: int, limit: int | None
    ) -> list[contacts_data.SavedBankAccount]:
        rows = await every(
            s,
            select(SavedBankAccount)
            .where(SavedBankAccount.user_id == user_id, SavedBankAccount.deleted_at.is_(None))
            .order_by(SavedBankAccount.last_used_at.desc().nulls_last(), SavedBankAccount.id.desc())
            .limit(limit),
        )
        accounts = []
        for b in rows:
            bank = await b.awaitable_attrs.bank
            accounts.append(
                contacts_data.SavedBankAccount(
                    b.id,
                    b.bank_code,
                    bank.name,
                    b.account_number,
                    b.account_name,
                    b.label,
                    b.last_used_at,
                )
            )
        return accounts

    async def _rating(self, s: AsyncSession, user_id: int) -> rating_data.RatingSummary:
        ratings = await every(
            s,
            select(Rating)
            .where(Rating.ratee_id == user_id)
            .order_by(Rating.created_at.desc(), Rating.id.desc()),
        )
        as_buyer = [r.stars for r in ratings if r.rater_role == PartyRole.SELLER]
        as_seller = [r.stars for r in ratings if r.rater_role == PartyRole.BUYER]
        latest = []
        for r in ratings[:5]:
            rater = await r.awaitable_attrs.rater
            latest.append(rating_data.Review(r.stars, r.comment, display_name(rater), r.created_at))
        return rating_data.RatingSummary(
            average=average([r.stars for r in ratings]),
            count=len(ratings),
            distribution=MappingProxyType(
                {n: sum(1 for r in ratings if r.stars == n) for n in range(1, 6)}
            ),
            as_buyer=rating_data.RoleRating(average(as_buyer), len(as_buyer)),
            as_seller=rating_data.RoleRating(average(as_seller), len(as_seller)),
            latest=tuple(latest),
        )

    # Wallet.

    async def wallet_context(self, *, telegram_id: int) -> wallet_data.WalletContext | None:
        async with self.sessions() as s:
            user = await self._user(s, telegram_id)
            if user is None:
                return None
            settings = await s.get(PlatformSettings, True)
            stale_before = datetime.now(UTC) - timedelta(seconds=settings.rate_max_age_seconds)
            wallets = []
            for w, cur in await self._balances(user):
                networks = await cur.awaitable_attrs.networks
                to_usd = await self._latest_rate(s, w.currency, "USD")
                from_usd = await self._latest_rate(s, "USD", w.currency)
                total = w.available + w.held
                with localcontext(prec=120):
                    if to_usd is not None:
                        usd_value = cents(total * to_usd.rate)
                    elif from_usd is not None:
                        usd_value = cents(total / from_usd.rate)
                    else:
                        usd_value = None
                rate_at = coalesce(to_usd and to_usd.fetched_at, from_usd and from_usd.fetched_at)
                wallets.append(
                    wallet_data.Wallet(
                        currency=w.currency,
                        kind=cur.kind,
                        decimals=cur.decimals,
                        available=w.available,
                        held=w.held,
                        usd_value=usd_value,
                        rate_at=rate_at,
                        rate_stale=rate_at is not None and rate_at < stale_before,
                        cashout_min=cur.cashout_min,
                        cashout_max=cur.cashout_max,
                        cashout_fee_flat=cur.cashout_fee_flat,
                        cashout_fee_rate=cur.cashout_fee_rate,
                        networks=tuple(wallet_data.Network(n.network, n.label) for n in networks),
                    )
                )
            addresses = await self._addresses(s, user.id, 20)
            bank_accounts = await self._bank_accounts(s, user.id, 20)
            cashouts = await every(
                s,
                select(Cashout)
                .where(Cashout.user_id == user.id, Cashout.status.in_(IN_FLIGHT))
                .order_by(Cashout.created_at.desc(), Cashout.id.desc()),
            )
            banks = await every(s, select(Bank).order_by(Bank.name, Bank.code).limit(200))
            return wallet_data.WalletContext(
                user=wallet_data.WalletUser(
                    id=user.id,
                    telegram_id=user.telegram_id,
                    username=user.username,
                    first_name=user.first_name,
                    email=user.email,
                    phone=user.phone,
                    email_verified=user.email_verified_at is not None,
                    phone_verified=user.phone_verified_at is not None,
                    is_blocked=user.is_blocked,
                    onboarding_complete=user.onboarding == OnboardingStep.COMPLETE,
                ),
                wallets=tuple(wallets),
                total_usd=sum(
                    (w.usd_value for w in wallets if w.usd_value is not None), Decimal(0)
                ),
                addresses=tuple(addresses),
                bank_accounts=tuple(bank_accounts),
                cashouts_in_flight=tuple(
                    wallet_data.CashoutInFlight(
                        id=c.id,
                        currency=c.currency,
                        amount=c.amount,
                        fee=c.fee,
                        status=c.status,
                        destination=c.destination,
                        network=c.network,
                        address=c.address,
                        bank_code=c.bank_code,
                        account_number=c.account_number,
                        created_at=c.created_at,
                    )
                    for c in cashouts[:10]
                ),
                cashouts_in_flight_count=len(cashouts),
                banks=tuple(wallet_data.Bank(b.code, b.name) for b in banks),
            )

    async def request_cashout(
        self,
        *,
        telegram_id: int,
        currency: str,
        amount: Decimal,
        destination: wallet_data.CryptoDestination,
        idempotency_key: str,
    ) -> wallet_data.Cashout:
        """The crypto cashout's confirm step, the old way: one transaction of several
        statements (the user, the currency, the key, the wallet locked, the rows inserted
        one by one, the ledger entries, the wallet's balances updated)."""
        dest = {
            "kind": DestinationKind.CRYPTO_ADDRESS.value,
            "network": destination.network,
            "address": destination.address,
            "saved_address_id": destination.saved_address_id,
        }
        digest = request_hash(currency=currency, amount=amount.normalize(), destination=dest)
        async with self.sessions() as s, s.begin():
            user = await self._user(s, telegram_id)
            if user is None:
                raise refusal("not_found", what="user")
            prior = await s.get(IdempotencyKey, (user.id, "cashout", idempotency_key))
            if prior is not None:
                if prior.request_hash != digest:
                    raise refusal("idempotency_conflict", key=idempotency_key)
                raise NotImplementedError("the benchmark never replays a cashout")
            if user.is_blocked:
                raise refusal("invalid", reason="This account is blocked.")
            cur = await s.get(Currency, currency)
            if cur is None or cur.kind != "crypto":
                raise refusal("invalid", reason="There is no such crypto currency.")
            if amount <= 0 or amount != round(amount, cur.decimals):
                raise refusal("invalid", reason="The amount is not one of that currency.")
            if amount < cur.cashout_min:
                raise refusal("below_minimum", currency=currency, minimum=cur.cashout_min)
            if amount > cur.cashout_max:
                raise refusal("above_limit", currency=currency, maximum=cur.cashout_max)
            if await s.get(Network, (currency, destination.network)) is None:
                raise refusal("invalid", reason=f"{currency} cannot be sent on that network.")
            raw_fee = cur.cashout_fee_flat + amount * cur.cashout_fee_rate
            fee = raw_fee.quantize(Decimal(1).scaleb(-cur.decimals), rounding=ROUND_CEILING)
            wallet = await first(
                s,
                select(Wallet)
                .where(Wallet.user_id == user.id, Wallet.currency == currency)
                .with_for_update(),
            )
            total = amount + fee
            if wallet.available < total:
                raise refusal(
                    "insufficient_funds",
                    currency=currency,
                    available=wallet.available,
                    needed=total,
                )
            s.add(
                IdempotencyKey(
                    user_id=user.id, scope="cashout", key=idempotency_key, request_hash=digest
                )
            )
            cashout = Cashout(
                user_id=user.id,
                wallet_id=wallet.id,
                currency=currency,
                amount=amount,
                fee=fee,
                destination=DestinationKind.CRYPTO_ADDRESS,
                network=destination.network,
                address=destination.address,
                saved_address_id=destination.saved_address_id,
                status=CashoutStatus.PENDING,
                idempotency_key=idempotency_key,
            )
            s.add(cashout)
            await s.flush()
            transfer = LedgerTransfer(
                kind=TransferKind.CASHOUT_HOLD, memo=f"cashout {cashout.id}", cashout_id=cashout.id
            )
            s.add(transfer)
            await s.flush()
            accounts = {
                a.kind: a
                for a in await every(
                    s, select(LedgerAccount).where(LedgerAccount.wallet_id == wallet.id)
                )
            }
            for kind, signed in (
                (AccountKind.WALLET_AVAILABLE, -total),
                (AccountKind.WALLET_HELD, total),
            ):
                s.add(
                    LedgerEntry(
                        transfer_id=transfer.id,
                        account_id=accounts[kind].id,
                        user_id=user.id,
                        currency=currency,
                        amount=signed,
                    )
                )
            wallet.available = wallet.available - total
            wallet.held = wallet.held + total
            wallet.updated_at = func.now()
            if destination.saved_address_id is not None:
                saved = await s.get(SavedAddress, destination.saved_address_id)
                saved.last_used_at = func.now()
            await s.flush()
            available, held = wallet.available, wallet.held
        return wallet_data.Cashout(
            id=cashout.id,
            user_id=user.id,
            currency=currency,
            amount=amount,
            fee=fee,
            status=CashoutStatus.PENDING,
            destination=DestinationKind.CRYPTO_ADDRESS,
            network=destination.network,
            address=destination.address,
            bank_code=None,
            account_number=None,
            account_name=None,
            saved_address_id=destination.saved_address_id,
            saved_bank_account_id=None,
            provider=None,
            provider_reference=None,
            failure_reason=None,
            idempotency_key=idempotency_key,
            created_at=cashout.created_at,
            approved_at=None,
            completed_at=None,
            wallet_available=available,
            wallet_held=held,
            transfer_id=transfer.id,
        )

    # Exchange.

    async def exchange_context(self, *, telegram_id: int) -> exchange_data.ExchangeContext | None:
        async with self.sessions() as s:
            settings = await s.get(PlatformSettings, True)
            user = await self._user(s, telegram_id)
            if user is None:
                return None
            wallets = [
                exchange_data.ExchangeWallet(w.currency, cur.kind, cur.decimals, w.available)
                for w, cur in await self._balances(user)
            ]
            addresses = await self._addresses(s, user.id, 20)
            bank_accounts = await self._bank_accounts(s, user.id, 20)
            now = datetime.now(UTC)
            max_age = timedelta(seconds=settings.rate_max_age_seconds)
            legs = []
            for cur in await every(s, select(Currency)):
                base, quote = (cur.code, "USD") if cur.kind == "crypto" else ("USD", cur.code)
                newest = await self._latest_rate(s, base, quote)
                rate = exchange_data.Rate(
                    base=base,
                    quote=quote,
                    rate=newest and newest.rate,
                    fetched_at=newest and newest.fetched_at,
                    age_seconds=(
                        math.floor((now - newest.fetched_at).total_seconds()) if newest else None
                    ),
                    stale=newest is None or newest.fetched_at < now - max_age,
                )
                legs.append(((cur.sort_order, base, quote), rate))
            pairs = await every(
                s,
                select(ExchangePair)
                .where(ExchangePair.enabled)
                .order_by(ExchangePair.from_currency, ExchangePair.to_currency),
            )
            orders = await every(
                s,
                select(ExchangeOrder)
                .where(ExchangeOrder.user_id == user.id, ExchangeOrder.status.in_(OPEN_ORDERS))
                .order_by(ExchangeOrder.created_at.desc(), ExchangeOrder.id.desc()),
            )
            return exchange_data.ExchangeContext(
                user_id=user.id,
                telegram_id=user.telegram_id,
                is_blocked=user.is_blocked,
                onboarding_complete=user.onboarding == OnboardingStep.COMPLETE,
                as_of=now,
                rate_lock_seconds=settings.rate_lock_seconds,
                rate_max_age_seconds=settings.rate_max_age_seconds,
                wallets=tuple(wallets),
                addresses=tuple(addresses),
                bank_accounts=tuple(bank_accounts),
                rates=tuple(rate for _, rate in sorted(legs, key=lambda leg: leg[0])),
                pairs=tuple(
                    exchange_data.Pair(
                        p.from_currency, p.to_currency, p.markup_rate, p.min_amount, p.max_amount
                    )
                    for p in pairs
                ),
                open_orders=tuple(
                    exchange_data.OpenOrder(
                        id=o.id,
                        from_currency=o.from_currency,
                        to_currency=o.to_currency,
                        from_amount=o.from_amount,
                        to_amount=o.to_amount,
                        rate=o.rate,
                        status=o.status,
                        rate_locked_until=o.rate_locked_until,
                        payment_reference=o.payment_reference,
                        received_amount=o.received_amount,
                        created_at=o.created_at,
                    )
                    for o in orders[:10]
                ),
                open_orders_count=len(orders),
            )

    async def exchange_history(
        self, *, telegram_id: int, before: PageCursor | None = None, limit: int = 10
    ) -> exchange_data.ExchangePage:
        limit = max(1, min(limit, exchange_data.MAX_PAGE))
        async with self.sessions() as s:
            user = await self._user(s, telegram_id)
            if user is None:
                return exchange_data.ExchangePage((), None)
            rows = await every(
                s,
                select(ExchangeOrder)
                .where(
                    ExchangeOrder.user_id == user.id,
                    *keyset_before((ExchangeOrder.created_at, ExchangeOrder.id), before),
                )
                .order_by(ExchangeOrder.created_at.desc(), ExchangeOrder.id.desc())
                .limit(limit + 1),
            )
            orders = []
            for o in rows[:limit]:
                from_cur = await o.awaitable_attrs.from_currency_row
                to_cur = await o.awaitable_attrs.to_currency_row
                orders.append(
                    exchange_data.ExchangeOrder(
                        id=o.id,
                        from_currency=o.from_currency,
                        to_currency=o.to_currency,
                        from_amount=o.from_amount,
                        to_amount=o.to_amount,
                        market_rate=o.market_rate,
                        markup_rate=o.markup_rate,
                        rate=o.rate,
                        status=o.status,
                        rate_locked_until=o.rate_locked_until,
                        destination=o.destination,
                        payment_reference=o.payment_reference,
                        received_amount=o.received_amount,
                        created_at=o.created_at,
                        completed_at=o.completed_at,
                        from_decimals=from_cur.decimals,
                        to_decimals=to_cur.decimals,
                    )
                )
            more = len(rows) > limit
            return exchange_data.ExchangePage(
                orders=tuple(orders),
                next_before=PageCursor(orders[-1].created_at, orders[-1].id) if more else None,
            )

    # Onboarding.

    async def onboarding_context(
        self, *, telegram_id: int
    ) -> onboarding_data.OnboardingContext | None:
        async with self.sessions() as s:
            user = await self._user(s, telegram_id)
            if user is None:
                return None
            latest = await first(
                s,
                select(EmailVerification)
                .where(EmailVerification.user_id == user.id)
                .order_by(EmailVerification.created_at.desc(), EmailVerification.id.desc())
                .limit(1),
            )
            pending = None
            if latest is not None and latest.verified_at is None:
                pending = onboarding_data.PendingVerification(
                    email=latest.email,
                    expires_at=latest.expires_at,
                    attempts_left=latest.attempts_left,
                    expired=latest.expires_at <= datetime.now(UTC),
                )
            wallets = [
                WalletBalance(w.currency, cur.decimals, w.available, w.held)
                for w, cur in await self._balances(user)
            ]
            return onboarding_data.OnboardingContext(
                user=onboarding_data.OnboardingUser(
                    id=user.id,
                    telegram_id=user.telegram_id,
                    username=user.username,
                    first_name=user.first_name,
                    email=user.email,
                    onboarding=user.onboarding,
                    referral_code=user.referral_code,
                    is_blocked=user.is_blocked,
                ),
                email_verified=user.email_verified_at is not None,
                phone_verified=user.phone_verified_at is not None,
                onboarding_complete=user.onboarding == OnboardingStep.COMPLETE,
                pending_verification=pending,
                wallets=tuple(wallets),
            )

    # Escrow.

    async def escrow_creation_context(
        self, *, buyer_telegram_id: int, seller_handle: str
    ) -> escrow_data.EscrowCreationContext | None:
        handle = normalize_handle(seller_handle)
        async with self.sessions() as s:
            buyer = await self._user(s, buyer_telegram_id)
            if buyer is None:
                return None
            balances = sorted(
                await self._balances(buyer), key=lambda wc: (wc[1].sort_order, wc[1].code)
            )
            column = {
                "username": func.lower(User.username),
                "email": func.lower(User.email),
                "phone": User.phone,
            }[handle.kind]
            found = await first(s, select(User).where(column == handle.value))
            if found is None:
                status = "not_found"
            elif found.id == buyer.id:
                status = "self"
            else:
                status = "found"
            seller = None
            if status == "found":
                completed = await scalar(
                    s,
                    select(func.count(Escrow.id)).where(
                        Escrow.status == EscrowStatus.COMPLETED,
                        (Escrow.buyer_id == found.id) | (Escrow.seller_id == found.id),
                    ),
                )
                seller = escrow_data.SellerCard(
                    id=found.id,
                    telegram_id=found.telegram_id,
                    display_name=display_name(found),
                    username=found.username,
                    completed_trades=completed,
                    rating=await self._rating(s, found.id),
                )
            settings = await s.get(PlatformSettings, True)
            currencies = await every(
                s, select(Currency).order_by(Currency.sort_order, Currency.code)
            )
            return escrow_data.EscrowCreationContext(
                buyer_id=buyer.id,
                buyer_name=display_name(buyer),
                buyer_username=buyer.username,
                buyer_blocked=buyer.is_blocked,
                buyer_onboarded=buyer.onboarding == OnboardingStep.COMPLETE,
                wallets=tuple(
                    WalletBalance(w.currency, cur.decimals, w.available, w.held)
                    for w, cur in balances
                ),
                handle=handle,
                seller_status=status,
                seller=seller,
                fee_rate=settings.escrow_fee_rate,
                fee_splits=tuple(FeeSplit),
                currencies=tuple(
                    escrow_data.EscrowCurrency(c.code, c.decimals, c.escrow_min_amount, c.kind)
                    for c in currencies
                ),
            )

    async def escrow_view(
        self, *, escrow_id: int, viewer_telegram_id: int
    ) -> escrow_data.EscrowView | None:
        async with self.sessions() as s:
            e = await s.get(Escrow, escrow_id)
            viewer = await self._user(s, viewer_telegram_id)
            if e is None or viewer is None:
                return None
            if viewer.id == e.buyer_id:
                role = "buyer"
            elif viewer.id == e.seller_id:
                role = "seller"
            elif viewer.is_admin:
                role = "admin"
            else:
                return None
            cur = await e.awaitable_attrs.currency_row
            buyer = await e.awaitable_attrs.buyer
            seller = await e.awaitable_attrs.seller
            actions = set(
                await every(
                    s,
                    select(EscrowTransition.action).where(
                        EscrowTransition.from_status == e.status, EscrowTransition.actor == role
                    ),
                )
            )
            live = await first(
                s,
                select(Dispute)
                .where(Dispute.escrow_id == e.id, Dispute.status.in_(LIVE_DISPUTE))
                .order_by(Dispute.created_at.desc())
                .limit(1),
            )
            dispute = None
            if live is not None:
                messages = await scalar(
                    s,
                    select(func.count(DisputeMessage.id)).where(
                        DisputeMessage.dispute_id == live.id
                    ),
                )
                dispute = escrow_data.LiveDispute(
                    id=live.id,
                    status=live.status,
                    reason=live.reason,
                    opened_by_id=live.opened_by_id,
                    opened_by_role=(
                        "buyer"
                        if live.opened_by_id == e.buyer_id
                        else "seller"
                        if live.opened_by_id == e.seller_id
                        else None
                    ),
                    created_at=live.created_at,
                    message_count=messages,
                )
            return escrow_data.EscrowView(
                escrow=escrow_data.Escrow(
                    id=e.id,
                    ref=e.ref,
                    buyer_id=e.buyer_id,
                    seller_id=e.seller_id,
                    seller_handle=e.seller_handle,
                    currency=e.currency,
                    amount=e.amount,
                    fee=e.fee,
                    total=e.total,
                    fee_split=e.fee_split,
                    buyer_fee=e.buyer_fee,
                    seller_fee=e.seller_fee,
                    description=e.description,
                    status=e.status,
                    payment_method=e.payment_method,
                    payment_reference=e.payment_reference,
                    payment_address=e.payment_address,
                    paid_amount=e.paid_amount,
                    payment_deadline=e.payment_deadline,
                    accept_deadline=e.accept_deadline,
                    delivery_deadline=e.delivery_deadline,
                    auto_release_at=e.auto_release_at,
                    created_at=e.created_at,
                    updated_at=e.updated_at,
                    funded_at=e.funded_at,
                    accepted_at=e.accepted_at,
                    delivered_at=e.delivered_at,
                    closed_at=e.closed_at,
                ),
                buyer=escrow_data.Party(buyer.id, display_name(buyer), buyer.username),
                seller=(
                    escrow_data.Party(seller.id, display_name(seller), seller.username)
                    if seller is not None
                    else None
                ),
                viewer_role=role,
                allowed_actions=tuple(a for a in escrow_data.ACTIONS if a in actions),
                dispute=dispute,
                decimals=cur.decimals,
            )

    async def my_escrows(
        self,
        *,
        telegram_id: int,
        status_group: str,
        before: PageCursor | None = None,
        limit: int = 10,
    ) -> escrow_data.EscrowPage | None:
        statuses = escrow_data.STATUS_GROUPS.get(status_group)
        if statuses is None:
            raise ValueError(f"unknown status group {status_group!r}")
        limit = max(1, min(limit, escrow_data.MY_ESCROWS_MAX))
        async with self.sessions() as s:
            me = await self._user(s, telegram_id)
            if me is None:
                return None
            rows = await every(
                s,
                select(Escrow)
                .where(
                    (Escrow.buyer_id == me.id) | (Escrow.seller_id == me.id),
                    Escrow.status.in_(sorted(statuses)),
                    *keyset_before((Escrow.created_at, Escrow.id), before),
                )
                .order_by(Escrow.created_at.desc(), Escrow.id.desc())
                .limit(limit + 1),
            )
            items = []
            for e in rows:
                role = "buyer" if e.buyer_id == me.id else "seller"
                other = await (
                    e.awaitable_attrs.seller if role == "buyer" else e.awaitable_attrs.buyer
                )
                cur = await e.awaitable_attrs.currency_row
                items.append(
                    escrow_data.EscrowListItem(
                        id=e.id,
                        ref=e.ref,
                        role=role,
                        counterparty_name=coalesce(
                            other and nullif(other.first_name),
                            other and other.username,
                            e.seller_handle,
                        ),
                        counterparty_invited=other is None,
                        currency=e.currency,
                        amount=e.amount,
                        status=e.status,
                        created_at=e.created_at,
                        decimals=cur.decimals,
                    )
                )
            next_before = None
            if len(items) > limit:
                items = items[:limit]
                next_before = PageCursor(at=items[-1].created_at, id=items[-1].id)
            return escrow_data.EscrowPage(
                items=tuple(items),
                next_before=next_before,
                is_blocked=me.is_blocked,
                onboarding_complete=me.onboarding == OnboardingStep.COMPLETE,
            )

    # Disputes.

    async def dispute_context(self, *, dispute_id: int) -> dispute_data.DisputeContext | None:
        async with self.sessions() as s:
            d = await s.get(Dispute, dispute_id)
            if d is None:
                return None
            e = await d.awaitable_attrs.escrow
            buyer = await e.awaitable_attrs.buyer
            seller = await e.awaitable_attrs.seller
            admin = await d.awaitable_attrs.admin
            cur = await e.awaitable_attrs.currency_row
            latest = await every(
                s,
                select(DisputeMessage)
                .where(DisputeMessage.dispute_id == d.id)
                .order_by(DisputeMessage.id.desc())
                .limit(50),
            )
            lines = []
            for m in reversed(latest):
                sender = await m.awaitable_attrs.sender
                if m.sender_id == e.buyer_id:
                    role = dispute_data.SenderRole.BUYER
                elif m.sender_id == e.seller_id:
                    role = dispute_data.SenderRole.SELLER
                else:
                    role = dispute_data.SenderRole.ADMIN
                lines.append(
                    dispute_data.ChatLine(
                        m.id, m.sender_id, display_name(sender), role, m.body, m.created_at
                    )
                )
            count = await scalar(
                s, select(func.count(DisputeMessage.id)).where(DisputeMessage.dispute_id == d.id)
            )

            def person(u: User | None) -> dispute_data.Person | None:
                if u is None:
                    return None
                return dispute_data.Person(
                    u.id, u.telegram_id, display_name(u), u.username, u.is_blocked
                )

            return dispute_data.DisputeContext(
                dispute=dispute_data.DisputeSummary(
                    id=d.id,
                    status=d.status,
                    reason=d.reason,
                    resolution=d.resolution,
                    buyer_share=d.buyer_share,
                    created_at=d.created_at,
                    resolved_at=d.resolved_at,
                ),
                escrow=dispute_data.DisputedEscrow(
                    id=e.id,
                    ref=e.ref,
                    currency=e.currency,
                    amount=e.amount,
                    buyer_fee=e.buyer_fee,
                    seller_fee=e.seller_fee,
                    status=e.status,
                    decimals=cur.decimals,
                ),
                buyer=person(buyer),
                seller=person(seller),
                admin=person(admin),
                messages=tuple(lines),
                message_count=count,
            )

    async def open_disputes(
        self, *, before: PageCursor | None = None, limit: int = 20
    ) -> dispute_data.DisputePage:
        if limit < 1:
            raise ValueError("a page holds at least one dispute")
        async with self.sessions() as s:
            rows = await every(
                s,
                select(Dispute)
                .where(
                    Dispute.status.in_(LIVE_DISPUTE),
                    *keyset_before((Dispute.created_at, Dispute.id), before),
                )
                .order_by(Dispute.created_at.desc(), Dispute.id.desc())
                .limit(limit + 1),
            )
            items = []
            for d in rows[:limit]:
                e = await d.awaitable_attrs.escrow
                buyer = await e.awaitable_attrs.buyer
                seller = await e.awaitable_attrs.seller
                cur = await e.awaitable_attrs.currency_row
                items.append(
                    dispute_data.QueuedDispute(
                        id=d.id,
                        escrow_id=e.id,
                        escrow_ref=e.ref,
                        amount=e.amount,
                        currency=e.currency,
                        decimals=cur.decimals,
                        buyer_name=display_name(buyer),
                        seller_name=coalesce(
                            seller and nullif(seller.first_name),
                            seller and seller.username,
                            e.seller_handle,
                        ),
                        status=d.status,
                        created_at=d.created_at,
                        last_message_at=d.last_message_at,
                    )
                )
            more = len(rows) > limit
            return dispute_data.DisputePage(
                items=tuple(items),
                next_before=PageCursor(items[-1].created_at, items[-1].id) if more else None,
            )

    # Admin.

    async def dashboard_stats(self) -> admin_data.DashboardStats:
        """The old dashboard: a count or a sum over each table, every time it is shown."""
        window_start = hour_floor(datetime.now(UTC) - timedelta(hours=24))
        async with self.sessions() as s:
            users_total = await scalar(s, select(func.count(User.id)))
            users_onboarded = await scalar(
                s, select(func.count(User.id)).where(User.onboarding == OnboardingStep.COMPLETE)
            )
            users_new = await scalar(
                s, select(func.count(User.id)).where(User.created_at >= window_start)
            )
            by_status = dict(
                (await s.execute(select(Escrow.status, func.count()).group_by(Escrow.status))).all()
            )
            held = (
                await s.execute(
                    select(Escrow.currency, func.sum(Escrow.amount + Escrow.buyer_fee))
                    .where(Escrow.status.in_(HOLDING))
                    .group_by(Escrow.currency)
                    .order_by(Escrow.currency)
                )
            ).all()
            open_disputes = await scalar(
                s, select(func.count(Dispute.id)).where(Dispute.status.in_(LIVE_DISPUTE))
            )
            cashouts = (
                await s.execute(
                    select(Cashout.currency, func.count(), func.sum(Cashout.amount))
                    .where(Cashout.status.in_(IN_FLIGHT))
                    .group_by(Cashout.currency)
                    .order_by(Cashout.currency)
                )
            ).all()
            volume = (
                await s.execute(
                    select(LedgerEntry.currency, func.sum(LedgerEntry.amount))
                    .where(LedgerEntry.amount > 0, LedgerEntry.created_at >= window_start)
                    .group_by(LedgerEntry.currency)
                    .order_by(LedgerEntry.currency)
                )
            ).all()
        return admin_data.DashboardStats(
            window_start=window_start,
            users_total=users_total,
            users_onboarded=users_onboarded,
            users_new_24h=users_new,
            escrows_by_status=tuple(
                admin_data.StatusCount(status, by_status.get(status, 0)) for status in EscrowStatus
            ),
            funds_held=tuple(admin_data.CurrencyAmount(c, a) for c, a in held if a != 0),
            open_disputes=open_disputes,
            cashouts_pending_count=sum(n for _, n, _ in cashouts),
            cashouts_pending=tuple(admin_data.PendingCashouts(c, n, a) for c, n, a in cashouts),
            volume_24h=tuple(admin_data.CurrencyAmount(c, a) for c, a in volume if a != 0),
        )

    async def user_page(
        self, *, after_id: int | None = None, limit: int = 20, search: str | None = None
    ) -> admin_data.UserPage:
        size = max(1, min(limit, admin_data.PAGE_MAX))
        term = (search or "").strip().removeprefix("@")
        where = [User.id > (after_id or 0)]
        if term:
            prefix = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            like = [
                func.lower(User.username).like(prefix.lower()),
                func.lower(User.first_name).like(prefix.lower()),
                func.lower(User.email).like(prefix.lower()),
            ]
            if term.isascii() and term.isdigit() and len(term) <= 18:
                like.append(User.telegram_id == int(term))
            where.append(or_(*like))
        async with self.sessions() as s:
            rows = await every(s, select(User).where(*where).order_by(User.id).limit(size + 1))
            users = []
            for u in rows[:size]:
                wallets = await self._balances(u)
                escrows = await scalar(
                    s,
                    select(func.count(Escrow.id)).where(
                        (Escrow.buyer_id == u.id) | (Escrow.seller_id == u.id)
                    ),
                )
                transfers = await scalar(
                    s,
                    select(func.count(LedgerEntry.transfer_id.distinct())).where(
                        LedgerEntry.user_id == u.id
                    ),
                )
                users.append(
                    admin_data.AdminUser(
                        id=u.id,
                        telegram_id=u.telegram_id,
                        username=u.username,
                        first_name=u.first_name,
                        last_name=u.last_name,
                        email=u.email,
                        phone=u.phone,
                        is_admin=u.is_admin,
                        is_blocked=u.is_blocked,
                        onboarding=u.onboarding,
                        created_at=u.created_at,
                        wallets=tuple(
                            admin_data.UserWallet(w.currency, w.available, w.held, cur.decimals)
                            for w, cur in wallets
                        ),
                        escrow_count=escrows,
                        transaction_count=transfers,
                    )
                )
            return admin_data.UserPage(
                users=tuple(users), next_after=users[-1].id if len(rows) > size else None
            )

    async def transaction_review(
        self,
        *,
        status: TransferStatus | None = None,
        before: PageCursor | None = None,
        limit: int = 20,
    ) -> admin_data.TransferPage:
        size = max(1, min(limit, admin_data.PAGE_MAX))
        where = keyset_before((LedgerTransfer.created_at, LedgerTransfer.id), before)
        if status is not None:
            where.append(LedgerTransfer.status == TransferStatus(status))
        async with self.sessions() as s:
            rows = await every(
                s,
                select(LedgerTransfer)
                .where(*where)
                .order_by(LedgerTransfer.created_at.desc(), LedgerTransfer.id.desc())
                .limit(size + 1),
            )
            transfers = []
            for t in rows[:size]:
                entries = []
                for e in (await t.awaitable_attrs.entries)[:20]:
                    account = await e.awaitable_attrs.account
                    cur = await e.awaitable_attrs.currency_row
                    owner = await e.awaitable_attrs.user
                    entries.append(
                        admin_data.TransferEntry(
                            id=e.id,
                            account_kind=account.kind,
                            currency=e.currency,
                            amount=e.amount,
                            wallet_id=account.wallet_id,
                            escrow_id=account.escrow_id,
                            provider=account.provider.value if account.provider else None,
                            user=(
                                admin_data.EntryUser(
                                    owner.id, owner.telegram_id, admin_display_name(owner)
                                )
                                if owner is not None
                                else None
                            ),
                            decimals=cur.decimals,
                        )
                    )
                transfers.append(
                    admin_data.Transfer(
                        id=t.id,
                        kind=t.kind,
                        status=t.status,
                        memo=t.memo,
                        escrow_id=t.escrow_id,
                        cashout_id=t.cashout_id,
                        exchange_order_id=t.exchange_order_id,
                        created_at=t.created_at,
                        entries=tuple(entries),
                    )
                )
            last = transfers[-1] if len(rows) > size else None
            return admin_data.TransferPage(
                transfers=tuple(transfers),
                next_before=PageCursor(last.created_at, last.id) if last else None,
            )

    # Support, ratings, contacts, menu, referral, history.

    async def support_context(self, *, telegram_id: int) -> support_data.SupportContext | None:
        async with self.sessions() as s:
            user = await self._user(s, telegram_id)
            if user is None:
                return None
            ticket = await first(
                s,
                select(SupportTicket).where(
                    SupportTicket.user_id == user.id, SupportTicket.status != TicketStatus.CLOSED
                ),
            )
            messages: list[SupportMessage] = []
            unread = 0
            if ticket is not None:
                messages = await every(
                    s,
                    select(SupportMessage)
                    .where(SupportMessage.ticket_id == ticket.id)
                    .order_by(SupportMessage.id.desc())
                    .limit(20),
                )
                unread = await scalar(
                    s,
                    select(func.count(SupportMessage.id)).where(
                        SupportMessage.ticket_id == ticket.id,
                        SupportMessage.from_admin,
                        SupportMessage.read_at.is_(None),
                    ),
                )
            return support_data.SupportContext(
                user_id=user.id,
                display_name=display_name(user),
                ticket=(
                    support_data.Ticket(
                        id=ticket.id,
                        user_id=ticket.user_id,
                        subject=ticket.subject,
                        status=ticket.status,
                        admin_id=ticket.admin_id,
                        created_at=ticket.created_at,
                        updated_at=ticket.updated_at,
                        closed_at=ticket.closed_at,
                    )
                    if ticket is not None
                    else None
                ),
                messages=tuple(
                    support_data.TicketMessage(m.id, m.from_admin, m.body, m.created_at, m.read_at)
                    for m in reversed(messages)
                ),
                unread_replies=unread,
                is_blocked=user.is_blocked,
                onboarding_complete=user.onboarding == OnboardingStep.COMPLETE,
            )

    async def rating_summary(self, *, user_id: int) -> rating_data.RatingSummary:
        async with self.sessions() as s:
            return await self._rating(s, user_id)

    async def contacts_context(self, *, telegram_id: int) -> contacts_data.ContactsContext | None:
        async with self.sessions() as s:
            user = await self._user(s, telegram_id)
            if user is None:
                return None
            addresses = await self._addresses(s, user.id, None)
            bank_accounts = await self._bank_accounts(s, user.id, None)
            networks = await every(
                s,
                select(Network)
                .join(Currency, Network.currency == Currency.code)
                .order_by(Currency.sort_order, Network.currency, Network.label)
                .limit(100),
            )
            banks = await every(s, select(Bank).order_by(Bank.name, Bank.code).limit(500))
            return contacts_data.ContactsContext(
                user_id=user.id,
                is_blocked=user.is_blocked,
                onboarded=user.onboarding == OnboardingStep.COMPLETE,
                addresses=tuple(addresses[:50]),
                address_count=len(addresses),
                bank_accounts=tuple(bank_accounts[:50]),
                bank_account_count=len(bank_accounts),
                networks=tuple(
                    contacts_data.OfferedNetwork(n.currency, n.network, n.label) for n in networks
                ),
                banks=tuple(contacts_data.Bank(b.code, b.name) for b in banks),
            )

    async def menu_context(self, *, telegram_id: int) -> menu_data.MenuContext | None:
        async with self.sessions() as s:
            user = await self._user(s, telegram_id)
            if user is None:
                return None
            balances = [
                WalletBalance(w.currency, cur.decimals, w.available, w.held)
                for w, cur in await self._balances(user)
                if w.available != 0 or w.held != 0
            ]
            as_buyer = await every(s, select(Escrow).where(Escrow.buyer_id == user.id))
            as_seller = await every(s, select(Escrow).where(Escrow.seller_id == user.id))
            disputes = 0
            for e in [*as_buyer, *as_seller]:
                if e.status == EscrowStatus.DISPUTED:
                    live = await first(
                        s,
                        select(Dispute).where(
                            Dispute.escrow_id == e.id, Dispute.status.in_(LIVE_DISPUTE)
                        ),
                    )
                    disputes += live is not None
            ticket = await first(
                s,
                select(SupportTicket).where(
                    SupportTicket.user_id == user.id, SupportTicket.status != TicketStatus.CLOSED
                ),
            )
            unread = 0
            if ticket is not None:
                unread = await scalar(
                    s,
                    select(func.count(SupportMessage.id)).where(
                        SupportMessage.ticket_id == ticket.id,
                        SupportMessage.from_admin,
                        SupportMessage.read_at.is_(None),
                    ),
                )
            in_flight = await scalar(
                s,
                select(func.count(Cashout.id)).where(
                    Cashout.user_id == user.id, Cashout.status.in_(IN_FLIGHT)
                ),
            )
            waiting = [
                *(e for e in as_buyer if e.status in (S.AWAITING_PAYMENT, S.DELIVERED)),
                *(e for e in as_seller if e.status in (S.FUNDED, S.ACCEPTED)),
            ]
            return menu_data.MenuContext(
                user_id=user.id,
                telegram_id=user.telegram_id,
                display_name=display_name(user),
                onboarding=user.onboarding,
                onboarding_complete=user.onboarding == OnboardingStep.COMPLETE,
                is_admin=user.is_admin,
                is_blocked=user.is_blocked,
                balances=tuple(balances),
                active_escrows=sum(1 for e in [*as_buyer, *as_seller] if e.status in ACTIVE),
                waiting_on_me=len(waiting),
                open_disputes=disputes,
                unread_support_replies=unread,
                cashouts_in_flight=in_flight,
            )

    async def referral_context(self, *, telegram_id: int) -> referral_data.ReferralContext | None:
        async with self.sessions() as s:
            user = await self._user(s, telegram_id)
            if user is None:
                return None
            referred = await scalar(
                s, select(func.count(User.id)).where(User.referrer_id == user.id)
            )
            rewards = await every(
                s, select(ReferralReward).where(ReferralReward.referrer_id == user.id)
            )
            totals: dict[str, Decimal] = {}
            for r in rewards:
                totals[r.currency] = totals.get(r.currency, Decimal(0)) + r.amount
            decimals = {
                r.currency: (await r.awaitable_attrs.currency_row).decimals for r in rewards
            }
            latest = await every(
                s,
                select(User)
                .where(User.referrer_id == user.id)
                .order_by(User.created_at.desc(), User.id.desc())
                .limit(10),
            )
            referrals = []
            for r in latest:
                reward = await first(
                    s,
                    select(ReferralReward).where(
                        ReferralReward.referred_id == r.id, ReferralReward.referrer_id == user.id
                    ),
                )
                referrals.append(
                    referral_data.Referral(r.id, display_name(r), r.created_at, reward is not None)
                )
            return referral_data.ReferralContext(
                user_id=user.id,
                is_blocked=user.is_blocked,
                onboarded=user.onboarding == OnboardingStep.COMPLETE,
                referral_code=user.referral_code,
                referred_count=referred,
                rewards=tuple(
                    referral_data.RewardTotal(c, totals[c], decimals[c]) for c in sorted(totals)
                ),
                latest=tuple(referrals),
            )

    async def history_page(
        self,
        *,
        telegram_id: int,
        before: PageCursor | None = None,
        limit: int = 10,
        currency: str | None = None,
    ) -> history_data.HistoryPage:
        limit = max(1, min(limit, history_data.MAX_PAGE))
        async with self.sessions() as s:
            user = await self._user(s, telegram_id)
            if user is None:
                return history_data.HistoryPage(entries=(), next_before=None)
            currencies = await every(
                s, select(Currency).order_by(Currency.sort_order, Currency.code).limit(50)
            )
            where = [
                LedgerEntry.user_id == user.id,
                *keyset_before((LedgerEntry.created_at, LedgerEntry.id), before),
            ]
            if currency is not None:
                where.append(LedgerEntry.currency == currency)
            rows = await every(
                s,
                select(LedgerEntry)
                .where(*where)
                .order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc())
                .limit(limit + 1),
            )
            entries = []
            for e in rows[:limit]:
                account = await e.awaitable_attrs.account
                transfer = await e.awaitable_attrs.transfer
                entries.append(
                    history_data.HistoryEntry(
                        id=e.id,
                        transfer_id=e.transfer_id,
                        currency=e.currency,
                        amount=e.amount,
                        account_kind=ACCOUNT_SIDES.get(account.kind),
                        transfer_kind=transfer.kind,
                        memo=transfer.memo,
                        created_at=e.created_at,
                    )
                )
            more = len(rows) > limit
            return history_data.HistoryPage(
                entries=tuple(entries),
                next_before=PageCursor(entries[-1].created_at, entries[-1].id) if more else None,
                viewer=history_data.HistoryViewer(
                    user.id, user.is_blocked, user.onboarding == OnboardingStep.COMPLETE
                ),
                currencies=tuple(
                    history_data.HistoryCurrency(c.code, c.decimals) for c in currencies
                ),
            )


ACCOUNT_SIDES = {AccountKind.WALLET_AVAILABLE: "available", AccountKind.WALLET_HELD: "held"}
