"""The admin console: `/admin` (and the menu's Admin button) opens the dashboard; from it the
users (paged, with a search), the transactions (paged, filtered by status), the dispute
queue and the cashout approval queue. One screen, one round trip.

Every handler is wrapped with `admin_only`: anyone not among the configured admin Telegram
ids is refused before any query. The movements behind the console (approve_cashout,
resolve_dispute) check users.is_admin again in SQL.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, MessageHandler

from bot import cache
from bot.data.admin import (
    AdminUser,
    CashoutQueue,
    DashboardStats,
    QueuedCashout,
    Transfer,
    cashout_queue,
    dashboard_stats,
    transaction_review,
    user_page,
)
from bot.data.dispute import DisputePage, open_disputes
from bot.data.enums import DestinationKind, TransferStatus
from bot.data.errors import DomainError
from bot.data.rows import PageCursor
from bot.data.wallet import Cashout, approve_cashout, fail_cashout
from bot.handlers.menu import MENU
from bot.handlers.ui import (
    END,
    EXPIRED,
    Context,
    admin_only,
    alert,
    args,
    button,
    esc,
    flow,
    keyboard,
    pool,
    show,
    text_input,
)
from bot.money import FIAT_SYMBOLS, format_amount

USERS_PAGE = 10
TRANSFERS_PAGE = 8
DISPUTES_PAGE = 10
CASHOUTS_PAGE = 10

# Cache key (cache.py flows): the cashout queue page on screen, so that a cashout's card and
# the note after approving or rejecting it need no query, and the user can be told.
CASHOUTS = "admin_cashouts"
REJECTED = "Rejected by a LockBay admin"

# The user search: a flow of one text step.
SEARCH = "search"
SEARCH_MAX_BYTES = 32  # the term rides in the paging buttons' callback data
ASK_SEARCH = (
    "🔍 <b>Find a user</b>\n\nSend the start of a username, first name or e-mail, or a "
    "Telegram id.\n\n/cancel to stop."
)
BACK = button("⬅ Dashboard", "admin", "open")
OLDER, NEXT = "Older ›", "Next ›"  # noqa: RUF001 - the paging arrow, as in every list


def exact(amount: Decimal, currency: str) -> str:
    """An amount at the places it has (at least a fiat's cents).

    For the dashboard, whose query reads only its counters, not the currencies table: the
    counters sum amounts of the currency's precision, so no digit is lost or invented."""
    places = max(0, -amount.normalize().as_tuple().exponent)
    if currency in FIAT_SYMBOLS:
        places = max(places, 2)
    return format_amount(amount, currency, places)


def _cursor(text: str | None) -> PageCursor | None:
    try:
        return PageCursor.decode(text) if text else None
    except ValueError:  # crafted data: the first page
        return None


def _when(moment) -> str:
    return f"{moment:%d %b %H:%M}" if moment else "—"


# --- dashboard -------------------------------------------------------------------


def render_dashboard(s: DashboardStats) -> str:
    escrows = [f"{c.status.replace('_', ' ')} {c.count:,}" for c in s.escrows_by_status if c.count]
    held = [exact(f.amount, f.currency) for f in s.funds_held]
    pending = [f"{exact(c.amount, c.currency)} ({c.count:,})" for c in s.cashouts_pending]
    volume = [exact(v.amount, v.currency) for v in s.volume_24h]
    return "\n".join(
        [
            "🛠 <b>Admin dashboard</b>",
            "",
            f"👥 Users: {s.users_total:,} · onboarded {s.users_onboarded:,} · "
            f"new in 24 h {s.users_new_24h:,}",
            f"🤝 Escrows: {', '.join(escrows) or 'none'}",
            f"🔒 Held in escrow: {', '.join(held) or 'nothing'}",
            f"⚖️ Open disputes: {s.open_disputes:,}",
            f"💸 Cashouts in flight: {s.cashouts_pending_count:,}"
            + (f" — {', '.join(pending)}" if pending else ""),
            f"📈 Volume since {s.window_start:%d %b %H:%M} UTC: {', '.join(volume) or 'none'}",
        ]
    )


def dashboard_keyboard():
    return keyboard(
        [button("👥 Users", "admin", "users"), button("📒 Transactions", "admin", "tx", "all")],
        [button("⚖️ Disputes", "admin", "disputes"), button("💸 Cashouts", "admin", "cashouts")],
        [button("🔄 Refresh", "admin", "open"), MENU],
    )


@admin_only
async def open_dashboard(update: Update, context: Context) -> None:
    """`/admin`, `admin:open`: the dashboard (dashboard_stats, 1 round trip)."""
    stats = await dashboard_stats(pool(context))
    await show(update, render_dashboard(stats), dashboard_keyboard())


# --- users -----------------------------------------------------------------------


def render_user(u: AdminUser) -> str:
    flags = [u.onboarding.replace("_", " ")]
    if u.is_blocked:
        flags.append("🛑 blocked")
    if u.is_admin:
        flags.append("🛠 admin")
    name = esc(" ".join(p for p in (u.first_name, u.last_name) if p) or "—")
    handle = f" @{esc(u.username)}" if u.username else ""
    balances = [
        format_amount(w.available, w.currency, w.decimals)
        + (f" (+{format_amount(w.held, w.currency, w.decimals)} held)" if w.held else "")
        for w in u.wallets
        if w.available or w.held
    ]
    return "\n".join(
        [
            f"<b>#{u.id}</b> {name}{handle} · <code>{u.telegram_id}</code>",
            f"   {' · '.join(flags)} · escrows {u.escrow_count:,} · "
            f"transfers {u.transaction_count:,}",
            f"   {', '.join(balances) or 'no balance'}" + (f" · {esc(u.email)}" if u.email else ""),
        ]
    )


async def _show_users(
    update: Update, context: Context, after_id: int | None, search: str | None
) -> None:
    page = await user_page(pool(context), after_id=after_id, limit=USERS_PAGE, search=search)
    title = f"👥 <b>Users</b> matching “{esc(search)}”" if search else "👥 <b>Users</b>"
    body = [render_user(u) for u in page.users] or ["No users."]
    rows = []
    if page.next_after is not None:
        parts = ["admin", "users", page.next_after] + ([search] if search else [])
        rows.append([button(NEXT, *parts)])
    rows.append([button("🔍 Search", "admin", "search")] + (
        [button("✖ Clear search", "admin", "users")] if search else []
    ))  # fmt: skip
    rows.append([BACK, MENU])
    await show(update, "\n\n".join([title, *body]), keyboard(*rows))


@admin_only
async def users(update: Update, context: Context) -> None:
    """`admin:users[:<after_id>[:<search>]]`: a page of users (user_page, 1 round trip)."""
    rest = args(update)
    after = int(rest[0]) if rest and rest[0].isdigit() else None
    search = ":".join(rest[1:]) or None
    await _show_users(update, context, after, search)


def search_problem(text: str) -> str | None:
    """Why a typed search cannot be run, or None (0 round trips)."""
    s = text.strip()
    if not s:
        return "Please send a name, username, e-mail or Telegram id to search for."
    if not any(ch.isalnum() for ch in s):
        return "Please search with letters or digits: emoji or symbols alone match nobody."
    if ":" in s or not s.isprintable():
        return "A search cannot contain ':' or control characters."
    if len(s.encode()) > SEARCH_MAX_BYTES:
        return f"That is too long to search for; send at most {SEARCH_MAX_BYTES} characters."
    return None


@admin_only
async def ask_search(update: Update, context: Context) -> str:
    await show(update, ASK_SEARCH)
    return SEARCH


@admin_only
async def got_search(update: Update, context: Context) -> str | int | None:
    """The search text: validated (0 round trips), then the first page of matches (1)."""
    problem = search_problem(update.message.text)
    if problem:
        await alert(update, problem)
        return None  # same step
    await _show_users(update, context, None, update.message.text.strip())
    return END  # the results page is an ordinary screen


# --- transactions ---------------------------------------------------------------


def render_transfer(t: Transfer) -> str:
    flag = "" if t.status == TransferStatus.POSTED else f" · ⚠️ {t.status.value}"
    lines = [f"<b>#{t.id}</b> {t.kind.replace('_', ' ')}{flag} · {_when(t.created_at)}"]
    if t.memo:
        lines.append(f"   <i>{esc(t.memo[:120])}</i>")
    for e in t.entries[:6]:
        who = esc(e.user.display_name) if e.user else e.account_kind.replace("_", " ")
        sign = "+" if e.amount > 0 else "-"
        lines.append(f"   {who}: {sign}{format_amount(abs(e.amount), e.currency, e.decimals)}")
    if len(t.entries) > 6:
        lines.append(f"   … {len(t.entries) - 6} more entries")
    return "\n".join(lines)


@admin_only
async def transactions(update: Update, context: Context) -> None:
    """`admin:tx:<status|all>[:<cursor>]`: ledger transfers newest first (1 round trip)."""
    rest = args(update)
    wanted = rest[0] if rest else "all"
    status = TransferStatus(wanted) if wanted in {s.value for s in TransferStatus} else None
    before = _cursor(rest[1] if len(rest) > 1 else None)
    page = await transaction_review(
        pool(context), status=status, before=before, limit=TRANSFERS_PAGE
    )
    key = status.value if status else "all"
    title = f"📒 <b>Transactions</b> · {key}" + (" · older" if before else "")
    body = [render_transfer(t) for t in page.transfers] or ["No transfers."]
    filters_row = [
        button(("✓ " if key == k else "") + k.capitalize(), "admin", "tx", k)
        for k in ["all", *TransferStatus]
    ]
    rows = [filters_row]
    if page.next_before is not None:
        rows.append([button(OLDER, "admin", "tx", key, page.next_before.encode())])
    rows.append([BACK, MENU])
    await show(update, "\n\n".join([title, *body]), keyboard(*rows))


# --- disputes ----------------------------------------------------------------------


def render_queue(page: DisputePage, older: bool) -> str:
    lines = [
        "⚖️ <b>Dispute queue</b> (open and in review, newest first)" + (" · older" if older else "")
    ]
    if not page.items:
        lines += ["", "No open disputes."]
    for d in page.items:
        lines += [
            "",
            f"<b>#{d.id}</b> · <code>{esc(d.escrow_ref)}</code> · "
            f"{format_amount(d.amount, d.currency, d.decimals)}",
            f"   {esc(d.buyer_name)} (buyer) vs {esc(d.seller_name)} (seller) · "
            f"{d.status.replace('_', ' ')}",
            f"   opened {_when(d.created_at)} · last message {_when(d.last_message_at)}",
        ]
    return "\n".join(lines)


async def show_dispute_queue(update: Update, context: Context, before: PageCursor | None) -> None:
    """The dispute queue (open_disputes, 1 round trip); also `/disputes` for an admin."""
    page = await open_disputes(pool(context), before=before, limit=DISPUTES_PAGE)
    rows = [[button(f"#{d.id} · {d.escrow_ref}", "dispute", "view", d.id)] for d in page.items]
    if page.next_before is not None:
        rows.append([button(OLDER, "admin", "disputes", page.next_before.encode())])
    rows.append([BACK, MENU])
    await show(update, render_queue(page, before is not None), keyboard(*rows))


@admin_only
async def disputes(update: Update, context: Context) -> None:
    """`admin:disputes[:<cursor>]`."""
    rest = args(update)
    await show_dispute_queue(update, context, _cursor(rest[0] if rest else None))


# --- cashouts ------------------------------------------------------------------------


def amount_of(c: QueuedCashout) -> str:
    return format_amount(c.amount, c.currency, c.decimals)


def destination_of(c: QueuedCashout) -> str:
    if c.destination == DestinationKind.BANK_ACCOUNT:
        return f"{esc(c.bank_name or c.bank_code)} {esc(c.account_number)} ({esc(c.account_name)})"
    return f"{esc(c.network)} <code>{esc(c.address)}</code>"


def render_cashouts(queue: CashoutQueue, note: str | None, later: bool) -> str:
    lines = [note, ""] if note else []
    lines.append(
        "💸 <b>Cashouts waiting for approval</b> (oldest first)" + (" · later" if later else "")
    )
    if not queue.items:
        lines += ["", "Nothing waits for approval."]
    for c in queue.items:
        blocked = " · 🛑 blocked" if c.is_blocked else ""
        lines += [
            "",
            f"<b>#{c.id}</b> · {esc(c.display_name)}{blocked} · {amount_of(c)} "
            f"(fee {format_amount(c.fee, c.currency, c.decimals)}) · {_when(c.created_at)}",
            f"   → {destination_of(c)}",
        ]
    return "\n".join(lines)


def cashouts_keyboard(queue: CashoutQueue):
    rows = [
        [button(f"#{c.id} · {amount_of(c)} · {c.display_name[:24]}", "admin", "cashout", c.id)]
        for c in queue.items
    ]
    if queue.next_after is not None:
        rows.append([button(NEXT, "admin", "cashouts", queue.next_after.encode())])
    rows.append([BACK, MENU])
    return keyboard(*rows)


async def _show_cashouts(
    update: Update, context: Context, after: PageCursor | None, note: str | None = None
) -> None:
    queue = await cashout_queue(pool(context), after=after, limit=CASHOUTS_PAGE)
    cache.replace(context.user_data, CASHOUTS, (queue, after is not None))
    await show(update, render_cashouts(queue, note, after is not None), cashouts_keyboard(queue))


@admin_only
async def cashouts(update: Update, context: Context) -> None:
    """`admin:cashouts[:<cursor>]`: pending cashouts (cashout_queue, 1 round trip)."""
    rest = args(update)
    await _show_cashouts(update, context, _cursor(rest[0] if rest else None))


def _queued(context: Context, cashout_id: int) -> tuple[CashoutQueue, bool, QueuedCashout] | None:
    held = cache.cached(context.user_data, CASHOUTS)
    if held is None:
        return None
    queue, later = held
    item = next((c for c in queue.items if c.id == cashout_id), None)
    return (queue, later, item) if item is not None else None


@admin_only
async def cashout_card(update: Update, context: Context) -> None:
    """`admin:cashout:<id>`: one cashout with Approve / Reject, from the queue on screen
    (0 round trips)."""
    found = _queued(context, int(args(update)[0]))
    if found is None:
        await show(update, EXPIRED)
        return
    c = found[2]
    text = "\n".join(
        [
            f"💸 <b>Cashout #{c.id}</b>",
            "",
            f"User: {esc(c.display_name)} · <code>{c.telegram_id}</code>"
            + (" · 🛑 blocked" if c.is_blocked else ""),
            f"Amount: {amount_of(c)} · fee {format_amount(c.fee, c.currency, c.decimals)} · "
            f"held {format_amount(c.total, c.currency, c.decimals)}",
            f"To: {destination_of(c)}",
            f"Requested: {_when(c.created_at)}",
            "",
            "Approve sends it to the payout; reject gives the held money back to the user.",
        ]
    )
    await show(
        update,
        text,
        keyboard(
            [
                button("✅ Approve", "admin", "approve", c.id),
                button("❌ Reject", "admin", "reject", c.id),
            ],
            [button("⬅ Queue", "admin", "cashouts"), MENU],
        ),
    )


async def _decide(update: Update, context: Context, approve: bool) -> None:
    """Approve or reject one cashout (1 round trip) and show the queue on screen without
    it (no refetch unless the movement refused); its user is told through the outbox."""
    cashout_id = int(args(update)[0])
    found = _queued(context, cashout_id)
    if found is None:
        await show(update, EXPIRED)
        return
    queue, later, item = found
    try:
        if approve:
            done: Cashout = await approve_cashout(
                pool(context), cashout_id=cashout_id, admin_telegram_id=update.effective_user.id
            )
        else:
            done = await fail_cashout(pool(context), cashout_id=cashout_id, reason=REJECTED)
    except DomainError as err:
        # Someone else decided it meanwhile (or this admin lacks the right in the
        # database): say so and show the queue as it is now.
        await _show_cashouts(update, context, None, f"⚠️ {esc(err.message())}")
        return
    total = format_amount(done.total, done.currency, item.decimals)
    # The user is told by the outbox row the decision wrote (bot.outbox).
    if approve:
        note = f"✅ Approved cashout #{done.id} of {amount_of(item)} for {esc(item.display_name)}."
    else:
        note = (
            f"❌ Rejected cashout #{done.id} of {amount_of(item)} for "
            f"{esc(item.display_name)}: {total} is back in their wallet."
        )
    rest = dataclasses.replace(queue, items=tuple(c for c in queue.items if c.id != cashout_id))
    cache.replace(context.user_data, CASHOUTS, (rest, later))
    await show(update, render_cashouts(rest, note, later), cashouts_keyboard(rest))


@admin_only
async def approve(update: Update, context: Context) -> None:
    """`admin:approve:<id>`: approve_cashout."""
    await _decide(update, context, approve=True)


@admin_only
async def reject(update: Update, context: Context) -> None:
    """`admin:reject:<id>`: fail_cashout, the hold released."""
    await _decide(update, context, approve=False)


def handlers() -> list[BaseHandler]:
    return [
        CommandHandler("admin", open_dashboard),
        CallbackQueryHandler(open_dashboard, pattern=r"^admin:open$"),
        CallbackQueryHandler(users, pattern=r"^admin:users(:.*)?$"),
        flow(
            "admin_search",
            entry_points=[CallbackQueryHandler(ask_search, pattern=r"^admin:search$")],
            states={SEARCH: [MessageHandler(text_input(), got_search)]},
        ),
        CallbackQueryHandler(transactions, pattern=r"^admin:tx(:.*)?$"),
        CallbackQueryHandler(disputes, pattern=r"^admin:disputes(:[0-9a-f.]*)?$"),
        CallbackQueryHandler(cashouts, pattern=r"^admin:cashouts(:[0-9a-f.]*)?$"),
        CallbackQueryHandler(cashout_card, pattern=r"^admin:cashout:\d+$"),
        CallbackQueryHandler(approve, pattern=r"^admin:approve:\d+$"),
        CallbackQueryHandler(reject, pattern=r"^admin:reject:\d+$"),
    ]
