"""Support chat: `/support` and the Support button; tickets, their messages, admin replies.

One flow. The screen (the live ticket with its latest messages and the unread
admin replies) is fetched once at entry (1 round trip) and kept for the steps
after it. Opening a ticket, posting a message and closing are one movement
each (1); the configured admins hear of every user message with a Reply
button, and the user hears of every admin reply. Ticket ids in buttons are
never trusted: the movements re-check the presser (owner, or an admin in the
database) and refuse strangers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, MessageHandler

from bot import cache
from bot.data.errors import DomainError, Duplicate, Invalid, NotAParty, NotFound, WrongStatus
from bot.data.support import (
    BODY_MAX,
    SUBJECT_MAX,
    SupportContext,
    close_ticket,
    open_ticket,
    post_support_message,
    support_context,
)
from bot.handlers.menu import MENU
from bot.handlers.ui import (
    ADMINS_ONLY,
    BLOCKED,
    END,
    EXPIRED,
    NOT_REGISTERED,
    Context,
    alert,
    args,
    button,
    esc,
    flow,
    is_admin,
    keyboard,
    notify,
    pool,
    settings,
    show,
    text_input,
)

FLOW = "support"

HOME, SUBJECT, MESSAGE, CHAT, ANSWER = "home", "subject", "message", "chat", "answer"

NEW = button("✏️ New ticket", FLOW, "new")
# What one message may take on the ticket screen, and all of them together:
# the screen stays well inside Telegram's 4,096 characters.
SHOWN_BODY = 500
SHOWN_TOTAL = 3000
# A message quoted in a notification.
NOTIFIED_BODY = 3000


@dataclass(frozen=True, slots=True)
class Session:
    """What the flow keeps between steps, under its one cache key (dropped with it)."""

    ctx: SupportContext | None  # the screen as fetched; None for an admin answering
    subject: str | None = None  # a new ticket's subject, once typed
    answering: int | None = None  # the ticket an admin is replying to


def _close(ticket_id: int):
    return button("✖ Close ticket", FLOW, "close", ticket_id)


def _reply(ticket_id: int, label: str = "↩️ Reply"):
    return button(label, FLOW, "reply", ticket_id)


def _cut(text: str, limit: int) -> str:
    """Shortened before escaping, so no entity is ever cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _when(at: datetime) -> str:
    return f"{at.astimezone(UTC):%d %b %H:%M}"


def _check_text(text: str, what: str, limit: int) -> str | None:
    """Why typed text cannot be taken (None when it can). Emoji alone is fine: it is chat."""
    if not text:
        return f"The {what} is empty. Type some text."
    if len(text) > limit:
        return (
            f"The {what} is {len(text):,} characters; the limit is {limit:,}. "
            "Shorten it and send it again."
        )
    return None


# --- rendering ----------------------------------------------------------------


def render_support(ctx: SupportContext, note: str = "") -> str:
    lines = [note, ""] if note else []
    lines.append("💬 <b>Support</b>")
    ticket = ctx.ticket
    if ticket is None:
        lines += ["", "You have no open ticket. Tell us what went wrong and we will answer here."]
        return "\n".join(lines)
    lines.append(f"Ticket #{ticket.id}: <b>{esc(ticket.subject)}</b> ({ticket.status.value})")
    if ctx.unread_replies:
        lines.append(f"🔔 {ctx.unread_replies} new reply(ies) from support")
    # The newest messages that fit, shown oldest first.
    shown: list[str] = []
    budget = SHOWN_TOTAL
    for m in reversed(ctx.messages):
        who = "🛟 <b>Support</b>" if m.from_admin else "🙂 <b>You</b>"
        new = " 🆕" if m.from_admin and m.read_at is None else ""
        entry = f"{who} · {_when(m.created_at)}{new}\n{esc(_cut(m.body, SHOWN_BODY))}"
        if len(entry) > budget:
            break
        shown.append(entry)
        budget -= len(entry)
    if len(shown) < len(ctx.messages):
        lines += ["", f"… {len(ctx.messages) - len(shown)} earlier message(s) not shown"]
    for entry in reversed(shown):
        lines += ["", entry]
    lines += ["", "Type a message to add it to this ticket."]
    return "\n".join(lines)


def support_keyboard(ctx: SupportContext):
    if ctx.ticket is None:
        return keyboard([NEW], [MENU])
    return keyboard([_close(ctx.ticket.id)], [MENU])


async def _show_screen(update: Update, context: Context, ctx: SupportContext, note: str = ""):
    await show(update, render_support(ctx, note), support_keyboard(ctx))
    return HOME if ctx.ticket is None else CHAT


def _session(context: Context) -> Session | None:
    return cache.cached(context.user_data, FLOW)


def _keep(context: Context, session: Session, **changes) -> None:
    cache.replace(context.user_data, FLOW, dataclasses.replace(session, **changes))


