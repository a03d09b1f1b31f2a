"""Production metrics, in Prometheus' text format at GET /metrics of the HTTP app.

Nothing here is called from the data modules or the handlers: the metrics listen.

- Database operations (`bot.db.operations`): each named query call is one operation
  labelled with the query's name (a screen: `wallet_context`; a one-statement movement:
  `escrow_accept`), each explicit transaction one labelled after the data function that
  opened it (`wallet.credit_deposit`), the queries inside it included. Its wall time goes
  to a histogram, its statements to a counter: a screen adds 1 to both.
- The flow cache (`bot.cache.stats`): hits and misses per flow.
- Domain refusals (`bot.data.errors`), by outcome, counted as the data layer makes them:
  those raised to a handler, and those a webhook's movement answers with.
- Handler failures (the application's error handler), by exception class.
- Webhook requests answered with an error status, by provider and status.

Labels are names from the code (queries, functions, flows, outcomes, exception classes,
providers) and HTTP statuses: never a user, an amount or a reference.
"""

from __future__ import annotations

import functools
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest

from bot import cache, db
from bot.data import errors

CONTENT_TYPE = CONTENT_TYPE_LATEST

# From a warm single-row read (~1 ms) to a movement stuck behind locks.
SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

OPERATION_SECONDS = Histogram(
    "lockbay_db_operation_duration_seconds",
    "Wall time of a database operation (a named query, or a data function's transaction), "
    "waiting for a pooled connection included.",
    ["operation"],
    buckets=SECONDS_BUCKETS,
)
ROUND_TRIPS = Counter(
    "lockbay_db_round_trips",
    "Statements sent to PostgreSQL by a database operation (BEGIN and COMMIT included).",
    ["operation"],
)
CACHE_HITS = Counter(
    "lockbay_cache_hits",
    "Steps of a flow served from the context the flow fetched when it opened.",
    ["flow"],
)
CACHE_MISSES = Counter(
    "lockbay_cache_misses",
    "Flow contexts fetched (a flow opening), or looked for and gone (expired, evicted).",
    ["flow"],
)
REFUSALS = Counter(
    "lockbay_domain_refusals",
    "Movements the data layer refused (nothing changed), by the refusal's outcome.",
    ["outcome"],
)
HANDLER_ERRORS = Counter(
    "lockbay_handler_errors",
    "Unexpected failures of a Telegram update's handler, by exception class.",
    ["exception"],
)
WEBHOOK_REJECTIONS = Counter(
    "lockbay_webhook_rejections",
    "Webhook requests answered with an error status: 4xx refused (401: bad signature or "
    "secret token), 5xx for the sender to retry.",
    ["provider", "status"],
)


@functools.cache  # one pair per operation name: the names are the code's, a bounded set
def _operation_series(name: str) -> tuple[Any, Any]:
    return OPERATION_SECONDS.labels(operation=name), ROUND_TRIPS.labels(operation=name)


def _operation(name: str, seconds: float, round_trips: int) -> None:  # float-ok: seconds
    histogram, counter = _operation_series(name)
    histogram.observe(seconds)
    counter.inc(round_trips)


def _cache(flow: str, hit: bool) -> None:
    (CACHE_HITS if hit else CACHE_MISSES).labels(flow=flow).inc()


def _refusal(outcome: str) -> None:
    REFUSALS.labels(outcome=outcome).inc()


def handler_failed(error: BaseException | None) -> None:
    """An update's handler raised `error` (from the application's error handler)."""
    HANDLER_ERRORS.labels(exception=type(error).__name__).inc()


def webhook_rejected(provider: str, status: int) -> None:
    """A webhook endpoint answered `status` (400 or more)."""
    WEBHOOK_REJECTIONS.labels(provider=provider, status=str(status)).inc()


def install() -> None:
    """Listen to the database operations, the flow cache and the refusals (once)."""
    for listeners, listener in (
        (db.operations.listeners, _operation),
        (cache.stats.listeners, _cache),
        (errors.refusal_listeners, _refusal),
    ):
        if listener not in listeners:
            listeners.append(listener)


def exposition() -> bytes:
    """Every metric of the process (these, and prometheus_client's process and Python
    collectors), in the text format served as `CONTENT_TYPE`."""
    return generate_latest(REGISTRY)


install()
