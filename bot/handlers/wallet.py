"""The wallet screen and its two cashout flows: crypto to an address, naira to a bank account.

One ConversationHandler. `/wallet` or the Wallet button opens the wallet screen
and fetches the flow's context (`wallet_context`: 1 round trip); every step
after that reads it from the cache (0); Confirm calls `request_cashout` (1),
which re-checks balance, limits and destination under lock whatever the cache
said. The idempotency key is made when the confirm screen is shown, so a second
press of the same Confirm replays the first cashout instead of making another.
A step that finds the context gone mid-flow (evicted when the user's balances
changed in another process, see bot.cache.Invalidator) refetches it (1) and shows
the wallet as it stands now, instead of an expired screen.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, Decimal

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, MessageHandler

from bot import cache
from bot.data.errors import AboveLimit, BelowMinimum, DomainError, InsufficientFunds
from bot.data.wallet import (
    BankDestination,
    Cashout,
    CryptoDestination,
    Wallet,
    WalletContext,
    request_cashout,
    wallet_context,
)
from bot.handlers.menu import MENU
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
    NETWORK_LABELS,
    AddressError,
    AmountError,
    BankAccountError,
    format_amount,
    format_usd,
    parse_amount,
    validate_address,
    validate_nuban,
)

log = logging.getLogger(__name__)

FLOW = "wallet"
# user_data key: the requests of confirmed cashouts by idempotency key, so a late second
# press of a Confirm button replays its cashout (never a new one). Kept outside the flow
# cache, which completion drops.
DONE = "wallet_confirmed"
DONE_KEPT = 5

# States, named.
WALLET = "wallet"
CURRENCY = "currency"
AMOUNT = "amount"
NETWORK = "network"
ADDRESS = "address"
BANK = "bank"
BANK_PICK = "bank_pick"
ACCOUNT_NUMBER = "account_number"
HOLDER_CHECK = "holder_check"
HOLDER_NAME = "holder_name"
LABEL = "label"
CONFIRM = "confirm"

BANKS_PER_PAGE = 12
MAX_HOLDER_NAME = 100  # what the contacts area allows for a saved account's name
MAX_LABEL = 64  # the schema's limit on a saved destination's label

CASH_OUT_CRYPTO = button("🪙 Cash out crypto", "wallet", "crypto")
CASH_OUT_NGN = button("🏦 Cash out NGN", "wallet", "ngn")
BACK = button("⬅ Wallet", "wallet", "back")
CANCEL = button("✖ Cancel", "wallet", "cancel")
OPEN_WALLET = button("💼 Wallet", "wallet", "open")

USE_BUTTONS = "Please use the buttons above, or /cancel."
# Shown above the refetched wallet when a step finds its context gone (_refetch).
CHANGED = "🔄 Your balance changed: here is your wallet as it stands now."
REFRESHED = "🔄 This screen was out of date: here is your wallet as it stands now."
STALE_BUTTON = "That button belongs to an older screen. Please use the newest one."

# `async (bank_code, account_number) -> holder name or None`, from bot_data["account_lookup"].
AccountLookup = Callable[[str, str], Awaitable[str | None]]


@dataclass
class Draft:
    """The flow's cached context and what the user chose so far (kept in the flow cache)."""

    ctx: WalletContext
    currency: str | None = None
    amount: Decimal | None = None
    network: str | None = None
    destination: CryptoDestination | BankDestination | None = None
    # A new bank account being added, field by field.
    bank_code: str | None = None
    account_number: str | None = None
    account_name: str | None = None
    label: str | None = None
    looked_up_name: str | None = None
    key: str | None = None  # made when the confirm screen is shown

    @property
    def wallet(self) -> Wallet:
        wallet = self.ctx.wallet(self.currency or "")
        assert wallet is not None  # steps after the currency step only
        return wallet


@dataclass(frozen=True, slots=True)
class Request:
    """What one Confirm button asks for: replayed as is on a second press."""

    currency: str
    decimals: int
    amount: Decimal
    destination: CryptoDestination | BankDestination


# --- rendering ------------------------------------------------------------------


def _money(amount: Decimal, wallet: Wallet) -> str:
    return format_amount(amount, wallet.currency, wallet.decimals)


