"""Fake payment providers and a fake rates source, over real HTTP on loopback.

Each fake is a Starlette app served by uvicorn in-process on a socket bound and
listening before the server starts (no wait for readiness). It records every request
and answers as the provider would (Fincra keeps its payouts by our reference and
refuses a second one with it), unless the test scripted the next answers:
`fake.then(Answer.status(503), Answer.hang(), Answer.malformed(), ...)`. A hung answer
waits for `fake.release()` (or the end of `serve`), so a client's timeout decides, not a
clock in the test.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bot.providers.http import dumps_exact, loads_exact
from bot.web import make_server

FINCRA_API_KEY = "fincra-secret-key-for-tests"
FINCRA_BUSINESS_ID = "biz-5f0c0ffee"
BLOCKBEE_API_KEY = "blockbee-api-key-for-tests"
DYNOPAY_API_KEY = "dynopay-api-key-for-tests"
DYNOPAY_WALLET_TOKEN = "dynopay-wallet-token-for-tests"
RATES_API_KEY = "rates-api-key-for-tests"


def json_response(body: Any, status: int = 200) -> Response:
    return Response(dumps_exact(body), status_code=status, media_type="application/json")


@dataclass(frozen=True)
class Recorded:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    raw: bytes
    body: Any  # the JSON body (numbers with a fraction as Decimal), or None


@dataclass(frozen=True)
class Answer:
    """A scripted answer, given instead of the fake's own to the next matching request."""

    kind: str  # "status", "hang" or "malformed"
    status: int = 200
    body: Any = None
    method: str | None = None  # only for requests with this method...
    path: str | None = None  # ...and a path starting with this

    @classmethod
    def status_code(cls, status: int, body: Any = None, **match: str) -> Answer:
        return cls("status", status, body if body is not None else {"message": "scripted"}, **match)

    @classmethod
    def hang(cls, **match: str) -> Answer:
        """Holds the answer until the test releases the fake: the client times out."""
        return cls("hang", **match)

    @classmethod
    def malformed(cls, status: int = 200, **match: str) -> Answer:
        """A 2xx whose body is not JSON."""
        return cls("malformed", status, **match)

    def matches(self, rec: Recorded) -> bool:
        return (self.method is None or rec.method == self.method) and (
            self.path is None or rec.path.startswith(self.path)
        )


