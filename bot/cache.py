"""Flow context: a flow's screen context, fetched once at entry, reused by every later step.

A flow (the crypto cashout, the escrow creation, ...) fetches what its screens
need in one query when it opens and keeps it in `context.user_data`. The steps
after that read it from there: zero round trips. The cache is never trusted
for money: the step that moves money calls the movement, which re-checks
under lock. Contexts are dropped when a flow completes, is cancelled or times
out, and are never persisted (a restarted bot refetches them).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

# Where the cached contexts live inside one user's `user_data`.
FLOWS = "flows"


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
    """The flow's context, fetched now (one round trip) and kept for the steps after."""
    value = await fetch()
    stats.record(flow, hit=False)
    if value is None:
        _flows(user_data).pop(flow, None)
    else:
        _flows(user_data)[flow] = value
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
    """Forget one flow's context (and its parts, keyed `<flow>_...`), or every flow's."""
    if flow is None:
        user_data.pop(FLOWS, None)
        return
    flows = _flows(user_data)
    for key in [k for k in flows if k == flow or k.startswith(f"{flow}_")]:
        del flows[key]


def evict_user(user_data_by_user: MutableMapping[int, Any], telegram_id: int) -> bool:
    """Drop every cached context of one user (money moved behind their back)."""
    user_data = user_data_by_user.get(telegram_id)
    if not user_data or FLOWS not in user_data:
        return False
    user_data.pop(FLOWS, None)
    return True


def evict_all(user_data_by_user: MutableMapping[int, Any]) -> None:
    """Drop every cached context (notifications may have been missed)."""
    for user_data in user_data_by_user.values():
        user_data.pop(FLOWS, None)
