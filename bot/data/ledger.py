"""The ledger as a whole (`sql/ledger.sql`): reconciliation."""

from __future__ import annotations

from dataclasses import dataclass

from bot.db import queries


@dataclass(frozen=True, slots=True)
class Violation:
    kind: str
    subject: str
    detail: str


async def reconcile(conn) -> list[Violation]:
    """Every broken ledger invariant; an empty list when the books are healthy."""
    return [Violation(r["kind"], r["subject"], r["detail"]) async for r in queries.reconcile(conn)]
