"""Wallet movements: deposits credited exactly once, cashouts held, approved, settled or
failed with exact money, idempotency keys under concurrency, refusals that change nothing."""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal

import pytest
import seeding

from bot import db
from bot.data.enums import CashoutStatus, DepositStatus, DestinationKind, FeeSplit, PaymentProvider
from bot.data.errors import (
    AboveLimit,
    BelowMinimum,
    IdempotencyConflict,
    InsufficientFunds,
    Invalid,
    NotAParty,
    NotFound,
    QuoteExpired,
    WrongStatus,
)
from bot.data.escrow import cancel_escrow, create_escrow
from bot.data.exchange import lock_rate
from bot.data.wallet import (
    BankDestination,
    CryptoDestination,
    approve_cashout,
    create_deposit_order,
    credit_deposit,
    fail_cashout,
    request_cashout,
    settle_cashout,
    wallet_context,
)
from bot.db import queries

ALICE, BOB, ADMIN = 2001, 2002, 2003
D = Decimal
TRON = CryptoDestination(network="TRC20", address="T" + "x" * 33)
GTB = BankDestination(bank_code="058", account_number="0123456789", account_name="ALICE A")


async def balances(conn, telegram_id: int, currency: str) -> tuple[Decimal, Decimal]:
    ctx = await wallet_context(conn, telegram_id=telegram_id)
    w = ctx.wallet(currency)
    return w.available, w.held


async def one_trip(awaitable):
    """Runs one movement and asserts it cost exactly one round trip."""
    async with db.meter.measure() as m:
        result = await awaitable
    assert m.round_trips == 1, m.statements
    return result


async def measured(awaitable):
    """Runs a call in its own task's measurement: (its result, its round trips)."""
    async with db.meter.measure() as m:
        result = await awaitable
    return result, m.round_trips


async def cashout(conn, amount: str, key: str, currency="USDT", destination=TRON, who=ALICE):
    return await request_cashout(
        conn,
        telegram_id=who,
        currency=currency,
        amount=D(amount),
        destination=destination,
        idempotency_key=key,
    )


# --- deposits ---------------------------------------------------------------


async def test_a_top_up_order_is_one_round_trip_and_its_payment_lands_in_the_wallet(conn):
    await seeding.user(conn, ALICE)
    order = await one_trip(
        create_deposit_order(
            conn, telegram_id=ALICE, currency="USDT", provider=PaymentProvider.BLOCKBEE
        )
    )
    assert re.fullmatch(r"DEP-[A-Z2-7]{10}", order.ref)
    assert order.status is DepositStatus.OPEN and order.received_amount == 0

    credit = await credit_deposit(
        conn,
        provider=PaymentProvider.BLOCKBEE,
        event_id="evt-1",
        order_ref=order.ref,
        currency="USDT",
        amount=D("25.123456"),
        payload={"value": D("25.123456")},
    )
    assert not credit.duplicate and credit.order_kind == "deposit"
    assert credit.telegram_id == ALICE and credit.wallet_available == D("25.123456")
    assert await balances(conn, ALICE, "USDT") == (D("25.123456"), 0)
    order_now = await queries.wallet_test_deposit_order(conn, ref=order.ref)
    assert order_now["status"] == "paid" and order_now["received_amount"] == D("25.123456")

    # A second payment to the same order adds up.
    await credit_deposit(
        conn,
        provider=PaymentProvider.BLOCKBEE,
        event_id="evt-2",
        order_ref=order.ref,
        currency="USDT",
        amount=D("0.876544"),
    )
    assert await balances(conn, ALICE, "USDT") == (D("26"), 0)
    order_now = await queries.wallet_test_deposit_order(conn, ref=order.ref)
    assert order_now["received_amount"] == D("26")


async def test_a_top_up_order_for_no_user_or_no_currency_is_refused(conn):
    await seeding.user(conn, ALICE)
    with pytest.raises(NotFound):
        await create_deposit_order(
            conn, telegram_id=999, currency="USDT", provider=PaymentProvider.BLOCKBEE
        )
    with pytest.raises(Invalid):
        await create_deposit_order(
            conn, telegram_id=ALICE, currency="DOGE", provider=PaymentProvider.BLOCKBEE
        )


