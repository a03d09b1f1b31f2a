"""The outbox: notifications written in the movement's transaction (migration 0012) and
delivered by bot.outbox: never for a movement that rolled back, once for one that
committed, kept through a sender's death, retried with back-off on Telegram's errors,
paced per chat, and a chat that blocked the bot never holds up the others; two senders
never deliver one row twice."""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal

import pytest
import seeding
from conftest import ADMIN_ID
from telegram.ext import Application, ApplicationBuilder

from bot import outbox
from bot.data.dispute import open_dispute, post_dispute_message, resolve_dispute
from bot.data.enums import FeeSplit, PaymentProvider
from bot.data.errors import Invalid
from bot.data.escrow import (
    accept_escrow,
    auto_release_due,
    cancel_escrow,
    create_escrow,
    fund_escrow_from_wallet,
    mark_delivered,
    refund_escrow,
    release_escrow,
)
from bot.data.outbox import OutboxKind, Outcome, claim_due, prune
from bot.data.wallet import approve_cashout, create_deposit_order, credit_deposit, fail_cashout
from bot.db import meter, queries
from bot.offline import FakeTelegram
from bot.outbox import Limits, RateLimiter, deliver_due, deliver_pass, render

BUYER, SELLER = 8101, 8102
D = Decimal


def within(awaitable, seconds: float = 30):  # float-ok: seconds
    return asyncio.wait_for(awaitable, seconds)


async def people(conn, *sellers: int) -> None:
    await seeding.user(conn, BUYER, "Ada")
    for seller in sellers or (SELLER,):
        await seeding.user(conn, seller, "Bola")
    await seeding.credit(conn, BUYER, "USDT", "10000")


async def new_escrow(conn, seller: int = SELLER, amount: str = "100"):
    return await create_escrow(
        conn,
        buyer_telegram_id=BUYER,
        seller_handle=f"user{seller}",
        currency="USDT",
        amount=D(amount),
        description="A <b>phone</b>",
        fee_split=FeeSplit.SPLIT,
    )


async def rows(conn) -> list[dict]:
    return [dict(r) async for r in queries.outbox_test_rows(conn)]


async def seconds_until(pool, row: dict) -> float:  # float-ok: seconds
    return await queries.outbox_test_seconds_until(pool, outbox_id=row["id"])


def sent_texts(telegram: FakeTelegram, chat_id: int) -> list[str]:
    return [m.text for m in telegram.sent_to(chat_id)]


def send_calls(telegram: FakeTelegram) -> list[int]:
    return [int(c.params["chat_id"]) for c in telegram.calls if c.method == "sendMessage"]


# --- the rows --------------------------------------------------------------------------------


async def test_the_kinds_mirror_the_schema_and_each_has_a_renderer(conn):
    definition = await queries.outbox_test_kinds(conn)
    in_schema = set(re.findall(r"'([a-z_]+)'::text", definition))
    assert in_schema == {k.value for k in OutboxKind}
    assert set(outbox.RENDERERS) == set(OutboxKind)


async def test_a_movement_that_rolls_back_leaves_no_row_and_sends_nothing(pool, bot, telegram):
    await people(pool)
    async with pool.acquire() as c:
        tx = c.transaction()
        await tx.start()
        e = await new_escrow(c)
        await fund_escrow_from_wallet(c, escrow_id=e.id, telegram_id=BUYER, idempotency_key="k")
        # Inside the movement's transaction the rows are there...
        assert [r["kind"] for r in await rows(c)] == ["escrow_created", "escrow_funded"]
        await tx.rollback()
    # ...and they went with it.
    assert await rows(pool) == []

    # A deposit whose transaction fails after the credit: its row (written at commit) never is.
    order = await create_deposit_order(
        pool, telegram_id=BUYER, currency="USDT", provider=PaymentProvider.DYNOPAY
    )
    async with pool.acquire() as c:
        tx = c.transaction()
        await tx.start()
        await credit_deposit(
            c,
            provider=PaymentProvider.DYNOPAY,
            event_id="e1",
            order_ref=order.ref,
            currency="USDT",
            amount=D("5"),
        )
        await tx.rollback()
    with pytest.raises(Invalid):  # refused: rolled back by the data layer itself
        await credit_deposit(
            pool,
            provider=PaymentProvider.DYNOPAY,
            event_id="e2",
            order_ref=order.ref,
            currency="BTC",
            amount=D("5"),
        )
    assert await rows(pool) == []

    assert await deliver_due(bot) == 0
    assert send_calls(telegram) == []


