"""The admin screens: the dashboard from trigger-kept counters (agreeing with a full count
after random movements, reading nothing but the counters), the user list and the
transaction review (keyset pages, search, one round trip each).

Set LOCKBAY_ADMIN_SEED to replay the random movements; the seed is printed.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import uuid
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest
import seeding
from pytest_postgresql.janitor import AsyncDatabaseJanitor

from bot import db
from bot.data.admin import (
    DashboardStats,
    _search_terms,
    dashboard_stats,
    dashboard_stats_exact,
    transaction_review,
    user_page,
)
from bot.data.dispute import open_dispute, resolve_dispute
from bot.data.enums import (
    AccountKind,
    EscrowStatus,
    FeeSplit,
    OnboardingStep,
    PaymentProvider,
    TransferKind,
    TransferStatus,
)
from bot.data.errors import DomainError
from bot.data.escrow import (
    accept_escrow,
    cancel_escrow,
    create_escrow,
    decline_escrow,
    fund_escrow_from_wallet,
    mark_delivered,
    refund_escrow,
    release_escrow,
)
from bot.data.ledger import reconcile
from bot.data.onboarding import (
    accept_terms,
    register_user,
    start_email_verification,
    verify_email_otp,
)
from bot.data.rows import PageCursor
from bot.data.wallet import (
    BankDestination,
    CryptoDestination,
    approve_cashout,
    create_deposit_order,
    credit_deposit,
    fail_cashout,
    request_cashout,
    settle_cashout,
)
from bot.db import queries

D = Decimal
ADMIN = 5999
TRON = CryptoDestination(network="TRC20", address="T" + "x" * 33)
GTB = BankDestination(bank_code="058", account_number="0123456789", account_name="TEST HOLDER")
DESTINATION = {"USDT": TRON, "NGN": GTB}
PROVIDER = {"USDT": PaymentProvider.BLOCKBEE, "NGN": PaymentProvider.FINCRA}
PLACES = {"USDT": 6, "NGN": 2}
_events = itertools.count(1)


async def one_trip(awaitable):
    """Runs one screen and asserts it cost exactly one round trip."""
    async with db.meter.measure() as m:
        result = await awaitable
    assert m.round_trips == 1, m.statements
    return result


async def agreed(conn_or_pool, note: str = "") -> DashboardStats:
    """The counters' dashboard, asserted equal, number for number, to the full count
    taken from the same snapshot at the same now()."""
    if isinstance(conn_or_pool, asyncpg.Pool):
        async with conn_or_pool.acquire() as conn:
            return await agreed(conn, note)
    async with conn_or_pool.transaction(isolation="repeatable_read"):
        stats = await dashboard_stats(conn_or_pool)
        exact = await dashboard_stats_exact(conn_or_pool)
    assert asdict(stats) == asdict(exact), note
    return stats


async def deposit(conn, telegram_id: int, currency: str, amount: str | Decimal) -> None:
    order = await create_deposit_order(
        conn, telegram_id=telegram_id, currency=currency, provider=PROVIDER[currency]
    )
    await credit_deposit(
        conn,
        provider=PROVIDER[currency],
        event_id=f"admin-evt-{next(_events)}",
        order_ref=order.ref,
        currency=currency,
        amount=D(amount),
    )


async def onboard(conn, telegram_id: int) -> None:
    """The real sign-up: e-mail, one-time code, terms."""
    v = await start_email_verification(
        conn, telegram_id=telegram_id, email=f"u{telegram_id}@example.com"
    )
    assert (await verify_email_otp(conn, telegram_id=telegram_id, code=v.code)).verified
    await accept_terms(conn, telegram_id=telegram_id)


def plan_walk(plan) -> set[str]:
    """Every table an EXPLAIN (FORMAT JSON) plan reads."""
    found: set[str] = set()
    stack = [plan]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "Relation Name" in node:
                found.add(node["Relation Name"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


# --- dashboard ----------------------------------------------------------------


async def test_the_dashboard_is_one_statement_whose_plan_reads_only_the_counters(
    conn, database_url
):
    await seeding.user(conn, 5001)
    async with db.meter.measure() as m:
        stats = await dashboard_stats(conn)
    assert m.round_trips == 1 and stats.users_total == 1
    assert await one_trip(dashboard_stats_exact(conn)) == stats
    # The constant cost: whatever the tables hold, the plan touches dashboard_counters alone,
    # while the full count reads the tables themselves. (A plain connection: asyncpg's
    # explain() decodes the JSON plan itself, which this project's codec already did.)
    plain = await asyncpg.connect(database_url)
    try:
        fast = await (await plain.prepare(queries.admin_dashboard_stats.sql)).explain()
        full = await (await plain.prepare(queries.admin_dashboard_stats_exact.sql)).explain()
    finally:
        await plain.close()
    assert plan_walk(fast) == {"dashboard_counters"}
    assert {"users", "escrows", "disputes", "cashouts", "ledger_entries"} <= plan_walk(full)


async def test_an_empty_platform_shows_every_escrow_status_at_zero(pool):
    stats = await agreed(pool)
    assert [s.status for s in stats.escrows_by_status] == list(EscrowStatus)
    assert all(s.count == 0 for s in stats.escrows_by_status)
    assert (stats.users_total, stats.users_onboarded, stats.users_new_24h) == (0, 0, 0)
    assert stats.funds_held == stats.cashouts_pending == stats.volume_24h == ()
    assert stats.open_disputes == stats.cashouts_pending_count == 0
    assert stats.window_start.minute == 0 and stats.window_start.second == 0


async def test_each_movement_moves_its_counter(pool):
    buyer, seller = 5001, 5002
    await register_user(pool, telegram_id=buyer, username="dash_buyer", first_name="B")
    await register_user(pool, telegram_id=seller, username="dash_seller", first_name="S")
    await seeding.user(pool, ADMIN)
    await seeding.make_admin(pool, ADMIN)
    stats = await dashboard_stats(pool)
    assert (stats.users_total, stats.users_onboarded, stats.users_new_24h) == (3, 1, 3)

    await onboard(pool, buyer)
    assert (await dashboard_stats(pool)).users_onboarded == 2

    await deposit(pool, buyer, "USDT", "500")
    assert (await dashboard_stats(pool)).volume_24h[0].amount == D(500)

    escrow = await create_escrow(
        pool,
        buyer_telegram_id=buyer,
        seller_handle="@dash_seller",
        currency="USDT",
        amount=D(100),
        description="a trade",
        fee_split=FeeSplit.BUYER,
    )
    stats = await dashboard_stats(pool)
    assert stats.escrows(EscrowStatus.AWAITING_PAYMENT) == 1 and stats.funds_held == ()

    await fund_escrow_from_wallet(pool, escrow_id=escrow.id, telegram_id=buyer, idempotency_key="k")
    stats = await dashboard_stats(pool)
    assert stats.escrows(EscrowStatus.AWAITING_PAYMENT) == 0
    assert stats.escrows(EscrowStatus.FUNDED) == 1
    assert [(f.currency, f.amount) for f in stats.funds_held] == [("USDT", D(105))]

    await accept_escrow(pool, escrow_id=escrow.id, telegram_id=seller)
    dispute = await open_dispute(pool, escrow_id=escrow.id, telegram_id=buyer, reason="late")
    stats = await dashboard_stats(pool)
    assert stats.escrows(EscrowStatus.DISPUTED) == 1 and stats.open_disputes == 1
    assert stats.funds_held[0].amount == D(105)

    await resolve_dispute(pool, dispute_id=dispute.id, admin_telegram_id=ADMIN, buyer_share=D(40))
    stats = await dashboard_stats(pool)
    assert stats.open_disputes == 0 and stats.funds_held == ()
    assert stats.escrows(EscrowStatus.COMPLETED) == 1
    assert sum(s.count for s in stats.escrows_by_status) == 1

    cashout = await request_cashout(
        pool,
        telegram_id=buyer,
        currency="USDT",
        amount=D(50),
        destination=TRON,
        idempotency_key="c1",
    )
    stats = await dashboard_stats(pool)
    assert stats.cashouts_pending_count == 1
    assert [(c.currency, c.count, c.amount) for c in stats.cashouts_pending] == [("USDT", 1, D(50))]
    await approve_cashout(pool, cashout_id=cashout.id, admin_telegram_id=ADMIN)
    assert (await dashboard_stats(pool)).cashouts_pending_count == 1  # approved: still in flight
    await settle_cashout(
        pool, cashout_id=cashout.id, provider=PaymentProvider.BLOCKBEE, provider_reference="p1"
    )
    stats = await agreed(pool)
    assert stats.cashouts_pending_count == 0 and stats.cashouts_pending == ()


async def test_a_rolled_back_transaction_or_savepoint_leaves_no_count_behind(pool):
    await seeding.user(pool, 5001)
    before = await dashboard_stats(pool)

    class Abandon(Exception):
        pass

    with pytest.raises(Abandon):
        async with db.transaction(pool) as tx:
            await register_user(tx, telegram_id=5002, username="gone", first_name="G")
            await deposit(tx, 5001, "USDT", "10")
            raise Abandon
    assert await dashboard_stats(pool) == before

    async with db.transaction(pool) as tx:
        await deposit(tx, 5001, "USDT", "7")
        with pytest.raises(Abandon):
            async with tx.transaction():  # a savepoint
                await register_user(tx, telegram_id=5003, username="gone2", first_name="G")
                await deposit(tx, 5001, "NGN", "5000")
                raise Abandon
        # Counters move at commit: inside the transaction they still show the last commit.
        assert await dashboard_stats(tx) == before
    stats = await agreed(pool)
    assert stats.users_total == 1
    assert [(v.currency, v.amount) for v in stats.volume_24h] == [("USDT", D(7))]


async def test_the_24_hour_figures_count_whole_hours_back_from_the_hour_24_hours_ago(pool):
    for telegram_id in (5001, 5002, 5003):
        await register_user(
            pool, telegram_id=telegram_id, username=f"h{telegram_id}", first_name="H"
        )
        await deposit(pool, telegram_id, "USDT", str(telegram_id - 5000))
    await queries.admin_test_age_user(pool, telegram_id=5002, age=timedelta(hours=23))
    await queries.admin_test_age_user(pool, telegram_id=5003, age=timedelta(hours=30))

    stats = await agreed(pool)
    assert (stats.users_total, stats.users_new_24h) == (3, 2)
    # Volume: the deposits of the new user (1) and of the one who came 23 hours ago (2).
    assert [(v.currency, v.amount) for v in stats.volume_24h] == [("USDT", D(3))]
    assert stats.window_start.minute == stats.window_start.second == 0
    assert timedelta(hours=24) <= datetime.now(UTC) - stats.window_start < timedelta(hours=25)


WORKERS = 6
MOVEMENTS = 300


class Platform:
    """The random movements' cast and what they left behind."""

    def __init__(self, pool, seed: int) -> None:
        self.pool = pool
        self.seed = seed
        self.users: list[int] = []
        self.not_onboarded: list[int] = []
        self.next_user = itertools.count(5101)
        self.done: dict[str, int] = {}
        self.refused: dict[str, int] = {}

    async def register(self, rng: random.Random) -> None:
        telegram_id = next(self.next_user)
        if self.users and rng.random() < 0.3:
            # A trade waiting for a seller with no account yet, linked at registration.
            await create_escrow(
                self.pool,
                buyer_telegram_id=rng.choice(self.users),
                seller_handle=f"@r{telegram_id}",
                currency="USDT",
                amount=D(20),
                description="for a newcomer",
                fee_split=FeeSplit.SPLIT,
            )
        await register_user(
            self.pool, telegram_id=telegram_id, username=f"r{telegram_id}", first_name="R"
        )
        self.users.append(telegram_id)
        self.not_onboarded.append(telegram_id)

    async def onboard(self, rng: random.Random) -> None:
        if not self.not_onboarded:
            return
        telegram_id = self.not_onboarded.pop(rng.randrange(len(self.not_onboarded)))
        await onboard(self.pool, telegram_id)

    async def deposit(self, rng: random.Random) -> None:
        currency = rng.choice(["USDT", "NGN"])
        high = 600 if currency == "USDT" else 600_000
        await deposit(self.pool, rng.choice(self.users), currency, self.amount(rng, currency, high))

    @staticmethod
    def amount(rng: random.Random, currency: str, high: int) -> Decimal:
        low = 5 if currency == "USDT" else 1000
        cents = rng.randrange(low * 100, high * 100)
        return (D(cents) / 100).quantize(D(1).scaleb(-PLACES[currency]))

    async def cashout(self, rng: random.Random) -> None:
        currency = rng.choice(["USDT", "NGN"])
        high = 200 if currency == "USDT" else 200_000
        cashout = await request_cashout(
            self.pool,
            telegram_id=rng.choice(self.users),
            currency=currency,
            amount=self.amount(rng, currency, high),
            destination=DESTINATION[currency],
            idempotency_key=f"co-{rng.random()}",
        )
        fate = rng.choice(["settle", "fail", "approve", "pending"])
        if fate == "approve":
            await approve_cashout(self.pool, cashout_id=cashout.id, admin_telegram_id=ADMIN)
            fate = rng.choice(["settle", "approved"])
        if fate == "settle":
            await settle_cashout(
                self.pool,
                cashout_id=cashout.id,
                provider=PROVIDER[currency],
                provider_reference=f"p-{cashout.id}",
            )
        elif fate == "fail":
            await fail_cashout(self.pool, cashout_id=cashout.id, reason="provider said no")

    async def escrow(self, rng: random.Random) -> None:
        buyer, seller = rng.sample(self.users, 2)
        currency = rng.choice(["USDT", "NGN"])
        high = 150 if currency == "USDT" else 150_000
        escrow = await create_escrow(
            self.pool,
            buyer_telegram_id=buyer,
            seller_handle=f"@r{seller}",
            currency=currency,
            amount=self.amount(rng, currency, high),
            description="dashboard trade",
            fee_split=rng.choice(list(FeeSplit)),
        )
        e = dict(escrow_id=escrow.id)
        path = rng.choice(
            ["cancel", "unpaid", "decline", "refund", "release", "deliver", "dispute", "funded"]
        )
        if path == "cancel":
            await cancel_escrow(self.pool, **e, telegram_id=buyer)
            return
        if path == "unpaid":
            return
        if rng.random() < 0.3:  # paid by a provider straight to the escrow's reference
            await credit_deposit(
                self.pool,
                provider=PROVIDER[currency],
                event_id=f"esc-{self.seed}-{escrow.id}",
                order_ref=escrow.ref,
                currency=currency,
                amount=escrow.amount + escrow.buyer_fee,
            )
        else:
            await fund_escrow_from_wallet(
                self.pool, **e, telegram_id=buyer, idempotency_key=f"f-{escrow.id}"
            )
        if path == "funded":
            return
        if path == "decline":
            await decline_escrow(self.pool, **e, telegram_id=seller)
            return
        await accept_escrow(self.pool, **e, telegram_id=seller)
        if path == "refund":
            await refund_escrow(self.pool, **e, telegram_id=seller)
        elif path in ("release", "deliver"):
            await mark_delivered(self.pool, **e, telegram_id=seller)
            if path == "release":
                await release_escrow(self.pool, **e, telegram_id=buyer)
        else:
            dispute = await open_dispute(self.pool, **e, telegram_id=buyer, reason="not as said")
            if rng.random() < 0.6:
                share = (escrow.amount * rng.randint(0, 100) / 100).quantize(
                    D(1).scaleb(-PLACES[currency])
                )
                await resolve_dispute(
                    self.pool, dispute_id=dispute.id, admin_telegram_id=ADMIN, buyer_share=share
                )

    async def abandoned(self, rng: random.Random) -> None:
        """Movements in a transaction (and in a savepoint) that roll back."""

        class Abandon(Exception):
            pass

        user = rng.choice(self.users)
        try:
            async with db.transaction(self.pool) as tx:
                await deposit(tx, user, "USDT", "42")
                try:
                    async with tx.transaction():
                        await register_user(
                            tx, telegram_id=next(self.next_user), username=None, first_name="X"
                        )
                        raise Abandon
                except Abandon:
                    pass
                if rng.random() < 0.5:
                    raise Abandon
        except Abandon:
            pass

    async def corners(self) -> None:
        """What the random run may have left out, between two users of its own: a user
        who came long ago, funds held by a funded, a delivered and a disputed escrow, a
        live dispute, a cashout in flight."""
        buyer, seller = next(self.next_user), next(self.next_user)
        for telegram_id in (buyer, seller):
            await register_user(
                self.pool, telegram_id=telegram_id, username=f"r{telegram_id}", first_name="C"
            )
        await deposit(self.pool, buyer, "USDT", "1000")
        for n, path in enumerate(["funded", "delivered", "disputed"]):
            escrow = await create_escrow(
                self.pool,
                buyer_telegram_id=buyer,
                seller_handle=f"@r{seller}",
                currency="USDT",
                amount=D(50),
                description="corner",
                fee_split=FeeSplit.SPLIT,
            )
            e = dict(escrow_id=escrow.id)
            await fund_escrow_from_wallet(self.pool, **e, telegram_id=buyer, idempotency_key=str(n))
            if path != "funded":
                await accept_escrow(self.pool, **e, telegram_id=seller)
            if path == "delivered":
                await mark_delivered(self.pool, **e, telegram_id=seller)
            if path == "disputed":
                await open_dispute(self.pool, **e, telegram_id=seller, reason="corner")
        await request_cashout(
            self.pool,
            telegram_id=buyer,
            currency="USDT",
            amount=D(10),
            destination=TRON,
            idempotency_key="corner",
        )
        await queries.admin_test_age_user(self.pool, telegram_id=seller, age=timedelta(days=3))

    async def age(self, rng: random.Random) -> None:
        await queries.admin_test_age_user(
            self.pool,
            telegram_id=rng.choice(self.users),
            age=timedelta(hours=rng.choice([2, 23, 30, 100])),
        )


