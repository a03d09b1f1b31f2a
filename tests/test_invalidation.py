"""Invalidation across processes: commits NOTIFY (migration 0011), each Application's
listener (bot.cache.Invalidator) evicts the user's cached contexts, and the wallet flow
refetches on the next step.

No sleeping: every wait is on the listener's counters (`wait_for`, `wait_connected`),
guarded by a 30-second timeout. "Nobody was notified" is proven by order: notifications
arrive in commit order on the one listening connection, so once a later commit's
notification is in, an earlier one would have been too.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
import seeding

from bot import cache, db
from bot.app import build_application
from bot.data.contacts import delete_destination, save_address, save_bank_account
from bot.data.enums import DestinationKind, FeeSplit, PaymentProvider
from bot.data.escrow import cancel_escrow, create_escrow
from bot.data.wallet import create_deposit_order, credit_deposit
from bot.db import queries
from bot.handlers import wallet as wallet_flow
from bot.handlers.ui import Settings
from bot.offline import Chat, FakeTelegram

ADA, BAYO, CHIDI = 8101, 8102, 8103
TRON = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
D = Decimal


async def within(awaitable):
    """The one guard on every wait: 30 seconds, never a sleep."""
    return await asyncio.wait_for(awaitable, 30)


def flows(app, telegram_id: int) -> dict:
    return app.user_data[telegram_id].get(cache.FLOWS, {})


async def deposit(conn, telegram_id: int, amount: str, event_id: str, currency: str = "USDT"):
    """A real top-up: a deposit order, then the provider's payment credited exactly once."""
    order = await create_deposit_order(
        conn, telegram_id=telegram_id, currency=currency, provider=PaymentProvider.BLOCKBEE
    )
    return await credit_deposit(
        conn,
        provider=PaymentProvider.BLOCKBEE,
        event_id=event_id,
        order_ref=order.ref,
        currency=currency,
        amount=D(amount),
    )


class Boom(Exception):
    """Raised inside a transaction to roll it back."""


@pytest.fixture
async def people(conn):
    for telegram_id, name in ((ADA, "Ada"), (BAYO, "Bayo"), (CHIDI, "Chidi")):
        await seeding.user(conn, telegram_id, name)
        await seeding.credit(conn, telegram_id, "USDT", "100")


@pytest.fixture
async def listener(people, bot, database_url):
    """The test Application's listener, up and listening (seeding done before it)."""
    invalidator = await cache.start_invalidation(bot, database_url)
    assert invalidator.connected and invalidator.generation == 1
    try:
        yield invalidator
    finally:
        await cache.stop_invalidation(bot)
    assert not invalidator.connected and cache.BOT_DATA_KEY not in bot.bot_data


# --- the flow ------------------------------------------------------------------------


async def test_a_deposit_mid_cashout_evicts_and_the_next_step_shows_the_new_balance(
    conn, chat, bot, listener
):
    ada = chat(ADA, "Ada")
    opened = [await ada.send("/wallet"), await ada.tap("Cash out crypto")]
    amount = await ada.press("wallet:cur:USDT")
    assert "Available: 100 USDT" in amount.text
    assert [s.round_trips for s in [*opened, amount]] == [1, 0, 0]
    evictions = listener.evictions

    # Meanwhile a provider's webhook (in this process or another) credits 50 USDT.
    credit = await deposit(conn, ADA, "50", "evt-mid-flow")
    assert credit.wallet_available == D("150")
    await within(listener.wait_for(evictions=evictions + 1))

    assert "wallet" not in flows(bot, ADA)
    assert cache.evicted(bot.user_data[ADA]) == cache.CHANGED
    # The next step (the amount she types) refetches and shows the wallet as it is now.
    step = await ada.send("120")
    assert step.round_trips == 1
    assert step.text.startswith(wallet_flow.CHANGED)
    assert "150 USDT" in step.text and "Wallet of Ada" in step.text
    assert step.screen.callbacks == ["wallet:crypto", "wallet:ngn", "menu:open"]
    # The flow goes on from the fresh context, at zero round trips again, with the new balance.
    again = [await ada.tap("Cash out crypto"), await ada.press("wallet:cur:USDT")]
    assert [s.round_trips for s in again] == [0, 0]
    assert "Available: 150 USDT" in again[-1].text
    assert cache.evicted(bot.user_data[ADA]) is None
    # 120 now fits (it did not before the deposit): on to the network step.
    assert "wallet:net:TRC20" in (await ada.send("120")).screen.callbacks


