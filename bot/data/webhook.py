"""What a provider's payment event is about (`sql/webhook.sql`), locked for its transaction."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from bot.data.enums import DepositStatus, EscrowStatus, ExchangeStatus
from bot.db import queries


class OrderKind(StrEnum):
    """What a payment reference names."""

    DEPOSIT = "deposit"  # a wallet top-up (deposit_orders)
    ESCROW = "escrow"
    EXCHANGE = "exchange"


_STATUSES: dict[OrderKind, type[StrEnum]] = {
    OrderKind.DEPOSIT: DepositStatus,
    OrderKind.ESCROW: EscrowStatus,
    OrderKind.EXCHANGE: ExchangeStatus,
}


@dataclass(frozen=True, slots=True)
class PayerWallet:
    id: int
    available: Decimal
    held: Decimal


@dataclass(frozen=True, slots=True)
class OrderContext:
    kind: OrderKind
    id: int  # the deposit order's, escrow's or exchange order's id
    status: DepositStatus | EscrowStatus | ExchangeStatus  # the enum of its kind
    currency: str  # what the payment must be in (an exchange's from-currency)
    expected_amount: Decimal | None  # escrow: amount + buyer fee; exchange: from amount
    user_id: int  # the payer: the top-up's owner, the escrow's buyer, the exchange's user
    telegram_id: int
    wallet: PayerWallet | None  # the payer's wallet in `currency`, locked with the order


async def lock_order_context(conn, *, order_ref: str) -> OrderContext | None:
    """The order `order_ref` names, its payer and the payer's wallet, in one round trip,
    with the order row and the wallet row locked until the caller's transaction ends.

    Must run inside a transaction on a connection (`bot.db.transaction`): in
    autocommit the locks would end with the statement and protect nothing, so
    a pool or a connection outside a transaction raises RuntimeError before
    anything is sent. None for an unknown reference.
    """
    in_transaction = getattr(conn, "is_in_transaction", None)
    if in_transaction is None or not in_transaction():
        raise RuntimeError(
            "lock_order_context locks rows for the caller's transaction: "
            "call it on a connection inside one (bot.db.transaction)"
        )
    row = await queries.lock_order_context(conn, order_ref=order_ref)
    if row is None:
        return None
    kind = OrderKind(row["kind"])
    return OrderContext(
        kind=kind,
        id=row["id"],
        status=_STATUSES[kind](row["status"]),
        currency=row["currency"],
        expected_amount=row["expected_amount"],
        user_id=row["user_id"],
        telegram_id=row["telegram_id"],
        wallet=(
            PayerWallet(id=row["wallet_id"], available=row["available"], held=row["held"])
            if row["wallet_id"] is not None
            else None
        ),
    )


async def health_check(conn) -> bool:
    """True when the database answers (GET /healthz); the caller bounds the wait."""
    return await queries.health_check(conn) == 1
