"""The admin screens (`sql/admin.sql`): the dashboard, the user list, the transaction review,
the cashout approval queue; and the start-up sync of the admin flags."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from bot.data.enums import (
    AccountKind,
    DestinationKind,
    EscrowStatus,
    OnboardingStep,
    TransferKind,
    TransferStatus,
)
from bot.data.rows import PageCursor, keyset, moment, money
from bot.db import queries

PAGE_MAX = 100  # the most rows one admin page shows


def _page_size(limit: int) -> int:
    return max(1, min(limit, PAGE_MAX))


# --- dashboard ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatusCount:
    status: EscrowStatus
    count: int


@dataclass(frozen=True, slots=True)
class CurrencyAmount:
    currency: str
    amount: Decimal

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CurrencyAmount:
        return cls(currency=d["currency"], amount=money(d["amount"]))


@dataclass(frozen=True, slots=True)
class PendingCashouts:
    """Cashouts in flight (pending, approved, processing) in one currency."""

    currency: str
    count: int
    amount: Decimal


@dataclass(frozen=True, slots=True)
class DashboardStats:
    """The admin dashboard. Per-currency tuples hold non-zero currencies only, by code.

    The 24 h figures count from `window_start`: the start of the hour (UTC)
    24 hours ago, so they cover the last 24 to 25 hours (exact to the hour).
    """

    window_start: datetime
    users_total: int
    users_onboarded: int
    users_new_24h: int
    escrows_by_status: tuple[StatusCount, ...]  # every escrow status, in the schema's order
    funds_held: tuple[CurrencyAmount, ...]  # held by funded/accepted/delivered/disputed escrows
    open_disputes: int  # open or in review
    cashouts_pending_count: int
    cashouts_pending: tuple[PendingCashouts, ...]
    volume_24h: tuple[CurrencyAmount, ...]  # money moved: the positive side of every transfer

    def escrows(self, status: EscrowStatus | str) -> int:
        return next(s.count for s in self.escrows_by_status if s.status == status)


def _dashboard(row: Any) -> DashboardStats:
    return DashboardStats(
        window_start=row["window_start"],
        users_total=row["users_total"],
        users_onboarded=row["users_onboarded"],
        users_new_24h=row["users_new_24h"],
        escrows_by_status=tuple(
            StatusCount(EscrowStatus(s["status"]), int(s["count"]))
            for s in row["escrows_by_status"]
        ),
        funds_held=tuple(CurrencyAmount.from_json(f) for f in row["funds_held"]),
        open_disputes=row["open_disputes"],
        cashouts_pending_count=row["cashouts_pending_count"],
        cashouts_pending=tuple(
            PendingCashouts(c["currency"], int(c["count"]), money(c["amount"]))
            for c in row["cashouts_pending"]
        ),
        volume_24h=tuple(CurrencyAmount.from_json(v) for v in row["volume_24h"]),
    )


async def dashboard_stats(conn) -> DashboardStats:
    """The dashboard from the trigger-kept counters: one query, the same cost at any size.

    Counts what has committed (a transaction's own changes reach the counters at its commit).
    """
    return _dashboard(await queries.admin_dashboard_stats(conn))


async def dashboard_stats_exact(conn) -> DashboardStats:
    """The same numbers counted from the tables (funds held from the ledger): for audits
    and tests, never for the screen, since it scans the big tables."""
    return _dashboard(await queries.admin_dashboard_stats_exact(conn))


# --- users --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserWallet:
    currency: str
    available: Decimal
    held: Decimal
    decimals: int  # the currency's, for showing the amounts


@dataclass(frozen=True, slots=True)
class AdminUser:
    id: int
    telegram_id: int
    username: str | None
    first_name: str
    last_name: str | None
    email: str | None
    phone: str | None
    is_admin: bool
    is_blocked: bool
    onboarding: OnboardingStep
    created_at: datetime
    wallets: tuple[UserWallet, ...]  # every wallet the user has, by currency
    escrow_count: int  # as buyer or seller
    transaction_count: int  # ledger transfers touching the user's wallets


@dataclass(frozen=True, slots=True)
class UserPage:
    users: tuple[AdminUser, ...]  # by id ascending, at most the page size (100 at most)
    next_after: int | None  # pass as after_id for the next page; None on the last page


def _search_terms(search: str | None) -> tuple[str | None, int | None]:
    """(LIKE prefix pattern, Telegram id) for a search text; (None, None) for no search."""
    term = (search or "").strip().removeprefix("@")
    if not term:
        return None, None
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    telegram_id = int(term) if term.isascii() and term.isdigit() and len(term) <= 18 else None
    return escaped + "%", telegram_id


async def user_page(
    conn, *, after_id: int | None = None, limit: int = 20, search: str | None = None
) -> UserPage:
    """Users by id after `after_id` (keyset), `limit` of them (1 to 100), with their wallets,
    escrow and transaction counts. `search` keeps the users whose username (a leading @
    is ignored), first name or e-mail starts with it, in any case, or whose Telegram id
    it is."""
    size = _page_size(limit)
    prefix, telegram_id = _search_terms(search)
    rows = [
        r
        async for r in queries.admin_user_page(
            conn, after_id=after_id, page_size=size, prefix=prefix, telegram_id=telegram_id
        )
    ]
    users = tuple(
        AdminUser(
            id=r["id"],
            telegram_id=r["telegram_id"],
            username=r["username"],
            first_name=r["first_name"],
            last_name=r["last_name"],
            email=r["email"],
            phone=r["phone"],
            is_admin=r["is_admin"],
            is_blocked=r["is_blocked"],
            onboarding=OnboardingStep(r["onboarding"]),
            created_at=r["created_at"],
            wallets=tuple(
                UserWallet(w["currency"], money(w["available"]), money(w["held"]), w["decimals"])
                for w in r["wallets"]
            ),
            escrow_count=r["escrow_count"],
            transaction_count=r["transaction_count"],
        )
        for r in rows[:size]
    )
    return UserPage(users=users, next_after=users[-1].id if len(rows) > size else None)


# --- transactions -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EntryUser:
    id: int
    telegram_id: int
    display_name: str  # first name and @username, or the Telegram id when it has neither


@dataclass(frozen=True, slots=True)
class TransferEntry:
    id: int
    account_kind: AccountKind
    currency: str
    amount: Decimal  # positive: money into the account
    wallet_id: int | None  # for wallet_available / wallet_held
    escrow_id: int | None  # for escrow_holding
    provider: str | None  # for provider_clearing
    user: EntryUser | None  # the wallet's owner; None for the platform's accounts
    decimals: int  # the currency's, for showing the amount

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TransferEntry:
        return cls(
            id=d["id"],
            account_kind=AccountKind(d["account_kind"]),
            currency=d["currency"],
            amount=money(d["amount"]),
            wallet_id=d["wallet_id"],
            escrow_id=d["escrow_id"],
            provider=d["provider"],
            user=(
                EntryUser(d["user_id"], d["telegram_id"], d["display_name"])
                if d["user_id"] is not None
                else None
            ),
            decimals=d["decimals"],
        )


@dataclass(frozen=True, slots=True)
class Transfer:
    id: int
    kind: TransferKind
    status: TransferStatus
    memo: str | None
    escrow_id: int | None
    cashout_id: int | None
    exchange_order_id: int | None
    created_at: datetime
    entries: tuple[TransferEntry, ...]  # by id, at most 20

    @property
    def users(self) -> tuple[EntryUser, ...]:
        """The users whose wallets the transfer touched, in entry order, each once."""
        seen: dict[int, EntryUser] = {}
        for e in self.entries:
            if e.user is not None:
                seen.setdefault(e.user.id, e.user)
        return tuple(seen.values())


@dataclass(frozen=True, slots=True)
class TransferPage:
    transfers: tuple[Transfer, ...]  # newest first, at most the page size (100 at most)
    next_before: PageCursor | None  # None on the last page


async def transaction_review(
    conn,
    *,
    status: TransferStatus | None = None,
    before: PageCursor | None = None,
    limit: int = 20,
) -> TransferPage:
    """Ledger transfers newest first (keyset on created_at, id), `limit` of them (1 to 100),
    optionally of one status, each with its entries and the users whose wallets they touch."""
    size = _page_size(limit)
    rows = [
        r
        async for r in queries.admin_transaction_review(
            conn,
            status=TransferStatus(status).value if status else None,
            page_size=size,
            **keyset(before),
        )
    ]
    transfers = tuple(
        Transfer(
            id=r["id"],
            kind=TransferKind(r["kind"]),
            status=TransferStatus(r["status"]),
            memo=r["memo"],
            escrow_id=r["escrow_id"],
            cashout_id=r["cashout_id"],
            exchange_order_id=r["exchange_order_id"],
            created_at=moment(r["created_at"]),
            entries=tuple(TransferEntry.from_json(e) for e in r["entries"]),
        )
        for r in rows[:size]
    )
    last = transfers[-1] if len(rows) > size else None
    return TransferPage(
        transfers=transfers,
        next_before=PageCursor(last.created_at, last.id) if last else None,
    )


# --- cashout approval ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueuedCashout:
    """A pending cashout as the approval queue shows it."""

    id: int
    user_id: int
    telegram_id: int  # whom to tell once it is approved or rejected
    display_name: str  # first name and @username, or the Telegram id when it has neither
    is_blocked: bool
    currency: str
    decimals: int
    amount: Decimal  # what the user receives
    fee: Decimal  # held with the amount, kept by the platform on payout
    destination: DestinationKind
    network: str | None  # crypto: network and address
    address: str | None
    bank_code: str | None  # bank: code, bank name, account number and name
    bank_name: str | None
    account_number: str | None
    account_name: str | None
    created_at: datetime

    @property
    def total(self) -> Decimal:
        """What is held in the user's wallet: amount plus fee."""
        return self.amount + self.fee


@dataclass(frozen=True, slots=True)
class CashoutQueue:
    items: tuple[QueuedCashout, ...]  # oldest first by (created_at, id)
    next_after: PageCursor | None  # the last row's cursor when more follow; None on the last page


async def cashout_queue(conn, *, after: PageCursor | None = None, limit: int = 10) -> CashoutQueue:
    """Pending cashouts oldest first, keyset-paged after `after` (1 to 100 a page)."""
    size = _page_size(limit)
    rows = [
        r
        async for r in queries.admin_cashout_queue(
            conn,
            after_at=after.at if after else None,
            after_id=after.id if after else None,
            page_size=size,
        )
    ]
    items = tuple(
        QueuedCashout(
            id=r["id"],
            user_id=r["user_id"],
            telegram_id=r["telegram_id"],
            display_name=r["display_name"],
            is_blocked=r["is_blocked"],
            currency=r["currency"],
            decimals=r["decimals"],
            amount=r["amount"],
            fee=r["fee"],
            destination=DestinationKind(r["destination"]),
            network=r["network"],
            address=r["address"],
            bank_code=r["bank_code"],
            bank_name=r["bank_name"],
            account_number=r["account_number"],
            account_name=r["account_name"],
            created_at=r["created_at"],
        )
        for r in rows[:size]
    )
    last = items[-1] if len(rows) > size else None
    return CashoutQueue(
        items=items, next_after=PageCursor(last.created_at, last.id) if last else None
    )


# --- admin flags --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AdminSync:
    promoted: tuple[int, ...]  # Telegram ids made admins
    demoted: tuple[int, ...]  # Telegram ids no longer admins
    missing: tuple[int, ...]  # configured ids with no user yet (admins at a later sync)


async def sync_admins(conn, *, admin_ids: Iterable[int]) -> AdminSync:
    """users.is_admin true exactly for `admin_ids` (the configured admins), false for
    everyone else, in one statement; the SQL movements that check is_admin follow it."""
    # As text: a bigint[] parameter costs asyncpg a type lookup on each new connection.
    ids = [str(i) for i in sorted({int(i) for i in admin_ids})]
    row = await queries.admin_sync(conn, admin_ids=ids)
    return AdminSync(
        promoted=tuple(int(i) for i in row["promoted"]),
        demoted=tuple(int(i) for i in row["demoted"]),
        missing=tuple(sorted(int(i) for i in row["missing"])),
    )
