"""The NGN cashout through the real Application: a saved account, or a new one with its
holder's name checked (a lookup, or typed) and optionally saved with the cashout.

Round trips: 1 to open, 0 per step, 1 to confirm (saving the new account included).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
import seeding

from bot.data.errors import InsufficientFunds, Invalid
from bot.data.wallet import BankDestination, request_cashout, wallet_context
from bot.db import queries

ADA, BAYO = 3001, 3002


async def snapshot(conn, telegram_id: int):
    ctx = await wallet_context(conn, telegram_id=telegram_id)
    count = await queries.wallet_test_user_cashouts(conn, telegram_id=telegram_id)
    return ctx, count


def flows(bot, telegram_id: int) -> dict:
    return bot.user_data[telegram_id].get("flows", {})


@pytest.fixture
async def ada(conn, chat):
    await seeding.user(conn, ADA, "Ada")
    await seeding.credit(conn, ADA, "NGN", "100000")
    return chat(ADA, "Ada")


@pytest.fixture
def lookups(bot):
    """A stand-in for the payout provider's name check; records what it was asked."""
    asked = []

    async def lookup(bank_code: str, account_number: str) -> str | None:
        asked.append((bank_code, account_number))
        return {"0123456789": "ADA OKAFOR"}.get(account_number)

    bot.bot_data["account_lookup"] = lookup
    return asked


async def to_new_account_number(ada, bank: str = "Guaranty Trust Bank"):
    steps = [await ada.send("/wallet"), await ada.tap("Cash out NGN"), await ada.tap("Another")]
    steps.append(await ada.tap(bank))
    return steps


async def test_a_saved_account_cashout_costs_two_round_trips(conn, ada, bot):
    saved = await seeding.bank_account(conn, ADA, "0011223344")
    steps = [await ada.send("/wallet"), await ada.tap("Cash out NGN")]
    assert steps[-1].screen.callbacks[0] == f"wallet:acct:{saved}"
    assert "Guaranty Trust Bank ••3344" in steps[-1].screen.buttons[0][0][0]
    steps.append(await ada.press(f"wallet:acct:{saved}"))
    assert "How much NGN" in steps[-1].text and "₦100.00 + 0.5%" in steps[-1].text
    steps.append(await ada.send("10,000"))
    confirm = steps[-1]
    assert "Amount: ₦10,000.00" in confirm.text
    assert "Fee: ₦150.00" in confirm.text
    assert "₦10,150.00" in confirm.text
    assert "TEST HOLDER" in confirm.text and "0011223344 at Guaranty Trust Bank" in confirm.text
    assert "Balance after: ₦89,850.00" in confirm.text
    assert [s.round_trips for s in steps] == [1, 0, 0, 0]

    done = await ada.tap("Confirm")

    assert done.round_trips == 1
    assert sum(s.round_trips for s in [*steps, done]) == 2
    assert "pending" in done.text and "On hold until it is paid out: ₦10,150.00" in done.text
    ctx, count = await snapshot(conn, ADA)
    ngn = ctx.wallet("NGN")
    assert (ngn.available, ngn.held, count) == (Decimal("89850"), Decimal("10150"), 1)
    assert ctx.cashouts_in_flight[0].account_number == "0011223344"
    assert ctx.bank_accounts[0].last_used_at is not None
    assert "wallet" not in flows(bot, ADA)


async def test_a_new_account_is_name_checked_and_saved_with_the_cashout(conn, ada, bot, lookups):
    steps = [await ada.send("/wallet"), await ada.tap("Cash out NGN")]
    assert "no saved bank account" in steps[-1].text
    steps.append(await ada.tap("Another"))
    # The banks come with the flow's context, paged by buttons.
    assert "page 1 of 2" in steps[-1].text
    assert "Zenith" not in str(steps[-1].screen.buttons)
    steps.append(await ada.tap("Next"))
    assert "page 2 of 2" in steps[-1].text
    steps.append(await ada.tap("Zenith Bank"))
    assert "10-digit account number at Zenith Bank" in steps[-1].text
    steps.append(await ada.send("0123 456 789"))
    assert lookups == [("057", "0123456789")]
    assert "in the name of <b>ADA OKAFOR</b>" in steps[-1].text
    steps.append(await ada.tap("Yes"))
    assert "Save this account" in steps[-1].text
    steps.append(await ada.send("  My   Zenith "))
    steps.append(await ada.send("2000"))
    confirm = steps[-1]
    assert "To: ADA OKAFOR" in confirm.text and "0123456789 at Zenith Bank" in confirm.text
    assert "Saved for next time as “My Zenith”" in confirm.text
    assert "Fee: ₦110.00" in confirm.text
    assert all(s.round_trips == 0 for s in steps[1:]) and steps[0].round_trips == 1

    done = await ada.tap("Confirm")

    # Saving the account is part of the cashout's own statement.
    assert done.round_trips == 1
    assert sum(s.round_trips for s in [*steps, done]) == 2
    ctx, count = await snapshot(conn, ADA)
    assert count == 1
    [saved] = ctx.bank_accounts
    assert (saved.bank_code, saved.account_number, saved.account_name, saved.label) == (
        "057",
        "0123456789",
        "ADA OKAFOR",
        "My Zenith",
    )
    assert saved.last_used_at is not None
    assert ctx.wallet("NGN").held == Decimal("2110")


