"""The exchange flow through the real Application: pick → amount → destination → quote →
confirm in 3 round trips, refusals at every step, and the keyset-paged history."""

from __future__ import annotations

from dataclasses import replace
from decimal import ROUND_DOWN, Decimal

import seeding

from bot.data.exchange import exchange_context, execute_exchange, lock_rate
from bot.db import queries
from bot.handlers import exchange as ui_exchange
from bot.handlers.ui import BLOCKED, CANCELLED, EXPIRED, NOT_REGISTERED

ALICE, BOB = 61001, 61002
D = Decimal


async def market(conn, *users: int) -> None:
    """1 BTC = $97,000 and $1 = ₦1,500: 1 BTC = ₦145,500,000 at market, less 1.5% markup."""
    for telegram_id in users:
        await seeding.user(conn, telegram_id)
    await seeding.rate(conn, "BTC", "USD", "97000")
    await seeding.rate(conn, "USD", "NGN", "1500")


async def balance(conn, telegram_id: int, currency: str) -> Decimal:
    ctx = await exchange_context(conn, telegram_id=telegram_id)
    return ctx.wallet(currency).available


async def orders(conn, telegram_id: int) -> int:
    return await queries.exchange_test_user_orders(conn, telegram_id=telegram_id)


def order_id_on(screen) -> int:
    """The quoted order's id, from the Confirm button's callback data."""
    return int(screen.button("Confirm").rsplit(":", 1)[1])


async def to_quote(chat, amount: str = "0.01", direction: str = "BTC → NGN"):
    """/exchange, a direction, an amount, the wallet: the steps on the way (only the last
    one's screen is still as it was shown: the steps edit the same message)."""
    steps = [await chat.send("/exchange")]
    steps.append(await chat.tap(direction))
    steps.append(await chat.send(amount))
    steps.append(await chat.tap("My "))
    return steps


# --- the whole flow ---------------------------------------------------------------


async def test_crypto_to_naira_costs_three_round_trips(conn, chat):
    await market(conn, ALICE)
    await seeding.credit(conn, ALICE, "BTC", "0.5")
    alice = chat(ALICE)

    opened = await alice.send("/exchange")
    assert opened.round_trips == 1
    assert "0.5 BTC" in opened.text and "₦0.00" in opened.text
    assert "1 BTC = $97,000.00 · updated just now" in opened.text
    assert "$1 = ₦1,500.00 · updated just now" in opened.text
    # Only BTC is priced: the other cryptos are said to have no quote, and have no button.
    assert "No quote right now for ETH, LTC, USDT" in opened.text
    picks = [c for c in opened.screen.callbacks if c.startswith("exchange:pick:")]
    assert picks == ["exchange:pick:BTC:NGN", "exchange:pick:NGN:BTC"]
    assert "exchange:history" in opened.screen.callbacks
    assert "menu:open" in opened.screen.callbacks

    picked = await alice.tap("BTC → NGN")
    assert picked.round_trips == 0
    assert "How much BTC" in picked.text
    assert "from 0.0002 BTC to 2 BTC" in picked.text and "has 0.5 BTC" in picked.text

    amount = await alice.send("0.01")
    assert amount.round_trips == 0
    assert "Where should the NGN go?" in amount.text
    assert amount.screen.callbacks[0] == "exchange:dest:wallet"

    quoted = await alice.tap("My NGN wallet")
    assert quoted.round_trips == 1
    # 0.01 x 145,500,000 = 1,455,000 at market; less 1.5% = 1,433,175.
    assert "You give: <b>0.01 BTC</b>" in quoted.text
    assert "You get: <b>₦1,433,175.00</b>, into your NGN wallet" in quoted.text
    assert "Rate: 1 BTC = ₦143,317,500.00" in quoted.text
    assert "Market: 1 BTC = ₦145,500,000.00, less our 1.5% markup" in quoted.text
    assert "Markup: ₦21,825.00" in quoted.text
    assert "locked until <b>" in quoted.text and "UTC</b> (10 min)" in quoted.text
    order_id = order_id_on(quoted.screen)
    assert await balance(conn, ALICE, "BTC") == D("0.5")  # a quote moves nothing

    done = await alice.tap("Confirm")
    assert done.round_trips == 1
    assert "Exchanged" in done.text
    assert "You gave 0.01 BTC and got <b>₦1,433,175.00</b>" in done.text
    assert "BTC wallet: 0.49 BTC" in done.text and "NGN wallet: ₦1,433,175.00" in done.text
    assert f"Order #{order_id}" in done.text

    steps = [opened, picked, amount, quoted, done]
    assert [s.round_trips for s in steps] == [1, 0, 0, 1, 1]
    assert sum(s.round_trips for s in steps) == 3
    assert await balance(conn, ALICE, "BTC") == D("0.49")
    assert await balance(conn, ALICE, "NGN") == D("1433175")
    assert await queries.exchange_test_transfers(conn, order_id=order_id) == 1
    # Completion dropped the flow's context.
    assert ui_exchange.FLOW not in alice.app.user_data[ALICE].get("flows", {})


