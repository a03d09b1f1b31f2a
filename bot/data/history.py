"""The transaction history screen (`sql/history.sql`): a user's ledger entries, keyset-paged."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from bot.data.enums import TransferKind
from bot.data.rows import PageCursor, keyset
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


@dataclass(frozen=True, slots=True)
class HistoryPage:
    entries: tuple[HistoryEntry, ...]  # newest first, at most the page size
    next_before: PageCursor | None  # where the next page starts; None on the last page


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
    has an empty page.
    """
    limit = max(1, min(limit, MAX_PAGE))
    rows = [
        r
        async for r in queries.history_page(
            conn, telegram_id=telegram_id, currency=currency, page_size=limit, **keyset(before)
        )
    ]
    entries = tuple(
        HistoryEntry(
            id=r["id"],
            transfer_id=r["transfer_id"],
            currency=r["currency"],
            amount=r["amount"],
            account_kind=r["account_kind"],
            transfer_kind=TransferKind(r["transfer_kind"]),
            memo=r["memo"],
            created_at=r["created_at"],
        )
        for r in rows[:limit]
    )
    more = len(rows) > limit
    return HistoryPage(
        entries=entries,
        next_before=PageCursor(entries[-1].created_at, entries[-1].id) if more else None,
    )
