"""The benchmark's delaying proxy (bench/proxy.py) relays real asyncpg connections faithfully:
the project's screens and the baseline's read through it equal what they read straight, and
the round trips it counts at the wire are those the benchmark counts (the project's meter, the
baseline's statement and transaction events). Nothing here asserts on time."""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest
import seeding

from bot import db
from bot.data.history import history_page
from bot.data.wallet import wallet_context

# bench/ sits beside the package, outside it.
sys.path.append(str(Path(__file__).resolve().parents[1]))

from bench import baseline
from bench.proxy import DelayProxy, ProxyProcess
from bench.seed import Server

ADA, BAYO = 8_100_001, 8_100_002


@pytest.fixture
async def people(conn):
    await seeding.user(conn, ADA, "Ada 🌍", email="ada@example.com")
    await seeding.user(conn, BAYO, "Bayo")
    await seeding.rate(conn, "USDT", "USD", "1.0002")
    await seeding.rate(conn, "USD", "NGN", "1530.25")
    await seeding.credit(conn, ADA, "USDT", "1250.000000000000000001")
    await seeding.credit(conn, ADA, "NGN", "2450000.5")
    await seeding.cashout(conn, ADA, "USDT", "30", fee="1")
    await seeding.address(conn, ADA, "TN3W4H6rK2ce4vX9YnFQHwKENnHjoxb3m9", "Binance 🟡")
    await seeding.bank_account(conn, ADA, "0123456789")


@pytest.fixture
async def proxy(database_url):
    server = Server.parse(database_url)
    p = DelayProxy(server.host, server.port, rtt_ms=2)
    port = await p.start()
    try:
        yield p, server.through("127.0.0.1", port)
    finally:
        await p.close()


async def test_a_plain_connection_reads_the_same_through_the_proxy(database_url, people, proxy):
    p, proxied = proxy
    straight, through = await db.connect(database_url), await db.connect(proxied)
    try:
        assert p.connections.value == 1
        for conn in (straight, through):
            assert await db.queries.health_check(conn) is not None
        # A big answer, in many chunks: the whole of it arrives, in order.
        rows = {
            c: [
                r
                async for r in db.queries.exchange_history(
                    c, telegram_id=ADA, page_size=50, before_at=None, before_id=None
                )
            ]
            for c in (straight, through)
        }
        assert rows[straight] == rows[through]
        for telegram_id in (ADA, BAYO, 1):
            assert await wallet_context(through, telegram_id=telegram_id) == await wallet_context(
                straight, telegram_id=telegram_id
            )
            assert await history_page(through, telegram_id=telegram_id) == await history_page(
                straight, telegram_id=telegram_id
            )
        # Exact amounts cross the proxy unchanged.
        ctx = await wallet_context(through, telegram_id=ADA)
        assert ctx.wallet("USDT").available + ctx.wallet("USDT").held == Decimal(
            "1250.000000000000000001"
        )
    finally:
        await straight.close()
        await through.close()


async def test_a_pool_and_an_engine_count_at_the_wire_what_the_bench_counts(
    database_url, people, proxy
):
    p, proxied = proxy
    pool = await db.create_pool(proxied, min_size=1, max_size=2)
    engine = baseline.create_engine(proxied, pool_size=1)
    old = baseline.Baseline(engine)
    try:
        # Warm both up: connections opened, statements prepared, types introspected.
        for _ in range(2):
            await wallet_context(pool, telegram_id=ADA)
            await old.wallet_context(telegram_id=ADA)
        turns = p.turns.value
        async with db.meter.measure() as m:
            mine = await wallet_context(pool, telegram_id=ADA)
        assert m.round_trips == 1 == p.turns.value - turns
        turns, counted = p.turns.value, old.counter.round_trips
        theirs = await old.wallet_context(telegram_id=ADA)
        assert old.counter.round_trips - counted == p.turns.value - turns > 10
        assert theirs == mine
    finally:
        await pool.close()
        await engine.dispose()


async def test_the_proxy_process_relays_and_counts(database_url, people):
    server = Server.parse(database_url)
    p = ProxyProcess(server.host, server.port, rtt_ms=1)
    port = p.start()
    try:
        conn = await asyncpg.connect(server.through("127.0.0.1", port))
        try:
            # The first call prepares the statement (a turn of its own), the next ones don't.
            assert await db.queries.health_check(conn) == 1
            before = p.turns.value
            assert await db.queries.health_check(conn) == 1
            assert p.turns.value == before + 1
        finally:
            await conn.close()
    finally:
        p.stop()
