"""Conversations in PostgreSQL: a user mid-flow carries on after the bot restarts.

Each test runs the real Application with `PostgresPersistence` on the test database and
FakeTelegram, stops it (PTB's shutdown writes and flushes the persistence) and starts a
NEW Application on the same database: a restarted bot. The persistence's own periodic
run is pushed out of reach (an hour), so what is written is what the tests ask for:
`update_persistence()`, or a shutdown.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest
import seeding
from conftest import ADMIN_ID
from telegram.ext import Application, ApplicationBuilder
from test_exchange_flow import balance, market, order_id_on, orders

from bot import db
from bot.app import _on_error, all_handlers
from bot.data.wallet import CryptoDestination
from bot.db import queries
from bot.handlers import exchange as ui_exchange
from bot.handlers.exchange import Choices
from bot.handlers.ui import EXPIRED, FLOW_TIMEOUT_SECONDS, Settings
from bot.handlers.wallet import Request
from bot.offline import Chat, FakeTelegram
from bot.persistence import Codec, PostgresPersistence, persistent_flows

ALICE, BOB = 62001, 62002
D = Decimal
HOUR = 3600


def build(pool, telegram: FakeTelegram, persistence: PostgresPersistence) -> Application:
    """The bot as bot.app.build_application wires it with the persistence: every area's
    handlers, the flows persistent."""
    app = (
        ApplicationBuilder()
        .token("123456:TEST")
        .persistence(persistence)
        .request(telegram)
        .get_updates_request(telegram)
        .updater(None)
        .build()
    )
    app.bot_data["settings"] = Settings(admin_ids=frozenset({ADMIN_ID}))
    app.bot_data["pool"] = pool
    with persistent_flows():
        for group, handler in enumerate(all_handlers()):
            app.add_handler(handler, group=group)
    app.add_error_handler(_on_error)
    return app


@pytest.fixture
async def restartable(pool, telegram):
    """`await start()`: a bot with the persistence, started; `await stop(app)` ends it as a
    restart would (every app still running is stopped at the end of the test)."""
    running: list[Application] = []

    async def start(source=None) -> Application:
        persistence = PostgresPersistence(
            source or pool, max_idle_seconds=FLOW_TIMEOUT_SECONDS, update_interval=HOUR
        )
        app = build(pool, telegram, persistence)
        await app.initialize()
        await app.start()  # the job queue, for conversation timeouts
        running.append(app)
        return app

    async def stop(app: Application) -> None:
        running.remove(app)
        await app.stop()
        await app.shutdown()  # PTB's last persistence run, then flush

    yield start, stop
    for app in running:  # what a failed test left running
        if app.running:
            await app.stop()
        await app.shutdown()


async def stored_user(conn, telegram_id: int):
    return await queries.persistence_test_user_data(conn, telegram_id=telegram_id)


async def stored_states(conn, telegram_id: int) -> list[tuple[str, list, object]]:
    rows = queries.persistence_test_conversations(conn, telegram_id=telegram_id)
    return [(r["name"], r["conversation_key"], r["state"]) async for r in rows]


async def to_amount(chat: Chat, direction: str = "BTC → NGN") -> None:
    await chat.send("/exchange")
    step = await chat.tap(direction)
    assert "How much" in step.text


def exchange_timeout_jobs(app: Application) -> list:
    return [
        j
        for j in app.job_queue.jobs()
        if getattr(getattr(j.callback, "__self__", None), "name", None) == ui_exchange.FLOW
    ]


# --- the restart ------------------------------------------------------------------


async def test_a_flow_carries_on_after_a_restart(conn, pool, telegram, restartable):
    start, stop = restartable
    await market(conn, ALICE)
    await seeding.credit(conn, ALICE, "BTC", "0.5")

    first = await start()
    await to_amount(Chat(first, telegram, ALICE))
    assert ui_exchange.FLOW in first.user_data[ALICE]["flows"]  # cached, in memory
    await stop(first)

    # What the shutdown wrote: the state, and the choices, but no cached context.
    assert await stored_states(conn, ALICE) == [("exchange", [ALICE, ALICE], "amount")]
    kept = await stored_user(conn, ALICE)
    assert set(kept) == {"choices"} and "flows" not in kept
    choices = kept["choices"]["exchange"]
    assert choices["$type"] == "exchange.Choices"
    assert (choices["from_currency"], choices["to_currency"]) == ("BTC", "NGN")
    assert choices["amount"] is None and choices["order_id"] is None

    # A restarted bot, whose persistence is given the pool late (as post_init opens it).
    asked = []

    async def late_pool() -> asyncpg.Pool:
        asked.append(True)
        return pool

    second = await start(late_pool)
    assert asked, "the persistence loaded through the late pool"
    assert "flows" not in second.user_data[ALICE]
    alice = Chat(second, telegram, ALICE)

    typed = await alice.send("0.01")
    # The conversation came back at the amount step; its context was fetched again.
    assert typed.round_trips == 1
    assert typed.statements == [queries.exchange_context.sql]
    assert "Where should the NGN go?" in typed.text
    assert ui_exchange.FLOW in second.user_data[ALICE]["flows"]

    quoted = await alice.tap("My NGN wallet")
    assert quoted.round_trips == 1  # the context is cached again: the lock only
    assert "You get: <b>₦1,433,175.00</b>" in quoted.text
    order_id = order_id_on(quoted.screen)
    done = await alice.tap("Confirm")
    assert done.round_trips == 1 and "Exchanged" in done.text
    assert await queries.exchange_test_transfers(conn, order_id=order_id) == 1
    assert await balance(conn, ALICE, "BTC") == D("0.49")

    # The finished flow leaves nothing behind.
    await second.update_persistence()
    assert await stored_states(conn, ALICE) == []
    assert await stored_user(conn, ALICE) is None
    await stop(second)


async def test_a_confirm_after_a_restart_executes_the_quote_once(conn, telegram, restartable):
    start, stop = restartable
    await market(conn, ALICE)
    await seeding.credit(conn, ALICE, "BTC", "0.5")

    first = await start()
    alice = Chat(first, telegram, ALICE)
    await to_amount(alice)
    await alice.send("0.01")
    quoted = await alice.tap("My NGN wallet")
    order_id = order_id_on(quoted.screen)
    await stop(first)
    assert (await stored_user(conn, ALICE))["choices"]["exchange"]["order_id"] == order_id

    second = await start()
    alice = Chat(second, telegram, ALICE)
    done = await alice.press(f"exchange:confirm:{order_id}", on=quoted.screen)
    assert done.round_trips == 2  # the context again, then the exchange
    assert "Exchanged" in done.text and f"Order #{order_id}" in done.text
    again = await alice.press(f"exchange:confirm:{order_id}", on=quoted.screen)
    assert again.alerts == [ui_exchange.NOT_OPEN] and again.round_trips == 0
    assert await queries.exchange_test_transfers(conn, order_id=order_id) == 1
    await stop(second)


async def test_two_users_states_do_not_mix(conn, telegram, restartable):
    start, stop = restartable
    await market(conn, ALICE, BOB)
    await seeding.credit(conn, ALICE, "BTC", "0.5")
    await seeding.credit(conn, BOB, "NGN", "2000000")

    first = await start()
    await to_amount(Chat(first, telegram, ALICE), "BTC → NGN")
    bob = Chat(first, telegram, BOB)
    await bob.send("/exchange")  # Bob stays at the pick step

    # Both users' data and states in one statement.
    async with db.meter.measure() as m:
        await first.update_persistence()
    assert m.round_trips == 1
    assert await stored_states(conn, ALICE) == [("exchange", [ALICE, ALICE], "amount")]
    assert await stored_states(conn, BOB) == [("exchange", [BOB, BOB], "pick")]
    # Nothing changed since: a run writes nothing.
    async with db.meter.measure() as m:
        await first.update_persistence()
    assert m.round_trips == 0
    await stop(first)

    second = await start()
    alice, bob = Chat(second, telegram, ALICE), Chat(second, telegram, BOB)
    # Bob is at the pick step: typed text is no amount for him.
    assert (await bob.send("1,000,000")).replies == []
    picked = await bob.tap("NGN → BTC")
    assert picked.round_trips == 1 and "How much NGN" in picked.text
    bobs = await bob.send("1,000,000")
    assert bobs.round_trips == 0 and "Where should the BTC go?" in bobs.text
    alices = await alice.send("0.01")
    assert alices.round_trips == 1 and "Where should the NGN go?" in alices.text
    assert second.user_data[ALICE]["choices"]["exchange"].from_currency == "BTC"
    assert second.user_data[BOB]["choices"]["exchange"].from_currency == "NGN"
    await stop(second)


# --- what ends a flow clears what was kept ----------------------------------------


async def test_cancel_clears_the_persisted_state(conn, telegram, restartable):
    start, stop = restartable
    await market(conn, ALICE)
    await seeding.credit(conn, ALICE, "BTC", "0.5")

    first = await start()
    alice = Chat(first, telegram, ALICE)
    await to_amount(alice)
    await first.update_persistence()
    assert await stored_states(conn, ALICE) != []
    assert await stored_user(conn, ALICE) is not None

    await alice.send("/cancel")
    await first.update_persistence()
    assert await stored_states(conn, ALICE) == []
    assert await stored_user(conn, ALICE) is None
    await stop(first)

    second = await start()
    step = await Chat(second, telegram, ALICE).send("0.01")
    assert step.replies == [] and step.round_trips == 0
    assert await orders(conn, ALICE) == 0
    await stop(second)


async def test_a_conversation_timeout_clears_the_persisted_state(conn, telegram, restartable):
    start, stop = restartable
    await market(conn, ALICE)
    await seeding.credit(conn, ALICE, "BTC", "0.5")

    first = await start()
    await to_amount(Chat(first, telegram, ALICE))
    await first.update_persistence()
    assert await stored_states(conn, ALICE) != []
    # The 15-minute job never fires during a test: the test runs it.
    jobs = exchange_timeout_jobs(first)
    assert len(jobs) == 1
    await jobs[0].run(first)

    await first.update_persistence()
    assert await stored_states(conn, ALICE) == []
    assert await stored_user(conn, ALICE) is None
    await stop(first)

    second = await start()
    step = await Chat(second, telegram, ALICE).send("0.01")
    assert step.replies == [] and step.round_trips == 0
    await stop(second)


async def test_a_state_idle_past_the_timeout_is_not_restored(conn, telegram, restartable):
    start, stop = restartable
    await market(conn, ALICE)
    await seeding.credit(conn, ALICE, "BTC", "0.5")
    first = await start()
    await to_amount(Chat(first, telegram, ALICE))
    await stop(first)
    # The bot stayed down longer than the flows' timeout.
    await queries.persistence_test_age_conversations(conn, seconds=FLOW_TIMEOUT_SECONDS + 60)

    second = await start()
    assert await stored_states(conn, ALICE) == []  # deleted as it was left out
    step = await Chat(second, telegram, ALICE).send("0.01")
    assert step.replies == [] and step.round_trips == 0
    await stop(second)


async def test_a_restored_flow_left_past_the_timeout_has_lapsed(conn, telegram, restartable):
    start, stop = restartable
    await market(conn, ALICE)
    await seeding.credit(conn, ALICE, "BTC", "0.5")
    first = await start()
    await to_amount(Chat(first, telegram, ALICE))
    await stop(first)

    second = await start()
    # A restored conversation has no timeout job: the user comes back 16 minutes on.
    kept = second.user_data[ALICE]["choices"]["exchange"]
    second.user_data[ALICE]["choices"]["exchange"] = replace(
        kept, at=kept.at - timedelta(seconds=FLOW_TIMEOUT_SECONDS + 60)
    )
    step = await Chat(second, telegram, ALICE).send("0.01")
    assert step.text == EXPIRED and step.round_trips == 0
    await second.update_persistence()
    assert await stored_states(conn, ALICE) == []
    assert await stored_user(conn, ALICE) is None
    await stop(second)


# --- the store --------------------------------------------------------------------


async def test_user_data_round_trips_exactly_and_keeps_only_what_it_can(pool, caplog):
    persistence = PostgresPersistence(pool)
    at = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    request = Request("USDT", 6, D("12345678901234567890.123456789012345678"),
                      CryptoDestination("TRC20", "T" + "x" * 33, None))  # fmt: skip
    data = {
        "flows": {"exchange": object()},  # a cached context: never written
        "choices": {"exchange": Choices(at=at, from_currency="BTC", amount=D("1E-18"))},
        "wallet_confirmed": {"key-1": request},
        "by_number": {1: ("a", 2)},
        "$odd": [1.5, None, True],
        "not_kept": {1, 2},  # a set is not among what the codec writes
        "nul": "a\x00b",  # nor a NUL, which jsonb refuses
    }
    await persistence.update_user_data(ALICE, data)
    assert "'not_kept' is not kept" in caplog.text and "'nul' is not kept" in caplog.text

    loaded = (await PostgresPersistence(pool).get_user_data())[ALICE]
    assert loaded == {
        "choices": {"exchange": Choices(at=at, from_currency="BTC", amount=D("1E-18"))},
        "wallet_confirmed": {"key-1": request},
        "by_number": {1: ("a", 2)},
        "$odd": [1.5, None, True],
    }
    assert loaded["choices"]["exchange"].amount == D("0.000000000000000001")

    # Only user_data and chat_data and states: bot_data and callback_data are not kept.
    assert not persistence.store_data.bot_data and not persistence.store_data.callback_data
    await persistence.update_chat_data(ALICE, {"note": D("2.50")})
    assert (await persistence.get_chat_data())[ALICE] == {"note": D("2.50")}
    await persistence.drop_user_data(ALICE)
    await persistence.drop_chat_data(ALICE)
    assert await persistence.get_user_data() == {}
    assert await persistence.get_chat_data() == {}


async def test_a_value_that_no_longer_decodes_costs_only_its_own_key(pool, caplog):
    # Written by a codec that knew a type this deploy no longer has.
    writer = PostgresPersistence(pool, codec=Codec({"gone.Thing": "bot.handlers.exchange:Choices"}))
    at = datetime.now(UTC)
    await writer.update_user_data(ALICE, {"old": Choices(at=at), "plain": "kept"})

    assert (await PostgresPersistence(pool).get_user_data())[ALICE] == {"plain": "kept"}
    assert "unknown persisted type 'gone.Thing'" in caplog.text


async def test_a_failed_write_is_kept_for_the_next_run(database_url, pool):
    closed = await db.create_pool(database_url, min_size=1, max_size=1)
    await closed.close()
    pools = [closed]

    async def current() -> asyncpg.Pool:
        return pools[-1]

    persistence = PostgresPersistence(current)
    with pytest.raises(asyncpg.InterfaceError):
        await persistence.update_user_data(ALICE, {"a": 1})  # PTB will not hand it over again

    pools.append(pool)  # the database is back
    async with db.meter.measure() as m:
        await persistence.update_user_data(BOB, {"b": 2})
    assert m.round_trips == 1
    assert await persistence.get_user_data() == {ALICE: {"a": 1}, BOB: {"b": 2}}
