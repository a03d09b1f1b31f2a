"""Ratings (`sql/rating.sql`): the parties of a completed trade rate each other."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from bot.data.enums import PartyRole
from bot.data.errors import refusal
from bot.data.rows import moment, money_or_none
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


# --- the rating summary screen ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Review:
    stars: int
    comment: str | None
    rater_name: str  # the reviewer's first name, else their username
    created_at: datetime


@dataclass(frozen=True, slots=True)
class RoleRating:
    """What the user's counterparties said about them in one role."""

    average: Decimal | None  # 2 places; None with no ratings
    count: int


@dataclass(frozen=True, slots=True)
class RatingSummary:
    average: Decimal | None  # 2 places; None with no ratings
    count: int
    distribution: Mapping[int, int]  # stars 1..5 -> how many, every key present
    as_buyer: RoleRating  # rated by sellers
    as_seller: RoleRating  # rated by buyers
    latest: tuple[Review, ...]  # the 5 latest, newest first

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RatingSummary:
        """From the row of `rating_summary` or the same object nested in another screen."""
        return cls(
            average=money_or_none(d["average"]),
            count=d["count"],
            distribution=MappingProxyType({int(k): n for k, n in d["distribution"].items()}),
            as_buyer=RoleRating(money_or_none(d["buyer_average"]), d["buyer_count"]),
            as_seller=RoleRating(money_or_none(d["seller_average"]), d["seller_count"]),
            latest=tuple(
                Review(
                    stars=r["stars"],
                    comment=r["comment"],
                    rater_name=r["rater_name"],
                    created_at=moment(r["created_at"]),
                )
                for r in d["latest"]
            ),
        )


async def rating_summary(conn, *, user_id: int) -> RatingSummary:
    """Everything said about one user (by users.id): average, count, distribution 1-5,
    the same as buyer and as seller, and the 5 latest reviews newest first.

    A user nobody rated (or an unknown id) gets the empty summary: no average, zero counts.
    """
    return RatingSummary.from_json(await queries.rating_summary(conn, user_id=user_id))
