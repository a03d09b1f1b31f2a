"""The wallet screen and the crypto cashout through the real Application.

Round trips: 1 to open (the flow's context), 0 per step, 1 to confirm.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
import seeding

from bot.data.wallet import CryptoDestination, request_cashout, wallet_context
from bot.db import queries
from bot.handlers import wallet as wallet_flow

ADA, BAYO = 2001, 2002
TRON = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
EVM = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
BECH32 = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"


async def snapshot(conn, telegram_id: int):
    """What the database holds for the user: the wallet screen and the cashout count."""
    ctx = await wallet_context(conn, telegram_id=telegram_id)
    count = await queries.wallet_test_user_cashouts(conn, telegram_id=telegram_id)
    return ctx, count


def flows(bot, telegram_id: int) -> dict:
    return bot.user_data[telegram_id].get("flows", {})


async def to_usdt_amount(ada, balance_ok: bool = True):
    """Open the wallet and walk to the USDT amount step; the steps' round trips."""
    steps = [await ada.send("/wallet")]
    steps.append(await ada.tap("Cash out crypto"))
    steps.append(await ada.press("wallet:cur:USDT"))
    return steps


@pytest.fixture
async def ada(conn, chat):
    await seeding.user(conn, ADA, "Ada")
    await seeding.credit(conn, ADA, "USDT", "100")
    return chat(ADA, "Ada")


# --- the wallet screen -------------------------------------------------------------


async def test_wallet_command_is_one_round_trip_with_the_cashout_buttons(conn, ada, bot):
    await seeding.credit(conn, ADA, "BTC", "0.0005")
    step = await ada.send("/wallet")
    assert step.round_trips == 1
    assert "Wallet of Ada" in step.text
    assert "100 USDT" in step.text and "0.0005 BTC" in step.text
    assert step.screen.callbacks == ["wallet:crypto", "wallet:ngn", "menu:open"]
    # The flow's context is cached for the steps after.
    assert "wallet" in flows(bot, ADA)


async def test_wallet_button_edits_the_menu_in_place(ada):
    menu = await ada.send("/menu")
    step = await ada.press("wallet:open", on=menu.screen)
    assert step.round_trips == 1
    assert step.screen.message_id == menu.screen.message_id
    assert "Cash out crypto" in str(step.screen.buttons)


async def test_names_and_labels_are_escaped(conn, chat):
    await seeding.user(conn, BAYO, "<b>Bayo</b> & co")
    await seeding.address(conn, BAYO, TRON, label="<i>mine</i>")
    step = await chat(BAYO).send("/wallet")
    assert "&lt;b&gt;Bayo&lt;/b&gt; &amp; co" in step.text
    assert "&lt;i&gt;mine&lt;/i&gt;" in step.text


async def test_unknown_user_is_sent_to_start(chat, bot):
    step = await chat(4242).send("/wallet")
    assert step.round_trips == 1
    assert "/start" in step.text and step.screen.callbacks == []
    assert "wallet" not in flows(bot, 4242)


async def test_blocked_user_gets_one_clear_message(conn, ada, bot):
    await seeding.block(conn, ADA)
    step = await ada.send("/wallet")
    assert len(step.replies) == 1
    assert "blocked" in step.text
    assert step.screen.callbacks == []
    assert step.round_trips == 1
    assert "wallet" not in flows(bot, ADA)


# --- crypto cashout ----------------------------------------------------------------


async def test_crypto_cashout_to_a_typed_address_costs_two_round_trips(conn, ada, bot):
    steps = await to_usdt_amount(ada)
    assert "How much USDT" in steps[-1].text and "up to 99 USDT" in steps[-1].text
    steps.append(await ada.send("25"))
    assert steps[-1].screen.callbacks[:3] == [
        "wallet:net:BEP20",
        "wallet:net:ERC20",
        "wallet:net:TRC20",
    ]
    steps.append(await ada.tap("Tron"))
    assert "Paste the USDT address on Tron" in steps[-1].text
    steps.append(await ada.send(f"  {TRON}  "))
    confirm = steps[-1]
    assert "Amount: 25 USDT" in confirm.text
    assert "Fee: 1 USDT" in confirm.text
    assert "26 USDT" in confirm.text
    assert TRON in confirm.text and "Tron (TRC20)" in confirm.text
    assert "Balance after: 74 USDT" in confirm.text
    # The idempotency key is made now, kept with the flow, and carried by the button.
    key = flows(bot, ADA)["wallet"].key
    assert confirm.screen.button("Confirm") == f"wallet:confirm:{key}"
    assert [s.round_trips for s in steps] == [1, 0, 0, 0, 0, 0]

    done = await ada.tap("Confirm")

    assert done.round_trips == 1
    assert sum(s.round_trips for s in [*steps, done]) == 2
    assert "requested" in done.text and "pending" in done.text
    assert "On hold until it is paid out: 26 USDT" in done.text
    assert "Available now: 74 USDT" in done.text
    ctx, count = await snapshot(conn, ADA)
    usdt = ctx.wallet("USDT")
    assert (usdt.available, usdt.held, count) == (Decimal(74), Decimal(26), 1)
    assert ctx.cashouts_in_flight[0].address == TRON
    assert ctx.cashouts_in_flight[0].network == "TRC20"
    assert "wallet" not in flows(bot, ADA)


