"""Rating a trade and the rating summary, through the real Application: 1 round trip each."""

from __future__ import annotations

from decimal import Decimal

import seeding

from bot.data.enums import FeeSplit
from bot.data.escrow import (
    accept_escrow,
    create_escrow,
    fund_escrow_from_wallet,
    release_escrow,
)
from bot.data.rating import rating_summary
from bot.db import queries

BUYER, SELLER, STRANGER = 7201, 7202, 7203


async def cast(conn, chat) -> dict[int, int]:
    ids = {
        BUYER: await seeding.user(conn, BUYER, "<i>Bo</i>", username="BoBuys"),
        SELLER: await seeding.user(conn, SELLER, "Sade", username="SadeSells"),
        STRANGER: await seeding.user(conn, STRANGER, "Stranger"),
    }
    await seeding.credit(conn, BUYER, "USDT", "1000")
    return ids


async def trade(conn, *, complete: bool = True) -> int:
    """An escrow of BUYER and SELLER, completed (or only accepted) by the real movements."""
    e = await create_escrow(
        conn,
        buyer_telegram_id=BUYER,
        seller_handle="@sadesells",
        currency="USDT",
        amount=Decimal("100"),
        description="A lamp",
        fee_split=FeeSplit.BUYER,
    )
    await fund_escrow_from_wallet(conn, escrow_id=e.id, telegram_id=BUYER, idempotency_key="r1")
    await accept_escrow(conn, escrow_id=e.id, telegram_id=SELLER)
    if complete:
        await release_escrow(conn, escrow_id=e.id, telegram_id=BUYER)
    return e.id


async def ratings(conn, escrow_id: int) -> int:
    return (await queries.escrow_test_state(conn, escrow_id=escrow_id))["ratings"]


async def test_each_party_rates_once_for_one_round_trip(conn, chat):
    ids = await cast(conn, chat)
    escrow_id = await trade(conn)
    buyer, seller = chat(BUYER), chat(SELLER)
    screen = (await buyer.send("/escrow")).screen

    rated = await buyer.press(f"rating:rate:{escrow_id}:5", on=screen)
    assert rated.round_trips == 1
    assert "You rated this trade ★★★★★ (5/5)" in rated.text
    assert f"escrow:view:{escrow_id}" in rated.screen.callbacks

    twice = await buyer.press(f"rating:rate:{escrow_id}:1", on=screen)
    assert twice.round_trips == 1
    assert twice.alerts == ["This rating was already recorded."]
    assert await ratings(conn, escrow_id) == 1

    other = await seller.press(
        f"rating:rate:{escrow_id}:2", on=(await seller.send("/escrow")).screen
    )
    assert other.round_trips == 1 and "★★☆☆☆" in other.text
    about_seller = await rating_summary(conn, user_id=ids[SELLER])
    assert (about_seller.count, about_seller.average) == (1, Decimal("5.00"))


async def test_a_stranger_cannot_rate_and_nothing_is_recorded(conn, chat):
    await cast(conn, chat)
    escrow_id = await trade(conn)
    stranger = chat(STRANGER)
    screen = (await stranger.send("/escrow")).screen

    step = await stranger.press(f"rating:rate:{escrow_id}:1", on=screen)

    assert step.round_trips == 1
    assert step.alerts == ["This trade is not one of yours."] and step.replies == []
    assert await ratings(conn, escrow_id) == 0


async def test_a_trade_not_completed_cannot_be_rated(conn, chat):
    await cast(conn, chat)
    escrow_id = await trade(conn, complete=False)
    buyer = chat(BUYER)
    screen = (await buyer.send("/escrow")).screen

    step = await buyer.press(f"rating:rate:{escrow_id}:4", on=screen)

    assert step.round_trips == 1
    assert step.alerts == ["This escrow is accepted: it cannot be rated."]
    assert await ratings(conn, escrow_id) == 0


async def test_crafted_rating_buttons_are_refused(conn, chat):
    await cast(conn, chat)
    escrow_id = await trade(conn)
    buyer = chat(BUYER)
    screen = (await buyer.send("/escrow")).screen

    out_of_range = await buyer.press(f"rating:rate:{escrow_id}:9", on=screen)
    assert out_of_range.alerts == ["A rating is 1 to 5 stars."]
    for data in (f"rating:rate:{escrow_id}", "rating:rate:x:5", f"rating:rate:{escrow_id}:-1"):
        step = await buyer.press(data, on=screen)
        assert step.round_trips == 0 and step.alerts == ["That button is not valid any more."]
    assert await ratings(conn, escrow_id) == 0


async def test_the_rating_summary_is_one_round_trip_and_escapes_names(conn, chat):
    ids = await cast(conn, chat)
    escrow_id = await trade(conn)
    buyer, seller = chat(BUYER), chat(SELLER)
    await buyer.press(f"rating:rate:{escrow_id}:4", on=(await buyer.send("/escrow")).screen)
    screen = (await seller.send("/escrow")).screen

    step = await seller.press(f"rating:user:{ids[SELLER]}", on=screen)

    assert step.round_trips == 1
    assert "<b>4.00</b> ★ average from 1 rating(s)" in step.text
    assert "4.00 ★ as seller (1)" in step.text
    assert "★★★★☆ — &lt;i&gt;Bo&lt;/i&gt;" in step.text
    nobody = await seller.press(f"rating:user:{ids[STRANGER]}", on=screen)
    assert nobody.round_trips == 1 and "No ratings yet." in nobody.text
