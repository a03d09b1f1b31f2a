"""Contacts: saved crypto addresses and bank accounts; adding and deleting them.

One flow (`/contacts`, the Contacts button): the screen's context is fetched
once at entry (1 round trip) and every later step reads it from the cache
(0); saving or deleting is the one step that writes (1). After a save or a
delete the list is shown again from the cache, updated with what the movement
answered, so the user can go on without another fetch.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from datetime import UTC, datetime

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, MessageHandler

from bot import cache
from bot.data.contacts import (
    MAX_ACCOUNT_NAME,
    MAX_LABEL,
    ContactsContext,
    OfferedNetwork,
    SavedAddress,
    SavedBankAccount,
    contacts_context,
    delete_destination,
    save_address,
    save_bank_account,
)
from bot.data.enums import DestinationKind
from bot.data.errors import DomainError, Duplicate, NotFound
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
    columns,
    esc,
    flow,
    keyboard,
    pool,
    show,
    text_input,
)
from bot.money import AddressError, BankAccountError, validate_address, validate_nuban

FLOW = "contacts"
# The add flow's answers so far, kept beside the screen's context (dropped with it).
DRAFT = "contacts_draft"  # dropped with the flow (bot.cache.drop)

LIST, CURRENCY, NETWORK, ADDRESS, ADDRESS_LABEL, BANK, ACCOUNT, HOLDER, BANK_LABEL, DELETE = (
    "list", "currency", "network", "address", "address_label", "bank", "account", "holder",
    "bank_label", "delete",
)  # fmt: skip

# Entries per page of the list, and banks per page of the bank picker: a page's
# text and buttons stay well inside Telegram's limits.
LIST_PAGE = 8
BANK_PAGE = 10

KINDS = {
    "crypto_address": DestinationKind.CRYPTO_ADDRESS,
    "bank_account": DestinationKind.BANK_ACCOUNT,
}
NOUN = {DestinationKind.CRYPTO_ADDRESS: "address", DestinationKind.BANK_ACCOUNT: "bank account"}

STALE_BUTTON = "That button belongs to an older screen; use the newest one."

# Typographic arrows and plus, meant as such.
PREV, NEXT, PLUS = "‹", "›", "➕"  # noqa: RUF001

BACK = button("✖ Cancel", FLOW, "back")
SKIP = button(f"Skip {NEXT}", FLOW, "skip")


class InputError(ValueError):
    """Typed text a step refuses; `str()` says why, for the user."""


# --- rendering ----------------------------------------------------------------


def _used(at: datetime | None) -> str:
    return f"last used {at.astimezone(UTC):%d %b %Y}" if at else "never used"


def _network_label(ctx: ContactsContext, currency: str, network: str) -> str:
    for n in ctx.networks:
        if (n.currency, n.network) == (currency, network):
            return n.label
    return network


def _entries(ctx: ContactsContext) -> list[SavedAddress | SavedBankAccount]:
    return [*ctx.addresses, *ctx.bank_accounts]


def _kind(entry: SavedAddress | SavedBankAccount) -> DestinationKind:
    if isinstance(entry, SavedAddress):
        return DestinationKind.CRYPTO_ADDRESS
    return DestinationKind.BANK_ACCOUNT


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _describe(ctx: ContactsContext, entry: SavedAddress | SavedBankAccount) -> str:
    """One saved destination in two lines, everything the user typed escaped."""
    if isinstance(entry, SavedAddress):
        network = _network_label(ctx, entry.currency, entry.network)
        name = esc(entry.label) if entry.label else f"{esc(entry.currency)} address"
        return (
            f"<b>{name}</b> · {esc(entry.currency)} on {esc(network)}\n"
            f"    <code>{esc(entry.address)}</code> · {_used(entry.last_used_at)}"
        )
    # Without a label the bank names it; with one, the bank still shows.
    title = f"<b>{esc(entry.label or entry.bank_name)}</b>"
    if entry.label:
        title += f" · {esc(entry.bank_name)}"
    return (
        f"{title}\n"
        f"    <code>{esc(entry.account_number)}</code> · {esc(entry.account_name)}"
        f" · {_used(entry.last_used_at)}"
    )


def render_list(ctx: ContactsContext, page: int, note: str | None = None):
    """The contacts screen: one page of saved destinations with their delete buttons."""
    entries = _entries(ctx)
    pages = max(1, -(-len(entries) // LIST_PAGE))
    page = min(max(page, 0), pages - 1)
    first = page * LIST_PAGE
    shown = entries[first : first + LIST_PAGE]
    lines = [note, ""] if note else []
    lines.append("📇 <b>Contacts</b>")
    lines.append(
        _plural(ctx.address_count, "crypto address", "crypto addresses")
        + ", "
        + _plural(ctx.bank_account_count, "bank account", "bank accounts")
    )
    if not entries:
        lines += ["", "Nothing saved yet. Saved destinations make cashouts quicker."]
    heading = None
    for n, entry in enumerate(shown, start=first + 1):
        kind = _kind(entry)
        if kind != heading:
            heading = kind
            title = (
                "Crypto addresses" if kind == DestinationKind.CRYPTO_ADDRESS else "Bank accounts"
            )
            lines += ["", f"<u>{title}</u>"]
        else:
            lines.append("")
        lines.append(f"{n}. {_describe(ctx, entry)}")
    hidden = ctx.address_count + ctx.bank_account_count - len(entries)
    if hidden > 0:
        lines += ["", f"{hidden} less recently used not shown here."]
    deletes = [
        button(f"🗑 {n}", FLOW, "del", _kind(e).value, e.id)
        for n, e in enumerate(shown, start=first + 1)
    ]
    paging = []
    if page > 0:
        paging.append(button(f"{PREV} Back", FLOW, "page", page - 1))
    if page < pages - 1:
        paging.append(button(f"More {NEXT}", FLOW, "page", page + 1))
    markup = keyboard(
        *columns(deletes, 4),
        paging,
        [
            button(f"{PLUS} Address", FLOW, "addaddr"),
            button(f"{PLUS} Bank account", FLOW, "addbank"),
        ],
        [MENU],
    )
    return "\n".join(lines), markup


def _currencies(ctx: ContactsContext) -> list[str]:
    seen: list[str] = []
    for n in ctx.networks:
        if n.currency not in seen:
            seen.append(n.currency)
    return seen


def _networks_of(ctx: ContactsContext, currency: str) -> list[OfferedNetwork]:
    return [n for n in ctx.networks if n.currency == currency]


def _address_prompt(ctx: ContactsContext, draft: dict) -> str:
    network = _network_label(ctx, draft["currency"], draft["network"])
    return (
        f"Send the <b>{esc(draft['currency'])}</b> address on <b>{esc(network)}</b>.\n"
        "Check it twice: coins sent to a wrong address are lost."
    )


LABEL_PROMPT = (
    f"Give it a label of up to {MAX_LABEL} characters (e.g. <i>Binance</i>), or press Skip."
)


def _bank_picker(ctx: ContactsContext, page: int):
    pages = max(1, -(-len(ctx.banks) // BANK_PAGE))
    page = min(max(page, 0), pages - 1)
    shown = ctx.banks[page * BANK_PAGE : (page + 1) * BANK_PAGE]
    paging = []
    if page > 0:
        paging.append(button(f"{PREV} Back", FLOW, "banks", page - 1))
    if page < pages - 1:
        paging.append(button(f"More {NEXT}", FLOW, "banks", page + 1))
    text = f"🏦 Which bank is the account with? (page {page + 1} of {pages})"
    markup = keyboard(
        *columns((button(b.name, FLOW, "bank", b.code) for b in shown), 2), paging, [BACK]
    )
    return text, markup


# --- input rules ----------------------------------------------------------------


def _one_line(text: str) -> str:
    """Typed text on one line: whitespace runs (newlines too) become one space."""
    return " ".join(text.split())


def _has_control(text: str) -> bool:
    # Format characters (Cf) stay allowed: emoji sequences are joined with U+200D.
    return any(unicodedata.category(ch) == "Cc" for ch in text)


def clean_label(text: str) -> str:
    """A label as typed, on one line. Emoji-only labels are fine: it is the user's own name
    for the destination, shown escaped; only the schema's length limit applies."""
    label = _one_line(text)
    if not label:
        raise InputError("Please type a label, or press Skip.")
    if len(label) > MAX_LABEL:
        raise InputError(
            f"A label can be at most {MAX_LABEL} characters; this one has {len(label):,}."
        )
    if _has_control(label):
        raise InputError("A label cannot contain control characters.")
    return label


