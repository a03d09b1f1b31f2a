"""The HTTP app: Telegram's webhook, the payment providers' webhooks, /healthz, /metrics.

One Starlette (ASGI) application, served by uvicorn on the same asyncio loop as the
python-telegram-bot `Application` and the asyncpg pool, so a webhook awaits the
database and Telegram like any handler does, and reads the raw request bytes its
signature covers.

A provider's request goes: read the raw body (bounded) -> verify the signature on
those bytes (401, nothing read further) -> parse into a typed event (400/422) -> apply
it through `bot.data.wallet` in one transaction, exactly once per (provider, event id)
-> answer 2xx. The people concerned are told on Telegram through the outbox: the
movement's transaction wrote their notifications (migration 0012), and the sender
(bot.outbox) delivers them after the commit, with retries, whatever the provider hears.

A verified payment whose reference names no order of ours is recorded (moving no
money) for an admin, and answered 200: the provider would retry a 4xx for ever, and
no retry can make an unknown reference known.

Given a `FincraClient`, a Fincra checkout payment (`charge.successful`) is confirmed
before any value is given, as Fincra advises: the payment is looked up by our reference
and must be successful, in the event's currency, for at least the event's amount. Not
found yet, or Fincra unreachable: 503, and Fincra retries. Found failed or short: the
event is recorded for an admin, no money moves, 200. (Virtual-account collections,
`collection.successful`, cannot be looked up by our reference and are credited on the
signature alone.)
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import uvicorn
from Crypto.PublicKey import RSA
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from telegram import Update
from telegram.ext import Application

from bot import metrics, outbox
from bot.data.enums import PaymentProvider
from bot.data.errors import Invalid, NotFound
from bot.data.wallet import (
    apply_payout_event,
    credit_deposit,
    record_unmatched_event,
)
from bot.data.webhook import health_check
from bot.providers import (
    PayloadError,
    PaymentConfirmed,
    PaymentPending,
    PayoutFailed,
    PayoutSucceeded,
    ProviderEvent,
    SignatureError,
    blockbee,
    dynopay,
    fincra,
)
from bot.providers.http import ProviderError

log = logging.getLogger(__name__)

TELEGRAM_SECRET_HEADER = "x-telegram-bot-api-secret-token"


class SettingsError(ValueError):
    """The HTTP app cannot start with this configuration."""


@dataclass(frozen=True)
class WebSettings:
    """The HTTP app's secrets and limits. A provider without its secret is refused with
    503 (so that it retries once the secret is set), never accepted unverified."""

    fincra_webhook_key: str | None = field(default=None, repr=False)
    blockbee_public_key: str | None = field(default=None, repr=False)  # PEM text
    dynopay_secret: str | None = field(default=None, repr=False)
    telegram_secret_token: str | None = field(default=None, repr=False)
    # The public URL of this app's root, as BlockBee calls it (scheme, host, any path
    # prefix the proxy strips): a GET callback's signature covers the full URL. Unset,
    # the URL is rebuilt from the request (scheme and Host header).
    public_url: str | None = None
    dynopay_tolerance_seconds: int = dynopay.TOLERANCE_SECONDS
    max_body_bytes: int = 256 * 1024
    health_timeout_seconds: float = 2.0  # float-ok: seconds

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WebSettings:
        """From LOCKBAY_FINCRA_WEBHOOK_KEY, LOCKBAY_BLOCKBEE_PUBLIC_KEY (PEM text) or
        LOCKBAY_BLOCKBEE_PUBLIC_KEY_FILE, LOCKBAY_DYNOPAY_SECRET,
        LOCKBAY_TELEGRAM_SECRET_TOKEN and LOCKBAY_PUBLIC_URL. SettingsError for a
        BlockBee key that does not load."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            return env.get(name, "").strip() or None

        pem = get("LOCKBAY_BLOCKBEE_PUBLIC_KEY")
        pem_file = get("LOCKBAY_BLOCKBEE_PUBLIC_KEY_FILE")
        if pem and pem_file:
            raise SettingsError(
                "Set LOCKBAY_BLOCKBEE_PUBLIC_KEY or LOCKBAY_BLOCKBEE_PUBLIC_KEY_FILE, not both."
            )
        if pem_file:
            try:
                pem = Path(pem_file).read_text(encoding="ascii")
            except (OSError, ValueError) as e:
                raise SettingsError(f"LOCKBAY_BLOCKBEE_PUBLIC_KEY_FILE: {e}") from None
        if pem and "\n" not in pem and "\\n" in pem:
            pem = pem.replace("\\n", "\n")  # a PEM kept on one line of an env file
        settings = cls(
            fincra_webhook_key=get("LOCKBAY_FINCRA_WEBHOOK_KEY"),
            blockbee_public_key=pem,
            dynopay_secret=get("LOCKBAY_DYNOPAY_SECRET"),
            telegram_secret_token=get("LOCKBAY_TELEGRAM_SECRET_TOKEN"),
            public_url=get("LOCKBAY_PUBLIC_URL"),
        )
        settings.blockbee_key()
        return settings

    def blockbee_key(self) -> RSA.RsaKey | None:
        if not self.blockbee_public_key:
            return None
        try:
            return blockbee.load_public_key(self.blockbee_public_key)
        except (ValueError, IndexError, TypeError) as e:
            raise SettingsError(f"BlockBee's public key does not load: {e}") from None