async def test_an_escrow_tells_each_step_to_the_party_who_did_not_take_it(pool, bot, telegram):
    await people(pool)
    e = await new_escrow(pool)
    await fund_escrow_from_wallet(pool, escrow_id=e.id, telegram_id=BUYER, idempotency_key="k")
    await accept_escrow(pool, escrow_id=e.id, telegram_id=SELLER)
    await mark_delivered(pool, escrow_id=e.id, telegram_id=SELLER)
    await release_escrow(pool, escrow_id=e.id, telegram_id=BUYER)

    assert [(r["telegram_id"], r["kind"]) for r in await rows(pool)] == [
        (SELLER, "escrow_created"),
        (SELLER, "escrow_funded"),
        (BUYER, "escrow_accepted"),
        (BUYER, "escrow_delivered"),
        (SELLER, "escrow_released"),
    ]
    assert all(r["payload"]["escrow_id"] == e.id and r["due"] for r in await rows(pool))

    assert await deliver_due(bot) == 5
    to_seller, to_buyer = sent_texts(telegram, SELLER), sent_texts(telegram, BUYER)
    assert "Ada opened escrow" in to_seller[0] and "not paid yet" in to_seller[0]
    assert "A &lt;b&gt;phone&lt;/b&gt;" in to_seller[0]  # what the buyer typed, escaped
    assert "is funded: 100 USDT" in to_seller[1]
    assert "The seller accepted" in to_buyer[0] and "marked escrow" in to_buyer[1]
    assert "97.5 USDT is in the seller's wallet" in to_seller[2]
    assert f"rating:rate:{e.id}:5" in telegram.sent_to(SELLER)[-1].callbacks
    assert all(m.callbacks[-1] == f"escrow:view:{e.id}" for m in telegram.sent_to(BUYER))
    assert all(r["sent_at"] is not None and r["attempts"] == 1 for r in await rows(pool))

    # Once: a second pass finds nothing.
    assert await deliver_due(bot) == 0
    assert len(send_calls(telegram)) == 5


async def test_an_invited_seller_hears_of_the_escrow_when_they_join(pool, bot, telegram):
    from bot.data.onboarding import register_user

    await people(pool)
    e = await create_escrow(
        pool,
        buyer_telegram_id=BUYER,
        seller_handle="@carol_x",
        currency="USDT",
        amount=D("100"),
        description="A lamp",
        fee_split=FeeSplit.BUYER,
    )
    assert await rows(pool) == []  # nobody to tell yet
    carol = SELLER + 7
    await register_user(pool, telegram_id=carol, username="Carol_X", first_name="Carol")
    [row] = await rows(pool)
    assert (row["telegram_id"], row["kind"], row["payload"]["escrow_id"]) == (
        carol,
        "escrow_created",
        e.id,
    )
    assert await deliver_due(bot) == 1
    assert "Ada opened escrow" in sent_texts(telegram, carol)[0]


async def test_refunds_cancels_and_automatic_releases_reach_the_right_people(pool, bot, telegram):
    await people(pool)
    refunded = await new_escrow(pool)
    await fund_escrow_from_wallet(
        pool, escrow_id=refunded.id, telegram_id=BUYER, idempotency_key="r"
    )
    await refund_escrow(pool, escrow_id=refunded.id, telegram_id=SELLER)
    cancelled = await new_escrow(pool)
    await cancel_escrow(pool, escrow_id=cancelled.id, telegram_id=BUYER)
    auto = await new_escrow(pool)
    await fund_escrow_from_wallet(pool, escrow_id=auto.id, telegram_id=BUYER, idempotency_key="a")
    await accept_escrow(pool, escrow_id=auto.id, telegram_id=SELLER)
    await mark_delivered(pool, escrow_id=auto.id, telegram_id=SELLER)
    await queries.escrow_test_make_due(pool, escrow_id=auto.id)
    assert await auto_release_due(pool) == [auto.id]

    told = [
        (r["telegram_id"], r["kind"], r["payload"]["escrow_id"])
        for r in await rows(pool)
        if r["kind"] not in ("escrow_created", "escrow_funded")
    ]
    assert told == [
        (BUYER, "escrow_refunded", refunded.id),
        (SELLER, "escrow_cancelled", cancelled.id),
        (BUYER, "escrow_accepted", auto.id),
        (BUYER, "escrow_delivered", auto.id),
        (BUYER, "escrow_auto_released", auto.id),
        (SELLER, "escrow_auto_released", auto.id),
    ]
    # Paced per chat: the seller's seven notes take several passes of this test's clock.
    clock = [0.0]
    limiter = RateLimiter(clock=lambda: clock[0])
    while await deliver_due(bot, limiter=limiter) or await _make_due(pool):
        clock[0] += 10
    assert any("was refunded: 102.5 USDT is back" in t for t in sent_texts(telegram, BUYER))
    assert any("cancelled escrow" in t for t in sent_texts(telegram, SELLER))
    for chat in (BUYER, SELLER):
        assert "released automatically" in sent_texts(telegram, chat)[-1]


