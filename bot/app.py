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
from telegram.ext import Application, ApplicationBuilder, BaseHandler
from telegram.request import BaseRequest

from bot import db
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
from bot.handlers.ui import Context, Settings, fit

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


async def _on_error(update: object, context: Context) -> None:
    """Log it, keep it for the offline driver, and tell the user plainly."""
    log.error("handler failed", exc_info=context.error)
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
) -> Application:
    """The bot. With `pool`, it uses that pool (tests, the demo); else it opens one at start."""

    async def open_pool(app: Application) -> None:
        if "pool" not in app.bot_data:
            dsn = database_url or db.database_url()
            app.bot_data["pool"] = await db.create_pool(dsn)
            app.bot_data["own_pool"] = True
        # The SQL movements check users.is_admin: make it say what the configuration says.
        sync = await sync_admins(app.bot_data["pool"], admin_ids=settings.admin_ids)
        if sync.missing:
            log.warning("configured admins without an account yet: %s", sync.missing)

    async def close_pool(app: Application) -> None:
        if app.bot_data.pop("own_pool", False):
            await app.bot_data.pop("pool").close()

    builder = ApplicationBuilder().token(token).post_init(open_pool).post_shutdown(close_pool)
    if request is not None:
        builder = builder.request(request).get_updates_request(request).updater(None)
    app = builder.build()
    app.bot_data["settings"] = settings
    if pool is not None:
        app.bot_data["pool"] = pool
    for group, handler in enumerate(all_handlers()):
        app.add_handler(handler, group=group)
    app.add_error_handler(_on_error)
    return app


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
        await app.start()
        server = web.make_server(
            web.create_app(app.bot_data["pool"], settings, app), host=host, port=port
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
        if app.updater and app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
        await app.shutdown()
        if app.post_shutdown:
            await app.post_shutdown(app)
