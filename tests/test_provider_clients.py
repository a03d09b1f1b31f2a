"""The providers' outgoing clients over real HTTP against fake providers on loopback:
each happy path and the reference it carries, retries on 5xx and timeouts only, no
retry on 4xx, malformed answers refused, money exact throughout."""

from __future__ import annotations

import socket
from decimal import Decimal
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import seeding
from fake_providers import (
    BLOCKBEE_API_KEY,
    DYNOPAY_API_KEY,
    DYNOPAY_WALLET_TOKEN,
    FINCRA_API_KEY,
    FINCRA_BUSINESS_ID,
    Answer,
    FakeBlockBee,
    FakeDynoPay,
    FakeFincra,
    serve,
    serve_app,
)
from webhook_support import FINCRA_KEY, body, event_row
from webhook_support import settings as web_settings

from bot.data.enums import PaymentProvider
from bot.data.wallet import create_deposit_order, wallet_context
from bot.providers import fincra
from bot.providers.blockbee import BlockBeeClient
from bot.providers.dynopay import DynoPayClient
from bot.providers.fincra import FincraClient
from bot.providers.http import (
    HttpSettings,
    ProviderError,
    ProviderMalformed,
    ProviderRefused,
    ProviderUnavailable,
    dumps_exact,
    loads_exact,
)
from bot.web import create_app

D = Decimal
# No waiting between retries; a timeout generous enough for a loaded machine.
FAST = HttpSettings(timeout_seconds=5, max_attempts=3, backoff_seconds=0)
# For the answers that never come: the client's own timeout decides.
IMPATIENT = HttpSettings(timeout_seconds=0.2, max_attempts=3, backoff_seconds=0)
PUBLIC_URL = "https://lockbay.example/hooks"


@pytest.fixture
async def fincra_fake():
    fake = FakeFincra()
    async with serve(fake) as url:
        fake.url = url
        yield fake


def fincra_client(fake, settings: HttpSettings = FAST) -> FincraClient:
    return FincraClient(
        api_key=FINCRA_API_KEY,
        business_id=FINCRA_BUSINESS_ID,
        api_url=fake.url,
        settings=settings,
    )


async def pay(client: FincraClient, reference: str = "CSH-7", amount: str = "150000.50"):
    return await client.create_payout(
        reference=reference,
        amount=D(amount),
        bank_code="058",
        account_number="0123456789",
        account_name="ADA OBI EZE",
    )


# --- Fincra -----------------------------------------------------------------------


async def test_a_fincra_payout_carries_our_reference_and_exact_naira(fincra_fake):
    async with fincra_client(fincra_fake) as client:
        payout = await pay(client)
    [request] = fincra_fake.payout_requests()
    assert request.headers["api-key"] == FINCRA_API_KEY
    assert request.headers["x-business-id"] == FINCRA_BUSINESS_ID
    assert request.headers["content-type"] == "application/json"
    sent = request.body
    assert sent["customerReference"] == "CSH-7"  # Fincra's idempotency key: ours
    assert sent["amount"] == "150000.50"  # a string, exactly as the ledger holds it
    assert sent["business"] == FINCRA_BUSINESS_ID
    assert (sent["sourceCurrency"], sent["destinationCurrency"]) == ("NGN", "NGN")
    assert sent["paymentDestination"] == "bank_account"
    assert sent["beneficiary"] == {
        "firstName": "ADA",
        "lastName": "OBI EZE",
        "accountHolderName": "ADA OBI EZE",
        "accountNumber": "0123456789",
        "bankCode": "058",
        "type": "individual",
        "country": "NG",
    }
    assert payout.customer_reference == "CSH-7"
    assert payout.reference == "fcr-po-70001" and payout.status == "processing"
    assert payout.amount == D("150000.50") and not payout.failed