def render_wallet(ctx: WalletContext) -> str:
    name = ctx.user.first_name or ctx.user.username or "you"
    lines = [f"💼 <b>Wallet of {esc(name)}</b>", ""]
    for w in ctx.wallets:
        value = f" ≈ {format_usd(w.usd_value)}" if w.usd_value is not None else " (no rate)"
        if w.usd_value is not None and w.rate_stale:
            value += " (old rate)"
        held = f", {_money(w.held, w)} on hold" if w.held else ""
        lines.append(f"{_money(w.available, w)}{held}{value}")
    lines += ["", f"Total ≈ {format_usd(ctx.total_usd)}"]
    stale = [w.rate_at for w in ctx.wallets if w.rate_stale and w.rate_at is not None]
    if stale:
        lines.append(
            f"⚠️ USD values use rates last updated {min(stale):%Y-%m-%d %H:%M} UTC, which are out"
            " of date: they are a rough guide only, and exchanges are paused until rates refresh."
        )
    else:
        fresh = [w.rate_at for w in ctx.wallets if w.rate_at is not None]
        if fresh:
            lines.append(f"Rates as of {min(fresh):%H:%M} UTC.")
    if ctx.addresses or ctx.bank_accounts:
        lines += ["", "Saved destinations:"]
        lines += [
            f"• {esc(a.label or a.currency)} {esc(a.network)}: {esc(a.address)}"
            for a in ctx.addresses
        ]
        lines += [
            f"• {esc(b.label or b.bank_name)}: {esc(b.account_number)} ({esc(b.account_name)})"
            for b in ctx.bank_accounts
        ]
    if ctx.cashouts_in_flight:
        lines += ["", f"Cashouts in flight ({ctx.cashouts_in_flight_count}):"]
        lines += [
            f"• #{c.id} {format_amount(c.amount, c.currency, _decimals(ctx, c.currency))}"
            f" — {c.status.value}"
            for c in ctx.cashouts_in_flight
        ]
    return "\n".join(lines)


def _decimals(ctx: WalletContext, currency: str) -> int:
    wallet = ctx.wallet(currency)
    return wallet.decimals if wallet else 2


def _wallet_keyboard():
    return keyboard([CASH_OUT_CRYPTO, CASH_OUT_NGN], [MENU])


def _steps_keyboard(*rows):
    return keyboard(*rows, [BACK, CANCEL])


def cashout_fee(wallet: Wallet, amount: Decimal) -> Decimal:
    """The fee request_cashout will charge: flat + rate, rounded up to the currency's unit."""
    raw = wallet.cashout_fee_flat + amount * wallet.cashout_fee_rate
    return raw.quantize(Decimal(1).scaleb(-wallet.decimals), rounding=ROUND_CEILING)


def most_cashable(wallet: Wallet) -> Decimal:
    """The largest amount whose amount + fee the available balance covers (0 when none)."""
    unit = Decimal(1).scaleb(-wallet.decimals)
    best = ((wallet.available - wallet.cashout_fee_flat) / (1 + wallet.cashout_fee_rate)).quantize(
        unit, rounding=ROUND_DOWN
    )
    # The fee rounds up: step down until amount + fee fits (a unit or two at most).
    while best > 0 and best + cashout_fee(wallet, best) > wallet.available:
        best -= unit
    return min(max(best, Decimal(0)), wallet.cashout_max)


def _fee_terms(wallet: Wallet) -> str:
    parts = []
    if wallet.cashout_fee_flat:
        parts.append(_money(wallet.cashout_fee_flat, wallet))
    if wallet.cashout_fee_rate:
        parts.append(f"{(wallet.cashout_fee_rate * 100).normalize():f}%")
    return " + ".join(parts) or "none"


def _network_label(currency: str, network: str, wallet: Wallet | None = None) -> str:
    for n in wallet.networks if wallet else ():
        if n.network == network:
            return n.label
    return NETWORK_LABELS.get((currency, network), network)


def _account_tail(number: str) -> str:
    return f"••{number[-4:]}"


