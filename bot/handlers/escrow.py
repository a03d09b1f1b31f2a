"""Escrows: my escrows, creating one, and the parties' actions on it.

- `/escrow` and the My escrows button: `my_escrows` (1 round trip per page),
  tabs by status group, keyset pages.
- Create (the New escrow button): the seller's handle, then
  `escrow_creation_context` (the flow's one lookup, kept in the flow cache),
  then currency, amount, description, fee split and payment method from the
  cache (0 each), then Confirm: `create_escrow` (1). Paying from the wallet is
  then the escrow's first action (`fund_escrow_from_wallet`, 1).
- `escrow:view:<id>`: `escrow_view` for the presser (1); buttons from the
  actions the view allows. `escrow:act:<id>:<action>`: the movement (1), the
  result shown from its answer; the other party is told by the row the
  movement wrote in the outbox (bot.outbox). Release, refund, decline and
  cancel ask first (0).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_CEILING, Decimal, localcontext

from telegram import InlineKeyboardMarkup, Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, MessageHandler

from bot import cache
from bot.data.enums import EscrowStatus, FeeSplit, PaymentMethod
from bot.data.errors import DomainError, InsufficientFunds, NotAParty, NotFound
from bot.data.escrow import (
    Escrow,
    EscrowCreationContext,
    EscrowCurrency,
    EscrowPage,
    EscrowResult,
    EscrowView,
    accept_escrow,
    allowed_actions,
    cancel_escrow,
    create_escrow,
    decline_escrow,
    escrow_creation_context,
    escrow_view,
    fund_escrow_from_wallet,
    mark_delivered,
    my_escrows,
    refund_escrow,
    release_escrow,
)
from bot.data.rows import PageCursor
from bot.handlers.menu import MENU
from bot.handlers.rating import rate_row, render_summary
from bot.handlers.ui import (
    BLOCKED,
    END,
    EXPIRED,
    NOT_REGISTERED,
    Context,
    alert,
    args,
    button,
    cancel,
    columns,
    esc,
    flow,
    keyboard,
    pool,
    show,
    text_input,
)
from bot.money import (
    AmountError,
    Handle,
    HandleError,
    format_amount,
    normalize_handle,
    parse_amount,
)

S = EscrowStatus
FLOW = "escrow_new"

# The creation flow's states.
HANDLE = "handle"
CURRENCY = "currency"
AMOUNT = "amount"
DESCRIPTION = "description"
FEE_SPLIT = "fee_split"
PAYMENT = "payment"
CONFIRM = "confirm"

MAX_HANDLE = 254  # the longest e-mail address; no username or phone comes near it
MAX_DESCRIPTION = 1000  # what escrow_create accepts
# Far above any real trade, and far enough below numeric(38, 18)'s 20 integer digits
# that amount + fee always fits.
MAX_AMOUNT = Decimal(10) ** 15
TABS = ("active", "completed", "all")
TAB_LABELS = {"active": "Active", "completed": "Completed", "all": "All"}

NOT_YOURS = "This escrow is not one of yours."
BAD_BUTTON = "That button is not valid any more."
USE_BUTTONS = "Please use the buttons above, or /cancel."

CANCEL = button("✖ Cancel", "escrow", "stop")
NEW_ESCROW = button("🤝 New escrow", "escrow", "new")
MY_ESCROWS = button("📋 My escrows", "escrow", "list")

STATUS_LABELS = {
    S.AWAITING_PAYMENT: "⏳ awaiting payment",
    S.FUNDED: "💰 funded",
    S.ACCEPTED: "🤝 accepted",
    S.DELIVERED: "📦 delivered",
    S.DISPUTED: "⚠️ in dispute",
    S.COMPLETED: "✅ completed",
    S.REFUNDED: "↩️ refunded",
    S.CANCELLED: "✖ cancelled",
    S.DECLINED: "❌ declined",
    S.EXPIRED: "⌛ expired",
}
SPLIT_LABELS = {
    FeeSplit.BUYER: "the buyer pays",
    FeeSplit.SELLER: "the seller pays",
    FeeSplit.SPLIT: "split between buyer and seller",
}
METHOD_LABELS = {
    PaymentMethod.WALLET: "from the LockBay wallet",
    PaymentMethod.CRYPTO: "by crypto transfer",
    PaymentMethod.BANK_TRANSFER: "by bank transfer",
}

# Action -> its button label. "dispute" is the dispute area's button; "expire" and
# "resolve" are never a party's.
ACTION_LABELS = {
    "pay": "💳 Pay from wallet",
    "accept": "✅ Accept",
    "decline": "❌ Decline",
    "deliver": "📦 Mark delivered",
    "release": "🔓 Release funds",
    "refund": "↩️ Refund the buyer",
    "cancel": "✖ Cancel escrow",
}
# Irreversible actions ask "Are you sure?" first (no round trip).
CONFIRM_FIRST = {
    "release": "🔓 Release the money held in this escrow to the seller?",
    "refund": "↩️ Refund the whole escrow to the buyer?",
    "decline": "❌ Decline this escrow? The buyer gets their money back.",
    "cancel": "✖ Cancel this escrow before it is paid?",
}
DONE = {
    "pay": "✅ Paid from your wallet. The seller has been asked to accept.",
    "accept": "✅ You accepted the escrow. Deliver, then mark it delivered.",
    "decline": "❌ You declined the escrow. The buyer has their money back.",
    "deliver": "📦 Marked as delivered. The buyer has been asked to release the funds.",
    "release": "🎉 Funds released to the seller. The trade is complete.",
    "refund": "↩️ Refunded to the buyer.",
    "cancel": "✖ Escrow cancelled. Nothing was paid.",
}


# --- small formatting helpers ------------------------------------------------------------


def _when(moment: datetime | None) -> str:
    return f"{moment.astimezone(UTC):%d %b %Y %H:%M} UTC" if moment else "—"


def _handle_text(handle: Handle) -> str:
    return "@" + handle.value if handle.kind == "username" else handle.value


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _refusal(err: DomainError, decimals: int | None) -> str:
    """What a refused movement means, amounts at the currency's precision where known."""
    if isinstance(err, InsufficientFunds) and decimals is not None:
        return (
            f"Not enough {esc(err.currency)}: "
            f"{format_amount(err.available, err.currency, decimals)} available, "
            f"{format_amount(err.needed, err.currency, decimals)} needed."
        )
    return esc(err.message())