async def test_a_fincra_payout_is_found_by_our_reference_and_a_missing_one_is_none(fincra_fake):
    async with fincra_client(fincra_fake) as client:
        await pay(client, "CSH-8")
        found = await client.payout_by_reference("CSH-8")
        missing = await client.payout_by_reference("CSH-9")
    assert found is not None and found.reference == "fcr-po-70001"
    assert found.customer_reference == "CSH-8"
    assert missing is None
    # A 404 is an answer, not a failure: asked once.
    assert [r.path for r in fincra_fake.lookups()] == [
        "/disbursements/payouts/customer-reference/CSH-8",
        "/disbursements/payouts/customer-reference/CSH-9",
    ]


async def test_a_fincra_payment_is_looked_up_by_our_reference_with_its_exact_amount(fincra_fake):
    fincra_fake.payments["DEP-ABCDEFGHIJ"] = {
        "status": "success",
        "amount": D("2500.75"),  # a JSON number: must not pass through a float
        "currency": "ngn",
        "reference": "fcr-chk-1",
        "merchantReference": "DEP-ABCDEFGHIJ",
    }
    async with fincra_client(fincra_fake) as client:
        payment = await client.payment_by_reference("DEP-ABCDEFGHIJ")
        none = await client.payment_by_reference("DEP-ZZZZZZZZZZ")
    assert payment is not None and payment.succeeded
    assert payment.amount == D("2500.75") and isinstance(payment.amount, Decimal)
    assert payment.currency == "NGN" and payment.reference == "fcr-chk-1"
    assert none is None
    [first, _] = fincra_fake.to("GET", "/checkout/payments/merchant-reference/")
    assert first.headers["x-business-id"] == FINCRA_BUSINESS_ID


async def test_a_payout_is_retried_after_5xx_and_made_once(fincra_fake):
    fincra_fake.then(Answer.status_code(503), Answer.status_code(502))
    async with fincra_client(fincra_fake) as client:
        payout = await pay(client, "CSH-11")
    requests = fincra_fake.payout_requests()
    assert len(requests) == 3
    assert {r.body["customerReference"] for r in requests} == {"CSH-11"}  # the same key
    assert payout.reference == "fcr-po-70001" and list(fincra_fake.payouts) == ["CSH-11"]


async def test_5xx_on_every_attempt_is_provider_unavailable(fincra_fake):
    fincra_fake.then(*[Answer.status_code(500)] * 3)
    async with fincra_client(fincra_fake) as client:
        with pytest.raises(ProviderUnavailable) as e:
            await pay(client)
    assert e.value.status == 500 and "3 attempt" in str(e.value)
    assert len(fincra_fake.payout_requests()) == 3 and fincra_fake.payouts == {}


@pytest.mark.parametrize("status", [400, 404, 409, 422])
async def test_a_4xx_is_never_retried(fincra_fake, status):
    fincra_fake.then(Answer.status_code(status, {"message": "Account number is invalid"}))
    async with fincra_client(fincra_fake) as client:
        with pytest.raises(ProviderRefused) as e:
            await pay(client)
    assert e.value.status == status
    assert "Account number is invalid" in str(e.value)
    assert len(fincra_fake.payout_requests()) == 1


async def test_a_wrong_api_key_is_refused_at_once(fincra_fake):
    client = FincraClient(
        api_key="wrong", business_id=FINCRA_BUSINESS_ID, api_url=fincra_fake.url, settings=FAST
    )
    async with client:
        with pytest.raises(ProviderRefused) as e:
            await client.payout_by_reference("CSH-1")
    assert e.value.status == 401 and len(fincra_fake.requests) == 1


async def test_a_timeout_is_retried_and_then_answered(fincra_fake):
    fincra_fake.then(Answer.hang())
    async with fincra_client(fincra_fake, IMPATIENT) as client:
        payout = await pay(client, "CSH-12")
    assert len(fincra_fake.payout_requests("CSH-12")) == 2
    assert payout.customer_reference == "CSH-12"


