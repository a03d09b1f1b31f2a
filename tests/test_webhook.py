"""The payment webhooks' order context: the order a reference names, its payer and wallet,
locked for the caller's transaction, and refused outside one."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
import seeding

from bot import db
from bot.data.enums import (
    DepositStatus,
    EscrowStatus,
    ExchangeStatus,
    FeeSplit,
    PaymentProvider,
)
from bot.data.escrow import create_escrow
from bot.data.exchange import lock_rate
from bot.data.wallet import create_deposit_order, credit_deposit
from bot.data.webhook import OrderKind, lock_order_context

ALICE, BOB = 13001, 13002
D = Decimal


async def locked(conn, order_ref: str):
    """The context in its own transaction, in one round trip."""
    async with db.transaction(conn) as tx, db.meter.measure() as m:
        ctx = await lock_order_context(tx, order_ref=order_ref)
    assert m.round_trips == 1, m.statements
    return ctx


async def test_outside_a_transaction_it_refuses_before_any_round_trip(pool, conn):
    await seeding.user(conn, ALICE)
    order = await create_deposit_order(
        conn, telegram_id=ALICE, currency="BTC", provider=PaymentProvider.BLOCKBEE
    )
    async with db.meter.measure() as m:
        with pytest.raises(RuntimeError, match="inside"):
            await lock_order_context(conn, order_ref=order.ref)
        with pytest.raises(RuntimeError, match="inside"):
            await lock_order_context(pool, order_ref=order.ref)
    assert m.round_trips == 0


async def test_an_unknown_reference_is_none(conn):
    assert await locked(conn, "DEP-NOSUCHREF") is None


async def test_a_wallet_top_up_names_its_owner_and_wallet(conn):
    uid = await seeding.user(conn, ALICE)
    await seeding.credit(conn, ALICE, "BTC", "0.5")
    await seeding.cashout(conn, ALICE, "BTC", "0.1", fee="0.00005")
    order = await create_deposit_order(
        conn, telegram_id=ALICE, currency="BTC", provider=PaymentProvider.BLOCKBEE
    )
    ctx = await locked(conn, order.ref)
    assert (ctx.kind, ctx.id, ctx.status) == (OrderKind.DEPOSIT, order.id, DepositStatus.OPEN)
    assert ctx.currency == "BTC" and ctx.expected_amount is None  # a top-up takes any amount
    assert (ctx.user_id, ctx.telegram_id) == (uid, ALICE)
    assert ctx.wallet.available == D("0.39995") and ctx.wallet.held == D("0.10005")


async def test_an_escrow_expects_amount_and_buyer_fee_from_the_buyer(conn):
    buyer = await seeding.user(conn, ALICE)
    await seeding.user(conn, BOB)
    await seeding.credit(conn, ALICE, "USDT", "3")
    escrow = await create_escrow(
        conn,
        buyer_telegram_id=ALICE,
        seller_handle=f"@user{BOB}",
        currency="USDT",
        amount=D("100"),
        description="Concert tickets 🎫",
        fee_split=FeeSplit.SPLIT,
    )
    ctx = await locked(conn, escrow.payment_reference)
    assert (ctx.kind, ctx.id, ctx.status) == (
        OrderKind.ESCROW,
        escrow.id,
        EscrowStatus.AWAITING_PAYMENT,
    )
    assert ctx.expected_amount == D("102.5")  # 100 + half of the 5% fee
    assert (ctx.user_id, ctx.telegram_id, ctx.currency) == (buyer, ALICE, "USDT")
    assert ctx.wallet.available == D(3) and ctx.wallet.held == 0


async def test_an_exchange_order_expects_its_from_amount(conn):
    uid = await seeding.user(conn, ALICE)
    await seeding.rate(conn, "USD", "NGN", "1500")
    await seeding.rate(conn, "LTC", "USD", "80")
    q = await lock_rate(
        conn, telegram_id=ALICE, from_currency="NGN", to_currency="LTC", amount=D("12000.50")
    )
    ctx = await locked(conn, q.payment_reference)
    assert (ctx.kind, ctx.id, ctx.status) == (OrderKind.EXCHANGE, q.order_id, ExchangeStatus.QUOTED)
    assert (ctx.currency, ctx.expected_amount) == ("NGN", D("12000.50"))
    assert (ctx.user_id, ctx.telegram_id) == (uid, ALICE)
    assert ctx.wallet.available == 0


async def test_a_second_transaction_waits_for_the_first_then_sees_what_it_committed(pool):
    await seeding.user(pool, ALICE)
    order = await create_deposit_order(
        pool, telegram_id=ALICE, currency="USDT", provider=PaymentProvider.DYNOPAY
    )

    async def second():
        async with db.transaction(pool) as tx:
            return await lock_order_context(tx, order_ref=order.ref)

    async with pool.acquire() as first, first.transaction():
        mine = await lock_order_context(first, order_ref=order.ref)
        assert mine.status is DepositStatus.OPEN and mine.wallet.available == 0
        await credit_deposit(
            first,
            provider=PaymentProvider.DYNOPAY,
            event_id="dyno-lock-1",
            order_ref=order.ref,
            currency="USDT",
            amount=D("25"),
        )
        waiting = asyncio.create_task(second())
        await seeding.until_blocked(pool)
        assert not waiting.done()
    # The first committed: the second one now holds the rows, as they are now.
    theirs = await asyncio.wait_for(waiting, timeout=30)
    assert theirs.status is DepositStatus.PAID
    assert theirs.wallet.id == mine.wallet.id and theirs.wallet.available == D(25)


async def test_the_payers_wallet_in_the_orders_currency_is_locked_too(pool):
    await seeding.user(pool, ALICE)
    await seeding.user(pool, BOB)
    escrow = await create_escrow(
        pool,
        buyer_telegram_id=ALICE,
        seller_handle=f"@user{BOB}",
        currency="USDT",
        amount=D("10"),
        description="A lamp",
        fee_split=FeeSplit.BUYER,
    )
    async with pool.acquire() as first, first.transaction():
        await lock_order_context(first, order_ref=escrow.payment_reference)
        # Another wallet of the payer is free ...
        assert await asyncio.wait_for(seeding.credit(pool, ALICE, "BTC", "1"), timeout=30) == 1
        # ... the order's is not, until the first transaction ends.
        waiting = asyncio.create_task(seeding.credit(pool, ALICE, "USDT", "5"))
        await seeding.until_blocked(pool)
        assert not waiting.done()
    assert await asyncio.wait_for(waiting, timeout=30) == D(5)