async def test_a_one_network_currency_skips_the_network_step(conn, ada):
    await seeding.credit(conn, ADA, "BTC", "0.01")
    await ada.send("/wallet")
    await ada.tap("Cash out crypto")
    await ada.press("wallet:cur:BTC")
    step = await ada.send("0.001")
    assert "Paste the BTC address on Bitcoin" in step.text
    confirm = await ada.send(BECH32)
    assert "Fee: 0.00005 BTC" in confirm.text and "Balance after: 0.00895 BTC" in confirm.text
    done = await ada.tap("Confirm")
    assert done.round_trips == 1
    ctx, _ = await snapshot(conn, ADA)
    assert ctx.wallet("BTC").held == Decimal("0.00105")


async def test_a_saved_address_is_picked_by_button_and_stamped_used(conn, ada):
    saved = await seeding.address(conn, ADA, TRON, label="Binance")
    await to_usdt_amount(ada)
    await ada.send("10")
    step = await ada.tap("Tron")
    assert step.screen.callbacks[0] == f"wallet:addr:{saved}"
    confirm = await ada.press(f"wallet:addr:{saved}")
    assert confirm.round_trips == 0
    assert "(Binance)" in confirm.text and "Balance after: 89 USDT" in confirm.text
    done = await ada.tap("Confirm")
    assert done.round_trips == 1
    ctx, count = await snapshot(conn, ADA)
    assert count == 1 and ctx.addresses[0].last_used_at is not None


async def test_confirm_pressed_twice_makes_one_cashout_and_one_hold(conn, ada, bot):
    await to_usdt_amount(ada)
    await ada.send("25")
    await ada.tap("Tron")
    confirm = await ada.send(TRON)
    # Both presses carry the button as it was before the first one's answer arrived.
    pressed = confirm.screen.button("Confirm")

    first = await ada.press(pressed)
    second = await ada.press(pressed)

    assert first.round_trips == 1 and second.round_trips == 1
    assert "already requested" in second.text
    assert second.screen.message_id == first.screen.message_id
    ctx, count = await snapshot(conn, ADA)
    assert count == 1
    assert ctx.wallet("USDT").held == Decimal(26)
    assert ctx.wallet("USDT").available == Decimal(74)


async def test_a_balance_spent_behind_the_flows_back_is_refused_at_confirm(conn, ada, bot):
    await to_usdt_amount(ada)
    await ada.send("50")
    await ada.tap("Tron")
    await ada.send(TRON)
    # Elsewhere (another device, an escrow), 90 USDT leave the wallet.
    await request_cashout(
        conn,
        telegram_id=ADA,
        currency="USDT",
        amount=Decimal(90),
        destination=CryptoDestination("TRC20", TRON),
        idempotency_key="elsewhere",
    )

    step = await ada.tap("Confirm")

    # The refused movement and the fresh wallet screen.
    assert step.round_trips == 2
    assert "balance changed" in step.text
    assert "9 USDT is available now, and it needs 51 USDT" in step.text
    assert "9 USDT, 91 USDT on hold" in step.text
    assert step.screen.callbacks == ["wallet:crypto", "wallet:ngn", "menu:open"]
    ctx, count = await snapshot(conn, ADA)
    assert count == 1 and ctx.wallet("USDT").held == Decimal(91)
    # The flow goes on from the fresh screen, on the fresh context.
    nxt = await ada.tap("Cash out crypto")
    assert nxt.round_trips == 0
    await ada.press("wallet:cur:USDT")
    refused = await ada.send("10")
    assert "9 USDT is available" in refused.text and refused.round_trips == 0


