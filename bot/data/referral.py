"""The referral screen (`sql/referral.sql`): a user's code, the people they brought in, rewards.

The reward itself is a movement of the escrow completion (`bot.data.escrow`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from bot.data.rows import moment, money
from bot.db import queries


@dataclass(frozen=True, slots=True)
class RewardTotal:
    currency: str
    amount: Decimal  # every reward earned in this currency
    decimals: int  # the currency's precision, for display


@dataclass(frozen=True, slots=True)
class Referral:
    user_id: int
    display_name: str  # first name, else username
    joined_at: datetime
    rewarded: bool  # their first completed escrow has earned the referrer a reward

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Referral:
        return cls(
            user_id=d["user_id"],
            display_name=d["display_name"],
            joined_at=moment(d["joined_at"]),
            rewarded=d["rewarded"],
        )


@dataclass(frozen=True, slots=True)
class ReferralContext:
    user_id: int
    is_blocked: bool
    onboarded: bool
    referral_code: str
    referred_count: int  # everyone the user brought in
    rewards: tuple[RewardTotal, ...]  # summed per currency, by currency
    latest: tuple[Referral, ...]  # the 10 latest referrals, newest first


async def referral_context(conn, *, telegram_id: int) -> ReferralContext | None:
    """The referral screen in one round trip; None for an unknown user."""
    row = await queries.referral_context(conn, telegram_id=telegram_id)
    if row is None:
        return None
    return ReferralContext(
        user_id=row["user_id"],
        is_blocked=row["is_blocked"],
        onboarded=row["onboarded"],
        referral_code=row["referral_code"],
        referred_count=row["referred_count"],
        rewards=tuple(
            RewardTotal(r["currency"], money(r["amount"]), r["decimals"]) for r in row["rewards"]
        ),
        latest=tuple(Referral.from_json(r) for r in row["referrals"]),
    )