def clean_holder(text: str) -> str:
    """The account holder's name as on the bank's records: it has letters."""
    name = _one_line(text)
    if len(name) > MAX_ACCOUNT_NAME:
        raise InputError(
            f"A holder name can be at most {MAX_ACCOUNT_NAME} characters; "
            f"this one has {len(name):,}."
        )
    if not any(ch.isalpha() for ch in name) or _has_control(name):
        raise InputError("Please type the account holder's name as the bank has it.")
    return name


# --- steps ----------------------------------------------------------------------


async def _expired(update: Update, context: Context) -> int:
    cache.drop(context.user_data, FLOW)
    cache.drop(context.user_data, DRAFT)
    await show(update, EXPIRED)
    return END


def _draft(context: Context) -> dict:
    return cache.cached(context.user_data, DRAFT) or {}


def _set_draft(context: Context, **values) -> dict:
    draft = {**_draft(context), **values}
    cache.replace(context.user_data, DRAFT, draft)
    return draft


async def _list_context(update: Update, context: Context):
    """The cached contacts, or fetched afresh when a commit evicted them (the user's own
    save or delete notifies too): from the list, nothing chosen so far is lost."""
    ctx = cache.cached(context.user_data, FLOW)
    if ctx is None and cache.evicted(context.user_data):
        telegram_id = update.effective_user.id
        ctx = await cache.open_flow(
            context.user_data,
            FLOW,
            lambda: contacts_context(pool(context), telegram_id=telegram_id),
        )
    return ctx


