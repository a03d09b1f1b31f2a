"""The housekeeping jobs: auto-release, expired rate locks, unpaid escrows, stale top-up
orders. Each changes exactly the rows that are due; a payment landing at the last second
is never undone; two processes running a job at once never act twice on one row; what
arrives after an expiry lands in the payer's wallet; the books balance (the pool fixture
reconciles after every test)."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
import seeding

from bot import db, jobs
from bot.data.enums import (
    DepositStatus,
    EscrowStatus,
    ExchangeStatus,
    FeeSplit,
    PaymentProvider,
)
from bot.data.errors import WrongStatus
from bot.data.escrow import (
    Escrow,
    accept_escrow,
    auto_release_due,
    create_escrow,
    expire_unpaid_escrows,
    fund_escrow_from_wallet,
    mark_delivered,
    release_escrow,
)
from bot.data.exchange import Quote, execute_exchange, expire_lapsed_locks, lock_rate
from bot.data.ledger import reconcile
from bot.data.wallet import (
    DepositOrder,
    create_deposit_order,
    credit_deposit,
    expire_stale_deposit_orders,
)
from bot.db import queries

BUYER, SELLER = 14001, 14002
D = Decimal
_keys = itertools.count(1)
_events = itertools.count(1)


@dataclass
class Context:
    """What a job reads of python-telegram-bot's CallbackContext."""

    bot_data: dict[str, Any] = field(default_factory=dict)


def within(awaitable, seconds: float = 30):  # float-ok: seconds
    """A guard: a job that waited on a row lock would hang here instead of skipping it."""
    return asyncio.wait_for(awaitable, seconds)


# --- the cast and their things ---------------------------------------------------------------


async def people(conn) -> None:
    await seeding.user(conn, BUYER)
    await seeding.user(conn, SELLER)
    await seeding.credit(conn, BUYER, "USDT", "100000")
    # One BTC is 97,500,000 NGN.
    await seeding.rate(conn, "BTC", "USD", "65000")
    await seeding.rate(conn, "USD", "NGN", "1500")


async def unpaid_escrow(conn, amount: str = "100") -> Escrow:
    return await create_escrow(
        conn,
        buyer_telegram_id=BUYER,
        seller_handle=f"@user{SELLER}",
        currency="USDT",
        amount=D(amount),
        description="A used bicycle",
        fee_split=FeeSplit.BUYER,
    )


async def fund(conn, escrow_id: int) -> None:
    await fund_escrow_from_wallet(
        conn, escrow_id=escrow_id, telegram_id=BUYER, idempotency_key=f"k-{next(_keys)}"
    )


async def delivered_escrow(conn) -> Escrow:
    e = await unpaid_escrow(conn)
    await fund(conn, e.id)
    await accept_escrow(conn, escrow_id=e.id, telegram_id=SELLER)
    return (await mark_delivered(conn, escrow_id=e.id, telegram_id=SELLER)).escrow


async def quote(conn, amount: str = "0.01") -> Quote:
    return await lock_rate(
        conn, telegram_id=BUYER, from_currency="BTC", to_currency="NGN", amount=D(amount)
    )


async def top_up_order(conn) -> DepositOrder:
    return await create_deposit_order(
        conn, telegram_id=BUYER, currency="USDT", provider=PaymentProvider.DYNOPAY
    )


async def pay(conn, order_ref: str, currency: str, amount: Decimal):
    """A provider's payment for `order_ref`, as the webhooks credit it."""
    return await credit_deposit(
        conn,
        provider=PaymentProvider.DYNOPAY,
        event_id=f"jobs-{next(_events)}",
        order_ref=order_ref,
        currency=currency,
        amount=amount,
    )


async def escrow_status(conn, escrow_id: int) -> EscrowStatus:
    return EscrowStatus(
        (await queries.escrow_test_state(conn, escrow_id=escrow_id))["escrow"]["status"]
    )


async def order_status(conn, order_id: int) -> ExchangeStatus:
    return ExchangeStatus((await queries.exchange_test_order(conn, order_id=order_id))["status"])


async def deposit_status(conn, ref: str) -> DepositStatus:
    return DepositStatus((await queries.wallet_test_deposit_order(conn, ref=ref))["status"])