async def _make_due(pool) -> bool:
    """Bring deferred rows due (as time would); True when some were waiting."""
    waiting = [r for r in await rows(pool) if r["sent_at"] is None and r["failed_at"] is None]
    await queries.outbox_test_make_due(pool)
    return bool(waiting)


async def test_disputes_tell_the_others_and_the_admins(pool, bot, telegram):
    await people(pool)
    await seeding.user(pool, ADMIN_ID, "Root")
    await seeding.make_admin(pool, ADMIN_ID)
    e = await new_escrow(pool)
    await fund_escrow_from_wallet(pool, escrow_id=e.id, telegram_id=BUYER, idempotency_key="k")
    await accept_escrow(pool, escrow_id=e.id, telegram_id=SELLER)
    assert await deliver_due(bot) == 3  # created, funded, accepted
    before = len(send_calls(telegram))

    d = await open_dispute(pool, escrow_id=e.id, telegram_id=BUYER, reason="It <never> came")
    await post_dispute_message(pool, dispute_id=d.id, telegram_id=SELLER, body="Shipped")
    await post_dispute_message(pool, dispute_id=d.id, telegram_id=ADMIN_ID, body="Photos?")
    await resolve_dispute(pool, dispute_id=d.id, admin_telegram_id=ADMIN_ID, buyer_share=D(40))
    told = [(r["telegram_id"], r["kind"]) for r in (await rows(pool))[3:]]
    assert told == [
        (SELLER, "dispute_opened"),
        (ADMIN_ID, "dispute_opened_admin"),
        (BUYER, "dispute_message"),  # the seller's: the buyer and every admin (none has it)
        (ADMIN_ID, "dispute_message"),
        (BUYER, "dispute_message"),  # the admin's (who takes it): the parties
        (SELLER, "dispute_message"),
        (BUYER, "dispute_resolved"),
        (SELLER, "dispute_resolved"),
    ]
    clock = [0.0]
    limiter = RateLimiter(clock=lambda: clock[0])
    while await deliver_due(bot, limiter=limiter) or await _make_due(pool):
        clock[0] += 10
    assert len(send_calls(telegram)) - before == 8
    to_seller, to_admin = sent_texts(telegram, SELLER), sent_texts(telegram, ADMIN_ID)
    assert any("Ada (buyer) opened dispute" in t and "&lt;never&gt;" in t for t in to_seller)
    assert any("New dispute" in t and "100 USDT" in t for t in to_admin)
    assert any("Photos?" in t and "(admin)" in t for t in to_seller)
    seller_gets = D(60) - e.seller_fee
    assert "You receive 40 USDT" in sent_texts(telegram, BUYER)[-1]
    assert f"You receive {seller_gets.normalize():f} USDT" in to_seller[-1]


async def test_cashout_decisions_and_results_tell_their_user(pool, bot, telegram):
    await people(pool)
    await seeding.user(pool, ADMIN_ID, "Root")
    await seeding.make_admin(pool, ADMIN_ID)
    first = await seeding.cashout(pool, BUYER, "USDT", "50", fee="1")
    second = await seeding.cashout(pool, BUYER, "USDT", "20", fee="1", n=2)
    await approve_cashout(pool, cashout_id=first, admin_telegram_id=ADMIN_ID)
    await fail_cashout(pool, cashout_id=first, reason="Account <closed>")
    from bot.handlers.admin import REJECTED

    await fail_cashout(pool, cashout_id=second, reason=REJECTED)
    assert [(r["kind"], r["payload"]["cashout_id"]) for r in await rows(pool)] == [
        ("cashout_approved", first),
        ("cashout_failed", first),
        ("cashout_failed", second),
    ]
    assert await deliver_due(bot) == 3
    approved, failed, rejected = sent_texts(telegram, BUYER)
    assert f"#{first} of 50 USDT was approved" in approved and "TRC20 <code>T" in approved
    assert "could not be paid out (Account &lt;closed&gt;). 51 USDT is back" in failed
    assert f"#{second} of 20 USDT was not approved. 21 USDT (amount and fee)" in rejected