def _destination_lines(draft: Draft) -> list[str]:
    dest = draft.destination
    if isinstance(dest, CryptoDestination):
        saved = next((a for a in draft.ctx.addresses if a.id == dest.saved_address_id), None)
        label = f" ({esc(saved.label)})" if saved and saved.label else ""
        return [
            f"To: <code>{esc(dest.address)}</code>{label}",
            f"Network: {esc(_network_label(draft.currency, dest.network, draft.wallet))}",
        ]
    assert isinstance(dest, BankDestination)
    bank = _bank_name(draft.ctx, dest.bank_code)
    lines = [f"To: {esc(dest.account_name)}", f"Account: {esc(dest.account_number)} at {esc(bank)}"]
    if dest.save_label:
        lines.append(f"Saved for next time as “{esc(dest.save_label)}”")
    return lines


def _bank_name(ctx: WalletContext, code: str) -> str:
    for b in ctx.banks:
        if b.code == code:
            return b.name
    for a in ctx.bank_accounts:
        if a.bank_code == code:
            return a.bank_name
    return code


def _amount_prompt(draft: Draft) -> str:
    w = draft.wallet
    return "\n".join(
        [
            f"How much {esc(w.currency)} do you want to cash out?",
            "",
            f"Available: {_money(w.available, w)}",
            f"Limits: {_money(w.cashout_min, w)} to {_money(w.cashout_max, w)}",
            f"Fee: {_fee_terms(w)}",
            f"You can cash out up to {_money(most_cashable(w), w)}.",
            "",
            "Type the amount, e.g. 25.50.",
        ]
    )


def _result_text(cashout: Cashout, decimals: int) -> str:
    def money(amount: Decimal) -> str:
        return format_amount(amount, cashout.currency, decimals)

    lines = [
        f"✅ <b>Cashout #{cashout.id} requested</b> — {esc(cashout.status.value)}",
        "",
        f"Amount: {money(cashout.amount)}",
        f"Fee: {money(cashout.fee)}",
        f"On hold until it is paid out: {money(cashout.total)}",
        "",
    ]
    if cashout.address:
        lines.append(f"To: <code>{esc(cashout.address)}</code> ({esc(cashout.network)})")
    else:
        lines.append(f"To: {esc(cashout.account_name)}, account {esc(cashout.account_number)}")
    lines += [
        "",
        f"Available now: {money(cashout.wallet_available)}",
        f"On hold now: {money(cashout.wallet_held)}",
    ]
    if cashout.replayed:
        lines += ["", "This cashout was already requested: nothing more was taken."]
    return "\n".join(lines)


# --- the flow's cache -------------------------------------------------------------


def _draft(context: Context) -> Draft | None:
    return cache.cached(context.user_data, FLOW)


def _restart(context: Context, draft: Draft) -> Draft:
    """Back at the wallet screen: forget the choices, keep the fetched context."""
    fresh = Draft(draft.ctx)
    cache.replace(context.user_data, FLOW, fresh)
    return fresh


async def _expired(update: Update, context: Context) -> int:
    cache.drop(context.user_data, FLOW)
    await show(update, EXPIRED)
    return END


async def _refetch(update: Update, context: Context) -> object:
    """A step whose context is gone mid-flow: evicted because the user's data changed in
    another process (bot.cache.Invalidator), or lost with a restart. Refetch it (1 round
    trip) and show the wallet as it stands now, rather than an expired screen."""
    why = cache.evicted(context.user_data)
    cache.drop(context.user_data, FLOW)
    return await _open(update, context, notice=CHANGED if why == cache.CHANGED else REFRESHED)


async def _open(update: Update, context: Context, notice: str | None = None) -> object:
    """Fetch the context (1 round trip), keep it for the steps, show the wallet screen."""

    async def fetch() -> Draft | None:
        ctx = await wallet_context(pool(context), telegram_id=update.effective_user.id)
        return Draft(ctx) if ctx is not None else None

    draft = await cache.open_flow(context.user_data, FLOW, fetch)
    if draft is None or not draft.ctx.user.onboarding_complete:
        cache.drop(context.user_data, FLOW)
        await show(update, NOT_REGISTERED)
        return END
    if draft.ctx.user.is_blocked:
        cache.drop(context.user_data, FLOW)
        await show(update, BLOCKED)
        return END
    text = render_wallet(draft.ctx)
    if notice:
        text = f"{notice}\n\n{text}"
    await show(update, text, _wallet_keyboard())
    return WALLET


