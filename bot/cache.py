"""Flow context: a flow's screen context, fetched once at entry, reused by every later step.

A flow (the crypto cashout, the escrow creation, ...) fetches what its screens
need in one query when it opens and keeps it in `context.user_data`. The steps
after that read it from there: zero round trips. The cache is never trusted
for money: the step that moves money calls the movement, which re-checks
under lock. Contexts are dropped when a flow completes, is cancelled or times
out, and are never persisted (a restarted bot refetches them).

Other processes move money too (a webhook, the cashout worker, a second bot
process): a commit that changes a user's balances, escrows or saved
destinations sends NOTIFY (triggers, migration 0011), and `Invalidator`
LISTENs on a dedicated connection and evicts that user's contexts here. The
next step of an evicted flow finds its context gone (`evicted` says why) and
refetches it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

import asyncpg

from bot import db

log = logging.getLogger(__name__)

# Where the cached contexts live inside one user's `user_data`.
FLOWS = "flows"
# A mark among FLOWS: why the user's contexts were dropped behind their back. It goes
# wherever the contexts go (never persisted, dropped by /cancel) and the next
# successful `open_flow` clears it.
EVICTED = "~evicted"
CHANGED = "changed"  # a commit changed this user's balances, escrows or saved destinations
FLUSHED = "flushed"  # the listener (re)connected: notifications may have been missed


class CacheStats:
    """Hits and misses per flow, for the demo's table and for the metrics."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.misses: Counter[str] = Counter()
        self.listeners: list[Callable[[str, bool], None]] = []

    def record(self, flow: str, hit: bool) -> None:
        (self.hits if hit else self.misses)[flow] += 1
        for listener in self.listeners:
            listener(flow, hit)

    def hit_rate(self) -> float:  # float-ok: a ratio for display, not money
        total = sum(self.hits.values()) + sum(self.misses.values())
        return sum(self.hits.values()) / total if total else 0.0

    def reset(self) -> None:
        self.hits.clear()
        self.misses.clear()


stats = CacheStats()


def _flows(user_data: MutableMapping[str, Any]) -> dict[str, Any]:
    return user_data.setdefault(FLOWS, {})


async def open_flow(
    user_data: MutableMapping[str, Any], flow: str, fetch: Callable[[], Awaitable[Any]]
) -> Any:
    """The flow's context, fetched now (one round trip) and kept for the steps after.

    When the user's contexts are evicted while the fetch runs, the answer may predate
    the change: it is returned (the screen shows it) but not kept, and the mark stays,
    so the next step refetches.
    """
    flows = _flows(user_data)
    value = await fetch()
    stats.record(flow, hit=False)
    if user_data.get(FLOWS) is not flows:  # evicted meanwhile
        return value
    if value is None:
        flows.pop(flow, None)
    else:
        flows[flow] = value
        flows.pop(EVICTED, None)
    return value


def cached(user_data: MutableMapping[str, Any], flow: str) -> Any | None:
    """The flow's context as fetched at entry, or None when it was dropped (zero round trips)."""
    value = _flows(user_data).get(flow)
    stats.record(flow, hit=value is not None)
    return value


def replace(user_data: MutableMapping[str, Any], flow: str, value: Any) -> None:
    """Keep a fresher context a movement answered with (still zero round trips)."""
    _flows(user_data)[flow] = value


def drop(user_data: MutableMapping[str, Any], flow: str | None = None) -> None:
    """Forget one flow's context (and its parts, keyed `<flow>_...`), or every flow's,
    with the choices the flow kept (`keep_choices`): the flow is over."""
    if flow is None:
        user_data.pop(FLOWS, None)
        user_data.pop(CHOICES, None)
        return
    for part in (_flows(user_data), user_data.get(CHOICES, {})):
        for key in [k for k in part if k == flow or k.startswith(f"{flow}_")]:
            del part[key]
    if CHOICES in user_data and not user_data[CHOICES]:
        del user_data[CHOICES]  # nothing left to keep: no row in the persistence either


# Where a flow keeps the user's choices so far (a pair, an amount, an order id): small
# plain values beside the cached contexts, in `user_data` but outside FLOWS, so they
# are persisted (bot.persistence) and survive an eviction. A restarted bot carries on
# from them and refetches the context.
CHOICES = "choices"


