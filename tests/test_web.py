"""The HTTP app over real HTTP: /healthz against a live and a dead database, /metrics,
the Telegram webhook's secret token, configuration from the environment, refusals
common to every provider endpoint."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
import pytest
from telegram import Update
from telegram.ext import MessageHandler, filters
from webhook_support import (
    FINCRA_KEY,
    TELEGRAM_TOKEN,
    blockbee_key,
    offline_bot,
    row_counts,
    serving,
    settings,
)

from bot import db
from bot.providers import fincra
from bot.web import TELEGRAM_SECRET_HEADER, SettingsError, WebSettings

# --- /healthz -------------------------------------------------------------------


async def test_healthz_is_200_while_the_database_answers(pool):
    async with serving(pool) as client:
        r = await client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


@pytest.fixture
async def doomed_database(server_dsn):
    """A database of the test's own, and a function that drops it under its users."""
    name = f"lockbay_doomed_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_dsn("postgres"))
    await admin.execute(f'create database "{name}"')

    async def drop() -> None:
        await admin.execute(f'drop database if exists "{name}" with (force)')

    try:
        yield server_dsn(name), drop
    finally:
        await drop()
        await admin.close()


async def test_healthz_is_503_once_the_database_is_gone(doomed_database):
    dsn, drop = doomed_database
    pool = await db.create_pool(dsn, min_size=1, max_size=2)
    try:
        async with serving(pool) as client:
            assert (await client.get("/healthz")).status_code == 200
            await drop()  # terminates the pool's connections; reconnecting finds no database
            first = await client.get("/healthz")
            second = await client.get("/healthz")
    finally:
        pool.terminate()
    assert first.status_code == 503 and first.json() == {"status": "unavailable"}
    assert second.status_code == 503


async def test_healthz_is_503_with_a_closed_pool(database_url):
    pool = await db.create_pool(database_url, min_size=1, max_size=2)
    async with serving(pool) as client:
        assert (await client.get("/healthz")).status_code == 200
        await pool.close()
        r = await client.get("/healthz")
    assert r.status_code == 503


# --- /metrics -------------------------------------------------------------------


async def test_metrics_are_prometheus_text(pool):
    async with serving(pool) as client:
        r = await client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert "# TYPE lockbay_db_round_trips_total counter" in r.text


# --- /telegram ------------------------------------------------------------------


def update_payload(text: str = "/start", user_id: int = 4242) -> dict:
    user = {"id": user_id, "is_bot": False, "first_name": "Ada"}
    return {
        "update_id": 987654,
        "message": {
            "message_id": 11,
            "date": 1_700_000_000,
            "chat": {"id": user_id, "type": "private"},
            "from": user,
            "text": text,
            "entities": [{"type": "bot_command", "offset": 0, "length": len(text)}],
        },
    }


async def test_a_telegram_update_with_a_wrong_or_missing_secret_is_refused(pool):
    async with offline_bot() as (app, _), serving(pool, application=app) as client:
        payload = json.dumps(update_payload())
        wrong = await client.post(
            "/telegram", content=payload, headers={TELEGRAM_SECRET_HEADER: "guess"}
        )
        near = await client.post(
            "/telegram", content=payload, headers={TELEGRAM_SECRET_HEADER: TELEGRAM_TOKEN + "x"}
        )
        missing = await client.post("/telegram", content=payload)
        assert [r.status_code for r in (wrong, near, missing)] == [401, 401, 401]
        assert app.update_queue.empty()


async def test_a_telegram_update_with_the_secret_is_queued_for_the_application(pool):
    async with offline_bot() as (app, _), serving(pool, application=app) as client:
        r = await client.post(
            "/telegram",
            content=json.dumps(update_payload("/wallet")),
            headers={TELEGRAM_SECRET_HEADER: TELEGRAM_TOKEN},
        )
        assert r.status_code == 200
        update = app.update_queue.get_nowait()
    assert isinstance(update, Update)
    assert update.update_id == 987654 and update.message.text == "/wallet"
    assert update.effective_user.id == 4242


async def test_a_started_application_handles_the_update(pool):
    handled: asyncio.Queue[Update] = asyncio.Queue()

    async def record(update: Update, context) -> None:
        await handled.put(update)

    async with offline_bot() as (app, _):
        app.add_handler(MessageHandler(filters.ALL, record))
        await app.start()
        try:
            async with serving(pool, application=app) as client:
                r = await client.post(
                    "/telegram",
                    content=json.dumps(update_payload("/start", user_id=555)),
                    headers={TELEGRAM_SECRET_HEADER: TELEGRAM_TOKEN},
                )
                update = await asyncio.wait_for(handled.get(), timeout=30)
        finally:
            await app.stop()
    assert r.status_code == 200
    assert update.effective_user.id == 555 and update.message.text == "/start"


