"""Exchange: crypto → naira and naira → crypto at a locked rate, and the order history.

The flow (SCREENS.md): pick → amount → destination → quote (rate lock) → confirm.
Round trips: 1 to open (`exchange_context`, cached for the steps), 0 to pick, 0 for the
amount, 1 to lock the quote (`lock_rate`), 1 to confirm (`execute_exchange`): 3 in all.
The history is a screen of its own, one round trip per page.

Where the proceeds go: `execute_exchange` credits the user's to-currency wallet and
nothing else (lock_rate records no destination), so that wallet is the one destination
offered; sending it on to a bank account or address is a cashout, from the wallet.

Restart-proof: the user's choices so far (pair, amount, quoted order) are `Choices`, kept
in user_data beside the cache (`cache.keep_choices`) and so persisted (bot.persistence);
the screen context stays in the cache, never persisted. A step that finds the context
gone (a restart, an eviction) fetches it again, 1 round trip, and carries on from the
choices instead of answering "expired".
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, localcontext

from telegram import InlineKeyboardMarkup, Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, MessageHandler

from bot import cache
from bot.data.errors import DomainError, InsufficientFunds, QuoteExpired, StaleRate
from bot.data.exchange import (
    ExchangeContext,
    ExchangeOrder,
    ExchangePage,
    ExchangeResult,
    OpenOrder,
    Pair,
    Quote,
    exchange_context,
    exchange_history,
    execute_exchange,
    lock_rate,
)
from bot.data.rows import PageCursor
from bot.handlers.menu import MENU
from bot.handlers.ui import (
    BLOCKED,
    END,
    EXPIRED,
    FLOW_TIMEOUT_SECONDS,
    NOT_REGISTERED,
    Context,
    alert,
    args,
    button,
    cancel,
    esc,
    flow,
    keyboard,
    pool,
    show,
    text_input,
)
from bot.money import FIAT_SYMBOLS, AmountError, format_amount, format_usd, parse_amount

FLOW = "exchange"
PICK, AMOUNT, DESTINATION, CONFIRM = "pick", "amount", "destination", "confirm"

NAIRA = "NGN"
TO_WALLET = "wallet"  # the one destination execute_exchange pays to

OPEN = button("⬅ Exchange", "exchange", "open")
CANCEL = button("✖ Cancel", "exchange", "cancel")
HISTORY = button("📜 History", "exchange", "history")

NOT_OPEN = (
    "This quote is no longer open here: it was already confirmed, replaced, or the exchange "
    "was closed. Send /exchange to see where things stand."
)
NOT_OFFERED = "That exchange is not offered right now."


@dataclass(frozen=True, slots=True)
class Choices:
    """What the user chose so far: kept until the flow ends, and persisted (bot.persistence
    knows it as "exchange.Choices"), so a restarted bot carries on from it."""

    at: datetime  # the flow's last step: a flow restored after its timeout has lapsed
    from_currency: str | None = None
    to_currency: str | None = None
    amount: Decimal | None = None
    order_id: int | None = None  # the quote its Confirm button carries


@dataclass(frozen=True, slots=True)
class Session:
    """One step's view: the context (cached, or fetched again) and the choices so far."""

    ctx: ExchangeContext
    pair: Pair | None = None
    amount: Decimal | None = None


# --- formatting -------------------------------------------------------------------


def _decimals(ctx: ExchangeContext, currency: str) -> int:
    wallet = ctx.wallet(currency)
    if wallet is not None:
        return wallet.decimals
    return 2 if currency in FIAT_SYMBOLS else 18


def _money(ctx: ExchangeContext, amount: Decimal, currency: str) -> str:
    return format_amount(amount, currency, _decimals(ctx, currency))


def _percent(rate: Decimal) -> str:
    return f"{(rate * 100).normalize():f}%"