async def _fetch(update: Update, context: Context) -> SupportContext | None:
    """The support screen's context (1 round trip), or None after saying why not."""

    async def fetch() -> Session | None:
        ctx = await support_context(pool(context), telegram_id=update.effective_user.id)
        return None if ctx is None else Session(ctx)

    session = await cache.open_flow(context.user_data, FLOW, fetch)
    ctx = session.ctx if session is not None else None
    if ctx is None or not ctx.onboarding_complete:
        cache.drop(context.user_data, FLOW)
        await show(update, NOT_REGISTERED)
        return None
    if ctx.is_blocked:
        cache.drop(context.user_data, FLOW)
        await show(update, BLOCKED)
        return None
    return ctx


async def _tell_admins(context: Context, sender_id: int, text: str, ticket_id: int) -> None:
    """Every configured admin but the sender, with a Reply button."""
    markup = keyboard([_reply(ticket_id)])
    for admin_id in sorted(settings(context).admin_ids - {sender_id}):
        await notify(context, admin_id, text, markup)


def _from_user(update: Update, ctx: SupportContext) -> str:
    user = update.effective_user
    handle = f" @{esc(user.username)}" if user.username else ""
    return f"{esc(ctx.display_name or user.first_name)}{handle} (id {user.id})"


# --- the user's side ----------------------------------------------------------


async def open_support(update: Update, context: Context) -> object:
    ctx = await _fetch(update, context)
    if ctx is None:
        return END
    return await _show_screen(update, context, ctx)


async def new_ticket(update: Update, context: Context) -> object:
    session = _session(context)
    ctx = session.ctx if session is not None else None
    if ctx is None:  # a button of an older screen: the screen first
        ctx = await _fetch(update, context)
        if ctx is None:
            return END
    if ctx.ticket is not None:
        # One live ticket at a time: show the fresh one instead.
        return await open_support(update, context)
    await show(
        update,
        f"✏️ <b>New ticket</b>\n\nWhat is it about? Send a short subject "
        f"(up to {SUBJECT_MAX} characters).",
        keyboard([MENU]),
    )
    return SUBJECT


async def got_subject(update: Update, context: Context) -> object:
    session = _session(context)
    if session is None or session.ctx is None:
        await show(update, EXPIRED)
        return END
    subject = update.effective_message.text.strip()
    problem = _check_text(subject, "subject", SUBJECT_MAX)
    if problem:
        await show(update, problem)
        return SUBJECT
    _keep(context, session, subject=subject)
    await show(
        update,
        f"Subject: <b>{esc(subject)}</b>\n\nNow describe the problem in one message "
        f"(up to {BODY_MAX:,} characters).",
    )
    return MESSAGE


async def got_first_message(update: Update, context: Context) -> object:
    session = _session(context)
    if session is None or session.ctx is None or session.subject is None:
        await show(update, EXPIRED)
        return END
    ctx, subject = session.ctx, session.subject
    body = update.effective_message.text.strip()
    problem = _check_text(body, "message", BODY_MAX)
    if problem:
        await show(update, problem)
        return MESSAGE
    try:
        ticket = await open_ticket(
            pool(context), telegram_id=update.effective_user.id, subject=subject, body=body
        )
    except Duplicate:
        # A ticket was opened meanwhile (another device): show it, fresh.
        fresh = await _fetch(update, context)
        if fresh is None:
            return END
        return await _show_screen(update, context, fresh, "You already have an open ticket.")
    except Invalid as err:
        await show(update, esc(err.message()))
        return MESSAGE
    except DomainError:
        cache.drop(context.user_data, FLOW)
        await show(update, NOT_REGISTERED)
        return END
    opened = dataclasses.replace(ctx, ticket=ticket, messages=(), unread_replies=0)
    _keep(context, session, ctx=opened, subject=None)
    await _tell_admins(
        context,
        update.effective_user.id,
        f"🆘 <b>New ticket #{ticket.id}</b> from {_from_user(update, ctx)}\n"
        f"<b>{esc(ticket.subject)}</b>\n\n{esc(_cut(body, NOTIFIED_BODY))}",
        ticket.id,
    )
    await show(
        update,
        f"✅ Ticket #{ticket.id} opened: <b>{esc(ticket.subject)}</b>\n\n"
        "Our team will answer here. Type to add more, or close the ticket when you are done.",
        keyboard([_close(ticket.id)], [MENU]),
    )
    return CHAT


async def got_chat_message(update: Update, context: Context) -> object:
    session = _session(context)
    ctx = session.ctx if session is not None else None
    if ctx is None or ctx.ticket is None:
        await show(update, EXPIRED)
        return END
    body = update.effective_message.text.strip()
    problem = _check_text(body, "message", BODY_MAX)
    if problem:
        await show(update, problem)
        return CHAT
    ticket = ctx.ticket
    try:
        posted = await post_support_message(
            pool(context), ticket_id=ticket.id, telegram_id=update.effective_user.id, body=body
        )
    except WrongStatus as err:
        # Closed meanwhile (by an admin): say so and show what is true now.
        fresh = await _fetch(update, context)
        if fresh is None:
            return END
        return await _show_screen(update, context, fresh, esc(err.message()))
    except Invalid as err:
        await show(update, esc(err.message()))
        return CHAT
    except DomainError as err:
        cache.drop(context.user_data, FLOW)
        await show(update, esc(err.message()))
        return END
    await _tell_admins(
        context,
        update.effective_user.id,
        f"💬 <b>Ticket #{ticket.id}</b> ({esc(posted.subject)}) — {_from_user(update, ctx)}:\n\n"
        f"{esc(_cut(body, NOTIFIED_BODY))}",
        ticket.id,
    )
    await show(
        update,
        f"✅ Sent to support (ticket #{ticket.id}). We will answer here; type to add more.",
        keyboard([_close(ticket.id)], [MENU]),
    )
    return CHAT


