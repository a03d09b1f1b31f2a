"""History screen: a user's ledger entries, signed, newest first, keyset-paged, optionally of
one currency, one round trip a page, nothing of anyone else's and nothing of the platform's."""

from __future__ import annotations

from decimal import Decimal

import seeding

from bot import db
from bot.data.enums import FeeSplit, TransferKind
from bot.data.escrow import accept_escrow, create_escrow, fund_escrow_from_wallet, release_escrow
from bot.data.exchange import execute_exchange, lock_rate
from bot.data.history import HistoryPage, history_page
from bot.data.rows import PageCursor
from bot.data.wallet import CryptoDestination, fail_cashout, request_cashout
from bot.db import queries

ALICE, BOB = 12001, 12002
D = Decimal
K = TransferKind
TRON = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"


async def one_trip(call):
    async with db.meter.measure() as m:
        result = await call
    assert m.round_trips == 1, m.statements
    return result


async def walk(
    conn, telegram_id: int, limit: int, currency: str | None = None
) -> list[HistoryPage]:
    """Every page, each in one round trip, the cursor passed along as callback data would."""
    pages, before = [], None
    while True:
        page = await one_trip(
            history_page(
                conn, telegram_id=telegram_id, before=before, limit=limit, currency=currency
            )
        )
        pages.append(page)
        if page.next_before is None:
            return pages
        before = PageCursor.decode(page.next_before.encode())
        assert len(pages) < 100, "the pages never end"


def by_transfer(page: HistoryPage) -> list[tuple[TransferKind, set[tuple[str, str, Decimal]]]]:
    """The page as transfers in order, each with its entries (account, currency, amount)."""
    out: list[tuple[int, TransferKind, set]] = []
    for e in page.entries:
        if not out or out[-1][0] != e.transfer_id:
            out.append((e.transfer_id, e.transfer_kind, set()))
        out[-1][2].add((e.account_kind, e.currency, e.amount))
    return [(kind, entries) for _, kind, entries in out]


async def test_an_unknown_user_and_a_user_without_entries_have_empty_pages(conn):
    await seeding.user(conn, ALICE)
    for telegram_id in (404, ALICE):
        page = await one_trip(history_page(conn, telegram_id=telegram_id))
        assert page == HistoryPage(entries=(), next_before=None)


async def test_entries_are_signed_per_balance_newest_first_with_their_transfer(conn):
    await seeding.user(conn, ALICE)
    await seeding.rate(conn, "USDT", "USD", "1")
    await seeding.rate(conn, "USD", "NGN", "1500")
    await seeding.credit(conn, ALICE, "USDT", "100")
    cashout = await request_cashout(
        conn,
        telegram_id=ALICE,
        currency="USDT",
        amount=D(10),
        destination=CryptoDestination("TRC20", TRON),
        idempotency_key="history-1",
    )
    await fail_cashout(conn, cashout_id=cashout.id, reason="The network is congested")
    q = await lock_rate(
        conn, telegram_id=ALICE, from_currency="USDT", to_currency="NGN", amount=D(5)
    )
    await execute_exchange(conn, telegram_id=ALICE, order_id=q.order_id)

    page = await one_trip(history_page(conn, telegram_id=ALICE))
    assert by_transfer(page) == [
        (K.EXCHANGE, {("available", "USDT", D(-5)), ("available", "NGN", D("7425.00"))}),
        (K.CASHOUT_RELEASE, {("held", "USDT", D(-11)), ("available", "USDT", D(11))}),
        (K.CASHOUT_HOLD, {("available", "USDT", D(-11)), ("held", "USDT", D(11))}),
        (K.DEPOSIT, {("available", "USDT", D(100))}),
    ]
    assert page.next_before is None
    newest, oldest = page.entries[0], page.entries[-1]
    assert newest.memo == f"exchange {q.order_id}"
    assert oldest.memo == "seed" and oldest.amount == D(100)
    assert [e.created_at for e in page.entries] == sorted(
        (e.created_at for e in page.entries), reverse=True
    )