def fee_terms(
    amount: Decimal, rate: Decimal, decimals: int, split: FeeSplit
) -> tuple[Decimal, Decimal, Decimal]:
    """(fee, buyer's part, seller's part) as escrow_create computes them: the fee rounded up
    to the currency's unit; split halves with the buyer's half rounded up."""
    unit = Decimal(1).scaleb(-decimals)
    # Amounts of 18 decimals outgrow the default 28 digits of precision.
    with localcontext() as ctx:
        ctx.prec = 80
        fee = (amount * rate / unit).to_integral_value(rounding=ROUND_CEILING) * unit
        if split == FeeSplit.BUYER:
            buyer = fee
        elif split == FeeSplit.SELLER:
            buyer = Decimal(0)
        else:
            buyer = (fee / 2 / unit).to_integral_value(rounding=ROUND_CEILING) * unit
        return fee, buyer, fee - buyer


# --- the escrow screen ---------------------------------------------------------------------


def _escrow_text(
    e: Escrow,
    decimals: int,
    role: str,
    *,
    buyer: str | None = None,
    seller: str | None = None,
    dispute_line: str | None = None,
) -> str:
    """One escrow as `role` sees it; buyer/seller are escaped names when known."""

    def m(amount: Decimal) -> str:
        return format_amount(amount, e.currency, decimals)

    lines = [f"🤝 <b>Escrow {esc(e.ref)}</b> — {STATUS_LABELS[e.status]}", ""]
    you = {"buyer": "You are the buyer.", "seller": "You are the seller."}.get(role)
    if buyer is not None:
        lines.append(f"Buyer: {buyer}")
    if seller is not None:
        lines.append(f"Seller: {seller}")
    elif e.seller_id is None:
        lines.append(f"Seller: {esc(e.seller_handle)} (invited, not on LockBay yet)")
    if you and buyer is None:
        # The result screens carry no names: say which side the viewer is on.
        lines.append(you)
    lines += [
        "",
        f"Amount: <b>{m(e.amount)}</b>",
        f"Fee: {m(e.fee)} — {SPLIT_LABELS[e.fee_split]}",
        f"The buyer pays {m(e.amount + e.buyer_fee)}; the seller receives "
        f"{m(e.amount - e.seller_fee)}.",
        f"Description: {esc(e.description)}",
        "",
    ]
    lines += _next_step(e, role, m)
    if dispute_line:
        lines += ["", dispute_line]
    return "\n".join(lines)


