"""The database: pool with codecs, the named queries, migrations, the round-trip meter."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import hashlib
import inspect
import json
import logging
import os
import sys
import time
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache, partial
from pathlib import Path
from typing import Any

import aiosql
import asyncpg


def sql_dir() -> Path:
    """The `sql/` folder: inside the installed package, else beside it in the source tree."""
    packaged = Path(__file__).with_name("sql")
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "sql"


@cache
def load_queries() -> aiosql.Queries:
    """Every named query of the top-level `sql/*.sql` files, in one namespace.

    Migrations are not queries: they stay out of the loader's path.
    """
    text = "\n\n".join(p.read_text(encoding="utf-8") for p in sorted(sql_dir().glob("*.sql")))
    return aiosql.from_str(text, "asyncpg")


# --- round trips ------------------------------------------------------------


@dataclass
class Measurement:
    """What one measured stretch of code sent to the database."""

    statements: list[str] = field(default_factory=list)
    elapsed: float = 0.0  # float-ok: seconds of latency, not money

    @property
    def round_trips(self) -> int:
        return len(self.statements)


class RoundTripMeter:
    """Counts the statements each task sends, from asyncpg's query logger.

    asyncpg calls loggers through `loop.call_soon`, which carries the calling
    task's context, so a measurement sees its own task's queries only, even
    with other tasks sharing the pool.
    """

    def __init__(self) -> None:
        self._active: contextvars.ContextVar[tuple[Measurement, ...]] = contextvars.ContextVar(
            "lockbay_measurements", default=()
        )
        self.total = 0
        self.listeners: list[Callable[[asyncpg.connection.LoggedQuery], None]] = []

    def attach(self, conn: asyncpg.Connection) -> None:
        conn.add_query_logger(self._record)

    def _record(self, record: asyncpg.connection.LoggedQuery) -> None:
        self.total += 1
        for m in self._active.get():
            m.statements.append(record.query)
            m.elapsed += record.elapsed
        for listener in self.listeners:
            listener(record)

    @asynccontextmanager
    async def measure(self) -> AsyncIterator[Measurement]:
        m = Measurement()
        token = self._active.set((*self._active.get(), m))
        try:
            yield m
        finally:
            # Loggers run on the loop's next turn; yield once so ours are in.
            await asyncio.sleep(0)
            self._active.reset(token)


meter = RoundTripMeter()


# --- operations ---------------------------------------------------------------

log = logging.getLogger(__name__)

# (operation, seconds, round trips), once per operation.
OperationListener = Callable[[str, float, int], None]  # float-ok: seconds


class Operations:
    """Named units of database work, timed and metered, for the metrics (bot.metrics).

    Each call of a named query is one operation named after the query (a screen:
    `wallet_context`; a one-statement movement: `escrow_accept`), and each explicit
    `transaction` is one named after the function that opened it (a multi-statement
    movement: `wallet.credit_deposit`); queries inside a transaction belong to it. The
    listeners get, once per outermost operation, its wall time (waiting for a pooled
    connection included) and its statements as `meter` counts them (BEGIN and COMMIT
    included). No statement is added; without listeners nothing is measured.
    """

    def __init__(self) -> None:
        self.listeners: list[OperationListener] = []
        self._current: contextvars.ContextVar[str | None] = contextvars.ContextVar(
            "lockbay_operation", default=None
        )

    @asynccontextmanager
    async def run(self, name: str) -> AsyncIterator[None]:
        if not self.listeners or self._current.get() is not None:
            yield
            return
        token = self._current.set(name)
        started = time.perf_counter()
        elapsed = 0.0  # float-ok: seconds
        try:
            async with meter.measure() as m:
                try:
                    yield
                finally:
                    elapsed = time.perf_counter() - started
        finally:
            self._current.reset(token)
            for listener in self.listeners:
                try:
                    listener(name, elapsed, m.round_trips)
                except Exception:  # a metric must never fail a movement that happened
                    log.exception("operation listener failed")

    def instrument(self, name: str, fn: Callable) -> Callable:
        """The aiosql query function `fn`, each call one operation named `name`."""
        if inspect.isasyncgenfunction(fn):  # many rows: fetched at once, as aiosql does

            @functools.wraps(fn)
            async def rows(conn, *args, **kwargs):
                async with self.run(name):
                    fetched = [row async for row in fn(conn, *args, **kwargs)]
                for row in fetched:
                    yield row

            return rows
        if not inspect.iscoroutinefunction(fn):  # the `_cursor` variants
            return fn

        @functools.wraps(fn)
        async def call(conn, *args, **kwargs):
            async with self.run(name):
                return await fn(conn, *args, **kwargs)

        return call


operations = Operations()


class InstrumentedQueries:
    """The loaded queries, each call an operation of `operations`; everything else (a
    query's `.sql`, `available_queries`, `driver_adapter`) is the loaded object's."""

    def __init__(self, loaded: aiosql.Queries, ops: Operations) -> None:
        self._loaded = loaded
        for name in loaded.available_queries:
            setattr(self, name, ops.instrument(name, getattr(loaded, name)))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loaded, name)

    def __repr__(self) -> str:
        return f"InstrumentedQueries({self._loaded!r})"


queries = InstrumentedQueries(load_queries(), operations)


# --- connections ------------------------------------------------------------


def _json_default(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


_json_encode = partial(json.dumps, default=_json_default)
# Amounts inside json_agg stay exact: numbers with a fraction become Decimal.
_json_decode = partial(json.loads, parse_float=Decimal)


async def init_connection(conn: asyncpg.Connection, *, measured: bool = True) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, encoder=_json_encode, decoder=_json_decode, schema="pg_catalog"
        )
    if measured:
        meter.attach(conn)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool reset without asyncpg's extra round trip on every release.

    asyncpg still rolls back an open transaction. The reset query it skips
    (RESET ALL, UNLISTEN *, advisory unlock) has nothing to undo here: pooled
    connections never SET without LOCAL, LISTEN happens on a dedicated
    connection, and advisory locks are transaction-scoped.
    """


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=init_connection, reset=_keep_session
    )