async def test_one_currency_only_when_asked(conn):
    await seeding.user(conn, ALICE)
    await seeding.credit(conn, ALICE, "NGN", "1000.50")
    for _ in range(4):
        await seeding.credit(conn, ALICE, "BTC", "0.00000001")
    await seeding.credit(conn, ALICE, "NGN", "2000")

    naira = await one_trip(history_page(conn, telegram_id=ALICE, currency="NGN"))
    assert [e.amount for e in naira.entries] == [D(2000), D("1000.50")]
    assert {e.currency for e in naira.entries} == {"NGN"}
    bitcoin = await walk(conn, ALICE, 3, currency="BTC")
    assert [len(p.entries) for p in bitcoin] == [3, 1]
    assert all(e.amount == D("0.00000001") for p in bitcoin for e in p.entries)
    assert await history_page(conn, telegram_id=ALICE, currency="ETH") == HistoryPage((), None)
    everything = await history_page(conn, telegram_id=ALICE, limit=50)
    assert len(everything.entries) == 6


async def test_entries_with_equal_times_neither_repeat_nor_skip(conn):
    await seeding.user(conn, ALICE)
    for i in range(7):
        await seeding.credit(conn, ALICE, "USDT", str(i + 1))
    await queries.history_test_same_instant(conn, telegram_id=ALICE)

    pages = await walk(conn, ALICE, 3)
    assert [len(p.entries) for p in pages] == [3, 3, 1]
    entries = [e for p in pages for e in p.entries]
    assert [e.amount for e in entries] == [D(7), D(6), D(5), D(4), D(3), D(2), D(1)]
    assert [e.id for e in entries] == sorted((e.id for e in entries), reverse=True)
    assert len({e.created_at for e in entries}) == 1


async def test_pages_hold_1_to_50_entries(conn):
    await seeding.user(conn, ALICE)
    for i in range(52):
        await seeding.credit(conn, ALICE, "LTC", str(i + 1))
    big = await one_trip(history_page(conn, telegram_id=ALICE, limit=1000))
    assert len(big.entries) == 50 and big.next_before is not None
    assert big.entries[0].amount == D(52)
    rest = await history_page(conn, telegram_id=ALICE, before=big.next_before, limit=1000)
    assert [e.amount for e in rest.entries] == [D(2), D(1)] and rest.next_before is None
    tiny = await history_page(conn, telegram_id=ALICE, limit=-5)
    assert [e.amount for e in tiny.entries] == [D(52)] and tiny.next_before is not None


async def test_each_party_sees_only_their_side_and_never_the_platforms(conn):
    await seeding.user(conn, ALICE)
    await seeding.user(conn, BOB)
    await seeding.credit(conn, ALICE, "ETH", "1.000000000000000001")
    escrow = await create_escrow(
        conn,
        buyer_telegram_id=ALICE,
        seller_handle=f"@user{BOB}",
        currency="ETH",
        amount=D("0.5"),
        description="A 🎸 guitar",
        fee_split=FeeSplit.SPLIT,
    )
    await fund_escrow_from_wallet(
        conn, escrow_id=escrow.id, telegram_id=ALICE, idempotency_key="history-escrow"
    )
    await accept_escrow(conn, escrow_id=escrow.id, telegram_id=BOB)
    await release_escrow(conn, escrow_id=escrow.id, telegram_id=ALICE)

    alice = await one_trip(history_page(conn, telegram_id=ALICE))
    bob = await one_trip(history_page(conn, telegram_id=BOB))
    paid = escrow.amount + escrow.buyer_fee
    assert by_transfer(alice) == [
        (K.ESCROW_FUND, {("available", "ETH", -paid)}),
        (K.DEPOSIT, {("available", "ETH", D("1.000000000000000001"))}),
    ]
    assert by_transfer(bob) == [
        (K.ESCROW_RELEASE, {("available", "ETH", escrow.amount - escrow.seller_fee)}),
    ]
    assert bob.entries[0].memo == f"escrow {escrow.ref} released"