async def test_timeouts_on_every_attempt_are_a_provider_error(fincra_fake):
    fincra_fake.then(*[Answer.hang()] * 3)
    async with fincra_client(fincra_fake, IMPATIENT) as client:
        with pytest.raises(ProviderUnavailable) as e:
            await pay(client, "CSH-13")
    assert isinstance(e.value, ProviderError) and "timed out" in str(e.value)
    assert len(fincra_fake.payout_requests("CSH-13")) == 3


@pytest.mark.parametrize(
    "answer, why",
    [
        (Answer.malformed(), "not JSON"),
        (Answer.status_code(200, ["a", "list"]), "not an object"),
        (Answer.status_code(200, {"success": True}), "no data"),
        (Answer.status_code(200, {"data": {"status": "processing"}}), "no data.reference"),
        (
            Answer.status_code(200, {"data": {"reference": "x", "customerReference": "CSH-99"}}),
            "asked for payout CSH-14, got CSH-99",
        ),
    ],
)
async def test_a_malformed_answer_is_a_clear_provider_error_and_not_retried(
    fincra_fake, answer, why
):
    fincra_fake.then(answer)
    async with fincra_client(fincra_fake) as client:
        with pytest.raises(ProviderMalformed) as e:
            await pay(client, "CSH-14")
    assert why in str(e.value) and str(e.value).startswith("fincra: ")
    assert len(fincra_fake.payout_requests()) == 1


async def test_a_provider_that_does_not_listen_is_unavailable_after_the_retries():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = FincraClient(
        api_key="k", business_id="b", api_url=f"http://127.0.0.1:{port}", settings=FAST
    )
    async with client:
        with pytest.raises(ProviderUnavailable, match="connection failed"):
            await client.payout_by_reference("CSH-1")


async def test_a_payout_amount_finer_than_kobo_is_refused_before_any_call(fincra_fake):
    async with fincra_client(fincra_fake) as client:
        with pytest.raises(ValueError):
            await pay(client, amount="100.005")
    assert fincra_fake.requests == []


# --- BlockBee ---------------------------------------------------------------------


@pytest.fixture
async def blockbee_fake():
    fake = FakeBlockBee()
    async with serve(fake) as url:
        fake.url = url
        yield fake


def blockbee_client(fake, settings: HttpSettings = FAST) -> BlockBeeClient:
    return BlockBeeClient(
        api_key=BLOCKBEE_API_KEY, public_url=PUBLIC_URL, api_url=fake.url, settings=settings
    )


async def test_a_blockbee_address_calls_back_with_the_order_ref(blockbee_fake):
    async with blockbee_client(blockbee_fake) as client:
        address = await client.create_address(
            order_ref="ESC-ABCDEFGHIJ", currency="USDT", network="TRC20"
        )
        again = await client.create_address(
            order_ref="ESC-ABCDEFGHIJ", currency="USDT", network="TRC20"
        )
    first, second = blockbee_fake.requests
    assert first.path == "/trc20/usdt/create/" and first.method == "GET"
    assert first.query["apikey"] == BLOCKBEE_API_KEY
    callback = urlsplit(first.query["callback"])
    assert (callback.scheme, callback.netloc, callback.path) == (
        "https",
        "lockbay.example",
        "/hooks/webhooks/blockbee",
    )
    assert dict(parse_qsl(callback.query)) == {"order_ref": "ESC-ABCDEFGHIJ"}
    assert address.callback_url == first.query["callback"]
    assert address.order_ref == "ESC-ABCDEFGHIJ" and address.address.startswith("TAddr")
    assert address.minimum == D("0.000080")
    assert again.address == address.address  # one address per order, asked twice
    assert second.query == first.query


