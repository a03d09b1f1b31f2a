"""The benchmark's database: created on the chosen server, migrated, and seeded at a scale.

The population is made by the set-based scale seeding of `sql/seed.sql` (the `seed_scale_*`
queries tests/test_plans.py also uses), one statement per step, two connections at once where
steps do not depend on each other. A finished seeding is recorded in the database
(`seed_bench_record`); a later run at the same scale reuses it, and one at another scale
starts the database afresh.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlparse, urlunparse

import asyncpg

from bot import db

# The scale set's telegram ids start here (as in tests/test_plans.py).
FIRST_TELEGRAM_ID = 700_000_000_000


@dataclass(frozen=True, slots=True)
class Scale:
    """How many of each thing the scale seeding makes."""

    name: str
    users: int
    deposits: int  # provider payments: two ledger entries each
    addresses: int
    bank_accounts: int
    deposit_orders: int
    escrows: int
    dispute_messages: int  # per dispute
    tickets: int
    ticket_messages: int  # per ticket
    exchange_orders: int
    referred_percent: int
    rates_per_pair: int

    @classmethod
    def of(cls, name: str, users: int) -> Scale:
        """The proportions of tests/test_plans.py (100,000 users, over a million ledger
        entries) at `users` users."""
        f = users / 100_000
        return cls(
            name=name,
            users=users,
            deposits=round(225_000 * f),
            addresses=round(100_000 * f),
            bank_accounts=round(100_000 * f),
            deposit_orders=round(50_000 * f),
            escrows=round(50_000 * f),
            dispute_messages=12,
            tickets=round(20_000 * f),
            ticket_messages=6,
            exchange_orders=round(100_000 * f),
            referred_percent=30,
            rates_per_pair=1_000,
        )


SCALES = {
    "default": Scale.of("default", 100_000),  # about 1,000,000 ledger entries
    "large": Scale.of("large", 1_000_000),  # about 10,000,000 ledger entries
}


# --- the database -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Server:
    """Where a DSN points, split into what a connection and pytest-postgresql's janitor need."""

    user: str
    password: str | None
    host: str  # a host name, or a unix-socket directory
    port: int
    dbname: str
    dsn: str

    @classmethod
    def parse(cls, dsn: str) -> Server:
        u = urlparse(dsn)
        query = parse_qs(u.query)
        host = u.hostname or query.get("host", ["localhost"])[0]
        port = u.port or int(query.get("port", ["5432"])[0])
        return cls(
            user=unquote(u.username or "postgres"),
            password=unquote(u.password) if u.password else None,
            host=host,
            port=port,
            dbname=(u.path or "/").lstrip("/") or "postgres",
            dsn=dsn,
        )

    def with_dbname(self, dbname: str) -> Server:
        u = urlparse(self.dsn)
        return Server(
            self.user,
            self.password,
            self.host,
            self.port,
            dbname,
            urlunparse(u._replace(path=f"/{dbname}")),
        )

    def through(self, host: str, port: int) -> str:
        """The same database reached at host:port (over TCP): the delaying proxy."""
        u = urlparse(self.dsn)
        query = {k: v for k, v in parse_qs(u.query).items() if k not in ("host", "port")}
        auth = u.username or "postgres"
        if u.password:
            auth += f":{u.password}"
        return urlunparse(
            u._replace(netloc=f"{auth}@{host}:{port}", query=urlencode(query, doseq=True))
        )


def default_database(scale: Scale) -> Server:
    """`lockbay_bench` (`lockbay_bench_large` for the large scale, so that the two
    populations live side by side) on DATABASE_URL's server, else on the embedded one."""
    name = "lockbay_bench" if scale.name == "default" else f"lockbay_bench_{scale.name}"
    return Server.parse(db.database_url()).with_dbname(name)


def _janitor(server: Server):
    # pytest-postgresql's janitor (of the test extra) creates and drops databases, so that no
    # SQL for it lives here.
    from pytest_postgresql.janitor import DatabaseJanitor

    return DatabaseJanitor(
        user=server.user,
        host=server.host,
        port=server.port,
        dbname=server.dbname,
        password=server.password,
    )


async def _exists(server: Server) -> bool:
    try:
        conn = await asyncpg.connect(server.dsn)
    except asyncpg.InvalidCatalogNameError:
        return False
    await conn.close()
    return True


async def _create(server: Server) -> None:
    await asyncio.to_thread(_janitor(server).init)


async def _drop(server: Server) -> None:
    await asyncio.to_thread(_janitor(server).drop)


# --- seeding ------------------------------------------------------------------


# What seed_scale_counts counts, in its order (the report's).
COUNTED = (
    "users",
    "wallets",
    "ledger_accounts",
    "ledger_transfers",
    "ledger_entries",
    "escrows",
    "disputes",
    "dispute_messages",
    "support_tickets",
    "support_messages",
    "exchange_orders",
    "saved_addresses",
    "saved_bank_accounts",
    "ratings",
    "referral_rewards",
)


@dataclass(frozen=True, slots=True)
class Population:
    scale: str
    seconds: float  # float-ok: how long the seeding took (now or when it was done)
    seeded_now: bool
    counts: dict[str, int]


class NotABenchDatabase(RuntimeError):
    """The database is not one the benchmark can use as it is: it holds users the benchmark
    did not seed, or a migration applied to it has changed since. `--reseed` starts afresh."""