async def test_double_confirm_of_a_new_account_makes_one_cashout_and_one_contact(
    conn, ada, lookups
):
    await to_new_account_number(ada)
    await ada.send("0123456789")
    await ada.tap("Yes")
    await ada.send("Salary")
    pressed = (await ada.send("5000")).screen.button("Confirm")

    first = await ada.press(pressed)
    second = await ada.press(pressed)

    assert (first.round_trips, second.round_trips) == (1, 1)
    assert "already requested" in second.text
    ctx, count = await snapshot(conn, ADA)
    assert count == 1 and len(ctx.bank_accounts) == 1
    assert ctx.wallet("NGN").held == Decimal("5125")


async def test_without_a_lookup_the_holder_name_is_typed_and_skip_saves_nothing(conn, ada):
    await to_new_account_number(ada)
    step = await ada.send("0123456789")
    assert "Type the account holder's name" in step.text
    await ada.send("Ada  Okafor")
    step = await ada.tap("Skip")
    assert "How much NGN" in step.text
    confirm = await ada.send("1000")
    assert "To: Ada Okafor" in confirm.text and "Saved for next time" not in confirm.text
    done = await ada.tap("Confirm")
    assert done.round_trips == 1
    ctx, count = await snapshot(conn, ADA)
    assert count == 1 and ctx.bank_accounts == ()


async def test_a_lookup_that_knows_nothing_or_fails_asks_for_the_name(conn, ada, bot, lookups):
    await to_new_account_number(ada)
    step = await ada.send("9999999999")
    assert lookups == [("058", "9999999999")]
    assert "Type the account holder's name" in step.text

    async def broken(bank_code: str, account_number: str) -> str | None:
        raise TimeoutError("provider down")

    bot.bot_data["account_lookup"] = broken
    await ada.send("/cancel")
    await to_new_account_number(ada)
    step = await ada.send("0123456789")
    assert "Type the account holder's name" in step.text


async def test_a_wrong_name_sends_the_user_back_to_the_account_number(ada, lookups):
    await to_new_account_number(ada)
    await ada.send("0123456789")
    step = await ada.tap("No")
    assert "10-digit account number" in step.text and step.round_trips == 0
    step = await ada.send("0123456780")
    assert "Type the account holder's name" in step.text


async def test_bad_account_numbers_are_refused_in_place(conn, ada):
    await to_new_account_number(ada)
    before = await snapshot(conn, ADA)
    for text, why in [
        ("012345678", "10 digits; this one has 9"),
        ("01234567890", "this one has 11"),
        ("abcdefghij", "only digits"),
        ("٠١٢٣٤٥٦٧٨٩", "only digits"),
        ("🏦", "only digits"),
        ("1" * 4000, "this one has 4000"),
    ]:
        step = await ada.send(text)
        assert why in step.text, (text, step.text)
        assert step.round_trips == 0
    assert await snapshot(conn, ADA) == before
    assert "Type the account holder's name" in (await ada.send("0123456789")).text


async def test_bad_holder_names_and_labels_are_refused_in_place(conn, ada):
    await to_new_account_number(ada)
    await ada.send("0123456789")
    before = await snapshot(conn, ADA)
    for text, why in [
        ("   ", "type the account holder's name"),
        ("🙂🙂", "needs letters"),
        ("12345", "needs letters"),
        ("A" * 101, "at most 100 characters"),
        ("B" * 4000, "at most 100 characters"),
    ]:
        step = await ada.send(text)
        assert why in step.text, (text, step.text)
        assert step.round_trips == 0 and len(step.text) < 400
    step = await ada.send("<b>Ada</b>")
    assert "Paying &lt;b&gt;Ada&lt;/b&gt;" in step.text
    for text, why in [(" ", "type a label"), ("L" * 65, "at most 64 characters")]:
        step = await ada.send(text)
        assert why in step.text, (text, step.text)
        assert step.round_trips == 0
    assert await snapshot(conn, ADA) == before
    assert "How much NGN" in (await ada.send("🏦 GTB")).text


