"""BlockBee: crypto deposit addresses whose payments call us back.

Webhook side: the `x-ca-signature` header is a base64 RSA-SHA256 (PKCS#1 v1.5)
signature by BlockBee's key, checked with its published public key (configured, never
fetched at request time). A GET callback signs the full request URL, a POST callback
its raw body. Each callback carries a `uuid` (its identity), `pending` (1 = seen in the
mempool, 0 = confirmed), `coin`, `value_coin` and our own callback URL parameters, of
which `order_ref` names the order. Answer 200 `*ok*`, or BlockBee calls again.

Only what the signature covers is read: for a POST, the body's parameters, never the
(unsigned) query string.

Client side (`BlockBeeClient`, below): creating a deposit address,
`GET /{ticker}/create/?apikey=...&callback=...`, whose callback URL carries our
`order_ref`: BlockBee answers the same address again for the same callback URL, so a
retried creation gives the order one address. BlockBee's payout API (payout requests)
takes no reference of ours and cannot be looked up by one, so cashouts do not use it
(see `bot.payouts`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
from Crypto.Hash import SHA256
from Crypto.PublicKey import RSA
from Crypto.Signature import pkcs1_15

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
    ProviderRefused,
    decimal_field,
    env_text,
    text_field,
)

PROVIDER = PaymentProvider.BLOCKBEE
SIGNATURE_HEADER = "x-ca-signature"
ORDER_REF_PARAM = "order_ref"  # our parameter on the callback URL
OK_BODY = b"*ok*"


# --- webhook side -------------------------------------------------------------


def load_public_key(pem: str) -> RSA.RsaKey:
    """BlockBee's public key from its PEM text; ValueError when it is not an RSA public key."""
    key = RSA.import_key(pem)
    if key.has_private():
        raise ValueError("configure BlockBee's public key, not a private key")
    return key


def verify(public_key: RSA.RsaKey, signed: bytes, signature: str | None) -> None:
    """SignatureError unless `signature` (base64) is BlockBee's signature of `signed`: the
    full request URL for a GET callback, the raw body for a POST one."""
    if not signature:
        raise SignatureError("no x-ca-signature header")
    try:
        raw = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("the signature is not base64") from None
    try:
        pkcs1_15.new(public_key).verify(SHA256.new(signed), raw)
    except (ValueError, TypeError):
        raise SignatureError("the signature does not match") from None