async def test_the_counters_agree_with_a_full_count_after_hundreds_of_random_movements(
    database_url,
):
    seed = int(os.environ.get("LOCKBAY_ADMIN_SEED") or random.randrange(2**32))
    print(f"admin dashboard seed: {seed} (replay with LOCKBAY_ADMIN_SEED={seed})")
    pool = await db.create_pool(database_url, min_size=WORKERS, max_size=WORKERS)
    try:
        await seeding.user(pool, ADMIN)
        await seeding.make_admin(pool, ADMIN)
        p = Platform(pool, seed)
        for _ in range(12):
            await p.register(random.Random(f"{seed}:setup"))
        kinds = (
            [p.register] * 6
            + [p.onboard] * 6
            + [p.deposit] * 30
            + [p.cashout] * 15
            + [p.escrow] * 35
            + [p.abandoned] * 5
            + [p.age] * 3
        )
        queue = iter(range(MOVEMENTS))

        async def worker() -> None:
            for n in queue:
                rng = random.Random(f"{seed}:{n}")
                movement = rng.choice(kinds)
                name = movement.__name__
                try:
                    await movement(rng)
                    p.done[name] = p.done.get(name, 0) + 1
                except DomainError as refused:  # normal traffic: too little money, a race lost
                    p.refused[type(refused).__name__] = p.refused.get(type(refused).__name__, 0) + 1
                except asyncpg.DeadlockDetectedError as e:
                    pytest.fail(f"deadlock in {name} #{n} (seed {seed}): {e}")

        await asyncio.gather(*(worker() for _ in range(WORKERS)))
        print(f"done {p.done}; refused {p.refused}")
        assert set(p.done) == {k.__name__ for k in kinds}, f"seed {seed}"
        await p.corners()

        stats = await agreed(pool, f"seed {seed}")
        assert await reconcile(pool) == [], f"seed {seed}"
        # Every number the comparison covered is a real one, not an empty zero.
        assert stats.users_total > stats.users_new_24h > 0, f"seed {seed}"
        assert stats.users_total > stats.users_onboarded > 1, f"seed {seed}"
        assert sum(1 for s in stats.escrows_by_status if s.count) >= 6, f"seed {seed}"
        assert stats.funds_held and stats.volume_24h and stats.cashouts_pending, f"seed {seed}"
        assert stats.open_disputes > 0 and stats.cashouts_pending_count > 0, f"seed {seed}"
    finally:
        await pool.close()


