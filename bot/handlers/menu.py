"""The main menu: `/menu` and the Menu button everywhere. One screen, one round trip."""

from __future__ import annotations

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler

from bot.data.menu import MenuContext, menu_context
from bot.handlers.ui import BLOCKED, NOT_REGISTERED, Context, button, esc, keyboard, pool, show
from bot.money import format_amount

# The entry button of every area; each area's handlers answer its own.
MENU = button("🏠 Menu", "menu", "open")


def render_menu(ctx: MenuContext) -> str:
    lines = [f"🏠 <b>Hello, {esc(ctx.display_name or 'there')}</b>", ""]
    if ctx.balances:
        lines += [
            format_amount(b.available, b.currency, b.decimals)
            + (f" (+{format_amount(b.held, b.currency, b.decimals)} held)" if b.held else "")
            for b in ctx.balances
        ]
    else:
        lines.append("Your wallets are empty.")
    attention = [
        (ctx.waiting_on_me, "escrow(s) waiting on you"),
        (ctx.active_escrows, "active escrow(s)"),
        (ctx.open_disputes, "open dispute(s)"),
        (ctx.unread_support_replies, "unread support reply(ies)"),
        (ctx.cashouts_in_flight, "cashout(s) in flight"),
    ]
    notes = [f"• {count} {what}" for count, what in attention if count]
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def menu_keyboard(ctx: MenuContext):
    rows = [
        [button("💼 Wallet", "wallet", "open"), button("🔁 Exchange", "exchange", "open")],
        [button("🤝 New escrow", "escrow", "new"), button("📋 My escrows", "escrow", "list")],
        [button("📜 History", "history", "open"), button("📇 Contacts", "contacts", "open")],
        [button("🎁 Referral", "referral", "open"), button("💬 Support", "support", "open")],
    ]
    if ctx.is_admin:
        rows.append([button("🛠 Admin", "admin", "open")])
    return keyboard(*rows)


async def open_menu(update: Update, context: Context) -> None:
    ctx = await menu_context(pool(context), telegram_id=update.effective_user.id)
    if ctx is None or not ctx.onboarding_complete:
        await show(update, NOT_REGISTERED)
        return
    if ctx.is_blocked:
        await show(update, BLOCKED)
        return
    await show(update, render_menu(ctx), menu_keyboard(ctx))


def handlers() -> list[BaseHandler]:
    return [
        CommandHandler("menu", open_menu),
        CallbackQueryHandler(open_menu, pattern=r"^menu:open$"),
    ]