async def test_one_event_delivered_20_times_at_once_credits_exactly_once(pool):
    await seeding.user(pool, ALICE)
    order = await create_deposit_order(
        pool, telegram_id=ALICE, currency="NGN", provider=PaymentProvider.FINCRA
    )

    async def deliver():
        return await credit_deposit(
            pool,
            provider=PaymentProvider.FINCRA,
            event_id="fincra-evt-42",
            order_ref=order.ref,
            currency="NGN",
            amount=D("150000.50"),
        )

    results = await asyncio.gather(*(deliver() for _ in range(20)))
    assert sum(not r.duplicate for r in results) == 1
    assert sum(r.duplicate for r in results) == 19
    assert await balances(pool, ALICE, "NGN") == (D("150000.50"), 0)
    counts = await queries.wallet_test_deposit_counts(
        pool, provider="fincra", event_id="fincra-evt-42", order_ref=order.ref
    )
    assert dict(counts) == {"events": 1, "processed": 1, "transfers": 1, "wallet_entries": 1}

    # Delivered again later: still nothing more.
    again = await deliver()
    assert again.duplicate and again.transfer_id is None
    assert await balances(pool, ALICE, "NGN") == (D("150000.50"), 0)


async def test_an_unknown_ref_or_a_wrong_currency_claims_nothing_and_moves_nothing(conn):
    await seeding.user(conn, ALICE)
    order = await create_deposit_order(
        conn, telegram_id=ALICE, currency="BTC", provider=PaymentProvider.BLOCKBEE
    )
    with pytest.raises(NotFound):
        await credit_deposit(
            conn,
            provider=PaymentProvider.BLOCKBEE,
            event_id="e1",
            order_ref="DEP-NOSUCHTHING",
            currency="BTC",
            amount=D("0.1"),
        )
    with pytest.raises(Invalid, match="paid in BTC"):
        await credit_deposit(
            conn,
            provider=PaymentProvider.BLOCKBEE,
            event_id="e2",
            order_ref=order.ref,
            currency="ETH",
            amount=D("0.1"),
        )
    with pytest.raises(Invalid):
        await credit_deposit(
            conn,
            provider=PaymentProvider.BLOCKBEE,
            event_id="e3",
            order_ref=order.ref,
            currency="BTC",
            amount=D("0.000000001"),  # 9 decimals; BTC has 8
        )
    for event_id in ("e1", "e2", "e3"):
        counts = await queries.wallet_test_deposit_counts(
            conn, provider="blockbee", event_id=event_id, order_ref=order.ref
        )
        assert dict(counts) == {"events": 0, "processed": 0, "transfers": 0, "wallet_entries": 0}
    assert await balances(conn, ALICE, "BTC") == (0, 0)


async def escrow_for(conn, amount: str = "100"):
    await seeding.user(conn, ALICE)
    await seeding.user(conn, BOB)
    return await create_escrow(
        conn,
        buyer_telegram_id=ALICE,
        seller_handle=f"@user{BOB}",
        currency="USDT",
        amount=D(amount),
        description="A used bicycle",
        fee_split=FeeSplit.BUYER,
    )


async def test_a_payment_for_an_escrow_funds_it_through_the_buyers_wallet(conn):
    escrow = await escrow_for(conn)
    due = escrow.amount + escrow.buyer_fee
    assert due == D("105")  # 5% fee, all on the buyer
    credit = await credit_deposit(
        conn,
        provider=PaymentProvider.DYNOPAY,
        event_id="dyno-1",
        order_ref=escrow.payment_reference,
        currency="USDT",
        amount=due,
    )
    assert credit.order_kind == "escrow" and credit.order_id == escrow.id
    assert credit.refused is None
    assert credit.applied.escrow.status == "funded"
    assert credit.wallet_available == due  # credited first ...
    assert await balances(conn, ALICE, "USDT") == (0, 0)  # ... then paid into the escrow


async def test_a_payment_for_a_cancelled_or_underpaid_escrow_stays_in_the_wallet(conn):
    escrow = await escrow_for(conn)
    short = await credit_deposit(
        conn,
        provider=PaymentProvider.DYNOPAY,
        event_id="dyno-short",
        order_ref=escrow.payment_reference,
        currency="USDT",
        amount=D("104.999999"),
    )
    assert isinstance(short.refused, InsufficientFunds) and short.applied is None
    assert await balances(conn, ALICE, "USDT") == (D("104.999999"), 0)

    await cancel_escrow(conn, escrow_id=escrow.id, telegram_id=ALICE)
    late = await credit_deposit(
        conn,
        provider=PaymentProvider.DYNOPAY,
        event_id="dyno-late",
        order_ref=escrow.payment_reference,
        currency="USDT",
        amount=D("1"),
    )
    assert isinstance(late.refused, WrongStatus) and not late.duplicate
    assert await balances(conn, ALICE, "USDT") == (D("105.999999"), 0)