# --- entry and the wallet screen --------------------------------------------------


async def open_wallet(update: Update, context: Context) -> object:
    return await _open(update, context)


async def back(update: Update, context: Context) -> object:
    draft = _draft(context)
    if draft is None:
        return await _refetch(update, context)
    _restart(context, draft)
    await show(update, render_wallet(draft.ctx), _wallet_keyboard())
    return WALLET


async def cancel_button(update: Update, context: Context) -> int:
    return await cancel(update, context)


async def use_buttons(update: Update, context: Context) -> object:
    """Text where a button is expected: say so, stay in the same step (None keeps it)."""
    if _draft(context) is None:
        return await _refetch(update, context)
    await show(update, USE_BUTTONS)
    return None


# --- crypto cashout -----------------------------------------------------------------


async def crypto(update: Update, context: Context) -> object:
    draft = _draft(context)
    if draft is None:
        return await _refetch(update, context)
    draft = _restart(context, draft)
    wallets = [w for w in draft.ctx.wallets if w.kind == "crypto"]
    lines = ["🪙 <b>Cash out crypto</b>", "", "Which currency?", ""]
    lines += [f"{_money(w.available, w)}" for w in wallets]
    buttons = [button(w.currency, "wallet", "cur", w.currency) for w in wallets]
    await show(update, "\n".join(lines), _steps_keyboard(*columns(buttons, 3)))
    return CURRENCY


async def pick_currency(update: Update, context: Context) -> object:
    draft = _draft(context)
    if draft is None:
        return await _refetch(update, context)
    code = (args(update) or [""])[0]
    wallet = draft.ctx.wallet(code)
    if wallet is None or wallet.kind != "crypto":
        await alert(update, "Pick one of the currencies shown.")
        return CURRENCY
    if most_cashable(wallet) < wallet.cashout_min:
        await alert(
            update,
            f"Not enough {code} to cash out: the minimum is "
            f"{_money(wallet.cashout_min, wallet)} plus the fee, and you have "
            f"{_money(wallet.available, wallet)}.",
        )
        return CURRENCY
    draft.currency = code
    await show(update, _amount_prompt(draft), _steps_keyboard())
    return AMOUNT


def _check_amount(draft: Draft, text: str) -> Decimal:
    """The typed amount within the currency's limits and the cached balance, or AmountError."""
    w = draft.wallet
    amount = parse_amount(text, w.decimals)
    if amount < w.cashout_min:
        raise AmountError(f"The minimum cashout is {_money(w.cashout_min, w)}.")
    if amount > w.cashout_max:
        raise AmountError(f"The maximum cashout is {_money(w.cashout_max, w)}.")
    fee = cashout_fee(w, amount)
    if amount + fee > w.available:
        raise AmountError(
            f"That is more than you have: {_money(amount, w)} plus the {_money(fee, w)} fee "
            f"is {_money(amount + fee, w)}, and {_money(w.available, w)} is available. "
            f"You can cash out up to {_money(most_cashable(w), w)}."
        )
    return amount


async def amount_typed(update: Update, context: Context) -> object:
    draft = _draft(context)
    if draft is None or draft.currency is None:
        return await _refetch(update, context)
    try:
        draft.amount = _check_amount(draft, update.effective_message.text)
    except AmountError as refused:
        await show(update, f"⚠️ {esc(refused)}\nType the amount again, or /cancel.")
        return AMOUNT
    if draft.currency == "NGN":
        return await _confirm_screen(update, draft)
    networks = draft.wallet.networks
    if len(networks) == 1:
        # One way to send it: nothing to ask.
        draft.network = networks[0].network
        return await _address_prompt(update, draft)
    buttons = [button(n.label, "wallet", "net", n.network) for n in networks]
    await show(
        update,
        f"Which network should the {esc(draft.currency)} go out on?\n"
        "It must be the network of the receiving address, or the coins are lost.",
        _steps_keyboard(*columns(buttons, 1)),
    )
    return NETWORK


async def pick_network(update: Update, context: Context) -> object:
    draft = _draft(context)
    if draft is None or draft.amount is None:
        return await _refetch(update, context)
    network = (args(update) or [""])[0]
    if network not in {n.network for n in draft.wallet.networks}:
        await alert(update, "Pick one of the networks shown.")
        return NETWORK
    draft.network = network
    return await _address_prompt(update, draft)


