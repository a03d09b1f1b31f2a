"""The main menu (`sql/menu.sql`): who the user is and what needs their attention."""

from __future__ import annotations

from dataclasses import dataclass

from bot.data.enums import OnboardingStep
from bot.data.rows import WalletBalance
from bot.db import queries


@dataclass(frozen=True, slots=True)
class MenuContext:
    user_id: int
    telegram_id: int
    display_name: str  # first name, else username
    onboarding: OnboardingStep
    onboarding_complete: bool
    is_admin: bool
    is_blocked: bool
    balances: tuple[WalletBalance, ...]  # wallets holding something, by currency
    active_escrows: int  # as buyer or seller, not yet closed
    waiting_on_me: int  # escrows whose next step is this user's
    open_disputes: int  # live disputes the user is a party to
    unread_support_replies: int  # on the live ticket
    cashouts_in_flight: int  # pending, approved or processing


async def menu_context(conn, *, telegram_id: int) -> MenuContext | None:
    """The main menu in one round trip; None for an unknown user."""
    row = await queries.menu_context(conn, telegram_id=telegram_id)
    if row is None:
        return None
    return MenuContext(
        user_id=row["id"],
        telegram_id=row["telegram_id"],
        display_name=row["display_name"],
        onboarding=OnboardingStep(row["onboarding"]),
        onboarding_complete=row["onboarding_complete"],
        is_admin=row["is_admin"],
        is_blocked=row["is_blocked"],
        balances=tuple(WalletBalance.from_json(b) for b in row["balances"]),
        active_escrows=row["active_escrows"],
        waiting_on_me=row["waiting_on_me"],
        open_disputes=row["open_disputes"],
        unread_support_replies=row["unread_support_replies"],
        cashouts_in_flight=row["cashouts_in_flight"],
    )
