"""Housekeeping jobs: auto-release, expired rate locks, stale top-up orders, unpaid escrows.

Each job is one sweep of one table through a `bot.data` function:

- escrow-auto-release: delivered escrows past `auto_release_at` complete (the `system`
  release): the seller is paid, the platform takes its fee, referrers earn.
- exchange-lock-expiry: quoted exchange orders past `rate_locked_until` expire. No money.
- escrow-payment-expiry: escrows awaiting payment past `payment_deadline` expire (the
  `system` expire). No money: nothing was paid in.
- deposit-order-expiry: top-up orders open past `deposit_window_hours` expire. No money:
  a payment that still comes is credited as ever.

Every bot process schedules every job; nothing coordinates them but the database. Each
batch is one statement that takes its rows `FOR UPDATE SKIP LOCKED` and updates them under
a status guard, so two processes (or a slow run overlapping the next) split the due rows
and never act twice on one, and a row a user's movement holds right now (a payment landing
at the last second) is skipped, then left alone once that movement has moved it on.

The jobs send nothing: telling the parties is the notification outbox's work. Each job
logs and returns how many rows it changed (a job's return value is for tests; the JobQueue
ignores it). A failure (the database away) goes to the Application's error handler and
the next run tries again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from bot.data.escrow import auto_release_due, expire_unpaid_escrows
from bot.data.exchange import expire_lapsed_locks
from bot.data.wallet import expire_stale_deposit_orders

log = logging.getLogger(__name__)

# How many ids a log line names; the count is always whole.
_LOGGED_IDS = 20


async def _sweep(context, sweep: Callable[..., Awaitable[list[int]]], what: str) -> int:
    # One pooled connection for the run: each batch commits on its own.
    async with context.bot_data["pool"].acquire() as conn:
        ids = await sweep(conn)
    if ids:
        shown = ", ".join(map(str, ids[:_LOGGED_IDS])) + (" …" if len(ids) > _LOGGED_IDS else "")
        log.info("%s: %d (%s)", what, len(ids), shown)
    return len(ids)


async def auto_release_job(context) -> int:
    """python-telegram-bot job: releases every delivered escrow past its auto-release
    time, as the buyer's release would (bot_data["pool"]). Returns how many."""
    return await _sweep(context, auto_release_due, "escrows auto-released")


async def expire_rate_locks_job(context) -> int:
    """python-telegram-bot job: quoted exchange orders whose rate lock ran out become
    expired. Returns how many."""
    return await _sweep(context, expire_lapsed_locks, "exchange quotes expired")


async def expire_unpaid_escrows_job(context) -> int:
    """python-telegram-bot job: escrows still unpaid past their payment deadline become
    expired. Returns how many."""
    return await _sweep(context, expire_unpaid_escrows, "unpaid escrows expired")


async def expire_deposit_orders_job(context) -> int:
    """python-telegram-bot job: top-up orders open past the deposit window become
    expired. Returns how many."""
    return await _sweep(context, expire_stale_deposit_orders, "top-up orders expired")


@dataclass(frozen=True, slots=True)
class Schedule:
    name: str  # the Job's name: a second schedule_jobs replaces the job of that name
    callback: Callable[..., Awaitable[int]]
    interval: float  # float-ok: seconds
    first: float  # float-ok: seconds after the queue starts; staggered, so runs spread


# Sellers wait on auto-release and quotes last minutes: every minute. Payment windows
# are hours long (and a late payment lands in the wallet anyway): every few minutes.
SCHEDULES: tuple[Schedule, ...] = (
    Schedule("escrow-auto-release", auto_release_job, 60, 5),
    Schedule("exchange-lock-expiry", expire_rate_locks_job, 60, 10),
    Schedule("escrow-payment-expiry", expire_unpaid_escrows_job, 300, 15),
    Schedule("deposit-order-expiry", expire_deposit_orders_job, 900, 20),
)
JOB_NAMES: tuple[str, ...] = tuple(s.name for s in SCHEDULES)


def schedule_jobs(job_queue, *, intervals: Mapping[str, float] | None = None) -> list:  # float-ok
    """Runs every job of SCHEDULES repeatedly on `job_queue` (an Application's JobQueue,
    whose bot_data holds "pool"). `intervals` overrides some jobs' seconds, by name.
    Returns the Jobs; a second call replaces the first schedule."""
    intervals = dict(intervals or {})
    unknown = set(intervals) - set(JOB_NAMES)
    if unknown:
        raise ValueError(f"no such job: {', '.join(sorted(unknown))}")
    jobs = []
    for s in SCHEDULES:
        interval = intervals.get(s.name, s.interval)
        if interval <= 0:
            raise ValueError(f"{s.name}: the interval must be more than 0")
        for job in job_queue.get_jobs_by_name(s.name):
            job.schedule_removal()
        jobs.append(
            job_queue.run_repeating(
                s.callback, interval=interval, first=min(s.first, interval), name=s.name
            )
        )
    return jobs