# --- the sender --------------------------------------------------------------------------------


async def test_a_pass_costs_one_read_whatever_the_batch(pool, bot):
    await people(pool, SELLER, SELLER + 1, SELLER + 2)
    await new_escrow(pool)
    assert await deliver_due(bot) == 1  # the first prepares its statements: not counted
    await new_escrow(pool, SELLER + 1)
    async with meter.measure() as one:
        assert await deliver_due(bot) == 1
    for seller in (SELLER, SELLER + 1, SELLER + 2):
        await new_escrow(pool, seller)
    async with meter.measure() as three:
        assert await deliver_due(bot) == 3
    assert one.round_trips == three.round_trips == 4  # BEGIN, claim, settle, COMMIT
    assert sum("from outbox" in s for s in three.statements) == 1


async def test_a_sender_dying_after_its_claim_leaves_the_rows_to_the_next(pool, bot, telegram):
    await people(pool)
    await new_escrow(pool)

    class Died(Exception):
        pass

    with pytest.raises(Died):
        async with claim_due(pool, batch=10) as batch:
            assert len(batch.items) == 1
            # While it holds them, another sender skips them (SKIP LOCKED).
            assert await deliver_due(bot) == 0
            batch.settle(batch.items[0], Outcome.SENT)  # recorded, never written
            raise Died  # the process dies before it sends and commits
    [row] = await rows(pool)
    assert row["sent_at"] is None and row["attempts"] == 0 and row["due"]
    assert send_calls(telegram) == []

    assert await deliver_due(bot) == 1
    assert "opened escrow" in sent_texts(telegram, SELLER)[0]


async def test_telegram_errors_are_retried_with_back_off(pool, bot, telegram):
    await people(pool)
    await new_escrow(pool)
    telegram.fail_next(2, status=500)

    assert await deliver_due(bot) == 0
    [row] = await rows(pool)
    assert row["attempts"] == 1 and not row["due"] and row["sent_at"] is None
    assert "Internal Server Error" in row["failed_reason"] and row["failed_at"] is None
    base = outbox.BACKOFF_BASE_SECONDS
    assert 0.8 * base - 1 <= await seconds_until(pool, row) <= 1.2 * base
    assert await deliver_due(bot) == 0  # not due yet: nothing tried
    assert len(send_calls(telegram)) == 1

    await queries.outbox_test_make_due(pool)
    assert await deliver_due(bot) == 0  # the second failure waits twice as long
    [row] = await rows(pool)
    assert row["attempts"] == 2 and not row["due"]
    assert 1.6 * base - 1 <= await seconds_until(pool, row) <= 2.4 * base
    await queries.outbox_test_make_due(pool)
    assert await deliver_due(bot) == 1
    [row] = await rows(pool)
    assert row["attempts"] == 3 and row["sent_at"] is not None and row["failed_at"] is None
    assert len(sent_texts(telegram, SELLER)) == 1


def test_the_back_off_doubles_up_to_its_cap():
    waits = [outbox.backoff_seconds(n) for n in range(1, 14)]
    base = outbox.BACKOFF_BASE_SECONDS
    for n, wait in enumerate(waits[:6], start=1):
        assert 0.8 * base * 2 ** (n - 1) <= wait <= 1.2 * base * 2 ** (n - 1)
    assert max(waits) <= 1.2 * outbox.BACKOFF_MAX_SECONDS


async def test_a_row_is_given_up_after_its_last_attempt(pool, bot, telegram, monkeypatch):
    monkeypatch.setattr(outbox, "MAX_ATTEMPTS", 3)
    await people(pool)
    await new_escrow(pool)
    telegram.fail_next(5, status=500)
    for _ in range(3):
        await queries.outbox_test_make_due(pool)
        assert await deliver_due(bot) == 0
    [row] = await rows(pool)
    assert row["attempts"] == 3 and row["failed_at"] is not None
    assert row["failed_reason"].startswith("gave up after 3 attempts")
    await queries.outbox_test_make_due(pool)
    assert await deliver_due(bot) == 0 and len(send_calls(telegram)) == 3