async def transfers(conn, escrow_ids) -> dict[int, dict[str, int]]:
    """escrow id -> transfer kind -> how many."""
    counts: dict[int, dict[str, int]] = {}
    async for r in queries.escrow_test_transfers_by_escrow(conn, escrow_ids=list(escrow_ids)):
        counts.setdefault(r["escrow_id"], {})[r["kind"]] = r["transfers"]
    return counts


async def available(conn, telegram_id: int, currency: str) -> Decimal:
    return await queries.escrow_test_available(conn, telegram_id=telegram_id, currency=currency)


async def stale(conn, order: DepositOrder) -> None:
    """The order is older than the platform's deposit window (24 hours)."""
    await queries.wallet_test_age_deposit_order(conn, ref=order.ref, hours=25)


# --- each job changes exactly the rows that are due ------------------------------------------


async def test_auto_release_job_releases_the_due_escrows_only(pool, conn):
    await people(conn)
    due, not_yet = await delivered_escrow(conn), await delivered_escrow(conn)
    unpaid = await unpaid_escrow(conn)
    await queries.escrow_test_make_due(conn, escrow_id=due.id)
    ctx = Context({"pool": pool})

    assert await jobs.auto_release_job(ctx) == 1
    assert await escrow_status(conn, due.id) is EscrowStatus.COMPLETED
    assert await escrow_status(conn, not_yet.id) is EscrowStatus.DELIVERED
    assert await escrow_status(conn, unpaid.id) is EscrowStatus.AWAITING_PAYMENT
    assert await available(conn, SELLER, "USDT") == D("100")  # the buyer paid the fee
    assert (await transfers(conn, [due.id]))[due.id] == {"escrow_fund": 1, "escrow_release": 1}
    assert await jobs.auto_release_job(ctx) == 0


async def test_rate_lock_job_expires_the_lapsed_quotes_only(pool, conn):
    await people(conn)
    lapsed, fresh, done = await quote(conn), await quote(conn), await quote(conn)
    await seeding.credit(conn, BUYER, "BTC", "0.01")
    await execute_exchange(conn, telegram_id=BUYER, order_id=done.order_id)
    for q in (lapsed, done):
        await queries.exchange_test_lapse_lock(conn, order_id=q.order_id)
    ctx = Context({"pool": pool})

    assert await jobs.expire_rate_locks_job(ctx) == 1
    assert await order_status(conn, lapsed.order_id) is ExchangeStatus.EXPIRED
    assert await order_status(conn, fresh.order_id) is ExchangeStatus.QUOTED
    assert await order_status(conn, done.order_id) is ExchangeStatus.COMPLETED
    assert await jobs.expire_rate_locks_job(ctx) == 0
    # The quote still holding its lock can still be taken.
    await seeding.credit(conn, BUYER, "BTC", "0.01")
    await execute_exchange(conn, telegram_id=BUYER, order_id=fresh.order_id)
    assert await order_status(conn, fresh.order_id) is ExchangeStatus.COMPLETED


async def test_unpaid_escrow_job_expires_the_unpaid_escrows_past_their_deadline_only(pool, conn):
    await people(conn)
    lapsed, in_time, paid = [await unpaid_escrow(conn) for _ in range(3)]
    await fund(conn, paid.id)
    for e in (lapsed, paid):
        await queries.escrow_test_lapse_payment_deadline(conn, escrow_id=e.id)
    ctx = Context({"pool": pool})

    assert await jobs.expire_unpaid_escrows_job(ctx) == 1
    assert await escrow_status(conn, lapsed.id) is EscrowStatus.EXPIRED
    assert await escrow_status(conn, in_time.id) is EscrowStatus.AWAITING_PAYMENT
    # Paid in time: the money it holds stays held, whatever its old deadline says.
    assert await escrow_status(conn, paid.id) is EscrowStatus.FUNDED
    assert await queries.escrow_test_holding(conn, escrow_id=paid.id) == D("105")
    assert await jobs.expire_unpaid_escrows_job(ctx) == 0