class FakeProvider:
    """What every fake shares: recording, scripting, hanging."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.script: deque[Answer] = deque()
        self._released = asyncio.Event()
        self.app = Starlette(
            routes=[Route("/{path:path}", self._endpoint, methods=["GET", "POST"])]
        )

    def then(self, *answers: Answer) -> None:
        self.script.extend(answers)

    def release(self) -> None:
        """Lets every hung answer go (with a 504)."""
        self._released.set()

    def to(self, method: str, path: str) -> list[Recorded]:
        """The requests received with `method` on paths starting with `path`."""
        return [r for r in self.requests if r.method == method and r.path.startswith(path)]

    async def _endpoint(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = loads_exact(raw) if raw else None
        except ValueError:
            body = None
        query_string = request.scope.get("query_string", b"").decode()
        rec = Recorded(
            method=request.method,
            path=request.url.path,
            query=dict(parse_qsl(query_string, keep_blank_values=True)),
            headers={k.lower(): v for k, v in request.headers.items()},
            raw=raw,
            body=body,
        )
        self.requests.append(rec)
        scripted = next((a for a in self.script if a.matches(rec)), None)
        if scripted is not None:
            self.script.remove(scripted)
            if scripted.kind == "hang":
                await self._released.wait()
                return json_response({"message": "released"}, 504)
            if scripted.kind == "malformed":
                return Response(b"<html>oops</html>", scripted.status, media_type="text/html")
            return json_response(scripted.body, scripted.status)
        return await self.handle(rec)

    async def handle(self, rec: Recorded) -> Response:
        return json_response({"message": "not found"}, 404)


# --- Fincra ---------------------------------------------------------------------


class FakeFincra(FakeProvider):
    """Payouts kept by customerReference (a second one with it is refused, 409), looked
    up by it; checkout payments looked up by merchant reference from `payments`."""

    def __init__(self, payout_status: str = "processing") -> None:
        super().__init__()
        self.payout_status = payout_status
        self.payouts: dict[str, dict[str, Any]] = {}
        self.payments: dict[str, dict[str, Any]] = {}
        # Called with each payout request before it is answered (to look at our side then).
        self.before_payout: Callable[[Recorded], Awaitable[None]] | None = None
        self._ids = itertools.count(70001)

    def payout_requests(self, reference: str | None = None) -> list[Recorded]:
        return [
            r
            for r in self.to("POST", "/disbursements/payouts")
            if reference is None or (r.body or {}).get("customerReference") == reference
        ]

    def lookups(self) -> list[Recorded]:
        return self.to("GET", "/disbursements/payouts/customer-reference/")

    async def handle(self, rec: Recorded) -> Response:
        if rec.headers.get("api-key") != FINCRA_API_KEY:
            return json_response({"message": "Invalid authentication credentials"}, 401)
        if rec.method == "POST" and rec.path == "/disbursements/payouts":
            if self.before_payout is not None:
                await self.before_payout(rec)
            return self._create(rec.body or {})
        prefix = "/disbursements/payouts/customer-reference/"
        if rec.method == "GET" and rec.path.startswith(prefix):
            payout = self.payouts.get(rec.path.removeprefix(prefix))
            if payout is None:
                return json_response({"success": False, "message": "Payout not found"}, 404)
            return json_response({"success": True, "message": "Payout fetched", "data": payout})
        prefix = "/checkout/payments/merchant-reference/"
        if rec.method == "GET" and rec.path.startswith(prefix):
            payment = self.payments.get(rec.path.removeprefix(prefix))
            if payment is None:
                return json_response({"status": False, "message": "Payment not found"}, 404)
            return json_response({"status": True, "message": "Payment fetched", "data": payment})
        return await super().handle(rec)

    def _create(self, body: dict[str, Any]) -> Response:
        ref = body.get("customerReference")
        beneficiary = body.get("beneficiary") or {}
        if not ref or not body.get("amount") or not beneficiary.get("accountNumber"):
            return json_response({"success": False, "message": "Validation failed"}, 422)
        if body.get("business") != FINCRA_BUSINESS_ID:
            return json_response({"success": False, "message": "business is required"}, 422)
        if ref in self.payouts:
            return json_response({"success": False, "message": "Duplicate customer reference"}, 409)
        payout_id = next(self._ids)
        payout = {
            "id": payout_id,
            "reference": f"fcr-po-{payout_id}",
            "customerReference": ref,
            "status": self.payout_status,
            "amountCharged": Decimal(body["amount"]),
            "amountReceived": Decimal(body["amount"]),
            "sourceCurrency": body.get("sourceCurrency"),
            "destinationCurrency": body.get("destinationCurrency"),
        }
        self.payouts[ref] = payout
        return json_response({"success": True, "message": "Payout processed", "data": payout})


# --- BlockBee -------------------------------------------------------------------


class FakeBlockBee(FakeProvider):
    """`/{ticker}/create/`: one address per callback URL, as BlockBee does."""

    def __init__(self) -> None:
        super().__init__()
        self.addresses: dict[str, str] = {}

    async def handle(self, rec: Recorded) -> Response:
        if rec.method == "GET" and rec.path.endswith("/create/"):
            if rec.query.get("apikey") != BLOCKBEE_API_KEY:
                return json_response({"status": "error", "error": "Invalid API Key"}, 401)
            callback = rec.query.get("callback")
            if not callback:
                return json_response({"status": "error", "error": "callback is required"}, 400)
            address = self.addresses.setdefault(callback, f"TAddr{len(self.addresses) + 1:030d}")
            return json_response(
                {
                    "status": "success",
                    "address_in": address,
                    "address_out": "TOurColdWallet",
                    "callback_url": callback,
                    "minimum_transaction_coin": Decimal("0.000080"),
                    "priority": "default",
                }
            )
        return await super().handle(rec)


# --- DynoPay --------------------------------------------------------------------


class FakeDynoPay(FakeProvider):
    """`POST /user/cryptoPayment`: an address per payment, meta_data echoed."""

    async def handle(self, rec: Recorded) -> Response:
        if rec.method == "POST" and rec.path == "/api/user/cryptoPayment":
            if rec.headers.get("x-api-key") != DYNOPAY_API_KEY or rec.headers.get(
                "authorization"
            ) != (f"Bearer {DYNOPAY_WALLET_TOKEN}"):
                return json_response({"message": "Unauthorized"}, 401)
            body = rec.body or {}
            n = len(self.to("POST", "/api/user/cryptoPayment"))
            return json_response(
                {
                    "message": "Payment created",
                    "data": {
                        "payment_id": f"dp-{n}",
                        "address": f"0xDyno{n:035d}",
                        "amount": body.get("amount"),
                        "currency": body.get("currency"),
                        "meta_data": body.get("meta_data"),
                    },
                }
            )
        return await super().handle(rec)


# --- the rates source -------------------------------------------------------------


class FakeRates(FakeProvider):
    """`GET /v1/rates`: answers `body` (set it to change the market)."""

    def __init__(self, body: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.body = body or {}

    async def handle(self, rec: Recorded) -> Response:
        if rec.method == "GET" and rec.path == "/v1/rates":
            if rec.headers.get("x-api-key") != RATES_API_KEY:
                return json_response({"message": "Unauthorized"}, 401)
            return json_response(self.body)
        return await super().handle(rec)


# --- serving --------------------------------------------------------------------


@asynccontextmanager
async def serve_app(app: Any, *, on_exit: Callable[[], None] | None = None) -> AsyncIterator[str]:
    """An ASGI app on 127.0.0.1, on a socket listening before the server starts; yields
    its base URL. `on_exit` runs before the server is told to stop."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    host, port = sock.getsockname()
    server = make_server(app, host=host, port=port, log_level="warning")
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"http://{host}:{port}"
    finally:
        if on_exit is not None:
            on_exit()
        server.should_exit = True
        await task
        sock.close()


@asynccontextmanager
async def serve(fake: FakeProvider) -> AsyncIterator[str]:
    """The fake on 127.0.0.1; yields its base URL. Hung answers are released at the end."""
    async with serve_app(fake.app, on_exit=fake.release) as url:
        yield url
