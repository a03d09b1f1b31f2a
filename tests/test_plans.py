"""Query plans at scale: every screen reaches its rows through indexes.

One database is seeded once for the module with the scale seeding of
sql/seed.sql (100,000 users with 500,000 wallets, over a million ledger
entries, 50,000 escrows with their disputes and messages, support tickets,
exchange orders, saved destinations, ratings, referrals), analysed, and then
each screen query of the table below is EXPLAINed with its parameters bound
for a real person of that population. A sequential scan of a big table in
any plan fails the screen: it would cost a scan per screen shown. The
seeding time and the population are printed, even with output captured.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from conftest import dsn
from pytest_postgresql.janitor import DatabaseJanitor

from bot import db
from bot.data.enums import EscrowStatus
from bot.data.ledger import reconcile

pytestmark = pytest.mark.slow

# The scale set: telegram ids FIRST .. FIRST + USERS - 1.
FIRST = 700_000_000_000
USERS = 100_000
DEPOSITS = 225_000  # with the escrows' and exchanges' money: over 1,000,000 entries
ADDRESSES = BANK_ACCOUNTS = 100_000
DEPOSIT_ORDERS = 50_000
ESCROWS = 50_000
DISPUTE_MESSAGES = 12  # per dispute: about 10,000 disputes
TICKETS, TICKET_MESSAGES = 20_000, 6
EXCHANGE_ORDERS = 100_000
REFERRED_PERCENT = 30
RATES_PER_PAIR = 1_000

# Tables whose sequential scan no screen may afford.
BIG_TABLES = frozenset(
    {
        "users",
        "wallets",
        "ledger_entries",
        "ledger_accounts",
        "escrows",
        "disputes",
        "dispute_messages",
        "support_tickets",
        "support_messages",
        "exchange_orders",
        "saved_addresses",
        "saved_bank_accounts",
        "ratings",
    }
)


@dataclass(frozen=True, slots=True)
class Sample:
    """A well-connected person of the scale set and the things they are part of."""

    user_id: int
    telegram_id: int
    escrow_id: int
    escrow_ref: str
    dispute_id: int
    seller_id: int
    seller_username: str
    exchange_ref: str | None
    deposit_ref: str | None
    admin_telegram_id: int


@dataclass(frozen=True, slots=True)
class Scale:
    url: str
    sample: Sample


async def seed(url: str) -> tuple[Sample, dict[str, int], float, list[str]]:  # float-ok: seconds
    """The scale population on two connections (the server's two cores), in phases whose
    statements never wait for each other: the other connection's rows are either not
    touched or only share-locked by foreign key checks. Returns the sample, the row
    counts, the seconds it took and each step's time."""
    q = db.queries
    scale = {"first_telegram_id": FIRST, "users": USERS}
    a, b = await db.connect(url), await db.connect(url)
    started = time.perf_counter()
    timings: list[str] = []

    async def step(what: str, call):
        t = time.perf_counter()
        result = await call
        timings.append(f"{what} {time.perf_counter() - t:.1f} s")
        return result

    async def wallets() -> None:
        # One transaction: no wallet is ever without its two ledger accounts.
        async with a.transaction():
            await q.seed_scale_pause_wallet_trigger(a)
            await step("wallets", q.seed_scale_wallets(a, **scale))
            await q.seed_scale_resume_wallet_trigger(a)

    async def rows_without_wallets() -> None:
        await step(
            "saved destinations",
            q.seed_scale_destinations(b, **scale, addresses=ADDRESSES, bank_accounts=BANK_ACCOUNTS),
        )
        await step("deposit orders", q.seed_scale_deposit_orders(b, **scale, orders=DEPOSIT_ORDERS))
        await step("escrows", q.seed_scale_escrows(b, **scale, escrows=ESCROWS))
        # The steps below join the new escrows in bulk: give the planner their numbers.
        await step("analyze escrows", q.seed_scale_analyze_trades(b))
        await step("disputes", q.seed_scale_disputes(b, **scale, messages=DISPUTE_MESSAGES))
        await step("ratings", q.seed_scale_ratings(b, **scale))
        await step(
            "support",
            q.seed_scale_support(b, **scale, tickets=TICKETS, messages=TICKET_MESSAGES),
        )
        await step("referrals", q.seed_scale_referrals(b, **scale, percent=REFERRED_PERCENT))
        await step(
            "exchange orders", q.seed_scale_exchange_orders(b, **scale, orders=EXCHANGE_ORDERS)
        )

    async def deposits() -> None:
        await step("deposits", q.seed_scale_deposits(a, **scale, deposits=DEPOSITS))
        await step("referral rewards", q.seed_scale_referral_rewards(a, **scale))

    async def trades() -> None:
        await step("escrow ledger", q.seed_scale_escrow_ledger(b, **scale))
        await step("exchange ledger", q.seed_scale_exchange_ledger(b, **scale))

    try:
        await step("users", q.seed_scale_users(a, **scale))
        await step("rates", q.seed_scale_rates(a, per_pair=RATES_PER_PAIR))
        await asyncio.gather(wallets(), rows_without_wallets())
        await step("analyze", q.seed_scale_analyze(a))
        await asyncio.gather(deposits(), trades())
        await step("balances", q.seed_scale_balances(a, **scale))
        await step("analyze", q.seed_scale_analyze(a))
        seconds = time.perf_counter() - started
        counts = {k.removesuffix("_count"): v for k, v in (await q.seed_scale_counts(a)).items()}
        sample = Sample(**dict(await q.seed_scale_sample(a, **scale)))
    finally:
        await a.close()
        await b.close()
    return sample, counts, seconds, timings


def run(coro):
    """A coroutine on a loop of its own: module fixtures live outside the tests' loops."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


async def books(url: str) -> list:
    conn = await db.connect(url)
    try:
        return await reconcile(conn)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def scale(request, postgresql_server) -> Iterator[Scale]:
    """A database of the module's own, cloned from the migrated template and seeded once."""
    s = postgresql_server
    name = f"lockbay_plans_{os.getpid()}"
    janitor = DatabaseJanitor(
        user=s.user,
        host=s.host,
        port=s.port,
        dbname=name,
        template_dbname=s.template_dbname,
        password=s.password,
    )
    with janitor:
        url = dsn(s.host, s.port, s.user, name, s.password)
        sample, counts, seconds, timings = run(seed(url))
        report = f"scale seeding took {seconds:.1f} s ({', '.join(timings)}): " + ", ".join(
            f"{n:,} {what}" for what, n in counts.items()
        )
        # Shown even when output is captured: the seeding time is a figure CI should print.
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled():
            print(f"\n{report}")
        # The population the plans are about: fail loudly if a step made less.
        for what, least in MINIMUM.items():
            assert counts[what] >= least, f"only {counts[what]:,} {what}, want {least:,}"
        yield Scale(url, sample)
        # Whatever the tests did, the books must still balance.
        assert run(books(url)) == []


MINIMUM = {
    "users": 100_000,
    "wallets": 500_000,
    "ledger_entries": 1_000_000,
    "escrows": 50_000,
    "dispute_messages": 100_000,
    "support_messages": 100_000,
    "exchange_orders": 100_000,
}


# --- the screens -----------------------------------------------------------------

Params = Callable[[Sample], dict[str, Any]]
FIRST_PAGE: dict[str, Any] = {"before_at": None, "before_id": None, "page_size": 10}
# A cursor deep in time: the keyset condition must stay an index condition.
LATER_PAGE: dict[str, Any] = {
    "before_at": datetime(2020, 1, 1, tzinfo=UTC),
    "before_id": 2**62,
    "page_size": 10,
}


def me(s: Sample) -> dict[str, Any]:
    return {"telegram_id": s.telegram_id}


# (query name, what it is bound to, parameters)
SCREENS: list[tuple[str, str, Params]] = [
    ("wallet_context", "", me),
    ("exchange_context", "", me),
    ("exchange_history", "first page", lambda s: {**me(s), **FIRST_PAGE}),
    ("exchange_history", "later page", lambda s: {**me(s), **LATER_PAGE}),
    ("history_page", "first page", lambda s: {**me(s), "currency": None, **FIRST_PAGE}),
    ("history_page", "one currency", lambda s: {**me(s), "currency": "USDT", **FIRST_PAGE}),
    ("history_page", "later page", lambda s: {**me(s), "currency": None, **LATER_PAGE}),
    (
        "history_page",
        "one currency, later page",
        lambda s: {**me(s), "currency": "NGN", **LATER_PAGE},
    ),
    ("onboarding_context", "", me),
    ("support_context", "", me),
    ("contacts_context", "", me),
    ("menu_context", "", me),
    ("referral_context", "", me),
    ("escrow_view", "", lambda s: {"escrow_id": s.escrow_id, "viewer_telegram_id": s.telegram_id}),
    (
        "my_escrows",
        "first page",
        lambda s: {**me(s), "statuses": sorted(EscrowStatus), **FIRST_PAGE},
    ),
    (
        "my_escrows",
        "later page",
        lambda s: {**me(s), "statuses": ["completed"], **LATER_PAGE},
    ),
    (
        "escrow_creation_context",
        "",
        lambda s: {
            "buyer_telegram_id": s.telegram_id,
            "handle_kind": "username",
            "handle": s.seller_username.lower(),
        },
    ),
    ("rating_summary", "", lambda s: {"user_id": s.seller_id}),
    ("dispute_context", "", lambda s: {"dispute_id": s.dispute_id}),
    ("lock_order_context", "escrow", lambda s: {"order_ref": s.escrow_ref}),
    ("lock_order_context", "exchange order", lambda s: {"order_ref": s.exchange_ref}),
    ("lock_order_context", "deposit order", lambda s: {"order_ref": s.deposit_ref}),
    ("open_disputes", "", lambda s: {**FIRST_PAGE, "page_size": 20}),
    ("my_disputes", "first page", lambda s: {**me(s), **FIRST_PAGE}),
    ("my_disputes", "later page", lambda s: {**me(s), **LATER_PAGE}),
    (
        "admin_cashout_queue",
        "first page",
        lambda s: {"after_at": None, "after_id": None, "page_size": 10},
    ),
    (
        "admin_cashout_queue",
        "later page",
        lambda s: {"after_at": LATER_PAGE["before_at"], "after_id": 0, "page_size": 10},
    ),
    ("admin_dashboard_stats", "", lambda s: {}),
    (
        "admin_user_page",
        "",
        lambda s: {"after_id": None, "page_size": 20, "prefix": None, "telegram_id": None},
    ),
    (
        "admin_user_page",
        "by telegram id",
        lambda s: {"after_id": None, "page_size": 20, "prefix": None, "telegram_id": s.telegram_id},
    ),
    (
        "admin_transaction_review",
        "",
        lambda s: {"status": None, **FIRST_PAGE, "page_size": 20},
    ),
]


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of a plan tree, init plans, sub plans and CTEs included."""
    yield plan
    for child in plan.get("Plans", ()):
        yield from nodes(child)


def seq_scans(plan: dict[str, Any]) -> list[str]:
    return [n["Relation Name"] for n in nodes(plan) if n["Node Type"] == "Seq Scan"]


async def explain(url: str, name: str, values: dict[str, Any]) -> dict[str, Any]:
    """The plan of a named query for these parameter values (asyncpg's EXPLAIN, not run)."""
    query = getattr(db.queries, name)
    args = db.queries.driver_adapter.maybe_order_params(name, values)
    # Without the project's json codecs: asyncpg decodes the plan itself.
    conn = await asyncpg.connect(url)
    try:
        # Inside a transaction, as lock_order_context must run; EXPLAIN alone changes nothing.
        async with conn.transaction():
            statement = await conn.prepare(query.sql)
            [result] = await statement.explain(*args)
    finally:
        await conn.close()
    return result["Plan"]


@pytest.mark.parametrize(
    ("name", "params"),
    [
        pytest.param(name, params, id=f"{name}-{bound}" if bound else name)
        for name, bound, params in SCREENS
    ],
)
async def test_a_screen_reads_no_big_table_sequentially(scale, name, params):
    assert name in db.queries.available_queries, f"no screen query named {name}"
    query = getattr(db.queries, name)
    values = params(scale.sample)
    unbound = [p for p in query.parameters if p not in values]
    assert not unbound, f"{name} takes {unbound}: bind them in SCREENS"
    if any(values[p] is None and p.endswith("_ref") for p in query.parameters):
        pytest.skip(f"the scale sample has no {name} subject of this kind")
    plan = await explain(scale.url, name, {p: values[p] for p in query.parameters})
    scanned = seq_scans(plan)
    assert not BIG_TABLES & set(scanned), (
        f"{name} scans {sorted(BIG_TABLES & set(scanned))} sequentially; all its seq scans: "
        f"{scanned}"
    )


# Keyset pages: the cursor is a condition of the index scan that also gives the order, so a
# page deep in a long history costs what the first one does.
KEYSET_PAGES = [
    ("exchange_history", "exchange_orders_user", None),
    ("history_page", "ledger_entries_user", None),
    ("history_page", "ledger_entries_user_currency", "NGN"),
]


KEYSET_CONDITION = re.compile(r"ROW\((\w+\.)?created_at, (\w+\.)?id\) <")


@pytest.mark.parametrize(("name", "index", "currency"), KEYSET_PAGES)
async def test_a_later_page_starts_inside_the_index(scale, name, index, currency):
    values = {**me(scale.sample), **LATER_PAGE}
    if currency is not None or name == "history_page":
        values["currency"] = currency
    plan = await explain(scale.url, name, values)
    scans = [n for n in nodes(plan) if n.get("Index Name") == index]
    assert scans, f"{name} does not read {index}"
    for scan in scans:
        assert KEYSET_CONDITION.search(scan["Index Cond"]), scan["Index Cond"]


async def test_the_plan_walker_sees_a_sequential_scan_where_there_is_one(scale):
    """Reconciliation reads the whole ledger by design: the walker above must notice."""
    assert "ledger_entries" in seq_scans(await explain(scale.url, "reconcile", {}))


async def test_the_sample_is_a_real_person_of_the_scale_set(scale):
    """The parameters above are bound to someone who exists, with a live dispute."""
    sample = scale.sample
    assert FIRST <= sample.telegram_id < FIRST + USERS
    assert sample.escrow_ref.startswith("SCL-") and sample.dispute_id > 0
    assert sample.exchange_ref is not None and sample.deposit_ref is not None