async def test_deposit_order_job_expires_the_stale_open_orders_only(pool, conn):
    await people(conn)
    old, recent, paid = [await top_up_order(conn) for _ in range(3)]
    await pay(conn, paid.ref, "USDT", D("10"))
    for order in (old, paid):
        await stale(conn, order)
    # 23 hours is inside the 24-hour window.
    await queries.wallet_test_age_deposit_order(conn, ref=recent.ref, hours=23)
    ctx = Context({"pool": pool})

    assert await jobs.expire_deposit_orders_job(ctx) == 1
    assert await deposit_status(conn, old.ref) is DepositStatus.EXPIRED
    assert await deposit_status(conn, recent.ref) is DepositStatus.OPEN
    assert await deposit_status(conn, paid.ref) is DepositStatus.PAID
    assert await jobs.expire_deposit_orders_job(ctx) == 0


# --- a payment at the last second is never undone --------------------------------------------


async def test_a_quote_paid_at_the_last_second_is_not_expired(pool, conn):
    await people(conn)
    q = await quote(conn)
    ctx = Context({"pool": pool})
    async with pool.acquire() as webhook:
        async with webhook.transaction():
            # The payment's transaction starts while the lock holds (its now() honours
            # it); the lock then runs out before the payment commits.
            await queries.exchange_test_lock_until_clock(conn, order_id=q.order_id)
            credit = await pay(webhook, q.payment_reference, "BTC", D("0.01"))
            assert credit.refused is None and credit.applied is not None
            # The job sees a quoted order past its lock, held by the payment: skipped,
            # without waiting for it.
            assert await within(jobs.expire_rate_locks_job(ctx)) == 0
        # Committed: completed, and the guard leaves it so.
        assert await jobs.expire_rate_locks_job(ctx) == 0
    assert await order_status(conn, q.order_id) is ExchangeStatus.COMPLETED
    assert await queries.exchange_test_transfers(conn, order_id=q.order_id) == 1
    assert await available(conn, BUYER, "NGN") == q.to_amount
    assert await available(conn, BUYER, "BTC") == 0


async def test_an_escrow_paid_at_the_last_second_is_not_expired(pool, conn):
    await people(conn)
    e = await unpaid_escrow(conn)
    await queries.escrow_test_lapse_payment_deadline(conn, escrow_id=e.id)
    ctx = Context({"pool": pool})
    async with pool.acquire() as webhook:
        async with webhook.transaction():
            credit = await pay(webhook, e.payment_reference, "USDT", D("105"))
            assert credit.refused is None and credit.applied is not None
            assert await within(jobs.expire_unpaid_escrows_job(ctx)) == 0
        assert await jobs.expire_unpaid_escrows_job(ctx) == 0
    assert await escrow_status(conn, e.id) is EscrowStatus.FUNDED
    assert await queries.escrow_test_holding(conn, escrow_id=e.id) == D("105")


async def test_a_top_up_paid_at_the_last_second_is_not_expired(pool, conn):
    await people(conn)
    order = await top_up_order(conn)
    await stale(conn, order)
    ctx = Context({"pool": pool})
    async with pool.acquire() as webhook:
        async with webhook.transaction():
            await pay(webhook, order.ref, "USDT", D("7"))
            assert await within(jobs.expire_deposit_orders_job(ctx)) == 0
        assert await jobs.expire_deposit_orders_job(ctx) == 0
    assert await deposit_status(conn, order.ref) is DepositStatus.PAID


async def test_a_release_in_progress_is_left_to_it(pool, conn):
    await people(conn)
    e = await delivered_escrow(conn)
    await queries.escrow_test_make_due(conn, escrow_id=e.id)
    ctx = Context({"pool": pool})
    async with pool.acquire() as buyer, buyer.transaction():
        # The buyer releases by hand; the job, meanwhile, does not wait for them.
        await release_escrow(buyer, escrow_id=e.id, telegram_id=BUYER)
        assert await within(jobs.auto_release_job(ctx)) == 0
    assert await jobs.auto_release_job(ctx) == 0
    assert (await transfers(conn, [e.id]))[e.id] == {"escrow_fund": 1, "escrow_release": 1}


# --- after an expiry, nothing is lost -------------------------------------------------------