async def test_naira_to_crypto_costs_three_round_trips(conn, chat):
    await market(conn, ALICE)
    await seeding.credit(conn, ALICE, "NGN", "2000000")
    alice = chat(ALICE)

    # A Sent is the message as it stands now: read each screen before the next step edits it.
    steps = [await alice.send("/exchange"), await alice.tap("NGN → BTC")]
    assert "How much NGN" in steps[1].text and "from ₦5,000.00 to ₦20,000,000.00" in steps[1].text
    steps.append(await alice.send("1,000,000"))
    assert "Where should the BTC go?" in steps[2].text
    steps.append(await alice.tap("My BTC wallet"))
    # 1,000,000 x 0.985 / 145,500,000 = 0.0067697594..., cut at 8 decimals.
    gets = (D(1000000) * D("0.985") / D(145500000)).quantize(D("1e-8"), rounding=ROUND_DOWN)
    assert gets == D("0.00676975")
    assert "You give: <b>₦1,000,000.00</b>" in steps[3].text
    assert "You get: <b>0.00676975 BTC</b>, into your BTC wallet" in steps[3].text
    # The stored rates are BTC per naira: their inverse is shown as approximate.
    assert "Market: 1 BTC = ≈₦145,500,000.00, less our 1.5% markup" in steps[3].text
    assert "Rate: 1 BTC = ≈₦147,715,736.00" in steps[3].text  # 145,500,000 / 0.985 = ...736.04
    assert "Markup: 0.0001031 BTC" in steps[3].text  # 1,000,000 / 145,500,000 x 1.5%, cut
    steps.append(await alice.tap("Confirm"))

    assert [s.round_trips for s in steps] == [1, 0, 0, 1, 1]
    assert await balance(conn, ALICE, "NGN") == D("1000000")
    assert await balance(conn, ALICE, "BTC") == gets


# --- refusals ---------------------------------------------------------------------


async def test_bad_amounts_are_refused_in_place_at_no_cost(conn, chat):
    await market(conn, ALICE)
    await seeding.credit(conn, ALICE, "BTC", "0.5")
    alice = chat(ALICE)
    await alice.send("/exchange")
    await alice.tap("BTC → NGN")

    cases = {
        "lots": "not an amount",
        "-5": "more than zero",
        "0": "more than zero",
        "0.000000001": "at most 8 decimal places",
        "3": "The maximum for BTC → NGN is 2 BTC",
        "0.0001": "The minimum for BTC → NGN is 0.0002 BTC",
        "0.6": "more than your BTC wallet holds: 0.5 BTC",
        "1" * 4000: "too large",
        "9" * 4001: "far too long",
        "💰🚀": "not an amount",
        "<b>1</b>": "not an amount",
    }
    for text, why in cases.items():
        step = await alice.send(text)
        assert step.round_trips == 0, text
        assert why in step.text, (text, step.text)
        assert "How much BTC" in step.text  # the same step, asked again
        assert step.screen.callbacks == ["exchange:open", "exchange:cancel"]

    # Still at the amount step: a good amount goes on.
    step = await alice.send("0.5")
    assert step.round_trips == 0 and "Where should the NGN go?" in step.text

    # The destination step takes only what it offers; made-up callback data changes nothing.
    made_up = await alice.press("exchange:dest:bank_account:1")
    assert made_up.alerts == ["That destination is not offered."]
    assert made_up.round_trips == 0 and made_up.replies == []
    assert "exchange:dest:wallet" in alice.last.callbacks
    assert await orders(conn, ALICE) == 0
    assert await balance(conn, ALICE, "BTC") == D("0.5")