async def open_contacts(update: Update, context: Context) -> str | int:
    telegram_id = update.effective_user.id
    ctx = await cache.open_flow(
        context.user_data, FLOW, lambda: contacts_context(pool(context), telegram_id=telegram_id)
    )
    cache.drop(context.user_data, DRAFT)
    if ctx is None or not ctx.onboarded:
        cache.drop(context.user_data, FLOW)
        await show(update, NOT_REGISTERED)
        return END
    if ctx.is_blocked:
        cache.drop(context.user_data, FLOW)
        await show(update, BLOCKED)
        return END
    await show(update, *render_list(ctx, 0))
    return LIST


async def turn_page(update: Update, context: Context) -> str | int:
    ctx = await _list_context(update, context)
    if ctx is None:
        return await _expired(update, context)
    await show(update, *render_list(ctx, int(args(update)[0])))
    return LIST


async def back_to_list(update: Update, context: Context) -> str | int:
    ctx = await _list_context(update, context)
    if ctx is None:
        return await _expired(update, context)
    cache.drop(context.user_data, DRAFT)
    await show(update, *render_list(ctx, 0))
    return LIST


async def stale_button(update: Update, context: Context) -> None:
    """A button of this area from an older message: refuse it, stay where the user is."""
    await alert(update, STALE_BUTTON)


# add an address


async def add_address(update: Update, context: Context) -> str | int:
    ctx = await _list_context(update, context)
    if ctx is None:
        return await _expired(update, context)
    cache.replace(context.user_data, DRAFT, {})
    choices = [button(c, FLOW, "cur", c) for c in _currencies(ctx)]
    await show(update, "Which currency is the address for?", keyboard(*columns(choices, 3), [BACK]))
    return CURRENCY


async def pick_currency(update: Update, context: Context) -> str | int:
    ctx = cache.cached(context.user_data, FLOW)
    if ctx is None:
        return await _expired(update, context)
    currency = args(update)[0]
    networks = _networks_of(ctx, currency)
    if not networks:
        await alert(update, "Please pick one of the currencies shown.")
        return CURRENCY
    if len(networks) == 1:
        # One network only: nothing to choose.
        draft = _set_draft(context, currency=currency, network=networks[0].network)
        await show(update, _address_prompt(ctx, draft), keyboard([BACK]))
        return ADDRESS
    _set_draft(context, currency=currency)
    choices = [button(n.label, FLOW, "net", n.network) for n in networks]
    await show(
        update,
        f"Which network will the <b>{esc(currency)}</b> arrive on?",
        keyboard(*columns(choices, 1), [BACK]),
    )
    return NETWORK


