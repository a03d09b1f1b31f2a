"""Delivery-deadline reminders: 24 h, 8 h, 2 h and 30 min before an accepted escrow's
delivery deadline, its seller is reminded, each once, whatever the number of job runs
and of processes running the job. The deadline is moved near with a test query; the
job's function is run directly."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from types import SimpleNamespace

import seeding

from bot import outbox
from bot.data.enums import FeeSplit
from bot.data.escrow import accept_escrow, create_escrow, fund_escrow_from_wallet, mark_delivered
from bot.data.outbox import queue_reminders
from bot.db import queries
from bot.outbox import REMINDER_JOB, deliver_due, reminders_job, schedule_reminders

BUYER, SELLER = 8201, 8202
D = Decimal


def within(awaitable, seconds: float = 30):  # float-ok: seconds
    return asyncio.wait_for(awaitable, seconds)


async def accepted(conn, seller: int = SELLER) -> int:
    await seeding.user(conn, BUYER, "Ada")
    await seeding.user(conn, seller, "Bola")
    await seeding.credit(conn, BUYER, "USDT", "1000")
    e = await create_escrow(
        conn,
        buyer_telegram_id=BUYER,
        seller_handle=f"user{seller}",
        currency="USDT",
        amount=D("100"),
        description="A <b>bicycle</b>",
        fee_split=FeeSplit.SPLIT,
    )
    await fund_escrow_from_wallet(
        conn, escrow_id=e.id, telegram_id=BUYER, idempotency_key=f"pay-{e.id}"
    )
    await accept_escrow(conn, escrow_id=e.id, telegram_id=seller)
    return e.id


async def deadline_in(conn, escrow_id: int, minutes: int) -> None:
    await queries.outbox_test_set_delivery_deadline(conn, escrow_id=escrow_id, minutes=minutes)


async def reminders(conn) -> list[tuple[int, int]]:
    """(telegram id, lead) of each reminder queued, oldest first."""
    return [
        (r["telegram_id"], r["payload"]["lead_minutes"])
        async for r in queries.outbox_test_rows(conn)
        if r["kind"] == "delivery_reminder"
    ]


async def test_each_lead_is_reminded_once_as_the_deadline_nears(pool, bot, telegram):
    escrow_id = await accepted(pool)
    # Accepted with the platform's delivery window (days): nothing is due yet.
    assert await queue_reminders(pool) == 0

    for minutes, lead in [(1430, 1440), (470, 480), (110, 120), (25, 30)]:
        await deadline_in(pool, escrow_id, minutes)
        assert await queue_reminders(pool) == 1, lead
        assert await queue_reminders(pool) == 0, lead  # the same run again: nothing more
    assert await reminders(pool) == [(SELLER, 1440), (SELLER, 480), (SELLER, 120), (SELLER, 30)]
    claimed = [
        (r["escrow_id"], r["lead_minutes"]) async for r in queries.outbox_test_reminders(pool)
    ]
    assert claimed == [(escrow_id, 30), (escrow_id, 120), (escrow_id, 480), (escrow_id, 1440)]

    clock = [0.0]
    limiter = outbox.RateLimiter(clock=lambda: clock[0])
    while await deliver_due(bot, limiter=limiter) or await _bring_due(pool):
        clock[0] += 10
    notes = [t for t in (m.text for m in telegram.sent_to(SELLER)) if "⏰" in t]
    assert [n.split("less than ")[1].split(" left")[0] for n in notes] == [
        "24 hours",
        "8 hours",
        "2 hours",
        "30 minutes",
    ]
    assert "A &lt;b&gt;bicycle&lt;/b&gt;" in notes[0] and "Mark it delivered" in notes[0]
    assert f"escrow:view:{escrow_id}" in telegram.sent_to(SELLER)[-1].callbacks
    assert not any("⏰" in m.text for m in telegram.sent_to(BUYER))


async def _bring_due(pool) -> bool:
    waiting = [r async for r in queries.outbox_test_rows(pool) if r["sent_at"] is None]
    waiting = [r for r in waiting if r["failed_at"] is None]
    await queries.outbox_test_make_due(pool)
    return bool(waiting)


async def test_a_deadline_that_comes_near_at_once_sends_only_the_nearest(pool):
    escrow_id = await accepted(pool)
    await deadline_in(pool, escrow_id, 90)  # 24 h, 8 h and 2 h all passed unseen
    assert await queue_reminders(pool) == 1
    assert await reminders(pool) == [(SELLER, 120)]
    # The passed leads are claimed with it: they never come later.
    await deadline_in(pool, escrow_id, 600)
    assert await queue_reminders(pool) == 0
    await deadline_in(pool, escrow_id, 20)
    assert await queue_reminders(pool) == 1
    assert await reminders(pool) == [(SELLER, 120), (SELLER, 30)]


async def test_no_reminder_past_the_deadline_or_once_delivered(pool):
    late = await accepted(pool)
    await deadline_in(pool, late, -5)
    delivered = await accepted(pool, SELLER + 1)
    await mark_delivered(pool, escrow_id=delivered, telegram_id=SELLER + 1)
    await deadline_in(pool, delivered, 20)
    assert await queue_reminders(pool) == 0
    assert await reminders(pool) == []


async def test_two_runs_at_once_queue_each_reminder_once(pool):
    escrow_id = await accepted(pool)
    other = await accepted(pool, SELLER + 1)
    await deadline_in(pool, escrow_id, 100)
    await deadline_in(pool, other, 400)

    # One run holds its claims uncommitted; the second waits on them, then finds them taken.
    async with pool.acquire() as first, pool.acquire() as second, pool.acquire() as watcher:
        tx = first.transaction()
        await tx.start()
        assert await queue_reminders(first) == 2
        racing = asyncio.create_task(queue_reminders(second))
        await within(seeding.until_blocked(watcher))
        await tx.commit()
        assert await within(racing) == 0
    assert sorted(await reminders(pool)) == [(SELLER, 120), (SELLER + 1, 480)]

    # Many at once, each on its own connection: still once each.
    await deadline_in(pool, escrow_id, 20)
    await deadline_in(pool, other, 20)
    counts = await within(asyncio.gather(*(queue_reminders(pool) for _ in range(4))))
    assert sum(counts) == 2
    assert sorted(await reminders(pool)) == [
        (SELLER, 30),
        (SELLER, 120),
        (SELLER + 1, 30),
        (SELLER + 1, 480),
    ]


async def test_the_job_queues_and_delivers(pool, bot, telegram):
    escrow_id = await accepted(pool)
    await deliver_due(bot)  # the escrow's own notes first
    await deadline_in(pool, escrow_id, 25)
    context = SimpleNamespace(bot_data=bot.bot_data, application=bot)
    assert await reminders_job(context) == 1  # the app's hook delivered it at once
    [note] = [m.text for m in telegram.sent_to(SELLER) if "⏰" in m.text]
    assert "less than 30 minutes left" in note
    assert await reminders_job(context) == 0


async def test_schedule_reminders_puts_one_repeating_job_on_the_job_queue(bot):
    schedule_reminders(bot.job_queue, 120)
    job = schedule_reminders(bot.job_queue, 60)
    assert job.name == REMINDER_JOB and job.callback is reminders_job
    assert len(bot.job_queue.get_jobs_by_name(REMINDER_JOB)) == 1
    job.schedule_removal()