async def test_a_user_blocked_mid_flow_is_refused_at_confirm(conn, ada):
    await to_usdt_amount(ada)
    await ada.send("25")
    await ada.tap("Tron")
    await ada.send(TRON)
    await seeding.block(conn, ADA)
    step = await ada.tap("Confirm")
    assert "blocked" in step.text
    assert step.screen.callbacks == []
    _, count = await snapshot(conn, ADA)
    assert count == 0


BAD_AMOUNTS = [
    ("garbage", "not an amount"),
    ("-5", "more than zero"),
    ("10.1234567", "at most 6 decimal places"),
    ("60000", "maximum cashout is 50,000 USDT"),
    ("4", "minimum cashout is 5 USDT"),
    ("100", "more than you have"),
    ("9" * 4000, "too large"),
    ("🤑💸", "not an amount"),
    ("1e3", "without an exponent"),
    ("0,5", "Commas may only separate thousands"),
]


async def test_bad_amounts_are_refused_in_place_without_touching_the_database(conn, ada, bot):
    await to_usdt_amount(ada)
    before = await snapshot(conn, ADA)
    for text, why in BAD_AMOUNTS:
        step = await ada.send(text)
        assert why in step.text, (text, step.text)
        assert step.round_trips == 0
        assert len(step.text) < 400  # the input is never echoed back
        assert step.screen.callbacks == []
    assert await snapshot(conn, ADA) == before
    # Still at the amount step: a good amount goes on to the network.
    step = await ada.send("99")
    assert "Which network" in step.text


async def test_bad_addresses_are_refused_in_place(conn, ada):
    await to_usdt_amount(ada)
    await ada.send("10")
    await ada.tap("Tron")
    before = await snapshot(conn, ADA)
    for text, why in [
        (EVM, "Ethereum-style"),
        ("hello world", "34 characters"),
        ("T" + "1" * 33, "typo"),
        ("🙂", "34 characters"),
        ("x" * 4000, "far too long"),
    ]:
        step = await ada.send(text)
        assert why in step.text, (text, step.text)
        assert step.round_trips == 0
    assert await snapshot(conn, ADA) == before
    step = await ada.send(TRON)
    assert "Check and confirm" in step.text


async def test_a_currency_without_enough_funds_is_refused_with_an_alert(ada):
    await ada.send("/wallet")
    await ada.tap("Cash out crypto")
    step = await ada.press("wallet:cur:BTC")
    assert step.alerts and "Not enough BTC" in step.alerts[0]
    assert step.round_trips == 0
    # Still choosing: USDT works.
    assert "How much USDT" in (await ada.press("wallet:cur:USDT")).text


async def test_text_where_a_button_is_expected_says_so(ada):
    await ada.send("/wallet")
    await ada.tap("Cash out crypto")
    step = await ada.send("USDT please")
    assert "use the buttons" in step.text and step.round_trips == 0
    assert "How much USDT" in (await ada.press("wallet:cur:USDT")).text


async def test_a_button_of_an_older_screen_is_answered_and_the_step_stays(ada, bot):
    await to_usdt_amount(ada)
    step = await ada.press("wallet:ngn")
    assert step.alerts == [wallet_flow.STALE_BUTTON] and step.round_trips == 0
    assert flows(bot, ADA)["wallet"].currency == "USDT"
    assert "Which network" in (await ada.send("10")).text


async def test_an_old_confirm_pressed_in_a_later_flow_replays_and_keeps_that_flow(conn, ada, bot):
    await to_usdt_amount(ada)
    await ada.send("10")
    await ada.tap("Tron")
    pressed = (await ada.send(TRON)).screen.button("Confirm")
    await ada.press(pressed)
    await to_usdt_amount(ada)

    late = await ada.press(pressed)

    assert "already requested" in late.text and late.round_trips == 1
    assert (await snapshot(conn, ADA))[1] == 1
    # The flow opened since is still at its amount step.
    assert flows(bot, ADA)["wallet"].currency == "USDT"
    assert "Which network" in (await ada.send("10")).text


async def test_back_returns_to_the_wallet_screen_from_the_cache(ada, bot):
    steps = await to_usdt_amount(ada)
    step = await ada.tap("Wallet")
    assert step.round_trips == 0
    assert step.screen.message_id == steps[-1].screen.message_id
    assert "Wallet of Ada" in step.text
    assert flows(bot, ADA)["wallet"].currency is None


