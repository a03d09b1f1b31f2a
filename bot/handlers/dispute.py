"""Disputes: opening one from the escrow screen, the chat between the parties and an admin,
and the admin's resolution; `/disputes` lists a user's disputes (an admin's: the queue).

One flow ("dispute"): the reason step, then the chat, where typed text is posted; an admin
resolves from the chat (release, refund, or a split with the buyer's share typed) and
confirms. The chat's context (dispute_context, or what open_dispute answered) is cached
at entry; posting costs the movement alone and the screen after it is rendered from the
cache and what the movement returned. Every button of the flow is an entry point, so a
press from outside the flow (a stale screen, crafted data) is answered too.
"""

from __future__ import annotations

import dataclasses
from decimal import ROUND_DOWN, Decimal

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, MessageHandler

from bot import cache
from bot.data.dispute import (
    ChatLine,
    DisputeContext,
    MyDisputes,
    Person,
    Resolution,
    SenderRole,
    dispute_context,
    my_disputes,
    open_dispute,
    post_dispute_message,
    resolve_dispute,
)
from bot.data.enums import DisputeResolution, DisputeStatus
from bot.data.errors import AccountBlocked, DomainError, WrongStatus
from bot.data.rows import PageCursor
from bot.handlers import admin
from bot.handlers.admin import OLDER
from bot.handlers.menu import MENU
from bot.handlers.ui import (
    BLOCKED,
    END,
    EXPIRED,
    NOT_REGISTERED,
    Context,
    admin_only,
    alert,
    args,
    button,
    esc,
    flow,
    is_admin,
    keyboard,
    pool,
    show,
    text_input,
)
from bot.money import AmountError, format_amount, parse_amount

# Cache keys (cache.py flows): the chat on screen, the escrow being disputed, the pending
# resolution.
FLOW = "dispute"
OPENING = "dispute_open"
RESOLVING = "dispute_resolve"

# The flow's states.
REASON, CHAT, SPLIT, CONFIRM = "reason", "chat", "split", "confirm"

REASON_MAX = 1000  # what dispute_open accepts
MESSAGE_MAX = 4000  # what dispute_post_message accepts
LIVE = frozenset({DisputeStatus.OPEN, DisputeStatus.IN_REVIEW})
MY_PAGE = 10

NOT_YOURS = "You are not a party to this dispute."
CLOSED = "This dispute is closed: nothing more can be posted in it."
ASK_REASON = (
    "⚖️ <b>Open a dispute</b>\n\n"
    "Tell us what went wrong, in a few sentences (up to 1,000 characters). "
    "The other party and the LockBay team will read it, and the escrow's money stays "
    "held until an admin decides.\n\n/cancel to go back."
)
ASK_SPLIT = (
    "✂️ <b>Split</b> — how much of {amount} goes back to the buyer?\n\n"
    "Send an amount (e.g. {example}) or a percentage (e.g. 40%). The rest goes to the "
    "seller, less the seller's fee.\n\n/cancel to stop."
)

# Chat rendering bounds: a message is shown up to BODY_SHOWN characters, and the chat
# as many of the latest messages as fit in CHAT_BUDGET characters.
REASON_SHOWN = 500
BODY_SHOWN = 300
CHAT_BUDGET = 3500


# --- validation (pure, 0 round trips) ---------------------------------------------


def text_problem(text: str, limit: int, what: str) -> str | None:
    """Why a typed reason or message cannot be posted, or None."""
    s = text.strip()
    if not s:
        return f"Please write your {what} in a few words."
    if not any(ch.isalnum() for ch in s):
        return f"Please write your {what} in words: emoji or symbols alone don't explain it."
    if len(s) > limit:
        return f"That is {len(s):,} characters; please keep your {what} to {limit:,}."
    return None


def parse_share(text: str, ctx: DisputeContext) -> Decimal:
    """The buyer's share of a split: an amount in the escrow's currency, or a percentage.

    Strictly between nothing and all of it (those are Release and Refund)."""
    e = ctx.escrow
    s = text.strip()
    if len(s) > 64:
        raise AmountError("That is far too long to be an amount or a percentage.")
    if s.endswith("%"):
        percent = parse_amount(s[:-1], 2, allow_zero=True)
        if percent >= 100:
            raise AmountError("A split gives the buyer less than 100%; for all of it, refund.")
        share = (e.amount * percent / 100).quantize(
            Decimal(1).scaleb(-e.decimals), rounding=ROUND_DOWN
        )
    else:
        if s.upper().endswith(e.currency.upper()):
            s = s[: -len(e.currency)]
        share = parse_amount(s, e.decimals)
        if share >= e.amount:
            raise AmountError(
                f"A split gives the buyer less than {fmt(e.amount, ctx)}; "
                "for all of it, refund the buyer."
            )
    if share <= 0:
        raise AmountError("That leaves the buyer nothing; to pay the seller all of it, release.")
    return share