async def test_the_wallet_balance_as_fetched_bounds_the_amount(conn, chat):
    await market(conn, ALICE)
    alice = chat(ALICE)
    await alice.send("/exchange")
    picked = await alice.tap("BTC → NGN")
    assert "has 0 BTC" in picked.text and "below the minimum: top up" in picked.text
    step = await alice.send("0.001")
    assert "more than your BTC wallet holds: 0 BTC" in step.text and step.round_trips == 0


async def test_an_expired_quote_offers_a_new_one(conn, chat):
    await market(conn, ALICE)
    await seeding.credit(conn, ALICE, "BTC", "0.5")
    alice = chat(ALICE)
    steps = await to_quote(alice)
    old = order_id_on(steps[-1].screen)
    await queries.exchange_test_lapse_lock(conn, order_id=old)

    expired = await alice.tap("Confirm")
    assert expired.round_trips == 1
    assert "This quote has expired" in expired.text and "Nothing was exchanged" in expired.text
    assert "exchange:requote" in expired.screen.callbacks
    assert (await queries.exchange_test_order(conn, order_id=old))["status"] == "expired"

    again = await alice.tap("New quote")
    assert again.round_trips == 1
    assert "You get: <b>₦1,433,175.00</b>" in again.text
    new = order_id_on(again.screen)
    assert new != old

    done = await alice.tap("Confirm")
    assert done.round_trips == 1 and "Exchanged" in done.text
    assert await queries.exchange_test_transfers(conn, order_id=old) == 0
    assert await queries.exchange_test_transfers(conn, order_id=new) == 1
    assert await balance(conn, ALICE, "BTC") == D("0.49")


async def test_a_rate_gone_stale_before_the_lock_gives_no_quote(conn, chat):
    await market(conn, ALICE)
    await seeding.credit(conn, ALICE, "BTC", "0.5")
    alice = chat(ALICE)
    await alice.send("/exchange")
    await alice.tap("BTC → NGN")
    await alice.send("0.01")
    await queries.exchange_test_age_rates(conn, seconds=1000)

    step = await alice.tap("My NGN wallet")
    assert step.round_trips == 1
    assert "The BTC/NGN rate is out of date, so no quote can be made right now" in step.text
    assert "Confirm" not in str(step.screen.buttons)
    assert step.screen.callbacks == ["exchange:open", "menu:open"]
    assert await orders(conn, ALICE) == 0

    # The screen says so too, and offers nothing to pick.
    screen = await alice.press("exchange:open")
    assert "naira rate is out of date (updated 16 min ago" in screen.text
    assert "under 15 min old" in screen.text
    assert "No exchange is possible right now." in screen.text
    assert not [c for c in screen.screen.callbacks if c.startswith("exchange:pick:")]


async def test_a_stale_crypto_price_is_said_plainly_and_offers_no_quote(conn, chat):
    await market(conn, ALICE)
    await queries.exchange_test_rate(conn, base="BTC", quote="USD", rate=D("96000"), age_seconds=0)
    await queries.exchange_test_age_rates(conn, seconds=200)
    await queries.exchange_test_rate(conn, base="USD", quote="NGN", rate=D("1500"), age_seconds=0)
    await queries.exchange_test_rate(conn, base="ETH", quote="USD", rate=D("3000"), age_seconds=960)
    step = await chat(ALICE).send("/exchange")
    assert "1 BTC = $96,000.00 · updated 3 min ago" in step.text
    assert "1 ETH = $3,000.00 · updated 16 min ago" in step.text
    assert "No quote right now for ETH, LTC, USDT" in step.text
    picks = [c for c in step.screen.callbacks if c.startswith("exchange:pick:")]
    assert picks == ["exchange:pick:BTC:NGN", "exchange:pick:NGN:BTC"]

    # A pick button for ETH, made up: refused from the cached context, nothing asked.
    refused = await chat(ALICE).press("exchange:pick:ETH:NGN")
    assert refused.round_trips == 0
    assert refused.alerts == ["The ETH rate is out of date: no quote right now."]
    assert refused.replies == []