def choices(user_data: MutableMapping[str, Any], flow: str) -> Any | None:
    """What the user chose so far in `flow`, or None when the flow kept nothing."""
    return user_data.get(CHOICES, {}).get(flow)


def keep_choices(user_data: MutableMapping[str, Any], flow: str, value: Any) -> None:
    """Keep the user's choices in `flow` until the flow ends (`drop`)."""
    user_data.setdefault(CHOICES, {})[flow] = value


def _evict(user_data: MutableMapping[str, Any], reason: str) -> bool:
    """Replace the user's contexts by the mark; True when a context was dropped.

    A new dict, not a cleared one: an `open_flow` fetching meanwhile sees the change.
    """
    flows = user_data.get(FLOWS)
    if flows is None:
        return False
    user_data[FLOWS] = {EVICTED: reason}
    return any(key != EVICTED for key in flows)


def evict_user(user_data_by_user: Mapping[int, Any], telegram_id: int) -> bool:
    """Drop every cached context of one user (money moved behind their back).

    True when a context was dropped. `evicted` then answers CHANGED for that user.
    """
    user_data = user_data_by_user.get(telegram_id)
    if not user_data:
        return False
    return _evict(user_data, CHANGED)


def evict_all(user_data_by_user: Mapping[int, Any]) -> None:
    """Drop every cached context (notifications may have been missed).

    `evicted` then answers FLUSHED for every user who had a context.
    """
    for user_data in list(user_data_by_user.values()):
        _evict(user_data, FLUSHED)


def evicted(user_data: Mapping[str, Any]) -> str | None:
    """Why this user's contexts were dropped behind their back (CHANGED or FLUSHED), or
    None when they were not (the flow ended, was cancelled, or the bot restarted)."""
    flows = user_data.get(FLOWS)
    return flows.get(EVICTED) if flows else None


# --- invalidation across processes ---------------------------------------------------

CHANNEL = "lockbay_user"  # what migration 0011's notify_users sends on
BOT_DATA_KEY = "invalidator"