# --- rendering -----------------------------------------------------------------


def fmt(amount: Decimal, ctx: DisputeContext) -> str:
    return format_amount(amount, ctx.escrow.currency, ctx.escrow.decimals)


def name(person: Person | None) -> str:
    if person is None:
        return "—"
    return esc(person.display_name or (f"@{person.username}" if person.username else "—"))


def role_of(ctx: DisputeContext, telegram_id: int, admin_configured: bool) -> SenderRole | None:
    """The viewer's part in the dispute; None for a stranger (not a party, not an admin)."""
    if telegram_id == ctx.buyer.telegram_id:
        return SenderRole.BUYER
    if ctx.seller is not None and telegram_id == ctx.seller.telegram_id:
        return SenderRole.SELLER
    return SenderRole.ADMIN if admin_configured else None


def me_as_person(ctx: DisputeContext, role: SenderRole) -> Person | None:
    return {SenderRole.BUYER: ctx.buyer, SenderRole.SELLER: ctx.seller}.get(role)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def render_chat(ctx: DisputeContext, role: SenderRole, note: str | None = None) -> str:
    d, e = ctx.dispute, ctx.escrow
    head = []
    if note:
        head += [note, ""]
    head += [
        f"⚖️ <b>Dispute #{d.id}</b> · escrow <code>{esc(e.ref)}</code>",
        f"Amount held: {fmt(e.amount, ctx)} · status: {d.status.replace('_', ' ')}",
        f"Buyer: {name(ctx.buyer)} · Seller: {name(ctx.seller)}"
        f" · Admin: {name(ctx.admin) if ctx.admin else 'not assigned yet'}",
        f"Reason: <i>{esc(_cut(d.reason, REASON_SHOWN))}</i>",
    ]
    if d.status == DisputeStatus.RESOLVED and d.resolution is not None:
        share = f" (buyer's share {fmt(d.buyer_share, ctx)})" if d.buyer_share is not None else ""
        head.append(f"Resolved: <b>{d.resolution.value}</b>{share}")
    if d.status in LIVE:
        tail = "Type a message to post it here." + (
            " Or resolve it with the buttons below." if role == SenderRole.ADMIN else ""
        )
    else:
        tail = "This dispute is closed."
    budget = CHAT_BUDGET - sum(len(x) + 1 for x in head) - len(tail)
    lines: list[str] = []
    for m in reversed(ctx.messages):  # newest first, until the budget is spent
        line = (
            f"<b>{esc(m.sender_name or m.sender_role.value)}</b> ({m.sender_role.value}, "
            f"{m.created_at:%d %b %H:%M}): {esc(_cut(m.body, BODY_SHOWN))}"
        )
        if len(line) + 1 > budget:
            break
        budget -= len(line) + 1
        lines.append(line)
    lines.reverse()
    if ctx.message_count == 0:
        chat = ["", "💬 No messages yet."]
    else:
        chat = ["", f"💬 <b>Messages</b> (the last {len(lines)} of {ctx.message_count}):", *lines]
    return "\n".join([*head, *chat, "", tail])


def chat_keyboard(ctx: DisputeContext, role: SenderRole):
    d = ctx.dispute
    rows = [[button("🔄 Refresh", "dispute", "view", d.id)]]
    if role == SenderRole.ADMIN and d.status in LIVE:
        rows.append(
            [
                button("Release to seller", "dispute", "resolve", d.id, "release"),
                button("Refund buyer", "dispute", "resolve", d.id, "refund"),
            ]
        )
        rows.append([button("✂️ Split", "dispute", "resolve", d.id, "split")])
        rows.append([button("⬅ Dispute queue", "admin", "disputes"), MENU])
    else:
        rows.append([button("⬅ My disputes", "dispute", "mine"), MENU])
    return keyboard(*rows)


async def show_chat(
    update: Update, context: Context, ctx: DisputeContext, role: SenderRole, note: str | None = None
) -> None:
    await show(update, render_chat(ctx, role, note), chat_keyboard(ctx, role))