async def test_a_telegram_request_that_is_no_update_is_400(pool):
    async with offline_bot() as (app, _), serving(pool, application=app) as client:
        headers = {TELEGRAM_SECRET_HEADER: TELEGRAM_TOKEN}
        bad_json = await client.post("/telegram", content=b"{not json", headers=headers)
        a_list = await client.post("/telegram", content=b"[1, 2]", headers=headers)
        assert (bad_json.status_code, a_list.status_code) == (400, 400)
        assert app.update_queue.empty()


async def test_without_a_bot_or_a_secret_telegram_is_not_served(pool):
    async with serving(pool) as client:
        assert (await client.post("/telegram", content=b"{}")).status_code == 404
    async with (
        offline_bot() as (app, _),
        serving(pool, settings(telegram_secret_token=None), app) as client,
    ):
        r = await client.post("/telegram", content=b"{}", headers={TELEGRAM_SECRET_HEADER: ""})
        assert r.status_code == 503
        assert app.update_queue.empty()


# --- every provider endpoint ------------------------------------------------------


async def test_a_provider_without_its_secret_is_refused_503_and_nothing_changes(pool):
    before = await row_counts(pool)
    async with serving(pool, WebSettings()) as client:
        signed = b'{"event": "charge.successful", "data": {}}'
        responses = [
            await client.post(
                "/webhooks/fincra",
                content=signed,
                headers={"signature": fincra.sign(FINCRA_KEY, signed)},
            ),
            await client.get("/webhooks/blockbee?uuid=x"),
            await client.post("/webhooks/dynopay", content=b"{}"),
        ]
    assert [r.status_code for r in responses] == [503, 503, 503]
    assert await row_counts(pool) == before


async def test_other_methods_are_405_and_oversized_bodies_413(pool):
    async with serving(pool, settings(max_body_bytes=1024)) as client:
        assert (await client.get("/webhooks/fincra")).status_code == 405
        assert (await client.get("/webhooks/dynopay")).status_code == 405
        assert (await client.post("/healthz")).status_code == 405
        big = b"{" + b" " * 2048 + b"}"
        r = await client.post(
            "/webhooks/fincra", content=big, headers={"signature": fincra.sign(FINCRA_KEY, big)}
        )
        assert r.status_code == 413


# --- configuration ------------------------------------------------------------------


def test_settings_come_from_the_environment(tmp_path):
    pem = blockbee_key().public_key().export_key().decode()
    env = {
        "LOCKBAY_FINCRA_WEBHOOK_KEY": " fincra-k3y ",
        "LOCKBAY_BLOCKBEE_PUBLIC_KEY": pem,
        "LOCKBAY_DYNOPAY_SECRET": "dyno-s3cret",
        "LOCKBAY_TELEGRAM_SECRET_TOKEN": "tg-t0ken",
        "LOCKBAY_PUBLIC_URL": "https://pay.example.com",
    }
    s = WebSettings.from_env(env)
    secrets = (s.fincra_webhook_key, s.dynopay_secret, s.telegram_secret_token)
    assert secrets == ("fincra-k3y", "dyno-s3cret", "tg-t0ken")
    assert s.blockbee_key().n == blockbee_key().n
    assert s.public_url == "https://pay.example.com"
    assert not any(secret in repr(s) for secret in secrets)  # secrets stay out of logs

    # The key from a file, or on one line with \n escapes (as in an env file).
    key_file = tmp_path / "blockbee.pem"
    key_file.write_text(pem)
    from_file = WebSettings.from_env({"LOCKBAY_BLOCKBEE_PUBLIC_KEY_FILE": str(key_file)})
    assert from_file.blockbee_key().n == blockbee_key().n
    one_line = WebSettings.from_env({"LOCKBAY_BLOCKBEE_PUBLIC_KEY": pem.replace("\n", "\\n")})
    assert one_line.blockbee_key().n == blockbee_key().n

    empty = WebSettings.from_env({})
    assert empty.fincra_webhook_key is None and empty.blockbee_key() is None


def test_a_bad_blockbee_key_is_refused_at_start(tmp_path):
    with pytest.raises(SettingsError, match="does not load"):
        WebSettings.from_env({"LOCKBAY_BLOCKBEE_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----\nxx"})
    with pytest.raises(SettingsError, match="not both"):
        WebSettings.from_env(
            {"LOCKBAY_BLOCKBEE_PUBLIC_KEY": "x", "LOCKBAY_BLOCKBEE_PUBLIC_KEY_FILE": "y"}
        )
    with pytest.raises(SettingsError, match="FILE"):
        WebSettings.from_env({"LOCKBAY_BLOCKBEE_PUBLIC_KEY_FILE": str(tmp_path / "missing.pem")})
    private = blockbee_key().export_key().decode()
    with pytest.raises(SettingsError, match="public key"):
        WebSettings.from_env({"LOCKBAY_BLOCKBEE_PUBLIC_KEY": private})
