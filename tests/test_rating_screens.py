"""The rating summary screen: one round trip, exact averages, both roles, the latest reviews."""

from __future__ import annotations

from decimal import Decimal

import seeding

from bot import db
from bot.data.enums import FeeSplit
from bot.data.escrow import accept_escrow, create_escrow, fund_escrow_from_wallet, release_escrow
from bot.data.rating import RatingSummary, RoleRating, rate_trade, rating_summary

SUBJECT, OTHER = 7001, 7002
# Counterparties of SUBJECT; 7013 has no first name, so their username shows.
PEERS = (7010, 7011, 7012, 7013, 7014, 7015, 7016)
NAMES = {
    7010: "Ada",
    7011: "Bola",
    7012: "Chidi",
    7013: "",
    7014: "Dayo",
    7015: "Ebi",
    7016: "Femi",
}
D = Decimal


async def people(conn) -> dict[int, int]:
    ids = {}
    for t in (SUBJECT, OTHER, *PEERS):
        ids[t] = await seeding.user(conn, t, first_name=NAMES.get(t, f"Name{t}"))
        await seeding.credit(conn, t, "USDT", "1000")
    return ids


async def completed_trade(conn, buyer: int, seller: int) -> int:
    """A completed escrow between two users (telegram ids), made by the real movements."""
    e = await create_escrow(
        conn,
        buyer_telegram_id=buyer,
        seller_handle=f"@user{seller}",
        currency="USDT",
        amount=D("10"),
        description="Sneakers",
        fee_split=FeeSplit.BUYER,
    )
    await fund_escrow_from_wallet(
        conn, escrow_id=e.id, telegram_id=buyer, idempotency_key=f"pay-{e.id}"
    )
    await accept_escrow(conn, escrow_id=e.id, telegram_id=seller)
    await release_escrow(conn, escrow_id=e.id, telegram_id=buyer)
    return e.id


async def summary(conn, user_id: int) -> RatingSummary:
    async with db.meter.measure() as m:
        s = await rating_summary(conn, user_id=user_id)
    assert m.round_trips == 1, m.statements
    return s


def assert_empty(s: RatingSummary) -> None:
    assert s.average is None and s.count == 0
    assert dict(s.distribution) == {1: 0, 2: 0, 3: 0, 4: 0, 5: 0}
    assert s.as_buyer == RoleRating(None, 0) and s.as_seller == RoleRating(None, 0)
    assert s.latest == ()


async def test_nobody_rated_and_unknown_users_get_the_empty_summary(conn):
    ids = await people(conn)
    # SUBJECT trades and rates someone, but nobody rates SUBJECT.
    e = await completed_trade(conn, SUBJECT, PEERS[0])
    await rate_trade(conn, escrow_id=e, telegram_id=SUBJECT, stars=5)
    assert_empty(await summary(conn, ids[SUBJECT]))
    assert_empty(await summary(conn, 987_654_321))


async def test_average_count_distribution_and_both_roles(conn):
    ids = await people(conn)
    # As seller, three buyers rate SUBJECT 5, 4 and 2.
    for peer, stars in zip(PEERS[:3], (5, 4, 2), strict=True):
        e = await completed_trade(conn, peer, SUBJECT)
        await rate_trade(conn, escrow_id=e, telegram_id=peer, stars=stars)
        # What SUBJECT says about the buyer is about the buyer, not SUBJECT.
        await rate_trade(conn, escrow_id=e, telegram_id=SUBJECT, stars=3)
    # As buyer, two sellers rate SUBJECT 1 and 4.
    for peer, stars in zip(PEERS[3:5], (1, 4), strict=True):
        e = await completed_trade(conn, SUBJECT, peer)
        await rate_trade(conn, escrow_id=e, telegram_id=peer, stars=stars)
    # Someone else's ratings stay theirs.
    e = await completed_trade(conn, OTHER, PEERS[5])
    await rate_trade(conn, escrow_id=e, telegram_id=OTHER, stars=1)

    s = await summary(conn, ids[SUBJECT])
    assert s.count == 5
    # 16 / 5, to 2 places; 11 / 3 rounds up; 5 / 2 keeps its trailing zero.
    assert str(s.average) == "3.20"
    assert s.as_seller == RoleRating(D("3.67"), 3) and str(s.as_seller.average) == "3.67"
    assert s.as_buyer == RoleRating(D("2.50"), 2) and str(s.as_buyer.average) == "2.50"
    assert dict(s.distribution) == {1: 1, 2: 1, 3: 0, 4: 2, 5: 1}
    assert all(isinstance(a, Decimal) for a in (s.average, s.as_buyer.average))

    # Each buyer SUBJECT rated 3 has that one rating, as buyer.
    peer = await summary(conn, ids[PEERS[0]])
    assert (peer.count, peer.average, peer.as_buyer, peer.as_seller) == (
        1,
        D("3.00"),
        RoleRating(D("3.00"), 1),
        RoleRating(None, 0),
    )
    other_seller = await summary(conn, ids[PEERS[5]])
    assert other_seller.count == 1 and other_seller.latest[0].stars == 1


async def test_the_five_latest_reviews_newest_first_with_reviewer_names(conn):
    ids = await people(conn)
    comments = {7010: None, 7011: "ok", 7012: "Fast 🚀 and honest", 7013: "  fine  "}
    for n, peer in enumerate(PEERS):
        e = await completed_trade(conn, peer, SUBJECT)
        await rate_trade(
            conn, escrow_id=e, telegram_id=peer, stars=1 + n % 5, comment=comments.get(peer)
        )

    s = await summary(conn, ids[SUBJECT])
    assert s.count == 7
    # Bounded at 5: the last five raters, the most recent first.
    newest = list(reversed(PEERS))[:5]
    assert [r.rater_name for r in s.latest] == [NAMES[p] or f"user{p}" for p in newest]
    assert "user7013" in [r.rater_name for r in s.latest]
    assert [r.stars for r in s.latest] == [1 + PEERS.index(p) % 5 for p in newest]
    assert [r.comment for r in s.latest] == [None, None, None, "fine", "Fast 🚀 and honest"]
    times = [r.created_at for r in s.latest]
    assert times == sorted(times, reverse=True) and times[0].tzinfo is not None