async def test_a_payment_for_an_exchange_order_executes_it_unless_the_quote_expired(conn):
    await seeding.user(conn, ALICE)
    await seeding.rate(conn, "USDT", "USD", "1")
    await seeding.rate(conn, "USD", "NGN", "1500")
    quote = await lock_rate(
        conn, telegram_id=ALICE, from_currency="USDT", to_currency="NGN", amount=D("10")
    )
    credit = await credit_deposit(
        conn,
        provider=PaymentProvider.BLOCKBEE,
        event_id="bb-x1",
        order_ref=quote.payment_reference,
        currency="USDT",
        amount=D("10"),
    )
    assert credit.order_kind == "exchange" and credit.refused is None
    assert credit.applied.to_amount == D("14850.00")  # 10 x 1500 x (1 - 0.01)
    assert await balances(conn, ALICE, "USDT") == (0, 0)
    assert await balances(conn, ALICE, "NGN") == (D("14850.00"), 0)

    stale = await lock_rate(
        conn,
        telegram_id=ALICE,
        from_currency="USDT",
        to_currency="NGN",
        amount=D("10"),
        lock_seconds=-1,
    )
    late = await credit_deposit(
        conn,
        provider=PaymentProvider.BLOCKBEE,
        event_id="bb-x2",
        order_ref=stale.payment_reference,
        currency="USDT",
        amount=D("10"),
    )
    assert isinstance(late.refused, QuoteExpired)
    assert await balances(conn, ALICE, "USDT") == (D("10"), 0)
    assert await balances(conn, ALICE, "NGN") == (D("14850.00"), 0)
    order = await queries.exchange_test_order(conn, order_id=stale.order_id)
    assert order["status"] == "expired" and order["received_amount"] == D("10")


# --- cashouts ---------------------------------------------------------------


async def test_a_crypto_cashout_holds_amount_and_flat_fee_in_one_round_trip(conn):
    await seeding.user(conn, ALICE)
    await seeding.credit(conn, ALICE, "USDT", "100")
    c = await one_trip(cashout(conn, "42.5", "k1"))
    assert c.status is CashoutStatus.PENDING and c.destination is DestinationKind.CRYPTO_ADDRESS
    assert (c.amount, c.fee, c.total) == (D("42.5"), D("1"), D("43.5"))
    assert (c.network, c.address, c.bank_code) == ("TRC20", TRON.address, None)
    assert (c.wallet_available, c.wallet_held) == (D("56.5"), D("43.5"))
    assert c.transfer_id is not None and not c.replayed
    assert await balances(conn, ALICE, "USDT") == (D("56.5"), D("43.5"))


async def test_a_naira_cashout_fee_is_flat_plus_rate_rounded_up_to_the_kobo(conn):
    await seeding.user(conn, ALICE)
    await seeding.credit(conn, ALICE, "NGN", "20000")
    # 100 + 1000.01 x 0.005 = 105.00005 -> 105.01
    c = await cashout(conn, "1000.01", "n1", currency="NGN", destination=GTB)
    assert c.fee == D("105.01")
    assert (c.bank_code, c.account_number, c.account_name) == ("058", "0123456789", "ALICE A")
    assert c.network is None and c.address is None
    # 100 + 12345.60 x 0.005 = 161.728 -> 161.73
    c2 = await cashout(conn, "12345.60", "n2", currency="NGN", destination=GTB)
    assert c2.fee == D("161.73")
    # 100 + 1000 x 0.005 = 105 exactly: nothing to round.
    c3 = await cashout(conn, "1000", "n3", currency="NGN", destination=GTB)
    assert c3.fee == D("105")
    spent = D("1000.01") + D("105.01") + D("12345.60") + D("161.73") + D("1000") + D("105")
    assert await balances(conn, ALICE, "NGN") == (D("20000") - spent, spent)