def _saved_addresses(draft: Draft):
    return [
        a
        for a in draft.ctx.addresses
        if a.currency == draft.currency and a.network == draft.network
    ]


async def _address_prompt(update: Update, draft: Draft) -> object:
    saved = _saved_addresses(draft)
    label = _network_label(draft.currency, draft.network, draft.wallet)
    text = f"Paste the {esc(draft.currency)} address on {esc(label)} to send to."
    if saved:
        text += "\nOr pick one you saved:"
    buttons = [
        button(f"{a.label or ''} {a.address[:6]}…{a.address[-4:]}".strip(), "wallet", "addr", a.id)
        for a in saved
    ]
    await show(update, text, _steps_keyboard(*columns(buttons, 1)))
    return ADDRESS


async def address_typed(update: Update, context: Context) -> object:
    draft = _draft(context)
    if draft is None or draft.network is None:
        return await _refetch(update, context)
    try:
        address = validate_address(draft.currency, draft.network, update.effective_message.text)
    except AddressError as refused:
        await show(update, f"⚠️ {esc(refused)}\nPaste the address again, or /cancel.")
        return ADDRESS
    # The same as a saved one: keep the link, so the contact's last use is stamped.
    saved = next((a for a in _saved_addresses(draft) if a.address == address), None)
    draft.destination = CryptoDestination(draft.network, address, saved.id if saved else None)
    return await _confirm_screen(update, draft)


async def pick_address(update: Update, context: Context) -> object:
    draft = _draft(context)
    if draft is None or draft.network is None:
        return await _refetch(update, context)
    wanted = (args(update) or [""])[0]
    saved = next((a for a in _saved_addresses(draft) if str(a.id) == wanted), None)
    if saved is None:
        # Not one of this user's saved addresses for this currency and network.
        await alert(update, "That address is not one of yours for this network.")
        return ADDRESS
    draft.destination = CryptoDestination(saved.network, saved.address, saved.id)
    return await _confirm_screen(update, draft)


# --- NGN cashout --------------------------------------------------------------------


async def ngn(update: Update, context: Context) -> object:
    draft = _draft(context)
    if draft is None:
        return await _refetch(update, context)
    draft = _restart(context, draft)
    wallet = draft.ctx.wallet("NGN")
    if wallet is None:
        await alert(update, "You have no naira wallet.")
        return WALLET
    if most_cashable(wallet) < wallet.cashout_min:
        await alert(
            update,
            f"Not enough naira to cash out: the minimum is {_money(wallet.cashout_min, wallet)} "
            f"plus the fee, and you have {_money(wallet.available, wallet)}.",
        )
        return WALLET
    draft.currency = "NGN"
    return await _bank_screen(update, draft)


async def _bank_screen(update: Update, draft: Draft) -> object:
    accounts = draft.ctx.bank_accounts
    text = "🏦 <b>Cash out NGN</b>\n\n"
    text += "Which bank account?" if accounts else "You have no saved bank account yet."
    buttons = [
        button(
            f"{a.label or a.bank_name} {_account_tail(a.account_number)}", "wallet", "acct", a.id
        )
        for a in accounts
    ]
    buttons.append(button("🆕 Another account", "wallet", "add"))
    await show(update, text, _steps_keyboard(*columns(buttons, 1)))
    return BANK


async def pick_account(update: Update, context: Context) -> object:
    draft = _draft(context)
    if draft is None or draft.currency != "NGN":
        return await _refetch(update, context)
    wanted = (args(update) or [""])[0]
    saved = next((a for a in draft.ctx.bank_accounts if str(a.id) == wanted), None)
    if saved is None:
        await alert(update, "That bank account is not one of yours.")
        return BANK
    draft.destination = BankDestination(
        saved.bank_code, saved.account_number, saved.account_name, saved.id
    )
    await show(update, _amount_prompt(draft), _steps_keyboard())
    return AMOUNT


async def add_account(update: Update, context: Context) -> object:
    draft = _draft(context)
    if draft is None or draft.currency != "NGN":
        return await _refetch(update, context)
    return await _banks_page(update, draft, 0)