# --- responses ----------------------------------------------------------------


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def metrics_response() -> Response:
    """GET /metrics: every metric of `bot.metrics`, in Prometheus' text format."""
    return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)


def _counting_refusals(provider: str, endpoint: Callable) -> Callable:
    """`endpoint`, its answers of 400 and above counted per provider and status."""

    @functools.wraps(endpoint)
    async def counted(request: Request) -> Response:
        try:
            response = await endpoint(request)
        except Exception:
            metrics.webhook_rejected(provider, 500)
            raise
        if response.status_code >= 400:
            metrics.webhook_rejected(provider, response.status_code)
        return response

    return counted


class _TooLarge(Exception):
    pass


class _NotConfirmed(Exception):
    """The provider cannot confirm the payment yet: answer 503, and it retries."""


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _request_url(request: Request, public_url: str | None) -> bytes:
    """The full URL the caller requested, as it sent it (raw path and query string)."""
    scope = request.scope
    path: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope.get("query_string", b"")
    if public_url:
        base = public_url.rstrip("/").encode()
    else:
        host = request.headers.get("host", "").encode("latin-1")
        base = scope["scheme"].encode() + b"://" + host
    return base + path + (b"?" + query if query else b"")


# --- the application ------------------------------------------------------------


class _Web:
    """The endpoints, sharing the pool, the settings and the bot."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: WebSettings,
        application: Application | None,
        fincra_client: fincra.FincraClient | None = None,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.application = application
        self.blockbee_key = settings.blockbee_key()
        self.fincra_client = fincra_client

    # -- providers --

    async def fincra(self, request: Request) -> Response:
        key = self.settings.fincra_webhook_key

        def read(body: bytes) -> ProviderEvent:
            fincra.verify(key, body, request.headers.get(fincra.SIGNATURE_HEADER))
            return fincra.parse(body)

        return await self._webhook(request, "fincra", key is not None, read)

    async def blockbee(self, request: Request) -> Response:
        key = self.blockbee_key

        def read(body: bytes) -> ProviderEvent:
            signature = request.headers.get(blockbee.SIGNATURE_HEADER)
            if request.method == "GET":
                blockbee.verify(key, _request_url(request, self.settings.public_url), signature)
                return blockbee.parse(blockbee.query_params(request.scope["query_string"]))
            blockbee.verify(key, body, signature)
            return blockbee.parse(blockbee.body_params(body, request.headers.get("content-type")))

        return await self._webhook(
            request, "blockbee", key is not None, read, ok=lambda _: PlainTextResponse("*ok*")
        )

    async def dynopay(self, request: Request) -> Response:
        secret = self.settings.dynopay_secret

        def read(body: bytes) -> ProviderEvent:
            header = request.headers.get(dynopay.SIGNATURE_HEADER)
            if header is None and dynopay.LEGACY_SIGNATURE_HEADER in request.headers:
                raise SignatureError("only the legacy signature, which is not supported")
            dynopay.verify(secret, body, header, tolerance=self.settings.dynopay_tolerance_seconds)
            return dynopay.parse(
                body,
                request.headers.get(dynopay.EVENT_HEADER),
                request.headers.get(dynopay.WEBHOOK_ID_HEADER),
            )

        return await self._webhook(request, "dynopay", secret is not None, read)

    async def _webhook(
        self,
        request: Request,
        name: str,
        configured: bool,
        read: Callable[[bytes], ProviderEvent],
        ok: Callable[[str], Response] = lambda outcome: JSONResponse({"outcome": outcome}),
    ) -> Response:
        if not configured:
            log.error("%s webhook refused: its secret is not configured", name)
            return _error(503, f"{name} webhooks are not configured")
        try:
            body = await _read_body(request, self.settings.max_body_bytes)
        except _TooLarge:
            return _error(413, "the body is too large")
        try:
            event = read(body)  # the signature first, on the raw bytes; then the parsing
        except SignatureError as e:
            log.warning("%s webhook refused (401): %s", name, e)
            return _error(401, "invalid signature")
        except PayloadError as e:
            log.warning("%s webhook refused (%s): %s", name, e.status, e.reason)
            return _error(e.status, e.reason)
        try:
            outcome = await self._apply(event)
        except Invalid as e:  # the order is in another currency, or an impossible amount
            log.warning("%s event %s refused (422): %s", name, event.event_id, e)
            return _error(422, str(e))
        except _NotConfirmed as e:  # the provider will retry; nothing moved
            log.warning("%s event %s not confirmed yet (503): %s", name, event.event_id, e)
            return _error(503, f"the payment is not confirmed yet: {e}")
        except Exception:
            log.exception("%s event %s failed; the provider will retry", name, event.event_id)
            return _error(500, "internal error")
        log.info("%s event %s: %s", name, event.event_id, outcome)
        if outcome in ("credited", "settled", "failed"):
            await outbox.wake(self.application)  # its notifications were committed with it
        return ok(outcome)

    async def _apply(self, event: ProviderEvent) -> str:
        """Moves the event's money; its outcome."""
        if isinstance(event, PaymentPending):
            return "pending"
        if isinstance(event, PaymentConfirmed):
            return await self._payment(event)
        return await self._payout(event)

    async def _payment(self, event: PaymentConfirmed) -> str:
        if not await self._confirmed(event):
            return "unconfirmed"
        try:
            credit = await credit_deposit(
                self.pool,
                provider=event.provider,
                event_id=event.event_id,
                order_ref=event.order_ref,
                currency=event.currency,
                amount=event.amount,
                event_type=event.event_type,
                payload=event.payload,
            )
        except NotFound as e:
            await self._unmatched(event, event.order_ref, e)
            return "unmatched"
        if credit.duplicate:
            return "duplicate"
        if event.underpaid and not (credit.difference is not None and credit.difference < 0):
            # The ledger's own reckoning stands; the disagreement is worth a look.
            log.warning(
                "%s calls event %s underpaid, but %s %s covers what %s still asked for",
                event.provider,
                event.event_id,
                event.amount,
                event.currency,
                event.order_ref,
            )
        if credit.difference:
            log.warning(
                "%s event %s for %s: %s %s arrived, %s expected (difference %s)",
                event.provider,
                event.event_id,
                event.order_ref,
                event.amount,
                event.currency,
                credit.expected_amount,
                credit.difference,
            )
        return "credited"

    async def _confirmed(self, event: PaymentConfirmed) -> bool:
        """True when the payment may be credited: confirmed at Fincra for a checkout
        charge (given a Fincra client), or needing no confirmation. False when Fincra
        says otherwise (the event is then on record for an admin). _NotConfirmed when
        there is no answer yet."""
        client = self.fincra_client
        if (
            client is None
            or event.provider is not PaymentProvider.FINCRA
            or event.event_type != fincra.CHARGE_SUCCEEDED
        ):
            return True
        try:
            payment = await client.payment_by_reference(event.order_ref)
        except ProviderError as e:
            raise _NotConfirmed(str(e)) from None
        if payment is None:
            raise _NotConfirmed(f"Fincra has no payment {event.order_ref}")
        why = None
        if not payment.succeeded:
            if payment.status in fincra.PAYMENT_PENDING_STATUSES:
                raise _NotConfirmed(f"Fincra's payment {event.order_ref} is {payment.status}")
            why = f"Fincra says the payment is {payment.status}"
        elif payment.currency is not None and payment.currency != event.currency:
            why = f"Fincra's payment is in {payment.currency}, the event in {event.currency}"
        elif payment.amount is not None and payment.amount < event.amount:
            why = f"Fincra confirms {payment.amount}, the event says {event.amount}"
        if why is None:
            return True
        await record_unmatched_event(
            self.pool,
            provider=event.provider,
            event_id=event.event_id,
            event_type=event.event_type,
            order_ref=event.order_ref,
            payload=event.payload,
        )
        log.error(
            "%s event %s for %s not confirmed (%s): recorded for review, no money moved",
            event.provider,
            event.event_id,
            event.order_ref,
            why,
        )
        return False

    async def _payout(self, event: PayoutSucceeded | PayoutFailed) -> str:
        if event.cashout_id is None:
            await self._unmatched(event, event.cashout_ref, "not a cashout reference")
            return "unmatched"
        succeeded = isinstance(event, PayoutSucceeded)
        result = await apply_payout_event(
            self.pool,
            provider=event.provider,
            event_id=event.event_id,
            event_type=event.event_type,
            cashout_id=event.cashout_id,
            succeeded=succeeded,
            provider_reference=event.provider_reference if succeeded else None,
            reason=None if succeeded else event.reason,
            order_ref=event.cashout_ref,
            payload=event.payload,
        )
        if result.duplicate:
            return "duplicate"
        if isinstance(result.refused, NotFound):
            log.error("%s event %s names no cashout of ours", event.provider, event.event_id)
            return "unmatched"
        if result.refused is not None:
            # Already settled or failed: a later, contrary word from the provider (a
            # reversal after success) needs a person; the event is on record.
            log.error(
                "%s event %s for cashout %s changed nothing: %s",
                event.provider,
                event.event_id,
                event.cashout_id,
                result.refused,
            )
            return "ignored"
        return "settled" if succeeded else "failed"

    async def _unmatched(self, event: ProviderEvent, ref: str, why: object) -> None:
        await record_unmatched_event(
            self.pool,
            provider=event.provider,
            event_id=event.event_id,
            event_type=event.event_type,
            order_ref=ref,
            payload=event.payload,
        )
        log.error(
            "%s event %s names %r, none of ours (%s): recorded for review, no money moved",
            event.provider,
            event.event_id,
            ref,
            why,
        )

    # -- Telegram --

    async def telegram(self, request: Request) -> Response:
        if self.application is None:
            return _error(404, "no Telegram bot is served here")
        secret = self.settings.telegram_secret_token
        if not secret:
            log.error("Telegram update refused: LOCKBAY_TELEGRAM_SECRET_TOKEN is not set")
            return _error(503, "the Telegram webhook is not configured")
        given = request.headers.get(TELEGRAM_SECRET_HEADER, "").encode("latin-1")
        if not hmac.compare_digest(given, secret.encode()):
            log.warning("Telegram update refused: wrong or missing secret token")
            return _error(401, "invalid secret token")
        try:
            body = await _read_body(request, self.settings.max_body_bytes)
        except _TooLarge:
            return _error(413, "the body is too large")
        try:
            data = json.loads(body)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            update = Update.de_json(data, self.application.bot)
        except Exception as e:
            return _error(400, f"not a Telegram update: {e}")
        if update is None:
            return _error(400, "not a Telegram update")
        await self.application.update_queue.put(update)
        return JSONResponse({"ok": True})

    # -- operations --

    async def healthz(self, request: Request) -> Response:
        try:
            async with asyncio.timeout(self.settings.health_timeout_seconds):
                healthy = await health_check(self.pool)
        except Exception as e:
            log.warning("health check failed: %r", e)
            healthy = False
        if healthy:
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "unavailable"}, status_code=503)

    async def metrics(self, request: Request) -> Response:
        return metrics_response()