async def pick_network(update: Update, context: Context) -> str | int:
    ctx = cache.cached(context.user_data, FLOW)
    draft = _draft(context)
    if ctx is None or "currency" not in draft:
        return await _expired(update, context)
    network = args(update)[0]
    if network not in {n.network for n in _networks_of(ctx, draft["currency"])}:
        await alert(update, "Please pick one of the networks shown.")
        return NETWORK
    draft = _set_draft(context, network=network)
    await show(update, _address_prompt(ctx, draft), keyboard([BACK]))
    return ADDRESS


async def type_address(update: Update, context: Context) -> str | int:
    ctx = cache.cached(context.user_data, FLOW)
    draft = _draft(context)
    if ctx is None or "network" not in draft:
        return await _expired(update, context)
    try:
        address = validate_address(draft["currency"], draft["network"], update.message.text)
    except AddressError as e:
        await show(update, f"⚠️ {esc(e)}\n\n{_address_prompt(ctx, draft)}", keyboard([BACK]))
        return ADDRESS
    # Seen in the list fetched at entry: say so now rather than after the label.
    mine = {(a.currency, a.network, a.address) for a in ctx.addresses}
    if (draft["currency"], draft["network"], address) in mine:
        message = Duplicate("address").message()
        await show(update, f"⚠️ {message}\n\n{_address_prompt(ctx, draft)}", keyboard([BACK]))
        return ADDRESS
    _set_draft(context, address=address)
    await show(update, f"<code>{esc(address)}</code>\n\n{LABEL_PROMPT}", keyboard([SKIP], [BACK]))
    return ADDRESS_LABEL


async def _save_address(update: Update, context: Context, label: str | None) -> str | int:
    ctx = cache.cached(context.user_data, FLOW)
    draft = _draft(context)
    if ctx is None or "address" not in draft:
        return await _expired(update, context)
    try:
        saved = await save_address(
            pool(context),
            telegram_id=update.effective_user.id,
            currency=draft["currency"],
            network=draft["network"],
            address=draft["address"],
            label=label,
            refuse_duplicate=True,
        )
    except DomainError as e:
        return await _refused(update, context, e)
    ctx = dataclasses.replace(
        ctx, addresses=_placed(ctx.addresses, saved), address_count=ctx.address_count + 1
    )
    return await _saved(update, context, ctx, f"✅ Saved {esc(saved.label or saved.address)}.")


async def label_address(update: Update, context: Context) -> str | int:
    try:
        label = clean_label(update.message.text)
    except InputError as e:
        await show(update, f"⚠️ {esc(e)}\n\n{LABEL_PROMPT}", keyboard([SKIP], [BACK]))
        return ADDRESS_LABEL
    return await _save_address(update, context, label)


async def skip_address_label(update: Update, context: Context) -> str | int:
    return await _save_address(update, context, None)


# add a bank account


async def add_bank(update: Update, context: Context) -> str | int:
    ctx = await _list_context(update, context)
    if ctx is None:
        return await _expired(update, context)
    cache.replace(context.user_data, DRAFT, {})
    await show(update, *_bank_picker(ctx, 0))
    return BANK


async def bank_page(update: Update, context: Context) -> str | int:
    ctx = cache.cached(context.user_data, FLOW)
    if ctx is None:
        return await _expired(update, context)
    await show(update, *_bank_picker(ctx, int(args(update)[0])))
    return BANK


def _account_prompt(bank_name: str) -> str:
    return f"🏦 {esc(bank_name)}\nSend the 10-digit account number (NUBAN)."


async def pick_bank(update: Update, context: Context) -> str | int:
    ctx = cache.cached(context.user_data, FLOW)
    if ctx is None:
        return await _expired(update, context)
    code = args(update)[0]
    bank = next((b for b in ctx.banks if b.code == code), None)
    if bank is None:
        await alert(update, "Please pick one of the banks shown.")
        return BANK
    _set_draft(context, bank_code=bank.code, bank_name=bank.name)
    await show(update, _account_prompt(bank.name), keyboard([BACK]))
    return ACCOUNT


