"""The benchmark's baseline (bench/baseline.py: the screens the old ORM way) shows exactly what
the project shows: for a sample of a small scale population, every screen of SCREENS.md read
both ways is equal (`==`; the exchange screen field by field without what each side measured
against its own clock: bench/compare.py), and the old way's cashout moves the same money as
request_cashout."""

from __future__ import annotations

import dataclasses
import random
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import seeding

from bot import db
from bot.data.onboarding import start_email_verification
from bot.data.wallet import CryptoDestination, request_cashout, wallet_context

# bench/ sits beside the package, outside it.
sys.path.append(str(Path(__file__).resolve().parents[1]))

from bench import baseline, compare, screens
from bench import seed as bench_seed

SCALE = bench_seed.Scale.of("test", 400)
FIRST = bench_seed.FIRST_TELEGRAM_ID
TRON = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"


@pytest.fixture
async def old(database_url):
    engine = baseline.create_engine(database_url)
    try:
        yield baseline.Baseline(engine)
    finally:
        await engine.dispose()


@pytest.fixture
async def population(database_url, pool) -> list[int]:
    """The scale seeding at 400 users, a few people made unusual on top of it; returns the
    telegram ids of a sample (the unusual ones among them)."""
    await bench_seed.seed(database_url, SCALE, progress=False)
    async with pool.acquire() as conn:
        sample = dict(await db.queries.seed_scale_sample(conn, first_telegram_id=FIRST, users=400))
        # Cashouts in flight (the scale set has none), a blocked user, a pending e-mail code.
        spender, blocked, newcomer = FIRST + 7, FIRST + 8, FIRST + 19  # 19: not onboarded
        await seeding.credit(conn, spender, "USDT", "500")
        for n in range(12):
            await seeding.cashout(conn, spender, "USDT", f"{10 + n}.5", fee="1", n=n)
        await seeding.block(conn, blocked)
        await start_email_verification(conn, telegram_id=newcomer, email="newcomer@example.com")
    rng = random.Random(20_241_128)
    drawn = rng.sample(range(FIRST, FIRST + SCALE.users), 16)
    return [sample["telegram_id"], sample["admin_telegram_id"], spender, blocked, newcomer, *drawn]


async def test_every_screen_of_the_baseline_is_the_projects(pool, old, population):
    subjects = await screens.gather(pool, population)
    assert len(subjects.people) == len(population) and subjects.dispute_ids
    compared = 0
    for person in subjects.people:
        for name in screens.SCREENS:
            kwargs = screens.arguments(name, person, subjects, random.Random(person.telegram_id))
            mine = await screens.PROJECT[name](pool, **kwargs)
            theirs = await getattr(old, name)(**kwargs)
            found = compare.same(name, mine, theirs)
            assert found == [], f"{name}({kwargs}) differs: " + "; ".join(found[:5])
            if name not in compare.NORMALISED:
                assert mine == theirs
            compared += 1
    assert compared == len(population) * len(screens.SCREENS)


async def test_pages_and_cursors_match(pool, old, population):
    """Second pages follow the same cursors both ways."""
    subjects = await screens.gather(pool, population[:6])
    for person in subjects.people:
        for name, extra in [
            ("history_page", {"limit": 3}),
            ("history_page", {"limit": 2, "currency": "USDT"}),
            ("exchange_history", {"limit": 1}),
            ("my_escrows", {"status_group": "all", "limit": 1}),
        ]:
            kwargs = {"telegram_id": person.telegram_id, **extra}
            mine = await screens.PROJECT[name](pool, **kwargs)
            assert mine == await getattr(old, name)(**kwargs)
            cursor = mine.next_before
            if cursor is not None:
                later = await screens.PROJECT[name](pool, **kwargs, before=cursor)
                assert later == await getattr(old, name)(**kwargs, before=cursor)
    for name, kwargs in [
        ("open_disputes", {"limit": 3}),
        ("transaction_review", {"limit": 4}),
        ("user_page", {"limit": 5}),
        ("user_page", {"search": "scale_7000000000"}),
    ]:
        mine = await screens.PROJECT[name](pool, **kwargs)
        assert mine == await getattr(old, name)(**kwargs), name


async def test_unknown_people_get_nothing_both_ways(pool, old, population):
    nobody = 1
    for name in sorted(screens.SCREENS):
        if name not in {"wallet_context", "exchange_context", "menu_context", "support_context"}:
            continue
        assert await screens.PROJECT[name](pool, telegram_id=nobody) is None
        assert await getattr(old, name)(telegram_id=nobody) is None
    assert await old.escrow_view(escrow_id=1, viewer_telegram_id=nobody) is None


async def test_the_old_cashout_moves_what_request_cashout_moves(pool, old, population):
    """Both ways hold amount + fee and record a pending cashout; the books stay balanced (the
    pool fixture reconciles) and the two results differ only in what identifies each."""
    spender = FIRST + 7
    before = await wallet_context(pool, telegram_id=spender)
    dest = CryptoDestination(network="TRC20", address=TRON)
    args = {"telegram_id": spender, "currency": "USDT", "amount": Decimal("25")}
    mine = await request_cashout(pool, **args, destination=dest, idempotency_key="bench-mine")
    theirs = await old.request_cashout(**args, destination=dest, idempotency_key="bench-theirs")
    after = await wallet_context(pool, telegram_id=spender)
    total = mine.amount + mine.fee
    assert theirs.fee == mine.fee == Decimal(1)
    assert after.wallet("USDT").available == before.wallet("USDT").available - 2 * total
    assert after.wallet("USDT").held == before.wallet("USDT").held + 2 * total
    assert theirs.wallet_available == mine.wallet_available - total

    def essence(c):
        return dataclasses.replace(
            c,
            id=0,
            idempotency_key="",
            created_at=None,
            transfer_id=None,
            wallet_available=None,
            wallet_held=None,
        )

    assert essence(theirs) == essence(mine)
    assert after.cashouts_in_flight[0].id == theirs.id
