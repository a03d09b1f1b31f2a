"""Referral: the user's code and invite link, who joined with it, what it earned. One screen,
one round trip."""

from __future__ import annotations

from datetime import UTC
from urllib.parse import quote

from telegram import InlineKeyboardButton, Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler

from bot.data.referral import ReferralContext, referral_context
from bot.handlers.menu import MENU
from bot.handlers.ui import BLOCKED, NOT_REGISTERED, Context, esc, keyboard, pool, show
from bot.money import format_amount


def invite_link(bot_username: str, code: str) -> str:
    """The deep link that opens the bot with the code: /start <code> registers the referral."""
    return f"https://t.me/{bot_username}?start={code}"


def render_referral(ctx: ReferralContext, link: str) -> str:
    lines = [
        "🎁 <b>Invite friends</b>",
        "",
        f"Your code: <code>{esc(ctx.referral_code)}</code>",
        f"Your link: {esc(link)}",
        "",
        "You earn a share of the fee of each friend's first completed escrow.",
        "",
        f"Friends who joined: <b>{ctx.referred_count}</b>",
    ]
    if ctx.rewards:
        earned = ", ".join(format_amount(r.amount, r.currency, r.decimals) for r in ctx.rewards)
        lines.append(f"Rewards earned: <b>{earned}</b>")
    else:
        lines.append("Rewards earned: none yet")
    if ctx.latest:
        lines += ["", "<b>Latest</b>"]
        for r in ctx.latest:
            status = "✅ rewarded" if r.rewarded else "⏳ no completed trade yet"
            name = esc(r.display_name or "someone")
            lines.append(f"• {name}, joined {r.joined_at.astimezone(UTC):%d %b %Y} · {status}")
        if ctx.referred_count > len(ctx.latest):
            lines.append(f"… and {ctx.referred_count - len(ctx.latest)} earlier")
    return "\n".join(lines)


async def open_referral(update: Update, context: Context) -> None:
    ctx = await referral_context(pool(context), telegram_id=update.effective_user.id)
    if ctx is None or not ctx.onboarded:
        await show(update, NOT_REGISTERED)
        return
    if ctx.is_blocked:
        await show(update, BLOCKED)
        return
    link = invite_link(context.bot.username, ctx.referral_code)
    share = InlineKeyboardButton(
        "📤 Share link",
        url=f"https://t.me/share/url?url={quote(link, safe='')}"
        f"&text={quote('Trade safely with LockBay escrow', safe='')}",
    )
    await show(update, render_referral(ctx, link), keyboard([share], [MENU]))


def handlers() -> list[BaseHandler]:
    return [
        CommandHandler("referral", open_referral),
        CallbackQueryHandler(open_referral, pattern=r"^referral:open$"),
    ]
