"""`lockbay run`'s loop in webhook mode: the bot and the HTTP app together, over real HTTP."""

from __future__ import annotations

import asyncio
import json
import socket

import httpx
import seeding

from bot import cache, outbox
from bot.app import build_application, serve
from bot.handlers.ui import Settings
from bot.offline import BOT_ID, FakeTelegram

SECRET = "run-test-secret"


def _update(user_id: int, text: str) -> dict:
    return {
        "update_id": 1,
        "message": {
            "message_id": 1,
            "date": 0,
            "chat": {"id": user_id, "type": "private"},
            "from": {"id": user_id, "is_bot": False, "first_name": "Ada"},
            "text": text,
            "entities": [{"type": "bot_command", "offset": 0, "length": len(text)}],
        },
    }


async def test_webhook_mode_registers_the_webhook_and_answers_updates(
    pool, conn, database_url, monkeypatch
):
    monkeypatch.setenv("LOCKBAY_TELEGRAM_SECRET_TOKEN", SECRET)
    # Configured providers switch their jobs on (nothing is called before the first run).
    monkeypatch.setenv("LOCKBAY_RATES_URL", "http://127.0.0.1:9/rates")
    monkeypatch.setenv("LOCKBAY_FINCRA_API_KEY", "key")
    monkeypatch.setenv("LOCKBAY_FINCRA_BUSINESS_ID", "business")
    await seeding.user(conn, 301, "Ada")
    telegram = FakeTelegram()
    # Ada is a configured admin: start-up marks her so in the database too.
    app = build_application(
        token="1:T",
        settings=Settings(admin_ids=frozenset({301})),
        pool=pool,
        database_url=database_url,
        request=telegram,
        persistent=True,
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    stop = asyncio.Event()
    running = asyncio.create_task(
        serve(app, webhook_url="https://bot.example/", sockets=[sock], stop=stop)
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            forged = await client.post(
                "/telegram",
                json=_update(301, "/menu"),
                headers={"X-Telegram-Bot-Api-Secret-Token": "guess"},
            )
            answered = telegram.next_call("sendMessage")
            accepted = await client.post(
                "/telegram",
                json=_update(301, "/menu"),
                headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
            )
            reply = await asyncio.wait_for(answered, timeout=30)
            health = await client.get("/healthz")
            jobs = {job.name for job in app.job_queue.jobs()}
            listening = {cache.BOT_DATA_KEY, outbox.BOT_DATA_SENDER} <= set(app.bot_data)
    finally:
        stop.set()
        await running

    assert forged.status_code == 401
    assert accepted.status_code == 200
    assert int(reply.params["chat_id"]) == 301 and "Hello, Ada" in reply.params["text"]
    assert "admin:open" in json.dumps(reply.params["reply_markup"])
    assert health.status_code == 200
    webhook = next(c for c in telegram.calls if c.method == "setWebhook")
    assert webhook.params["url"] == "https://bot.example/telegram"
    assert webhook.params["secret_token"] == SECRET
    assert {"exchange-rates", "cashout-payouts", "escrow-auto-release"} <= jobs, jobs
    assert listening  # the invalidation listener and the outbox sender ran
    assert outbox.BOT_DATA_SENDER not in app.bot_data  # and were stopped
    assert not app.running
    assert app.bot.id == BOT_ID