@pytest.fixture
async def before_the_dashboard(postgresql_server, server_dsn, tmp_path):
    """A database of its own, migrated up to (not including) 0009_dashboard.sql, and a
    function that applies the rest."""
    s = postgresql_server
    name = f"lockbay_admin_{uuid.uuid4().hex[:12]}"
    earlier = tmp_path / "before"
    earlier.mkdir()
    for m in db.migration_files():
        if m.name < "0009":
            (earlier / m.name).write_text(m.sql)
    async with AsyncDatabaseJanitor(
        user=s.user, host=s.host, port=s.port, dbname=name, password=s.password
    ):
        conn = await db.connect(server_dsn(name))
        try:
            await db.migrate(conn, earlier)

            async def rest() -> list[str]:
                return await db.migrate(conn)

            yield conn, rest
        finally:
            await conn.close()


async def test_the_migration_counts_the_rows_that_existed_before_it(before_the_dashboard):
    conn, rest = before_the_dashboard
    for telegram_id in (5001, 5002, 5003):
        await seeding.user(conn, telegram_id)
        await seeding.credit(conn, telegram_id, "USDT", "300")
    await register_user(conn, telegram_id=5004, username="late", first_name="L")
    await seeding.cashout(conn, 5001, "USDT", "20", fee="1")
    for n, path in enumerate(["unpaid", "funded", "disputed", "completed"]):
        escrow = await create_escrow(
            conn,
            buyer_telegram_id=5002,
            seller_handle="@user5003",
            currency="USDT",
            amount=D(10 + n),
            description="before",
            fee_split=FeeSplit.SPLIT,
        )
        if path == "unpaid":
            continue
        await fund_escrow_from_wallet(
            conn, escrow_id=escrow.id, telegram_id=5002, idempotency_key=f"b{n}"
        )
        if path == "funded":
            continue
        await accept_escrow(conn, escrow_id=escrow.id, telegram_id=5003)
        if path == "disputed":
            await open_dispute(conn, escrow_id=escrow.id, telegram_id=5003, reason="?")
        else:
            await release_escrow(conn, escrow_id=escrow.id, telegram_id=5002)

    assert "0009_dashboard.sql" in await rest()

    stats = await agreed(conn)
    assert (stats.users_total, stats.users_onboarded, stats.users_new_24h) == (4, 3, 4)
    assert [stats.escrows(s) for s in ("awaiting_payment", "funded", "disputed", "completed")] == [
        1,
        1,
        1,
        1,
    ]
    assert stats.open_disputes == 1 and stats.cashouts_pending_count == 1
    assert [c.amount for c in stats.cashouts_pending] == [D(20)]
    assert await reconcile(conn) == []

    # From here on the triggers count.
    await seeding.user(conn, 5005)
    assert (await dashboard_stats(conn)).users_total == 5


