"""Fincra's webhooks over real HTTP: HMAC-SHA512 on the raw body, NGN collections into
top-ups and escrows, payouts settled or failed, each exactly once; refusals that change
nothing."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
import seeding
from webhook_support import (
    FINCRA_KEY,
    body,
    event_row,
    offline_bot,
    row_counts,
    serving,
    texts_to,
)

from bot.data.enums import CashoutStatus, FeeSplit, PaymentProvider
from bot.data.escrow import cancel_escrow, create_escrow, escrow_view
from bot.data.wallet import (
    BankDestination,
    create_deposit_order,
    request_cashout,
    wallet_context,
)
from bot.db import queries
from bot.outbox import deliver_due
from bot.providers import cashout_reference, fincra

BUYER, SELLER = 31001, 31002
D = Decimal
GTB = BankDestination(bank_code="058", account_number="0123456789", account_name="ADA BUYER")


@pytest.fixture
async def bot():
    async with offline_bot() as pair:
        yield pair


@pytest.fixture
async def client(pool, bot):
    # outbox: a committed event's notifications are delivered before the answer (wake).
    bot[0].bot_data.update(pool=pool, after_update=deliver_due)
    async with serving(pool, application=bot[0]) as client:
        yield client


@pytest.fixture
def telegram(bot):
    return bot[1]


def collection(ref: str, received, *, fincra_id=90001, event="collection.successful", **extra):
    data = {
        "id": fincra_id,
        "business": "61602d2950139ad72e619a91",
        "sourceCurrency": "NGN",
        "destinationCurrency": "NGN",
        "sourceAmount": received,
        "destinationAmount": received,
        "amountReceived": received,
        "fee": D("0"),
        "status": "successful",
        "reference": ref,
    }
    data.update(extra)
    return {"event": event, "data": data}


def payout(cashout_id: int, event="payout.successful", fincra_id=70001, **extra):
    data = {
        "id": fincra_id,
        "amountCharged": D("10000"),
        "amountReceived": D("10000"),
        "sourceCurrency": "NGN",
        "destinationCurrency": "NGN",
        "status": "successful" if event == "payout.successful" else "failed",
        "reference": "fcr-po-5c3f0e2b",
        "customerReference": cashout_reference(cashout_id),
    }
    data.update(extra)
    return {"event": event, "data": data}


async def post(client, payload_or_bytes, *, key=FINCRA_KEY, signature=None):
    raw = payload_or_bytes if isinstance(payload_or_bytes, bytes) else body(payload_or_bytes)
    headers = {"content-type": "application/json"}
    if signature is not False:
        headers["signature"] = signature or fincra.sign(key, raw)
    return await client.post("/webhooks/fincra", content=raw, headers=headers)


async def balance(pool, telegram_id: int, currency: str = "NGN") -> tuple[Decimal, Decimal]:
    w = (await wallet_context(pool, telegram_id=telegram_id)).wallet(currency)
    return w.available, w.held


async def top_up_order(pool):
    await seeding.user(pool, BUYER)
    return await create_deposit_order(
        pool, telegram_id=BUYER, currency="NGN", provider=PaymentProvider.FINCRA
    )


async def naira_escrow(pool, amount="10000"):
    await seeding.user(pool, BUYER)
    await seeding.user(pool, SELLER)
    return await create_escrow(
        pool,
        buyer_telegram_id=BUYER,
        seller_handle=f"@user{SELLER}",
        currency="NGN",
        amount=D(amount),
        description="A used generator",
        fee_split=FeeSplit.BUYER,
    )


# --- money in ---------------------------------------------------------------------


async def test_a_signed_collection_tops_up_the_wallet_and_tells_the_user(pool, client, telegram):
    order = await top_up_order(pool)
    r = await post(client, collection(order.ref, D("150000.50")))
    assert r.status_code == 200 and r.json() == {"outcome": "credited"}
    assert await balance(pool, BUYER) == (D("150000.50"), 0)
    paid = await queries.wallet_test_deposit_order(pool, ref=order.ref)
    assert paid["status"] == "paid" and paid["received_amount"] == D("150000.50")
    event = await event_row(pool, "fincra", "collection.successful:90001")
    assert event["processed"] and event["order_ref"] == order.ref
    assert event["payload"]["data"]["amountReceived"] == "150000.50"  # kept exactly, as text
    assert texts_to(telegram, BUYER) == [
        "✅ Deposit received: ₦150,000.50. Your NGN balance: ₦150,000.50."
    ]


async def test_the_same_event_20_times_at_once_credits_once_and_all_get_200(pool, client):
    order = await top_up_order(pool)
    payload = collection(order.ref, D("2500"))
    responses = await asyncio.gather(*(post(client, payload) for _ in range(20)))
    assert [r.status_code for r in responses] == [200] * 20
    outcomes = sorted(r.json()["outcome"] for r in responses)
    assert outcomes == ["credited"] + ["duplicate"] * 19
    assert await balance(pool, BUYER) == (D("2500"), 0)
    counts = await queries.wallet_test_deposit_counts(
        pool, provider="fincra", event_id="collection.successful:90001", order_ref=order.ref
    )
    assert dict(counts) == {"events": 1, "processed": 1, "transfers": 1, "wallet_entries": 1}

    # Another Fincra event (another id) for the same order is another payment.
    again = await post(client, collection(order.ref, D("500"), fincra_id=90002))
    assert again.json() == {"outcome": "credited"}
    assert await balance(pool, BUYER) == (D("3000"), 0)


async def test_a_charge_pays_the_escrow_and_both_parties_are_told(pool, client, telegram):
    escrow = await naira_escrow(pool)
    due = escrow.amount + escrow.buyer_fee
    assert due == D("10500")
    charge = collection(
        escrow.payment_reference, due, event="charge.successful", amount=due, currency="NGN"
    )
    r = await post(client, charge)
    assert r.json() == {"outcome": "credited"}
    view = await escrow_view(pool, escrow_id=escrow.id, viewer_telegram_id=BUYER)
    assert view.escrow.status == "funded"
    assert await balance(pool, BUYER) == (0, 0)  # credited, then paid into the escrow
    [to_buyer] = texts_to(telegram, BUYER)
    # The seller heard of the escrow when it was created (outbox), then of its payment.
    [created, to_seller] = texts_to(telegram, SELLER)
    assert "opened escrow" in created and "not paid yet" in created
    assert escrow.ref in to_buyer and "now paid" in to_buyer
    assert escrow.ref in to_seller and "₦10,000.00 is held for you" in to_seller


async def test_an_underpaid_escrow_keeps_the_money_in_the_wallet_and_says_what_is_missing(
    pool, client, telegram
):
    escrow = await naira_escrow(pool)
    r = await post(client, collection(escrow.payment_reference, D("10000")))
    assert r.json() == {"outcome": "credited"}
    view = await escrow_view(pool, escrow_id=escrow.id, viewer_telegram_id=BUYER)
    assert view.escrow.status == "awaiting_payment"
    assert await balance(pool, BUYER) == (D("10000"), 0)
    event = await event_row(pool, "fincra", "collection.successful:90001")
    assert event["payload"]["_lockbay"] == {"expected_amount": D("10500"), "difference": D("-500")}
    assert texts_to(telegram, BUYER) == [
        f"⚠️ ₦10,000.00 arrived for escrow {escrow.ref}, which needs ₦10,500.00. "
        "It is in your wallet (₦10,000.00); ₦500.00 more pays the escrow."
    ]
    # The seller heard of the escrow's creation (outbox), and of no payment.
    [created] = texts_to(telegram, SELLER)
    assert "opened escrow" in created and "not paid yet" in created

    # The rest arrives: the escrow expected only that, and is paid from the wallet.
    r = await post(client, collection(escrow.payment_reference, D("500"), fincra_id=90002))
    event = await event_row(pool, "fincra", "collection.successful:90002")
    assert event["payload"]["_lockbay"] == {"expected_amount": D("500"), "difference": D("0")}
    view = await escrow_view(pool, escrow_id=escrow.id, viewer_telegram_id=BUYER)
    assert view.escrow.status == "funded"
    assert await balance(pool, BUYER) == (0, 0)


async def test_an_overpaid_escrow_is_paid_and_the_surplus_stays_in_the_wallet(
    pool, client, telegram
):
    escrow = await naira_escrow(pool)
    await post(client, collection(escrow.payment_reference, D("11000")))
    view = await escrow_view(pool, escrow_id=escrow.id, viewer_telegram_id=BUYER)
    assert view.escrow.status == "funded"
    assert await balance(pool, BUYER) == (D("500"), 0)
    event = await event_row(pool, "fincra", "collection.successful:90001")
    assert event["payload"]["_lockbay"] == {"expected_amount": D("10500"), "difference": D("500")}
    [to_buyer] = texts_to(telegram, BUYER)
    assert "₦500.00 paid over what was due is in your wallet" in to_buyer


async def test_a_payment_for_a_cancelled_escrow_lands_in_the_payers_wallet(pool, client, telegram):
    escrow = await naira_escrow(pool)
    await cancel_escrow(pool, escrow_id=escrow.id, telegram_id=BUYER)
    r = await post(client, collection(escrow.payment_reference, D("10500")))
    assert r.json() == {"outcome": "credited"}
    assert await balance(pool, BUYER) == (D("10500"), 0)
    view = await escrow_view(pool, escrow_id=escrow.id, viewer_telegram_id=BUYER)
    assert view.escrow.status == "cancelled"
    event = await event_row(pool, "fincra", "collection.successful:90001")
    assert event["payload"]["_lockbay"] == {"expected_amount": 0, "difference": D("10500")}
    assert texts_to(telegram, BUYER) == [
        f"₦10,500.00 arrived for escrow {escrow.ref}, which is cancelled. "
        "Nothing is lost: it is in your wallet (₦10,500.00)."
    ]


async def test_a_user_who_blocked_the_bot_still_gets_the_money(pool, client, telegram):
    order = await top_up_order(pool)
    telegram.blocked_by.add(BUYER)
    r = await post(client, collection(order.ref, D("1000")))
    assert r.status_code == 200 and r.json() == {"outcome": "credited"}
    assert await balance(pool, BUYER) == (D("1000"), 0)
    assert [c.method for c in telegram.calls if c.method == "sendMessage"] == ["sendMessage"]


async def test_an_unknown_reference_is_recorded_for_review_answered_200_and_moves_nothing(
    pool, client
):
    await seeding.user(pool, BUYER)
    before = await row_counts(pool)
    r = await post(client, collection("DEP-NOSUCHORDER", D("5000")))
    assert r.status_code == 200 and r.json() == {"outcome": "unmatched"}
    event = await event_row(pool, "fincra", "collection.successful:90001")
    assert event["order_ref"] == "DEP-NOSUCHORDER"
    assert not event["processed"] and event["transfer_id"] is None
    after = await row_counts(pool)
    assert after == {**before, "webhook_events": before["webhook_events"] + 1}
    # A redelivery stops at the record.
    again = await post(client, collection("DEP-NOSUCHORDER", D("5000")))
    assert again.json() == {"outcome": "duplicate"}
    assert await row_counts(pool) == after


# --- money out ----------------------------------------------------------------------


async def naira_cashout(pool, key="co-1"):
    await seeding.user(pool, BUYER)
    await seeding.credit(pool, BUYER, "NGN", "50000")
    c = await request_cashout(
        pool,
        telegram_id=BUYER,
        currency="NGN",
        amount=D("10000"),
        destination=GTB,
        idempotency_key=key,
    )
    assert c.fee == D("150") and await balance(pool, BUYER) == (D("39850"), D("10150"))
    return c


async def test_payout_successful_settles_the_cashout_once(pool, client, telegram):
    c = await naira_cashout(pool)
    responses = await asyncio.gather(*(post(client, payout(c.id)) for _ in range(20)))
    assert [r.status_code for r in responses] == [200] * 20
    outcomes = sorted(r.json()["outcome"] for r in responses)
    assert outcomes == ["duplicate"] * 19 + ["settled"]
    assert await balance(pool, BUYER) == (D("39850"), 0)
    ctx = await wallet_context(pool, telegram_id=BUYER)
    assert ctx.cashouts_in_flight == ()
    event = await event_row(pool, "fincra", "payout.successful:70001")
    assert event["processed"] and event["transfer_id"] is not None
    assert texts_to(telegram, BUYER) == ["✅ Your cashout of ₦10,000.00 is paid."]

    # A failure reported after the success moves nothing: it is on record for a person.
    late = await post(client, payout(c.id, event="payout.failed", reason="reversed"))
    assert late.status_code == 200 and late.json() == {"outcome": "ignored"}
    assert await balance(pool, BUYER) == (D("39850"), 0)
    assert not (await event_row(pool, "fincra", "payout.failed:70001"))["processed"]


async def test_payout_failed_releases_the_hold(pool, client, telegram):
    c = await naira_cashout(pool)
    r = await post(client, payout(c.id, event="payout.failed", reason="Account name mismatch"))
    assert r.status_code == 200 and r.json() == {"outcome": "failed"}
    assert await balance(pool, BUYER) == (D("50000"), 0)
    ctx = await wallet_context(pool, telegram_id=BUYER)
    assert ctx.cashouts_in_flight == ()
    assert texts_to(telegram, BUYER) == [
        "⚠️ Your cashout of ₦10,000.00 could not be paid out (Account name mismatch). "
        "₦10,150.00 is back in your balance."
    ]
    # Redelivered: nothing more.
    again = await post(client, payout(c.id, event="payout.failed", reason="Account name mismatch"))
    assert again.json() == {"outcome": "duplicate"}
    assert await balance(pool, BUYER) == (D("50000"), 0)


async def test_a_payout_for_no_cashout_of_ours_is_recorded_and_answered_200(pool, client):
    c = await naira_cashout(pool)
    before = await row_counts(pool)
    foreign = payout(c.id, customerReference="SOMEONE-ELSES-REF")
    missing = payout(c.id + 1000, fincra_id=70002)
    assert (await post(client, foreign)).json() == {"outcome": "unmatched"}
    assert (await post(client, missing)).json() == {"outcome": "unmatched"}
    assert await balance(pool, BUYER) == (D("39850"), D("10150"))
    after = await row_counts(pool)
    assert after == {**before, "webhook_events": before["webhook_events"] + 2}
    cashout = (await wallet_context(pool, telegram_id=BUYER)).cashouts_in_flight[0]
    assert cashout.status is CashoutStatus.PENDING


# --- refusals -------------------------------------------------------------------------


async def test_forged_altered_wrong_key_or_unsigned_requests_are_401_and_change_nothing(
    pool, client, telegram
):
    order = await top_up_order(pool)
    before = await row_counts(pool)
    genuine = body(collection(order.ref, D("1000")))
    altered = genuine.replace(b"1000", b"9000")
    assert altered != genuine
    responses = [
        await post(client, genuine, signature="ab" * 64),  # forged
        await post(client, altered, signature=fincra.sign(FINCRA_KEY, genuine)),  # altered
        await post(client, genuine, key="not-the-merchant-key"),  # wrong key
        await post(client, genuine, signature=False),  # unsigned
        await post(client, genuine, signature=fincra.sign(FINCRA_KEY, genuine)[:-2]),
    ]
    assert [r.status_code for r in responses] == [401] * 5
    assert await row_counts(pool) == before
    assert await balance(pool, BUYER) == (0, 0)
    assert telegram.calls == [c for c in telegram.calls if c.method == "getMe"]


@pytest.mark.parametrize(
    ("name", "status", "mutate"),
    [
        ("malformed JSON", 400, lambda ref: b'{"event": "collection.successful", "data": {'),
        ("not an object", 400, lambda ref: b'["collection.successful"]'),
        ("unknown event", 422, lambda ref: collection(ref, D(1), event="collection.reversed")),
        ("no event", 422, lambda ref: {"data": collection(ref, D(1))["data"]}),
        ("no data", 422, lambda ref: {"event": "collection.successful"}),
        ("no id", 422, lambda ref: collection(ref, D(1), id=None)),
        ("no reference", 422, lambda ref: collection(None, D(1))),
        ("no amount", 422, lambda ref: collection(ref, None)),
        ("wrong currency", 422, lambda ref: collection(ref, D(1000), currency="USD")),
        ("not a currency", 422, lambda ref: collection(ref, D(1000), currency="N G N")),
        ("negative", 422, lambda ref: collection(ref, D("-1000"))),
        ("zero", 422, lambda ref: collection(ref, D("0"))),
        ("non-numeric", 422, lambda ref: collection(ref, "1,000")),
        ("not a number", 422, lambda ref: collection(ref, "NaN")),
        ("a boolean", 422, lambda ref: collection(ref, True)),
        ("past the kobo", 422, lambda ref: collection(ref, D("1000.001"))),
        ("absurdly large", 422, lambda ref: collection(ref, D("1e25"))),
    ],
)
async def test_bad_input_is_refused_and_changes_nothing(pool, client, name, status, mutate):
    order = await top_up_order(pool)
    before = await row_counts(pool)
    r = await post(client, mutate(order.ref))
    assert r.status_code == status, (name, r.text)
    assert "error" in r.json()
    assert await row_counts(pool) == before
    assert await balance(pool, BUYER) == (0, 0)
