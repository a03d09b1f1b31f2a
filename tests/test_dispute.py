"""Disputes: who may open one and write in it, and the three resolutions to the last unit."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
import seeding

from bot import db
from bot.data.dispute import open_dispute, post_dispute_message, resolve_dispute
from bot.data.enums import DisputeResolution, DisputeStatus, EscrowStatus, FeeSplit
from bot.data.errors import Invalid, NotAParty, NotFound, WrongStatus
from bot.data.escrow import (
    Escrow,
    accept_escrow,
    create_escrow,
    fund_escrow_from_wallet,
    mark_delivered,
    release_escrow,
)
from bot.db import queries

BUYER, SELLER, STRANGER, ADMIN, REFERRER = 4001, 4002, 4003, 4004, 4005
D = Decimal


async def people(conn) -> dict[int, int]:
    ids = {t: await seeding.user(conn, t) for t in (BUYER, SELLER, STRANGER, ADMIN, REFERRER)}
    await seeding.make_admin(conn, ADMIN)
    await seeding.credit(conn, BUYER, "USDT", "1000")
    return ids


async def accepted(conn, amount: str = "100", fee_split: FeeSplit = FeeSplit.SPLIT) -> Escrow:
    e = await create_escrow(
        conn,
        buyer_telegram_id=BUYER,
        seller_handle=f"user{SELLER}",
        currency="USDT",
        amount=D(amount),
        description="Laptop",
        fee_split=fee_split,
    )
    await fund_escrow_from_wallet(
        conn, escrow_id=e.id, telegram_id=BUYER, idempotency_key=f"pay-{e.id}"
    )
    return (await accept_escrow(conn, escrow_id=e.id, telegram_id=SELLER)).escrow


async def available(conn, telegram_id: int) -> Decimal:
    return await queries.escrow_test_available(conn, telegram_id=telegram_id, currency="USDT")


async def fees(conn) -> Decimal:
    return await queries.escrow_test_platform_fees(conn, currency="USDT")


async def escrow_state(conn, escrow_id: int):
    return dict(await queries.escrow_test_state(conn, escrow_id=escrow_id))


async def measured(call):
    async with db.meter.measure() as m:
        result = await call
    assert m.round_trips == 1, m.statements
    return result


# --- opening --------------------------------------------------------------------------------


async def test_either_party_opens_a_dispute_in_one_round_trip(conn):
    ids = await people(conn)
    by_buyer = await accepted(conn)
    d = await measured(
        open_dispute(conn, escrow_id=by_buyer.id, telegram_id=BUYER, reason="  Not delivered  ")
    )
    assert (d.escrow_id, d.opened_by_id, d.reason) == (by_buyer.id, ids[BUYER], "Not delivered")
    assert d.status is DisputeStatus.OPEN and d.resolution is None and d.admin_id is None
    escrow = (await escrow_state(conn, by_buyer.id))["escrow"]
    assert escrow["status"] == "disputed"

    by_seller = await accepted(conn)
    await mark_delivered(conn, escrow_id=by_seller.id, telegram_id=SELLER)
    d = await open_dispute(conn, escrow_id=by_seller.id, telegram_id=SELLER, reason="No reply")
    assert d.opened_by_id == ids[SELLER]
    escrow = (await escrow_state(conn, by_seller.id))["escrow"]
    # Disputed: the auto-release clock no longer runs.
    assert escrow["status"] == "disputed" and escrow["auto_release_at"] is None


async def test_opening_is_refused_for_strangers_wrong_statuses_and_empty_reasons(conn):
    await people(conn)
    e = await accepted(conn)
    before = await escrow_state(conn, e.id)
    with pytest.raises(NotAParty):
        await open_dispute(conn, escrow_id=e.id, telegram_id=STRANGER, reason="Mine")
    with pytest.raises(NotAParty):  # an admin is no party, and 'dispute' is no admin action
        await open_dispute(conn, escrow_id=e.id, telegram_id=ADMIN, reason="Hmm")
    with pytest.raises(Invalid):
        await open_dispute(conn, escrow_id=e.id, telegram_id=BUYER, reason="   ")
    with pytest.raises(Invalid):
        await open_dispute(conn, escrow_id=e.id, telegram_id=BUYER, reason="x" * 1001)
    with pytest.raises(NotFound):
        await open_dispute(conn, escrow_id=99999, telegram_id=BUYER, reason="Where?")
    assert await escrow_state(conn, e.id) == before

    await open_dispute(conn, escrow_id=e.id, telegram_id=BUYER, reason="First")
    with pytest.raises(WrongStatus) as err:
        await open_dispute(conn, escrow_id=e.id, telegram_id=SELLER, reason="Second")
    assert err.value.status == "disputed"


# --- the chat ---------------------------------------------------------------------------------


async def test_parties_and_an_admin_write_and_the_first_admin_takes_the_dispute(conn):
    ids = await people(conn)
    e = await accepted(conn)
    d = await open_dispute(conn, escrow_id=e.id, telegram_id=BUYER, reason="Scratched")

    m = await measured(post_dispute_message(conn, dispute_id=d.id, telegram_id=BUYER, body="Look"))
    assert (m.dispute_id, m.sender_id, m.body) == (d.id, ids[BUYER], "Look")
    row = await queries.dispute_test_row(conn, dispute_id=d.id)
    assert row["last_message_at"] == m.created_at and row["status"] == "open"

    await post_dispute_message(conn, dispute_id=d.id, telegram_id=SELLER, body="It was fine")
    said = await post_dispute_message(conn, dispute_id=d.id, telegram_id=ADMIN, body="Checking")
    row = await queries.dispute_test_row(conn, dispute_id=d.id)
    assert row["admin_id"] == ids[ADMIN] and row["status"] == "in_review"
    assert row["last_message_at"] == said.created_at and row["messages"] == 3


async def test_a_stranger_cannot_write_and_bad_bodies_are_refused(conn):
    await people(conn)
    e = await accepted(conn)
    d = await open_dispute(conn, escrow_id=e.id, telegram_id=BUYER, reason="Scratched")
    before = await escrow_state(conn, e.id)
    with pytest.raises(NotAParty):
        await post_dispute_message(conn, dispute_id=d.id, telegram_id=STRANGER, body="Hi")
    with pytest.raises(NotAParty):
        await post_dispute_message(conn, dispute_id=d.id, telegram_id=424242, body="Hi")
    with pytest.raises(Invalid):
        await post_dispute_message(conn, dispute_id=d.id, telegram_id=BUYER, body=" ")
    with pytest.raises(Invalid):
        await post_dispute_message(conn, dispute_id=d.id, telegram_id=BUYER, body="x" * 4001)
    with pytest.raises(NotFound):
        await post_dispute_message(conn, dispute_id=d.id + 1, telegram_id=BUYER, body="Hi")
    assert await escrow_state(conn, e.id) == before
    row = await queries.dispute_test_row(conn, dispute_id=d.id)
    assert row["messages"] == 0 and row["last_message_at"] is None


# --- resolution -------------------------------------------------------------------------------

# amount 100 USDT, split fee 5: the buyer paid 102.5, the holding holds 102.5.
# buyer_share -> (resolution, buyer gets, seller gets, platform keeps, escrow status)
RESOLUTIONS = {
    "100": (DisputeResolution.REFUND, D("102.5"), D("0"), D("0"), EscrowStatus.REFUNDED),
    "0": (DisputeResolution.RELEASE, D("0"), D("97.5"), D("5"), EscrowStatus.COMPLETED),
    "40": (DisputeResolution.SPLIT, D("40"), D("57.5"), D("5"), EscrowStatus.COMPLETED),
}


@pytest.mark.parametrize("share", list(RESOLUTIONS))
async def test_resolution_pays_out_the_whole_holding_exactly(conn, share):
    ids = await people(conn)
    resolution, to_buyer, to_seller, to_platform, status = RESOLUTIONS[share]
    e = await accepted(conn)
    d = await open_dispute(conn, escrow_id=e.id, telegram_id=BUYER, reason="Scratched")

    r = await measured(
        resolve_dispute(conn, dispute_id=d.id, admin_telegram_id=ADMIN, buyer_share=D(share))
    )
    assert (r.resolution, r.escrow_status, r.buyer_share) == (resolution, status, D(share))
    assert (r.buyer_amount, r.seller_amount, r.platform_fee) == (to_buyer, to_seller, to_platform)
    assert r.buyer_amount + r.seller_amount + r.platform_fee == D("102.5")
    assert await available(conn, BUYER) == D("1000") - D("102.5") + to_buyer
    assert await available(conn, SELLER) == to_seller
    assert await fees(conn) == to_platform
    assert await queries.escrow_test_holding(conn, escrow_id=e.id) == 0

    row = await queries.dispute_test_row(conn, dispute_id=d.id)
    assert row["status"] == "resolved" and row["resolution"] == resolution.value
    assert row["buyer_share"] == D(share) and row["admin_id"] == ids[ADMIN]
    assert row["resolved_at"] == r.resolved_at
    escrow = (await escrow_state(conn, e.id))["escrow"]
    assert escrow["status"] == status.value and escrow["closed_at"] is not None


async def test_a_split_charges_the_seller_fee_only_as_far_as_the_sellers_part_goes(conn):
    await people(conn)
    e = await accepted(conn, fee_split=FeeSplit.SELLER)  # the seller bears all 5 of the fee
    d = await open_dispute(conn, escrow_id=e.id, telegram_id=SELLER, reason="Buyer vanished")
    r = await resolve_dispute(
        conn, dispute_id=d.id, admin_telegram_id=ADMIN, buyer_share=D("98.000001")
    )
    assert r.resolution is DisputeResolution.SPLIT
    assert (r.buyer_amount, r.seller_amount, r.platform_fee) == (
        D("98.000001"),
        D("0"),
        D("1.999999"),
    )
    assert await available(conn, BUYER) == D("1000") - 100 + D("98.000001")
    assert await available(conn, SELLER) == 0


async def test_a_release_by_resolution_earns_the_referral_reward(conn):
    await people(conn)
    await seeding.set_referrer(conn, SELLER, REFERRER)
    e = await accepted(conn)
    d = await open_dispute(conn, escrow_id=e.id, telegram_id=BUYER, reason="Late")
    r = await resolve_dispute(conn, dispute_id=d.id, admin_telegram_id=ADMIN, buyer_share=D(0))
    assert [x.amount for x in r.rewards] == [D("0.5")]
    assert await available(conn, REFERRER) == D("0.5")
    assert await fees(conn) == D("4.5")


async def test_a_reward_that_rounds_to_nothing_is_not_paid_and_waits_for_a_later_trade(conn):
    await people(conn)
    await seeding.set_referrer(conn, BUYER, REFERRER)
    e = await accepted(conn, fee_split=FeeSplit.SELLER)
    d = await open_dispute(conn, escrow_id=e.id, telegram_id=BUYER, reason="Mostly broken")
    # The platform keeps 0.000001; a tenth of it is below USDT's precision.
    r = await resolve_dispute(
        conn, dispute_id=d.id, admin_telegram_id=ADMIN, buyer_share=D("99.999999")
    )
    assert r.platform_fee == D("0.000001") and r.rewards == ()
    assert [x async for x in queries.escrow_test_referral_rewards(conn)] == []

    later = await accepted(conn)
    done = await release_escrow(conn, escrow_id=later.id, telegram_id=BUYER)
    assert [x.amount for x in done.rewards] == [D("0.5")]


async def test_resolution_is_refused_to_non_admins_bad_shares_and_twice(conn):
    await people(conn)
    e = await accepted(conn)
    d = await open_dispute(conn, escrow_id=e.id, telegram_id=BUYER, reason="Scratched")
    before = await escrow_state(conn, e.id)
    with pytest.raises(NotAParty):
        await resolve_dispute(conn, dispute_id=d.id, admin_telegram_id=STRANGER, buyer_share=D(0))
    with pytest.raises(WrongStatus):  # a party is no judge of its own trade
        await resolve_dispute(conn, dispute_id=d.id, admin_telegram_id=BUYER, buyer_share=D(100))
    for share in ("-1", "100.000001", "0.0000001"):
        with pytest.raises(Invalid):
            await resolve_dispute(
                conn, dispute_id=d.id, admin_telegram_id=ADMIN, buyer_share=D(share)
            )
    with pytest.raises(NotFound):
        await resolve_dispute(conn, dispute_id=d.id + 7, admin_telegram_id=ADMIN, buyer_share=D(0))
    assert await escrow_state(conn, e.id) == before

    await resolve_dispute(conn, dispute_id=d.id, admin_telegram_id=ADMIN, buyer_share=D(100))
    with pytest.raises(WrongStatus) as err:
        await resolve_dispute(conn, dispute_id=d.id, admin_telegram_id=ADMIN, buyer_share=D(0))
    assert err.value.status == "refunded"
    with pytest.raises(WrongStatus):
        await post_dispute_message(conn, dispute_id=d.id, telegram_id=BUYER, body="But...")
    assert await available(conn, BUYER) == D("1000")


async def test_two_admins_resolving_at_once_pay_out_once(pool, conn):
    await people(conn)
    await seeding.user(conn, ADMIN + 10)
    await seeding.make_admin(conn, ADMIN + 10)
    e = await accepted(conn)
    d = await open_dispute(conn, escrow_id=e.id, telegram_id=BUYER, reason="Scratched")
    results = await asyncio.gather(
        resolve_dispute(pool, dispute_id=d.id, admin_telegram_id=ADMIN, buyer_share=D(100)),
        resolve_dispute(pool, dispute_id=d.id, admin_telegram_id=ADMIN + 10, buyer_share=D(0)),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["Resolution", "WrongStatus"]
    won = next(r for r in results if not isinstance(r, Exception))
    assert await available(conn, SELLER) == won.seller_amount
    assert await available(conn, BUYER) == D("1000") - D("102.5") + won.buyer_amount