# --- users --------------------------------------------------------------------


async def test_a_user_with_no_activity_shows_zero_balances_and_counts_in_one_round_trip(conn):
    await register_user(conn, telegram_id=5001, username="quiet", first_name="Quiet")
    page = await one_trip(user_page(conn))
    assert page.next_after is None
    (u,) = page.users
    assert (u.telegram_id, u.username, u.first_name) == (5001, "quiet", "Quiet")
    assert u.onboarding is OnboardingStep.STARTED
    assert u.escrow_count == 0 and u.transaction_count == 0
    assert [w.currency for w in u.wallets] == ["BTC", "ETH", "LTC", "NGN", "USDT"]
    assert all(w.available == 0 and w.held == 0 for w in u.wallets)


async def test_the_user_list_counts_escrows_either_side_and_distinct_transfers(conn):
    buyer, seller, other = 5001, 5002, 5003
    for telegram_id in (buyer, seller, other):
        await seeding.user(conn, telegram_id)
    await seeding.credit(conn, buyer, "USDT", "1000.000001")
    # One transfer with two entries on the buyer's wallet (available and held): counted once.
    await seeding.cashout(conn, buyer, "USDT", "10", fee="1")
    for n in range(2):
        escrow = await create_escrow(
            conn,
            buyer_telegram_id=buyer,
            seller_handle=f"@user{seller}",
            currency="USDT",
            amount=D(100),
            description="goods",
            fee_split=FeeSplit.BUYER,
        )
        await fund_escrow_from_wallet(
            conn, escrow_id=escrow.id, telegram_id=buyer, idempotency_key=f"k{n}"
        )
    await accept_escrow(conn, escrow_id=escrow.id, telegram_id=seller)
    await release_escrow(conn, escrow_id=escrow.id, telegram_id=buyer)

    page = await one_trip(user_page(conn))
    by_tid = {u.telegram_id: u for u in page.users}
    # credit, cashout hold, two fundings
    assert (by_tid[buyer].escrow_count, by_tid[buyer].transaction_count) == (2, 4)
    assert (by_tid[seller].escrow_count, by_tid[seller].transaction_count) == (2, 1)
    assert (by_tid[other].escrow_count, by_tid[other].transaction_count) == (0, 0)
    usdt = next(w for w in by_tid[buyer].wallets if w.currency == "USDT")
    assert (usdt.available, usdt.held) == (D("1000.000001") - 11 - 210, D(11))
    assert isinstance(usdt.available, Decimal)
    seller_usdt = next(w for w in by_tid[seller].wallets if w.currency == "USDT")
    assert seller_usdt.available == D(100)