async def test_retry_after_holds_that_chat_only(pool, bot, telegram):
    other = SELLER + 1
    await people(pool, SELLER, other)
    await new_escrow(pool, SELLER)
    await new_escrow(pool, other)
    await new_escrow(pool, SELLER)
    telegram.fail_next(1, status=429, retry_after=30)

    assert await deliver_due(bot) == 1
    first, second, third = await rows(pool)
    # The seller's first: Telegram said 30 s; their second waits with it, untried.
    assert first["sent_at"] is None and first["attempts"] == 0 and not first["due"]
    assert third["sent_at"] is None and third["attempts"] == 0 and not third["due"]
    assert abs((third["next_attempt_at"] - first["next_attempt_at"]).total_seconds()) < 1
    # The other chat went on.
    assert second["sent_at"] is not None and sent_texts(telegram, other)
    assert 25 <= await seconds_until(pool, first) <= 30

    await queries.outbox_test_make_due(pool)
    assert await deliver_due(bot) == 2
    assert len(sent_texts(telegram, SELLER)) == 2


async def test_a_user_who_blocked_the_bot_does_not_stall_the_queue(pool, bot, telegram):
    blocker, other = SELLER, SELLER + 1
    await people(pool, blocker, other)
    telegram.blocked_by.add(blocker)
    await new_escrow(pool, blocker)
    await new_escrow(pool, blocker)
    await new_escrow(pool, other)

    assert await deliver_due(bot) == 1
    a, b, c = await rows(pool)
    for row in (a, b):
        assert row["failed_at"] is not None and row["failed_reason"].startswith("blocked")
        assert row["sent_at"] is None and row["attempts"] == 1
    assert "bot was blocked by the user" in a["failed_reason"]
    assert c["sent_at"] is not None and sent_texts(telegram, other)
    # Asked once (its second row failed with the first), and never again.
    await queries.outbox_test_make_due(pool)
    assert await deliver_due(bot) == 0
    assert send_calls(telegram).count(blocker) == 1


async def test_a_reminder_of_an_escrow_delivered_meanwhile_is_not_sent(pool, bot, telegram):
    await people(pool)
    e = await new_escrow(pool)
    await fund_escrow_from_wallet(pool, escrow_id=e.id, telegram_id=BUYER, idempotency_key="k")
    await accept_escrow(pool, escrow_id=e.id, telegram_id=SELLER)
    await queries.outbox_test_set_delivery_deadline(pool, escrow_id=e.id, minutes=20)
    assert await queries.outbox_queue_reminders(pool) == 1
    await mark_delivered(pool, escrow_id=e.id, telegram_id=SELLER)

    assert await deliver_due(bot) == 4  # created, funded, accepted, delivered
    reminder = next(r for r in await rows(pool) if r["kind"] == "delivery_reminder")
    assert reminder["failed_reason"] == "skipped: escrow is delivered now"
    assert not any("Mark it delivered" in t for t in sent_texts(telegram, SELLER))


# --- pace -------------------------------------------------------------------------------------


def test_the_rate_limiter_keeps_telegrams_pace():
    clock = [100.0]
    limiter = RateLimiter(Limits(per_second=30, burst=30, chat_burst=3), clock=lambda: clock[0])
    for _ in range(3):
        assert limiter.chat_delay(1) == 0
        limiter.take(1)
    assert limiter.chat_delay(1) == pytest.approx(1.0)  # one a second once the burst is used
    assert limiter.chat_delay(2) == 0  # another chat is not held
    clock[0] += 0.5
    assert limiter.chat_delay(1) == pytest.approx(0.5)

    # The bot's own bucket: 30 at once, then one each 1/30 s.
    bot = RateLimiter(clock=lambda: clock[0])
    for chat in range(30):
        assert bot.bot_delay() == 0
        bot.take(chat)
    assert bot.bot_delay() == pytest.approx(1 / 30)

    # Telegram's RetryAfter: that chat waits what it said.
    limiter.pause(2, 7)
    assert limiter.chat_delay(2) == pytest.approx(7)
    clock[0] += 7
    assert limiter.chat_delay(2) == 0


