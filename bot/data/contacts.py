"""Saved destinations: crypto addresses and Nigerian bank accounts (`sql/contacts.sql`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.data.enums import DestinationKind
from bot.data.errors import Duplicate, Invalid, NotFound
from bot.data.rows import moment
from bot.db import queries
from bot.money import validate_address, validate_bank_code, validate_nuban


@dataclass(frozen=True, slots=True)
class SavedAddress:
    id: int
    currency: str
    network: str
    address: str
    label: str | None
    last_used_at: datetime | None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SavedAddress:
        return cls(
            id=d["id"],
            currency=d["currency"],
            network=d["network"],
            address=d["address"],
            label=d["label"],
            last_used_at=moment(d["last_used_at"]),
        )


@dataclass(frozen=True, slots=True)
class SavedBankAccount:
    id: int
    bank_code: str
    bank_name: str
    account_number: str
    account_name: str
    label: str | None
    last_used_at: datetime | None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SavedBankAccount:
        return cls(
            id=d["id"],
            bank_code=d["bank_code"],
            bank_name=d["bank_name"],
            account_number=d["account_number"],
            account_name=d["account_name"],
            label=d["label"],
            last_used_at=moment(d["last_used_at"]),
        )


# --- movements ----------------------------------------------------------------

MAX_LABEL = 64
MAX_ACCOUNT_NAME = 100


def _label(label: str | None) -> str | None:
    """A label stripped, blank meaning none; longer than the schema allows is refused."""
    if label is None or not label.strip():
        return None
    label = label.strip()
    if len(label) > MAX_LABEL:
        raise Invalid(reason=f"A label can be at most {MAX_LABEL} characters.")
    return label


async def save_address(
    conn,
    *,
    telegram_id: int,
    currency: str,
    network: str,
    address: str,
    label: str | None = None,
    refuse_duplicate: bool = False,
) -> SavedAddress:
    """Save a crypto address, or return the user's live row for the same address.

    With `refuse_duplicate` (the contacts screen's add flow), an address the
    user already has live raises Duplicate("address") instead.
    Raises AddressError (from `validate_address`) before touching the database;
    NotFound("user"), Invalid or Duplicate after one round trip that wrote nothing.
    """
    address = validate_address(currency, network, address)
    row = await queries.contacts_save_address(
        conn,
        telegram_id=telegram_id,
        currency=currency,
        network=network,
        address=address,
        label=_label(label),
        refuse_duplicate=refuse_duplicate,
    )
    if row["outcome"] == "not_found":
        raise NotFound("user")
    if row["outcome"] == "invalid":
        raise Invalid(reason=f"{currency} cannot be sent on the {network} network here.")
    if row["outcome"] == "duplicate":
        raise Duplicate("address")
    return SavedAddress.from_json(row)


async def save_bank_account(
    conn,
    *,
    telegram_id: int,
    bank_code: str,
    account_number: str,
    account_name: str,
    label: str | None = None,
    refuse_duplicate: bool = False,
) -> SavedBankAccount:
    """Save a Nigerian bank account, or return the user's live row for the same account.

    A second save of a live account refreshes its holder name (the latest
    name check is the truest) and takes a new label when one is given; with
    `refuse_duplicate` (the contacts screen's add flow) it raises
    Duplicate("bank account") instead.
    Raises BankAccountError or Invalid before touching the database;
    NotFound("user"), Invalid (unknown bank) or Duplicate after one round trip
    that wrote nothing.
    """
    account_number = validate_nuban(account_number)
    bank_code = validate_bank_code(bank_code)
    name = account_name.strip()
    if not 1 <= len(name) <= MAX_ACCOUNT_NAME:
        raise Invalid(reason=f"The account name must be 1 to {MAX_ACCOUNT_NAME} characters.")
    row = await queries.contacts_save_bank_account(
        conn,
        telegram_id=telegram_id,
        bank_code=bank_code,
        account_number=account_number,
        account_name=name,
        label=_label(label),
        refuse_duplicate=refuse_duplicate,
    )
    if row["outcome"] == "not_found":
        raise NotFound("user")
    if row["outcome"] == "invalid":
        raise Invalid(reason=f"No bank we know has the code {bank_code}.")
    if row["outcome"] == "duplicate":
        raise Duplicate("bank account")
    return SavedBankAccount.from_json(row)


_DELETES = {
    DestinationKind.CRYPTO_ADDRESS: ("contacts_delete_address", "address"),
    DestinationKind.BANK_ACCOUNT: ("contacts_delete_bank_account", "bank account"),
}


async def delete_destination(
    conn, *, telegram_id: int, kind: DestinationKind, destination_id: int
) -> None:
    """Soft-delete one of the user's own live saved destinations, in one round trip.

    Someone else's, an already deleted or an unknown one raises NotFound and
    changes nothing. Past cashouts keep pointing at the row.
    """
    if kind not in _DELETES:
        raise ValueError(f"{kind} is not a saved destination")
    query, what = _DELETES[DestinationKind(kind)]
    outcome = await getattr(queries, query)(
        conn, telegram_id=telegram_id, destination_id=destination_id
    )
    if outcome != "ok":
        raise NotFound(what)


# --- screens ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OfferedNetwork:
    """A network a currency can be sent on, as the add-address flow offers it."""

    currency: str
    network: str
    label: str


@dataclass(frozen=True, slots=True)
class Bank:
    code: str
    name: str


@dataclass(frozen=True, slots=True)
class ContactsContext:
    user_id: int
    is_blocked: bool
    onboarded: bool
    addresses: tuple[SavedAddress, ...]  # live ones, at most 50, most recently used first
    address_count: int  # every live address
    bank_accounts: tuple[SavedBankAccount, ...]  # live ones, at most 50, most recently used first
    bank_account_count: int  # every live bank account
    networks: tuple[OfferedNetwork, ...]  # every network, in currency order (at most 100)
    banks: tuple[Bank, ...]  # every bank, by name (at most 500)


async def contacts_context(conn, *, telegram_id: int) -> ContactsContext | None:
    """The contacts screen in one round trip; None for an unknown user.

    Never-used destinations come after used ones, newest first among themselves.
    """
    row = await queries.contacts_context(conn, telegram_id=telegram_id)
    if row is None:
        return None
    return ContactsContext(
        user_id=row["user_id"],
        is_blocked=row["is_blocked"],
        onboarded=row["onboarded"],
        addresses=tuple(SavedAddress.from_json(a) for a in row["addresses"]),
        address_count=row["address_count"],
        bank_accounts=tuple(SavedBankAccount.from_json(b) for b in row["bank_accounts"]),
        bank_account_count=row["bank_account_count"],
        networks=tuple(
            OfferedNetwork(n["currency"], n["network"], n["label"]) for n in row["networks"]
        ),
        banks=tuple(Bank(b["code"], b["name"]) for b in row["banks"]),
    )
