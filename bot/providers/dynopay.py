"""DynoPay: crypto payments.

Webhook side: `X-Dynopay-Signature-V2: t=<unix>,v1=<hex>` where hex is
HMAC-SHA256(secret, `t + "." + raw_body`), refused when `t` is more than 300 s from now.
`X-DynoPay-Event` names the event, `X-DynoPay-Webhook-Id` (unique per event) is its
identity. The body carries `payment_id`, `status`, `amount`, `currency`,
`base_amount`, `base_currency`, `meta_data.refId` (our reference) and `overpayment`.

The older `X-DynoPay-Signature` (an HMAC over the body re-serialised with a timestamp
added) is not supported: it depends on DynoPay's exact re-serialisation and carries no
freshness check. A request signed only that way is refused like an unsigned one.

Client side (`DynoPayClient`, below): creating a crypto payment,
`POST /user/cryptoPayment` with `x-api-key` and the wallet token as a bearer token,
carrying our reference in `meta_data.refId` (echoed back by every webhook). DynoPay
publishes no API reference; the shapes here follow its published webhook sender and
the integrations in the wild, and are kept in one place (`DynoPayClient`) to adjust.
DynoPay has no payout API we could use for cashouts (see `bot.payouts`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

from bot.data.enums import PaymentProvider
from bot.providers import (
    PayloadError,
    PaymentConfirmed,
    PaymentPending,
    ProviderEvent,
    SignatureError,
    currency_code,
    load_json_object,
    parse_amount,
    required_text,
)
from bot.providers.http import (
    HttpSettings,
    ProviderHttp,
    ProviderMalformed,
    env_text,
    object_field,
    text_field,
)

PROVIDER = PaymentProvider.DYNOPAY
SIGNATURE_HEADER = "x-dynopay-signature-v2"
LEGACY_SIGNATURE_HEADER = "x-dynopay-signature"
EVENT_HEADER = "x-dynopay-event"
WEBHOOK_ID_HEADER = "x-dynopay-webhook-id"
TOLERANCE_SECONDS = 300

PENDING = "payment.pending"
CONFIRMED = "payment.confirmed"
UNDERPAID = "payment.underpaid"
EVENTS = frozenset({PENDING, CONFIRMED, UNDERPAID})


# --- webhook side -------------------------------------------------------------


def signature_v2(secret: str, body: bytes, timestamp: int) -> str:
    """The `X-Dynopay-Signature-V2` header DynoPay sends with `body` at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(
    secret: str,
    body: bytes,
    header: str | None,
    *,
    now: float | None = None,  # float-ok: unix seconds
    tolerance: int = TOLERANCE_SECONDS,
) -> int:
    """SignatureError unless `header` is a V2 signature of the raw `body` under `secret`,
    made no more than `tolerance` seconds from `now`. Returns the signed timestamp."""
    if not header:
        raise SignatureError("no X-Dynopay-Signature-V2 header")
    timestamp: int | None = None
    candidates: list[bytes] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            if timestamp is not None or not value.isascii() or not value.isdigit():
                raise SignatureError("malformed timestamp")
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value.strip().lower().encode("latin-1", "replace"))
    if timestamp is None or not candidates:
        raise SignatureError("malformed X-Dynopay-Signature-V2 header")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureError(f"timestamp {timestamp} is more than {tolerance} s from now")
    expected = signature_v2(secret, body, timestamp).rpartition("v1=")[2].encode()
    # Every candidate is compared, so the time taken says nothing about which matched.
    matched = [hmac.compare_digest(expected, c) for c in candidates]
    if not any(matched):
        raise SignatureError("the signature does not match the body")
    return timestamp


def _meta(body: dict[str, Any]) -> dict[str, Any]:
    meta = body.get("meta_data")
    if isinstance(meta, str):  # some senders encode it as a JSON string
        try:
            meta = json.loads(meta)
        except ValueError:
            raise PayloadError("meta_data is not a JSON object") from None
    if not isinstance(meta, dict):
        raise PayloadError("meta_data.refId is missing")
    return meta


