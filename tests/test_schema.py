"""The schema: migrations, named queries prepared against it, enum mirrors, packaging."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import pytest

from bot import db
from bot.data.enums import PG_ENUMS

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
async def empty_database(server_dsn):
    name = f"lockbay_empty_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_dsn("postgres"))
    await admin.execute(f'create database "{name}"')
    conn = await db.connect(server_dsn(name))
    try:
        yield conn
    finally:
        await conn.close()
        await admin.execute(f'drop database "{name}"')
        await admin.close()


async def test_migrations_apply_once_then_are_a_no_op(empty_database):
    files = [m.name for m in db.migration_files()]
    assert await db.migrate(empty_database) == files
    assert await db.migrate(empty_database) == []
    applied = [r["filename"] async for r in db.queries.applied_migrations(empty_database)]
    assert applied == files


async def test_an_edited_applied_migration_is_refused(empty_database, tmp_path):
    for m in db.migration_files():
        (tmp_path / m.name).write_text(m.sql)
    await db.migrate(empty_database, tmp_path)
    edited = tmp_path / "0002_trading.sql"
    edited.write_text(edited.read_text() + "\n-- a late edit\n")
    (tmp_path / "0099_new.sql").write_text("create table not_applied (id bigint);")

    with pytest.raises(db.MigrationError, match=r"0002_trading\.sql"):
        await db.migrate(empty_database, tmp_path)
    # Nothing after the refusal ran.
    assert await db.queries.schema_relation(empty_database, relation_name="not_applied") is None


async def test_every_named_query_prepares_against_the_schema(conn):
    names = db.queries.available_queries
    assert "wallet_context" in names and len(names) >= 10
    for name in names:
        sql = getattr(db.queries, name).sql
        try:
            await conn.prepare(sql)
        except asyncpg.PostgresError as e:
            pytest.fail(f"query {name} does not match the schema: {e}")


async def test_python_enums_mirror_the_schema(conn):
    in_schema = {r["typname"]: r["labels"] async for r in db.queries.schema_enum_labels(conn)}
    assert set(in_schema) == set(PG_ENUMS)
    for typname, enum in PG_ENUMS.items():
        assert [m.value for m in enum] == in_schema[typname], typname


def test_the_installed_package_carries_the_same_sql_as_the_source_tree():
    installed = db.sql_dir()
    source = REPO / "sql"
    files = sorted(p.relative_to(source) for p in source.rglob("*.sql"))
    assert files, "no sql files in the source tree"
    for rel in files:
        assert (installed / rel).read_text() == (source / rel).read_text(), f"stale {rel}"