async def type_account(update: Update, context: Context) -> str | int:
    ctx = cache.cached(context.user_data, FLOW)
    draft = _draft(context)
    if ctx is None or "bank_code" not in draft:
        return await _expired(update, context)
    try:
        number = validate_nuban(update.message.text)
    except BankAccountError as e:
        await show(update, f"⚠️ {esc(e)}\n\n{_account_prompt(draft['bank_name'])}", keyboard([BACK]))
        return ACCOUNT
    if (draft["bank_code"], number) in {(b.bank_code, b.account_number) for b in ctx.bank_accounts}:
        message = Duplicate("bank account").message()
        text = f"⚠️ {message}\n\n{_account_prompt(draft['bank_name'])}"
        await show(update, text, keyboard([BACK]))
        return ACCOUNT
    _set_draft(context, account_number=number)
    await show(
        update,
        f"🏦 {esc(draft['bank_name'])} · <code>{number}</code>\n\n{HOLDER_PROMPT}",
        keyboard([BACK]),
    )
    return HOLDER


HOLDER_PROMPT = "Whose account is it? Send the holder's name as the bank has it."


async def type_holder(update: Update, context: Context) -> str | int:
    try:
        name = clean_holder(update.message.text)
    except InputError as e:
        await show(update, f"⚠️ {esc(e)}\n\n{HOLDER_PROMPT}", keyboard([BACK]))
        return HOLDER
    if "account_number" not in _draft(context):
        return await _expired(update, context)
    _set_draft(context, account_name=name)
    await show(update, LABEL_PROMPT, keyboard([SKIP], [BACK]))
    return BANK_LABEL


async def _save_bank(update: Update, context: Context, label: str | None) -> str | int:
    ctx = cache.cached(context.user_data, FLOW)
    draft = _draft(context)
    if ctx is None or "account_name" not in draft:
        return await _expired(update, context)
    try:
        saved = await save_bank_account(
            pool(context),
            telegram_id=update.effective_user.id,
            bank_code=draft["bank_code"],
            account_number=draft["account_number"],
            account_name=draft["account_name"],
            label=label,
            refuse_duplicate=True,
        )
    except DomainError as e:
        return await _refused(update, context, e)
    ctx = dataclasses.replace(
        ctx,
        bank_accounts=_placed(ctx.bank_accounts, saved),
        bank_account_count=ctx.bank_account_count + 1,
    )
    name = saved.label or f"{saved.bank_name} {saved.account_number}"
    return await _saved(update, context, ctx, f"✅ Saved {esc(name)}.")


async def label_bank(update: Update, context: Context) -> str | int:
    try:
        label = clean_label(update.message.text)
    except InputError as e:
        await show(update, f"⚠️ {esc(e)}\n\n{LABEL_PROMPT}", keyboard([SKIP], [BACK]))
        return BANK_LABEL
    return await _save_bank(update, context, label)


async def skip_bank_label(update: Update, context: Context) -> str | int:
    return await _save_bank(update, context, None)


def _placed(entries: tuple, saved):
    """`saved` (never used yet) where the screen's query would list it: after the used ones,
    first among the never used (newest first)."""
    used = tuple(e for e in entries if e.last_used_at is not None)
    return (*used, saved, *(e for e in entries if e.last_used_at is None))


async def _saved(update: Update, context: Context, ctx: ContactsContext, note: str) -> str:
    # The add flow is complete: its answers go; the list stays, updated from the movement.
    cache.drop(context.user_data, DRAFT)
    cache.replace(context.user_data, FLOW, ctx)
    await show(update, *render_list(ctx, 0, note))
    return LIST


async def _refused(update: Update, context: Context, error: DomainError) -> str | int:
    """The movement said no (e.g. a duplicate saved since the list was fetched): say what, and
    show the list as it is now (one more round trip)."""
    cache.drop(context.user_data, DRAFT)
    telegram_id = update.effective_user.id
    ctx = await cache.open_flow(
        context.user_data, FLOW, lambda: contacts_context(pool(context), telegram_id=telegram_id)
    )
    if ctx is None:
        await show(update, NOT_REGISTERED)
        return END
    await show(update, *render_list(ctx, 0, f"⚠️ {esc(error.message())}"))
    return LIST


# delete


