"""The contacts flow through the real Application: the screen, adding an address and a bank
account, deleting, bad input at every text step, strangers, blocked and unknown users."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import seeding

from bot import cache
from bot.data.contacts import contacts_context, save_address
from bot.data.onboarding import register_user
from bot.db import queries
from bot.handlers.ui import BLOCKED, CANCELLED, EXPIRED, NOT_REGISTERED

ADA, MALLORY = 3101, 3102
TRON = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
SEGWIT = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
USDT_ERC20 = "0xdAC17F958D2ee523a2206206994597C13D831ec7"
NUBAN = "0123456789"


async def counts(conn, telegram_id: int) -> dict[str, int]:
    return dict(await queries.contacts_row_counts(conn, telegram_id=telegram_id))


async def at_address_step(chat, currency: str = "USDT", network: str | None = "TRC20"):
    """Open the contacts screen and walk the add-address flow to the address step."""
    steps = [await chat.send("/contacts"), await chat.tap("Address")]
    steps.append(await chat.press(f"contacts:cur:{currency}"))
    if network is not None:
        steps.append(await chat.press(f"contacts:net:{network}"))
    return steps


async def at_account_step(chat):
    steps = [await chat.send("/contacts"), await chat.tap("Bank account")]
    steps.append(await chat.tap("More"))  # Zenith is on the second page of the picker
    steps.append(await chat.tap("Zenith"))
    return steps


# --- the screen ---------------------------------------------------------------------


async def test_the_screen_lists_destinations_escaped_with_last_use_in_one_round_trip(conn, chat):
    await seeding.user(conn, ADA, "Ada")
    used = await seeding.address(conn, ADA, TRON, label="<b>Tron</b> & co")
    await queries.contacts_test_touch_address(
        conn, address_id=used, last_used_at=datetime(2024, 5, 1, 9, tzinfo=UTC)
    )
    await seeding.bank_account(conn, ADA, NUBAN)

    step = await chat(ADA).send("/contacts")

    assert step.round_trips == 1
    assert "&lt;b&gt;Tron&lt;/b&gt; &amp; co" in step.text
    assert f"<code>{TRON}</code> · last used 01 May 2024" in step.text
    assert "Guaranty Trust Bank" in step.text and "TEST HOLDER · never used" in step.text
    # The used address first, then the bank account; one delete button each.
    assert step.text.index("Tron") < step.text.index("Guaranty")
    assert f"contacts:del:crypto_address:{used}" in step.screen.callbacks
    assert any(c.startswith("contacts:del:bank_account:") for c in step.screen.callbacks)


async def test_the_menu_button_opens_it_in_place(conn, chat):
    await seeding.user(conn, ADA)
    ada = chat(ADA)
    menu = await ada.send("/menu")
    step = await ada.tap("Contacts")
    assert step.round_trips == 1
    assert step.screen.message_id == menu.screen.message_id
    assert "Nothing saved yet" in step.text


async def test_a_long_list_is_paged_from_the_cache(conn, chat):
    await seeding.user(conn, ADA)
    ids = [
        await seeding.address(conn, ADA, f"T{'x' * 32}{n}", label=f"Wallet {n}") for n in range(10)
    ]
    ada = chat(ADA)
    # The message is edited in place: keep what each step showed.
    first = await ada.send("/contacts")
    first_text = first.text
    older = await ada.tap("More")
    older_text, older_callbacks = older.text, older.screen.callbacks
    newer = await ada.tap("Back")

    # Never used: newest first. 8 on the first page, the other 2 on the next, none twice.
    assert [f"Wallet {n}" in first_text for n in range(10)] == [False] * 2 + [True] * 8
    assert [f"Wallet {n}" in older_text for n in range(10)] == [True] * 2 + [False] * 8
    assert f"contacts:del:crypto_address:{ids[0]}" in older_callbacks
    assert (first.round_trips, older.round_trips, newer.round_trips) == (1, 0, 0)
    assert newer.text == first_text


# --- adding an address ------------------------------------------------------------------


async def test_adding_an_address_costs_one_to_open_nothing_per_step_one_to_save(conn, chat):
    await seeding.user(conn, ADA)
    ada = chat(ADA)
    steps = await at_address_step(ada, "USDT", None)
    assert "contacts:net:TRC20" in steps[-1].screen.callbacks
    steps.append(await ada.press("contacts:net:TRC20"))
    assert "USDT</b> address on <b>Tron (TRC20)" in steps[-1].text
    steps.append(await ada.send(f"  {TRON} "))
    assert "label" in steps[-1].text
    steps.append(await ada.send("Binance <main> 🔥"))

    assert [s.round_trips for s in steps] == [1, 0, 0, 0, 0, 1]
    assert sum(s.round_trips for s in steps) == 2
    assert "✅ Saved Binance &lt;main&gt; 🔥." in steps[-1].text
    assert TRON in steps[-1].text
    [saved] = (await contacts_context(conn, telegram_id=ADA)).addresses
    assert (saved.currency, saved.network, saved.address, saved.label) == (
        "USDT",
        "TRC20",
        TRON,
        "Binance <main> 🔥",
    )
    # The list shown after the save is the cached one, updated: deleting from it costs 0 to ask.
    ask = await ada.press(f"contacts:del:crypto_address:{saved.id}")
    assert ask.round_trips == 0 and "Delete this saved address?" in ask.text


async def test_a_currency_with_one_network_skips_the_network_step(conn, chat):
    await seeding.user(conn, ADA)
    ada = chat(ADA)
    steps = await at_address_step(ada, "BTC", None)
    assert "BTC</b> address on <b>Bitcoin" in steps[-1].text
    steps.append(await ada.send(SEGWIT.upper()))
    steps.append(await ada.tap("Skip"))
    assert [s.round_trips for s in steps] == [1, 0, 0, 0, 1]
    assert "✅ Saved " + SEGWIT in steps[-1].text  # no label: the address names it
    assert (await counts(conn, ADA))["live_addresses"] == 1


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("hello world", "A Tron address is 34 characters and starts with T."),
        (USDT_ERC20, "This looks like an Ethereum-style (0x...) address, not a Tron (TRC20) one."),
        ("T" * 4000, "That is far too long to be an address."),
        ("🚀🚀🚀", "A Tron address is 34 characters and starts with T."),
    ],
    ids=["garbage", "wrong network", "4000 chars", "emoji only"],
)
async def test_a_bad_address_is_explained_and_the_step_stays(conn, chat, typed, says):
    await seeding.user(conn, ADA)
    ada = chat(ADA)
    await at_address_step(ada)

    refused = await ada.send(typed)

    assert refused.round_trips == 0
    assert says in refused.text
    assert "USDT</b> address on <b>Tron (TRC20)" in refused.text  # asked again
    assert await counts(conn, ADA) == {
        "addresses": 0,
        "live_addresses": 0,
        "bank_accounts": 0,
        "live_bank_accounts": 0,
    }
    # Same step: the next valid address goes on to the label.
    ok = await ada.send(TRON)
    assert ok.round_trips == 0 and "label" in ok.text


async def test_a_bad_label_is_explained_and_the_step_stays(conn, chat):
    await seeding.user(conn, ADA)
    ada = chat(ADA)
    await at_address_step(ada)
    await ada.send(TRON)

    too_long = await ada.send("L" * 4000)
    assert too_long.round_trips == 0
    assert "A label can be at most 64 characters; this one has 4,000." in too_long.text
    assert "contacts:skip" in too_long.screen.callbacks
    assert (await counts(conn, ADA))["addresses"] == 0

    # Decision: an emoji-only label is the user's own name for the address, so it is taken.
    saved = await ada.send("🏦💰")
    assert saved.round_trips == 1
    assert "✅ Saved 🏦💰." in saved.text
    assert (await contacts_context(conn, telegram_id=ADA)).addresses[0].label == "🏦💰"


async def test_a_label_typed_on_several_lines_is_kept_on_one(conn, chat):
    await seeding.user(conn, ADA)
    ada = chat(ADA)
    await at_address_step(ada)
    await ada.send(TRON)
    await ada.send("  My\n\ncold   wallet ")
    assert (await contacts_context(conn, telegram_id=ADA)).addresses[0].label == "My cold wallet"


async def test_an_address_already_saved_is_refused_at_the_address_step(conn, chat):
    await seeding.user(conn, ADA)
    await seeding.address(conn, ADA, TRON)
    ada = chat(ADA)
    await at_address_step(ada)

    refused = await ada.send(TRON)

    assert refused.round_trips == 0
    assert "This address was already recorded." in refused.text
    # The same address on another network is another destination.
    await ada.send("/contacts")
    await ada.tap("Address")
    await ada.press("contacts:cur:USDT")
    await ada.press("contacts:net:BEP20")
    await ada.send(USDT_ERC20)
    saved = await ada.tap("Skip")
    assert saved.round_trips == 1 and "✅ Saved" in saved.text
    assert (await counts(conn, ADA))["live_addresses"] == 2


async def test_an_address_saved_behind_the_flows_back_is_refused_at_the_save(conn, chat):
    await seeding.user(conn, ADA)
    ada = chat(ADA)
    await at_address_step(ada)
    await ada.send(TRON)
    # Saved meanwhile elsewhere (say, in a cashout), after the contacts screen was fetched.
    await save_address(
        conn, telegram_id=ADA, currency="USDT", network="TRC20", address=TRON, label="Kept"
    )

    refused = await ada.send("Replaced?")

    # The movement refuses it; the screen is fetched fresh to show what is there now.
    assert refused.round_trips == 2
    assert "This address was already recorded." in refused.text
    assert "Kept" in refused.text
    [kept] = (await contacts_context(conn, telegram_id=ADA)).addresses
    assert kept.label == "Kept"
    assert (await counts(conn, ADA))["addresses"] == 1


async def test_a_currency_not_offered_is_refused(conn, chat):
    await seeding.user(conn, ADA)
    ada = chat(ADA)
    await ada.send("/contacts")
    await ada.tap("Address")
    step = await ada.press("contacts:cur:NGN")
    assert step.alerts == ["Please pick one of the currencies shown."]
    assert step.round_trips == 0
    # Still choosing: a real currency goes on.
    assert "network" in (await ada.press("contacts:cur:USDT")).text


# --- adding a bank account ---------------------------------------------------------------


async def test_adding_a_bank_account_costs_one_to_open_nothing_per_step_one_to_save(conn, chat):
    await seeding.user(conn, ADA)
    ada = chat(ADA)
    steps = await at_account_step(ada)
    assert "Zenith Bank" in steps[-1].text and "10-digit" in steps[-1].text
    steps.append(await ada.send("0123 456 789"))
    assert "holder" in steps[-1].text
    steps.append(await ada.send("Ada  <Lovelace>"))
    steps.append(await ada.send("Salary"))

    assert [s.round_trips for s in steps] == [1, 0, 0, 0, 0, 0, 1]
    assert sum(s.round_trips for s in steps) == 2
    assert "✅ Saved Salary." in steps[-1].text
    assert "Ada &lt;Lovelace&gt;" in steps[-1].text
    [saved] = (await contacts_context(conn, telegram_id=ADA)).bank_accounts
    assert (saved.bank_code, saved.account_number, saved.account_name, saved.label) == (
        "057",
        NUBAN,
        "Ada <Lovelace>",
        "Salary",
    )


async def test_the_bank_picker_is_paged(conn, chat):
    await seeding.user(conn, ADA)
    ada = chat(ADA)
    await ada.send("/contacts")
    first = await ada.tap("Bank account")
    labels = [label for row in first.screen.buttons for label, _ in row]
    second = await ada.tap("More")
    assert "Access Bank" in labels and "Zenith Bank" not in labels
    assert "contacts:bank:057" in second.screen.callbacks
    assert "page 2 of 2" in second.text
    assert (first.round_trips, second.round_trips) == (0, 0)


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("012345678", "An account number has 10 digits; this one has 9."),
        ("01234abcde", "An account number has only digits (0-9)."),
        ("1" * 4000, "An account number has 10 digits; this one has 4000."),
        ("🔢🔢", "An account number has only digits (0-9)."),
    ],
    ids=["9 digits", "letters", "4000 chars", "emoji only"],
)
async def test_a_bad_account_number_is_explained_and_the_step_stays(conn, chat, typed, says):
    await seeding.user(conn, ADA)
    ada = chat(ADA)
    await at_account_step(ada)

    refused = await ada.send(typed)

    assert refused.round_trips == 0
    assert says in refused.text and "10-digit account number" in refused.text
    assert (await counts(conn, ADA))["bank_accounts"] == 0
    assert "holder" in (await ada.send(NUBAN)).text


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("N" * 4000, "A holder name can be at most 100 characters; this one has 4,000."),
        ("😀😀", "Please type the account holder's name as the bank has it."),
        ("12345", "Please type the account holder's name as the bank has it."),
    ],
    ids=["4000 chars", "emoji only", "digits only"],
)
async def test_a_bad_holder_name_is_explained_and_the_step_stays(conn, chat, typed, says):
    await seeding.user(conn, ADA)
    ada = chat(ADA)
    await at_account_step(ada)
    await ada.send(NUBAN)

    refused = await ada.send(typed)

    assert refused.round_trips == 0 and says in refused.text
    assert "label" in (await ada.send("ADA LOVELACE")).text


async def test_a_bad_bank_label_is_explained_and_the_step_stays(conn, chat):
    await seeding.user(conn, ADA)
    ada = chat(ADA)
    await at_account_step(ada)
    await ada.send(NUBAN)
    await ada.send("ADA LOVELACE")

    refused = await ada.send("x" * 4000)
    assert refused.round_trips == 0
    assert "at most 64 characters" in refused.text
    assert (await counts(conn, ADA))["bank_accounts"] == 0
    saved = await ada.tap("Skip")
    assert saved.round_trips == 1 and "✅ Saved Zenith Bank 0123456789." in saved.text


async def test_a_bank_account_already_saved_is_refused_at_the_account_step(conn, chat):
    await seeding.user(conn, ADA)
    await seeding.bank_account(conn, ADA, NUBAN, bank_code="057")
    ada = chat(ADA)
    await at_account_step(ada)
    refused = await ada.send(NUBAN)
    assert refused.round_trips == 0
    assert "This bank account was already recorded." in refused.text
    assert "10-digit" in refused.text


async def test_a_bank_account_saved_behind_the_flows_back_is_refused_at_the_save(conn, chat):
    await seeding.user(conn, ADA)
    ada = chat(ADA)
    await at_account_step(ada)
    await ada.send(NUBAN)
    await ada.send("ADA LOVELACE")
    await seeding.bank_account(conn, ADA, NUBAN, bank_code="057")

    refused = await ada.tap("Skip")

    assert refused.round_trips == 2
    assert "This bank account was already recorded." in refused.text
    [kept] = (await contacts_context(conn, telegram_id=ADA)).bank_accounts
    assert kept.account_name == "TEST HOLDER"  # the save changed nothing
    assert (await counts(conn, ADA))["bank_accounts"] == 1


# --- deleting ---------------------------------------------------------------------------


async def test_deleting_asks_first_then_deletes_in_one_round_trip(conn, chat):
    await seeding.user(conn, ADA)
    gone = await seeding.address(conn, ADA, TRON, label="Old")
    await seeding.bank_account(conn, ADA, NUBAN)
    ada = chat(ADA)
    opened = await ada.send("/contacts")
    ask = await ada.press(f"contacts:del:crypto_address:{gone}")
    assert "Delete this saved address?" in ask.text and "Old" in ask.text
    kept = await ada.tap("Keep it")
    assert "Old" in kept.text and (await counts(conn, ADA))["live_addresses"] == 1
    await ada.press(f"contacts:del:crypto_address:{gone}")
    done = await ada.tap("Yes, delete")

    assert [s.round_trips for s in (opened, ask, kept, done)] == [1, 0, 0, 1]
    assert "The address was deleted." in done.text
    assert "Old" not in done.text and "Guaranty Trust Bank" in done.text
    assert await counts(conn, ADA) == {
        "addresses": 1,
        "live_addresses": 0,
        "bank_accounts": 1,
        "live_bank_accounts": 1,
    }


async def test_deleting_a_bank_account(conn, chat):
    await seeding.user(conn, ADA)
    gone = await seeding.bank_account(conn, ADA, NUBAN)
    ada = chat(ADA)
    await ada.send("/contacts")
    await ada.press(f"contacts:del:bank_account:{gone}")
    done = await ada.tap("Yes, delete")
    assert done.round_trips == 1 and "The bank account was deleted." in done.text
    assert (await counts(conn, ADA))["live_bank_accounts"] == 0


async def test_a_crafted_delete_of_someone_elses_destination_changes_nothing(conn, chat):
    await seeding.user(conn, ADA)
    await seeding.user(conn, MALLORY)
    adas = await seeding.address(conn, ADA, TRON)
    adas_bank = await seeding.bank_account(conn, ADA, NUBAN)
    own = await seeding.address(conn, MALLORY, SEGWIT)
    mallory = chat(MALLORY)
    await mallory.send("/contacts")

    # Asking about it: not among her own, refused from the cache.
    asked = await mallory.press(f"contacts:del:crypto_address:{adas}")
    assert asked.alerts == ["No such address."] and asked.round_trips == 0
    # Confirming it outright, behind her own "Sure?": the movement refuses it.
    await mallory.press(f"contacts:del:crypto_address:{own}")
    for crafted in (f"crypto_address:{adas}", f"bank_account:{adas_bank}"):
        step = await mallory.press(f"contacts:delok:{crafted}")
        assert step.round_trips == 1
        assert step.alerts in (["No such address."], ["No such bank account."])
        assert step.replies == []

    assert (await counts(conn, ADA))["live_addresses"] == 1
    assert (await counts(conn, ADA))["live_bank_accounts"] == 1
    assert (await counts(conn, MALLORY))["live_addresses"] == 1


# --- who may, and leaving -----------------------------------------------------------------


@pytest.mark.parametrize("entry", ["/contacts", "contacts:open"])
async def test_a_blocked_user_gets_one_clear_message(conn, chat, entry):
    await seeding.user(conn, ADA)
    await seeding.address(conn, ADA, TRON)
    ada = chat(ADA)
    await ada.send("/menu")  # its Contacts button, pressed after the block
    await seeding.block(conn, ADA)
    step = await (ada.send(entry) if entry.startswith("/") else ada.press(entry))
    assert step.round_trips == 1
    assert [r.text for r in step.replies] == [BLOCKED]
    assert step.screen.callbacks == []
    # Nothing of the flow answers afterwards.
    assert (await ada.send(TRON)).replies == []


async def test_an_unknown_user_is_sent_to_start(chat):
    step = await chat(3199).send("/contacts")
    assert step.text == NOT_REGISTERED and step.screen.callbacks == []


async def test_cancel_ends_the_flow_and_changes_nothing(conn, chat):
    await seeding.user(conn, ADA)
    ada = chat(ADA)
    await at_address_step(ada)
    step = await ada.send("/cancel")
    assert step.text == CANCELLED and step.round_trips == 0
    assert (await ada.send(TRON)).replies == []
    assert (await counts(conn, ADA))["addresses"] == 0


async def test_a_dropped_context_is_an_expired_screen(conn, chat, bot):
    await seeding.user(conn, ADA)
    ada = chat(ADA)
    await at_address_step(ada)
    # As the LISTEN eviction would do when money moved behind the user's back.
    cache.drop(bot.user_data[ADA])
    step = await ada.send(TRON)
    assert step.text == EXPIRED and step.round_trips == 0
    assert (await counts(conn, ADA))["addresses"] == 0


async def test_a_button_from_an_older_screen_is_refused_and_the_step_stays(conn, chat):
    await seeding.user(conn, ADA)
    await seeding.address(conn, ADA, SEGWIT)
    ada = chat(ADA)
    listed = (await ada.send("/contacts")).screen
    await ada.send("/contacts")  # a second list; the flow goes on from this one
    await ada.tap("Address")
    await ada.press("contacts:cur:USDT")
    await ada.press("contacts:net:TRC20")
    old = await ada.press(listed.button("🗑"), on=listed)
    assert old.alerts and "older screen" in old.alerts[0] and old.round_trips == 0
    assert "label" in (await ada.send(TRON)).text


async def test_another_screen_ends_the_flow(conn, chat):
    await seeding.user(conn, ADA)
    ada = chat(ADA)
    await at_address_step(ada)
    menu = await ada.tap("Cancel")
    assert "Contacts" in menu.text and menu.round_trips == 0
    left = await ada.tap("Menu")
    assert "Hello" in left.text
    assert (await ada.send(TRON)).replies == []


async def test_a_user_still_onboarding_is_sent_to_start(conn, chat):
    await register_user(conn, telegram_id=3198, username="halfway", first_name="Half")
    step = await chat(3198).send("/contacts")
    assert step.round_trips == 1 and step.text == NOT_REGISTERED
    assert (await chat(3198).send(TRON)).replies == []