async def test_payments_that_come_after_an_expiry_land_in_the_payers_wallet(pool, conn):
    await people(conn)
    e, q, order = await unpaid_escrow(conn), await quote(conn), await top_up_order(conn)
    await queries.escrow_test_lapse_payment_deadline(conn, escrow_id=e.id)
    await queries.exchange_test_lapse_lock(conn, order_id=q.order_id)
    await stale(conn, order)
    ctx = Context({"pool": pool})
    assert await jobs.expire_unpaid_escrows_job(ctx) == 1
    assert await jobs.expire_rate_locks_job(ctx) == 1
    assert await jobs.expire_deposit_orders_job(ctx) == 1
    usdt = await available(conn, BUYER, "USDT")

    late = await pay(conn, e.payment_reference, "USDT", D("105"))
    assert isinstance(late.refused, WrongStatus)
    assert await escrow_status(conn, e.id) is EscrowStatus.EXPIRED
    late = await pay(conn, q.payment_reference, "BTC", D("0.01"))
    assert isinstance(late.refused, WrongStatus)
    assert await order_status(conn, q.order_id) is ExchangeStatus.EXPIRED
    await pay(conn, order.ref, "USDT", D("3"))
    # A top-up is taken whenever it comes: the order says so.
    assert await deposit_status(conn, order.ref) is DepositStatus.PAID

    assert await available(conn, BUYER, "USDT") == usdt + D("108")
    assert await available(conn, BUYER, "BTC") == D("0.01")
    assert await queries.escrow_test_holding(conn, escrow_id=e.id) == 0


# --- two processes at once --------------------------------------------------------------------


async def _race(pool, sweep, limit: int) -> tuple[list[int], list[int]]:
    """Two runs of `sweep`, each on its own pooled connection, at once, in small batches so
    that their statements interleave."""

    async def run() -> list[int]:
        async with pool.acquire() as c:
            return await sweep(c, limit=limit)

    return tuple(await within(asyncio.gather(run(), run())))


def assert_split(first: list[int], second: list[int], due: set[int]) -> None:
    assert not set(first) & set(second), "a row was acted on twice"
    assert len(first) == len(set(first)) and len(second) == len(set(second))
    assert set(first) | set(second) == due


N = 24


async def test_two_auto_release_runs_release_each_escrow_once(pool, conn):
    await people(conn)
    due = set()
    for _ in range(N):
        e = await delivered_escrow(conn)
        await queries.escrow_test_make_due(conn, escrow_id=e.id)
        due.add(e.id)
    first, second = await _race(pool, auto_release_due, 3)
    assert_split(first, second, due)
    assert await transfers(conn, due) == {i: {"escrow_fund": 1, "escrow_release": 1} for i in due}
    assert await available(conn, SELLER, "USDT") == N * D("100")


async def test_two_rate_lock_runs_expire_each_quote_once(pool, conn):
    await people(conn)
    due = set()
    for _ in range(N):
        q = await quote(conn)
        await queries.exchange_test_lapse_lock(conn, order_id=q.order_id)
        due.add(q.order_id)
    first, second = await _race(pool, expire_lapsed_locks, 3)
    assert_split(first, second, due)
    assert {await order_status(conn, i) for i in due} == {ExchangeStatus.EXPIRED}


async def test_two_payment_deadline_runs_expire_each_escrow_once(pool, conn):
    await people(conn)
    due = set()
    for _ in range(N):
        e = await unpaid_escrow(conn)
        await queries.escrow_test_lapse_payment_deadline(conn, escrow_id=e.id)
        due.add(e.id)
    first, second = await _race(pool, expire_unpaid_escrows, 3)
    assert_split(first, second, due)
    assert {await escrow_status(conn, i) for i in due} == {EscrowStatus.EXPIRED}
    assert await transfers(conn, due) == {}  # no money moved


async def test_two_deposit_order_runs_expire_each_order_once(pool, conn):
    await people(conn)
    refs = {}
    for _ in range(N):
        order = await top_up_order(conn)
        await stale(conn, order)
        refs[order.id] = order.ref
    first, second = await _race(pool, expire_stale_deposit_orders, 3)
    assert_split(first, second, set(refs))
    assert {await deposit_status(conn, r) for r in refs.values()} == {DepositStatus.EXPIRED}