def parse(body: bytes, event_type: str | None, webhook_id: str | None) -> ProviderEvent:
    """The verified body as an event, given the event and webhook-id headers.
    PayloadError: bad JSON (400); unknown event, missing field, bad amount (422)."""
    data = load_json_object(body)
    event = required_text(event_type, "X-DynoPay-Event header")
    if event not in EVENTS:
        raise PayloadError(f"unknown event {event!r}")
    event_id = required_text(webhook_id, "X-DynoPay-Webhook-Id header", max_length=128)
    order_ref = required_text(_meta(data).get("refId"), "meta_data.refId")
    currency = currency_code(data.get("currency"))
    if event == PENDING:
        raw = data.get("amount")
        return PaymentPending(
            provider=PROVIDER,
            event_id=event_id,
            event_type=event,
            order_ref=order_ref,
            currency=currency,
            amount=parse_amount(raw, "amount") if raw not in (None, "") else None,
            payload=data,
        )
    return PaymentConfirmed(
        provider=PROVIDER,
        event_id=event_id,
        event_type=event,
        order_ref=order_ref,
        currency=currency,
        # What arrived, also for payment.underpaid: credit that, and no more.
        amount=parse_amount(data.get("amount"), "amount"),
        payload=data,
        underpaid=event == UNDERPAID,
    )


# --- client side ----------------------------------------------------------------

DEFAULT_API_URL = "https://user-api.dynopay.com/api"
PAYMENT_PATH = "/user/cryptoPayment"

# Our (currency, network) -> DynoPay's currency code.
CURRENCIES: dict[tuple[str, str], str] = {
    ("BTC", "BTC"): "BTC",
    ("ETH", "ERC20"): "ETH",
    ("LTC", "LTC"): "LTC",
    ("USDT", "TRC20"): "USDT-TRC20",
    ("USDT", "ERC20"): "USDT-ERC20",
}


@dataclass(frozen=True, slots=True)
class DynoPayPayment:
    """A payment DynoPay opened for one of our references."""

    ref: str  # ours, in meta_data.refId
    address: str  # where the payer sends the coins
    payment_id: str | None
    data: dict[str, Any] = field(default_factory=dict, repr=False)


class DynoPayClient:
    """DynoPay's API: crypto payments for our orders."""

    provider = PROVIDER

    def __init__(
        self,
        *,
        api_key: str,
        wallet_token: str,
        api_url: str = DEFAULT_API_URL,
        redirect_url: str | None = None,
        settings: HttpSettings | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.redirect_url = redirect_url
        self.http = ProviderHttp(
            PROVIDER.value,
            api_url,
            headers={"x-api-key": api_key, "authorization": f"Bearer {wallet_token}"},
            settings=settings,
            transport=transport,
        )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, settings: HttpSettings | None = None
    ) -> DynoPayClient:
        """From LOCKBAY_DYNOPAY_API_KEY, LOCKBAY_DYNOPAY_WALLET_TOKEN and
        LOCKBAY_DYNOPAY_API_URL (default DynoPay's); ValueError naming a missing one."""
        env = environ
        return cls(
            api_key=env_text(env, "LOCKBAY_DYNOPAY_API_KEY"),
            wallet_token=env_text(env, "LOCKBAY_DYNOPAY_WALLET_TOKEN"),
            api_url=env_text(env, "LOCKBAY_DYNOPAY_API_URL", DEFAULT_API_URL),
            settings=settings or HttpSettings.from_env(env),
        )

    async def __aenter__(self) -> DynoPayClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def create_payment(
        self, *, ref: str, currency: str, network: str, amount: Decimal, product: str = "LockBay"
    ) -> DynoPayPayment:
        """A payment of `amount` `currency` on `network` for our reference `ref` (sent as
        `meta_data.refId`). ValueError for a pair DynoPay is not set up for here."""
        code = CURRENCIES.get((currency, network))
        if code is None:
            raise ValueError(f"no DynoPay currency for {currency} on {network}")
        if amount <= 0:
            raise ValueError(f"{amount} is not an amount to ask for")
        body: dict[str, Any] = {
            "amount": amount,  # an exact JSON number
            "currency": code,
            "meta_data": {"product_name": product, "refId": ref},
        }
        if self.redirect_url:
            body["redirect_uri"] = self.redirect_url
        answer = await self.http.request("POST", PAYMENT_PATH, body=body)
        assert answer is not None  # only look-ups answer None
        name = PROVIDER.value
        data = object_field(answer, "data", name)
        meta = data.get("meta_data")
        if isinstance(meta, dict) and meta.get("refId") not in (None, ref):
            raise ProviderMalformed(name, f"asked for a payment for {ref}, got {meta['refId']}")
        payment_id = data.get("payment_id", data.get("id"))
        return DynoPayPayment(
            ref=ref,
            address=text_field(data, "address", name, where="data."),
            payment_id=None if payment_id is None else str(payment_id),
            data=data,
        )