async def test_cashout_limits_and_destinations_are_refused_changing_nothing(conn):
    await seeding.user(conn, ALICE)
    await seeding.credit(conn, ALICE, "USDT", "100")
    await seeding.credit(conn, ALICE, "NGN", "5000")

    with pytest.raises(BelowMinimum) as below:
        await cashout(conn, "4.999999", "a")
    assert below.value.minimum == D("5")
    with pytest.raises(AboveLimit) as above:
        await cashout(conn, "50000.000001", "b")
    assert above.value.maximum == D("50000")
    with pytest.raises(Invalid, match="6 decimals"):
        await cashout(conn, "5.0000001", "c")
    with pytest.raises(Invalid):
        await cashout(conn, "0", "d")
    with pytest.raises(Invalid):
        await cashout(conn, "-10", "e")
    with pytest.raises(Invalid, match="naira"):
        await cashout(conn, "10", "f", destination=GTB)  # USDT to a bank
    with pytest.raises(Invalid, match="network"):
        await cashout(conn, "1000", "g", currency="NGN")  # naira to an address
    with pytest.raises(Invalid, match="network"):
        await cashout(conn, "10", "h", destination=CryptoDestination("BTC", "bc1qxyz"))
    with pytest.raises(Invalid):
        await cashout(
            conn, "1000", "i", currency="NGN", destination=BankDestination("999", "0123456789", "A")
        )
    with pytest.raises(Invalid):
        await cashout(conn, "10", "j", currency="DOGE")
    with pytest.raises(NotFound):
        await cashout(conn, "10", "k", who=999)
    # 99.5 + 1 fee = 100.5 > 100
    with pytest.raises(InsufficientFunds) as short:
        await cashout(conn, "99.5", "l")
    assert (short.value.available, short.value.needed) == (D("100"), D("100.5"))
    # 5000 NGN: 4000 + 100 + 20 = 4120 fits, 4900 + 124.5 does not.
    with pytest.raises(InsufficientFunds):
        await cashout(conn, "4900", "m", currency="NGN", destination=GTB)

    assert await queries.wallet_test_user_cashouts(conn, telegram_id=ALICE) == 0
    assert await balances(conn, ALICE, "USDT") == (D("100"), 0)
    assert await balances(conn, ALICE, "NGN") == (D("5000"), 0)

    # The refused keys were never claimed: the same key now goes through.
    c = await cashout(conn, "99", "l")  # 99 + 1 = exactly all of it
    assert (c.wallet_available, c.wallet_held) == (0, D("100"))


async def test_a_saved_destination_must_be_the_users_own_and_live_and_gets_used(conn):
    await seeding.user(conn, ALICE)
    await seeding.user(conn, BOB)
    await seeding.credit(conn, ALICE, "USDT", "100")
    await seeding.credit(conn, ALICE, "NGN", "10000")
    mine = await seeding.address(conn, ALICE, TRON.address)
    bobs = await seeding.address(conn, BOB, TRON.address)
    bank = await seeding.bank_account(conn, ALICE, "0123456789")

    with pytest.raises(NotFound, match="saved address"):
        await cashout(conn, "10", "a", destination=CryptoDestination("TRC20", TRON.address, bobs))
    with pytest.raises(NotFound, match="saved address"):  # not the address saved under that id
        await cashout(conn, "10", "b", destination=CryptoDestination("TRC20", "T" + "y" * 33, mine))
    with pytest.raises(NotFound, match="saved bank account"):
        await cashout(
            conn,
            "1000",
            "c",
            currency="NGN",
            destination=BankDestination("058", "0123456789", "ALICE A", bank + 1000),
        )

    gone = await seeding.address(conn, ALICE, "T" + "z" * 33)
    await queries.wallet_test_forget_address(conn, address_id=gone)
    with pytest.raises(NotFound, match="saved address"):
        await cashout(conn, "10", "x", destination=CryptoDestination("TRC20", "T" + "z" * 33, gone))

    c = await cashout(conn, "10", "d", destination=CryptoDestination("TRC20", TRON.address, mine))
    assert c.saved_address_id == mine
    b = await cashout(
        conn,
        "1000",
        "e",
        currency="NGN",
        destination=BankDestination("058", "0123456789", "ALICE A", bank),
    )
    assert b.saved_bank_account_id == bank
    ctx = await wallet_context(conn, telegram_id=ALICE)
    assert [a.last_used_at is not None for a in ctx.addresses] == [True]
    assert [a.last_used_at is not None for a in ctx.bank_accounts] == [True]