async def test_blockbee_is_retried_on_5xx_and_its_error_status_is_a_refusal(blockbee_fake):
    blockbee_fake.then(Answer.status_code(503))
    async with blockbee_client(blockbee_fake) as client:
        ok = await client.create_address(order_ref="DEP-1", currency="BTC", network="BTC")
        blockbee_fake.then(Answer.status_code(200, {"status": "error", "error": "Coin disabled"}))
        with pytest.raises(ProviderRefused, match="Coin disabled"):
            await client.create_address(order_ref="DEP-2", currency="BTC", network="BTC")
    assert ok.address and [r.path for r in blockbee_fake.requests] == ["/btc/create/"] * 3


async def test_a_blockbee_address_for_another_order_is_malformed(blockbee_fake):
    blockbee_fake.then(
        Answer.status_code(
            200,
            {
                "status": "success",
                "address_in": "bc1qother",
                "callback_url": f"{PUBLIC_URL}/webhooks/blockbee?order_ref=DEP-OTHER",
            },
        )
    )
    async with blockbee_client(blockbee_fake) as client:
        with pytest.raises(ProviderMalformed, match="not for order DEP-MINE"):
            await client.create_address(order_ref="DEP-MINE", currency="BTC", network="BTC")


async def test_a_blockbee_timeout_everywhere_is_a_provider_error(blockbee_fake):
    blockbee_fake.then(*[Answer.hang()] * 3)
    async with blockbee_client(blockbee_fake, IMPATIENT) as client:
        with pytest.raises(ProviderUnavailable):
            await client.create_address(order_ref="DEP-3", currency="LTC", network="LTC")
    assert len(blockbee_fake.requests) == 3


async def test_blockbee_refuses_no_pair_it_lacks_without_asking(blockbee_fake):
    async with blockbee_client(blockbee_fake) as client:
        with pytest.raises(ValueError):
            await client.create_address(order_ref="DEP-4", currency="USDT", network="SOL")
    assert blockbee_fake.requests == []


# --- DynoPay ----------------------------------------------------------------------


@pytest.fixture
async def dynopay_fake():
    fake = FakeDynoPay()
    async with serve(fake) as url:
        fake.url = url
        yield fake


def dynopay_client(fake, settings: HttpSettings = FAST) -> DynoPayClient:
    return DynoPayClient(
        api_key=DYNOPAY_API_KEY,
        wallet_token=DYNOPAY_WALLET_TOKEN,
        api_url=f"{fake.url}/api",
        settings=settings,
    )


async def test_a_dynopay_payment_carries_our_reference_and_an_exact_amount(dynopay_fake):
    async with dynopay_client(dynopay_fake) as client:
        payment = await client.create_payment(
            ref="EXC-ABCDEFGHIJ", currency="BTC", network="BTC", amount=D("0.00012345")
        )
    [request] = dynopay_fake.requests
    assert request.path == "/api/user/cryptoPayment"
    assert request.headers["x-api-key"] == DYNOPAY_API_KEY
    assert request.headers["authorization"] == f"Bearer {DYNOPAY_WALLET_TOKEN}"
    assert request.body["meta_data"]["refId"] == "EXC-ABCDEFGHIJ"
    assert request.body["currency"] == "BTC"
    assert b'"amount":0.00012345' in request.raw  # a JSON number, digit for digit
    assert request.body["amount"] == D("0.00012345")
    assert payment.ref == "EXC-ABCDEFGHIJ" and payment.address.startswith("0xDyno")
    assert payment.payment_id == "dp-1"


async def test_dynopay_4xx_is_refused_once_and_5xx_retried(dynopay_fake):
    dynopay_fake.then(Answer.status_code(400, {"message": "Unsupported currency"}))
    async with dynopay_client(dynopay_fake) as client:
        with pytest.raises(ProviderRefused, match="Unsupported currency"):
            await client.create_payment(
                ref="DEP-1", currency="USDT", network="TRC20", amount=D("25")
            )
        assert len(dynopay_fake.requests) == 1
        dynopay_fake.then(Answer.status_code(500), Answer.status_code(504))
        payment = await client.create_payment(
            ref="DEP-2", currency="USDT", network="TRC20", amount=D("25")
        )
    assert len(dynopay_fake.requests) == 4
    assert dynopay_fake.requests[-1].body["currency"] == "USDT-TRC20"
    assert payment.ref == "DEP-2"