async def prepare(server: Server, scale: Scale, *, reseed: bool = False) -> Population:
    """The database at `server`, created if missing, migrated, and seeded at `scale` unless
    it already is. A database seeded at another scale (or with `reseed`) is dropped and made
    again; one holding users the benchmark did not seed is refused."""
    if reseed and await _exists(server):
        await _drop(server)
    if not await _exists(server):
        await _create(server)
    conn = await db.connect(server.dsn)
    try:
        await db.migrate(conn)
        seeded = await db.queries.seed_bench_seeded(conn, first_telegram_id=FIRST_TELEGRAM_ID)
        users = await db.queries.seed_bench_user_count(conn)
    except db.MigrationError as e:
        raise NotABenchDatabase(
            f"{server.dbname} cannot be migrated ({e}). A migration still being written "
            "was applied to it earlier: pass --reseed to drop it and seed it again"
        ) from e
    finally:
        await conn.close()
    if seeded is not None and seeded["scale_name"] == scale.name:
        # jsonb keeps its own key order: back to the order of seed_scale_counts.
        recorded = seeded["result"]["counts"]
        counts = {k: recorded[k] for k in COUNTED if k in recorded}
        seconds = float(seeded["result"]["seconds"])  # float-ok: seconds
        return Population(scale.name, seconds, False, counts)
    if seeded is None and users:
        raise NotABenchDatabase(
            f"{server.dbname} holds {users:,} users but no finished benchmark seeding: "
            "pass --reseed to drop it and seed it again, or name another --database-url"
        )
    if seeded is not None:
        # Another scale: start from an empty database.
        await _drop(server)
        await _create(server)
        conn = await db.connect(server.dsn)
        try:
            await db.migrate(conn)
        finally:
            await conn.close()
    seconds, counts = await seed(server.dsn, scale)
    conn = await db.connect(server.dsn)
    try:
        await db.queries.seed_bench_record(
            conn,
            first_telegram_id=FIRST_TELEGRAM_ID,
            scale=scale.name,
            result={"seconds": round(seconds, 1), "counts": counts},
        )
    finally:
        await conn.close()
    return Population(scale.name, seconds, True, counts)


class _Quiet:
    """A progress bar that shows nothing (the tests seed without one)."""

    def set_postfix_str(self, _: str) -> None: ...
    def update(self) -> None: ...
    def close(self) -> None: ...


async def seed(
    dsn: str, scale: Scale, *, progress: bool = True
) -> tuple[float, dict[str, int]]:  # float-ok: seconds
    """The scale population, as tests/test_plans.py seeds it, on two connections (phases
    whose statements never wait for each other), with a progress bar over the steps.
    Returns the seconds it took and the row counts of the big tables."""
    q = db.queries
    s = {"first_telegram_id": FIRST_TELEGRAM_ID, "users": scale.users}
    if progress:
        from tqdm import tqdm  # the bench extra; the tests seed without it

        bar = tqdm(total=19, desc=f"seeding {scale.users:,} users", unit="step")
    else:
        bar = _Quiet()
    a, b = await db.connect(dsn), await db.connect(dsn)
    started = time.perf_counter()

    async def step(what: str, call: Awaitable[Any]) -> Any:
        bar.set_postfix_str(what)
        result = await call
        bar.update()
        return result

    async def wallets() -> None:
        # One transaction: no wallet is ever without its two ledger accounts.
        async with a.transaction():
            await q.seed_scale_pause_wallet_trigger(a)
            await step("wallets", q.seed_scale_wallets(a, **s))
            await q.seed_scale_resume_wallet_trigger(a)

    async def rows_without_wallets() -> None:
        await step(
            "saved destinations",
            q.seed_scale_destinations(
                b, **s, addresses=scale.addresses, bank_accounts=scale.bank_accounts
            ),
        )
        await step(
            "deposit orders", q.seed_scale_deposit_orders(b, **s, orders=scale.deposit_orders)
        )
        await step("escrows", q.seed_scale_escrows(b, **s, escrows=scale.escrows))
        await step("analyze escrows", q.seed_scale_analyze_trades(b))
        await step("disputes", q.seed_scale_disputes(b, **s, messages=scale.dispute_messages))
        await step("ratings", q.seed_scale_ratings(b, **s))
        await step(
            "support",
            q.seed_scale_support(b, **s, tickets=scale.tickets, messages=scale.ticket_messages),
        )
        await step("referrals", q.seed_scale_referrals(b, **s, percent=scale.referred_percent))
        await step(
            "exchange orders", q.seed_scale_exchange_orders(b, **s, orders=scale.exchange_orders)
        )

    async def deposits() -> None:
        await step("deposits", q.seed_scale_deposits(a, **s, deposits=scale.deposits))
        await step("referral rewards", q.seed_scale_referral_rewards(a, **s))

    async def trades() -> None:
        await step("escrow ledger", q.seed_scale_escrow_ledger(b, **s))
        await step("exchange ledger", q.seed_scale_exchange_ledger(b, **s))

    try:
        await step("users", q.seed_scale_users(a, **s))
        await step("rates", q.seed_scale_rates(a, per_pair=scale.rates_per_pair))
        await asyncio.gather(wallets(), rows_without_wallets())
        await step("analyze", q.seed_scale_analyze(a))
        await asyncio.gather(deposits(), trades())
        await step("balances", q.seed_scale_balances(a, **s))
        await step("analyze", q.seed_scale_analyze(a))
        seconds = time.perf_counter() - started
        bar.set_postfix_str("counting")
        row = await q.seed_scale_counts(a)
        counts = {k.removesuffix("_count"): v for k, v in row.items()}
    finally:
        bar.close()
        await a.close()
        await b.close()
    return seconds, counts