async def test_bad_naira_amounts_are_refused_in_place(conn, ada):
    saved = await seeding.bank_account(conn, ADA, "0011223344")
    await ada.send("/wallet")
    await ada.tap("Cash out NGN")
    await ada.press(f"wallet:acct:{saved}")
    before = await snapshot(conn, ADA)
    for text, why in [
        ("lots", "not an amount"),
        ("-1000", "more than zero"),
        ("1000.005", "at most 2 decimal places"),
        ("999.99", "minimum cashout is ₦1,000.00"),
        ("5,000,001", "maximum cashout is ₦5,000,000.00"),
        ("99,600", "more than you have"),
        ("9" * 4000, "too large"),
        ("💰", "not an amount"),
    ]:
        step = await ada.send(text)
        assert why in step.text, (text, step.text)
        assert step.round_trips == 0
    assert await snapshot(conn, ADA) == before
    # The most the balance covers with its fee still works.
    confirm = await ada.send("99,402.98")
    assert "Balance after: ₦0.00" in confirm.text


async def test_too_little_naira_is_refused_before_any_step(conn, chat):
    await seeding.user(conn, BAYO, "Bayo")
    await seeding.credit(conn, BAYO, "NGN", "1099.99")
    bayo = chat(BAYO, "Bayo")
    await bayo.send("/wallet")
    step = await bayo.tap("Cash out NGN")
    assert step.alerts and "Not enough naira" in step.alerts[0]
    assert step.round_trips == 0
    assert "Cash out crypto" in str(bayo.last.buttons)


async def test_another_users_bank_account_or_an_unknown_bank_is_refused(conn, ada, chat):
    await seeding.user(conn, BAYO, "Bayo")
    theirs = await seeding.bank_account(conn, BAYO, "0000000002")
    mine = await seeding.bank_account(conn, ADA, "0000000001")
    await ada.send("/wallet")
    await ada.tap("Cash out NGN")
    before = await snapshot(conn, ADA)

    step = await ada.press(f"wallet:acct:{theirs}")

    assert step.alerts == ["That bank account is not one of yours."]
    assert step.round_trips == 0
    assert await snapshot(conn, ADA) == before
    await ada.tap("Another")
    step = await ada.press("wallet:bank:999")
    assert step.alerts == ["Pick one of the banks shown."]
    # Still in the flow: her own account works.
    await ada.tap("Wallet")
    await ada.tap("Cash out NGN")
    assert "How much NGN" in (await ada.press(f"wallet:acct:{mine}")).text


async def test_a_naira_balance_spent_behind_the_flows_back_is_refused(conn, ada, bot):
    saved = await seeding.bank_account(conn, ADA, "0011223344")
    await ada.send("/wallet")
    await ada.tap("Cash out NGN")
    await ada.press(f"wallet:acct:{saved}")
    await ada.send("50,000")
    await seeding.cashout(conn, ADA, "NGN", "60000", fee="0")

    step = await ada.tap("Confirm")

    assert step.round_trips == 2
    assert "₦40,000.00 is available now, and it needs ₦50,350.00" in step.text
    assert "Cash out NGN" in str(step.screen.buttons)
    ctx, count = await snapshot(conn, ADA)
    assert count == 1 and ctx.wallet("NGN").held == Decimal("60000")


async def test_cancel_in_the_new_account_steps_changes_nothing(conn, ada, bot, lookups):
    await to_new_account_number(ada)
    await ada.send("0123456789")
    await ada.tap("Yes")
    before = await snapshot(conn, ADA)
    step = await ada.send("/cancel")
    assert "Cancelled" in step.text
    assert "wallet" not in flows(bot, ADA)
    assert await snapshot(conn, ADA) == before
    assert (await ada.send("My label")).replies == []


# --- the movement behind the confirm: saving the new account in the same statement ----


async def test_a_refused_cashout_saves_no_account_and_a_saved_one_is_relabelled(conn, ada):
    new = BankDestination("057", "0123456789", "ADA OKAFOR", save_label="Zenith")
    with pytest.raises(InsufficientFunds):
        await request_cashout(
            conn, telegram_id=ADA, currency="NGN", amount=Decimal(99_900),
            destination=new, idempotency_key="k1",
        )  # fmt: skip
    with pytest.raises(Invalid, match="at most 64"):
        await request_cashout(
            conn, telegram_id=ADA, currency="NGN", amount=Decimal(1000),
            destination=BankDestination("057", "0123456789", "ADA", save_label="L" * 65),
            idempotency_key="k2",
        )  # fmt: skip
    ctx, count = await snapshot(conn, ADA)
    assert (ctx.bank_accounts, count) == ((), 0)

    saved = await seeding.bank_account(conn, ADA, "0123456789", bank_code="057")
    cashout = await request_cashout(
        conn, telegram_id=ADA, currency="NGN", amount=Decimal(1000),
        destination=new, idempotency_key="k3",
    )  # fmt: skip
    # The account already saved is the one linked, with the new label and the checked name.
    assert cashout.saved_bank_account_id == saved
    ctx, _ = await snapshot(conn, ADA)
    [account] = ctx.bank_accounts
    assert (account.id, account.label, account.account_name) == (saved, "Zenith", "ADA OKAFOR")
    assert account.last_used_at is not None
