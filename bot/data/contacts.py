"""Saved destinations: crypto addresses and Nigerian bank accounts (`sql/contacts.sql`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.data.rows import moment


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
