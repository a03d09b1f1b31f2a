"""Saved destinations: validated, deduplicated, deleted only by their owner."""

from __future__ import annotations

import asyncio

import pytest
import seeding

from bot import db
from bot.data.contacts import (
    SavedAddress,
    SavedBankAccount,
    delete_destination,
    save_address,
    save_bank_account,
)
from bot.data.enums import DestinationKind
from bot.data.errors import Invalid, NotFound
from bot.money import AddressError, BankAccountError

ALICE, BOB = 2001, 2002
TRON = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
SEGWIT = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
USDT_ERC20 = "0xdAC17F958D2ee523a2206206994597C13D831ec7"


async def counts(conn, telegram_id: int) -> dict[str, int]:
    return dict(await db.queries.contacts_row_counts(conn, telegram_id=telegram_id))


async def measured(call):
    async with db.meter.measure() as m:
        result = await call
    return result, m.round_trips


async def test_an_address_is_saved_normalised_in_one_round_trip(conn):
    await seeding.user(conn, ALICE)
    saved, trips = await measured(
        save_address(
            conn,
            telegram_id=ALICE,
            currency="BTC",
            network="BTC",
            address=f"  {SEGWIT.upper()} ",
            label="  Cold storage ",
        )
    )
    assert trips == 1
    assert isinstance(saved, SavedAddress)
    assert (saved.currency, saved.network, saved.address) == ("BTC", "BTC", SEGWIT)
    assert saved.label == "Cold storage"
    assert saved.last_used_at is None
    assert await counts(conn, ALICE) == {
        "addresses": 1,
        "live_addresses": 1,
        "bank_accounts": 0,
        "live_bank_accounts": 0,
    }


async def test_the_same_address_saved_again_is_the_same_row(conn):
    await seeding.user(conn, ALICE)
    first = await save_address(
        conn, telegram_id=ALICE, currency="USDT", network="ERC20", address=USDT_ERC20.lower()
    )
    # Another spelling of the same address, with a label this time.
    again, trips = await measured(
        save_address(
            conn,
            telegram_id=ALICE,
            currency="USDT",
            network="ERC20",
            address=USDT_ERC20.upper().replace("0X", "0x"),
            label="Binance",
        )
    )
    assert trips == 1
    assert again.id == first.id
    assert again.address == USDT_ERC20 and again.label == "Binance"
    # No label given: the one it has stays.
    kept = await save_address(
        conn, telegram_id=ALICE, currency="USDT", network="ERC20", address=USDT_ERC20
    )
    assert kept.id == first.id and kept.label == "Binance"
    assert (await counts(conn, ALICE))["addresses"] == 1


async def test_the_same_address_on_another_network_is_another_row(conn):
    await seeding.user(conn, ALICE)
    erc20 = await save_address(
        conn, telegram_id=ALICE, currency="USDT", network="ERC20", address=USDT_ERC20
    )
    bep20 = await save_address(
        conn, telegram_id=ALICE, currency="USDT", network="BEP20", address=USDT_ERC20
    )
    assert erc20.id != bep20.id
    assert (await counts(conn, ALICE))["live_addresses"] == 2


async def test_concurrent_saves_of_one_address_make_one_row(pool):
    await seeding.user(pool, ALICE)
    saved = await asyncio.gather(
        *(
            save_address(
                pool, telegram_id=ALICE, currency="USDT", network="TRC20", address=TRON, label=None
            )
            for _ in range(8)
        )
    )
    assert len({s.id for s in saved}) == 1
    assert (await counts(pool, ALICE))["addresses"] == 1


async def test_two_people_may_save_the_same_address(conn):
    await seeding.user(conn, ALICE)
    await seeding.user(conn, BOB)
    mine = await save_address(
        conn, telegram_id=ALICE, currency="USDT", network="TRC20", address=TRON
    )
    theirs = await save_address(
        conn, telegram_id=BOB, currency="USDT", network="TRC20", address=TRON
    )
    assert mine.id != theirs.id


