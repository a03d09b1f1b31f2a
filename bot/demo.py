"""`lockbay demo`: seed a few users, then show their screens with round trips and latency."""

from __future__ import annotations

from decimal import Decimal

import asyncpg

from bot import db
from bot.data.wallet import wallet_context
from bot.handlers.wallet import render_wallet

ADA, BAYO, CHIDI = 7_000_001, 7_000_002, 7_000_003

RATES = [
    ("BTC", "USD", "97250.50"),
    ("ETH", "USD", "3420.75"),
    ("LTC", "USD", "88.10"),
    ("USDT", "USD", "1.0002"),
    ("USD", "NGN", "1530.25"),
]


async def seed(conn: asyncpg.Connection) -> None:
    """Demo people, once: the balances are only credited when a user is new."""
    async with conn.transaction():
        fresh = await db.queries.seed_is_fresh(conn)
        await db.queries.seed_user(
            conn,
            telegram_id=ADA,
            username="ada_trades",
            first_name="Ada 🌍",
            email="ada@example.com",
            phone="+2348031234567",
        )
        await db.queries.seed_user(
            conn,
            telegram_id=BAYO,
            username="bayo",
            first_name="Bayo",
            email=None,
            phone=None,
        )
        await db.queries.seed_user(
            conn,
            telegram_id=CHIDI,
            username="chidi_store",
            first_name="Chidi",
            email="chidi@example.com",
            phone=None,
        )
        if not fresh:
            return
        for base, quote, rate in RATES:
            await db.queries.seed_rate(conn, base=base, quote=quote, rate=Decimal(rate))
        for currency, amount in [("BTC", "0.0523"), ("USDT", "1250.5"), ("NGN", "2450000")]:
            await db.queries.seed_credit(
                conn, telegram_id=ADA, currency=currency, amount=Decimal(amount)
            )
        await db.queries.seed_address(
            conn,
            telegram_id=ADA,
            currency="USDT",
            network="TRC20",
            address="TN3W4H6rK2ce4vX9YnFQHwKENnHjoxb3m9",
            label="Binance",
        )
        await db.queries.seed_bank_account(
            conn,
            telegram_id=ADA,
            bank_code="058",
            account_number="0123456789",
            account_name="ADA OKAFOR",
            label="GTBank salary",
        )
        await db.queries.seed_cashout(
            conn,
            telegram_id=ADA,
            currency="USDT",
            amount=Decimal("100"),
            fee=Decimal("1"),
            network="TRC20",
            address="TN3W4H6rK2ce4vX9YnFQHwKENnHjoxb3m9",
            idempotency_key="demo-1",
        )


async def run(dsn: str) -> None:
    conn = await db.connect(dsn)
    try:
        applied = await db.migrate(conn)
        print(f"migrations applied: {', '.join(applied) or 'none (up to date)'}")
        await seed(conn)
        for telegram_id in (ADA, BAYO):
            async with db.meter.measure() as m:
                ctx = await wallet_context(conn, telegram_id=telegram_id)
            assert ctx is not None
            print()
            print(
                f"── wallet screen of {telegram_id}: "
                f"{m.round_trips} round trip, {m.elapsed * 1000:.2f} ms"
            )
            print(render_wallet(ctx))
    finally:
        await conn.close()