async def test_two_processes_running_every_job_at_once_act_once_on_each_row(database_url):
    """Every job twice at once, as two bot processes would run them, while buyers release
    by hand and payments land on escrows past their deadline: whoever comes first wins,
    each row changes once, and no money is lost."""
    pool = await db.create_pool(database_url, min_size=1, max_size=20)
    try:
        async with pool.acquire() as conn:
            await people(conn)
            due, unpaid, lapsed, stale_orders = [], [], set(), set()
            for _ in range(10):
                e = await delivered_escrow(conn)
                await queries.escrow_test_make_due(conn, escrow_id=e.id)
                due.append(e)
                e = await unpaid_escrow(conn)
                await queries.escrow_test_lapse_payment_deadline(conn, escrow_id=e.id)
                unpaid.append(e)
                q = await quote(conn)
                await queries.exchange_test_lapse_lock(conn, order_id=q.order_id)
                lapsed.add(q.order_id)
                order = await top_up_order(conn)
                await stale(conn, order)
                stale_orders.add(order.ref)
            usdt_before = await available(conn, BUYER, "USDT")
        ctx = Context({"pool": pool})

        async def release_by_hand(e: Escrow) -> bool:
            try:
                await release_escrow(pool, escrow_id=e.id, telegram_id=BUYER)
            except WrongStatus:  # the job released it first
                return False
            return True

        async def payment(e: Escrow) -> bool:
            async with pool.acquire() as c:
                credit = await pay(c, e.payment_reference, "USDT", D("105"))
            return credit.refused is None  # refused: the job expired it first

        sweeps = (
            jobs.auto_release_job,
            jobs.expire_rate_locks_job,
            jobs.expire_unpaid_escrows_job,
            jobs.expire_deposit_orders_job,
        )
        results = await within(
            asyncio.gather(
                *(job(ctx) for job in sweeps for _ in range(2)),
                *(release_by_hand(e) for e in due[:5]),
                *(payment(e) for e in unpaid[:5]),
            )
        )
        counts, by_hand, paid = results[:8], results[8:13], results[13:]
        released, expired, quotes, orders = (counts[i] + counts[i + 1] for i in range(0, 8, 2))
        assert released + sum(by_hand) == 10
        assert expired + sum(paid) == 10
        assert (quotes, orders) == (10, 10)

        async with pool.acquire() as conn:
            ids = [e.id for e in due]
            assert await transfers(conn, ids) == {
                i: {"escrow_fund": 1, "escrow_release": 1} for i in ids
            }
            assert {await escrow_status(conn, i) for i in ids} == {EscrowStatus.COMPLETED}
            assert await available(conn, SELLER, "USDT") == 10 * D("100")
            for e, was_paid in itertools.zip_longest(unpaid, paid, fillvalue=False):
                status = await escrow_status(conn, e.id)
                holding = await queries.escrow_test_holding(conn, escrow_id=e.id)
                if was_paid:
                    assert (status, holding) == (EscrowStatus.FUNDED, D("105"))
                else:
                    assert (status, holding) == (EscrowStatus.EXPIRED, 0)
            # Each payment came in; the ones that lost to the job stayed in the wallet.
            assert await available(conn, BUYER, "USDT") == usdt_before + (5 - sum(paid)) * D("105")
            assert {await order_status(conn, i) for i in lapsed} == {ExchangeStatus.EXPIRED}
            assert {await deposit_status(conn, r) for r in stale_orders} == {DepositStatus.EXPIRED}
            assert await reconcile(conn) == []
    finally:
        await pool.close()


# --- the sweeps reach their rows through their indexes ----------------------------------------


@pytest.mark.parametrize(
    ("query", "index"),
    [
        ("escrow_auto_release_batch", "escrows_auto_release"),
        ("escrow_expire_unpaid_batch", "escrows_payment_deadline"),
        ("exchange_expire_lapsed_locks", "exchange_orders_lock_expiry"),
        ("wallet_expire_stale_deposit_orders", "deposit_orders_open"),
    ],
)
async def test_a_sweep_can_use_its_partial_index(database_url, query, index):
    """With sequential scans priced out, the plan takes the index: its predicate matches
    the sweep's (at scale the planner picks it on its own; these tables are tiny here)."""
    # Without the project's json codecs: asyncpg decodes the plan itself.
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():  # EXPLAIN alone runs nothing
            await queries.wallet_test_forbid_seq_scans(conn)
            statement = await conn.prepare(getattr(queries, query).sql)
            [plan] = await statement.explain(100)
    finally:
        await conn.close()
    assert index in _index_names(plan["Plan"]), plan