async def test_a_dynopay_answer_without_an_address_is_malformed(dynopay_fake):
    dynopay_fake.then(Answer.status_code(200, {"data": {"payment_id": "dp-9"}}))
    async with dynopay_client(dynopay_fake) as client:
        with pytest.raises(ProviderMalformed, match=r"no data\.address"):
            await client.create_payment(ref="DEP-5", currency="ETH", network="ERC20", amount=D(1))


# --- plumbing and configuration ---------------------------------------------------


def test_backoff_doubles_from_its_base_up_to_its_cap():
    s = HttpSettings(backoff_seconds=0.5, max_backoff_seconds=3)
    assert [s.backoff(n) for n in (1, 2, 3, 4)] == [0.5, 1, 2, 3]
    assert HttpSettings(backoff_seconds=0).backoff(5) == 0
    assert (
        HttpSettings(timeout_seconds=2, max_attempts=3, backoff_seconds=1).worst_case_seconds == 9
    )


def test_json_goes_out_and_comes_back_exact():
    raw = dumps_exact({"a": D("0.1"), "b": [D("12345678901234567890.123456789012345678")]})
    assert raw == b'{"a":0.1,"b":[12345678901234567890.123456789012345678]}'
    assert loads_exact(raw) == {"a": D("0.1"), "b": [D("12345678901234567890.123456789012345678")]}
    with pytest.raises(ValueError):
        loads_exact(b'{"a": NaN}')


def test_clients_are_configured_from_the_environment():
    env = {
        "LOCKBAY_FINCRA_API_KEY": "sk",
        "LOCKBAY_FINCRA_BUSINESS_ID": "biz",
        "LOCKBAY_FINCRA_API_URL": "https://sandboxapi.fincra.com",
        "LOCKBAY_HTTP_TIMEOUT_SECONDS": "2.5",
        "LOCKBAY_HTTP_MAX_ATTEMPTS": "4",
        "LOCKBAY_HTTP_BACKOFF_SECONDS": "0",
    }
    client = FincraClient.from_env(env)
    assert client.http.settings == HttpSettings(
        timeout_seconds=2.5, max_attempts=4, backoff_seconds=0
    )
    assert str(client.http._client.base_url) == "https://sandboxapi.fincra.com"
    with pytest.raises(ValueError, match="LOCKBAY_FINCRA_BUSINESS_ID"):
        FincraClient.from_env({"LOCKBAY_FINCRA_API_KEY": "sk"})
    with pytest.raises(ValueError, match="LOCKBAY_HTTP_MAX_ATTEMPTS"):
        HttpSettings.from_env({"LOCKBAY_HTTP_MAX_ATTEMPTS": "three"})
    with pytest.raises(ValueError, match="LOCKBAY_PUBLIC_URL"):
        BlockBeeClient.from_env({"LOCKBAY_BLOCKBEE_API_KEY": "k"})
    dyno = DynoPayClient.from_env(
        {"LOCKBAY_DYNOPAY_API_KEY": "k", "LOCKBAY_DYNOPAY_WALLET_TOKEN": "t"}
    )
    assert str(dyno.http._client.base_url) == "https://user-api.dynopay.com/api/"


# --- the HTTP app confirms Fincra checkout payments ---------------------------------

BUYER = 53001


def charge(ref: str, amount: Decimal, *, fincra_id: int = 91001, event="charge.successful"):
    return {
        "event": event,
        "data": {
            "id": fincra_id,
            "amount": amount,
            "amountReceived": amount,
            "currency": "NGN",
            "status": "success",
            "reference": ref,
        },
    }