async def test_money_spent_behind_the_flows_back_is_explained_with_the_fresh_screen(conn, chat):
    await market(conn, ALICE)
    await seeding.credit(conn, ALICE, "BTC", "0.5")
    alice = chat(ALICE)
    steps = await to_quote(alice, amount="0.4")
    order_id = order_id_on(steps[-1].screen)
    # Another exchange, elsewhere, spends 0.2 BTC of the 0.5 the flow saw.
    other = await lock_rate(
        conn, telegram_id=ALICE, from_currency="BTC", to_currency="NGN", amount=D("0.2")
    )
    await execute_exchange(conn, telegram_id=ALICE, order_id=other.order_id)

    step = await alice.tap("Confirm")
    assert step.round_trips == 2  # the refused movement, then the fresh screen
    assert "Your BTC balance changed since this exchange began" in step.text
    assert "0.3 BTC is available now, and it needs 0.4 BTC. Nothing was exchanged." in step.text
    assert "🔁 <b>Exchange</b>" in step.text and "0.3 BTC" in step.text
    assert "exchange:pick:BTC:NGN" in step.screen.callbacks
    assert await queries.exchange_test_transfers(conn, order_id=order_id) == 0
    assert (await queries.exchange_test_order(conn, order_id=order_id))["status"] == "quoted"
    assert await balance(conn, ALICE, "BTC") == D("0.3")

    # The flow goes on from the fresh screen.
    await alice.tap("BTC → NGN")
    assert "has 0.3 BTC" in alice.last.text


async def test_a_double_press_of_confirm_executes_once(conn, chat):
    await market(conn, ALICE)
    await seeding.credit(conn, ALICE, "BTC", "0.5")
    alice = chat(ALICE)
    steps = await to_quote(alice)
    quote_screen = steps[-1].screen
    confirm = quote_screen.button("Confirm")
    order_id = order_id_on(quote_screen)
    # Telegram delivers both presses with the message as it was when pressed.
    as_pressed = replace(quote_screen)

    first = await alice.press(confirm, on=as_pressed)
    second = await alice.press(confirm, on=as_pressed)

    assert first.round_trips == 1 and "Exchanged" in first.text
    assert second.round_trips == 0 and second.replies == []
    assert second.alerts == [ui_exchange.NOT_OPEN]
    assert await queries.exchange_test_transfers(conn, order_id=order_id) == 1
    assert await balance(conn, ALICE, "BTC") == D("0.49")
    assert await balance(conn, ALICE, "NGN") == D("1433175")


async def test_someone_elses_confirm_button_changes_nothing(conn, chat):
    await market(conn, ALICE, BOB)
    await seeding.credit(conn, ALICE, "BTC", "0.5")
    await seeding.credit(conn, BOB, "BTC", "0.5")
    alice, bob = chat(ALICE), chat(BOB)
    steps = await to_quote(alice)
    alices_order = order_id_on(steps[-1].screen)
    await to_quote(bob)  # Bob has a quote of his own open

    step = await bob.press(f"exchange:confirm:{alices_order}")
    assert step.alerts == [ui_exchange.NOT_OPEN] and step.replies == []
    assert step.round_trips == 0
    assert (await queries.exchange_test_order(conn, order_id=alices_order))["status"] == "quoted"
    assert await balance(conn, ALICE, "BTC") == D("0.5")
    assert await balance(conn, BOB, "BTC") == D("0.5")

    # Alice's own confirm still works.
    done = await alice.tap("Confirm")
    assert "Exchanged" in done.text