async def test_the_user_list_pages_by_id_without_repeats_or_gaps_and_caps_its_size(conn):
    ids = [await seeding.user(conn, 6000 + n) for n in range(105)]
    seen: list[int] = []
    after = None
    while True:
        page = await one_trip(user_page(conn, after_id=after, limit=20))
        seen += [u.id for u in page.users]
        assert len(page.users) <= 20
        if page.next_after is None:
            break
        assert page.next_after == page.users[-1].id
        after = page.next_after
    assert seen == sorted(ids)
    assert len((await user_page(conn, limit=1000)).users) == 100
    assert len((await user_page(conn, limit=0)).users) == 1
    assert (await user_page(conn, after_id=max(ids))).users == ()


async def test_search_matches_prefixes_in_any_case_or_the_telegram_id(conn):
    people = {
        5001: dict(username="alice", first_name="Zed", email="zed@example.com"),
        5002: dict(username="ali_b", first_name="Bob", email="bob@example.com"),
        5003: dict(username="carol", first_name="Alibek", email="c@example.com"),
        5004: dict(username="dave", first_name="Dave", email="ALIyah@example.com"),
        5005: dict(username="alixb", first_name="😀 Emoji", email=None),
        5006: dict(username="eve", first_name="Eve", email="eve@example.com"),
    }
    for telegram_id, p in people.items():
        await seeding.user(
            conn, telegram_id, p["first_name"], username=p["username"], email=p["email"]
        )

    async def found(search: str, **kw) -> list[int]:
        page = await one_trip(user_page(conn, search=search, **kw))
        return [u.telegram_id for u in page.users]

    assert await found("ALI") == [5001, 5002, 5003, 5004, 5005]
    assert await found("@ali") == [5001, 5002, 5003, 5004, 5005]
    assert await found("  alic ") == [5001]
    assert await found("bob@") == [5002]
    # LIKE's wildcards are plain characters in a search.
    assert await found("ali_") == [5002]
    assert await found("%") == []
    assert await found("😀") == [5005]
    assert await found("5006") == [5006]
    assert await found("zzz") == []
    assert await found("") == list(people)  # no search: everyone
    # A search pages like the plain list.
    first = await one_trip(user_page(conn, search="ali", limit=2))
    assert [u.telegram_id for u in first.users] == [5001, 5002] and first.next_after
    rest = await found("ali", after_id=first.next_after)
    assert rest == [5003, 5004, 5005]


