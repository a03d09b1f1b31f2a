"""The `lockbay` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from bot import db


async def _migrate(dsn: str) -> None:
    conn = await db.connect(dsn)
    try:
        applied = await db.migrate(conn)
    finally:
        await conn.close()
    print("applied: " + ", ".join(applied) if applied else "schema is up to date")


def _run(args: argparse.Namespace) -> None:
    """The bot and its HTTP app, until interrupted: polling, or webhook mode."""
    from bot.app import admin_ids_from_env, build_application, serve, token_from_env
    from bot.handlers.ui import Settings

    token = token_from_env()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # it logs every poll
    settings = Settings(admin_ids=admin_ids_from_env())
    dsn = db.database_url()
    asyncio.run(_migrate(dsn))
    app = build_application(token=token, settings=settings, database_url=dsn, persistent=True)
    asyncio.run(serve(app, webhook_url=args.webhook_url, host=args.host, port=args.port))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lockbay", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply pending migrations to DATABASE_URL (or the embedded db)")
    sub.add_parser("demo", help="a scripted tour of every flow, offline, on the embedded db")
    run = sub.add_parser("run", help="start the bot (TELEGRAM_BOT_TOKEN; polling by default)")
    run.add_argument("--webhook-url", help="public https URL Telegram posts updates to")
    run.add_argument("--host", default="0.0.0.0", help="where the HTTP app listens")
    run.add_argument("--port", type=int, default=8080, help="where the HTTP app listens")
    args = parser.parse_args(argv)

    from bot.app import ConfigError
    from bot.web import SettingsError

    try:
        if args.command == "migrate":
            asyncio.run(_migrate(db.database_url()))
        elif args.command == "demo":
            from bot import demo

            asyncio.run(demo.run(db.database_url()))
        elif args.command == "run":
            _run(args)
    except (db.MigrationError, ConfigError, SettingsError) as e:
        print(f"lockbay: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