async def test_rows_beyond_a_chats_burst_are_deferred_in_turn(pool, bot, telegram):
    await people(pool)
    for _ in range(5):
        await new_escrow(pool)
    clock = [0.0]
    limiter = RateLimiter(Limits(chat_burst=2), clock=lambda: clock[0])

    result = await deliver_pass(pool, bot.bot, limit=10, limiter=limiter)
    assert (result.claimed, result.sent) == (5, 2)
    waits = [await seconds_until(pool, r) for r in await rows(pool) if r["sent_at"] is None]
    # One a second, in their order; none counted as an attempt.
    assert [round(w) for w in waits] == [1, 2, 3]
    assert all(r["attempts"] == 0 for r in await rows(pool) if r["sent_at"] is None)
    assert len(sent_texts(telegram, SELLER)) == 2


# --- two senders --------------------------------------------------------------------------------


class GatedTelegram(FakeTelegram):
    """Telegram that holds the first sendMessage until `release` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    async def do_request(self, url, method, request_data=None, *args, **kwargs):
        if url.endswith("/sendMessage") and not self.holding.is_set():
            self.holding.set()
            await self.release.wait()
        return await super().do_request(url, method, request_data, *args, **kwargs)


async def other_app(pool, telegram: FakeTelegram) -> Application:
    app = (
        ApplicationBuilder()
        .token("123456:TEST")
        .request(telegram)
        .get_updates_request(telegram)
        .updater(None)
        .build()
    )
    app.bot_data["pool"] = pool
    await app.initialize()
    return app


async def test_two_senders_racing_deliver_each_row_once(pool, bot, telegram):
    sellers = [SELLER + n for n in range(20)]
    await people(pool, *sellers)
    for seller in sellers:
        await new_escrow(pool, seller)
    gated = GatedTelegram()
    second = await other_app(pool, gated)
    try:
        # The second sender claims 10 and stalls at Telegram with them locked...
        stalled = asyncio.create_task(deliver_due(second, limit=10))
        await within(gated.holding.wait())
        # ...while the first takes the other 10, and then finds nothing it may take.
        assert await deliver_due(bot, limit=50) == 10
        assert await deliver_due(bot, limit=50) == 0
        gated.release.set()
        assert await within(stalled) == 10
    finally:
        await second.shutdown()
    delivered = send_calls(telegram) + send_calls(gated)
    assert sorted(delivered) == sellers
    assert all(r["sent_at"] is not None and r["attempts"] == 1 for r in await rows(pool))


async def test_many_senders_at_once_still_deliver_each_row_once(pool, bot, telegram):
    sellers = [SELLER + n for n in range(30)]
    await people(pool, *sellers)
    for seller in sellers:
        await new_escrow(pool, seller)
    others = [FakeTelegram() for _ in range(2)]
    apps = [bot] + [await other_app(pool, t) for t in others]
    try:

        async def drain(app: Application) -> int:
            sent = 0
            while n := await deliver_due(app, limit=4):
                sent += n
            return sent

        counts = await within(asyncio.gather(*(drain(a) for a in apps for _ in range(2))))
    finally:
        for app in apps[1:]:
            await app.shutdown()
    assert sum(counts) == 30
    delivered = send_calls(telegram) + [c for t in others for c in send_calls(t)]
    assert sorted(delivered) == sellers


# --- the background task ----------------------------------------------------------------------


async def test_the_sender_wakes_on_a_commit_and_survives_losing_its_listener(
    pool, bot, telegram, database_url
):
    await people(pool, SELLER, SELLER + 1, SELLER + 2)
    await new_escrow(pool, SELLER)  # waiting before it starts: its first pass sends it
    del bot.bot_data["after_update"]  # the sender alone delivers here
    first = telegram.next_call("sendMessage")
    sender = await outbox.start_sender(bot, dsn=database_url, poll_seconds=3600)
    try:
        assert (await within(first)).params["chat_id"] == SELLER
        await within(sender.wait_until(lambda: sender.idle.is_set() and sender.listening))

        # Committed elsewhere (here: the data layer on the pool): the NOTIFY wakes it.
        woken = telegram.next_call("sendMessage")
        await new_escrow(pool, SELLER + 1)
        assert (await within(woken)).params["chat_id"] == SELLER + 1

        # The listener's connection is killed: it reconnects, and hears the next commit.
        await within(sender.wait_until(lambda: sender.idle.is_set()))
        pid = sender.listener_pid
        await queries.outbox_test_terminate(pool, pid=pid)
        await within(sender.wait_until(lambda: sender.connections >= 2 and sender.idle.is_set()))
        assert sender.listener_pid != pid
        again = telegram.next_call("sendMessage")
        await new_escrow(pool, SELLER + 2)
        assert (await within(again)).params["chat_id"] == SELLER + 2
        # The pass records it as it commits: stopped before that, it would be sent again.
        await within(sender.wait_until(lambda: sender.idle.is_set()))
    finally:
        await outbox.stop_sender(bot)
    assert outbox.BOT_DATA_SENDER not in bot.bot_data
    assert all(r["sent_at"] is not None for r in await rows(pool))


async def test_wake_runs_the_hook_or_wakes_the_sender(pool, bot, telegram):
    await people(pool)
    await new_escrow(pool)
    await outbox.wake(bot)  # the hook: delivered now
    assert sent_texts(telegram, SELLER)
    await outbox.wake(None)  # no app (a job run without one): nothing to do

    del bot.bot_data["after_update"]
    sender = outbox.Sender(bot, dsn=None)
    bot.bot_data[outbox.BOT_DATA_SENDER] = sender
    assert not sender.woken
    await outbox.wake(bot)
    assert sender.woken
    del bot.bot_data[outbox.BOT_DATA_SENDER]


async def test_settled_rows_are_pruned_after_their_time(pool, bot):
    await people(pool, SELLER, SELLER + 1)
    await new_escrow(pool, SELLER)
    assert await deliver_due(bot) == 1
    await new_escrow(pool, SELLER + 1)  # not sent: kept however old
    await queries.outbox_test_age(pool, days=40)
    assert await prune(pool, keep_days=30) == 1
    [left] = await rows(pool)
    assert left["telegram_id"] == SELLER + 1 and left["sent_at"] is None


def test_every_kind_renders_within_telegrams_limits():
    from datetime import UTC, datetime

    from bot.data.outbox import Due

    now = datetime.now(UTC)
    base = {f: None for f in Due.__slots__}
    base.update(
        id=1,
        telegram_id=5,
        attempts=0,
        created_at=now,
        currency="USDT",
        decimals=6,
        escrow_id=7,
        escrow_ref="ESC-1",
        escrow_description="x" * 1000,
        escrow_status="accepted",
        escrow_amount=D("100"),
        escrow_buyer_fee=D("2.5"),
        escrow_seller_fee=D("2.5"),
        delivery_deadline=now,
        auto_release_at=now,
        buyer_name="<Ada>",
        dispute_id=3,
        dispute_reason="r" * 1000,
        dispute_resolution="split",
        opener_name="Ada",
        opener_role="buyer",
        message_body="m" * 4000,
        sender_name="Bola",
        sender_role="seller",
        cashout_id=9,
        cashout_amount=D("50"),
        cashout_fee=D("1"),
        cashout_failure_reason="no",
        cashout_destination="crypto_address",
        cashout_network="TRC20",
        cashout_address="Tabc",
    )
    payloads = {
        OutboxKind.DELIVERY_REMINDER: {"escrow_id": 7, "lead_minutes": 120},
        OutboxKind.DISPUTE_RESOLVED: {"dispute_id": 3, "amount": 40},
        OutboxKind.DEPOSIT_CREDITED: {
            "order_kind": "escrow",
            "status": "awaiting_payment",
            "amount": D("10"),
            "available": D("10"),
            "needed": D("102.5"),
            "order_ref": "ESC-1",
        },
    }
    for kind in OutboxKind:
        due = Due(**{**base, "kind": kind, "payload": payloads.get(kind, {"escrow_id": 7})})
        text, markup = render(due)
        # What Telegram would refuse (HTML, length, callback data), FakeTelegram refuses.
        FakeTelegram()._sendMessage(
            {
                "chat_id": 5,
                "text": text,
                "parse_mode": "HTML",
                "reply_markup": markup.to_dict() if markup else None,
            }
        )
        assert "&lt;Ada&gt;" in text or "<Ada>" not in text, kind
    deposit = Due(
        **{
            **base,
            "kind": OutboxKind.DEPOSIT_CREDITED,
            "payload": payloads[OutboxKind.DEPOSIT_CREDITED],
        }
    )
    assert "92.5 USDT more pays the escrow" in render(deposit)[0]
