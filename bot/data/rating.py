"""Ratings (`sql/rating.sql`): the parties of a completed trade rate each other."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.data.enums import PartyRole
from bot.data.errors import refusal
from bot.db import queries


@dataclass(frozen=True, slots=True)
class Rating:
    id: int
    escrow_id: int
    rater_id: int
    ratee_id: int
    rater_role: PartyRole
    stars: int
    comment: str | None
    created_at: datetime


async def rate_trade(
    conn, *, escrow_id: int, telegram_id: int, stars: int, comment: str | None = None
) -> Rating:
    """A party of a completed escrow rates the other party, once, 1 to 5 stars."""
    comment = (comment or "").strip() or None
    row = await queries.rating_rate_trade(
        conn, escrow_id=escrow_id, telegram_id=telegram_id, stars=stars, comment=comment
    )
    outcome = row["outcome"]
    if outcome == "not_found":
        raise refusal(outcome, what="escrow")
    if outcome == "not_a_party":
        raise refusal(outcome, subject="escrow")
    if outcome == "wrong_status":
        raise refusal(outcome, subject="escrow", status=row["current_status"], action="be rated")
    if outcome == "invalid":
        raise refusal(outcome, reason=row["reason"])
    if outcome == "duplicate":
        raise refusal(outcome, what="rating")
    return Rating(
        id=row["id"],
        escrow_id=row["escrow_id"],
        rater_id=row["rater_id"],
        ratee_id=row["ratee_id"],
        rater_role=PartyRole(row["rater_role"]),
        stars=row["stars"],
        comment=row["comment"],
        created_at=row["created_at"],
    )
