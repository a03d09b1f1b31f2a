"""The referral screen through the real Application: code, invite link, count, rewards per
currency, the 10 latest referrals; one round trip; blocked and unknown users."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import unquote

import seeding

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
from bot.handlers.ui import BLOCKED, NOT_REGISTERED
from bot.offline import BOT_USERNAME

BOSS, SELLER = 4101, 4102


async def join(conn, telegram_id: int, code: str, first_name: str) -> None:
    reg = await register_user(
        conn,
        telegram_id=telegram_id,
        username=f"friend{telegram_id}",
        first_name=first_name,
        referral_code=code,
    )
    assert reg.referrer_id is not None


async def first_trade(conn, buyer: int, currency: str, amount: str) -> None:
    """`buyer`'s first completed escrow with SELLER: it earns their referrer a reward."""
    await seeding.credit(conn, buyer, currency, str(Decimal(amount) * 2))
    e = await create_escrow(
        conn,
        buyer_telegram_id=buyer,
        seller_handle=f"@user{SELLER}",
        currency=currency,
        amount=Decimal(amount),
        description="Goods",
        fee_split=FeeSplit.BUYER,
    )
    await fund_escrow_from_wallet(
        conn, escrow_id=e.id, telegram_id=buyer, idempotency_key=f"pay-{e.id}"
    )
    await accept_escrow(conn, escrow_id=e.id, telegram_id=SELLER)
    await mark_delivered(conn, escrow_id=e.id, telegram_id=SELLER)
    await release_escrow(conn, escrow_id=e.id, telegram_id=buyer)


async def test_the_screen_shows_code_link_count_rewards_and_latest_in_one_round_trip(conn, chat):
    await seeding.user(conn, BOSS, "Boss")
    await seeding.user(conn, SELLER, "Seller")
    code = (await referral_context(conn, telegram_id=BOSS)).referral_code
    for n in range(12):
        await join(conn, 4200 + n, code, f"<i>Friend</i> {n} & co")
    await first_trade(conn, 4200, "USDT", "100")  # 10% of a 5% fee: 0.5 USDT
    await first_trade(conn, 4201, "BTC", "0.01")  # 0.00005 BTC

    step = await chat(BOSS, "Boss").send("/referral")

    assert step.round_trips == 1
    text = step.text
    assert f"Your code: <code>{code}</code>" in text
    assert f"https://t.me/{BOT_USERNAME}?start={code}" in text
    assert "Friends who joined: <b>12</b>" in text
    assert "Rewards earned: <b>0.00005 BTC, 0.5 USDT</b>" in text
    # The 10 latest, newest first, names escaped; the 2 first ones only counted.
    assert "&lt;i&gt;Friend&lt;/i&gt; 11 &amp; co" in text
    assert text.index("Friend&lt;/i&gt; 11") < text.index("Friend&lt;/i&gt; 2 ")
    assert "Friend&lt;/i&gt; 1 " not in text and "Friend&lt;/i&gt; 0 " not in text
    assert "… and 2 earlier" in text
    assert text.count("✅ rewarded") == 0  # the rewarded two are not among the 10 latest
    share = step.screen.button("Share")
    assert unquote(share).startswith(f"https://t.me/share/url?url=https://t.me/{BOT_USERNAME}")
    assert "menu:open" in step.screen.callbacks


async def test_rewarded_referrals_are_marked(conn, chat):
    await seeding.user(conn, BOSS, "Boss")
    await seeding.user(conn, SELLER)
    code = (await referral_context(conn, telegram_id=BOSS)).referral_code
    await join(conn, 4300, code, "Paid")
    await join(conn, 4301, code, "Idle")
    await first_trade(conn, 4300, "NGN", "10000")  # 10% of a ₦500 fee

    text = (await chat(BOSS).send("/referral")).text

    assert "Rewards earned: <b>₦50.00</b>" in text
    lines = {line.split(",")[0]: line for line in text.splitlines() if line.startswith("• ")}
    assert lines["• Paid"].endswith("✅ rewarded")
    assert lines["• Idle"].endswith("⏳ no completed trade yet")
    # Newest first.
    assert list(lines) == ["• Idle", "• Paid"]


async def test_nobody_referred_yet(conn, chat):
    await seeding.user(conn, BOSS)
    step = await chat(BOSS).send("/referral")
    assert "Friends who joined: <b>0</b>" in step.text
    assert "Rewards earned: none yet" in step.text and "Latest" not in step.text


async def test_the_menu_button_edits_in_place(conn, chat):
    await seeding.user(conn, BOSS)
    boss = chat(BOSS)
    menu = await boss.send("/menu")
    step = await boss.tap("Referral")
    assert step.round_trips == 1
    assert step.screen.message_id == menu.screen.message_id
    assert "Invite friends" in step.text


async def test_a_blocked_user_gets_one_clear_message(conn, chat):
    await seeding.user(conn, BOSS)
    boss = chat(BOSS)
    menu = (await boss.send("/menu")).screen
    await seeding.block(conn, BOSS)
    pressed = "referral:open"
    for step in (await boss.send("/referral"), await boss.press(pressed, on=menu)):
        assert step.round_trips == 1
        assert [r.text for r in step.replies] == [BLOCKED]
        assert step.screen.buttons == []


async def test_an_unknown_user_is_sent_to_start(chat):
    step = await chat(4999).send("/referral")
    assert step.text == NOT_REGISTERED and step.screen.buttons == []


async def test_a_user_still_onboarding_is_sent_to_start(conn, chat):
    await register_user(conn, telegram_id=4998, username="halfway", first_name="Half")
    step = await chat(4998).send("/referral")
    assert step.round_trips == 1 and step.text == NOT_REGISTERED