async def test_deleted_then_saved_again_is_a_new_live_row(conn):
    await seeding.user(conn, ALICE)
    old = await save_address(
        conn, telegram_id=ALICE, currency="USDT", network="TRC20", address=TRON
    )
    _, trips = await measured(
        delete_destination(
            conn, telegram_id=ALICE, kind=DestinationKind.CRYPTO_ADDRESS, destination_id=old.id
        )
    )
    assert trips == 1
    assert (await counts(conn, ALICE))["live_addresses"] == 0
    new = await save_address(
        conn, telegram_id=ALICE, currency="USDT", network="TRC20", address=TRON
    )
    assert new.id != old.id
    c = await counts(conn, ALICE)
    assert (c["addresses"], c["live_addresses"]) == (2, 1)


async def test_an_already_deleted_destination_cannot_be_deleted_again(conn):
    await seeding.user(conn, ALICE)
    saved = await save_address(
        conn, telegram_id=ALICE, currency="USDT", network="TRC20", address=TRON
    )
    await delete_destination(
        conn, telegram_id=ALICE, kind=DestinationKind.CRYPTO_ADDRESS, destination_id=saved.id
    )
    with pytest.raises(NotFound) as refused:
        await delete_destination(
            conn, telegram_id=ALICE, kind=DestinationKind.CRYPTO_ADDRESS, destination_id=saved.id
        )
    assert refused.value.what == "address"


async def test_a_stranger_cannot_delete_anothers_destinations(conn):
    await seeding.user(conn, ALICE)
    await seeding.user(conn, BOB)
    address = await save_address(
        conn, telegram_id=ALICE, currency="USDT", network="TRC20", address=TRON
    )
    account = await save_bank_account(
        conn,
        telegram_id=ALICE,
        bank_code="058",
        account_number="0123456789",
        account_name="ALICE ADEYEMI",
    )
    attempts = [
        (BOB, DestinationKind.CRYPTO_ADDRESS, address.id),
        (BOB, DestinationKind.BANK_ACCOUNT, account.id),
        (424242, DestinationKind.CRYPTO_ADDRESS, address.id),  # no such user
        # The owner, but the id of the other kind.
        (ALICE, DestinationKind.BANK_ACCOUNT, address.id + account.id + 1000),
        (ALICE, DestinationKind.CRYPTO_ADDRESS, address.id + account.id + 1000),
    ]
    for telegram_id, kind, destination_id in attempts:
        with pytest.raises(NotFound):
            await delete_destination(
                conn, telegram_id=telegram_id, kind=kind, destination_id=destination_id
            )
    c = await counts(conn, ALICE)
    assert (c["live_addresses"], c["live_bank_accounts"]) == (1, 1)


async def test_a_wallet_is_not_a_saved_destination(conn):
    with pytest.raises(ValueError, match="not a saved destination"):
        await delete_destination(
            conn, telegram_id=ALICE, kind=DestinationKind.WALLET, destination_id=1
        )


async def test_a_bad_address_is_refused_before_the_database(conn):
    await seeding.user(conn, ALICE)
    bad = [
        ("USDT", "TRC20", TRON[:-1] + "u"),  # a typo
        ("BTC", "BTC", TRON),  # another chain's
        ("USDT", "SOL", TRON),  # a network not offered
    ]
    async with db.meter.measure() as m:
        for currency, network, address in bad:
            with pytest.raises(AddressError):
                await save_address(
                    conn, telegram_id=ALICE, currency=currency, network=network, address=address
                )
    assert m.round_trips == 0
    assert (await counts(conn, ALICE))["addresses"] == 0


async def test_labels_are_at_most_64_characters(conn):
    await seeding.user(conn, ALICE)
    long_label = "\U0001f4b0" * 64  # 64 characters however many bytes
    saved = await save_address(
        conn, telegram_id=ALICE, currency="USDT", network="TRC20", address=TRON, label=long_label
    )
    assert saved.label == long_label
    async with db.meter.measure() as m:
        with pytest.raises(Invalid, match="64"):
            await save_address(
                conn,
                telegram_id=ALICE,
                currency="BTC",
                network="BTC",
                address=SEGWIT,
                label="x" * 65,
            )
    assert m.round_trips == 0
    # A blank label is no label.
    blank = await save_address(
        conn, telegram_id=ALICE, currency="BTC", network="BTC", address=SEGWIT, label="   "
    )
    assert blank.label is None
    assert (await counts(conn, ALICE))["addresses"] == 2


async def test_an_unknown_user_saves_nothing(conn):
    with pytest.raises(NotFound) as refused:
        await save_address(conn, telegram_id=424242, currency="USDT", network="TRC20", address=TRON)
    assert refused.value.what == "user"
    with pytest.raises(NotFound):
        await save_bank_account(
            conn,
            telegram_id=424242,
            bank_code="058",
            account_number="0123456789",
            account_name="NOBODY",
        )