async def test_an_evicted_confirm_screen_refetches_instead_of_cashing_out(
    conn, chat, bot, listener
):
    ada = chat(ADA, "Ada")
    await ada.send("/wallet")
    await ada.tap("Cash out crypto")
    await ada.press("wallet:cur:USDT")
    await ada.send("10")
    await ada.tap("Tron")
    confirm = await ada.send(TRON)
    pressed = confirm.screen.button("Confirm")
    notifications = listener.notifications

    await deposit(conn, ADA, "5", "evt-before-confirm")
    await within(listener.wait_for(notifications=notifications + 1))

    step = await ada.press(pressed)
    assert step.round_trips == 1  # the refetch; no cashout was asked for
    assert step.text.startswith(wallet_flow.CHANGED) and "105 USDT" in step.text
    assert await queries.wallet_test_user_cashouts(conn, telegram_id=ADA) == 0


async def test_a_step_that_lost_its_context_otherwise_refetches_without_blaming_the_balance(
    people, chat, bot
):
    # No listener here: the context is gone as after a restart (contexts are not persisted).
    ada = chat(ADA, "Ada")
    await ada.send("/wallet")
    await ada.tap("Cash out crypto")
    bot.user_data[ADA][cache.FLOWS].clear()

    step = await ada.press("wallet:cur:USDT")
    assert step.round_trips == 1
    assert step.text.startswith(wallet_flow.REFRESHED) and "Wallet of Ada" in step.text


# --- across Applications ---------------------------------------------------------------


async def test_a_second_application_sees_the_eviction_too(
    conn, pool, chat, bot, listener, database_url
):
    other_telegram = FakeTelegram()
    other = build_application(
        token="123456:TEST", settings=Settings(), pool=pool, request=other_telegram
    )
    await other.initialize()
    await other.start()
    other_listener = await cache.start_invalidation(other, database_url)
    try:
        assert other_listener.backend_pid != listener.backend_pid
        here, there = chat(ADA, "Ada"), Chat(other, other_telegram, ADA, "Ada")
        await here.send("/wallet")
        await there.send("/wallet")
        await there.tap("Cash out crypto")
        counts = listener.evictions, other_listener.evictions

        await deposit(conn, ADA, "25", "evt-two-apps")
        await within(listener.wait_for(evictions=counts[0] + 1))
        await within(other_listener.wait_for(evictions=counts[1] + 1))

        assert "wallet" not in flows(bot, ADA) and "wallet" not in flows(other, ADA)
        for step in (await there.press("wallet:cur:USDT"), await here.tap("Cash out crypto")):
            assert step.round_trips == 1
            assert step.text.startswith(wallet_flow.CHANGED) and "125 USDT" in step.text
    finally:
        await cache.stop_invalidation(other)
        await other.stop()
        await other.shutdown()
    assert not other_listener.connected


# --- losing the connection ------------------------------------------------------------


async def test_a_terminated_listener_reconnects_then_flushes_every_context(
    conn, chat, bot, listener
):
    ada, bayo = chat(ADA, "Ada"), chat(BAYO, "Bayo")
    await ada.send("/wallet")
    await ada.tap("Cash out crypto")
    await bayo.send("/wallet")
    assert "wallet" in flows(bot, ADA) and "wallet" in flows(bot, BAYO)
    old_pid, generation, failures = listener.backend_pid, listener.generation, listener.failures

    # An administrator (or a failover) ends the listener's session on the server.
    assert await queries.cache_test_terminate_backend(conn, backend_pid=old_pid) is True
    await within(listener.wait_connected(generation=generation + 1))

    assert listener.failures == failures + 1
    assert listener.backend_pid not in (None, old_pid)
    # Notifications may have been missed meanwhile: every context of every user is gone.
    for telegram_id in (ADA, BAYO):
        assert "wallet" not in flows(bot, telegram_id)
        assert cache.evicted(bot.user_data[telegram_id]) == cache.FLUSHED
    step = await ada.press("wallet:cur:USDT")
    assert step.round_trips == 1 and step.text.startswith(wallet_flow.REFRESHED)

    # The new connection listens: a later commit still evicts.
    await bayo.send("/wallet")
    evictions = listener.evictions
    await deposit(conn, BAYO, "7", "evt-after-reconnect")
    await within(listener.wait_for(evictions=evictions + 1))
    assert listener.received[-1] == BAYO
    assert "wallet" in flows(bot, ADA)  # Ada's refetched context is not Bayo's business


