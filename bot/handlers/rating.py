"""Ratings: "Rate the trade" buttons after a completed escrow, and a user's rating summary.

`rating:rate:<escrow_id>:<stars>` calls `rate_trade` (1 round trip), which
re-checks the presser is a party of that completed escrow and has not rated it
yet; `rating:user:<user_id>` shows `rating_summary` (1 round trip). The summary
is public reputation, so anyone may look at it; its renderer also serves the
seller card of escrow creation.
"""

from __future__ import annotations

from datetime import UTC

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler

from bot.data.errors import DomainError, NotAParty, NotFound
from bot.data.rating import RatingSummary, rate_trade, rating_summary
from bot.handlers.menu import MENU
from bot.handlers.ui import Context, alert, args, button, esc, keyboard, pool, show

NOT_YOURS = "This trade is not one of yours."
BAD_BUTTON = "That button is not valid any more."


def stars(n: int) -> str:
    return "★" * n + "☆" * (5 - n)


def rate_row(escrow_id: int) -> list:
    """The "Rate the trade" buttons: 1 to 5 stars."""
    return [button(f"{n}★", "rating", "rate", escrow_id, n) for n in range(1, 6)]


def render_summary(summary: RatingSummary, title: str) -> str:
    """A rating summary; `title` is HTML the caller has escaped."""
    lines = [title, ""]
    if not summary.count:
        lines.append("No ratings yet.")
        return "\n".join(lines)
    lines.append(f"<b>{summary.average}</b> ★ average from {summary.count} rating(s)")
    roles = [
        (summary.as_seller, "as seller"),
        (summary.as_buyer, "as buyer"),
    ]
    lines += [f"• {r.average} ★ {what} ({r.count})" for r, what in roles if r.count]
    lines.append("")
    lines += [f"{n}★  {summary.distribution.get(n, 0)}" for n in range(5, 0, -1)]
    if summary.latest:
        lines += ["", "<b>Latest reviews</b>"]
        for r in summary.latest:
            when = f"{r.created_at.astimezone(UTC):%d %b %Y}" if r.created_at else ""
            line = f"{stars(r.stars)} — {esc(r.rater_name or 'someone')}, {when}"
            if r.comment:
                line += f"\n“{esc(r.comment)}”"
            lines.append(line)
    return "\n".join(lines)


def _ints(update: Update, count: int) -> list[int] | None:
    """The button's numeric arguments, or None for a malformed (crafted) button."""
    parts = args(update)
    # Digits that fit a bigint, or a crafted button.
    if len(parts) != count or not all(p.isascii() and p.isdigit() and len(p) <= 18 for p in parts):
        return None
    return [int(p) for p in parts]


async def rate(update: Update, context: Context) -> None:
    numbers = _ints(update, 2)
    if numbers is None:
        await alert(update, BAD_BUTTON)
        return
    escrow_id, given = numbers
    try:
        rating = await rate_trade(
            pool(context), escrow_id=escrow_id, telegram_id=update.effective_user.id, stars=given
        )
    except (NotAParty, NotFound):
        # Never trusted: the data layer re-checked the presser against the escrow.
        await alert(update, NOT_YOURS)
        return
    except DomainError as refused:
        # Rated already, not completed, or stars out of range: nothing was recorded.
        await alert(update, refused.message())
        return
    await show(
        update,
        f"⭐ Thanks! You rated this trade {stars(rating.stars)} ({rating.stars}/5).",
        keyboard([button("🤝 Open the escrow", "escrow", "view", escrow_id)], [MENU]),
    )


async def summary(update: Update, context: Context) -> None:
    numbers = _ints(update, 1)
    if numbers is None:
        await alert(update, BAD_BUTTON)
        return
    found = await rating_summary(pool(context), user_id=numbers[0])
    await show(update, render_summary(found, "⭐ <b>Ratings</b>"), keyboard([MENU]))


def handlers() -> list[BaseHandler]:
    return [
        CallbackQueryHandler(rate, r"^rating:rate:"),
        CallbackQueryHandler(summary, r"^rating:user:"),
    ]