def _index_names(plan: dict[str, Any]) -> set[str]:
    names = {plan["Index Name"]} if "Index Name" in plan else set()
    for child in plan.get("Plans", ()):
        names |= _index_names(child)
    return names


# --- scheduling -------------------------------------------------------------------------------


async def test_schedule_jobs_registers_each_job_once_and_the_real_queue_runs_them(pool, telegram):
    from bot.app import build_application
    from bot.handlers.ui import Settings

    app = build_application(
        token="123456:TEST", settings=Settings(admin_ids=frozenset()), pool=pool, request=telegram
    )
    # Not started: nothing fires on its own; the test runs each job itself.
    jobs.schedule_jobs(app.job_queue)
    scheduled = jobs.schedule_jobs(app.job_queue, intervals={"deposit-order-expiry": 600})
    names = sorted(j.name for j in app.job_queue.jobs())
    assert names == sorted(jobs.JOB_NAMES)  # the second call replaced the first
    every = {j.name: j.job.trigger.interval for j in scheduled}
    assert every == {
        "escrow-auto-release": timedelta(seconds=60),
        "exchange-lock-expiry": timedelta(seconds=60),
        "escrow-payment-expiry": timedelta(seconds=300),
        "deposit-order-expiry": timedelta(seconds=600),
    }
    with pytest.raises(ValueError, match="no such job"):
        jobs.schedule_jobs(app.job_queue, intervals={"coffee": 1})
    with pytest.raises(ValueError, match="more than 0"):
        jobs.schedule_jobs(app.job_queue, intervals={"escrow-auto-release": 0})

    async with pool.acquire() as conn:
        await people(conn)
        d = await delivered_escrow(conn)
        await queries.escrow_test_make_due(conn, escrow_id=d.id)
        e = await unpaid_escrow(conn)
        await queries.escrow_test_lapse_payment_deadline(conn, escrow_id=e.id)
        q = await quote(conn)
        await queries.exchange_test_lapse_lock(conn, order_id=q.order_id)
        order = await top_up_order(conn)
        await stale(conn, order)
        for job in scheduled:
            await job.run(app)
        assert "errors" not in app.bot_data
        assert await escrow_status(conn, d.id) is EscrowStatus.COMPLETED
        assert await escrow_status(conn, e.id) is EscrowStatus.EXPIRED
        assert await order_status(conn, q.order_id) is ExchangeStatus.EXPIRED
        assert await deposit_status(conn, order.ref) is DepositStatus.EXPIRED


async def test_a_failing_run_reaches_the_error_handler_and_the_next_run_goes_on(
    pool, database_url, telegram
):
    """The database away for one run: the Application's error handler hears of it; the
    job stays scheduled and the next run does the work."""
    from bot.app import build_application
    from bot.handlers.ui import Settings

    app = build_application(
        token="123456:TEST", settings=Settings(admin_ids=frozenset()), pool=pool, request=telegram
    )
    heard: asyncio.Future = asyncio.get_running_loop().create_future()

    async def listen(update, context) -> None:
        if not heard.done():
            heard.set_result(context.error)

    app.add_error_handler(listen)
    [job] = [j for j in jobs.schedule_jobs(app.job_queue) if j.name == "escrow-auto-release"]
    async with pool.acquire() as conn:
        await people(conn)
        e = await delivered_escrow(conn)
        await queries.escrow_test_make_due(conn, escrow_id=e.id)

        gone = await db.create_pool(database_url, min_size=0, max_size=1)
        await gone.close()
        app.bot_data["pool"] = gone
        await job.run(app)
        error = await within(heard)
        assert isinstance(error, asyncpg.InterfaceError)
        assert app.bot_data["errors"] == [error]  # the bot's own handler logged it too
        assert await escrow_status(conn, e.id) is EscrowStatus.DELIVERED

        app.bot_data["pool"] = pool
        await job.run(app)
        assert await escrow_status(conn, e.id) is EscrowStatus.COMPLETED
    assert [j.name for j in app.job_queue.get_jobs_by_name("escrow-auto-release")] == [
        "escrow-auto-release"
    ]