def _next_step(e: Escrow, role: str, m) -> list[str]:
    """What happens next, for this viewer."""
    buyer, seller = role == "buyer", role == "seller"
    if e.status == S.AWAITING_PAYMENT:
        if not buyer:
            return [f"Waiting for the buyer's payment (due by {_when(e.payment_deadline)})."]
        lines = [f"Pay {m(e.amount + e.buyer_fee)} by {_when(e.payment_deadline)}."]
        if e.payment_method in (PaymentMethod.CRYPTO, PaymentMethod.BANK_TRANSFER):
            lines.append(
                f"Pay {METHOD_LABELS[e.payment_method]} with the reference "
                f"<code>{esc(e.payment_reference or e.ref)}</code>"
                + (f" to <code>{esc(e.payment_address)}</code>" if e.payment_address else "")
                + ", or from your wallet once it holds enough."
            )
        return lines
    if e.status == S.FUNDED:
        if seller:
            return [f"Paid. Accept or decline by {_when(e.accept_deadline)}."]
        return [f"Paid. Waiting for the seller to accept (by {_when(e.accept_deadline)})."]
    if e.status == S.ACCEPTED:
        if seller:
            return [f"Deliver by {_when(e.delivery_deadline)}, then mark it delivered."]
        return [
            f"The seller is delivering (by {_when(e.delivery_deadline)}). "
            "Release the funds once you have what you paid for."
        ]
    if e.status == S.DELIVERED:
        auto = f"released automatically on {_when(e.auto_release_at)}"
        if buyer:
            return [f"The seller says it is delivered. Release the funds if all is well ({auto})."]
        return [f"Waiting for the buyer to release the funds ({auto})."]
    if e.status == S.DISPUTED:
        return ["In dispute: an admin will decide."]
    # Closed. No amounts here: a dispute's resolution may have split the money.
    if e.status == S.COMPLETED:
        return [
            "Completed: the seller was paid."
            + (" Rate the trade below." if buyer or seller else "")
        ]
    if e.status == S.REFUNDED:
        return ["Refunded: the buyer's money went back to their wallet."]
    if e.status == S.DECLINED:
        return ["Declined by the seller: the buyer's money went back to their wallet."]
    return ["Closed before it was paid. No money moved."]


def _escrow_keyboard(
    e: Escrow, role: str, actions: tuple[str, ...] | list[str], *extra_rows: list
) -> InlineKeyboardMarkup:
    buttons = [
        button(ACTION_LABELS[a], "escrow", "act", e.id, a) for a in actions if a in ACTION_LABELS
    ]
    rows = columns(buttons, 2)
    if "dispute" in actions:
        rows.append([button("⚠️ Open dispute", "dispute", "open", e.id)])
    if e.status == S.COMPLETED and role in ("buyer", "seller"):
        rows.append(rate_row(e.id))
    return keyboard(*rows, *extra_rows, [MY_ESCROWS, MENU])


def render_view(view: EscrowView) -> tuple[str, InlineKeyboardMarkup]:
    e, role = view.escrow, view.viewer_role

    def party(p, mine: bool) -> str:
        name = esc(p.display_name or p.username or "—")
        if p.username and p.display_name != p.username:
            name += f" (@{esc(p.username)})"
        return name + (" — you" if mine else "")

    dispute_line = None
    if view.dispute is not None:
        d = view.dispute
        dispute_line = (
            f"⚠️ Dispute opened by the {d.opened_by_role} on {_when(d.created_at)}: "
            f"{esc(_short(d.reason))} ({d.message_count} message(s))"
        )
    text = _escrow_text(
        e,
        view.decimals,
        role,
        buyer=party(view.buyer, role == "buyer"),
        seller=party(view.seller, role == "seller") if view.seller else None,
        dispute_line=dispute_line,
    )
    extra = []
    other = view.seller if role == "buyer" else view.buyer if role == "seller" else None
    if other is not None:
        label = "⭐ Seller's ratings" if role == "buyer" else "⭐ Buyer's ratings"
        extra.append([button(label, "rating", "user", other.id)])
    return text, _escrow_keyboard(e, role, view.allowed_actions, *extra)