async def close(update: Update, context: Context) -> object:
    """Close a ticket: its id comes from the button, so the movement checks the presser."""
    try:
        ticket_id = int(args(update)[0])
    except (IndexError, ValueError):
        await alert(update, "That button is broken; open /support again.")
        return None
    try:
        closed = await close_ticket(
            pool(context), ticket_id=ticket_id, telegram_id=update.effective_user.id
        )
    except (NotAParty, NotFound, WrongStatus) as err:
        # A stranger's crafted button, or a second press: refused, nothing changed.
        await alert(update, err.message())
        return None
    session = _session(context)
    ctx = session.ctx if session is not None else None
    if ctx is None or ctx.ticket is None or ctx.ticket.id != closed.id:
        # Not this user's screen (an admin closing from a notification).
        await show(update, f"✅ Ticket #{closed.id} closed.", keyboard([MENU]))
        return END
    ctx = dataclasses.replace(ctx, ticket=None, messages=(), unread_replies=0)
    _keep(context, session, ctx=ctx)
    await show(
        update,
        f"✅ Ticket #{closed.id} closed. Thank you!\n\nNeed anything else? Open a new ticket.",
        support_keyboard(ctx),
    )
    return HOME


async def home_reminder(update: Update, context: Context) -> object:
    session = _session(context)
    ctx = session.ctx if session is not None else None
    if ctx is None:
        await show(update, EXPIRED)
        return END
    await show(update, "Press <b>New ticket</b> to write to support.", support_keyboard(ctx))
    return HOME


# --- the admin's side ---------------------------------------------------------


async def start_reply(update: Update, context: Context) -> object:
    """An admin answers a ticket from its notification; nothing is read until they send."""
    if not is_admin(update, context):
        await alert(update, ADMINS_ONLY)
        return None
    try:
        ticket_id = int(args(update)[0])
    except (IndexError, ValueError):
        await alert(update, "That button is broken.")
        return None
    # The admin's own support screen, if open, is left behind for this answer.
    cache.replace(context.user_data, FLOW, Session(None, answering=ticket_id))
    await update.callback_query.answer()
    # A new message: the notification stays readable above it.
    await update.effective_message.reply_text(
        f"↩️ Type your reply to ticket #{ticket_id} (up to {BODY_MAX:,} characters), or /cancel.",
    )
    return ANSWER


async def got_answer(update: Update, context: Context) -> object:
    session = _session(context)
    ticket_id = session.answering if session is not None else None
    if ticket_id is None:
        await show(update, EXPIRED)
        return END
    body = update.effective_message.text.strip()
    problem = _check_text(body, "reply", BODY_MAX)
    if problem:
        await show(update, problem)
        return ANSWER
    try:
        posted = await post_support_message(
            pool(context), ticket_id=ticket_id, telegram_id=update.effective_user.id, body=body
        )
    except Invalid as err:
        await show(update, esc(err.message()))
        return ANSWER
    except DomainError as err:  # closed meanwhile, no such ticket, not an admin in the database
        cache.drop(context.user_data, FLOW)
        await show(update, esc(err.message()))
        return END
    cache.drop(context.user_data, FLOW)
    if posted.owner_telegram_id is not None:
        await notify(
            context,
            posted.owner_telegram_id,
            f"🛟 <b>Support replied</b> on ticket #{ticket_id} ({esc(posted.subject)}):\n\n"
            f"{esc(_cut(body, NOTIFIED_BODY))}\n\nOpen /support to answer.",
        )
    await show(
        update,
        f"✅ Reply sent on ticket #{ticket_id}.",
        keyboard([_reply(ticket_id, "↩️ Reply again")]),
    )
    return END


def handlers() -> list[BaseHandler]:
    return [
        flow(
            FLOW,
            entry_points=[
                CommandHandler("support", open_support),
                CallbackQueryHandler(open_support, pattern=r"^support:open$"),
                CallbackQueryHandler(new_ticket, pattern=r"^support:new$"),
                CallbackQueryHandler(close, pattern=r"^support:close:"),
                CallbackQueryHandler(start_reply, pattern=r"^support:reply:"),
            ],
            states={
                HOME: [MessageHandler(text_input(), home_reminder)],
                SUBJECT: [MessageHandler(text_input(), got_subject)],
                MESSAGE: [MessageHandler(text_input(), got_first_message)],
                CHAT: [MessageHandler(text_input(), got_chat_message)],
                ANSWER: [MessageHandler(text_input(), got_answer)],
            },
        )
    ]
