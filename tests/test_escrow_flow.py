"""Escrows through the real Application: creating one, the parties' actions, my escrows.

Every step asserts its database round trips: the creation flow costs 1 lookup and
1 to create (2 when the buyer pays from the wallet: creating does not fund), each
screen 1, each action 1, and a refused action 1 more for the fresh view.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
import seeding

from bot.data.enums import EscrowStatus, FeeSplit
from bot.data.escrow import (
    accept_escrow,
    create_escrow,
    fund_escrow_from_wallet,
    my_escrows,
)
from bot.db import queries
from bot.handlers.ui import BLOCKED, NOT_REGISTERED

BUYER, SELLER, STRANGER = 7101, 7102, 7103
S = EscrowStatus
D = Decimal


async def cast(conn, chat):
    """Bunmi buys (1,000 USDT in her wallet), Sade sells, a stranger watches."""
    await seeding.user(conn, BUYER, "Bunmi", username="BunmiBuys")
    await seeding.user(
        conn, SELLER, "Sade", username="SadeSells", email="sade@example.com", phone="+2348031234567"
    )
    await seeding.user(conn, STRANGER, "Stranger", username="JustLooking")
    await seeding.credit(conn, BUYER, "USDT", "1000")
    return chat(BUYER, "Bunmi", "BunmiBuys"), chat(SELLER, "Sade", "SadeSells"), chat(STRANGER)


async def available(conn, telegram_id: int, currency: str = "USDT") -> Decimal:
    return await queries.escrow_test_available(conn, telegram_id=telegram_id, currency=currency)


async def state(conn, escrow_id: int) -> dict:
    return dict(await queries.escrow_test_state(conn, escrow_id=escrow_id))


async def only_escrow(conn, telegram_id: int = BUYER):
    page = await my_escrows(conn, telegram_id=telegram_id, status_group="all")
    assert len(page.items) == 1
    return page.items[0]


async def escrow_in(conn, status: S, amount: str = "100") -> int:
    """An escrow of Bunmi and Sade brought to `status` by the real movements."""
    e = await create_escrow(
        conn,
        buyer_telegram_id=BUYER,
        seller_handle="@sadesells",
        currency="USDT",
        amount=D(amount),
        description="A used bicycle",
        fee_split=FeeSplit.SPLIT,
    )
    if status is S.AWAITING_PAYMENT:
        return e.id
    await fund_escrow_from_wallet(conn, escrow_id=e.id, telegram_id=BUYER, idempotency_key="t1")
    if status is S.ACCEPTED:
        await accept_escrow(conn, escrow_id=e.id, telegram_id=SELLER)
    return e.id


async def walk_to_confirm(buyer, *, handle="@SadeSells", method="crypto", amount="100"):
    """My escrows → New escrow → every step up to the confirm screen (or up to the payment
    step with method=None); the steps."""
    steps = [await buyer.send("/escrow")]
    steps.append(await buyer.tap("New escrow"))
    steps.append(await buyer.send(handle))
    steps.append(await buyer.press("escrow:cur:USDT"))
    steps.append(await buyer.send(amount))
    steps.append(await buyer.send("A used <b>bicycle</b> & a helmet"))
    steps.append(await buyer.press("escrow:split:split"))
    if method is not None:
        steps.append(await buyer.press(f"escrow:method:{method}"))
    return steps


# --- create --------------------------------------------------------------------------------


async def test_creating_an_escrow_costs_one_lookup_and_one_create(conn, chat):
    buyer, _, _ = await cast(conn, chat)

    steps = await walk_to_confirm(buyer)
    _, new, handle, currency, amount, description, split, method = steps
    assert [s.round_trips for s in steps] == [1, 0, 1, 0, 0, 0, 0, 0]
    assert "Who is the seller?" in new.text
    # The seller card: name, rating, completed trades; currency buttons.
    assert "Sade (@SadeSells)" in handle.text and "No ratings yet" in handle.text
    assert "0 completed trade(s)" in handle.text
    assert "escrow:cur:NGN" in handle.screen.callbacks
    assert "minimum is 5 USDT" in currency.text and "1,000 USDT" in currency.text
    assert "What are you buying?" in amount.text
    assert "The LockBay fee is 5 USDT" in description.text
    labels = [label for row in description.screen.buttons for label, _ in row]
    assert "Half each (you pay 2.5 USDT)" in labels
    # The wallet covers 102.5 USDT: both ways to pay are offered.
    assert set(split.screen.callbacks) >= {"escrow:method:wallet", "escrow:method:crypto"}
    assert "You will pay 102.5 USDT" in split.text
    # The confirm screen escapes the description.
    assert "A used &lt;b&gt;bicycle&lt;/b&gt; &amp; a helmet" in method.text
    assert "You pay: <b>102.5 USDT</b> by crypto transfer" in method.text
    assert "The seller receives 97.5 USDT" in method.text

    confirm = await buyer.press("escrow:confirm")

    assert confirm.round_trips == 1
    assert sum(s.round_trips for s in steps[1:]) + confirm.round_trips == 2
    item = await only_escrow(conn)
    assert item.status == S.AWAITING_PAYMENT and item.amount == D("100")
    assert "✅ Escrow created." in confirm.text and item.ref in confirm.text
    assert "Pay 102.5 USDT" in confirm.text and "with the reference" in confirm.text
    assert f"escrow:act:{item.id}:pay" in confirm.screen.callbacks
    assert f"escrow:act:{item.id}:cancel" in confirm.screen.callbacks
    # The seller is on LockBay: told, with a button to open it.
    [note] = confirm.to(SELLER)
    assert "Bunmi opened escrow" in note and "not paid yet" in note
    assert f"escrow:view:{item.id}" in buyer.telegram.sent_to(SELLER)[-1].callbacks
    assert await available(conn, BUYER) == D("1000")
    # Completion dropped the flow's cache: the confirm button again creates nothing.
    again = await buyer.press("escrow:confirm", on=confirm.screen)
    assert again.round_trips == 0
    assert len((await my_escrows(conn, telegram_id=BUYER, status_group="all")).items) == 1


async def test_paying_from_the_wallet_is_the_escrows_first_action(conn, chat):
    buyer, _, _ = await cast(conn, chat)
    steps = await walk_to_confirm(buyer, method="wallet")

    confirm = await buyer.press("escrow:confirm")

    # The flow's budget: 1 lookup, 1 to create. Paying is an action of its own.
    assert confirm.round_trips == 1
    assert sum(s.round_trips for s in steps[1:]) + confirm.round_trips == 2
    item = await only_escrow(conn)
    assert item.status == S.AWAITING_PAYMENT
    assert "Pay it from your wallet" in confirm.text
    assert await available(conn, BUYER) == D("1000")

    paid = await buyer.press(f"escrow:act:{item.id}:pay")

    assert paid.round_trips == 1
    assert (await only_escrow(conn)).status == S.FUNDED
    assert await available(conn, BUYER) == D("897.5")
    assert any("is funded" in note for note in paid.to(SELLER))


async def test_wallet_drained_before_paying_refuses_and_says_why(conn, chat):
    buyer, _, _ = await cast(conn, chat)
    await walk_to_confirm(buyer, method="wallet")
    confirm = await buyer.press("escrow:confirm")
    item = await only_escrow(conn)
    # Behind the flow's back: 950 USDT go on hold for a cashout.
    await seeding.cashout(conn, BUYER, "USDT", "950")

    paid = await buyer.press(f"escrow:act:{item.id}:pay", on=confirm.screen)

    # The refused payment, then the fresh view.
    assert paid.round_trips == 2
    assert "Not enough USDT: 50 USDT available, 102.5 USDT needed." in paid.text
    assert (await only_escrow(conn)).status == S.AWAITING_PAYMENT
    assert f"escrow:act:{item.id}:pay" in paid.screen.callbacks
    assert await available(conn, BUYER) == D("50")


async def test_wallet_too_small_offers_only_the_outside_way_to_pay(conn, chat):
    buyer, _, _ = await cast(conn, chat)
    steps = await walk_to_confirm(buyer, amount="999", method=None)
    split = steps[-1]
    # 999 + half of the 49.95 fee is more than the 1,000 USDT in the wallet.
    assert "You will pay 1,023.975 USDT" in split.text
    assert split.screen.callbacks == ["escrow:method:crypto", "escrow:stop"]
    assert "not enough to pay from it" in split.text
    # A hand-made wallet button is refused at the same step, for free.
    refused = await buyer.press("escrow:method:wallet")
    assert refused.round_trips == 0 and refused.alerts == ["Pick one of the options shown."]
    chosen = await buyer.press("escrow:method:crypto")
    assert chosen.round_trips == 0 and "Check and confirm" in chosen.text


async def test_an_unknown_seller_will_be_invited_and_nobody_is_notified(conn, chat):
    buyer, _, _ = await cast(conn, chat)
    steps = await walk_to_confirm(buyer, handle="newbie@example.com")
    assert "not on LockBay yet — they will be invited" in steps[2].text
    assert "escrow:seller_rating" not in steps[2].screen.callbacks

    confirm = await buyer.press("escrow:confirm")

    assert confirm.round_trips == 1
    assert [c.params["chat_id"] for c in confirm.calls if c.method == "sendMessage"] == []
    assert "newbie@example.com is not on LockBay yet" in confirm.text
    item = await only_escrow(conn)
    assert item.counterparty_invited and item.counterparty_name == "newbie@example.com"


async def test_the_seller_ratings_come_from_the_lookup_and_the_flow_goes_on(conn, chat):
    buyer, _, _ = await cast(conn, chat)
    await buyer.send("/escrow")
    await buyer.tap("New escrow")
    card = await buyer.send("sade@example.com")

    ratings = await buyer.tap("Seller's ratings")
    back = await buyer.tap("Back")
    currency = await buyer.press("escrow:cur:USDT")

    assert (ratings.round_trips, back.round_trips, currency.round_trips) == (0, 0, 0)
    assert "Ratings of Sade" in ratings.text and "No ratings yet." in ratings.text
    assert back.text == card.text
    assert "How much USDT" in currency.text


async def test_naming_oneself_asks_again(conn, chat):
    buyer, _, _ = await cast(conn, chat)
    await buyer.send("/escrow")
    await buyer.tap("New escrow")
    me = await buyer.send("@bunmibuys")
    assert me.round_trips == 1 and "cannot trade with yourself" in me.text
    other = await buyer.send("@SadeSells")
    assert other.round_trips == 1 and "Sade (@SadeSells)" in other.text


BAD_HANDLES = [
    ("no way!", "not a @username, e-mail address or phone number"),
    ("x" * 4000, "far too long"),
    ("😀😀😀", "not a @username, e-mail address or phone number"),
    ("@abc", "not a @username, e-mail address or phone number"),
]


async def test_bad_handles_are_refused_at_the_same_step_for_free(conn, chat):
    buyer, _, _ = await cast(conn, chat)
    await buyer.send("/escrow")
    await buyer.tap("New escrow")
    for text, why in BAD_HANDLES:
        step = await buyer.send(text)
        assert step.round_trips == 0, text
        assert why in step.text and "Who is the seller?" in step.text
    good = await buyer.send("@SadeSells")
    assert good.round_trips == 1 and "Which currency" in good.text


BAD_AMOUNTS = [
    ("lots", "That is not an amount"),
    ("-5", "must be more than zero"),
    ("0", "must be more than zero"),
    ("10.1234567", "at most 6 decimal places"),
    ("4.99", "The minimum for an escrow is 5 USDT"),
    ("2000000000000000", "The maximum for an escrow is 1,000,000,000,000,000 USDT"),
    ("1" * 25, "too large"),
    ("x" * 4000, "That is not an amount"),
    ("9" * 4000, "too large"),
    ("💰", "That is not an amount"),
]


async def test_bad_amounts_are_refused_at_the_same_step_for_free(conn, chat):
    buyer, _, _ = await cast(conn, chat)
    await buyer.send("/escrow")
    await buyer.tap("New escrow")
    await buyer.send("@SadeSells")
    await buyer.press("escrow:cur:USDT")
    for text, why in BAD_AMOUNTS:
        step = await buyer.send(text)
        assert step.round_trips == 0, text
        assert why in step.text and "Type the amount again" in step.text, (text, step.text)
    good = await buyer.send("5")
    assert good.round_trips == 0 and "What are you buying?" in good.text
    assert (await my_escrows(conn, telegram_id=BUYER, status_group="all")).items == ()


async def test_bad_descriptions_are_refused_at_the_same_step_for_free(conn, chat):
    buyer, _, _ = await cast(conn, chat)
    await buyer.send("/escrow")
    await buyer.tap("New escrow")
    await buyer.send("@SadeSells")
    await buyer.press("escrow:cur:USDT")
    await buyer.send("100")
    empty = await buyer.send("   ")
    long = await buyer.send("y" * 4000)
    assert (empty.round_trips, long.round_trips) == (0, 0)
    assert "Please describe what you are buying" in empty.text
    assert "That is 4,000 characters" in long.text and "at most 1,000" in long.text
    emoji = await buyer.send("🚲")
    assert emoji.round_trips == 0 and "Who pays it?" in emoji.text
    assert (await my_escrows(conn, telegram_id=BUYER, status_group="all")).items == ()


async def test_text_where_a_button_is_wanted_and_cancel(conn, chat):
    buyer, _, _ = await cast(conn, chat)
    await buyer.send("/escrow")
    await buyer.tap("New escrow")
    card = await buyer.send("@SadeSells")
    typed = await buyer.send("USDT")
    assert typed.round_trips == 0 and "Please use the buttons" in typed.text
    stop = await buyer.tap("Cancel", on=card.screen)
    assert stop.round_trips == 0 and "Cancelled" in stop.text
    after = await buyer.send("100")
    assert not any("What are you buying" in r.text for r in after.replies)


async def test_a_blocked_user_gets_one_message_at_escrow_and_at_new_escrow(conn, chat):
    await cast(conn, chat)
    await seeding.block(conn, BUYER)
    buyer = chat(BUYER)

    listed = await buyer.send("/escrow")
    assert listed.round_trips == 1
    assert [r.text for r in listed.replies] == [BLOCKED] and listed.screen.callbacks == []

    # escrow:new asks for nothing secret; the lookup that follows (the flow's one
    # query) refuses, with one message and nothing else.
    await buyer.press("escrow:new", on=listed.screen)
    refused = await buyer.send("@SadeSells")
    assert refused.round_trips == 1
    assert [r.text for r in refused.replies] == [BLOCKED] and refused.screen.callbacks == []
    assert refused.to(SELLER) == []
    # The flow ended.
    after = await buyer.send("@SadeSells")
    assert not any("Which currency" in r.text for r in after.replies)


async def test_an_unknown_user_is_sent_to_start(chat):
    step = await chat(7199).send("/escrow")
    assert step.round_trips == 1 and step.text == NOT_REGISTERED


# --- my escrows ------------------------------------------------------------------------------


async def test_my_escrows_pages_by_keyset_one_round_trip_a_page(conn, chat):
    buyer, _, _ = await cast(conn, chat)
    ids = [await escrow_in(conn, S.AWAITING_PAYMENT, amount=str(10 + n)) for n in range(12)]

    first = await buyer.send("/escrow")
    assert first.round_trips == 1
    opens = [c for c in first.screen.callbacks if c.startswith("escrow:view:")]
    assert opens == [f"escrow:view:{i}" for i in reversed(ids[2:])]
    assert "you buy from Sade" in first.text and "21 USDT" in first.text
    older = first.screen.button("Older")

    second = await buyer.press(older)
    assert second.round_trips == 1
    opens = [c for c in second.screen.callbacks if c.startswith("escrow:view:")]
    assert opens == [f"escrow:view:{ids[1]}", f"escrow:view:{ids[0]}"]
    assert not any("Older" in label for row in second.screen.buttons for label, _ in row)

    done = await buyer.tap("Completed")
    assert done.round_trips == 1 and "Nothing here yet." in done.text
    everything = await buyer.tap("All")
    assert everything.round_trips == 1 and "escrow:new" in everything.screen.callbacks


# --- actions ----------------------------------------------------------------------------------


async def test_the_whole_trade_buyer_and_seller_one_round_trip_per_action(conn, chat):
    buyer, seller, _ = await cast(conn, chat)
    await walk_to_confirm(buyer)
    created = await buyer.press("escrow:confirm")
    escrow_id = (await only_escrow(conn)).id

    # The buyer pays from the wallet, from the escrow screen.
    view = await buyer.press(f"escrow:view:{escrow_id}")
    assert view.round_trips == 1 and "Bunmi (@BunmiBuys) — you" in view.text
    paid = await buyer.tap("Pay from wallet")
    assert paid.round_trips == 1 and "Paid from your wallet" in paid.text
    assert "💰 funded" in paid.text
    [note] = paid.to(SELLER)
    assert "is funded: 100 USDT" in note and "Accept or decline" in note
    assert await available(conn, BUYER) == D("897.5")

    # The seller opens it from the note, accepts, delivers.
    seen = await seller.tap("Open")
    assert seen.round_trips == 1 and "Sade (@SadeSells) — you" in seen.text
    assert {f"escrow:act:{escrow_id}:accept", f"escrow:act:{escrow_id}:decline"} <= set(
        seen.screen.callbacks
    )
    assert f"escrow:act:{escrow_id}:release" not in seen.screen.callbacks
    accepted = await seller.tap("Accept")
    assert accepted.round_trips == 1 and "You accepted" in accepted.text
    assert f"dispute:open:{escrow_id}" in accepted.screen.callbacks
    assert "The seller accepted" in accepted.to(BUYER)[0]
    delivered = await seller.tap("Mark delivered")
    assert delivered.round_trips == 1 and "📦 delivered" in delivered.text
    assert "marked escrow" in delivered.to(BUYER)[0]

    # The buyer releases: asked first (free), then the movement.
    opened = await buyer.tap("Open")
    assert opened.round_trips == 1 and f"dispute:open:{escrow_id}" in opened.screen.callbacks
    ask = await buyer.tap("Release funds")
    assert ask.round_trips == 0 and "cannot be undone" in ask.text
    released = await buyer.tap("Yes, release")
    assert released.round_trips == 1 and "Funds released" in released.text
    assert "✅ completed" in released.text
    [note] = released.to(SELLER)
    assert "97.5 USDT is in the seller's wallet" in note
    assert await available(conn, SELLER) == D("97.5")
    # Both are asked to rate the trade.
    assert f"rating:rate:{escrow_id}:5" in released.screen.callbacks
    assert f"rating:rate:{escrow_id}:1" in seller.last.callbacks

    rated = await buyer.tap("5★")
    assert rated.round_trips == 1 and "★★★★★" in rated.text
    seller_rated = await seller.tap("4★")
    assert seller_rated.round_trips == 1 and "★★★★☆" in seller_rated.text

    total = sum(
        s.round_trips
        for s in (created, view, paid, seen, accepted, delivered, opened, ask, released)
    )
    assert total == 1 + 1 + 1 + 1 + 1 + 1 + 1 + 0 + 1


ACTIONS = ["pay", "accept", "decline:yes", "deliver", "release:yes", "refund:yes", "cancel:yes"]


@pytest.mark.parametrize("action", ACTIONS)
async def test_a_stranger_pressing_any_action_is_refused_and_nothing_changes(conn, chat, action):
    _, _, stranger = await cast(conn, chat)
    escrow_id = await escrow_in(conn, S.ACCEPTED)
    before = await state(conn, escrow_id)
    screen = (await stranger.send("/escrow")).screen

    step = await stranger.press(f"escrow:act:{escrow_id}:{action}", on=screen)

    assert step.round_trips == 1
    assert step.alerts == ["This escrow is not one of yours."]
    assert step.replies == [] and step.to(BUYER) == [] and step.to(SELLER) == []
    assert await state(conn, escrow_id) == before


async def test_a_stranger_cannot_view_an_escrow_and_the_question_changes_nothing(conn, chat):
    _, _, stranger = await cast(conn, chat)
    escrow_id = await escrow_in(conn, S.ACCEPTED)
    before = await state(conn, escrow_id)
    screen = (await stranger.send("/escrow")).screen

    view = await stranger.press(f"escrow:view:{escrow_id}", on=screen)
    assert view.round_trips == 1 and view.alerts == ["This escrow is not one of yours."]
    ask = await stranger.press(f"escrow:act:{escrow_id}:release", on=screen)
    assert ask.round_trips == 0
    refused = await stranger.tap("Yes, release")
    assert refused.alerts == ["This escrow is not one of yours."]
    assert await state(conn, escrow_id) == before


async def test_release_pressed_twice_gets_wrong_status_and_the_fresh_view(conn, chat):
    buyer, _, _ = await cast(conn, chat)
    escrow_id = await escrow_in(conn, S.ACCEPTED)
    screen = (await buyer.send("/escrow")).screen
    await buyer.press(f"escrow:view:{escrow_id}", on=screen)
    await buyer.tap("Release funds")
    confirm_screen = buyer.last
    first = await buyer.tap("Yes, release")
    assert first.round_trips == 1
    after = await state(conn, escrow_id)

    again = await buyer.press(f"escrow:act:{escrow_id}:release:yes", on=confirm_screen)

    assert again.round_trips == 2  # the refused movement, then the fresh view
    assert "This escrow is completed: it cannot release." in again.text
    assert "🤝 <b>Escrow" in again.text and "✅ completed" in again.text
    assert again.to(SELLER) == []
    assert await state(conn, escrow_id) == after


async def test_accept_after_decline_gets_wrong_status_and_the_fresh_view(conn, chat):
    _, seller, _ = await cast(conn, chat)
    escrow_id = await escrow_in(conn, S.FUNDED)
    screen = (await seller.send("/escrow")).screen
    view = await seller.press(f"escrow:view:{escrow_id}", on=screen)
    accept_button = view.screen.button("Accept")
    await seller.tap("Decline")
    declined = await seller.tap("Yes, decline")
    assert declined.round_trips == 1 and "You declined" in declined.text
    assert "102.5 USDT is back in the buyer's wallet" in declined.to(BUYER)[0]
    assert await available(conn, BUYER) == D("1000")

    late = await seller.press(accept_button, on=screen)

    assert late.round_trips == 2
    assert "This escrow is declined: it cannot accept." in late.text
    assert "❌ declined" in late.text and late.to(BUYER) == []


async def test_paying_with_a_drained_wallet_says_what_changed(conn, chat):
    buyer, _, _ = await cast(conn, chat)
    escrow_id = await escrow_in(conn, S.AWAITING_PAYMENT)
    screen = (await buyer.send("/escrow")).screen
    await buyer.press(f"escrow:view:{escrow_id}", on=screen)
    await seeding.cashout(conn, BUYER, "USDT", "990")
    before = await state(conn, escrow_id)

    step = await buyer.tap("Pay from wallet")

    assert step.round_trips == 2
    assert "Not enough USDT: 10 USDT available, 102.5 USDT needed." in step.text
    assert "⏳ awaiting payment" in step.text
    assert step.to(SELLER) == []
    assert await state(conn, escrow_id) == before


async def test_a_crafted_button_is_refused_without_a_query(conn, chat):
    buyer, _, _ = await cast(conn, chat)
    screen = (await buyer.send("/escrow")).screen
    for data in (
        "escrow:act:x:release",
        "escrow:act:1:steal",
        "escrow:act:1:release:no",
        "escrow:act:99999999999999999999:pay",
        "escrow:view:-1",
    ):
        step = await buyer.press(data, on=screen)
        assert step.round_trips == 0 and step.alerts == ["That button is not valid any more."]


async def test_the_view_lists_the_viewers_actions_only(conn, chat):
    buyer, seller, _ = await cast(conn, chat)
    escrow_id = await escrow_in(conn, S.AWAITING_PAYMENT)
    b = await buyer.press(f"escrow:view:{escrow_id}", on=(await buyer.send("/escrow")).screen)
    s = await seller.press(f"escrow:view:{escrow_id}", on=(await seller.send("/escrow")).screen)
    act = f"escrow:act:{escrow_id}:"
    assert sorted(c for c in b.screen.callbacks if c.startswith(act)) == [
        act + "cancel",
        act + "pay",
    ]
    assert [c for c in s.screen.callbacks if c.startswith(act)] == []
    assert "Waiting for the buyer's payment" in s.text
    assert "rating:user:" in s.screen.button("Buyer's ratings")