def _escrow_id(update: Update) -> int | None:
    parts = args(update)
    # Digits that fit a bigint, or a crafted button.
    if not parts or not (parts[0].isascii() and parts[0].isdigit() and len(parts[0]) <= 18):
        return None
    return int(parts[0])


async def _show_view(
    update: Update, context: Context, escrow_id: int, refused: DomainError | None = None
) -> None:
    """The escrow as it is now for the presser (1 round trip), after what `refused` says
    changed; a stranger learns nothing, not even whether the escrow exists."""
    view = await escrow_view(
        pool(context), escrow_id=escrow_id, viewer_telegram_id=update.effective_user.id
    )
    if view is None:
        await alert(update, NOT_YOURS)
        return
    text, markup = render_view(view)
    if refused is not None:
        text = f"⚠️ {_refusal(refused, view.decimals)}\n\n{text}"
    await show(update, text, markup)


async def open_view(update: Update, context: Context) -> None:
    escrow_id = _escrow_id(update)
    if escrow_id is None:
        await alert(update, BAD_BUTTON)
        return
    await _show_view(update, context, escrow_id)


# --- escrow actions ------------------------------------------------------------------------


async def _pay(conn, *, escrow_id: int, telegram_id: int) -> EscrowResult:
    # One payment per escrow: a second press replays the first instead of paying twice.
    return await fund_escrow_from_wallet(
        conn, escrow_id=escrow_id, telegram_id=telegram_id, idempotency_key=f"escrow:{escrow_id}"
    )


MOVEMENTS = {
    "pay": _pay,
    "accept": accept_escrow,
    "decline": decline_escrow,
    "deliver": mark_delivered,
    "release": release_escrow,
    "refund": refund_escrow,
    "cancel": cancel_escrow,
}


async def act(update: Update, context: Context) -> None:
    parts = args(update)
    escrow_id = _escrow_id(update)
    action = parts[1] if len(parts) > 1 else ""
    sure = parts[2:] == ["yes"]
    if escrow_id is None or action not in MOVEMENTS or len(parts) > 3 or (parts[2:] and not sure):
        await alert(update, BAD_BUTTON)
        return
    if action in CONFIRM_FIRST and not sure:
        yes = "Yes, " + ACTION_LABELS[action].split(" ", 1)[1].lower()
        await show(
            update,
            f"{CONFIRM_FIRST[action]}\n\nThis cannot be undone.",
            keyboard(
                [
                    button(yes, "escrow", "act", escrow_id, action, "yes"),
                    button("No, go back", "escrow", "view", escrow_id),
                ]
            ),
        )
        return
    me = update.effective_user.id
    try:
        result = await MOVEMENTS[action](pool(context), escrow_id=escrow_id, telegram_id=me)
    except (NotAParty, NotFound):
        # Callback data is never trusted: the movement re-checked the presser.
        await alert(update, NOT_YOURS)
        return
    except DomainError as refused:
        # No longer allowed (someone acted first) or the money is not there: say what
        # changed and show the escrow as it is now (1 more round trip).
        await _show_view(update, context, escrow_id, refused)
        return
    await _after_action(update, context, result, action)


async def _after_action(update: Update, context: Context, result: EscrowResult, action: str):
    """The result screen from the movement's answer (no refetch). The other side is told
    by the outbox row the movement wrote (bot.outbox)."""
    me = update.effective_user.id
    e = result.escrow
    role = (
        "buyer"
        if me == result.buyer_telegram_id
        else "seller"
        if me == result.seller_telegram_id
        else "admin"
    )
    headline = DONE[action]
    if result.replayed:
        headline = "This escrow was already paid: nothing more was taken."
    text = f"{headline}\n\n{_escrow_text(e, result.decimals or 0, role)}"
    await show(update, text, _escrow_keyboard(e, role, allowed_actions(e.status, role)))


# --- my escrows ----------------------------------------------------------------------------