def create_app(
    pool: asyncpg.Pool,
    settings: WebSettings,
    application: Application | None = None,
    *,
    fincra_client: fincra.FincraClient | None = None,
) -> Starlette:
    """The HTTP app on `pool`, with `settings`; with `application`, it also takes
    Telegram's updates (into its update queue: the application must be started) and
    wakes its outbox sender after a payment; with `fincra_client`, Fincra checkout payments are
    confirmed at Fincra before they are credited. SettingsError for a BlockBee key that
    does not load.
    """
    web = _Web(pool, settings, application, fincra_client)
    routes = [
        Route("/telegram", _counting_refusals("telegram", web.telegram), methods=["POST"]),
        Route("/webhooks/fincra", _counting_refusals("fincra", web.fincra), methods=["POST"]),
        Route(
            "/webhooks/blockbee",
            _counting_refusals("blockbee", web.blockbee),
            methods=["GET", "POST"],
        ),
        Route("/webhooks/dynopay", _counting_refusals("dynopay", web.dynopay), methods=["POST"]),
        Route("/healthz", web.healthz, methods=["GET"]),
        Route("/metrics", web.metrics, methods=["GET"]),
    ]
    app = Starlette(routes=routes)
    app.state.web = web
    return app


def make_server(
    app: Starlette, *, host: str = "127.0.0.1", port: int = 8080, **options: Any
) -> uvicorn.Server:
    """uvicorn for `app`, to run on the caller's loop: `await server.serve()` (or
    `serve(sockets=[...])`), stopped by `server.should_exit = True`. No lifespan: the
    caller opens and closes the pool and the bot. Logging is left to the caller's set-up;
    X-Forwarded-* are trusted from FORWARDED_ALLOW_IPS (default 127.0.0.1)."""
    options.setdefault("log_config", None)
    options.setdefault("proxy_headers", True)
    config = uvicorn.Config(app, host=host, port=port, lifespan="off", **options)
    return uvicorn.Server(config)