def render_confirm(ctx: DisputeContext, share: Decimal) -> str:
    e = ctx.escrow
    if share == 0:
        what = "<b>Release to seller</b>: the seller is paid as if the buyer had released."
    elif share == e.amount:
        what = "<b>Refund buyer</b>: all of it goes back to the buyer, with the buyer's fee."
    else:
        what = (
            f"<b>Split</b>: the buyer gets {fmt(share, ctx)}, the seller "
            f"{fmt(e.amount - share, ctx)} less the seller's fee."
        )
    return (
        f"⚖️ Resolve dispute #{ctx.dispute.id} (escrow <code>{esc(e.ref)}</code>, "
        f"{fmt(e.amount, ctx)} held)?\n\n{what}\n\nThis pays out the escrow and cannot be undone."
    )


def confirm_keyboard(dispute_id: int):
    return keyboard(
        [button("✅ Confirm", "dispute", "confirm", dispute_id)],
        [button("⬅ Back", "dispute", "back", dispute_id)],
    )


def render_resolution(ctx: DisputeContext, r: Resolution) -> str:
    return "\n".join(
        [
            f"✅ <b>Dispute #{r.dispute_id} resolved</b>: {r.resolution.value}.",
            f"Escrow <code>{esc(ctx.escrow.ref)}</code> is now {r.escrow_status.value}.",
            "",
            f"Buyer {name(ctx.buyer)} receives {fmt(r.buyer_amount, ctx)}.",
            f"Seller {name(ctx.seller)} receives {fmt(r.seller_amount, ctx)}.",
            f"Platform fee: {fmt(r.platform_fee, ctx)}.",
        ]
    )


# --- opening ---------------------------------------------------------------------


async def start_open(update: Update, context: Context) -> str:
    """`dispute:open:<escrow_id>` from the escrow screen: ask why (0 round trips)."""
    cache.replace(context.user_data, OPENING, int(args(update)[0]))
    await show(update, ASK_REASON)
    return REASON


async def got_reason(update: Update, context: Context) -> str | int | None:
    text = update.message.text
    problem = text_problem(text, REASON_MAX, "reason")
    if problem:
        await alert(update, problem)
        return None  # same step
    escrow_id = cache.cached(context.user_data, OPENING)
    if escrow_id is None:
        await show(update, EXPIRED)
        return END
    me = update.effective_user.id
    try:
        d = await open_dispute(pool(context), escrow_id=escrow_id, telegram_id=me, reason=text)
    except AccountBlocked:
        cache.drop(context.user_data, OPENING)
        await show(update, BLOCKED)
        return END
    except DomainError as err:
        cache.drop(context.user_data, OPENING)
        await show(update, f"{esc(err.message())} Nothing was changed.", keyboard([MENU]))
        return END
    cache.drop(context.user_data, OPENING)
    ctx = d.as_context()
    role = role_of(ctx, me, False) or SenderRole.BUYER
    cache.replace(context.user_data, FLOW, ctx)
    # The other party and the admins are told by the outbox rows the opening wrote.
    await show_chat(update, context, ctx, role, "✅ Dispute opened. The money stays held.")
    return CHAT


# --- the chat ----------------------------------------------------------------------


async def view(update: Update, context: Context) -> str | int | None:
    """`dispute:view:<id>` (and Refresh): the chat, for the parties and configured admins."""
    dispute_id = int(args(update)[0])
    me = update.effective_user.id
    ctx = await dispute_context(pool(context), dispute_id=dispute_id)
    role = role_of(ctx, me, is_admin(update, context)) if ctx is not None else None
    if ctx is None or role is None:
        # An unknown dispute and someone else's look the same: nothing shown.
        await alert(update, NOT_YOURS)
        return None
    person = me_as_person(ctx, role)
    if person is not None and person.is_blocked:
        cache.drop(context.user_data, FLOW)
        await show(update, BLOCKED)
        return END
    cache.drop(context.user_data, RESOLVING)
    cache.replace(context.user_data, FLOW, ctx)
    await show_chat(update, context, ctx, role)
    return CHAT