def test_search_terms_escape_like_wildcards():
    assert _search_terms(None) == (None, None)
    assert _search_terms("  @ ") == (None, None)
    assert _search_terms("a_b%c\\") == ("a\\_b\\%c\\\\%", None)
    assert _search_terms("123") == ("123%", 123)
    assert _search_terms("1" * 19) == ("1" * 19 + "%", None)
    assert _search_terms("١٢٣") == ("١٢٣%", None)  # Arabic-Indic digits are no Telegram id


# --- transactions -------------------------------------------------------------


async def test_the_review_shows_each_transfer_with_its_entries_and_users(conn):
    buyer, seller = 5001, 5002
    await seeding.user(conn, buyer, "Bea", username="bea")
    await seeding.user(conn, seller, "", username=None)
    await seeding.credit(conn, buyer, "USDT", "200")
    escrow = await create_escrow(
        conn,
        buyer_telegram_id=buyer,
        seller_handle=f"u{seller}@example.com",
        currency="USDT",
        amount=D(100),
        description="goods",
        fee_split=FeeSplit.SELLER,
    )
    assert escrow.seller_id is None  # no such e-mail: an invited seller, no wallet touched yet
    await fund_escrow_from_wallet(conn, escrow_id=escrow.id, telegram_id=buyer, idempotency_key="k")

    page = await one_trip(transaction_review(conn))
    assert page.next_before is None
    fund, credit = page.transfers
    assert (fund.kind, credit.kind) == (TransferKind.ESCROW_FUND, TransferKind.DEPOSIT)
    assert fund.status is TransferStatus.POSTED and fund.escrow_id == escrow.id
    assert [(e.account_kind, e.currency, e.amount) for e in fund.entries] == [
        (AccountKind.WALLET_AVAILABLE, "USDT", D(-100)),
        (AccountKind.ESCROW_HOLDING, "USDT", D(100)),
    ]
    assert fund.entries[1].escrow_id == escrow.id and fund.entries[1].user is None
    (bea,) = fund.users
    assert (bea.telegram_id, bea.display_name) == (buyer, "Bea @bea")
    assert credit.entries[1].provider == "blockbee" and credit.entries[1].user is None
    assert credit.memo == "seed"
    # A user with neither a first name nor a username shows as the Telegram id.
    await seeding.credit(conn, seller, "NGN", "1000")
    latest = (await transaction_review(conn, limit=1)).transfers[0]
    assert latest.users[0].display_name == str(seller)