def render_list(page: EscrowPage, group: str, later: bool) -> tuple[str, InlineKeyboardMarkup]:
    lines = [f"📋 <b>My escrows</b> — {TAB_LABELS[group]}", ""]
    if not page.items:
        lines.append("Nothing here yet." if not later else "No older escrows.")
    for i in page.items:
        who = esc(i.counterparty_name) + (" (invited)" if i.counterparty_invited else "")
        side = f"you buy from {who}" if i.role == "buyer" else f"you sell to {who}"
        amount = format_amount(i.amount, i.currency, i.decimals)
        lines.append(f"• <b>{esc(i.ref)}</b> · {amount} · {side} · {STATUS_LABELS[i.status]}")
    opens = [button(f"Open {i.ref}", "escrow", "view", i.id) for i in page.items]
    tabs = [button(("• " if t == group else "") + TAB_LABELS[t], "escrow", "list", t) for t in TABS]
    nav = []
    if later:
        nav.append(button("⏮ Newest", "escrow", "list", group))
    if page.next_before is not None:
        older = "Older ›"  # noqa: RUF001 (the screen's wording)
        nav.append(button(older, "escrow", "list", group, page.next_before.encode()))
    markup = keyboard(tabs, *columns(opens, 2), nav, [NEW_ESCROW, MENU])
    return "\n".join(lines), markup


async def open_list(update: Update, context: Context) -> None:
    parts = args(update)
    group = parts[0] if parts else "active"
    try:
        before = PageCursor.decode(parts[1]) if len(parts) > 1 else None
    except (ValueError, OverflowError):  # a crafted cursor past the calendar
        await alert(update, BAD_BUTTON)
        return
    page = await my_escrows(
        pool(context), telegram_id=update.effective_user.id, status_group=group, before=before
    )
    if page is None or not page.onboarding_complete:
        await show(update, NOT_REGISTERED)
        return
    if page.is_blocked:
        await show(update, BLOCKED)
        return
    text, markup = render_list(page, group, later=before is not None)
    await show(update, text, markup)


# --- create: the flow ------------------------------------------------------------------------


@dataclass
class Draft:
    """The flow's one lookup and what the buyer chose so far (kept in the flow cache)."""

    ctx: EscrowCreationContext
    currency: EscrowCurrency | None = None
    amount: Decimal | None = None
    description: str | None = None
    fee_split: FeeSplit | None = None
    method: PaymentMethod | None = None

    def m(self, amount: Decimal) -> str:
        assert self.currency is not None
        return format_amount(amount, self.currency.code, self.currency.decimals)

    def fees(self) -> tuple[Decimal, Decimal, Decimal]:
        assert self.currency and self.amount is not None and self.fee_split
        return fee_terms(self.amount, self.ctx.fee_rate, self.currency.decimals, self.fee_split)

    def methods(self) -> list[PaymentMethod]:
        """Wallet when it covers amount + the buyer's fee, then the outside way to pay."""
        assert self.currency and self.amount is not None
        _, buyer_fee, _ = self.fees()
        wallet = self.ctx.wallet(self.currency.code)
        options = []
        if wallet is not None and wallet.available >= self.amount + buyer_fee:
            options.append(PaymentMethod.WALLET)
        fiat = self.currency.kind == "fiat"
        options.append(PaymentMethod.BANK_TRANSFER if fiat else PaymentMethod.CRYPTO)
        return options


def _draft(context: Context) -> Draft | None:
    return cache.cached(context.user_data, FLOW)


async def _expired(update: Update, context: Context) -> int:
    cache.drop(context.user_data, FLOW)
    await show(update, EXPIRED)
    return END


def _steps(*rows) -> InlineKeyboardMarkup:
    return keyboard(*rows, [CANCEL])


HANDLE_PROMPT = "Who is the seller? Send their Telegram @username, e-mail address or phone number."


async def new_escrow(update: Update, context: Context) -> str:
    """Entry: ask for the seller (no round trip; the lookup follows the handle)."""
    cache.drop(context.user_data, FLOW)
    await show(update, f"🤝 <b>New escrow</b>\n\n{HANDLE_PROMPT}", _steps())
    return HANDLE