async def post(update: Update, context: Context) -> str | int | None:
    """Typed text in the chat: posted (1 round trip), the others told, the chat shown again
    from the cache and what the movement answered (the message, the dispute's status and
    its handling admin after the post)."""
    ctx: DisputeContext | None = cache.cached(context.user_data, FLOW)
    if ctx is None:
        await show(update, EXPIRED)
        return END
    me = update.effective_user.id
    role = role_of(ctx, me, is_admin(update, context))
    if role is None:  # the cache is this user's own: only a lost admin right gets here
        await alert(update, NOT_YOURS)
        return END
    text = update.message.text
    problem = text_problem(text, MESSAGE_MAX, "message")
    if problem:
        await alert(update, problem)
        return None
    if ctx.dispute.status not in LIVE:
        await alert(update, CLOSED)
        return None
    try:
        m = await post_dispute_message(
            pool(context), dispute_id=ctx.dispute.id, telegram_id=me, body=text
        )
    except AccountBlocked:
        cache.drop(context.user_data, FLOW)
        await show(update, BLOCKED)
        return END
    except WrongStatus as err:
        # Resolved meanwhile: say so and show the dispute as it is now (1 more round trip).
        fresh = await dispute_context(pool(context), dispute_id=ctx.dispute.id)
        cache.replace(context.user_data, FLOW, fresh)
        await show_chat(update, context, fresh, role, f"⚠️ {esc(err.message())}")
        return None
    except DomainError as err:
        await alert(update, err.message())
        return None
    # The movement answered the dispute as it stands after the post: its status and the
    # admin handling it (whoever took it meanwhile, or this admin just now).
    sender_name = m.sender_name
    line = ChatLine(m.id, m.sender_id, sender_name, role, m.body, m.created_at)
    ctx = dataclasses.replace(
        ctx,
        dispute=dataclasses.replace(ctx.dispute, status=m.dispute_status or ctx.dispute.status),
        admin=m.admin,
        messages=(*ctx.messages, line)[-50:],
        message_count=ctx.message_count + 1,
    )
    cache.replace(context.user_data, FLOW, ctx)
    # The others are told by the outbox rows the post wrote (bot.outbox).
    await show_chat(update, context, ctx, role, "✅ Posted.")
    return None


# --- resolution (admins) -----------------------------------------------------------


def _live_context(context: Context, dispute_id: int) -> DisputeContext | None:
    ctx = cache.cached(context.user_data, FLOW)
    return ctx if ctx is not None and ctx.dispute.id == dispute_id else None


@admin_only
async def resolve_pick(update: Update, context: Context) -> str | int | None:
    """`dispute:resolve:<id>:release|refund|split` (0 round trips): confirm, or ask the split."""
    dispute_id, kind = int(args(update)[0]), args(update)[1]
    ctx = _live_context(context, dispute_id)
    if ctx is None:
        await show(update, EXPIRED)
        return END
    if ctx.dispute.status not in LIVE:
        await alert(update, "This dispute is already closed.")
        return None
    if kind == "split":
        cache.replace(context.user_data, RESOLVING, (dispute_id, None))
        example = format_amount(ctx.escrow.amount / 2, ctx.escrow.currency, ctx.escrow.decimals)
        await show(update, ASK_SPLIT.format(amount=fmt(ctx.escrow.amount, ctx), example=example))
        return SPLIT
    share = ctx.escrow.amount if kind == DisputeResolution.REFUND else Decimal(0)
    cache.replace(context.user_data, RESOLVING, (dispute_id, share))
    await show(update, render_confirm(ctx, share), confirm_keyboard(dispute_id))
    return CONFIRM


@admin_only
async def got_split(update: Update, context: Context) -> str | int | None:
    """The buyer's share typed (0 round trips): validated, then the confirm screen."""
    pending = cache.cached(context.user_data, RESOLVING)
    ctx = _live_context(context, pending[0]) if pending else None
    if ctx is None:
        await show(update, EXPIRED)
        return END
    try:
        share = parse_share(update.message.text, ctx)
    except AmountError as err:
        await alert(update, str(err))
        return None
    cache.replace(context.user_data, RESOLVING, (ctx.dispute.id, share))
    await show(update, render_confirm(ctx, share), confirm_keyboard(ctx.dispute.id))
    return CONFIRM


async def confirm_wait(update: Update, context: Context) -> None:
    await alert(update, "Press ✅ Confirm to resolve the dispute, or ⬅ Back.")


@admin_only
async def confirm(update: Update, context: Context) -> str | int | None:
    """`dispute:confirm:<id>`: resolve_dispute (1 round trip), both parties told."""
    dispute_id = int(args(update)[0])
    pending = cache.cached(context.user_data, RESOLVING)
    ctx = _live_context(context, dispute_id)
    if ctx is None or not pending or pending[0] != dispute_id or pending[1] is None:
        await show(update, EXPIRED)
        return END
    try:
        r = await resolve_dispute(
            pool(context),
            dispute_id=dispute_id,
            admin_telegram_id=update.effective_user.id,
            buyer_share=pending[1],
        )
    except DomainError as err:
        # Never trust the cache with money: say what changed, show the dispute as it is now.
        cache.drop(context.user_data, RESOLVING)
        fresh = await dispute_context(pool(context), dispute_id=dispute_id)
        if fresh is None:
            await show(update, esc(err.message()))
            return END
        cache.replace(context.user_data, FLOW, fresh)
        await show_chat(update, context, fresh, SenderRole.ADMIN, f"⚠️ {esc(err.message())}")
        return CHAT
    cache.drop(context.user_data, RESOLVING)
    cache.drop(context.user_data, FLOW)
    # Both parties are told by the outbox rows the resolution wrote (bot.outbox).
    await show(
        update,
        render_resolution(ctx, r),
        keyboard(
            [button("⚖️ View dispute", "dispute", "view", r.dispute_id)],
            [button("⬅ Dispute queue", "admin", "disputes"), MENU],
        ),
    )
    return END