async def test_another_users_saved_address_or_key_is_refused(conn, ada, chat, bot):
    await seeding.user(conn, BAYO, "Bayo")
    theirs = await seeding.address(conn, BAYO, TRON)
    await to_usdt_amount(ada)
    await ada.send("10")
    await ada.tap("Tron")
    before = await snapshot(conn, ADA)

    step = await ada.press(f"wallet:addr:{theirs}")

    assert step.alerts == ["That address is not one of yours for this network."]
    assert step.round_trips == 0
    assert await snapshot(conn, ADA) == before
    # Still at the address step.
    assert "Check and confirm" in (await ada.send(TRON)).text
    # A confirm key that is not this user's own pending one confirms nothing.
    bayo = chat(BAYO, "Bayo")
    await bayo.send("/wallet")
    forged = await bayo.press(f"wallet:confirm:{flows(bot, ADA)['wallet'].key}")
    assert forged.alerts == [wallet_flow.STALE_BUTTON] and forged.round_trips == 0
    assert (await snapshot(conn, BAYO))[1] == 0 and (await snapshot(conn, ADA))[1] == 0


async def test_cancel_mid_flow_changes_nothing_and_drops_the_cache(conn, ada, bot):
    await to_usdt_amount(ada)
    await ada.send("10")
    await ada.tap("Tron")
    pressed = (await ada.send(TRON)).screen.button("Confirm")
    before = await snapshot(conn, ADA)

    step = await ada.send("/cancel")

    assert "Cancelled" in step.text and step.round_trips == 0
    assert "wallet" not in flows(bot, ADA)
    assert await snapshot(conn, ADA) == before
    # The old Confirm button is dead, and typing is no longer the flow's step.
    late = await ada.press(pressed)
    assert "expired" in late.text and late.round_trips == 0
    typed = await ada.send(TRON)
    assert not any("Check and confirm" in r.text for r in typed.replies)
    assert await snapshot(conn, ADA) == before


async def test_the_cancel_button_ends_the_flow(conn, ada, bot):
    await to_usdt_amount(ada)
    step = await ada.tap("Cancel")
    assert "Cancelled" in step.text and step.round_trips == 0
    assert "wallet" not in flows(bot, ADA)
    assert (await ada.send("10")).replies == []


def wallet_timeouts(job_queue) -> list:
    return [
        j
        for j in job_queue.jobs()
        if getattr(getattr(j.callback, "__self__", None), "name", None) == "wallet"
    ]


async def test_the_conversation_timeout_ends_the_flow_and_drops_the_cache(conn, ada, bot):
    await to_usdt_amount(ada)
    assert "wallet" in flows(bot, ADA)
    # The 15-minute job never fires during a test: the test runs it.
    jobs = wallet_timeouts(bot.job_queue)
    assert len(jobs) == 1

    await jobs[0].run(bot)

    assert "wallet" not in flows(bot, ADA)
    step = await ada.send("10")
    assert step.replies == [] and step.round_trips == 0
    _, count = await snapshot(conn, ADA)
    assert count == 0


async def test_opening_another_screen_ends_the_flow(ada, bot):
    await to_usdt_amount(ada)
    step = await ada.send("/menu")
    assert "Hello, Ada" in step.text
    assert "wallet" not in flows(bot, ADA)
    assert (await ada.send("10")).replies == []


def test_the_fee_is_rounded_up_and_the_most_cashable_fits():
    from bot.data.wallet import Wallet

    naira = Wallet("NGN", "fiat", 2, Decimal("10150"), Decimal(0), None, None, False, Decimal(1000),
                   Decimal(5000000), Decimal(100), Decimal("0.005"), ())  # fmt: skip
    assert wallet_flow.cashout_fee(naira, Decimal("10000")) == Decimal("150")
    assert wallet_flow.cashout_fee(naira, Decimal("1000.01")) == Decimal("105.01")
    best = wallet_flow.most_cashable(naira)
    assert best == Decimal("10000")
    assert best + wallet_flow.cashout_fee(naira, best) <= naira.available


async def test_the_wallet_says_plainly_when_its_rates_are_out_of_date(conn, chat):
    await seeding.user(conn, 4801, "Rotimi")
    await seeding.credit(conn, 4801, "BTC", "0.5")
    await seeding.rate(conn, "BTC", "USD", "97000")
    rotimi = chat(4801)

    fresh = await rotimi.send("/wallet")
    await queries.exchange_test_age_rates(conn, seconds=3600)
    old = await rotimi.send("/wallet")

    assert "≈ $48,500.00" in fresh.text and "old rate" not in fresh.text
    assert "Rates as of" in fresh.text
    assert "≈ $48,500.00 (old rate)" in old.text
    assert "out of date" in old.text and "exchanges are paused" in old.text