async def test_the_same_key_replays_and_other_details_under_it_conflict(conn):
    await seeding.user(conn, ALICE)
    await seeding.credit(conn, ALICE, "USDT", "100")
    first = await cashout(conn, "30", "same")
    again = await one_trip(cashout(conn, "30", "same"))
    assert again.id == first.id and again.replayed and again.transfer_id is None
    assert await balances(conn, ALICE, "USDT") == (D("69"), D("31"))

    assert (await cashout(conn, "30.000", "same")).id == first.id  # the same amount
    with pytest.raises(IdempotencyConflict):
        await cashout(conn, "31", "same")
    with pytest.raises(IdempotencyConflict):
        await cashout(conn, "30", "same", destination=CryptoDestination("ERC20", "0x" + "a" * 40))
    # A replay answers even when the wallet could no longer afford the request.
    await cashout(conn, "60", "other")
    assert (await cashout(conn, "30", "same")).id == first.id
    assert await queries.wallet_test_user_cashouts(conn, telegram_id=ALICE) == 2
    assert await balances(conn, ALICE, "USDT") == (D("8"), D("92"))


async def test_ten_concurrent_requests_with_one_key_make_one_cashout(pool):
    await seeding.user(pool, ALICE)
    await seeding.credit(pool, ALICE, "USDT", "100")
    results = await asyncio.gather(*(cashout(pool, "70", "tap-tap-tap") for _ in range(10)))
    assert len({c.id for c in results}) == 1
    assert sum(not c.replayed for c in results) == 1
    assert await queries.wallet_test_user_cashouts(pool, telegram_id=ALICE) == 1
    assert await balances(pool, ALICE, "USDT") == (D("29"), D("71"))


async def test_a_retry_that_waited_for_the_first_requests_lock_gets_its_cashout(pool):
    """The retry's snapshot predates the first request's commit: it must still replay."""
    await seeding.user(pool, ALICE)
    await seeding.credit(pool, ALICE, "USDT", "100")
    async with pool.acquire() as first_conn, first_conn.transaction():
        first = await cashout(first_conn, "70", "k")
        retry = asyncio.create_task(measured(cashout(pool, "70", "k")))
        await seeding.until_blocked(pool)
    again, trips = await retry
    assert again.id == first.id and again.replayed
    assert trips == 2  # the statement that waited saw the race, the second one the key
    assert await balances(pool, ALICE, "USDT") == (D("29"), D("71"))


async def test_a_conflicting_request_that_waited_on_the_key_is_refused(pool):
    """Another currency, so no wallet lock in common: the two meet on the key itself."""
    await seeding.user(pool, ALICE)
    await seeding.credit(pool, ALICE, "USDT", "100")
    await seeding.credit(pool, ALICE, "NGN", "5000")
    async with pool.acquire() as first_conn, first_conn.transaction():
        await cashout(first_conn, "70", "k")
        other = asyncio.create_task(
            measured(cashout(pool, "1000", "k", currency="NGN", destination=GTB))
        )
        await seeding.until_blocked(pool)
    with pytest.raises(IdempotencyConflict):
        await other
    assert await balances(pool, ALICE, "NGN") == (D("5000"), 0)


async def test_two_cashouts_at_once_cannot_spend_the_same_money(pool):
    await seeding.user(pool, ALICE)
    await seeding.credit(pool, ALICE, "USDT", "100")
    # 70 + 1 fee each: either fits, both do not.
    results = await asyncio.gather(
        cashout(pool, "70", "one"), cashout(pool, "70", "two"), return_exceptions=True
    )
    ok = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(ok) == 1 and len(refused) == 1
    assert isinstance(refused[0], InsufficientFunds)
    assert (refused[0].available, refused[0].needed) == (D("29"), D("71"))
    assert await balances(pool, ALICE, "USDT") == (D("29"), D("71"))
    assert await queries.wallet_test_user_cashouts(pool, telegram_id=ALICE) == 1


