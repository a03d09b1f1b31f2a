"""Wiring: the python-telegram-bot `Application` with every area's handlers and the pool."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Iterable
from dataclasses import replace

import asyncpg
from telegram import Update
from telegram.ext import Application, ApplicationBuilder, BaseHandler, CommandHandler
from telegram.request import BaseRequest

from bot import db, metrics, outbox
from bot.cache import start_invalidation, stop_invalidation
from bot.data.admin import sync_admins
from bot.handlers import (
    admin,
    contacts,
    dispute,
    escrow,
    exchange,
    history,
    menu,
    onboarding,
    rating,
    referral,
    support,
    wallet,
)
from bot.handlers.ui import FLOW_TIMEOUT_SECONDS, Context, Settings, fit, nothing_to_cancel
from bot.jobs import schedule_jobs
from bot.mailer import Mailer
from bot.payouts import BOT_DATA_WORKER as PAYOUT_WORKER
from bot.payouts import schedule_payouts, worker_from_env
from bot.persistence import PostgresPersistence, persistent_flows
from bot.providers.fincra import FincraClient
from bot.providers.rates import RatesClient, schedule_rates

log = logging.getLogger(__name__)

# Each area module answers its handlers; every handler gets a group of its own, so
# opening one flow (a command, a button) also ends whichever flow was open.
AREAS = (onboarding, menu, wallet, exchange, escrow, dispute, rating, support, contacts,
         referral, history, admin)  # fmt: skip

SOMETHING_WRONG = "Something went wrong on our side; nothing was changed. Please try again."


class ConfigError(Exception):
    """The bot cannot start with this configuration."""


def admin_ids_from_env() -> frozenset[int]:
    raw = os.environ.get("LOCKBAY_ADMIN_IDS", "")
    try:
        return frozenset(int(part) for part in raw.replace(" ", "").split(",") if part)
    except ValueError:
        raise ConfigError(
            f"LOCKBAY_ADMIN_IDS must be Telegram ids separated by commas: {raw!r}"
        ) from None


def token_from_env() -> str:
    token = os.environ.get("TELEGRAM_BOT_TOKEN", "").strip()
    if not token:
        raise ConfigError(
            "TELEGRAM_BOT_TOKEN is not set: create a bot with @BotFather and export its token."
        )
    return token


def all_handlers() -> Iterable[BaseHandler]:
    for area in AREAS:
        yield from area.handlers()
    # Last: a /cancel that no open flow took.
    yield CommandHandler("cancel", nothing_to_cancel)


async def _on_error(update: object, context: Context) -> None:
    """Log it, keep it for the offline driver, and tell the user plainly."""
    log.error("handler failed", exc_info=context.error)
    metrics.handler_failed(context.error)
    context.bot_data.setdefault("errors", []).append(context.error)
    if isinstance(update, Update) and update.effective_chat is not None:
        try:
            await context.bot.send_message(update.effective_chat.id, fit(SOMETHING_WRONG))
        except Exception:  # the user may have blocked the bot; the log has it
            log.warning("could not tell the user about the failure", exc_info=True)


def build_application(
    *,
    token: str,
    settings: Settings,
    pool: asyncpg.Pool | None = None,
    database_url: str | None = None,
    request: BaseRequest | None = None,
    persistent: bool = False,
) -> Application:
    """The bot. With `pool`, it uses that pool (tests, the demo); else it opens one at start.
    `persistent`: conversations and user data kept in PostgreSQL across restarts."""

    async def the_pool() -> asyncpg.Pool:
        # The persistence loads in Application.initialize, before post_init: whichever
        # asks first opens the pool.
        if "pool" not in app.bot_data:
            dsn = database_url or db.database_url()
            app.bot_data["pool"] = await db.create_pool(dsn)
            app.bot_data["own_pool"] = True
        return app.bot_data["pool"]

    async def open_pool(app: Application) -> None:
        # The SQL movements check users.is_admin: make it say what the configuration says.
        sync = await sync_admins(await the_pool(), admin_ids=settings.admin_ids)
        if sync.missing:
            log.warning("configured admins without an account yet: %s", sync.missing)
        # A mailer the demo or a test set stays; the bot's comes from the environment.
        if app.bot_data.get("mailer") is None:
            app.bot_data["mailer"] = Mailer.from_env()
            if app.bot_data["mailer"] is None:
                log.warning("LOCKBAY_SMTP_HOST is not set: sign-up e-mail codes cannot be sent")
        # Other processes' commits evict this process's cached flow contexts (bot.cache).
        # A pool handed in without a DSN (tests, the demo) has nothing to listen on.
        if database_url is not None or app.bot_data.get("own_pool"):
            await start_invalidation(app, database_url or db.database_url())

    async def close_pool(app: Application) -> None:
        await stop_invalidation(app)
        if app.bot_data.pop("own_pool", False):
            await app.bot_data.pop("pool").close()

    builder = ApplicationBuilder().token(token).post_init(open_pool).post_shutdown(close_pool)
    if request is not None:
        builder = builder.request(request).get_updates_request(request).updater(None)
    if persistent:
        builder = builder.persistence(
            PostgresPersistence(the_pool, max_idle_seconds=FLOW_TIMEOUT_SECONDS)
        )
    app = builder.build()
    app.bot_data["settings"] = settings
    app.bot_data["database_url"] = database_url  # for the dedicated listening connections
    if pool is not None:
        app.bot_data["pool"] = pool
    with persistent_flows(persistent):
        for group, handler in enumerate(all_handlers()):
            app.add_handler(handler, group=group)
    app.add_error_handler(_on_error)
    return app


def _start_providers(app: Application) -> FincraClient | None:
    """The jobs and clients the environment configures: the rates refresh
    (LOCKBAY_RATES_URL), the cashout worker (LOCKBAY_FINCRA_API_KEY), and Fincra's
    look-up of a payment before it is credited. Each is off when not configured."""
    clients = app.bot_data.setdefault("provider_clients", [])
    if os.environ.get("LOCKBAY_RATES_URL", "").strip():
        app.bot_data["rates_client"] = RatesClient.from_env()
        clients.append(app.bot_data["rates_client"])
        schedule_rates(app.job_queue)
    else:
        log.warning("LOCKBAY_RATES_URL is not set: exchange rates are not refreshed")
    worker = worker_from_env(app.bot_data["pool"])
    if worker is None:
        log.warning("LOCKBAY_FINCRA_API_KEY is not set: approved cashouts are not paid out")
        return None
    app.bot_data[PAYOUT_WORKER] = worker
    clients.append(worker.bank.client)
    schedule_payouts(app.job_queue)
    return worker.bank.client


async def serve(
    app: Application,
    *,
    webhook_url: str | None,
    host: str = "0.0.0.0",
    port: int = 8080,
    sockets: list[socket.socket] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """The bot and the HTTP app on one loop, until SIGINT/SIGTERM.

    The HTTP app always runs (provider webhooks, /healthz, /metrics). Telegram's
    updates come by long polling, or with `webhook_url` to the HTTP app's
    /telegram, checked against the secret token given to setWebhook. `sockets` and
    `stop` are for tests: already-bound sockets, and an event that ends the run.
    """
    from bot import web

    settings = web.WebSettings.from_env()
    if webhook_url and not settings.telegram_secret_token:
        # Telegram must prove each update is from Telegram: make up a secret for this run.
        settings = replace(settings, telegram_secret_token=secrets.token_urlsafe(32))
    await app.initialize()
    if app.post_init:
        await app.post_init(app)  # only run_polling/run_webhook call it themselves
    try:
        if webhook_url:
            await app.bot.set_webhook(
                url=webhook_url.rstrip("/") + "/telegram",
                secret_token=settings.telegram_secret_token,
                allowed_updates=Update.ALL_TYPES,
            )
        else:
            await app.bot.delete_webhook()
            await app.updater.start_polling(allowed_updates=Update.ALL_TYPES)
        fincra = _start_providers(app)
        schedule_jobs(app.job_queue)
        await outbox.start_sender(app, dsn=app.bot_data.get("database_url"))
        outbox.schedule_reminders(app.job_queue)
        await app.start()
        server = web.make_server(
            web.create_app(app.bot_data["pool"], settings, app, fincra_client=fincra),
            host=host,
            port=port,
        )
        if stop is not None:

            async def stop_when_told() -> None:
                await stop.wait()
                server.should_exit = True

            stopper = asyncio.create_task(stop_when_told())
        await server.serve(sockets=sockets)  # returns on SIGINT/SIGTERM or `stop`
        if stop is not None:
            stopper.cancel()
    finally:
        await outbox.stop_sender(app)
        for client in app.bot_data.pop("provider_clients", []):
            await client.aclose()
        if app.updater and app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
        await app.shutdown()
        if app.post_shutdown:
            await app.post_shutdown(app)