@pytest.fixture
async def confirming_app(pool, fincra_fake):
    """The HTTP app with a Fincra client that confirms checkout payments at the fake."""
    client = fincra_client(fincra_fake)
    app = create_app(pool, web_settings(), fincra_client=client)
    async with client, serve_app(app) as url, httpx.AsyncClient(base_url=url) as http:

        async def post(payload) -> httpx.Response:
            raw = body(payload)
            headers = {
                "content-type": "application/json",
                "signature": fincra.sign(FINCRA_KEY, raw),
            }
            return await http.post("/webhooks/fincra", content=raw, headers=headers)

        yield post


async def deposit_order(pool) -> str:
    await seeding.user(pool, BUYER)
    order = await create_deposit_order(
        pool, telegram_id=BUYER, currency="NGN", provider=PaymentProvider.FINCRA
    )
    return order.ref


async def naira(pool) -> Decimal:
    return (await wallet_context(pool, telegram_id=BUYER)).wallet("NGN").available


def found(amount: str, status: str = "success", currency: str = "NGN") -> dict:
    return {"status": status, "amount": D(amount), "currency": currency, "reference": "fcr-c"}


async def test_a_checkout_payment_is_credited_once_fincra_confirms_it(
    pool, fincra_fake, confirming_app
):
    ref = await deposit_order(pool)
    fincra_fake.payments[ref] = found("2500.50")
    r = await confirming_app(charge(ref, D("2500.50")))
    assert r.status_code == 200 and r.json() == {"outcome": "credited"}
    assert await naira(pool) == D("2500.50")
    [lookup] = fincra_fake.requests
    assert lookup.path == f"/checkout/payments/merchant-reference/{ref}"
    assert lookup.headers["api-key"] == FINCRA_API_KEY


async def test_a_payment_fincra_does_not_know_yet_is_503_until_it_does(
    pool, fincra_fake, confirming_app
):
    ref = await deposit_order(pool)
    first = await confirming_app(charge(ref, D("1000")))
    assert first.status_code == 503 and await naira(pool) == 0
    assert await event_row(pool, "fincra", "charge.successful:91001") is None  # not claimed
    fincra_fake.payments[ref] = found("1000", status="pending")
    assert (await confirming_app(charge(ref, D("1000")))).status_code == 503
    fincra_fake.then(*[Answer.status_code(502)] * 3)  # Fincra itself is down
    assert (await confirming_app(charge(ref, D("1000")))).status_code == 503
    fincra_fake.payments[ref] = found("1000")
    retried = await confirming_app(charge(ref, D("1000")))  # Fincra's retry
    assert retried.status_code == 200 and retried.json() == {"outcome": "credited"}
    assert await naira(pool) == D("1000")


@pytest.mark.parametrize(
    "at_fincra",
    [found("1000", status="failed"), found("999.99"), found("1000", currency="USD")],
    ids=["failed", "short", "other currency"],
)
async def test_a_payment_fincra_contradicts_moves_no_money_and_is_kept_for_review(
    pool, fincra_fake, confirming_app, at_fincra
):
    ref = await deposit_order(pool)
    fincra_fake.payments[ref] = at_fincra
    r = await confirming_app(charge(ref, D("1000")))
    assert r.status_code == 200 and r.json() == {"outcome": "unconfirmed"}
    assert await naira(pool) == 0
    event = await event_row(pool, "fincra", "charge.successful:91001")
    assert event is not None and not event["processed"] and event["order_ref"] == ref


async def test_a_virtual_account_collection_needs_no_lookup(pool, fincra_fake, confirming_app):
    ref = await deposit_order(pool)
    r = await confirming_app(charge(ref, D("700"), event="collection.successful"))
    assert r.status_code == 200 and r.json() == {"outcome": "credited"}
    assert fincra_fake.requests == [] and await naira(pool) == D("700")