async def test_cancel_back_and_a_dropped_context(bot, conn, chat):
    await market(conn, ALICE)
    await seeding.credit(conn, ALICE, "BTC", "0.5")
    alice = chat(ALICE)
    await alice.send("/exchange")
    await alice.tap("BTC → NGN")

    back = await alice.tap("Exchange")  # the Back button: the screen again, fetched fresh
    assert back.round_trips == 1 and "🔁 <b>Exchange</b>" in back.text

    await alice.tap("NGN → BTC")
    cancelled = await alice.tap("Cancel")
    assert cancelled.text == CANCELLED and cancelled.round_trips == 0

    # A context dropped behind the flow's back (a balance changed, a restart): the step
    # fetches it again (1 round trip) and carries on from the choices kept.
    await alice.send("/exchange")
    await alice.tap("BTC → NGN")
    bot.user_data[ALICE].pop("flows")
    refetched = await alice.send("0.01")
    assert refetched.round_trips == 1 and "Where should the NGN go?" in refetched.text
    # With no choices kept either, there is nothing to carry on from: the step says so.
    bot.user_data[ALICE].pop("flows")
    bot.user_data[ALICE].pop("choices")
    expired = await alice.tap("My NGN wallet")
    assert expired.text == EXPIRED and expired.round_trips == 0
    assert await orders(conn, ALICE) == 0


# --- who may use it ---------------------------------------------------------------


async def test_a_blocked_user_gets_one_message(conn, chat):
    await market(conn, ALICE)
    await seeding.block(conn, ALICE)
    step = await chat(ALICE).send("/exchange")
    assert step.round_trips == 1
    assert len(step.replies) == 1 and step.text == BLOCKED
    assert step.screen.callbacks == []


async def test_an_unknown_user_is_sent_to_start(chat):
    step = await chat(ALICE).send("/exchange")
    assert step.text == NOT_REGISTERED and step.screen.callbacks == []


async def test_the_menu_button_opens_the_exchange_in_place(conn, chat):
    await market(conn, ALICE)
    alice = chat(ALICE)
    menu = await alice.send("/menu")
    step = await alice.press("exchange:open", on=menu.screen)
    assert step.round_trips == 1
    assert step.screen.message_id == menu.screen.message_id
    assert "🔁 <b>Exchange</b>" in step.text


# --- the screen's open orders and the history -------------------------------------


async def test_open_orders_show_on_the_screen(conn, chat):
    await market(conn, ALICE)
    q = await lock_rate(
        conn, telegram_id=ALICE, from_currency="NGN", to_currency="BTC", amount=D("5000")
    )
    step = await chat(ALICE).send("/exchange")
    assert "<b>Open orders</b> (1)" in step.text
    assert f"#{q.order_id} ₦5,000.00 → 0.00003384 BTC · quoted until" in step.text


async def test_history_pages_with_a_keyset_cursor(conn, chat):
    await market(conn, ALICE)
    await seeding.credit(conn, ALICE, "BTC", "1")
    ids = []
    for i in range(12):
        q = await lock_rate(
            conn,
            telegram_id=ALICE,
            from_currency="BTC",
            to_currency="NGN",
            amount=D("0.001") * (i + 1),
        )
        if i % 3 == 0:
            await execute_exchange(conn, telegram_id=ALICE, order_id=q.order_id)
        ids.append(q.order_id)
    alice = chat(ALICE)
    await alice.send("/exchange")

    first = await alice.tap("History")
    assert first.round_trips == 1
    shown = [i for i in ids if f"#{i} ·" in first.text]
    assert shown == ids[2:]  # the 10 newest
    assert first.text.index(f"#{ids[-1]} ·") < first.text.index(f"#{ids[2]} ·")
    assert "✅ completed" in first.text and "quote, not confirmed" in first.text
    older = first.screen.button("Older")
    assert older.startswith("exchange:history:") and len(older.encode()) <= 64

    second = await alice.press(older)
    assert second.round_trips == 1
    assert [i for i in ids if f"#{i} ·" in second.text] == ids[:2]
    assert "0.001 BTC → ₦143,317.50 · ✅ completed" in second.text
    assert "Older" not in str(second.screen.buttons)
    assert "exchange:history" in second.screen.callbacks  # back to the newest

    newest = await alice.tap("Newest")
    assert newest.round_trips == 1 and f"#{ids[-1]} ·" in newest.text


async def test_history_without_orders_and_a_broken_cursor(conn, chat):
    await market(conn, ALICE)
    alice = chat(ALICE)
    await alice.send("/exchange")
    empty = await alice.tap("History")
    assert "No exchanges yet." in empty.text and empty.round_trips == 1
    broken = await alice.press("exchange:history:ffff")
    assert broken.replies == [] and broken.round_trips == 0
    assert broken.alerts == ["That page is no longer available. Open the history again."]
