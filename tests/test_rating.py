"""Ratings: each party of a completed trade rates the other once, 1 to 5 stars."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
import seeding

from bot import db
from bot.data.enums import FeeSplit, PartyRole
from bot.data.errors import Duplicate, Invalid, NotAParty, NotFound, WrongStatus
from bot.data.escrow import (
    Escrow,
    accept_escrow,
    create_escrow,
    fund_escrow_from_wallet,
    refund_escrow,
    release_escrow,
)
from bot.data.rating import rate_trade
from bot.db import queries

BUYER, SELLER, STRANGER = 5001, 5002, 5003


async def people(conn) -> dict[int, int]:
    ids = {t: await seeding.user(conn, t) for t in (BUYER, SELLER, STRANGER)}
    await seeding.credit(conn, BUYER, "USDT", "1000")
    return ids


async def accepted(conn) -> Escrow:
    e = await create_escrow(
        conn,
        buyer_telegram_id=BUYER,
        seller_handle=f"@user{SELLER}",
        currency="USDT",
        amount=Decimal("20"),
        description="Headphones",
        fee_split=FeeSplit.BUYER,
    )
    await fund_escrow_from_wallet(
        conn, escrow_id=e.id, telegram_id=BUYER, idempotency_key=f"pay-{e.id}"
    )
    return (await accept_escrow(conn, escrow_id=e.id, telegram_id=SELLER)).escrow


async def completed(conn) -> Escrow:
    e = await accepted(conn)
    return (await release_escrow(conn, escrow_id=e.id, telegram_id=BUYER)).escrow


async def ratings_count(conn, escrow_id: int) -> int:
    return (await queries.escrow_test_state(conn, escrow_id=escrow_id))["ratings"]


async def test_each_party_rates_the_other_in_one_round_trip(conn):
    ids = await people(conn)
    e = await completed(conn)
    async with db.meter.measure() as m:
        by_buyer = await rate_trade(
            conn, escrow_id=e.id, telegram_id=BUYER, stars=5, comment="  Fast and honest "
        )
    assert m.round_trips == 1
    assert (by_buyer.rater_id, by_buyer.ratee_id) == (ids[BUYER], ids[SELLER])
    assert by_buyer.rater_role is PartyRole.BUYER
    assert (by_buyer.stars, by_buyer.comment) == (5, "Fast and honest")

    by_seller = await rate_trade(conn, escrow_id=e.id, telegram_id=SELLER, stars=1, comment=" ")
    assert (by_seller.rater_id, by_seller.ratee_id) == (ids[SELLER], ids[BUYER])
    assert by_seller.rater_role is PartyRole.SELLER and by_seller.comment is None
    assert await ratings_count(conn, e.id) == 2


async def test_a_second_rating_is_a_duplicate(conn):
    await people(conn)
    e = await completed(conn)
    await rate_trade(conn, escrow_id=e.id, telegram_id=BUYER, stars=4)
    with pytest.raises(Duplicate):
        await rate_trade(conn, escrow_id=e.id, telegram_id=BUYER, stars=1)
    assert await ratings_count(conn, e.id) == 1


async def test_a_double_tap_at_once_records_one_rating(pool, conn):
    await people(conn)
    e = await completed(conn)
    results = await asyncio.gather(
        *(rate_trade(pool, escrow_id=e.id, telegram_id=SELLER, stars=3) for _ in range(2)),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["Duplicate", "Rating"]
    assert await ratings_count(conn, e.id) == 1


async def test_refusals_record_nothing(conn):
    await people(conn)
    e = await completed(conn)
    for stars in (0, 6, -1):
        with pytest.raises(Invalid, match="1 to 5"):
            await rate_trade(conn, escrow_id=e.id, telegram_id=BUYER, stars=stars)
    with pytest.raises(Invalid, match="500"):
        await rate_trade(conn, escrow_id=e.id, telegram_id=BUYER, stars=3, comment="x" * 501)
    with pytest.raises(NotAParty):
        await rate_trade(conn, escrow_id=e.id, telegram_id=STRANGER, stars=5)
    with pytest.raises(NotFound):
        await rate_trade(conn, escrow_id=e.id + 100, telegram_id=BUYER, stars=5)

    ongoing = await accepted(conn)
    with pytest.raises(WrongStatus) as err:
        await rate_trade(conn, escrow_id=ongoing.id, telegram_id=BUYER, stars=5)
    assert err.value.status == "accepted"
    await refund_escrow(conn, escrow_id=ongoing.id, telegram_id=SELLER)
    with pytest.raises(WrongStatus):
        await rate_trade(conn, escrow_id=ongoing.id, telegram_id=SELLER, stars=2)
    assert await ratings_count(conn, e.id) == 0