async def handle_typed(update: Update, context: Context) -> object:
    text = update.effective_message.text
    if len(text) > MAX_HANDLE:
        await show(update, f"⚠️ That is far too long for a handle.\n{HANDLE_PROMPT}", _steps())
        return HANDLE
    try:
        normalize_handle(text)
    except HandleError:
        await show(
            update,
            f"⚠️ That is not a @username, e-mail address or phone number.\n{HANDLE_PROMPT}",
            _steps(),
        )
        return HANDLE

    async def fetch() -> Draft | None:
        ctx = await escrow_creation_context(
            pool(context), buyer_telegram_id=update.effective_user.id, seller_handle=text
        )
        return Draft(ctx) if ctx is not None else None

    draft = await cache.open_flow(context.user_data, FLOW, fetch)
    if draft is None or not draft.ctx.buyer_onboarded:
        cache.drop(context.user_data, FLOW)
        await show(update, NOT_REGISTERED)
        return END
    if draft.ctx.buyer_blocked:
        cache.drop(context.user_data, FLOW)
        await show(update, BLOCKED)
        return END
    if draft.ctx.seller_status == "self":
        cache.drop(context.user_data, FLOW)
        await show(
            update, f"⚠️ That is you: you cannot trade with yourself.\n{HANDLE_PROMPT}", _steps()
        )
        return HANDLE
    return await _card(update, draft)


def _seller_lines(ctx: EscrowCreationContext) -> list[str]:
    s = ctx.seller
    if s is None:
        return [
            f"Seller: <b>{esc(_handle_text(ctx.handle))}</b>",
            "They are not on LockBay yet — they will be invited, and the escrow is theirs "
            "once they join with this handle.",
        ]
    name = esc(s.display_name or s.username or "—")
    if s.username:
        name += f" (@{esc(s.username)})"
    rating = (
        f"⭐ {s.rating.average} from {s.rating.count} rating(s)"
        if s.rating.count
        else "⭐ No ratings yet"
    )
    return [f"Seller: <b>{name}</b>", f"{rating} · {s.completed_trades} completed trade(s)"]


async def _card(update: Update, draft: Draft) -> str:
    """The seller card with the currency buttons."""
    ctx = draft.ctx
    lines = ["🤝 <b>New escrow</b>", "", *_seller_lines(ctx), "", "Which currency will you pay in?"]
    currencies = [button(c.code, "escrow", "cur", c.code) for c in ctx.currencies]
    rating = [button("⭐ Seller's ratings", "escrow", "seller_rating")] if ctx.seller else []
    await show(update, "\n".join(lines), _steps(*columns(currencies, 3), rating))
    return CURRENCY


async def back_to_card(update: Update, context: Context) -> object:
    draft = _draft(context)
    if draft is None:
        return await _expired(update, context)
    return await _card(update, draft)


async def seller_rating(update: Update, context: Context) -> object:
    """The seller's rating summary, from the lookup (it carries the whole summary): 0 trips."""
    draft = _draft(context)
    if draft is None:
        return await _expired(update, context)
    seller = draft.ctx.seller
    if seller is None:
        await alert(update, "This seller has no ratings: they are not on LockBay yet.")
        return CURRENCY
    title = f"⭐ <b>Ratings of {esc(seller.display_name or seller.username or 'the seller')}</b>"
    await show(
        update,
        render_summary(seller.rating, title),
        _steps([button("⬅ Back", "escrow", "card")]),
    )
    return CURRENCY


async def pick_currency(update: Update, context: Context) -> object:
    draft = _draft(context)
    if draft is None:
        return await _expired(update, context)
    code = (args(update) or [""])[0]
    currency = next((c for c in draft.ctx.currencies if c.code == code), None)
    if currency is None:
        await alert(update, "Pick one of the currencies shown.")
        return CURRENCY
    draft.currency = currency
    await show(update, _amount_prompt(draft), _steps())
    return AMOUNT


def _amount_prompt(draft: Draft) -> str:
    c = draft.currency
    wallet = draft.ctx.wallet(c.code)
    lines = [
        f"How much {esc(c.code)} is the trade worth?",
        f"The minimum is {draft.m(c.escrow_min_amount)}; the fee is "
        f"{(draft.ctx.fee_rate * 100).normalize():f}%.",
    ]
    if wallet is not None:
        lines.append(f"Your wallet: {draft.m(wallet.available)}")
    lines += ["", "Type the amount, e.g. 100."]
    return "\n".join(lines)


