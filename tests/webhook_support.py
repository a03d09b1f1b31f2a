"""The HTTP app under test, over real HTTP on loopback: uvicorn in-process on a socket of
our own (bound and listening before the server starts, so no wait for readiness), httpx
as the caller; plus the providers' signing, the tests' own keys and an offline bot."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from functools import cache
from typing import Any

import httpx
from Crypto.Hash import SHA256
from Crypto.PublicKey import RSA
from Crypto.Signature import pkcs1_15
from telegram.ext import Application, ApplicationBuilder

from bot.db import queries
from bot.offline import FakeTelegram
from bot.web import WebSettings, create_app, make_server

FINCRA_KEY = "fincra-webhook-key-for-tests"
DYNOPAY_SECRET = "dynopay-secret-for-tests"
TELEGRAM_TOKEN = "telegram-secret-token_for-tests"


@cache
def blockbee_key() -> RSA.RsaKey:
    """The tests' stand-in for BlockBee's key pair (generated once per run)."""
    return RSA.generate(2048)


@cache
def other_key() -> RSA.RsaKey:
    """A key that is not BlockBee's."""
    return RSA.generate(2048)


def settings(**overrides: Any) -> WebSettings:
    values: dict[str, Any] = {
        "fincra_webhook_key": FINCRA_KEY,
        "blockbee_public_key": blockbee_key().public_key().export_key().decode(),
        "dynopay_secret": DYNOPAY_SECRET,
        "telegram_secret_token": TELEGRAM_TOKEN,
    }
    values.update(overrides)
    return WebSettings(**values)


def rsa_sign(key: RSA.RsaKey, data: bytes) -> str:
    return base64.b64encode(pkcs1_15.new(key).sign(SHA256.new(data))).decode()


def body(payload: dict[str, Any]) -> bytes:
    """JSON bytes as a provider sends them, Decimals written as JSON numbers, exactly."""
    numbers: dict[str, str] = {}

    def default(value: Any) -> Any:
        if isinstance(value, Decimal):
            token = f"__number_{len(numbers)}__"
            numbers[token] = str(value)
            return token
        raise TypeError(type(value).__name__)

    text = json.dumps(payload, default=default)
    for token, number in numbers.items():
        text = text.replace(f'"{token}"', number)
    return text.encode()


@asynccontextmanager
async def serving(
    pool, web_settings: WebSettings | None = None, application: Application | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """The app on 127.0.0.1, and a client for it (base URL set)."""
    app = create_app(pool, web_settings or settings(), application)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    host, port = sock.getsockname()
    server = make_server(app, host=host, port=port, log_level="warning")
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=60) as client:
            yield client
    finally:
        server.should_exit = True
        await task
        sock.close()


@asynccontextmanager
async def offline_bot() -> AsyncIterator[tuple[Application, FakeTelegram]]:
    """A minimal python-telegram-bot Application talking to the in-process Telegram."""
    telegram = FakeTelegram()
    app = (
        ApplicationBuilder()
        .token("123456:TEST")
        .request(telegram)
        .get_updates_request(telegram)
        .updater(None)
        .build()
    )
    await app.initialize()
    try:
        yield app, telegram
    finally:
        await app.shutdown()


def texts_to(telegram: FakeTelegram, chat_id: int) -> list[str]:
    return [m.text for m in telegram.sent_to(chat_id)]


async def row_counts(conn) -> dict[str, int]:
    """Every row a movement writes, to prove a refused request wrote none."""
    return dict(await queries.ledger_test_row_counts(conn))


async def event_row(conn, provider: str, event_id: str):
    return await queries.webhook_test_event(conn, provider=provider, event_id=event_id)