async def test_an_unreachable_server_is_retried_with_backoff_and_stop_ends_it(database_url):
    user_data = {ADA: {cache.FLOWS: {"wallet": "cached"}}}
    missing = database_url.rsplit("/", 1)[0] + "/lockbay_no_such_database"
    invalidator = cache.Invalidator(
        missing, user_data, backoff_seconds=0.001, max_backoff_seconds=0.004
    )
    assert [invalidator._backoff(n) for n in (1, 2, 3, 4, 9)] == [0.001, 0.002, 0.004, 0.004, 0.004]
    invalidator.start()
    try:
        await within(invalidator.wait_for(failures=3))
        assert invalidator.generation == 0 and not invalidator.connected
        # Never connected, never flushed: nothing was dropped on a guess.
        assert user_data[ADA][cache.FLOWS] == {"wallet": "cached"}
    finally:
        await invalidator.stop()
    assert invalidator._task is None


async def test_an_unanswered_keepalive_counts_as_a_lost_connection(database_url):
    user_data: dict[int, dict] = {}
    # A keep-alive that may take no time at all never answers in time.
    invalidator = cache.Invalidator(
        database_url,
        user_data,
        keepalive_seconds=0.001,
        keepalive_timeout=0,
        backoff_seconds=0.001,
        max_backoff_seconds=0.001,
    )
    invalidator.start()
    try:
        await within(invalidator.wait_connected(1))
        first, failures = invalidator.backend_pid, invalidator.failures
        user_data[ADA] = {cache.FLOWS: {"wallet": "cached while the first connection was up"}}
        await within(invalidator.wait_connected(generation=2))
        assert invalidator.failures > failures and invalidator.backend_pid != first
        assert cache.evicted(user_data[ADA]) == cache.FLUSHED
    finally:
        await invalidator.stop()
    assert not invalidator.connected


# --- what notifies ----------------------------------------------------------------------


async def test_a_rolled_back_movement_notifies_nobody_and_one_transaction_notifies_once(
    conn, listener
):
    start = listener.notifications
    order = await create_deposit_order(
        conn, telegram_id=ADA, currency="USDT", provider=PaymentProvider.BLOCKBEE
    )
    with pytest.raises(Boom):
        async with db.transaction(conn):
            credit = await credit_deposit(
                conn,
                provider=PaymentProvider.BLOCKBEE,
                event_id="evt-rolled-back",
                order_ref=order.ref,
                currency="USDT",
                amount=D("40"),
            )
            assert credit.wallet_available == D("140")
            raise Boom
    # Committed: two movements of Bayo's in one transaction, then one of Chidi's.
    async with db.transaction(conn):
        await seeding.credit(conn, BAYO, "USDT", "1")
        await seeding.credit(conn, BAYO, "BTC", "0.001")
    await seeding.credit(conn, CHIDI, "USDT", "1")
    await within(listener.wait_for(notifications=start + 2))

    # In commit order: Ada's credit never notified, and Bayo's transaction notified once.
    assert list(listener.received)[-2:] == [BAYO, CHIDI]
    assert listener.notifications == start + 2
    assert await queries.escrow_test_available(conn, telegram_id=ADA, currency="USDT") == 100
    # The rolled-back event claim went too: the same event credits now, and notifies.
    again = await credit_deposit(
        conn,
        provider=PaymentProvider.BLOCKBEE,
        event_id="evt-rolled-back",
        order_ref=order.ref,
        currency="USDT",
        amount=D("40"),
    )
    assert not again.duplicate and again.wallet_available == D("140")
    await within(listener.wait_for(notifications=start + 3))
    assert listener.received[-1] == ADA


