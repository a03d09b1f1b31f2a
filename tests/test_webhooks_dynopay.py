"""DynoPay's webhooks over real HTTP: the V2 signature (HMAC-SHA256 of `t.body`, fresh
within 300 s), payments credited once per webhook id, pending ones moving nothing,
underpaid exchange orders marked; refusals that change nothing."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest
import seeding
from webhook_support import (
    DYNOPAY_SECRET,
    body,
    event_row,
    offline_bot,
    row_counts,
    serving,
    texts_to,
)

from bot.data.enums import FeeSplit, PaymentProvider
from bot.data.escrow import create_escrow, escrow_view, refund_escrow
from bot.data.exchange import lock_rate
from bot.data.wallet import create_deposit_order, wallet_context
from bot.db import queries
from bot.outbox import deliver_due
from bot.providers import dynopay

PAYER, SELLER = 33001, 33002
D = Decimal
HOOK_ID = "5b0d7c1e-2f43-4f7e-9a31-0c2b8f6e4d10"


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


def payment(ref: str | None, amount, currency="USDT", **extra) -> dict:
    data = {
        "payment_id": "pay_8f2c61",
        "status": "confirmed",
        "amount": amount,
        "currency": currency,
        "base_amount": amount,
        "base_currency": "USD",
        "meta_data": {"refId": ref, "user": "lockbay"},
        "overpayment": D("0"),
    }
    data.update(extra)
    return data


async def post(
    client,
    payload_or_bytes,
    *,
    event="payment.confirmed",
    hook_id=HOOK_ID,
    secret=DYNOPAY_SECRET,
    t=None,
    signature=None,
    extra_headers=None,
):
    raw = payload_or_bytes if isinstance(payload_or_bytes, bytes) else body(payload_or_bytes)
    stamp = int(time.time()) if t is None else t
    headers = {"content-type": "application/json", "x-dynopay-timestamp": str(stamp)}
    if event is not None:
        headers["x-dynopay-event"] = event
    if hook_id is not None:
        headers["x-dynopay-webhook-id"] = hook_id
    if signature is not False:
        headers["x-dynopay-signature-v2"] = signature or dynopay.signature_v2(secret, raw, stamp)
    headers.update(extra_headers or {})
    return await client.post("/webhooks/dynopay", content=raw, headers=headers)


async def balance(pool, telegram_id: int, currency: str) -> tuple[Decimal, Decimal]:
    w = (await wallet_context(pool, telegram_id=telegram_id)).wallet(currency)
    return w.available, w.held


async def usdt_order(pool):
    await seeding.user(pool, PAYER)
    return await create_deposit_order(
        pool, telegram_id=PAYER, currency="USDT", provider=PaymentProvider.DYNOPAY
    )


async def usdt_escrow(pool, amount="100"):
    await seeding.user(pool, PAYER)
    await seeding.user(pool, SELLER)
    return await create_escrow(
        pool,
        buyer_telegram_id=PAYER,
        seller_handle=f"@user{SELLER}",
        currency="USDT",
        amount=D(amount),
        description="Domain name transfer",
        fee_split=FeeSplit.BUYER,
    )


async def usdt_to_naira_quote(pool, amount="10"):
    await seeding.user(pool, PAYER)
    await seeding.rate(pool, "USDT", "USD", "1")
    await seeding.rate(pool, "USD", "NGN", "1500")
    return await lock_rate(
        pool, telegram_id=PAYER, from_currency="USDT", to_currency="NGN", amount=D(amount)
    )


# --- accepted ---------------------------------------------------------------------


async def test_a_confirmed_payment_tops_up_the_wallet(pool, client, telegram):
    order = await usdt_order(pool)
    r = await post(client, payment(order.ref, D("25.123456")))
    assert r.status_code == 200 and r.json() == {"outcome": "credited"}
    assert await balance(pool, PAYER, "USDT") == (D("25.123456"), 0)
    event = await event_row(pool, "dynopay", HOOK_ID)
    assert event["processed"] and event["event_type"] == "payment.confirmed"
    assert texts_to(telegram, PAYER) == [
        "✅ Deposit received: 25.123456 USDT. Your USDT balance: 25.123456 USDT."
    ]


async def test_a_pending_payment_moves_nothing_and_answers_200(pool, client, telegram):
    order = await usdt_order(pool)
    before = await row_counts(pool)
    r = await post(client, payment(order.ref, D("25"), status="pending"), event="payment.pending")
    assert r.status_code == 200 and r.json() == {"outcome": "pending"}
    assert await row_counts(pool) == before
    assert [c.method for c in telegram.calls] == ["getMe"]


async def test_the_same_webhook_20_times_at_once_credits_once(pool, client):
    order = await usdt_order(pool)
    raw = body(payment(order.ref, D("40")))
    responses = await asyncio.gather(*(post(client, raw) for _ in range(20)))
    assert [r.status_code for r in responses] == [200] * 20
    assert sorted(r.json()["outcome"] for r in responses) == ["credited"] + ["duplicate"] * 19
    assert await balance(pool, PAYER, "USDT") == (D("40"), 0)
    counts = await queries.wallet_test_deposit_counts(
        pool, provider="dynopay", event_id=HOOK_ID, order_ref=order.ref
    )
    assert dict(counts) == {"events": 1, "processed": 1, "transfers": 1, "wallet_entries": 1}


async def test_a_payment_for_an_exchange_order_executes_it(pool, client, telegram):
    quote = await usdt_to_naira_quote(pool)
    r = await post(client, payment(quote.payment_reference, D("10")))
    assert r.json() == {"outcome": "credited"}
    assert await balance(pool, PAYER, "USDT") == (0, 0)
    assert await balance(pool, PAYER, "NGN") == (D("14850.00"), 0)  # 10 x 1500 less 1%
    order = await queries.exchange_test_order(pool, order_id=quote.order_id)
    assert order["status"] == "completed"
    assert texts_to(telegram, PAYER) == [
        f"✅ Payment received: 10 USDT. Exchange {quote.payment_reference} done: "
        "₦14,850.00 is in your wallet."
    ]


async def test_an_underpaid_exchange_is_marked_and_what_arrived_stays_in_the_wallet(
    pool, client, telegram
):
    quote = await usdt_to_naira_quote(pool)
    r = await post(
        client,
        payment(quote.payment_reference, D("8"), status="underpaid"),
        event="payment.underpaid",
    )
    assert r.json() == {"outcome": "credited"}
    assert await balance(pool, PAYER, "USDT") == (D("8"), 0)
    assert await balance(pool, PAYER, "NGN") == (0, 0)
    order = await queries.exchange_test_order(pool, order_id=quote.order_id)
    assert order["status"] == "underpaid" and order["received_amount"] == D("8")
    event = await event_row(pool, "dynopay", HOOK_ID)
    assert event["payload"]["_lockbay"] == {"expected_amount": D("10"), "difference": D("-2")}
    assert texts_to(telegram, PAYER) == [
        f"⚠️ 8 USDT arrived for exchange {quote.payment_reference}, which needed 10 USDT. "
        "The exchange was not made; what arrived is in your wallet (8 USDT)."
    ]


async def test_an_overpaid_escrow_is_paid_and_the_surplus_stays_in_the_wallet(
    pool, client, telegram
):
    escrow = await usdt_escrow(pool)
    r = await post(client, payment(escrow.payment_reference, D("110"), overpayment=D("5")))
    assert r.json() == {"outcome": "credited"}
    view = await escrow_view(pool, escrow_id=escrow.id, viewer_telegram_id=PAYER)
    assert view.escrow.status == "funded"
    assert await balance(pool, PAYER, "USDT") == (D("5"), 0)
    event = await event_row(pool, "dynopay", HOOK_ID)
    assert event["payload"]["_lockbay"] == {"expected_amount": D("105"), "difference": D("5")}
    assert "5 USDT paid over what was due" in texts_to(telegram, PAYER)[0]
    assert "100 USDT is held for you" in texts_to(telegram, SELLER)[-1]  # after the creation note


async def test_a_payment_for_a_refunded_escrow_lands_in_the_payers_wallet(pool, client, telegram):
    escrow = await usdt_escrow(pool)
    await post(client, payment(escrow.payment_reference, D("105")))
    await refund_escrow(pool, escrow_id=escrow.id, telegram_id=SELLER)
    assert await balance(pool, PAYER, "USDT") == (D("105"), 0)  # the refund
    # A second payment to the same reference arrives after the refund.
    late = await post(client, payment(escrow.payment_reference, D("105")), hook_id="late-one")
    assert late.json() == {"outcome": "credited"}
    assert await balance(pool, PAYER, "USDT") == (D("210"), 0)
    view = await escrow_view(pool, escrow_id=escrow.id, viewer_telegram_id=PAYER)
    assert view.escrow.status == "refunded"
    assert texts_to(telegram, PAYER)[-1] == (
        f"105 USDT arrived for escrow {escrow.ref}, which is refunded. Nothing is lost: "
        "it is in your wallet (210 USDT)."
    )


# --- refused ------------------------------------------------------------------------


async def test_forged_altered_wrong_secret_stale_or_unsigned_requests_are_401(
    pool, client, telegram
):
    order = await usdt_order(pool)
    before = await row_counts(pool)
    raw = body(payment(order.ref, D("25")))
    now = int(time.time())
    good = dynopay.signature_v2(DYNOPAY_SECRET, raw, now)
    responses = [
        await post(client, raw, signature=f"t={now},v1={'0' * 64}"),  # forged
        await post(client, raw.replace(b"25", b"95"), signature=good),  # altered body
        await post(client, raw, signature=good.replace(f"t={now}", f"t={now + 1}")),  # altered t
        await post(client, raw, secret="not-the-secret"),  # wrong secret
        await post(client, raw, t=now - 310),  # stale
        await post(client, raw, t=now + 310),  # from the future
        await post(client, raw, signature=False),  # unsigned
        await post(client, raw, signature="v1=" + good.rpartition("v1=")[2]),  # no t
        await post(client, raw, signature=f"t=soon,{good.partition(',')[2]}"),
        await post(
            client,
            raw,
            signature=False,
            extra_headers={"x-dynopay-signature": "0" * 64},  # legacy only: not supported
        ),
    ]
    assert [r.status_code for r in responses] == [401] * 10
    assert await row_counts(pool) == before
    assert await balance(pool, PAYER, "USDT") == (0, 0)
    assert [c.method for c in telegram.calls] == ["getMe"]


async def test_a_timestamp_within_300_seconds_is_accepted(pool, client):
    order = await usdt_order(pool)
    r = await post(client, payment(order.ref, D("1")), t=int(time.time()) - 250)
    assert r.json() == {"outcome": "credited"}
    # One of several v1 values matching is enough (a secret being rotated).
    raw = body(payment(order.ref, D("2")))
    now = int(time.time())
    good = dynopay.signature_v2(DYNOPAY_SECRET, raw, now)
    rotated = f"{good},v1={'f' * 64}"
    r = await post(client, raw, hook_id="rotated", signature=rotated)
    assert r.json() == {"outcome": "credited"}
    assert await balance(pool, PAYER, "USDT") == (D("3"), 0)


@pytest.mark.parametrize(
    ("name", "status", "request_args"),
    [
        ("malformed JSON", 400, lambda ref: ({}, b'{"amount": 25,')),
        ("not an object", 400, lambda ref: ({}, b'"payment"')),
        ("unknown event", 422, lambda ref: ({"event": "payment.refunded"}, payment(ref, D(1)))),
        ("no event", 422, lambda ref: ({"event": None}, payment(ref, D(1)))),
        ("no webhook id", 422, lambda ref: ({"hook_id": None}, payment(ref, D(1)))),
        ("no refId", 422, lambda ref: ({}, payment(None, D(1)))),
        ("no meta_data", 422, lambda ref: ({}, payment(ref, D(1), meta_data=None))),
        ("no amount", 422, lambda ref: ({}, payment(ref, None))),
        ("no currency", 422, lambda ref: ({}, payment(ref, D(1), currency=None))),
        ("wrong currency", 422, lambda ref: ({}, payment(ref, D(1), currency="BTC"))),
        ("negative", 422, lambda ref: ({}, payment(ref, D("-25")))),
        ("zero", 422, lambda ref: ({}, payment(ref, 0))),
        ("non-numeric", 422, lambda ref: ({}, payment(ref, "twenty"))),
        ("a list", 422, lambda ref: ({}, payment(ref, [25]))),
        ("past 6 decimals", 422, lambda ref: ({}, payment(ref, D("1.0000001")))),
    ],
)
async def test_bad_input_is_refused_and_changes_nothing(pool, client, name, status, request_args):
    order = await usdt_order(pool)
    before = await row_counts(pool)
    options, payload = request_args(order.ref)
    r = await post(client, payload, **options)
    assert r.status_code == status, (name, r.text)
    assert await row_counts(pool) == before
    assert await balance(pool, PAYER, "USDT") == (0, 0)
