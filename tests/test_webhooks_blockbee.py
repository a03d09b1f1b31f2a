"""BlockBee's callbacks over real HTTP: RSA-SHA256 signatures (the full URL for GET, the
raw body for POST) under the tests' own key pair, confirmed payments credited once and
answered `*ok*`, pending ones moving nothing; refusals that change nothing."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from urllib.parse import urlencode

import pytest
import seeding
from webhook_support import (
    blockbee_key,
    event_row,
    offline_bot,
    other_key,
    row_counts,
    rsa_sign,
    serving,
    settings,
    texts_to,
)

from bot.data.enums import FeeSplit, PaymentProvider
from bot.data.escrow import create_escrow, escrow_view
from bot.data.wallet import create_deposit_order, wallet_context
from bot.db import queries
from bot.outbox import deliver_due

PAYER, SELLER = 32001, 32002
D = Decimal
UUID = "afe11dc5-7a4d-4a2b-9b9c-3c0f1e5a9f01"


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


def callback(order_ref: str | None, value="0.05", *, pending=0, coin="btc", uuid=UUID, **extra):
    params = {
        "order_ref": order_ref,  # ours, from the callback URL
        "uuid": uuid,
        "address_in": "bc1qexampleaddressin0000000000000000000000",
        "address_out": "bc1qexampleaddressout000000000000000000000",
        "txid_in": "a" * 64,
        "confirmations": "1" if not pending else "0",
        "value_coin": value,
        "value_forwarded_coin": value,
        "fee_coin": "0.0001",
        "coin": coin,
        "price": "64000.12",
        "pending": str(pending),
        "result": "pending" if pending else "sent",
    }
    params.update(extra)
    return {k: v for k, v in params.items() if v is not None}


def callback_url(client, params: dict) -> str:
    return f"{str(client.base_url).rstrip('/')}/webhooks/blockbee?{urlencode(params)}"


async def get(client, params: dict, *, key=None, signature=None, signed_url=None):
    """A GET callback; BlockBee signs the full URL it calls."""
    url = callback_url(client, params)
    headers = {}
    if signature is not False:
        headers["x-ca-signature"] = signature or rsa_sign(
            key or blockbee_key(), (signed_url or url).encode()
        )
    return await client.get(url, headers=headers)


async def post(client, raw: bytes, *, content_type, key=None, signature=None, query=""):
    headers = {"content-type": content_type}
    if signature is not False:
        headers["x-ca-signature"] = signature or rsa_sign(key or blockbee_key(), raw)
    url = "/webhooks/blockbee" + (f"?{query}" if query else "")
    return await client.post(url, content=raw, headers=headers)


async def balance(pool, telegram_id: int, currency: str) -> tuple[Decimal, Decimal]:
    w = (await wallet_context(pool, telegram_id=telegram_id)).wallet(currency)
    return w.available, w.held


async def btc_order(pool):
    await seeding.user(pool, PAYER)
    return await create_deposit_order(
        pool, telegram_id=PAYER, currency="BTC", provider=PaymentProvider.BLOCKBEE
    )


# --- accepted ---------------------------------------------------------------------


async def test_a_signed_get_callback_credits_and_answers_ok(pool, client, telegram):
    order = await btc_order(pool)
    r = await get(client, callback(order.ref, "0.05"))
    assert (r.status_code, r.text) == (200, "*ok*")
    assert await balance(pool, PAYER, "BTC") == (D("0.05"), 0)
    paid = await queries.wallet_test_deposit_order(pool, ref=order.ref)
    assert paid["status"] == "paid"
    event = await event_row(pool, "blockbee", UUID)
    assert event["processed"] and event["payload"]["txid_in"] == "a" * 64
    assert texts_to(telegram, PAYER) == [
        "✅ Deposit received: 0.05 BTC. Your BTC balance: 0.05 BTC."
    ]


async def test_a_signed_post_callback_credits_from_the_form_or_json_body(pool, client):
    order = await btc_order(pool)
    form = urlencode(callback(order.ref, "0.01")).encode()
    r = await post(client, form, content_type="application/x-www-form-urlencoded")
    assert (r.status_code, r.text) == (200, "*ok*")
    raw = json.dumps(callback(order.ref, "0.02", uuid="second-callback")).encode()
    r = await post(client, raw, content_type="application/json")
    assert (r.status_code, r.text) == (200, "*ok*")
    assert await balance(pool, PAYER, "BTC") == (D("0.03"), 0)


async def test_a_pending_callback_moves_nothing_and_answers_ok(pool, client, telegram):
    order = await btc_order(pool)
    before = await row_counts(pool)
    r = await get(client, callback(order.ref, "0.05", pending=1, uuid="pending-1"))
    assert (r.status_code, r.text) == (200, "*ok*")
    assert await row_counts(pool) == before
    assert await balance(pool, PAYER, "BTC") == (0, 0)
    # The confirmation (its own uuid) then credits.
    r = await get(client, callback(order.ref, "0.05", pending=0, uuid="confirmed-1"))
    assert r.text == "*ok*" and await balance(pool, PAYER, "BTC") == (D("0.05"), 0)


async def test_one_callback_20_times_at_once_credits_once_and_all_answer_ok(pool, client):
    order = await btc_order(pool)
    params = callback(order.ref, "0.12345678")
    responses = await asyncio.gather(*(get(client, params) for _ in range(20)))
    assert [(r.status_code, r.text) for r in responses] == [(200, "*ok*")] * 20
    assert await balance(pool, PAYER, "BTC") == (D("0.12345678"), 0)
    counts = await queries.wallet_test_deposit_counts(
        pool, provider="blockbee", event_id=UUID, order_ref=order.ref
    )
    assert dict(counts) == {"events": 1, "processed": 1, "transfers": 1, "wallet_entries": 1}


async def test_a_usdt_payment_funds_an_escrow_and_both_parties_are_told(pool, client, telegram):
    await seeding.user(pool, PAYER)
    await seeding.user(pool, SELLER)
    escrow = await create_escrow(
        pool,
        buyer_telegram_id=PAYER,
        seller_handle=f"@user{SELLER}",
        currency="USDT",
        amount=D("200"),
        description="Graphics card",
        fee_split=FeeSplit.SPLIT,
    )
    due = escrow.amount + escrow.buyer_fee
    assert due == D("205")
    r = await get(client, callback(escrow.payment_reference, "205", coin="trc20_usdt"))
    assert r.text == "*ok*"
    view = await escrow_view(pool, escrow_id=escrow.id, viewer_telegram_id=PAYER)
    assert view.escrow.status == "funded"
    assert await balance(pool, PAYER, "USDT") == (0, 0)
    assert "now paid" in texts_to(telegram, PAYER)[0]
    assert "200 USDT is held for you" in texts_to(telegram, SELLER)[-1]  # after the creation note


async def test_the_signed_url_is_the_public_one_behind_a_proxy(pool):
    order = await btc_order(pool)
    params = callback(order.ref, "0.5")
    public = f"https://pay.example.com/webhooks/blockbee?{urlencode(params)}"
    async with serving(pool, settings(public_url="https://pay.example.com/")) as client:
        r = await get(client, params, signed_url=public)
    assert r.text == "*ok*" and await balance(pool, PAYER, "BTC") == (D("0.5"), 0)
    # Without the setting the app rebuilds its own URL, which BlockBee did not sign.
    async with serving(pool) as client:
        r = await get(client, {**params, "uuid": "other"}, signed_url=public)
    assert r.status_code == 401


# --- refused ------------------------------------------------------------------------


async def test_forged_altered_wrong_key_or_unsigned_callbacks_are_401_and_change_nothing(
    pool, client, telegram
):
    order = await btc_order(pool)
    before = await row_counts(pool)
    params = callback(order.ref, "0.05")
    genuine_url = callback_url(client, params)
    more = {**params, "value_coin": "5"}
    form = urlencode(params).encode()
    responses = [
        await get(client, params, signature="Zm9yZ2Vk" * 43),  # forged
        await get(client, params, signature="not base64!"),
        await get(client, more, signed_url=genuine_url),  # altered after signing
        await get(client, params, key=other_key()),  # wrong key
        await get(client, params, signature=False),  # unsigned
        await post(
            client,
            form.replace(b"0.05", b"5.00"),
            content_type="application/x-www-form-urlencoded",
            signature=rsa_sign(blockbee_key(), form),
        ),
        await post(client, form, content_type="application/x-www-form-urlencoded", key=other_key()),
    ]
    assert [r.status_code for r in responses] == [401] * 7
    assert all(r.text != "*ok*" for r in responses)
    assert await row_counts(pool) == before
    assert await balance(pool, PAYER, "BTC") == (0, 0)
    assert [c.method for c in telegram.calls] == ["getMe"]


async def test_a_post_takes_our_reference_from_the_signed_body_only(pool, client):
    order = await btc_order(pool)
    before = await row_counts(pool)
    unsigned_ref = callback(None, "0.05")  # no order_ref in the body ...
    form = urlencode(unsigned_ref).encode()
    r = await post(
        client,
        form,
        content_type="application/x-www-form-urlencoded",
        query=urlencode({"order_ref": order.ref}),  # ... only on the (unsigned) URL
    )
    assert r.status_code == 422 and "order_ref" in r.json()["error"]
    assert await row_counts(pool) == before


@pytest.mark.parametrize(
    ("name", "status", "params"),
    [
        ("no uuid", 422, lambda ref: callback(ref, uuid=None)),
        ("no order_ref", 422, lambda ref: callback(None)),
        ("no value", 422, lambda ref: callback(ref, None)),
        ("no coin", 422, lambda ref: callback(ref, coin=None)),
        ("bad pending", 422, lambda ref: callback(ref, pending=2)),
        ("wrong coin", 422, lambda ref: callback(ref, coin="eth")),
        ("not a coin", 422, lambda ref: callback(ref, coin="bitcoin cash!")),
        ("negative", 422, lambda ref: callback(ref, "-0.05")),
        ("zero", 422, lambda ref: callback(ref, "0")),
        ("non-numeric", 422, lambda ref: callback(ref, "0.05btc")),
        ("infinite", 422, lambda ref: callback(ref, "Infinity")),
        ("past the satoshi", 422, lambda ref: callback(ref, "0.000000001")),
    ],
)
async def test_bad_callbacks_are_refused_and_change_nothing(pool, client, name, status, params):
    order = await btc_order(pool)
    before = await row_counts(pool)
    r = await get(client, params(order.ref))
    assert r.status_code == status, (name, r.text)
    assert r.text != "*ok*"
    assert await row_counts(pool) == before
    assert await balance(pool, PAYER, "BTC") == (0, 0)


async def test_malformed_bodies_and_repeated_parameters_are_400(pool, client):
    order = await btc_order(pool)
    before = await row_counts(pool)
    bad_json = b'{"uuid": "x", "order_ref": '
    twice = (urlencode(callback(order.ref)) + "&value_coin=9").encode()
    responses = [
        await post(client, bad_json, content_type="application/json"),
        await post(client, b"[1]", content_type="application/json"),
        await post(client, twice, content_type="application/x-www-form-urlencoded"),
        await post(client, b"\xff\xfe=1", content_type="application/x-www-form-urlencoded"),
    ]
    assert [r.status_code for r in responses] == [400] * 4
    assert await row_counts(pool) == before