def _unique(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, value in pairs:
        if key in params:
            raise PayloadError(f"parameter {key!r} given twice", status=400)
        params[key] = value
    return params


def query_params(query_string: bytes) -> dict[str, str]:
    """A GET callback's parameters, from the raw (signed) query string."""
    try:
        text = query_string.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
    except ValueError as e:  # UnicodeDecodeError included
        raise PayloadError(f"the parameters are malformed: {e}", status=400) from None
    return _unique(pairs)


def body_params(body: bytes, content_type: str | None) -> dict[str, Any]:
    """A POST callback's parameters, from its (signed) body: JSON (`json=1`) or a form."""
    if (content_type or "").split(";")[0].strip().lower() == "application/json":
        return load_json_object(body)
    return query_params(body)


def parse(params: dict[str, Any]) -> ProviderEvent:
    """The verified parameters as an event: PaymentPending for `pending=1`, PaymentConfirmed
    for `pending=0` (`value_coin`, what the payer sent, in `coin`). PayloadError (422) for
    a missing or bad field."""
    event_id = required_text(params.get("uuid"), "uuid")
    order_ref = required_text(params.get(ORDER_REF_PARAM), ORDER_REF_PARAM)
    pending = str(params.get("pending", "")).strip()
    if pending not in ("0", "1"):
        raise PayloadError("pending must be 0 or 1")
    currency = currency_code(params.get("coin"), "coin")
    if pending == "1":
        value = params.get("value_coin")
        return PaymentPending(
            provider=PROVIDER,
            event_id=event_id,
            event_type="pending",
            order_ref=order_ref,
            currency=currency,
            amount=parse_amount(value, "value_coin") if value not in (None, "") else None,
            payload=params,
        )
    return PaymentConfirmed(
        provider=PROVIDER,
        event_id=event_id,
        event_type="confirmed",
        order_ref=order_ref,
        currency=currency,
        amount=parse_amount(params.get("value_coin"), "value_coin"),
        payload=params,
    )


# --- client side ----------------------------------------------------------------

DEFAULT_API_URL = "https://api.blockbee.io"
WEBHOOK_PATH = "/webhooks/blockbee"  # where bot.web takes BlockBee's callbacks

# Our (currency, network) -> BlockBee's ticker, as it goes in the path.
TICKERS: dict[tuple[str, str], str] = {
    ("BTC", "BTC"): "btc",
    ("ETH", "ERC20"): "eth",
    ("LTC", "LTC"): "ltc",
    ("USDT", "TRC20"): "trc20/usdt",
    ("USDT", "ERC20"): "erc20/usdt",
    ("USDT", "BEP20"): "bep20/usdt",
}


@dataclass(frozen=True, slots=True)
class DepositAddress:
    """Where the payer sends coins for one order; BlockBee calls `callback_url` back."""

    order_ref: str
    address: str  # BlockBee's address_in: what the payer pays to
    callback_url: str
    minimum: Decimal | None = None  # below this, BlockBee ignores a payment
    data: dict[str, Any] = field(default_factory=dict, repr=False)


def callback_url(public_url: str, order_ref: str) -> str:
    """Our webhook's URL for one order: `order_ref` in its query string comes back with
    every callback, under the signature."""
    scheme, netloc, path, query, _ = urlsplit(public_url.rstrip("/") + WEBHOOK_PATH)
    extra = urlencode({ORDER_REF_PARAM: order_ref})
    return urlunsplit((scheme, netloc, path, f"{query}&{extra}" if query else extra, ""))


class BlockBeeClient:
    """BlockBee's API: deposit addresses whose payments call our webhook back."""

    provider = PROVIDER

    def __init__(
        self,
        *,
        api_key: str,
        public_url: str,
        api_url: str = DEFAULT_API_URL,
        settings: HttpSettings | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._api_key = api_key
        self.public_url = public_url
        self.http = ProviderHttp(PROVIDER.value, api_url, settings=settings, transport=transport)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, settings: HttpSettings | None = None
    ) -> BlockBeeClient:
        """From LOCKBAY_BLOCKBEE_API_KEY, LOCKBAY_PUBLIC_URL (this app's public root) and
        LOCKBAY_BLOCKBEE_API_URL (default BlockBee's); ValueError naming a missing one."""
        return cls(
            api_key=env_text(environ, "LOCKBAY_BLOCKBEE_API_KEY"),
            public_url=env_text(environ, "LOCKBAY_PUBLIC_URL"),
            api_url=env_text(environ, "LOCKBAY_BLOCKBEE_API_URL", DEFAULT_API_URL),
            settings=settings or HttpSettings.from_env(environ),
        )

    async def __aenter__(self) -> BlockBeeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def create_address(
        self, *, order_ref: str, currency: str, network: str, pending: bool = True
    ) -> DepositAddress:
        """A deposit address for the order `order_ref` in `currency` on `network`.
        `pending` asks BlockBee to call back for payments still in the mempool too (which
        move no money). ValueError for a pair BlockBee is not set up for here."""
        ticker = TICKERS.get((currency, network))
        if ticker is None:
            raise ValueError(f"no BlockBee ticker for {currency} on {network}")
        url = callback_url(self.public_url, order_ref)
        params = {"apikey": self._api_key, "callback": url, "pending": "1" if pending else "0"}
        answer = await self.http.request("GET", f"/{ticker}/create/", params=params)
        assert answer is not None  # only look-ups answer None
        name = PROVIDER.value
        if str(answer.get("status", "")).lower() == "error":
            said = answer.get("error") or answer.get("message") or "no reason given"
            raise ProviderRefused(name, f"address creation refused: {str(said)[:300]}")
        echoed = answer.get("callback_url")
        if isinstance(echoed, str) and echoed:
            # Compared by our parameter, not byte for byte: BlockBee may re-encode the URL.
            refs = [v for k, v in parse_qsl(urlsplit(echoed).query) if k == ORDER_REF_PARAM]
            if refs != [order_ref]:
                raise ProviderMalformed(name, f"the address is not for order {order_ref}")
        return DepositAddress(
            order_ref=order_ref,
            address=text_field(answer, "address_in", name),
            callback_url=url,
            minimum=decimal_field(answer, "minimum_transaction_coin", name),
            data=answer,
        )