async def test_saving_and_deleting_a_destination_notifies(conn, chat, bot, listener):
    ada = chat(ADA, "Ada")
    await ada.send("/wallet")
    start, evictions = listener.notifications, listener.evictions

    saved = await save_address(
        conn, telegram_id=ADA, currency="USDT", network="TRC20", address=TRON, label="cold"
    )
    await within(listener.wait_for(notifications=start + 1, evictions=evictions + 1))
    assert listener.received[-1] == ADA and "wallet" not in flows(bot, ADA)

    await save_bank_account(
        conn,
        telegram_id=BAYO,
        bank_code="058",
        account_number="0123456789",
        account_name="BAYO TEST",
    )
    await within(listener.wait_for(notifications=start + 2))
    assert listener.received[-1] == BAYO

    await delete_destination(
        conn, telegram_id=ADA, kind=DestinationKind.CRYPTO_ADDRESS, destination_id=saved.id
    )
    await within(listener.wait_for(notifications=start + 3))
    assert listener.received[-1] == ADA
    # The refetched wallet shows the destinations as they are now: the address is gone.
    step = await ada.tap("Cash out crypto")
    assert step.round_trips == 1 and TRON not in step.text


async def test_an_escrow_notifies_both_parties_on_creation_and_on_a_status_change(conn, listener):
    start = listener.notifications
    escrow = await create_escrow(
        conn,
        buyer_telegram_id=ADA,
        seller_handle=f"@user{BAYO}",
        currency="USDT",
        amount=D("20"),
        description="A kettle",
        fee_split=FeeSplit.BUYER,
    )
    await within(listener.wait_for(notifications=start + 2))
    assert sorted(list(listener.received)[-2:]) == [ADA, BAYO]

    await cancel_escrow(conn, escrow_id=escrow.id, telegram_id=ADA)
    await within(listener.wait_for(notifications=start + 4))
    assert sorted(list(listener.received)[-2:]) == [ADA, BAYO]
    # Chidi, a party to nothing, was never told.
    assert CHIDI not in list(listener.received)[-4:]


# --- the cache's side ---------------------------------------------------------------------


async def test_an_eviction_during_a_fetch_keeps_the_answer_out_of_the_cache():
    users: dict[int, dict] = {ADA: {}}

    async def fetch():
        # The notification lands while the query is on the wire.
        cache.evict_user(users, ADA)
        return "fetched before the change, maybe"

    value = await cache.open_flow(users[ADA], "wallet", fetch)
    assert value == "fetched before the change, maybe"
    assert cache.cached(users[ADA], "wallet") is None
    assert cache.evicted(users[ADA]) == cache.CHANGED

    async def fresh():
        return "fresh"

    assert await cache.open_flow(users[ADA], "wallet", fresh) == "fresh"
    assert cache.cached(users[ADA], "wallet") == "fresh"
    assert cache.evicted(users[ADA]) is None
    # An eviction answers whether a context was dropped; /cancel's drop clears the mark.
    assert cache.evict_user(users, ADA) is True and cache.evict_user(users, ADA) is False
    cache.drop(users[ADA])
    assert cache.evicted(users[ADA]) is None and cache.evict_user(users, BAYO) is False


async def test_the_users_own_save_in_contacts_does_not_leave_them_an_expired_screen(
    chat, bot, listener
):
    ada = chat(ADA, "Ada")
    await ada.send("/contacts")
    await ada.press("contacts:addaddr")
    await ada.press("contacts:cur:USDT")
    await ada.press("contacts:net:TRC20")
    await ada.send(TRON)
    start = listener.evictions
    saved = await ada.send("cold")
    assert "Saved cold" in saved.text

    # The save's own notification evicts what the flow kept (before or after the flow
    # kept the save's answer: either way) ...
    await within(listener.wait_for(evictions=start + 1))
    # The order "kept, then evicted", made certain here as the listener would do it:
    cache.evict_user(bot.user_data, ADA)
    # ... and the next press from the list fetches it afresh instead of "expired".
    again = await ada.press("contacts:addaddr")
    assert again.round_trips == 1 and "expired" not in again.text
    assert "contacts:cur:USDT" in again.screen.callbacks