async def amount_typed(update: Update, context: Context) -> object:
    draft = _draft(context)
    if draft is None or draft.currency is None:
        return await _expired(update, context)
    c = draft.currency
    try:
        amount = parse_amount(update.effective_message.text, c.decimals)
        if amount < c.escrow_min_amount:
            raise AmountError(f"The minimum for an escrow is {draft.m(c.escrow_min_amount)}.")
        if amount > MAX_AMOUNT:
            raise AmountError(f"The maximum for an escrow is {draft.m(MAX_AMOUNT)}.")
    except AmountError as refused:
        await show(update, f"⚠️ {esc(refused)}\nType the amount again, or /cancel.", _steps())
        return AMOUNT
    draft.amount = amount
    await show(
        update,
        f"Amount: {draft.m(amount)}\n\nWhat are you buying? Describe the goods or service "
        f"(up to {MAX_DESCRIPTION} characters). The seller sees this.",
        _steps(),
    )
    return DESCRIPTION


async def description_typed(update: Update, context: Context) -> object:
    draft = _draft(context)
    if draft is None or draft.amount is None:
        return await _expired(update, context)
    text = update.effective_message.text.strip()
    if not text:
        await show(update, "⚠️ Please describe what you are buying.", _steps())
        return DESCRIPTION
    if len(text) > MAX_DESCRIPTION:
        await show(
            update,
            f"⚠️ That is {len(text):,} characters; a description takes at most "
            f"{MAX_DESCRIPTION:,}. Please shorten it.",
            _steps(),
        )
        return DESCRIPTION
    draft.description = text
    return await _split_prompt(update, draft)


async def _split_prompt(update: Update, draft: Draft) -> str:
    labels = {
        FeeSplit.BUYER: "I pay it",
        FeeSplit.SELLER: "The seller pays it",
        FeeSplit.SPLIT: "Half each",
    }
    buttons = []
    fee = None
    for split in draft.ctx.fee_splits:
        fee, buyer, _ = fee_terms(draft.amount, draft.ctx.fee_rate, draft.currency.decimals, split)
        label = f"{labels.get(split, split.value)} (you pay {draft.m(buyer)})"
        buttons.append(button(label, "escrow", "split", split.value))
    text = (
        f"The LockBay fee is {draft.m(fee)}. Who pays it?"
        if fee is not None
        else "Who pays the fee?"
    )
    await show(update, text, _steps(*columns(buttons, 1)))
    return FEE_SPLIT


async def pick_split(update: Update, context: Context) -> object:
    draft = _draft(context)
    if draft is None or draft.description is None:
        return await _expired(update, context)
    wanted = (args(update) or [""])[0]
    split = next((f for f in draft.ctx.fee_splits if f.value == wanted), None)
    if split is None:
        await alert(update, "Pick one of the options shown.")
        return FEE_SPLIT
    draft.fee_split = split
    _, buyer_fee, _ = draft.fees()
    due = draft.amount + buyer_fee
    lines = [f"You will pay {draft.m(due)}. How?"]
    methods = draft.methods()
    wallet = draft.ctx.wallet(draft.currency.code)
    if PaymentMethod.WALLET not in methods and wallet is not None:
        lines.append(f"Your wallet has {draft.m(wallet.available)}: not enough to pay from it.")
    labels = {
        PaymentMethod.WALLET: "💼 Pay from my wallet",
        PaymentMethod.CRYPTO: f"🪙 Send {draft.currency.code} from outside",
        PaymentMethod.BANK_TRANSFER: "🏦 Bank transfer",
    }
    buttons = [button(labels[p], "escrow", "method", p.value) for p in methods]
    await show(update, "\n".join(lines), _steps(*columns(buttons, 1)))
    return PAYMENT


