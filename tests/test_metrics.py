"""Production metrics through the real Application and the HTTP app: each test reads
GET /metrics over real HTTP on loopback before and after, and finds the numbers moved by
exactly what the flow did (the counters are the process's own, so only differences
count)."""

from __future__ import annotations

import re
from decimal import Decimal

import httpx
import pytest
import seeding
from prometheus_client.parser import text_string_to_metric_families
from telegram.ext import CommandHandler
from webhook_support import FINCRA_KEY, body, serving

from bot import cache, db, metrics
from bot.data.enums import PaymentProvider
from bot.data.errors import InsufficientFunds, NotFound
from bot.data.wallet import CryptoDestination, create_deposit_order, request_cashout
from bot.providers import fincra
from bot.web import TELEGRAM_SECRET_HEADER

ADA, BAYO = 2101, 2102
TRON = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"

SECONDS = "lockbay_db_operation_duration_seconds"
ROUND_TRIPS = "lockbay_db_round_trips_total"


class Scrape:
    """One GET /metrics, parsed."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[tuple[str, frozenset], float] = {}  # float-ok: sample values
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                self.samples[(s.name, frozenset(s.labels.items()))] = s.value

    def value(self, name: str, **labels: str) -> float:  # float-ok: sample values
        return self.samples.get((name, frozenset(labels.items())), 0)

    def labelled(self, name: str, label: str) -> dict[str, float]:  # float-ok: sample values
        """Every sample of `name`, by the value of its `label`."""
        return {dict(k)[label]: v for (n, k), v in self.samples.items() if n == name}

    def operations(self, name: str = ROUND_TRIPS) -> dict[str, float]:  # float-ok
        return self.labelled(name, "operation")


async def scrape(client: httpx.AsyncClient) -> Scrape:
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"] == metrics.CONTENT_TYPE
    return Scrape(r.text)


def moved(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:  # float-ok
    """The labels whose value changed, and by how much."""
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def changes(before: Scrape, after: Scrape, name: str, label: str) -> dict[str, float]:  # float-ok
    """What moved between two scrapes in the samples of `name`, by `label`."""
    return moved(before.labelled(name, label), after.labelled(name, label))


REFUSALS = "lockbay_domain_refusals_total"
HANDLER_ERRORS = "lockbay_handler_errors_total"


@pytest.fixture
async def client(pool, bot):
    # outbox: no delivery after each step here; the sender's passes are operations of
    # their own (outbox.deliver), not the flow's, and would move these counters.
    bot.bot_data.pop("after_update", None)
    async with serving(pool, application=bot) as client:
        yield client


@pytest.fixture
async def ada(conn, chat):
    await seeding.user(conn, ADA, "Ada")
    await seeding.credit(conn, ADA, "USDT", "100")
    return chat(ADA, "Ada")


# --- the exposition ---------------------------------------------------------------


async def test_metrics_are_served_in_prometheus_text_format(client):
    s = await scrape(client)
    for name, kind in [
        ("lockbay_db_operation_duration_seconds", "histogram"),
        ("lockbay_db_round_trips_total", "counter"),
        ("lockbay_cache_hits_total", "counter"),
        ("lockbay_cache_misses_total", "counter"),
        ("lockbay_domain_refusals_total", "counter"),
        ("lockbay_handler_errors_total", "counter"),
        ("lockbay_webhook_rejections_total", "counter"),
    ]:
        assert f"# TYPE {name} {kind}\n" in s.text, name


# --- screens, steps and the cache -----------------------------------------------------


async def test_a_screen_is_one_operation_of_one_round_trip_and_steps_hit_the_cache(
    ada, bot, client
):
    before = await scrape(client)
    stats_before = (cache.stats.hits["wallet"], cache.stats.misses["wallet"])

    screen = await ada.send("/wallet")
    after_screen = await scrape(client)

    # The screen: still exactly one round trip, and it is the wallet_context query's.
    assert screen.round_trips == 1
    assert moved(before.operations(), after_screen.operations()) == {"wallet_context": 1}
    assert moved(
        before.operations(f"{SECONDS}_count"), after_screen.operations(f"{SECONDS}_count")
    ) == {"wallet_context": 1}
    assert after_screen.value(f"{SECONDS}_sum", operation="wallet_context") > before.value(
        f"{SECONDS}_sum", operation="wallet_context"
    )
    # Opening the flow fetched its context: a miss.
    assert (
        after_screen.value("lockbay_cache_misses_total", flow="wallet")
        == before.value("lockbay_cache_misses_total", flow="wallet") + 1
    )

    steps = [await ada.tap("Cash out crypto"), await ada.press("wallet:cur:USDT")]
    cancelled = await ada.send("/cancel")
    after_cancel = await scrape(client)
    # Money moved behind an open flow's back: its context is evicted, the next step misses
    # and refetches it (bot.handlers.wallet._refetch).
    await ada.send("/wallet")
    cache.evict_user(bot.user_data, ADA)
    gone = await ada.tap("Cash out crypto")
    after = await scrape(client)

    assert [s.round_trips for s in [*steps, cancelled, gone]] == [0, 0, 0, 1]
    assert "Cancelled" in cancelled.text and "balance changed" in gone.text
    assert moved(after_screen.operations(), after_cancel.operations()) == {}
    assert moved(after_cancel.operations(), after.operations()) == {"wallet_context": 2}
    # Each step read the cached context (2 hits); two openings, the evicted step and its
    # refetch missed.
    hits = after.value("lockbay_cache_hits_total", flow="wallet") - before.value(
        "lockbay_cache_hits_total", flow="wallet"
    )
    misses = after.value("lockbay_cache_misses_total", flow="wallet") - before.value(
        "lockbay_cache_misses_total", flow="wallet"
    )
    assert (hits, misses) == (2, 4)
    # The same numbers as the cache's own tally.
    assert (hits, misses) == (
        cache.stats.hits["wallet"] - stats_before[0],
        cache.stats.misses["wallet"] - stats_before[1],
    )
    # Labels are names, never users.
    assert f'"{ADA}"' not in after.text  # as a label value: never a user id


async def test_the_exchange_flow_is_its_three_operations(conn, chat, client):
    await seeding.user(conn, BAYO, "Bayo")
    await seeding.credit(conn, BAYO, "BTC", "0.5")
    await seeding.rate(conn, "BTC", "USD", "97000")
    await seeding.rate(conn, "USD", "NGN", "1500")
    bayo = chat(BAYO, "Bayo")
    before = await scrape(client)
    stats_before = (cache.stats.hits["exchange"], cache.stats.misses["exchange"])

    steps = [await bayo.send("/exchange")]
    steps.append(await bayo.tap("BTC → NGN"))
    steps.append(await bayo.send("0.01"))
    steps.append(await bayo.tap("My "))
    steps.append(await bayo.tap("Confirm"))
    after = await scrape(client)

    # The screen, the rate lock (the quote), the exchange: one round trip each.
    assert [s.round_trips for s in steps] == [1, 0, 0, 1, 1]
    assert moved(before.operations(), after.operations()) == {
        "exchange_context": 1,
        "exchange_lock_rate": 1,
        "exchange_execute": 1,
    }
    assert moved(before.operations(f"{SECONDS}_count"), after.operations(f"{SECONDS}_count")) == {
        "exchange_context": 1,
        "exchange_lock_rate": 1,
        "exchange_execute": 1,
    }
    hits = changes(before, after, "lockbay_cache_hits_total", "flow")
    misses = changes(before, after, "lockbay_cache_misses_total", "flow")
    # The flow's one fetch, then each of the four steps read what it fetched.
    assert (hits, misses) == ({"exchange": 4}, {"exchange": 1})
    assert (hits["exchange"], misses["exchange"]) == (
        cache.stats.hits["exchange"] - stats_before[0],
        cache.stats.misses["exchange"] - stats_before[1],
    )
    assert f'"{BAYO}"' not in after.text  # as a label value: never a user id


# --- movements and refusals -----------------------------------------------------------


async def to_confirm(ada, amount: str) -> None:
    await ada.send("/wallet")
    await ada.tap("Cash out crypto")
    await ada.press("wallet:cur:USDT")
    await ada.send(amount)
    await ada.tap("Tron")
    await ada.send(TRON)


async def test_a_movement_is_counted_under_its_query(conn, ada, client):
    await to_confirm(ada, "25")
    before = await scrape(client)

    done = await ada.tap("Confirm")
    after = await scrape(client)

    assert done.round_trips == 1
    assert moved(before.operations(), after.operations()) == {"wallet_request_cashout": 1}
    assert changes(before, after, REFUSALS, "outcome") == {}


async def test_a_refusal_at_confirm_is_counted_by_outcome(conn, ada, client):
    await to_confirm(ada, "50")
    # Elsewhere, 90 USDT leave the wallet: the flow's cached balance is now wrong.
    await request_cashout(
        conn,
        telegram_id=ADA,
        currency="USDT",
        amount=Decimal(90),
        destination=CryptoDestination("TRC20", TRON),
        idempotency_key="elsewhere",
    )
    before = await scrape(client)

    step = await ada.tap("Confirm")
    after = await scrape(client)

    assert "balance changed" in step.text
    assert changes(before, after, REFUSALS, "outcome") == {InsufficientFunds.outcome: 1}
    # The refused movement and the fresh screen: every round trip is one operation's.
    assert step.round_trips == 2
    assert moved(before.operations(), after.operations()) == {
        "wallet_request_cashout": 1,
        "wallet_context": 1,
    }
    # Not an unexpected failure: the handler explained it.
    assert changes(before, after, HANDLER_ERRORS, "exception") == {}


class Boom(Exception):
    pass


async def test_an_unexpected_handler_failure_is_counted_by_exception_class(ada, bot, client):
    async def explode(update, context) -> None:
        raise Boom("a bug")

    bot.add_handler(CommandHandler("boom", explode), group=-1)
    ada.strict = False  # the failure is the point
    before = await scrape(client)

    step = await ada.send("/boom")
    after = await scrape(client)

    assert "Something went wrong" in step.text
    assert changes(before, after, HANDLER_ERRORS, "exception") == {"Boom": 1}
    assert isinstance(bot.bot_data["errors"][-1], Boom)


async def test_a_database_failure_in_a_handler_is_counted(ada, bot, client, database_url):
    broken = await db.create_pool(database_url, min_size=1, max_size=1)
    await broken.close()
    pool, bot.bot_data["pool"] = bot.bot_data["pool"], broken
    ada.strict = False
    before = await scrape(client)
    try:
        await ada.send("/menu")
    finally:
        bot.bot_data["pool"] = pool
    after = await scrape(client)

    changed = changes(before, after, HANDLER_ERRORS, "exception")
    assert changed == {type(bot.bot_data["errors"][-1]).__name__: 1}
    assert changed.keys() == {"InterfaceError"}
    # The failed query is still an operation, of no round trip.
    assert moved(before.operations(f"{SECONDS}_count"), after.operations(f"{SECONDS}_count")) == {
        "menu_context": 1
    }
    assert moved(before.operations(), after.operations()) == {}


# --- webhooks -------------------------------------------------------------------------


def collection(ref: str, amount: Decimal, fincra_id: int = 91001) -> bytes:
    data = {
        "id": fincra_id,
        "sourceCurrency": "NGN",
        "destinationCurrency": "NGN",
        "sourceAmount": amount,
        "destinationAmount": amount,
        "amountReceived": amount,
        "fee": Decimal(0),
        "status": "successful",
        "reference": ref,
    }
    return body({"event": "collection.successful", "data": data})


async def post_fincra(client: httpx.AsyncClient, raw: bytes, signature: str | None = None):
    signature = signature or fincra.sign(FINCRA_KEY, raw)
    return await client.post(
        "/webhooks/fincra", content=raw, headers={fincra.SIGNATURE_HEADER: signature}
    )


def rejections(s: Scrape) -> dict[tuple[str, str], float]:  # float-ok: sample values
    return {
        (dict(k)["provider"], dict(k)["status"]): v
        for (n, k), v in s.samples.items()
        if n == "lockbay_webhook_rejections_total"
    }


async def test_webhook_rejections_are_counted_by_provider_and_status(pool, client):
    await seeding.user(pool, ADA)
    order = await create_deposit_order(
        pool, telegram_id=ADA, currency="NGN", provider=PaymentProvider.FINCRA
    )
    raw = collection(order.ref, Decimal("1500"))
    before = await scrape(client)

    forged = await post_fincra(client, raw, signature="ab" * 64)
    garbled = await post_fincra(client, b"{")
    wrong_secret = await client.post(
        "/telegram", json={"update_id": 1}, headers={TELEGRAM_SECRET_HEADER: "not-it"}
    )
    genuine = await post_fincra(client, raw)
    after = await scrape(client)

    assert (forged.status_code, wrong_secret.status_code, genuine.status_code) == (401, 401, 200)
    assert garbled.status_code // 100 == 4
    assert moved(rejections(before), rejections(after)) == {
        ("fincra", "401"): 1,
        ("fincra", str(garbled.status_code)): 1,
        ("telegram", "401"): 1,
    }
    # The genuine one moved money in one transaction, labelled by its data function: BEGIN,
    # the event's claim, the credit, COMMIT. Its queries count toward it, not on their own.
    assert moved(before.operations(), after.operations()) == {"wallet.credit_deposit": 4}
    assert moved(before.operations(f"{SECONDS}_count"), after.operations(f"{SECONDS}_count")) == {
        "wallet.credit_deposit": 1
    }


async def test_an_unknown_reference_is_a_refusal_not_a_rejection(pool, client):
    raw = collection("lb-no-such-order", Decimal("1500"), fincra_id=91002)
    before = await scrape(client)

    r = await post_fincra(client, raw)
    after = await scrape(client)

    assert r.status_code == 200
    assert moved(rejections(before), rejections(after)) == {}
    assert changes(before, after, REFUSALS, "outcome") == {NotFound.outcome: 1}
    # The refused credit rolled back (BEGIN, claim, credit, ROLLBACK), then the event was
    # recorded for review on its own.
    changed = moved(before.operations(f"{SECONDS}_count"), after.operations(f"{SECONDS}_count"))
    assert changed == {"wallet.credit_deposit": 1, "wallet_claim_webhook_event": 1}


# --- the wrapper itself ---------------------------------------------------------------


async def test_the_instrumented_queries_keep_the_loaded_ones_interface(conn):
    loaded = db.load_queries()
    assert db.queries.available_queries == loaded.available_queries
    assert db.queries.wallet_context.sql == loaded.wallet_context.sql
    assert db.queries.driver_adapter is loaded.driver_adapter
    # Many rows still come as an async generator, and each query is still one round trip
    # (once asyncpg knows the connection's types: its first use of an enum asks for them).
    [r async for r in db.queries.schema_enum_labels(conn)]
    async with db.meter.measure() as m:
        names = [r["typname"] async for r in db.queries.schema_enum_labels(conn)]
        await db.queries.menu_context(conn, telegram_id=1)
    assert "escrow_status" in names and m.round_trips == 2


async def test_a_transaction_names_itself_after_its_caller_or_as_told(conn):
    seen: list[tuple[str, int]] = []

    def listener(name: str, seconds: float, round_trips: int) -> None:  # float-ok: seconds
        seen.append((name, round_trips))

    db.operations.listeners.append(listener)
    try:
        async with db.transaction(conn) as tx:
            await db.queries.menu_context(tx, telegram_id=1)
            async with db.transaction(tx):  # a savepoint belongs to the outer one
                await db.queries.menu_context(tx, telegram_id=1)
        async with db.transaction(conn, operation="named"):
            pass
        await db.queries.menu_context(conn, telegram_id=1)
    finally:
        db.operations.listeners.remove(listener)
    caller = re.sub(r"^tests\.", "", __name__)
    assert seen == [
        # BEGIN, query, SAVEPOINT, query, RELEASE, COMMIT
        (f"{caller}.test_a_transaction_names_itself_after_its_caller_or_as_told", 6),
        ("named", 2),
        ("menu_context", 1),
    ]
