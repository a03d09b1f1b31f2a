"""Real PostgreSQL for every test: the schema migrated once into a template
database, and each test given a fresh clone of it.

The server is the one on 127.0.0.1:5432 when it answers (this machine, CI),
else a throwaway embedded one started for the run. `LOCKBAY_TEST_PG=host:port`
names another server; `LOCKBAY_TEST_PG=embedded` forces the throwaway one.
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import asyncpg
import pytest
from pytest_postgresql import factories

from bot import db
from bot.data.ledger import reconcile


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _server() -> tuple[str, int, str]:
    """(host, port, user) of the server the tests use."""
    wanted = os.environ.get("LOCKBAY_TEST_PG", "127.0.0.1:5432")
    if wanted != "embedded":
        host, _, port = wanted.rpartition(":")
        if _answers(host, int(port)):
            return host, int(port), os.environ.get("LOCKBAY_TEST_PG_USER", "postgres")
    # Embedded, since pytest-postgresql's own server process refuses root.
    uri = urlparse(
        db.embedded_server(Path(tempfile.mkdtemp(prefix="lockbay-pg-")), cleanup_mode="delete")
    )
    return parse_qs(uri.query)["host"][0], 5432, uri.username or "postgres"


def dsn(host: str, port: int | str, user: str, dbname: str, password: str | None = None) -> str:
    if host.startswith("/"):
        return f"postgresql://{user}@/{dbname}?host={host}&port={port}"
    auth = f"{user}:{password}" if password else user
    return f"postgresql://{auth}@{host}:{port}/{dbname}"


def load_schema(host, port, user, dbname, password, **_) -> None:
    """pytest-postgresql loader: migrate the template database once."""

    async def run() -> None:
        conn = await asyncpg.connect(dsn(host, port, user, dbname, password))
        try:
            await db.migrate(conn)
        finally:
            await conn.close()

    asyncio.run(run())


PG_HOST, PG_PORT, PG_USER = _server()

# A name of the run's own, so that runs sharing a server never drop each other's template.
postgresql_server = factories.postgresql_noproc(
    host=PG_HOST,
    port=PG_PORT,
    user=PG_USER,
    dbname=f"lockbay_tests_{os.getpid()}",
    load=[load_schema],
)
postgresql = factories.postgresql("postgresql_server")


@pytest.fixture
def database_url(postgresql) -> str:
    """The DSN of this test's own clone of the migrated template."""
    i = postgresql.info
    return dsn(i.host, i.port, i.user, i.dbname, i.password)


@pytest.fixture
async def pool(database_url):
    pool = await db.create_pool(database_url, min_size=1, max_size=4)
    try:
        yield pool
        # Whatever a test did, the books must still balance.
        assert await reconcile(pool) == []
    finally:
        # Close before pytest-postgresql drops the database.
        await pool.close()


@pytest.fixture
async def conn(pool):
    async with pool.acquire() as conn:
        yield conn


@pytest.fixture
def server_dsn(postgresql_server):
    """A DSN for a given database name on the test server (for databases of one's own)."""
    s = postgresql_server

    def make(dbname: str) -> str:
        return dsn(s.host, s.port, s.user, dbname, s.password)

    return make


# --- the bot, offline ---------------------------------------------------------

ADMIN_ID = 9_000_000_001


@pytest.fixture
def telegram():
    """Telegram's servers, in-process: records what the bot sends."""
    from bot.offline import FakeTelegram

    return FakeTelegram()


@pytest.fixture
async def bot(pool, telegram):
    """The real `Application` with every handler, on this test's database and the fake
    Telegram; ADMIN_ID is its configured admin."""
    from bot.app import build_application
    from bot.handlers.ui import Settings
    from bot.outbox import deliver_due  # outbox: the after_update hook below

    app = build_application(
        token="123456:TEST",
        settings=Settings(admin_ids=frozenset({ADMIN_ID})),
        pool=pool,
        request=telegram,
    )
    # outbox: each Chat step delivers the notifications it committed (bot.outbox).
    app.bot_data["after_update"] = deliver_due
    await app.initialize()
    await app.start()  # the job queue, for conversation timeouts
    try:
        yield app
    finally:
        await app.stop()
        await app.shutdown()


@pytest.fixture
def chat(bot, telegram):
    """`chat(telegram_id, first_name=..., username=...)`: a user talking to the bot."""
    from bot.offline import Chat

    def make(telegram_id: int, first_name: str = "Tester", username: str | None = None) -> Chat:
        return Chat(bot, telegram, telegram_id, first_name, username)

    return make
