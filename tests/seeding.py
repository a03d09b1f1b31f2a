"""Test data, made with the same seeding queries as the demo (`sql/seed.sql`)."""

from __future__ import annotations

from decimal import Decimal

from bot.db import queries


async def user(conn, telegram_id: int, first_name: str = "Tester", **extra) -> int:
    return await queries.seed_user(
        conn,
        telegram_id=telegram_id,
        username=extra.get("username", f"user{telegram_id}"),
        first_name=first_name,
        email=extra.get("email"),
        phone=extra.get("phone"),
    )


async def credit(conn, telegram_id: int, currency: str, amount: str) -> Decimal:
    return await queries.seed_credit(
        conn, telegram_id=telegram_id, currency=currency, amount=Decimal(amount)
    )


async def cashout(conn, telegram_id: int, currency: str, amount: str, fee: str = "0", n=1) -> int:
    return await queries.seed_cashout(
        conn,
        telegram_id=telegram_id,
        currency=currency,
        amount=Decimal(amount),
        fee=Decimal(fee),
        network="TRC20" if currency == "USDT" else currency,
        address=f"T{'x' * 32}{n}",
        idempotency_key=f"test-{telegram_id}-{n}",
    )


async def address(conn, telegram_id: int, address: str, label: str | None = None) -> int:
    return await queries.seed_address(
        conn,
        telegram_id=telegram_id,
        currency="USDT",
        network="TRC20",
        address=address,
        label=label,
    )


async def bank_account(conn, telegram_id: int, account_number: str, bank_code="058") -> int:
    return await queries.seed_bank_account(
        conn,
        telegram_id=telegram_id,
        bank_code=bank_code,
        account_number=account_number,
        account_name="TEST HOLDER",
        label=None,
    )


async def rate(conn, base: str, quote: str, value: str) -> None:
    await queries.seed_rate(conn, base=base, quote=quote, rate=Decimal(value))


async def until_blocked(conn, *, tries: int = 10_000) -> None:
    """Return once a session of this database waits on a lock.

    Each check is a round trip to the server, so this waits on the database, not
    on a clock. Pass a connection outside a transaction.
    """
    for _ in range(tries):
        if await queries.ledger_test_lock_waiters(conn):
            return
    raise AssertionError("no session ever blocked on a lock")


async def make_admin(conn, telegram_id: int) -> None:
    await queries.seed_make_admin(conn, telegram_id=telegram_id)


async def block(conn, telegram_id: int) -> None:
    await queries.seed_block(conn, telegram_id=telegram_id)


async def set_referrer(conn, telegram_id: int, referrer_telegram_id: int) -> None:
    await queries.seed_set_referrer(
        conn, telegram_id=telegram_id, referrer_telegram_id=referrer_telegram_id
    )