async def test_the_review_pages_through_equal_timestamps_without_repeats_or_gaps(conn):
    await seeding.user(conn, 5001)
    for n in range(11):
        await seeding.credit(conn, 5001, "USDT", str(n + 1))
    ids = [r["transfer_id"] async for r in queries.admin_test_transfer_ids(conn, telegram_id=5001)]
    instant = datetime(2030, 1, 1, tzinfo=UTC)
    await queries.admin_test_set_transfer_created_at(
        conn, transfer_ids=ids[2:9], created_at=instant
    )

    seen: list[int] = []
    before = None
    while True:
        page = await one_trip(transaction_review(conn, before=before, limit=3))
        seen += [t.id for t in page.transfers]
        if page.next_before is None:
            break
        assert page.next_before == PageCursor(page.transfers[-1].created_at, page.transfers[-1].id)
        before = PageCursor.decode(page.next_before.encode())
    # Newest first: the seven at 2030 (by id, descending), then the rest by time.
    assert seen == [*sorted(ids[2:9], reverse=True), ids[10], ids[9], ids[1], ids[0]]
    assert len(set(seen)) == 11


async def test_the_review_filters_by_status_and_caps_its_size(conn):
    await seeding.user(conn, 5001)
    for n in range(105):
        await seeding.credit(conn, 5001, "NGN", str(1000 + n))
    ids = [r["transfer_id"] async for r in queries.admin_test_transfer_ids(conn, telegram_id=5001)]
    flagged = ids[10:15]
    await queries.admin_test_set_transfer_status(conn, transfer_ids=flagged, status="flagged")

    first = await one_trip(transaction_review(conn, status=TransferStatus.FLAGGED, limit=3))
    assert [t.id for t in first.transfers] == flagged[::-1][:3] and first.next_before
    rest = await one_trip(
        transaction_review(conn, status=TransferStatus.FLAGGED, before=first.next_before)
    )
    assert [t.id for t in rest.transfers] == flagged[::-1][3:] and rest.next_before is None
    assert all(t.status is TransferStatus.FLAGGED for t in first.transfers + rest.transfers)
    assert (await transaction_review(conn, status=TransferStatus.REVIEWED)).transfers == ()

    assert len((await transaction_review(conn, limit=500)).transfers) == 100
    assert len((await transaction_review(conn, limit=-5)).transfers) == 1
    posted = await transaction_review(conn, status=TransferStatus.POSTED, limit=100)
    assert len(posted.transfers) == 100 and not set(flagged) & {t.id for t in posted.transfers}


async def test_an_empty_ledger_is_an_empty_review(conn):
    page = await one_trip(transaction_review(conn))
    assert page.transfers == () and page.next_before is None