async def test_approval_is_for_admins_and_pending_cashouts_only(conn):
    await seeding.user(conn, ALICE)
    await seeding.user(conn, ADMIN)
    await seeding.make_admin(conn, ADMIN)
    await seeding.credit(conn, ALICE, "USDT", "100")
    c = await cashout(conn, "50", "k")

    with pytest.raises(NotAParty):
        await approve_cashout(conn, cashout_id=c.id, admin_telegram_id=ALICE)
    with pytest.raises(NotFound):
        await approve_cashout(conn, cashout_id=c.id + 1, admin_telegram_id=ADMIN)
    approved = await one_trip(approve_cashout(conn, cashout_id=c.id, admin_telegram_id=ADMIN))
    assert approved.status is CashoutStatus.APPROVED and approved.approved_at is not None
    assert (approved.wallet_available, approved.wallet_held) == (D("49"), D("51"))
    with pytest.raises(WrongStatus) as twice:
        await approve_cashout(conn, cashout_id=c.id, admin_telegram_id=ADMIN)
    assert twice.value.status == "approved"


async def test_settling_burns_the_hold_once(conn):
    await seeding.user(conn, ALICE)
    await seeding.user(conn, ADMIN)
    await seeding.make_admin(conn, ADMIN)
    await seeding.credit(conn, ALICE, "NGN", "50000")
    c = await cashout(conn, "10000", "k", currency="NGN", destination=GTB)
    assert c.fee == D("150")
    await approve_cashout(conn, cashout_id=c.id, admin_telegram_id=ADMIN)
    settled = await one_trip(
        settle_cashout(
            conn, cashout_id=c.id, provider=PaymentProvider.FINCRA, provider_reference="FCR-1"
        )
    )
    assert settled.status is CashoutStatus.COMPLETED and settled.completed_at is not None
    assert (settled.provider, settled.provider_reference) == ("fincra", "FCR-1")
    assert (settled.wallet_available, settled.wallet_held) == (D("39850"), 0)
    assert await balances(conn, ALICE, "NGN") == (D("39850"), 0)

    with pytest.raises(WrongStatus):
        await settle_cashout(
            conn, cashout_id=c.id, provider=PaymentProvider.FINCRA, provider_reference="FCR-1"
        )
    with pytest.raises(WrongStatus):
        await fail_cashout(conn, cashout_id=c.id, reason="too late")
    assert await balances(conn, ALICE, "NGN") == (D("39850"), 0)
    with pytest.raises(NotFound):
        await settle_cashout(
            conn, cashout_id=c.id + 1, provider=PaymentProvider.FINCRA, provider_reference="x"
        )


async def test_failing_releases_the_hold_once(conn):
    await seeding.user(conn, ALICE)
    await seeding.credit(conn, ALICE, "BTC", "0.5")
    c = await cashout(
        conn, "0.12345678", "k", currency="BTC", destination=CryptoDestination("BTC", "bc1qxyz")
    )
    assert c.fee == D("0.00005")
    assert await balances(conn, ALICE, "BTC") == (D("0.37649322"), D("0.12350678"))
    failed = await one_trip(fail_cashout(conn, cashout_id=c.id, reason="address rejected"))
    assert failed.status is CashoutStatus.FAILED and failed.failure_reason == "address rejected"
    assert (failed.wallet_available, failed.wallet_held) == (D("0.5"), 0)
    assert await balances(conn, ALICE, "BTC") == (D("0.5"), 0)

    with pytest.raises(WrongStatus) as twice:
        await fail_cashout(conn, cashout_id=c.id, reason="again")
    assert twice.value.status == "failed"
    with pytest.raises(WrongStatus):
        await settle_cashout(
            conn, cashout_id=c.id, provider=PaymentProvider.BLOCKBEE, provider_reference="x"
        )
    assert await balances(conn, ALICE, "BTC") == (D("0.5"), 0)


async def test_settling_and_failing_at_once_move_the_hold_once(pool):
    await seeding.user(pool, ALICE)
    await seeding.credit(pool, ALICE, "USDT", "100")
    c = await cashout(pool, "50", "k")
    results = await asyncio.gather(
        settle_cashout(
            pool, cashout_id=c.id, provider=PaymentProvider.DYNOPAY, provider_reference="d-1"
        ),
        fail_cashout(pool, cashout_id=c.id, reason="timeout"),
        return_exceptions=True,
    )
    assert sum(isinstance(r, WrongStatus) for r in results) == 1
    done = next(r for r in results if not isinstance(r, Exception))
    expected = (D("49"), 0) if done.status is CashoutStatus.COMPLETED else (D("100"), 0)
    assert await balances(pool, ALICE, "USDT") == expected