def _clock(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%H:%M:%S UTC")


def _day(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%d %b %H:%M UTC")


def _duration(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 48 * 3600:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"


def _age(seconds: int | None) -> str:
    if seconds is None:
        return "no price yet"
    if seconds < 60:  # a rate stamped a moment ahead of the database clock is fresh, too
        return "updated just now"
    return f"updated {_duration(seconds)} ago"


def _crypto(pair: Pair) -> str:
    return pair.from_currency if pair.to_currency == NAIRA else pair.to_currency


def _label(pair: Pair) -> str:
    return f"{pair.from_currency} → {pair.to_currency}"


def _quotable(ctx: ExchangeContext, crypto: str) -> bool:
    """Whether both legs a quote for `crypto` needs have a rate recent enough (as fetched)."""
    legs = (ctx.rate(crypto, "USD"), ctx.rate("USD", NAIRA))
    return all(leg is not None and not leg.stale for leg in legs)


def _naira_price(ctx: ExchangeContext, rate: Decimal, pair: Pair) -> str:
    """A stored rate (to-currency per from-currency) as the naira price of one crypto unit.

    Naira → crypto rates are stored as crypto per naira, cut at 18 decimals; their inverse
    is only that exact to about 10 digits, so it is shown rounded there, as approximate.
    """
    if pair.to_currency == NAIRA:
        return _money(ctx, rate, NAIRA)
    with localcontext() as c:
        c.prec, c.rounding = 10, ROUND_HALF_UP
        price = Decimal(1) / rate
    return "≈" + _money(ctx, price, NAIRA)


def render_exchange(ctx: ExchangeContext) -> str:
    lines = ["🔁 <b>Exchange</b>", "", "<b>Your wallets</b>"]
    lines += [format_amount(w.available, w.currency, w.decimals) for w in ctx.wallets]

    lines += ["", "<b>Rates</b>"]
    for r in ctx.rates:
        if r.rate is None:
            lines.append(f"{esc(r.base)}: no price yet")
            continue
        if r.quote == "USD":
            price = f"1 {esc(r.base)} = {format_usd(r.rate)}"
        else:
            price = f"$1 = {format_amount(r.rate, r.quote, _decimals(ctx, r.quote))}"
        lines.append(f"{price} · {_age(r.age_seconds)}")

    limit = _duration(ctx.rate_max_age_seconds)
    naira = ctx.rate("USD", NAIRA)
    cryptos = list(dict.fromkeys(_crypto(p) for p in ctx.pairs))
    if naira is None or naira.stale:
        lines += [
            "",
            f"⚠️ The naira rate is out of date ({_age(naira.age_seconds if naira else None)}; "
            f"a quote needs one under {limit} old), so no quote can be made right now. "
            "Please try again later.",
        ]
    elif stale := [c for c in cryptos if not _quotable(ctx, c)]:
        lines += [
            "",
            f"⚠️ No quote right now for {', '.join(stale)}: "
            f"the price is missing or more than {limit} old.",
        ]

    if ctx.open_orders:
        lines += ["", f"<b>Open orders</b> ({ctx.open_orders_count})"]
        lines += [_open_order(ctx, o) for o in ctx.open_orders]

    offered = [p for p in ctx.pairs if _quotable(ctx, _crypto(p))]
    lines += ["", "Pick what to exchange:" if offered else "No exchange is possible right now."]
    return "\n".join(lines)


def _open_order(ctx: ExchangeContext, o: OpenOrder) -> str:
    status = o.status.value.replace("_", " ")
    if o.status == "quoted":
        lapsed = o.rate_locked_until <= ctx.as_of
        status = "quote lapsed" if lapsed else f"quoted until {_clock(o.rate_locked_until)}"
    return (
        f"#{o.id} {_money(ctx, o.from_amount, o.from_currency)} → "
        f"{_money(ctx, o.to_amount, o.to_currency)} · {status}"
    )


def exchange_keyboard(ctx: ExchangeContext) -> InlineKeyboardMarkup:
    rows = []
    by_crypto: dict[str, list] = {}
    for p in ctx.pairs:
        crypto = _crypto(p)
        if _quotable(ctx, crypto):
            by_crypto.setdefault(crypto, []).append(
                button(_label(p), "exchange", "pick", p.from_currency, p.to_currency)
            )
    rows += by_crypto.values()
    rows.append([HISTORY, MENU])
    return keyboard(*rows)


def render_amount_prompt(ctx: ExchangeContext, pair: Pair) -> str:
    cur = pair.from_currency
    have = ctx.wallet(cur).available
    lines = [
        f"🔁 <b>{_label(pair)}</b>",
        "",
        f"How much {cur} do you want to exchange? Send the amount, "
        f"from {_money(ctx, pair.min_amount, cur)} to {_money(ctx, pair.max_amount, cur)}.",
        f"Your {cur} wallet has {_money(ctx, have, cur)}.",
    ]
    if have < pair.min_amount:
        lines.append(f"That is below the minimum: top up your {cur} wallet first.")
    return "\n".join(lines)


def render_destination(ctx: ExchangeContext, pair: Pair, amount: Decimal) -> str:
    return "\n".join(
        [
            f"🔁 <b>{_label(pair)}</b>",
            "",
            f"You exchange {_money(ctx, amount, pair.from_currency)}.",
            f"Where should the {pair.to_currency} go?",
            "",
            "The next step locks the rate and shows exactly what you get.",
            f"(To send {pair.to_currency} on to a bank account or an address, "
            "cash out from 💼 Wallet afterwards.)",
        ]
    )


def render_quote(ctx: ExchangeContext, pair: Pair, q: Quote) -> str:
    to_cur = q.to_currency
    crypto = _crypto(pair)
    to_dec = _decimals(ctx, to_cur)
    at_market = q.from_amount * q.market_rate
    # What the markup (and the rounding toward the platform) costs, in what the user gets.
    markup = max(at_market - q.to_amount, Decimal(0)).quantize(
        Decimal(1).scaleb(-to_dec), rounding=ROUND_DOWN
    )
    lock = (q.rate_locked_until - q.created_at) // timedelta(seconds=1)

    return "\n".join(
        [
            "🔒 <b>Your quote</b>",
            "",
            f"You give: <b>{_money(ctx, q.from_amount, q.from_currency)}</b>",
            f"You get: <b>{_money(ctx, q.to_amount, to_cur)}</b>, into your {to_cur} wallet",
            "",
            f"Rate: 1 {crypto} = {_naira_price(ctx, q.rate, pair)}",
            f"Market: 1 {crypto} = {_naira_price(ctx, q.market_rate, pair)}, "
            f"less our {_percent(q.markup_rate)} markup",
            f"Markup: {_money(ctx, markup, to_cur)}",
            "",
            f"⏳ The rate is locked until <b>{_clock(q.rate_locked_until)}</b> "
            f"({_duration(lock)}). Confirm before then.",
        ]
    )


def quote_keyboard(q: Quote) -> InlineKeyboardMarkup:
    return keyboard([button("✅ Confirm", "exchange", "confirm", q.order_id)], [OPEN, CANCEL])


def render_expired(ctx: ExchangeContext, pair: Pair, amount: Decimal, err: QuoteExpired) -> str:
    return "\n".join(
        [
            "⏰ <b>This quote has expired</b>",
            "",
            f"The rate was locked until {_clock(err.expired_at)}. Nothing was exchanged.",
            f"Get a new quote for {_money(ctx, amount, pair.from_currency)} → "
            f"{pair.to_currency} at the current rate?",
        ]
    )


def render_result(ctx: ExchangeContext, pair: Pair, r: ExchangeResult) -> str:
    crypto = _crypto(pair)
    return "\n".join(
        [
            "✅ <b>Exchanged</b>",
            "",
            f"You gave {_money(ctx, r.from_amount, r.from_currency)} and got "
            f"<b>{_money(ctx, r.to_amount, r.to_currency)}</b>, "
            f"at 1 {crypto} = {_naira_price(ctx, r.rate, pair)}.",
            f"Order #{r.order_id} · completed {_clock(r.completed_at)}",
            "",
            f"{r.from_currency} wallet: {_money(ctx, r.from_available, r.from_currency)}",
            f"{r.to_currency} wallet: {_money(ctx, r.to_available, r.to_currency)}",
        ]
    )


STATUS_LABELS = {
    "quoted": "quote, not confirmed",
    "awaiting_payment": "awaiting payment",
    "paid": "paid",
    "underpaid": "underpaid",
    "completed": "✅ completed",
    "expired": "⏰ expired",
    "cancelled": "cancelled",
    "failed": "❌ failed",
}


def _history_line(o: ExchangeOrder) -> str:
    give = format_amount(o.from_amount, o.from_currency, o.from_decimals)
    get = format_amount(o.to_amount, o.to_currency, o.to_decimals)
    status = STATUS_LABELS.get(o.status.value, o.status.value)
    return f"#{o.id} · {_day(o.created_at)}\n{give} → {get} · {status}"


def render_history(page: ExchangePage, first: bool) -> str:
    title = "📜 <b>Exchange history</b>" + ("" if first else " (older)")
    if not page.orders:
        return title + "\n\n" + ("No exchanges yet." if first else "No older exchanges.")
    return title + "\n\n" + "\n\n".join(_history_line(o) for o in page.orders)


def history_keyboard(page: ExchangePage, first: bool) -> InlineKeyboardMarkup:
    nav = []
    if not first:
        nav.append(button("« Newest", "exchange", "history"))
    if page.next_before is not None:
        older = page.next_before.encode()
        nav.append(button("Older ›", "exchange", "history", older))  # noqa: RUF001
    return keyboard(nav, [OPEN, MENU])


# --- the flow ---------------------------------------------------------------------


def _fetch(update: Update, context: Context):
    telegram_id = update.effective_user.id
    return lambda: exchange_context(pool(context), telegram_id=telegram_id)


def _now() -> datetime:
    return datetime.now(UTC)


def _choose(context: Context, **changes: object) -> None:
    """Keep what the user chose at this step (0 round trips; persisted with user_data)."""
    kept = cache.choices(context.user_data, FLOW) or Choices(at=_now())
    cache.keep_choices(context.user_data, FLOW, replace(kept, at=_now(), **changes))


async def _refused(update: Update, context: Context, ctx: ExchangeContext | None) -> bool:
    """Whether the user may not exchange (unknown, not onboarded, blocked): then said."""
    if ctx is not None and ctx.onboarding_complete and not ctx.is_blocked:
        return False
    cache.drop(context.user_data, FLOW)
    await show(update, BLOCKED if ctx is not None and ctx.is_blocked else NOT_REGISTERED)
    return True


async def _show_fresh(update: Update, context: Context, note: str | None = None) -> object:
    """Fetch the context again (1 round trip) and show the exchange screen, after `note`:
    the flow starts over, nothing chosen."""
    ctx = await cache.open_flow(context.user_data, FLOW, _fetch(update, context))
    if await _refused(update, context, ctx):
        return END
    cache.keep_choices(context.user_data, FLOW, Choices(at=_now()))
    text = render_exchange(ctx)
    if note:
        text = f"⚠️ {note}\n\n{text}"
    await show(update, text, exchange_keyboard(ctx))
    return PICK


async def open_exchange(update: Update, context: Context) -> object:
    """`/exchange` and the menu's Exchange button: the screen, and the flow's context."""
    return await _show_fresh(update, context)


async def _session(update: Update, context: Context) -> Session | None:
    """The context and the choices so far. The context is the cached one (0 round trips)
    or, when it was dropped (a restart, an eviction), fetched again (1 round trip): the
    flow carries on from the kept choices. None when there is nothing to carry on from
    (EXPIRED shown) or the user may no longer exchange (said)."""
    kept = cache.choices(context.user_data, FLOW)
    # A flow restored after a restart has no timeout job: its age says whether it lapsed.
    if kept is None or _now() - kept.at > timedelta(seconds=FLOW_TIMEOUT_SECONDS):
        cache.drop(context.user_data, FLOW)
        await show(update, EXPIRED)
        return None
    ctx = cache.cached(context.user_data, FLOW)
    if ctx is None:
        ctx = await cache.open_flow(context.user_data, FLOW, _fetch(update, context))
        if await _refused(update, context, ctx):
            return None
    cache.keep_choices(context.user_data, FLOW, replace(kept, at=_now()))
    pair = None
    if kept.from_currency is not None and kept.to_currency is not None:
        pair = ctx.pair(kept.from_currency, kept.to_currency)  # None: no longer offered
    return Session(ctx, pair, kept.amount)


async def pick(update: Update, context: Context) -> object:
    """A direction button: ask for the amount."""
    session = await _session(update, context)
    if session is None:
        return END
    ctx = session.ctx
    parts = args(update)
    pair = ctx.pair(parts[0], parts[1]) if len(parts) == 2 else None
    if pair is None or ctx.wallet(pair.from_currency) is None:
        await alert(update, NOT_OFFERED)
        return None
    if not _quotable(ctx, _crypto(pair)):
        await alert(update, f"The {_crypto(pair)} rate is out of date: no quote right now.")
        return None
    _choose(
        context,
        from_currency=pair.from_currency,
        to_currency=pair.to_currency,
        amount=None,
        order_id=None,
    )
    await show(update, render_amount_prompt(ctx, pair), keyboard([OPEN, CANCEL]))
    return AMOUNT


def _check_amount(ctx: ExchangeContext, pair: Pair, text: str) -> Decimal:
    """The typed amount, or AmountError saying why not: pure, from the cached context."""
    cur = pair.from_currency
    wallet = ctx.wallet(cur)
    amount = parse_amount(text, wallet.decimals)
    if amount < pair.min_amount:
        raise AmountError(f"The minimum for {_label(pair)} is {_money(ctx, pair.min_amount, cur)}.")
    if amount > pair.max_amount:
        raise AmountError(f"The maximum for {_label(pair)} is {_money(ctx, pair.max_amount, cur)}.")
    if amount > wallet.available:
        raise AmountError(
            f"That is more than your {cur} wallet holds: {_money(ctx, wallet.available, cur)}."
        )
    return amount


async def amount(update: Update, context: Context) -> object:
    """The typed amount: checked against the cached limits and balance, 0 round trips."""
    session = await _session(update, context)
    if session is None:
        return END
    ctx, pair = session.ctx, session.pair
    if pair is None:
        return await _show_fresh(update, context, NOT_OFFERED)
    try:
        value = _check_amount(ctx, pair, update.effective_message.text or "")
    except AmountError as e:
        text = f"⚠️ {esc(e)}\n\n" + render_amount_prompt(ctx, pair)
        await show(update, text, keyboard([OPEN, CANCEL]))
        return None
    _choose(context, amount=value, order_id=None)
    await show(
        update,
        render_destination(ctx, pair, value),
        keyboard(
            [button(f"💼 My {pair.to_currency} wallet", "exchange", "dest", TO_WALLET)],
            [OPEN, CANCEL],
        ),
    )
    return DESTINATION


async def destination(update: Update, context: Context) -> object:
    """A destination button: lock the rate."""
    session = await _session(update, context)
    if session is None:
        return END
    if session.pair is None or session.amount is None:
        return await _show_fresh(update, context, NOT_OFFERED)
    if args(update) != [TO_WALLET]:
        await alert(update, "That destination is not offered.")
        return None
    return await _lock(update, context, session)


async def new_quote(update: Update, context: Context) -> object:
    """After an expired quote: lock again for the same amount (1 round trip)."""
    session = await _session(update, context)
    if session is None:
        return END
    if session.pair is None or session.amount is None:
        return await _show_fresh(update, context, NOT_OFFERED)
    return await _lock(update, context, session)


async def _lock(update: Update, context: Context, session: Session) -> object:
    ctx, pair = session.ctx, session.pair
    try:
        q = await lock_rate(
            pool(context),
            telegram_id=update.effective_user.id,
            from_currency=pair.from_currency,
            to_currency=pair.to_currency,
            amount=session.amount,
        )
    except StaleRate as e:
        cache.drop(context.user_data, FLOW)
        await show(
            update,
            f"⚠️ {esc(e.message())} Please try again in a few minutes.",
            keyboard([button("🔁 Exchange", "exchange", "open"), MENU]),
        )
        return END
    except DomainError as e:
        # Limits, pairs or the user changed since the screen was fetched: show it as it is now.
        return await _show_fresh(update, context, esc(e.message()))
    _choose(context, order_id=q.order_id)
    await show(update, render_quote(ctx, pair, q), quote_keyboard(q))
    return CONFIRM


async def confirm(update: Update, context: Context) -> object:
    """Confirm: execute the locked quote (1 round trip). An entry point too, so that a press
    arriving after the flow ended (a double press) is answered, and never executes twice.
    After a restart, the context is fetched again first (1 more round trip)."""
    kept = cache.choices(context.user_data, FLOW)
    parts = args(update)
    order_id = int(parts[0]) if len(parts) == 1 and parts[0].isdigit() else None
    if kept is None or order_id is None or kept.order_id != order_id:
        await alert(update, NOT_OPEN)
        return None
    session = await _session(update, context)
    if session is None:
        return END
    if session.pair is None or session.amount is None:
        return await _show_fresh(update, context, NOT_OFFERED)
    ctx, pair = session.ctx, session.pair
    try:
        result = await execute_exchange(
            pool(context), telegram_id=update.effective_user.id, order_id=order_id
        )
    except QuoteExpired as e:
        _choose(context, order_id=None)
        await show(
            update,
            render_expired(ctx, pair, session.amount, e),
            keyboard([button("🔄 New quote", "exchange", "requote")], [OPEN, CANCEL]),
        )
        return CONFIRM
    except InsufficientFunds as e:
        cur = e.currency
        note = (
            f"Your {cur} balance changed since this exchange began: "
            f"{_money(ctx, e.available, cur)} is available now, and it needs "
            f"{_money(ctx, e.needed, cur)}. Nothing was exchanged."
        )
        return await _show_fresh(update, context, note)
    except DomainError as e:
        return await _show_fresh(update, context, esc(e.message()))
    cache.drop(context.user_data, FLOW)
    await show(
        update,
        render_result(ctx, pair, result),
        keyboard([button("🔁 Exchange again", "exchange", "open"), HISTORY], [MENU]),
    )
    return END


async def history(update: Update, context: Context) -> None:
    """The history button, and Older: one page of orders, 1 round trip."""
    parts = args(update)
    before = None
    if parts:
        try:
            before = PageCursor.decode(parts[0])
        except (ValueError, OverflowError):
            await alert(update, "That page is no longer available. Open the history again.")
            return
    telegram_id = update.effective_user.id
    page = await exchange_history(pool(context), telegram_id=telegram_id, before=before)
    first = before is None
    await show(update, render_history(page, first), history_keyboard(page, first))


def handlers() -> list[BaseHandler]:
    picking = CallbackQueryHandler(pick, pattern=r"^exchange:pick:")
    cancelling = CallbackQueryHandler(cancel, pattern=r"^exchange:cancel$")
    return [
        flow(
            FLOW,
            entry_points=[
                CommandHandler("exchange", open_exchange),
                CallbackQueryHandler(open_exchange, pattern=r"^exchange:open$"),
                CallbackQueryHandler(confirm, pattern=r"^exchange:confirm:"),
            ],
            states={
                PICK: [picking, cancelling],
                AMOUNT: [MessageHandler(text_input(), amount), picking, cancelling],
                DESTINATION: [
                    CallbackQueryHandler(destination, pattern=r"^exchange:dest:"),
                    picking,
                    cancelling,
                ],
                CONFIRM: [
                    CallbackQueryHandler(new_quote, pattern=r"^exchange:requote$"),
                    picking,
                    cancelling,
                ],
            },
        ),
        # Outside the flow: a history page ends the flow (its fallback) and shows here.
        CallbackQueryHandler(history, pattern=r"^exchange:history(:[0-9a-f.]+)?$"),
    ]
