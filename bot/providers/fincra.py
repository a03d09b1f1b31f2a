"""Fincra: NGN collections (money in) and payouts (money out).

Webhook side: the `signature` header is the hex HMAC-SHA512 of the raw body, keyed with
the merchant's webhook encryption key. The envelope is `{"event": ..., "data": {...}}`;
an event's identity is `(event, data.id)`.

Client side (`FincraClient`, below): the payout request (`POST /disbursements/payouts`,
carrying `cashout_reference(id)` as its `customerReference`, which Fincra keeps unique:
it is what makes a retried payout safe), the payout look-up by that reference
(`GET /disbursements/payouts/customer-reference/{ref}`), and the payment look-up by our
reference that Fincra advises before giving value
(`GET /checkout/payments/merchant-reference/{ref}`). Authentication: the secret key in
the `api-key` header, the business id in `x-business-id` (and in a payout's `business`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx

from bot.data.enums import PaymentProvider
from bot.providers import (
    PayloadError,
    PaymentConfirmed,
    PayoutFailed,
    PayoutSucceeded,
    ProviderEvent,
    SignatureError,
    cashout_id_from_reference,
    currency_code,
    load_json_object,
    optional_text,
    parse_amount,
    required_text,
)
from bot.providers.http import (
    HttpSettings,
    ProviderHttp,
    ProviderMalformed,
    decimal_field,
    env_text,
    object_field,
    text_field,
)

PROVIDER = PaymentProvider.FINCRA
SIGNATURE_HEADER = "signature"

COLLECTION_SUCCEEDED = "collection.successful"  # into a virtual account
CHARGE_SUCCEEDED = "charge.successful"  # a checkout payment: found by our reference
MONEY_IN = frozenset({COLLECTION_SUCCEEDED, CHARGE_SUCCEEDED})
PAYOUT_SUCCEEDED = "payout.successful"
PAYOUT_FAILED = "payout.failed"
EVENTS = MONEY_IN | {PAYOUT_SUCCEEDED, PAYOUT_FAILED}


# --- webhook side -------------------------------------------------------------


def sign(key: str, body: bytes) -> str:
    """The `signature` header Fincra sends with `body`."""
    return hmac.new(key.encode(), body, hashlib.sha512).hexdigest()


def verify(key: str, body: bytes, signature: str | None) -> None:
    """SignatureError unless `signature` is the HMAC-SHA512 of the raw `body` under `key`."""
    if not signature:
        raise SignatureError("no signature header")
    given = signature.strip().lower().encode("latin-1", "replace")
    if not hmac.compare_digest(sign(key, body).encode(), given):
        raise SignatureError("the signature does not match the body")


def _our_reference(data: dict[str, Any]) -> str:
    """Our reference: `customerReference` when Fincra carries one, else `reference`."""
    ref = optional_text(data.get("customerReference")) or optional_text(data.get("reference"))
    return required_text(ref, "data.reference")


def parse(body: bytes) -> ProviderEvent:
    """The verified body as an event. PayloadError for bad JSON (400), an event we do not
    handle, a missing field, a bad currency or amount (422)."""
    envelope = load_json_object(body)
    event = required_text(envelope.get("event"), "event")
    if event not in EVENTS:
        raise PayloadError(f"unknown event {event!r}")
    data = envelope.get("data")
    if not isinstance(data, dict):
        raise PayloadError("data is missing")
    fincra_id = required_text(data.get("id"), "data.id")
    event_id = f"{event}:{fincra_id}"
    ref = _our_reference(data)

    if event in MONEY_IN:
        # What the customer paid (`amountReceived`; a checkout charge also has `amount`),
        # in the currency it landed in.
        raw_amount = data.get("amountReceived", data.get("amount"))
        raw_currency = data.get("currency", data.get("destinationCurrency"))
        return PaymentConfirmed(
            provider=PROVIDER,
            event_id=event_id,
            event_type=event,
            order_ref=ref,
            currency=currency_code(raw_currency, "data.currency"),
            amount=parse_amount(raw_amount, "data.amountReceived"),
            payload=envelope,
        )
    if event == PAYOUT_SUCCEEDED:
        return PayoutSucceeded(
            provider=PROVIDER,
            event_id=event_id,
            event_type=event,
            cashout_ref=ref,
            cashout_id=cashout_id_from_reference(ref),
            # Fincra's own reference, when ours came in customerReference; else its id.
            provider_reference=(
                optional_text(data.get("reference"))
                if optional_text(data.get("customerReference"))
                else None
            )
            or fincra_id,
            payload=envelope,
        )
    reason = (
        optional_text(data.get("reason"))
        or optional_text(data.get("failureReason"))
        or optional_text(data.get("message"))
        or "the bank transfer failed"
    )
    return PayoutFailed(
        provider=PROVIDER,
        event_id=event_id,
        event_type=event,
        cashout_ref=ref,
        cashout_id=cashout_id_from_reference(ref),
        reason=reason[:500],
        payload=envelope,
    )


# --- client side ----------------------------------------------------------------

DEFAULT_API_URL = "https://api.fincra.com"  # the sandbox: https://sandboxapi.fincra.com
PAYOUTS_PATH = "/disbursements/payouts"
PAYOUT_BY_REFERENCE_PATH = "/disbursements/payouts/customer-reference/{reference}"
PAYMENT_BY_REFERENCE_PATH = "/checkout/payments/merchant-reference/{reference}"

# A payout in one of these is over and paid nothing (a reversal gave the money back);
# any other status (processing, pending, successful, one we do not know) may pay.
PAYOUT_FAILED_STATUSES = frozenset({"failed", "reversed"})
PAYMENT_SUCCEEDED_STATUSES = frozenset({"success", "successful"})
# Not over yet: asked again later.
PAYMENT_PENDING_STATUSES = frozenset({"pending", "initiated", "processing"})

_NAIRA = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class FincraPayout:
    """A payout as Fincra knows it."""

    customer_reference: str  # ours: `CSH-<id>`
    reference: str  # Fincra's
    status: str  # lower case: processing, successful, failed, ...
    reason: str | None = None
    amount: Decimal | None = None
    data: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def failed(self) -> bool:
        return self.status in PAYOUT_FAILED_STATUSES


@dataclass(frozen=True, slots=True)
class FincraPayment:
    """A payment (checkout charge) as Fincra knows it, found by our reference."""

    merchant_reference: str  # ours: DEP-, ESC- or EXC-
    reference: str | None  # Fincra's
    status: str  # lower case: success, pending, failed, ...
    amount: Decimal | None
    currency: str | None
    data: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def succeeded(self) -> bool:
        return self.status in PAYMENT_SUCCEEDED_STATUSES


def _status(data: Mapping[str, Any], name: str) -> str:
    return text_field(data, "status", name, where="data.").lower()


class FincraClient:
    """Fincra's API: NGN payouts to bank accounts and look-ups by our reference."""

    provider = PROVIDER

    def __init__(
        self,
        *,
        api_key: str,
        business_id: str,
        api_url: str = DEFAULT_API_URL,
        settings: HttpSettings | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.business_id = business_id
        self.http = ProviderHttp(
            PROVIDER.value,
            api_url,
            headers={"api-key": api_key, "x-business-id": business_id},
            settings=settings,
            transport=transport,
        )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, settings: HttpSettings | None = None
    ) -> FincraClient:
        """From LOCKBAY_FINCRA_API_KEY, LOCKBAY_FINCRA_BUSINESS_ID and LOCKBAY_FINCRA_API_URL
        (default Fincra's live API); ValueError naming a missing one."""
        return cls(
            api_key=env_text(environ, "LOCKBAY_FINCRA_API_KEY"),
            business_id=env_text(environ, "LOCKBAY_FINCRA_BUSINESS_ID"),
            api_url=env_text(environ, "LOCKBAY_FINCRA_API_URL", DEFAULT_API_URL),
            settings=settings or HttpSettings.from_env(environ),
        )

    async def __aenter__(self) -> FincraClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def create_payout(
        self,
        *,
        reference: str,
        amount: Decimal,
        bank_code: str,
        account_number: str,
        account_name: str,
        description: str = "LockBay cashout",
    ) -> FincraPayout:
        """Sends `amount` naira to a Nigerian bank account, under our `reference` (Fincra's
        `customerReference`, unique per payout: Fincra refuses a second payout with it).

        ProviderRefused (4xx: refused), ProviderUnavailable (timeouts, 5xx) and
        ProviderMalformed (an answer we cannot read) leave it unknown whether the payout
        was made, except for a refusal: look it up with `payout_by_reference`.
        """
        if amount <= 0 or amount != amount.quantize(_NAIRA):
            raise ValueError(f"{amount} is not an amount of naira to pay out")
        names = account_name.split()
        body = {
            "business": self.business_id,
            "sourceCurrency": "NGN",
            "destinationCurrency": "NGN",
            "amount": format(amount.quantize(_NAIRA), "f"),  # Fincra takes a string
            "description": description,
            "paymentDestination": "bank_account",
            "customerReference": reference,
            "beneficiary": {
                "firstName": names[0] if names else account_name,
                "lastName": " ".join(names[1:]) or (names[0] if names else account_name),
                "accountHolderName": account_name,
                "accountNumber": account_number,
                "bankCode": bank_code,
                "type": "individual",
                "country": "NG",
            },
        }
        answer = await self.http.request("POST", PAYOUTS_PATH, body=body)
        assert answer is not None  # only look-ups answer None
        return self._payout(answer, reference)

    async def payout_by_reference(self, reference: str) -> FincraPayout | None:
        """The payout made under our `reference`; None when Fincra has none (404)."""
        path = PAYOUT_BY_REFERENCE_PATH.format(reference=quote(reference, safe=""))
        answer = await self.http.request("GET", path, not_found=True)
        return None if answer is None else self._payout(answer, reference)

    async def payment_by_reference(self, reference: str) -> FincraPayment | None:
        """The payment made to our `reference` (a checkout's merchant reference); None when
        Fincra has none (404)."""
        path = PAYMENT_BY_REFERENCE_PATH.format(reference=quote(reference, safe=""))
        answer = await self.http.request("GET", path, not_found=True)
        if answer is None:
            return None
        name = PROVIDER.value
        data = object_field(answer, "data", name)
        ours = optional_text(data.get("merchantReference")) or reference
        if ours != reference:
            raise ProviderMalformed(name, f"asked for payment {reference}, got {ours}")
        currency = optional_text(data.get("currency"))
        return FincraPayment(
            merchant_reference=ours,
            reference=optional_text(data.get("reference")),
            status=_status(data, name),
            amount=decimal_field(data, "amount", name, where="data."),
            currency=currency.upper() if currency else None,
            data=data,
        )

    def _payout(self, answer: dict[str, Any], reference: str) -> FincraPayout:
        name = PROVIDER.value
        data = object_field(answer, "data", name)
        ours = optional_text(data.get("customerReference")) or reference
        if ours != reference:
            raise ProviderMalformed(name, f"asked for payout {reference}, got {ours}")
        reason = (
            optional_text(data.get("reason"))
            or optional_text(data.get("failureReason"))
            or optional_text(data.get("message"))
        )
        return FincraPayout(
            customer_reference=ours,
            reference=text_field(data, "reference", name, where="data."),
            status=_status(data, name),
            reason=reason[:500] if reason else None,
            amount=decimal_field(data, "amountCharged", name, where="data.")
            or decimal_field(data, "amount", name, where="data."),
            data=data,
        )
