"""History: the user's ledger entries, newest first, a page a round trip, filterable by
currency. Paging is keyset: the "Older" button carries the cursor of the page's last entry."""

from __future__ import annotations

from datetime import UTC

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler

from bot.data.enums import TransferKind
from bot.data.history import HistoryEntry, HistoryPage, history_page
from bot.data.rows import PageCursor
from bot.handlers.menu import MENU
from bot.handlers.ui import (
    BLOCKED,
    NOT_REGISTERED,
    Context,
    alert,
    args,
    button,
    columns,
    esc,
    keyboard,
    pool,
    show,
)
from bot.money import format_amount

PAGE_SIZE = 10
# A true minus sign and typographic arrows, meant as such.
MINUS, PREV, NEXT = "−", "‹", "›"  # noqa: RUF001

WHAT = {
    TransferKind.DEPOSIT: "Deposit",
    TransferKind.CASHOUT_HOLD: "Cashout requested",
    TransferKind.CASHOUT_SETTLE: "Cashout sent",
    TransferKind.CASHOUT_RELEASE: "Cashout returned",
    TransferKind.ESCROW_FUND: "Escrow payment",
    TransferKind.ESCROW_RELEASE: "Escrow released",
    TransferKind.ESCROW_REFUND: "Escrow refund",
    TransferKind.ESCROW_SPLIT: "Escrow split",
    TransferKind.EXCHANGE: "Exchange",
    TransferKind.REFERRAL_REWARD: "Referral reward",
    TransferKind.ADJUSTMENT: "Adjustment",
}

BAD_CURSOR = "This page link is broken. Open the history again from /menu."


def _amount(entry: HistoryEntry, decimals: int) -> str:
    sign = "+" if entry.amount > 0 else MINUS
    return sign + format_amount(abs(entry.amount), entry.currency, decimals)


def render_page(page: HistoryPage, currency: str | None, first: bool) -> str:
    decimals = {c.code: c.decimals for c in page.currencies}
    title = f"📜 <b>History</b> · {esc(currency)}" if currency else "📜 <b>History</b>"
    lines = [title if first else f"{title} (older)"]
    if not page.entries:
        lines += [
            "",
            f"No {esc(currency)} transactions yet." if currency else "No transactions yet.",
        ]
    for e in page.entries:
        what = WHAT.get(e.transfer_kind, e.transfer_kind.value.replace("_", " ").capitalize())
        if e.account_kind == "held":
            what += " (held balance)"
        memo = f" · {esc(e.memo)}" if e.memo else ""
        lines += [
            "",
            f"<b>{_amount(e, decimals.get(e.currency, 18))}</b> · {what}",
            f"<i>{e.created_at.astimezone(UTC):%d %b %Y, %H:%M} UTC</i>{memo}",
        ]
    return "\n".join(lines)


def page_keyboard(page: HistoryPage, currency: str | None, first: bool):
    filters = [
        button(f"• {c.code}" if c.code == currency else c.code, "history", "cur", c.code)
        for c in page.currencies
    ]
    if currency is not None:
        filters.insert(0, button("All", "history", "open"))
    nav = []
    if not first:
        # Keyset paging only goes older; the newest page is the start again.
        newest = ("history", "cur", currency) if currency else ("history", "open")
        nav.append(button(f"{PREV} Newest", *newest))
    if page.next_before is not None:
        older = ["history", "older", page.next_before.encode()]
        if currency:
            older.append(currency)
        nav.append(button(f"Older {NEXT}", *older))
    return keyboard(*columns(filters, 6), nav, [MENU])


async def _show_page(
    update: Update, context: Context, currency: str | None, before: PageCursor | None
) -> None:
    page = await history_page(
        pool(context),
        telegram_id=update.effective_user.id,
        before=before,
        limit=PAGE_SIZE,
        currency=currency,
    )
    if page.viewer is None or not page.viewer.onboarded:
        await show(update, NOT_REGISTERED)
        return
    if page.viewer.is_blocked:
        await show(update, BLOCKED)
        return
    if currency is not None and currency not in {c.code for c in page.currencies}:
        await alert(update, "There is no such currency.")
        return
    first = before is None
    await show(update, render_page(page, currency, first), page_keyboard(page, currency, first))


async def open_history(update: Update, context: Context) -> None:
    await _show_page(update, context, None, None)


async def filter_currency(update: Update, context: Context) -> None:
    await _show_page(update, context, args(update)[0], None)


async def older(update: Update, context: Context) -> None:
    parts = args(update)
    try:
        before = PageCursor.decode(parts[0])
    except (ValueError, OverflowError):
        # Crafted callback data: refused before any query.
        await alert(update, BAD_CURSOR)
        return
    await _show_page(update, context, parts[1] if len(parts) > 1 else None, before)


def handlers() -> list[BaseHandler]:
    return [
        CommandHandler("history", open_history),
        CallbackQueryHandler(open_history, pattern=r"^history:open$"),
        CallbackQueryHandler(filter_currency, pattern=r"^history:cur:[A-Z0-9]{1,10}$"),
        CallbackQueryHandler(
            older, pattern=r"^history:older:[0-9a-f-]{1,20}\.[0-9a-f]{1,16}(:[A-Z0-9]{1,10})?$"
        ),
    ]
