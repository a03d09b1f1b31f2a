"""The ledger's own guarantees: balanced transfers, reconciliation, no half-applied movement."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import asyncpg
import pytest
import seeding

from bot import db
from bot.data.enums import PaymentProvider
from bot.data.ledger import reconcile
from bot.data.wallet import (
    CryptoDestination,
    create_deposit_order,
    credit_deposit,
    request_cashout,
    wallet_context,
)

ALICE = 2001
TRON = CryptoDestination(network="TRC20", address="TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t")


async def test_an_unbalanced_transfer_is_refused_whole(conn):
    await seeding.user(conn, ALICE)
    before = await db.queries.ledger_test_row_counts(conn)
    entries = [
        {"kind": "platform_fees", "currency": "USDT", "amount": "5"},
        {"kind": "platform_treasury", "currency": "USDT", "amount": "-4.999999"},
    ]
    with pytest.raises(asyncpg.CheckViolationError, match="does not balance"):
        await db.queries.ledger_test_post(conn, kind="adjustment", entries=entries)
    assert await db.queries.ledger_test_row_counts(conn) == before


async def test_a_wallet_driven_below_zero_fails_the_transfer(conn):
    await seeding.user(conn, ALICE)
    await seeding.credit(conn, ALICE, "USDT", "10")
    wallet_id = await db.queries.ledger_test_lock_wallet(conn, telegram_id=ALICE, currency="USDT")
    entries = [
        {"kind": "wallet_available", "wallet": wallet_id, "amount": "-10.000001"},
        {"kind": "platform_fees", "currency": "USDT", "amount": "10.000001"},
    ]
    with pytest.raises(asyncpg.CheckViolationError):
        await db.queries.ledger_test_post(conn, kind="adjustment", entries=entries)


async def test_reconcile_reports_a_balance_changed_behind_the_ledgers_back(conn):
    await seeding.user(conn, ALICE)
    await seeding.credit(conn, ALICE, "NGN", "5000")
    assert await reconcile(conn) == []
    await db.queries.ledger_test_skew_wallet(conn, telegram_id=ALICE, currency="NGN", delta="1")
    found = await reconcile(conn)
    assert {v.kind for v in found} == {"wallet_mismatch"}
    assert "available 5001" in found[0].detail
    await db.queries.ledger_test_skew_wallet(conn, telegram_id=ALICE, currency="NGN", delta="-1")
    assert await reconcile(conn) == []


async def _blocked_cashout(pool, run):
    """Start a cashout while another connection holds the wallet's lock; `run` interrupts it."""
    await seeding.user(pool, ALICE)
    await seeding.credit(pool, ALICE, "USDT", "100")
    before = await db.queries.ledger_test_row_counts(pool)
    async with pool.acquire() as holder, holder.transaction():
        await db.queries.ledger_test_lock_wallet(holder, telegram_id=ALICE, currency="USDT")
        async with pool.acquire() as mover:
            task = asyncio.create_task(
                request_cashout(
                    mover,
                    telegram_id=ALICE,
                    currency="USDT",
                    amount=Decimal("50"),
                    destination=TRON,
                    idempotency_key="crash-1",
                )
            )
            await seeding.until_blocked(pool)
            await run(task, mover, holder)
    assert await db.queries.ledger_test_row_counts(pool) == before
    assert await reconcile(pool) == []
    # The idempotency key was never claimed: the same request now goes through, once.
    done = await request_cashout(
        pool,
        telegram_id=ALICE,
        currency="USDT",
        amount=Decimal("50"),
        destination=TRON,
        idempotency_key="crash-1",
    )
    assert done.amount == Decimal("50")


async def test_a_cancelled_movement_leaves_nothing_behind(pool):
    async def cancel(task, mover, holder):
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    await _blocked_cashout(pool, cancel)


async def test_a_killed_backend_leaves_nothing_behind(pool):
    async def kill(task, mover, holder):
        assert await db.queries.ledger_test_terminate(holder, pid=mover.get_server_pid())
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError)):
            await task

    await _blocked_cashout(pool, kill)


async def test_a_deposit_killed_midway_is_credited_once_on_redelivery(pool):
    await seeding.user(pool, ALICE)
    order = await create_deposit_order(
        pool, telegram_id=ALICE, currency="USDT", provider=PaymentProvider.BLOCKBEE
    )
    before = await db.queries.ledger_test_row_counts(pool)
    deliver = dict(
        provider=PaymentProvider.BLOCKBEE,
        event_id="uuid-crash",
        order_ref=order.ref,
        currency="USDT",
        amount=Decimal("25"),
    )
    async with pool.acquire() as holder, holder.transaction():
        await db.queries.ledger_test_lock_wallet(holder, telegram_id=ALICE, currency="USDT")
        async with pool.acquire() as mover:
            task = asyncio.create_task(credit_deposit(mover, **deliver))
            await seeding.until_blocked(pool)
            assert await db.queries.ledger_test_terminate(holder, pid=mover.get_server_pid())
            with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError)):
                await task
    assert await db.queries.ledger_test_row_counts(pool) == before

    first = await credit_deposit(pool, **deliver)
    again = await credit_deposit(pool, **deliver)
    assert not first.duplicate and again.duplicate
    ctx = await wallet_context(pool, telegram_id=ALICE)
    assert ctx.wallet("USDT").available == Decimal("25")
