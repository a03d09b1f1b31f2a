"""What every handler shares: showing a screen, buttons, escaping, the flow plumbing.

Messages use Telegram's HTML parse mode; anything a user typed goes through
`esc()`. Button presses edit the message in place; typed text gets a new
message. Callback data is `area:action[:arg...]`, at most 64 bytes, and never
trusted: ids in it are re-checked against the presser by the data layer.
"""

from __future__ import annotations

import html
import logging
import warnings
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest
from telegram.ext import (
    ApplicationHandlerStop,
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    ConversationHandler,
    MessageHandler,
    TypeHandler,
    filters,
)
from telegram.warnings import PTBUserWarning

from bot import cache, persistence

log = logging.getLogger(__name__)

END = ConversationHandler.END
MESSAGE_LIMIT = 4096
CALLBACK_DATA_LIMIT = 64
# An abandoned flow ends after this long without a step.
FLOW_TIMEOUT_SECONDS = 15 * 60

BLOCKED = "⛔ Your account is blocked. Write to support@lockbay.example if you think this is wrong."
NOT_REGISTERED = "Welcome! Send /start to set up your account first."
EXPIRED = "This screen has expired. Open it again from /menu."
CANCELLED = "Cancelled. Nothing was changed. /menu"
NOTHING_TO_CANCEL = "There is nothing to cancel. /menu"
ADMINS_ONLY = "This is for LockBay admins only."

Context = ContextTypes.DEFAULT_TYPE


@dataclass(frozen=True, slots=True)
class Settings:
    """What the handlers need from configuration."""

    admin_ids: frozenset[int] = frozenset()


def pool(context: Context) -> asyncpg.Pool:
    return context.bot_data["pool"]


def settings(context: Context) -> Settings:
    return context.bot_data.get("settings") or Settings()


def is_admin(update: Update, context: Context) -> bool:
    user = update.effective_user
    return user is not None and user.id in settings(context).admin_ids


def esc(text: object) -> str:
    """User-supplied (or any free) text, safe inside an HTML message."""
    return html.escape(str(text), quote=False)


def fit(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """Keep a message within Telegram's limit; lists are bounded, this is the last guard."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 2]
    # Never cut inside a tag or an entity.
    for mark in ("<", "&"):
        at = cut.rfind(mark)
        if at > cut.rfind(">" if mark == "<" else ";"):
            cut = cut[:at]
    return cut.rstrip() + " …"


def button(label: str, *parts: object) -> InlineKeyboardButton:
    data = ":".join(str(p) for p in parts)
    if len(data.encode()) > CALLBACK_DATA_LIMIT:
        raise ValueError(f"callback data over {CALLBACK_DATA_LIMIT} bytes: {data}")
    return InlineKeyboardButton(label, callback_data=data)


def keyboard(*rows: Sequence[InlineKeyboardButton] | None) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([list(r) for r in rows if r])


def columns(buttons: Iterable[InlineKeyboardButton], width: int = 2) -> list[list[Any]]:
    """Buttons laid out `width` to a row."""
    items = list(buttons)
    return [items[i : i + width] for i in range(0, len(items), width)]


def args(update: Update) -> list[str]:
    """The parts of the pressed button's data after `area:action`."""
    data = update.callback_query.data if update.callback_query else ""
    return (data or "").split(":")[2:]


async def show(update: Update, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
    """Show a screen: edit the pressed message in place, or send a new one."""
    text = fit(text)
    query = update.callback_query
    if query is not None and query.message is not None:
        await query.answer()
        try:
            await query.edit_message_text(text, parse_mode=ParseMode.HTML, reply_markup=markup)
        except BadRequest as e:
            # The same screen again (a double press): nothing to change.
            if "not modified" not in str(e):
                raise
        return
    await update.effective_message.reply_text(text, parse_mode=ParseMode.HTML, reply_markup=markup)


async def alert(update: Update, text: str) -> None:
    """Refuse a button press with a pop-up, or a typed text with a reply; nothing else changes."""
    if update.callback_query is not None:
        await update.callback_query.answer(text, show_alert=True)
    else:
        await update.effective_message.reply_text(fit(text))


async def notify(
    context: Context, telegram_id: int, text: str, markup: InlineKeyboardMarkup | None = None
) -> None:
    """Tell the other party; a chat that blocked the bot must not fail the sender's step."""
    try:
        await context.bot.send_message(
            telegram_id, fit(text), parse_mode=ParseMode.HTML, reply_markup=markup
        )
    except Exception:  # the sender's screen matters more than the note to the other side
        log.warning("could not notify %s", telegram_id, exc_info=True)


# --- flows --------------------------------------------------------------------


async def cancel(update: Update, context: Context) -> int:
    """`/cancel` in any flow: forget the flow's context, nothing changed.

    Stops the later handler groups, so the `/cancel` for when no flow is open
    (`nothing_to_cancel`, the last group) stays quiet.
    """
    cache.drop(context.user_data)
    await show(update, CANCELLED)
    raise ApplicationHandlerStop(END)


async def nothing_to_cancel(update: Update, context: Context) -> None:
    await show(update, NOTHING_TO_CANCEL)


def flow(
    name: str,
    entry_points: list[BaseHandler],
    states: dict[object, list[BaseHandler]],
) -> ConversationHandler:
    """One multi-step flow: named states, /cancel, timeout, and leaving for another flow.

    `name` is also the flow's key in the cache (bot.cache): leaving or timing out
    drops this flow's context only, never the one another flow just opened.
    """

    async def leave(update: Update, context: Context) -> int:
        # Another command or another screen's button: this flow ends quietly. The
        # update is also seen by the other handler groups, so what the user asked
        # for opens there.
        cache.drop(context.user_data, name)
        return END

    async def timed_out(update: Update, context: Context) -> None:
        cache.drop(context.user_data, name)
        if context.application.persistence and update.effective_user is not None:
            # A timeout runs as a job, not an update: PTB would not write this user's
            # data, and the choices just dropped would come back after a restart.
            context.application.mark_data_for_update_persistence(user_ids=update.effective_user.id)

    with warnings.catch_warnings():
        # Buttons are tracked per user and chat, on purpose: a flow spans several messages.
        warnings.filterwarnings("ignore", message=".*per_message=False", category=PTBUserWarning)
        return ConversationHandler(
            entry_points=entry_points,
            states={**states, ConversationHandler.TIMEOUT: [TypeHandler(Update, timed_out)]},
            fallbacks=[
                CommandHandler("cancel", cancel),
                MessageHandler(filters.COMMAND, leave),
                CallbackQueryHandler(leave),
            ],
            allow_reentry=True,
            conversation_timeout=FLOW_TIMEOUT_SECONDS,
            name=name,
            # Kept in PostgreSQL when the application has the persistence (bot.persistence).
            persistent=persistence.flows_persistent(),
        )


Handler = Callable[[Update, Context], Awaitable[Any]]


def admin_only(handler: Handler) -> Handler:
    """Refuse anyone not among the configured admin Telegram ids, before any query.

    A refusal answers None: inside a conversation the user stays where they were.
    """

    async def guarded(update: Update, context: Context) -> Any:
        if not is_admin(update, context):
            await alert(update, ADMINS_ONLY)
            return None
        return await handler(update, context)

    guarded.__name__ = handler.__name__
    guarded.__doc__ = handler.__doc__
    return guarded


def text_input() -> filters.BaseFilter:
    """What a text step accepts: typed text that is not a command."""
    return filters.TEXT & ~filters.COMMAND
