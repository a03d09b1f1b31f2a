"""The wallet screen and its money (`sql/wallet.sql`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from bot.data.contacts import SavedAddress, SavedBankAccount
from bot.data.enums import CashoutStatus, DestinationKind
from bot.data.rows import moment, money, money_or_none
from bot.db import queries


@dataclass(frozen=True, slots=True)
class WalletUser:
    id: int
    telegram_id: int
    username: str | None
    first_name: str
    email: str | None
    phone: str | None
    email_verified: bool
    phone_verified: bool


@dataclass(frozen=True, slots=True)
class Network:
    network: str
    label: str


@dataclass(frozen=True, slots=True)
class Wallet:
    currency: str
    kind: str
    decimals: int
    available: Decimal
    held: Decimal
    usd_value: Decimal | None  # None while the currency has no rate
    rate_at: datetime | None
    cashout_min: Decimal
    cashout_max: Decimal
    cashout_fee_flat: Decimal
    cashout_fee_rate: Decimal
    networks: tuple[Network, ...]

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Wallet:
        return cls(
            currency=d["currency"],
            kind=d["kind"],
            decimals=d["decimals"],
            available=money(d["available"]),
            held=money(d["held"]),
            usd_value=money_or_none(d["usd_value"]),
            rate_at=moment(d["rate_at"]),
            cashout_min=money(d["cashout_min"]),
            cashout_max=money(d["cashout_max"]),
            cashout_fee_flat=money(d["cashout_fee_flat"]),
            cashout_fee_rate=money(d["cashout_fee_rate"]),
            networks=tuple(Network(n["network"], n["label"]) for n in d["networks"]),
        )


@dataclass(frozen=True, slots=True)
class CashoutInFlight:
    id: int
    currency: str
    amount: Decimal
    fee: Decimal
    status: CashoutStatus
    destination: DestinationKind
    network: str | None
    address: str | None
    bank_code: str | None
    account_number: str | None
    created_at: datetime

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CashoutInFlight:
        return cls(
            id=d["id"],
            currency=d["currency"],
            amount=money(d["amount"]),
            fee=money(d["fee"]),
            status=CashoutStatus(d["status"]),
            destination=DestinationKind(d["destination"]),
            network=d["network"],
            address=d["address"],
            bank_code=d["bank_code"],
            account_number=d["account_number"],
            created_at=moment(d["created_at"]),
        )


@dataclass(frozen=True, slots=True)
class WalletContext:
    user: WalletUser
    wallets: tuple[Wallet, ...]  # ordered by currency
    total_usd: Decimal  # of the wallets that have a rate
    addresses: tuple[SavedAddress, ...]  # at most 20, most recently used first
    bank_accounts: tuple[SavedBankAccount, ...]  # at most 20, most recently used first
    cashouts_in_flight: tuple[CashoutInFlight, ...]  # at most 10, newest first
    cashouts_in_flight_count: int

    def wallet(self, currency: str) -> Wallet | None:
        return next((w for w in self.wallets if w.currency == currency), None)


async def wallet_context(conn, *, telegram_id: int) -> WalletContext | None:
    row = await queries.wallet_context(conn, telegram_id=telegram_id)
    if row is None:
        return None
    return WalletContext(
        user=WalletUser(
            id=row["id"],
            telegram_id=row["telegram_id"],
            username=row["username"],
            first_name=row["first_name"],
            email=row["email"],
            phone=row["phone"],
            email_verified=row["email_verified"],
            phone_verified=row["phone_verified"],
        ),
        wallets=tuple(Wallet.from_json(w) for w in row["wallets"]),
        total_usd=row["total_usd"] if row["total_usd"] is not None else Decimal(0),
        addresses=tuple(SavedAddress.from_json(a) for a in row["addresses"]),
        bank_accounts=tuple(SavedBankAccount.from_json(b) for b in row["bank_accounts"]),
        cashouts_in_flight=tuple(CashoutInFlight.from_json(c) for c in row["cashouts_in_flight"]),
        cashouts_in_flight_count=row["cashouts_in_flight_count"],
    )