async def back(update: Update, context: Context) -> str | int | None:
    """`dispute:back:<id>`: from the confirm screen back to the chat (0 round trips)."""
    ctx = _live_context(context, int(args(update)[0]))
    role = role_of(ctx, update.effective_user.id, is_admin(update, context)) if ctx else None
    if ctx is None or role is None:
        await show(update, EXPIRED)
        return END
    cache.drop(context.user_data, RESOLVING)
    await show_chat(update, context, ctx, role)
    return CHAT


# --- /disputes -------------------------------------------------------------------


def render_mine(page: MyDisputes) -> str:
    if not page.items:
        return (
            "⚖️ <b>Your disputes</b>\n\nYou have no open disputes. To dispute a trade, open it "
            "from 📋 My escrows."
        )
    lines = ["⚖️ <b>Your disputes</b>", ""]
    for i in page.items:
        last = f"{i.last_message_at:%d %b %H:%M}" if i.last_message_at else "no messages yet"
        lines.append(
            f"• <code>{esc(i.escrow_ref)}</code> — "
            f"{format_amount(i.amount, i.currency, i.decimals)} with "
            f"{esc(i.counterparty_name)} (you are the {i.role}) · "
            f"{i.status.replace('_', ' ')} · last message: {last}"
        )
    return "\n".join(lines)


def mine_keyboard(page: MyDisputes):
    rows = [
        [
            button(
                f"⚖️ {i.escrow_ref} · {format_amount(i.amount, i.currency, i.decimals)}",
                "dispute",
                "view",
                i.dispute_id,
            )
        ]
        for i in page.items
    ]
    if page.next_before is not None:
        rows.append([button(OLDER, "dispute", "mine", page.next_before.encode())])
    if not page.items:
        rows.append([button("📋 My escrows", "escrow", "list")])
    rows.append([MENU])
    return keyboard(*rows)


def _cursor(text: str | None) -> PageCursor | None:
    try:
        return PageCursor.decode(text) if text else None
    except ValueError:  # crafted data: the first page
        return None


async def list_disputes(update: Update, context: Context) -> None:
    """`/disputes`: an admin's queue, or the user's own disputes (1 round trip)."""
    if is_admin(update, context):
        await admin.show_dispute_queue(update, context, None)
        return
    await _mine(update, context, None)


async def mine_page(update: Update, context: Context) -> None:
    """`dispute:mine[:<cursor>]`: a page of the user's disputes (1 round trip)."""
    rest = args(update)
    await _mine(update, context, _cursor(rest[0] if rest else None))


async def _mine(update: Update, context: Context, before: PageCursor | None) -> None:
    page = await my_disputes(
        pool(context), telegram_id=update.effective_user.id, before=before, limit=MY_PAGE
    )
    if page is None or not page.onboarding_complete:
        await show(update, NOT_REGISTERED)
        return
    if page.is_blocked:
        await show(update, BLOCKED)
        return
    await show(update, render_mine(page), mine_keyboard(page))


def handlers() -> list[BaseHandler]:
    return [
        flow(
            "dispute",
            entry_points=[
                CallbackQueryHandler(start_open, pattern=r"^dispute:open:\d+$"),
                CallbackQueryHandler(view, pattern=r"^dispute:view:\d+$"),
                CallbackQueryHandler(
                    resolve_pick, pattern=r"^dispute:resolve:\d+:(release|refund|split)$"
                ),
                CallbackQueryHandler(confirm, pattern=r"^dispute:confirm:\d+$"),
                CallbackQueryHandler(back, pattern=r"^dispute:back:\d+$"),
            ],
            states={
                REASON: [MessageHandler(text_input(), got_reason)],
                CHAT: [MessageHandler(text_input(), post)],
                SPLIT: [MessageHandler(text_input(), got_split)],
                CONFIRM: [MessageHandler(text_input(), confirm_wait)],
            },
        ),
        CommandHandler("disputes", list_disputes),
        CallbackQueryHandler(mine_page, pattern=r"^dispute:mine(:[0-9a-f.]*)?$"),
    ]