async def pick_method(update: Update, context: Context) -> object:
    draft = _draft(context)
    if draft is None or draft.fee_split is None:
        return await _expired(update, context)
    wanted = (args(update) or [""])[0]
    method = next((p for p in draft.methods() if p.value == wanted), None)
    if method is None:
        await alert(update, "Pick one of the options shown.")
        return PAYMENT
    draft.method = method
    fee, buyer_fee, seller_fee = draft.fees()
    lines = [
        "🧾 <b>Check and confirm</b>",
        "",
        *_seller_lines(draft.ctx),
        "",
        f"Amount: <b>{draft.m(draft.amount)}</b>",
        f"Fee: {draft.m(fee)} — you pay {draft.m(buyer_fee)}, the seller {draft.m(seller_fee)}",
        f"You pay: <b>{draft.m(draft.amount + buyer_fee)}</b> {METHOD_LABELS[method]}",
        f"The seller receives {draft.m(draft.amount - seller_fee)} when you release.",
        f"Description: {esc(draft.description)}",
    ]
    await show(update, "\n".join(lines), _steps([button("✅ Create escrow", "escrow", "confirm")]))
    return CONFIRM


async def confirm(update: Update, context: Context) -> object:
    draft = _draft(context)
    if draft is None or draft.method is None:
        return await _expired(update, context)
    # Dropped before the movement: a second press finds no draft, never a second escrow.
    cache.drop(context.user_data, FLOW)
    ctx, me = draft.ctx, update.effective_user.id
    try:
        escrow = await create_escrow(
            pool(context),
            buyer_telegram_id=me,
            seller_handle=ctx.handle.value,
            currency=draft.currency.code,
            amount=draft.amount,
            description=draft.description,
            fee_split=draft.fee_split,
            payment_method=draft.method,
        )
    except DomainError as refused:
        # The minimum, the currency or the seller changed since the lookup.
        await show(
            update,
            f"⚠️ {_refusal(refused, draft.currency.decimals)}\n\nNothing was created.",
            keyboard([button("🤝 Start again", "escrow", "new")], [MENU]),
        )
        return END
    headline = "✅ Escrow created."
    if draft.method == PaymentMethod.WALLET:
        # Paying is its own movement (an escrow action, 1 round trip), re-checked under lock.
        headline += " Pay it from your wallet to start the trade."
    text = _escrow_text(escrow, draft.currency.decimals, "buyer")
    if ctx.seller is None:
        text += (
            f"\n\n📨 {esc(_handle_text(ctx.handle))} is not on LockBay yet: invite them to "
            "open this bot; the escrow is theirs once they join with that handle."
        )
    await show(
        update,
        f"{headline}\n\n{text}",
        _escrow_keyboard(escrow, "buyer", allowed_actions(escrow.status, "buyer")),
    )
    # The seller, when on LockBay, is told by the outbox row the creation wrote.
    return END


async def use_buttons(update: Update, context: Context) -> object:
    """Text where a button is expected: say so, stay in the same step."""
    if _draft(context) is None:
        return await _expired(update, context)
    await show(update, USE_BUTTONS)
    return None


def handlers() -> list[BaseHandler]:
    stop = CallbackQueryHandler(cancel, r"^escrow:stop$")
    buttons_only = [stop, MessageHandler(text_input(), use_buttons)]
    group = "|".join(TABS)
    return [
        flow(
            "escrow_new",
            entry_points=[CallbackQueryHandler(new_escrow, r"^escrow:new$")],
            states={
                HANDLE: [MessageHandler(text_input(), handle_typed), stop],
                CURRENCY: [
                    CallbackQueryHandler(pick_currency, r"^escrow:cur:"),
                    CallbackQueryHandler(seller_rating, r"^escrow:seller_rating$"),
                    CallbackQueryHandler(back_to_card, r"^escrow:card$"),
                    *buttons_only,
                ],
                AMOUNT: [MessageHandler(text_input(), amount_typed), stop],
                DESCRIPTION: [MessageHandler(text_input(), description_typed), stop],
                FEE_SPLIT: [CallbackQueryHandler(pick_split, r"^escrow:split:"), *buttons_only],
                PAYMENT: [CallbackQueryHandler(pick_method, r"^escrow:method:"), *buttons_only],
                CONFIRM: [CallbackQueryHandler(confirm, r"^escrow:confirm$"), *buttons_only],
            },
        ),
        CommandHandler("escrow", open_list),
        CallbackQueryHandler(
            open_list, rf"^escrow:list(:({group})(:[0-9a-f]{{1,16}}\.[0-9a-f]{{1,16}})?)?$"
        ),
        CallbackQueryHandler(open_view, r"^escrow:view:"),
        CallbackQueryHandler(act, r"^escrow:act:"),
    ]


__all__ = ["handlers", "render_list", "render_view"]