class Invalidator:
    """LISTENs for committed changes of users' data and evicts their cached contexts.

    One dedicated connection (a pooled one drops its LISTEN when it goes back to the
    pool). Each notification carries a Telegram id: that user's contexts in
    `user_data_by_user` (an Application's `user_data`) are evicted. When the connection
    is lost (the server ended it, or a keep-alive went unanswered), it connects again,
    retrying with a capped back-off, LISTENs, and only then drops every cached context,
    since notifications sent while it was away were missed: LISTEN first, so nothing
    committed after the flush can be missed either. The first connection flushes too:
    whatever was cached before it listened is unknown.

    Counters for tests and logs, each awaitable with `wait_for` (no sleeping):
    `generation` (connections made), `notifications` (received), `evictions` (users
    whose contexts were dropped), `flushes` (full flushes), `failures` (connections
    lost or refused).
    """

    def __init__(
        self,
        dsn: str,
        user_data_by_user: Mapping[int, Any],
        *,
        keepalive_seconds: float = 30.0,  # float-ok: seconds
        keepalive_timeout: float = 10.0,  # float-ok: seconds
        backoff_seconds: float = 0.1,  # float-ok: seconds
        max_backoff_seconds: float = 5.0,  # float-ok: seconds
    ) -> None:
        self.dsn = dsn
        self.user_data_by_user = user_data_by_user
        self.keepalive_seconds = keepalive_seconds
        self.keepalive_timeout = keepalive_timeout
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.generation = 0
        self.notifications = 0
        self.evictions = 0
        self.flushes = 0
        self.failures = 0
        self.received: deque[int] = deque(maxlen=100)  # the latest Telegram ids, oldest first
        self.backend_pid: int | None = None  # the listening session's server pid, when up
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    # --- waiting ------------------------------------------------------------------

    def _signal(self) -> None:
        # Wake every waiter; each re-checks its own condition on a fresh event.
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Return once `predicate()` holds; checked again after every change."""
        while not predicate():
            await self._changed.wait()

    async def wait_for(
        self,
        *,
        generation: int | None = None,
        notifications: int | None = None,
        evictions: int | None = None,
        flushes: int | None = None,
        failures: int | None = None,
    ) -> None:
        """Return once every counter given has reached at least its value."""
        wanted = {
            "generation": generation,
            "notifications": notifications,
            "evictions": evictions,
            "flushes": flushes,
            "failures": failures,
        }
        await self.wait_until(
            lambda: all(getattr(self, k) >= v for k, v in wanted.items() if v is not None)
        )

    async def wait_connected(self, generation: int = 1) -> None:
        """Return once the `generation`th connection is listening."""
        await self.wait_until(lambda: self.generation >= generation and self.connected)

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    # --- running ------------------------------------------------------------------

    def start(self) -> None:
        """Start listening in the background (see `wait_connected`)."""
        if self._task is None or self._task.done():
            # A context of its own: the task must not inherit a caller's round-trip
            # measurement or operation (bot.db), which would count its keep-alives.
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="lockbay-invalidation", context=contextvars.Context()
            )

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._close()

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        self.backend_pid = None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), self.keepalive_timeout)
            except Exception:  # gone already (a timeout too): just let it go
                conn.terminate()

    def _backoff(self, attempt: int) -> float:  # float-ok: seconds
        return min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (attempt - 1))

    async def _run(self) -> None:
        # Connections in a row that failed or died before answering a keep-alive: the
        # back-off grows with them, so a server that keeps refusing or ending the session
        # is not hammered (nor every context flushed in a tight loop).
        troubled = 0
        while True:
            if troubled:
                await asyncio.sleep(self._backoff(troubled))
            lost = asyncio.Event()
            conn = None
            try:
                conn = await db.connect(self.dsn)
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._on_notification)
            except Exception as e:  # whatever it was, the listener must not die of it
                if conn is not None:
                    conn.terminate()
                troubled += 1
                self.failures += 1
                log.warning("invalidation listener cannot connect (try %d): %r", troubled, e)
                self._signal()
                continue
            self._conn = conn
            self.backend_pid = conn.get_server_pid()
            # Listening now: anything committed from here on is heard. What was cached
            # before may predate changes that were never heard.
            evict_all(self.user_data_by_user)
            self.flushes += 1
            self.generation += 1
            log.info(
                "invalidation listener %d up (server pid %d)", self.generation, self.backend_pid
            )
            self._signal()
            healthy = await self._watch(conn, lost)
            troubled = 0 if healthy else troubled + 1
            self.failures += 1
            log.warning("invalidation listener %d lost its connection", self.generation)
            await self._close()
            self._signal()

    async def _watch(self, conn: asyncpg.Connection, lost: asyncio.Event) -> bool:
        """Return when the connection is lost (closed under it, or silent to a keep-alive):
        whether it had answered a keep-alive before."""
        healthy = False
        while not lost.is_set() and not conn.is_closed():
            try:
                await asyncio.wait_for(lost.wait(), self.keepalive_seconds)
                break
            except TimeoutError:
                pass
            try:
                await asyncio.wait_for(db.queries.cache_keepalive(conn), self.keepalive_timeout)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                log.warning("invalidation listener keep-alive failed: %r", e)
                break
            healthy = True
        return healthy

    def _on_notification(
        self, _conn: asyncpg.Connection, _pid: int, _channel: str, payload: str
    ) -> None:
        try:
            telegram_id = int(payload)
        except ValueError:
            log.warning("ignored a %s notification that is no Telegram id: %r", CHANNEL, payload)
            return
        self.notifications += 1
        self.received.append(telegram_id)
        if evict_user(self.user_data_by_user, telegram_id):
            self.evictions += 1
        self._signal()


async def start_invalidation(
    app: Any,
    dsn: str,
    *,
    connect_timeout: float = 10.0,  # float-ok: seconds
    **options: Any,
) -> Invalidator:
    """Start evicting `app`'s cached contexts on other processes' commits.

    Waits up to `connect_timeout` for the listener to be up; past that it goes on
    trying in the background (the bot works meanwhile, with the contexts it fetches).
    `options` go to `Invalidator` (keep-alive and back-off timings).
    """
    invalidator = Invalidator(dsn, app.user_data, **options)
    app.bot_data[BOT_DATA_KEY] = invalidator
    invalidator.start()
    try:
        await asyncio.wait_for(invalidator.wait_connected(1), connect_timeout)
    except TimeoutError:
        log.warning("invalidation listener not up after %ss; still trying", connect_timeout)
    return invalidator


async def stop_invalidation(app: Any) -> None:
    """Stop the listener `start_invalidation` started, if any; close its connection."""
    invalidator: Invalidator | None = app.bot_data.pop(BOT_DATA_KEY, None)
    if invalidator is not None:
        await invalidator.stop()
