"""The screens both ways, and who they are shown to.

`PROJECT[name]` is the project's screen function (`bot.data.<area>.<name>`, taking the pool
first); the baseline has a method of the same name taking the same keyword arguments.
`arguments(name, person, subjects, rng)` gives the keyword arguments of one showing of a
screen to one person of the population: the same ones are passed to both sides.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot.data import (
    admin,
    contacts,
    dispute,
    escrow,
    exchange,
    history,
    menu,
    onboarding,
    rating,
    referral,
    support,
    wallet,
)

PROJECT: dict[str, Callable[..., Awaitable[Any]]] = {
    "wallet_context": wallet.wallet_context,
    "exchange_context": exchange.exchange_context,
    "exchange_history": exchange.exchange_history,
    "onboarding_context": onboarding.onboarding_context,
    "escrow_creation_context": escrow.escrow_creation_context,
    "escrow_view": escrow.escrow_view,
    "my_escrows": escrow.my_escrows,
    "dispute_context": dispute.dispute_context,
    "open_disputes": dispute.open_disputes,
    "dashboard_stats": admin.dashboard_stats,
    "user_page": admin.user_page,
    "transaction_review": admin.transaction_review,
    "support_context": support.support_context,
    "rating_summary": rating.rating_summary,
    "contacts_context": contacts.contacts_context,
    "menu_context": menu.menu_context,
    "referral_context": referral.referral_context,
    "history_page": history.history_page,
}
SCREENS = tuple(PROJECT)
# The admin's screens; the rest are what a user of the bot opens (the throughput mix).
ADMIN = frozenset({"open_disputes", "dashboard_stats", "user_page", "transaction_review"})
USER_SCREENS = tuple(s for s in SCREENS if s not in ADMIN)

# Screens of one person, keyed by their telegram id.
_BY_TELEGRAM_ID = frozenset(
    {
        "wallet_context",
        "exchange_context",
        "exchange_history",
        "onboarding_context",
        "support_context",
        "contacts_context",
        "menu_context",
        "referral_context",
        "history_page",
    }
)


@dataclass(frozen=True, slots=True)
class Person:
    """One user of the population and the things they are part of."""

    telegram_id: int
    user_id: int
    username: str | None
    escrow_id: int | None  # an escrow they are a party to (their newest), if any
    counterparty_id: int | None  # the other party of that escrow (its seller or buyer)


@dataclass(frozen=True, slots=True)
class Subjects:
    people: tuple[Person, ...]
    dispute_ids: tuple[int, ...]  # live disputes, from the admin's queue

    def with_escrow(self) -> tuple[Person, ...]:
        return tuple(p for p in self.people if p.escrow_id is not None)

    def with_username(self) -> tuple[Person, ...]:
        return tuple(p for p in self.people if p.username)


async def gather(pool, telegram_ids: list[int], *, disputes: int = 200) -> Subjects:
    """The people with these telegram ids (unknown ones left out) and what they are part of,
    read through the project's own screens (not timed)."""
    people = []
    for telegram_id in telegram_ids:
        me = await menu.menu_context(pool, telegram_id=telegram_id)
        if me is None:
            continue
        page = await escrow.my_escrows(pool, telegram_id=telegram_id, status_group="all", limit=1)
        escrow_id = counterparty_id = None
        if page.items:
            escrow_id = page.items[0].id
            view = await escrow.escrow_view(
                pool, escrow_id=escrow_id, viewer_telegram_id=telegram_id
            )
            other = view.seller if view.viewer_role == "buyer" else view.buyer
            counterparty_id = other.id if other is not None else None
        ctx = await wallet.wallet_context(pool, telegram_id=telegram_id)
        people.append(
            Person(telegram_id, me.user_id, ctx.user.username, escrow_id, counterparty_id)
        )
    dispute_ids: list[int] = []
    before = None
    while len(dispute_ids) < disputes:
        queue = await dispute.open_disputes(pool, before=before, limit=50)
        dispute_ids.extend(d.id for d in queue.items)
        if queue.next_before is None:
            break
        before = queue.next_before
    return Subjects(tuple(people), tuple(dispute_ids))


def arguments(name: str, person: Person, subjects: Subjects, rng: random.Random) -> dict[str, Any]:
    """The keyword arguments of `name` shown to `person` (others of `subjects` drawn by `rng`
    where the screen is about someone else)."""
    if name in _BY_TELEGRAM_ID:
        return {"telegram_id": person.telegram_id}
    if name == "my_escrows":
        return {"telegram_id": person.telegram_id, "status_group": "all"}
    if name == "escrow_view":
        if person.escrow_id is None:
            person = rng.choice(subjects.with_escrow())
        return {"escrow_id": person.escrow_id, "viewer_telegram_id": person.telegram_id}
    if name == "escrow_creation_context":
        seller = rng.choice(subjects.with_username())
        return {"buyer_telegram_id": person.telegram_id, "seller_handle": f"@{seller.username}"}
    if name == "rating_summary":
        return {"user_id": person.counterparty_id or person.user_id}
    if name == "dispute_context":
        return {"dispute_id": rng.choice(subjects.dispute_ids)}
    if name == "user_page":
        return {"after_id": person.user_id - 1}
    if name in ("open_disputes", "dashboard_stats", "transaction_review"):
        return {}
    raise KeyError(name)
