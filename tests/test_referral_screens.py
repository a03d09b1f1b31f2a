"""Referral screen: the code, who joined with it, the rewards they earned per currency."""

from __future__ import annotations

from decimal import Decimal

import seeding

from bot import db
from bot.data.enums import FeeSplit
from bot.data.escrow import (
    accept_escrow,
    create_escrow,
    fund_escrow_from_wallet,
    mark_delivered,
    release_escrow,
)
from bot.data.onboarding import register_user
from bot.data.referral import referral_context

REFERRER, RIVAL, SELLER = 9001, 9002, 9003
D = Decimal


async def one_trip(call):
    async with db.meter.measure() as m:
        result = await call
    assert m.round_trips == 1, m.statements
    return result


async def join(conn, telegram_id: int, code: str, first_name: str = "") -> int:
    reg = await register_user(
        conn,
        telegram_id=telegram_id,
        username=f"ref{telegram_id}",
        first_name=first_name,
        referral_code=code.lower(),  # typed in any case
    )
    assert reg.referrer_id is not None
    return reg.user_id


async def completed_trade(conn, buyer: int, currency: str, amount: str) -> None:
    """`buyer` pays `amount` to SELLER and releases it: their first completed escrow."""
    await seeding.credit(conn, buyer, currency, str(D(amount) * 2))
    e = await create_escrow(
        conn,
        buyer_telegram_id=buyer,
        seller_handle=f"@user{SELLER}",
        currency=currency,
        amount=D(amount),
        description="Goods",
        fee_split=FeeSplit.BUYER,
    )
    await fund_escrow_from_wallet(
        conn, escrow_id=e.id, telegram_id=buyer, idempotency_key=f"pay-{e.id}"
    )
    await accept_escrow(conn, escrow_id=e.id, telegram_id=SELLER)
    await mark_delivered(conn, escrow_id=e.id, telegram_id=SELLER)
    await release_escrow(conn, escrow_id=e.id, telegram_id=buyer)


async def code_of(conn, telegram_id: int) -> str:
    return (await referral_context(conn, telegram_id=telegram_id)).referral_code


async def test_an_unknown_user_is_none_in_one_round_trip(conn):
    assert await one_trip(referral_context(conn, telegram_id=404)) is None


async def test_a_user_who_referred_nobody_sees_zeros(conn):
    reg = await register_user(conn, telegram_id=REFERRER, username="boss", first_name="Boss")
    ctx = await one_trip(referral_context(conn, telegram_id=REFERRER))
    assert ctx.user_id == reg.user_id and ctx.referral_code == reg.referral_code
    assert ctx.referred_count == 0 and ctx.rewards == () and ctx.latest == ()


async def test_the_10_latest_of_12_referrals_newest_first_and_the_count(conn):
    await seeding.user(conn, REFERRER)
    code = await code_of(conn, REFERRER)
    joined = [await join(conn, 9100 + n, code, first_name=f"Friend {n} 🎉") for n in range(12)]

    ctx = await one_trip(referral_context(conn, telegram_id=REFERRER))
    assert ctx.referred_count == 12
    assert [r.user_id for r in ctx.latest] == joined[:1:-1]
    assert ctx.latest[0].display_name == "Friend 11 🎉"
    times = [r.joined_at for r in ctx.latest]
    assert times == sorted(times, reverse=True)
    assert not any(r.rewarded for r in ctx.latest)
    # No first name: the username stands in.
    await join(conn, 9200, code)
    assert (await referral_context(conn, telegram_id=REFERRER)).latest[0].display_name == "ref9200"


async def test_rewards_are_summed_per_currency_and_mark_who_earned_them(conn):
    await seeding.user(conn, REFERRER)
    await seeding.user(conn, SELLER)
    code = await code_of(conn, REFERRER)
    first, second, third, idle = [await join(conn, t, code) for t in (9101, 9102, 9103, 9104)]
    # Each buyer's first completed escrow earns 10% of its 5% fee.
    await completed_trade(conn, 9101, "USDT", "100")  # 0.5 USDT
    await completed_trade(conn, 9102, "USDT", "30")  # 0.15 USDT
    await completed_trade(conn, 9103, "BTC", "0.01")  # 0.00005 BTC
    await completed_trade(conn, 9101, "USDT", "100")  # a second trade earns nothing more

    ctx = await one_trip(referral_context(conn, telegram_id=REFERRER))
    assert [(r.currency, r.amount) for r in ctx.rewards] == [
        ("BTC", D("0.00005")),
        ("USDT", D("0.65")),
    ]
    assert ctx.referred_count == 4
    rewarded = {r.user_id: r.rewarded for r in ctx.latest}
    assert rewarded == {first: True, second: True, third: True, idle: False}


async def test_nothing_leaks_between_referrers(conn):
    await seeding.user(conn, REFERRER)
    await seeding.user(conn, RIVAL)
    await seeding.user(conn, SELLER)
    mine = await join(conn, 9101, await code_of(conn, REFERRER))
    theirs = [await join(conn, t, await code_of(conn, RIVAL)) for t in (9102, 9103)]
    await completed_trade(conn, 9102, "USDT", "100")

    me = await referral_context(conn, telegram_id=REFERRER)
    rival = await referral_context(conn, telegram_id=RIVAL)
    assert me.referred_count == 1 and [r.user_id for r in me.latest] == [mine]
    assert me.rewards == ()
    assert rival.referred_count == 2 and [r.user_id for r in rival.latest] == theirs[::-1]
    assert [(r.currency, r.amount) for r in rival.rewards] == [("USDT", D("0.5"))]
    # The referred users referred nobody themselves.
    assert (await referral_context(conn, telegram_id=9102)).referred_count == 0