async def connect(dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn)
    await init_connection(conn)
    return conn


def transaction(
    conn_or_pool, *, operation: str | None = None
) -> AbstractAsyncContextManager[asyncpg.Connection]:
    """One explicit transaction on a connection, or on one taken from a pool.

    One operation for the metrics (`operations`), named `operation`, else after the
    function that opens it: `wallet.credit_deposit` for bot.data.wallet's credit_deposit.
    """
    if operation is None:
        caller = sys._getframe(1)
        module = caller.f_globals.get("__name__", "").removeprefix("bot.data.")
        operation = f"{module}.{caller.f_code.co_name}"
    return _transaction(conn_or_pool, operation)


@asynccontextmanager
async def _transaction(conn_or_pool, operation: str) -> AsyncIterator[asyncpg.Connection]:
    async with operations.run(operation):
        if isinstance(conn_or_pool, asyncpg.Pool):
            async with conn_or_pool.acquire() as conn, conn.transaction():
                yield conn
        else:
            async with conn_or_pool.transaction():
                yield conn_or_pool


def database_url(data_dir: Path | None = None) -> str:
    """`DATABASE_URL`, or an embedded PostgreSQL kept in `data_dir`."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    data_dir = data_dir or Path(os.environ.get("LOCKBAY_DATA_DIR", ".lockbay")) / "pgdata"
    return embedded_server(data_dir, cleanup_mode="stop")


def embedded_server(data_dir: Path, *, cleanup_mode: str) -> str:
    """Start (or reuse) a pgserver PostgreSQL in `data_dir`; return its URI.

    pgserver runs as root too, where PostgreSQL's own tools refuse to.
    `cleanup_mode` "stop" keeps the data, "delete" removes it at exit.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # pgserver asks platformdirs for a runtime dir it never uses (at import, too).
        warnings.simplefilter("ignore")
        import pgserver  # only the embedded path needs it

        server = pgserver.get_server(data_dir.resolve(), cleanup_mode=cleanup_mode)
    return server.get_uri()


# --- migrations -------------------------------------------------------------


class MigrationError(RuntimeError):
    """The schema on disk and the schema applied disagree."""


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migration_files(directory: Path | None = None) -> list[Migration]:
    directory = directory or sql_dir() / "migrations"
    return [
        Migration(p.name, p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.sql"))
    ]


async def migrate(conn: asyncpg.Connection, directory: Path | None = None) -> list[str]:
    """Apply the pending migrations in one transaction; return their names.

    Refuses, applying nothing, when a file already applied has changed since.
    """
    files = migration_files(directory)
    async with conn.transaction():
        await queries.lock_migrations(conn)
        await queries.create_schema_migrations(conn)
        applied = {r["filename"]: r["checksum"] async for r in queries.applied_migrations(conn)}
        changed = [m.name for m in files if m.name in applied and applied[m.name] != m.checksum]
        if changed:
            raise MigrationError(
                "applied migrations were edited afterwards: "
                + ", ".join(changed)
                + ". Add a new migration instead of changing one that has run."
            )
        pending = [m for m in files if m.name not in applied]
        for m in pending:
            await conn.execute(m.sql)
            await queries.record_migration(conn, filename=m.name, checksum=m.checksum)
    return [m.name for m in pending]
