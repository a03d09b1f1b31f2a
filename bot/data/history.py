"""The transaction history screen (`sql/history.sql`): a user's ledger entries, keyset-paged."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from bot.data.enums import TransferKind
from bot.data.rows import PageCursor, keyset, moment, money
from bot.db import queries

MAX_PAGE = 50


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    id: int
    transfer_id: int
    currency: str
    amount: Decimal  # signed: positive came into the account, negative left it
    account_kind: str  # "available" or "held": which of the wallet's balances moved
    transfer_kind: TransferKind
    memo: str | None
    created_at: datetime

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> HistoryEntry:
        return cls(
            id=d["id"],
            transfer_id=d["transfer_id"],
            currency=d["currency"],
            amount=money(d["amount"]),
            account_kind=d["account_kind"],
            transfer_kind=TransferKind(d["transfer_kind"]),
            memo=d["memo"],
            created_at=moment(d["created_at"]),
        )


@dataclass(frozen=True, slots=True)
class HistoryCurrency:
    """A currency the screen can filter on, with its precision for display."""

    code: str
    decimals: int


@dataclass(frozen=True, slots=True)
class HistoryViewer:
    """Who is looking, for the screen's checks."""

    user_id: int
    is_blocked: bool
    onboarded: bool


@dataclass(frozen=True, slots=True)
class HistoryPage:
    entries: tuple[HistoryEntry, ...]  # newest first, at most the page size
    next_before: PageCursor | None  # where the next page starts; None on the last page
    # The screen around the page; two pages are equal when they list the same entries.
    viewer: HistoryViewer | None = field(default=None, compare=False)  # None: unknown user
    currencies: tuple[HistoryCurrency, ...] = field(default=(), compare=False)  # sort order


async def history_page(
    conn,
    *,
    telegram_id: int,
    before: PageCursor | None = None,
    limit: int = 10,
    currency: str | None = None,
) -> HistoryPage:
    """One page of the user's ledger entries, newest first, in one round trip.

    Only `currency`'s entries when given. `limit` is kept between 1 and 50.
    Pass the page's `next_before` as `before` for the next one. An unknown user
    has an empty page and no viewer.
    """
    limit = max(1, min(limit, MAX_PAGE))
    row = await queries.history_page(
        conn, telegram_id=telegram_id, currency=currency, page_size=limit, **keyset(before)
    )
    if row is None:
        return HistoryPage(entries=(), next_before=None)
    rows = row["entries"]
    entries = tuple(HistoryEntry.from_json(r) for r in rows[:limit])
    more = len(rows) > limit
    return HistoryPage(
        entries=entries,
        next_before=PageCursor(entries[-1].created_at, entries[-1].id) if more else None,
        viewer=HistoryViewer(row["user_id"], row["is_blocked"], row["onboarded"]),
        currencies=tuple(HistoryCurrency(c["code"], c["decimals"]) for c in row["currencies"]),
    )
