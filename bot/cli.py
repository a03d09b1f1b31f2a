"""The `lockbay` command."""

from __future__ import annotations

import argparse
import asyncio
import sys

from bot import db


async def _migrate(dsn: str) -> None:
    conn = await db.connect(dsn)
    try:
        applied = await db.migrate(conn)
    finally:
        await conn.close()
    print("applied: " + ", ".join(applied) if applied else "schema is up to date")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lockbay", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply pending migrations to DATABASE_URL (or the embedded db)")
    sub.add_parser("demo", help="seed demo users and print their screens, offline")
    args = parser.parse_args(argv)

    try:
        dsn = db.database_url()
        if args.command == "migrate":
            asyncio.run(_migrate(dsn))
        elif args.command == "demo":
            from bot import demo

            asyncio.run(demo.run(dsn))
    except db.MigrationError as e:
        print(f"lockbay: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