async def banks_page(update: Update, context: Context) -> object:
    draft = _draft(context)
    if draft is None or draft.currency != "NGN":
        return await _refetch(update, context)
    try:
        page = int((args(update) or ["0"])[0])
    except ValueError:
        page = 0
    return await _banks_page(update, draft, page)


async def _banks_page(update: Update, draft: Draft, page: int) -> object:
    banks = draft.ctx.banks
    pages = max(1, -(-len(banks) // BANKS_PER_PAGE))
    page = min(max(page, 0), pages - 1)
    draft.banks_page = page
    shown = banks[page * BANKS_PER_PAGE : (page + 1) * BANKS_PER_PAGE]
    buttons = [button(b.name, "wallet", "bank", b.code) for b in shown]
    nav = []
    if page > 0:
        nav.append(button("◀ Previous", "wallet", "banks", page - 1))
    if page < pages - 1:
        nav.append(button("Next ▶", "wallet", "banks", page + 1))
    text = "Which bank is the account at?"
    if pages > 1:
        text += f" (page {page + 1} of {pages})"
    await show(update, text, _steps_keyboard(*columns(buttons, 2), nav))
    return BANK_PICK


async def pick_bank(update: Update, context: Context) -> object:
    draft = _draft(context)
    if draft is None or draft.currency != "NGN":
        return await _refetch(update, context)
    code = (args(update) or [""])[0]
    bank = next((b for b in draft.ctx.banks if b.code == code), None)
    if bank is None:
        await alert(update, "Pick one of the banks shown.")
        return BANK_PICK
    draft.bank_code = bank.code
    await show(update, _account_number_prompt(draft), _steps_keyboard())
    return ACCOUNT_NUMBER


def _account_number_prompt(draft: Draft) -> str:
    bank = _bank_name(draft.ctx, draft.bank_code)
    return f"Type the 10-digit account number at {esc(bank)}."


async def account_number_typed(update: Update, context: Context) -> object:
    draft = _draft(context)
    if draft is None or draft.bank_code is None:
        return await _refetch(update, context)
    try:
        number = validate_nuban(update.effective_message.text)
    except BankAccountError as refused:
        await show(update, f"⚠️ {esc(refused)}\nType the account number again, or /cancel.")
        return ACCOUNT_NUMBER
    draft.account_number = number
    name = await _look_up(context, draft.bank_code, number)
    draft.looked_up_name = name
    bank = esc(_bank_name(draft.ctx, draft.bank_code))
    if name is None:
        await show(
            update,
            f"Account {number} at {bank}.\n"
            "Type the account holder's name exactly as the bank has it.",
            _steps_keyboard(),
        )
        return HOLDER_NAME
    await show(
        update,
        f"Account {number} at {bank} is in the name of <b>{esc(name)}</b>.\n"
        "Is that who you are paying?",
        _steps_keyboard(
            [
                button("✅ Yes, that's right", "wallet", "name", "yes"),
                button("✏️ No, retype the number", "wallet", "name", "no"),
            ]
        ),
    )
    return HOLDER_CHECK


async def _look_up(context: Context, bank_code: str, number: str) -> str | None:
    """The holder's name from the configured lookup (the payout provider), or None."""
    lookup: AccountLookup | None = context.bot_data.get("account_lookup")
    if lookup is None:
        return None
    try:
        name = await lookup(bank_code, number)
    except Exception:  # the provider being down must not end the flow: the user types it
        log.warning("account lookup failed for bank %s", bank_code, exc_info=True)
        return None
    try:
        return _check_holder_name(name) if name else None
    except ValueError:
        return None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _check_holder_name(text: str) -> str:
    name = _one_line(text)
    if not name:
        raise ValueError("Please type the account holder's name.")
    if len(name) > MAX_HOLDER_NAME:
        raise ValueError(f"A name can be at most {MAX_HOLDER_NAME} characters.")
    if not any(ch.isalpha() for ch in name):
        raise ValueError("A name needs letters.")
    return name


async def holder_confirmed(update: Update, context: Context) -> object:
    draft = _draft(context)
    if draft is None or draft.account_number is None:
        return await _refetch(update, context)
    if (args(update) or [""])[0] != "yes" or draft.looked_up_name is None:
        draft.account_number = draft.looked_up_name = None
        await show(update, _account_number_prompt(draft), _steps_keyboard())
        return ACCOUNT_NUMBER
    draft.account_name = draft.looked_up_name
    return await _label_prompt(update, draft)


async def holder_typed(update: Update, context: Context) -> object:
    draft = _draft(context)
    if draft is None or draft.account_number is None:
        return await _refetch(update, context)
    try:
        draft.account_name = _check_holder_name(update.effective_message.text)
    except ValueError as refused:
        await show(update, f"⚠️ {esc(refused)}\nType the holder's name again, or /cancel.")
        return HOLDER_NAME
    return await _label_prompt(update, draft)


async def _label_prompt(update: Update, draft: Draft) -> object:
    await show(
        update,
        f"Paying {esc(draft.account_name)}.\n"
        "Save this account for next time? Type a label for it (e.g. My GTBank), "
        "or press Skip to use it just this once.",
        _steps_keyboard([button("Skip", "wallet", "skip")]),
    )
    return LABEL


async def label_typed(update: Update, context: Context) -> object:
    draft = _draft(context)
    if draft is None or draft.account_name is None:
        return await _refetch(update, context)
    label = _one_line(update.effective_message.text)
    if not label:
        await show(update, "⚠️ Please type a label, or press Skip.")
        return LABEL
    if len(label) > MAX_LABEL:
        await show(update, f"⚠️ A label can be at most {MAX_LABEL} characters. Try a shorter one.")
        return LABEL
    draft.label = label
    return await _new_account_amount(update, draft)


async def skip_label(update: Update, context: Context) -> object:
    draft = _draft(context)
    if draft is None or draft.account_name is None:
        return await _refetch(update, context)
    draft.label = None
    return await _new_account_amount(update, draft)


async def _new_account_amount(update: Update, draft: Draft) -> object:
    draft.destination = BankDestination(
        draft.bank_code, draft.account_number, draft.account_name, save_label=draft.label
    )
    await show(update, _amount_prompt(draft), _steps_keyboard())
    return AMOUNT


# --- confirm ------------------------------------------------------------------------


async def _confirm_screen(update: Update, draft: Draft) -> object:
    w = draft.wallet
    fee = cashout_fee(w, draft.amount)
    total = draft.amount + fee
    # A fresh key per confirm screen: both presses of this screen's button carry it.
    draft.key = secrets.token_urlsafe(12)
    lines = [
        "🧾 <b>Check and confirm</b>",
        "",
        f"Amount: {_money(draft.amount, w)}",
        f"Fee: {_money(fee, w)}",
        f"Total from your wallet: <b>{_money(total, w)}</b>",
        *_destination_lines(draft),
        "",
        f"Balance after: {_money(w.available - total, w)}",
    ]
    if draft.currency != "NGN":
        lines += ["", "Crypto sent to a wrong address cannot be recovered."]
    await show(
        update,
        "\n".join(lines),
        keyboard([button("✅ Confirm", "wallet", "confirm", draft.key)], [BACK, CANCEL]),
    )
    return CONFIRM


def _refusal_text(refused: DomainError, decimals: int) -> str:
    """The refusal in the user's terms, its amounts formatted like every other amount."""
    currency = getattr(refused, "currency", "")

    def money(amount: Decimal) -> str:
        return format_amount(amount, currency, decimals)

    if isinstance(refused, InsufficientFunds):
        text = (
            f"Your {refused.currency} balance changed since this cashout was prepared: "
            f"{money(refused.available)} is available now, and it needs {money(refused.needed)} "
            "with the fee."
        )
    elif isinstance(refused, BelowMinimum):
        text = f"The minimum cashout is now {money(refused.minimum)}."
    elif isinstance(refused, AboveLimit):
        text = f"The maximum cashout is now {money(refused.maximum)}."
    else:
        text = refused.message()
    return f"⚠️ {esc(text)} Nothing was taken."


def _remember(context: Context, key: str, request: Request) -> None:
    done: dict[str, Request] = context.user_data.setdefault(DONE, {})
    done[key] = request
    while len(done) > DONE_KEPT:
        done.pop(next(iter(done)))


async def confirm(update: Update, context: Context) -> object:
    """Confirm: the pending cashout of this flow, or a replay of one already confirmed.

    An entry point, so a second press after the flow ended still reaches it. A press
    that is not this flow's own confirm leaves whatever flow is open (None keeps its step).
    """
    key = (args(update) or [""])[0]
    draft = _draft(context)
    current = draft is not None and draft.key is not None and draft.key == key
    if current:
        request = Request(draft.currency, draft.wallet.decimals, draft.amount, draft.destination)
    else:
        request = context.user_data.get(DONE, {}).get(key)
        if request is None and draft is not None:
            await alert(update, STALE_BUTTON)
            return None
        if request is None and cache.evicted(context.user_data):
            # Pressed after an eviction: the confirm screen's context is gone.
            return await _refetch(update, context)
        if request is None:
            return await _expired(update, context)
    try:
        cashout = await request_cashout(
            pool(context),
            telegram_id=update.effective_user.id,
            currency=request.currency,
            amount=request.amount,
            destination=request.destination,
            idempotency_key=key,
        )
    except DomainError as refused:
        if not current and draft is not None:
            await alert(update, _refusal_text(refused, request.decimals))
            return None
        # The cache is never trusted: the balance, the limits or a saved destination
        # changed since the flow opened. Say what, and show the wallet as it is now.
        cache.drop(context.user_data, FLOW)
        return await _open(update, context, notice=_refusal_text(refused, request.decimals))
    _remember(context, key, request)
    await show(update, _result_text(cashout, request.decimals), keyboard([OPEN_WALLET, MENU]))
    if not current and draft is not None:
        return None  # a replay on an old message: the flow open now goes on
    cache.drop(context.user_data, FLOW)
    return END


async def stale_button(update: Update, context: Context) -> object:
    """A wallet button of an older screen: answered, and the current step stays."""
    if _draft(context) is None:
        return await _refetch(update, context)
    await alert(update, STALE_BUTTON)
    return None


def handlers() -> list[BaseHandler]:
    # Last in every state: the area's other buttons are answered, not taken for leaving.
    common = [
        CallbackQueryHandler(back, r"^wallet:back$"),
        CallbackQueryHandler(cancel_button, r"^wallet:cancel$"),
        CallbackQueryHandler(stale_button, r"^wallet:"),
    ]
    buttons_only = [MessageHandler(text_input(), use_buttons), *common]
    return [
        flow(
            FLOW,
            entry_points=[
                CommandHandler("wallet", open_wallet),
                CallbackQueryHandler(open_wallet, r"^wallet:open$"),
                CallbackQueryHandler(confirm, r"^wallet:confirm:[A-Za-z0-9_-]+$"),
            ],
            states={
                WALLET: [
                    CallbackQueryHandler(crypto, r"^wallet:crypto$"),
                    CallbackQueryHandler(ngn, r"^wallet:ngn$"),
                    *buttons_only,
                ],
                CURRENCY: [CallbackQueryHandler(pick_currency, r"^wallet:cur:"), *buttons_only],
                AMOUNT: [MessageHandler(text_input(), amount_typed), *common],
                NETWORK: [CallbackQueryHandler(pick_network, r"^wallet:net:"), *buttons_only],
                ADDRESS: [
                    MessageHandler(text_input(), address_typed),
                    CallbackQueryHandler(pick_address, r"^wallet:addr:"),
                    *common,
                ],
                BANK: [
                    CallbackQueryHandler(pick_account, r"^wallet:acct:"),
                    CallbackQueryHandler(add_account, r"^wallet:add$"),
                    *buttons_only,
                ],
                BANK_PICK: [
                    CallbackQueryHandler(pick_bank, r"^wallet:bank:"),
                    CallbackQueryHandler(banks_page, r"^wallet:banks:"),
                    *buttons_only,
                ],
                ACCOUNT_NUMBER: [MessageHandler(text_input(), account_number_typed), *common],
                HOLDER_CHECK: [
                    CallbackQueryHandler(holder_confirmed, r"^wallet:name:"),
                    *buttons_only,
                ],
                HOLDER_NAME: [MessageHandler(text_input(), holder_typed), *common],
                LABEL: [
                    MessageHandler(text_input(), label_typed),
                    CallbackQueryHandler(skip_label, r"^wallet:skip$"),
                    *common,
                ],
                CONFIRM: buttons_only,
            },
        )
    ]