# --- bank accounts ------------------------------------------------------------


async def test_a_bank_account_is_saved_with_its_bank_in_one_round_trip(conn):
    await seeding.user(conn, ALICE)
    saved, trips = await measured(
        save_bank_account(
            conn,
            telegram_id=ALICE,
            bank_code="50211",
            account_number="0123 456 789",
            account_name="  ALICE ADEYEMI ",
            label="Kuda",
        )
    )
    assert trips == 1
    assert isinstance(saved, SavedBankAccount)
    assert (saved.bank_code, saved.bank_name) == ("50211", "Kuda Microfinance Bank")
    assert (saved.account_number, saved.account_name, saved.label) == (
        "0123456789",
        "ALICE ADEYEMI",
        "Kuda",
    )


async def test_the_same_bank_account_saved_again_is_the_same_row(conn):
    await seeding.user(conn, ALICE)
    first = await save_bank_account(
        conn,
        telegram_id=ALICE,
        bank_code="058",
        account_number="0123456789",
        account_name="ALICE A",
        label="Salary",
    )
    again = await save_bank_account(
        conn,
        telegram_id=ALICE,
        bank_code="058",
        account_number="0123456789",
        account_name="ALICE ADEYEMI",
    )
    assert again.id == first.id
    assert (again.account_name, again.label) == ("ALICE ADEYEMI", "Salary")
    # The same number at another bank is another account.
    other = await save_bank_account(
        conn,
        telegram_id=ALICE,
        bank_code="057",
        account_number="0123456789",
        account_name="ALICE ADEYEMI",
    )
    assert other.id != first.id and other.bank_name == "Zenith Bank"
    assert (await counts(conn, ALICE))["bank_accounts"] == 2


async def test_a_deleted_bank_account_saved_again_is_a_new_live_row(conn):
    await seeding.user(conn, ALICE)
    old = await save_bank_account(
        conn, telegram_id=ALICE, bank_code="058", account_number="0123456789", account_name="A"
    )
    await delete_destination(
        conn, telegram_id=ALICE, kind=DestinationKind.BANK_ACCOUNT, destination_id=old.id
    )
    new = await save_bank_account(
        conn, telegram_id=ALICE, bank_code="058", account_number="0123456789", account_name="A"
    )
    assert new.id != old.id
    c = await counts(conn, ALICE)
    assert (c["bank_accounts"], c["live_bank_accounts"]) == (2, 1)


@pytest.mark.parametrize(
    ("bank_code", "account_number", "account_name", "error", "reason"),
    [
        ("058", "012345678", "A", BankAccountError, "10 digits; this one has 9"),
        ("058", "01234567890", "A", BankAccountError, "10 digits"),
        ("058", "01234S6789", "A", BankAccountError, "only digits"),
        ("58", "0123456789", "A", BankAccountError, "3 to 6 digits"),
        ("058", "0123456789", "   ", Invalid, "1 to 100"),
        ("058", "0123456789", "A" * 101, Invalid, "1 to 100"),
        ("058", "0123456789", "A", Invalid, "64"),  # with a 65-character label, below
    ],
)
async def test_a_bad_bank_account_is_refused_before_the_database(
    conn, bank_code, account_number, account_name, error, reason
):
    await seeding.user(conn, ALICE)
    label = "L" * 65 if reason == "64" else None
    async with db.meter.measure() as m:
        with pytest.raises(error, match=reason):
            await save_bank_account(
                conn,
                telegram_id=ALICE,
                bank_code=bank_code,
                account_number=account_number,
                account_name=account_name,
                label=label,
            )
    assert m.round_trips == 0
    assert (await counts(conn, ALICE))["bank_accounts"] == 0


async def test_an_unknown_bank_is_refused_and_nothing_is_written(conn):
    await seeding.user(conn, ALICE)
    async with db.meter.measure() as m:
        with pytest.raises(Invalid, match="No bank we know has the code 999"):
            await save_bank_account(
                conn,
                telegram_id=ALICE,
                bank_code="999",
                account_number="0123456789",
                account_name="ALICE ADEYEMI",
            )
    assert m.round_trips == 1
    assert (await counts(conn, ALICE))["bank_accounts"] == 0