def _find(ctx: ContactsContext, kind: DestinationKind, destination_id: int):
    entries = ctx.addresses if kind == DestinationKind.CRYPTO_ADDRESS else ctx.bank_accounts
    return next((e for e in entries if e.id == destination_id), None)


async def ask_delete(update: Update, context: Context) -> str | int:
    ctx = await _list_context(update, context)
    if ctx is None:
        return await _expired(update, context)
    kind_name, raw_id = args(update)
    kind = KINDS[kind_name]
    entry = _find(ctx, kind, int(raw_id))
    if entry is None:
        # Not among this user's own: refused before anything is asked or changed.
        await alert(update, NotFound(NOUN[kind]).message())
        return LIST
    await show(
        update,
        f"Delete this saved {NOUN[kind]}?\n\n{_describe(ctx, entry)}",
        keyboard(
            [button("🗑 Yes, delete", FLOW, "delok", kind.value, entry.id)],
            [button(f"{PREV} Keep it", FLOW, "back")],
        ),
    )
    return DELETE


async def confirm_delete(update: Update, context: Context) -> str | int:
    ctx = await _list_context(update, context)
    if ctx is None:
        return await _expired(update, context)
    kind_name, raw_id = args(update)
    kind, destination_id = KINDS[kind_name], int(raw_id)
    # The id comes from the button: the movement re-checks that it is the presser's own.
    try:
        await delete_destination(
            pool(context),
            telegram_id=update.effective_user.id,
            kind=kind,
            destination_id=destination_id,
        )
    except NotFound as e:
        await alert(update, e.message())
        return DELETE
    if kind == DestinationKind.CRYPTO_ADDRESS:
        kept = tuple(a for a in ctx.addresses if a.id != destination_id)
        ctx = dataclasses.replace(ctx, addresses=kept, address_count=ctx.address_count - 1)
    else:
        kept = tuple(b for b in ctx.bank_accounts if b.id != destination_id)
        ctx = dataclasses.replace(
            ctx, bank_accounts=kept, bank_account_count=ctx.bank_account_count - 1
        )
    cache.replace(context.user_data, FLOW, ctx)
    await show(update, *render_list(ctx, 0, f"🗑 The {NOUN[kind]} was deleted."))
    return LIST


# --- wiring -----------------------------------------------------------------------

_KIND = "(crypto_address|bank_account)"
_ID = r"[0-9]{1,18}"


def _on(action: str, handler, args_pattern: str = "") -> CallbackQueryHandler:
    return CallbackQueryHandler(handler, pattern=f"^{FLOW}:{action}{args_pattern}$")


def handlers() -> list[BaseHandler]:
    back = _on("back", back_to_list)
    # Last in every state: this area's other buttons are answered, not taken for leaving.
    stale = CallbackQueryHandler(stale_button, pattern=f"^{FLOW}:")
    text = text_input()
    return [
        flow(
            FLOW,
            entry_points=[CommandHandler("contacts", open_contacts), _on("open", open_contacts)],
            states={
                LIST: [
                    _on("page", turn_page, ":[0-9]{1,4}"),
                    _on("addaddr", add_address),
                    _on("addbank", add_bank),
                    _on("del", ask_delete, f":{_KIND}:{_ID}"),
                    back,
                    stale,
                ],
                CURRENCY: [_on("cur", pick_currency, ":[A-Z0-9]{1,10}"), back, stale],
                NETWORK: [_on("net", pick_network, ":[A-Z0-9]{1,10}"), back, stale],
                ADDRESS: [MessageHandler(text, type_address), back, stale],
                ADDRESS_LABEL: [
                    MessageHandler(text, label_address),
                    _on("skip", skip_address_label),
                    back,
                    stale,
                ],
                BANK: [
                    _on("bank", pick_bank, ":[0-9]{3,6}"),
                    _on("banks", bank_page, ":[0-9]{1,3}"),
                    back,
                    stale,
                ],
                ACCOUNT: [MessageHandler(text, type_account), back, stale],
                HOLDER: [MessageHandler(text, type_holder), back, stale],
                BANK_LABEL: [
                    MessageHandler(text, label_bank),
                    _on("skip", skip_bank_label),
                    back,
                    stale,
                ],
                DELETE: [_on("delok", confirm_delete, f":{_KIND}:{_ID}"), back, stale],
            },
        )
    ]
