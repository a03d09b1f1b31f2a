"""The escrow lifecycle: the state machine as data, exact money for every fee split,
exactly-once payment, refusals that change nothing, races, auto-release and referral rewards."""

from __future__ import annotations

import asyncio
import itertools
import re
from datetime import timedelta
from decimal import Decimal

import pytest
import seeding

from bot import db
from bot.data.dispute import open_dispute, resolve_dispute
from bot.data.enums import EscrowStatus, FeeSplit, PaymentMethod, TransferKind
from bot.data.errors import (
    BelowMinimum,
    IdempotencyConflict,
    InsufficientFunds,
    Invalid,
    NotAParty,
    NotFound,
    WrongStatus,
)
from bot.data.escrow import (
    ACTIONS,
    ACTORS,
    TRANSITIONS,
    Escrow,
    accept_escrow,
    allowed_actions,
    auto_release_due,
    cancel_escrow,
    create_escrow,
    decline_escrow,
    fund_escrow_from_wallet,
    mark_delivered,
    refund_escrow,
    release_escrow,
)
from bot.db import queries
from bot.money import HandleError

BUYER, SELLER, STRANGER, ADMIN, REFERRER = 3001, 3002, 3003, 3004, 3005
S = EscrowStatus
D = Decimal
_keys = itertools.count(1)


async def people(conn) -> dict[int, int]:
    """The cast, telegram id -> user id; ADMIN is an admin and a party to nothing."""
    ids = {}
    for telegram_id in (BUYER, SELLER, STRANGER, ADMIN, REFERRER):
        ids[telegram_id] = await seeding.user(
            conn, telegram_id, email=f"u{telegram_id}@example.com", phone=f"+23480{telegram_id}0000"
        )
    await seeding.make_admin(conn, ADMIN)
    return ids


async def available(conn, telegram_id: int, currency: str = "USDT") -> Decimal:
    return await queries.escrow_test_available(conn, telegram_id=telegram_id, currency=currency)


async def fees(conn, currency: str = "USDT") -> Decimal:
    return await queries.escrow_test_platform_fees(conn, currency=currency)


async def holding(conn, escrow_id: int) -> Decimal:
    return await queries.escrow_test_holding(conn, escrow_id=escrow_id)


async def state(conn, escrow_id: int):
    return dict(await queries.escrow_test_state(conn, escrow_id=escrow_id))


async def new_escrow(
    conn, amount: str = "100", fee_split: FeeSplit = FeeSplit.BUYER, currency: str = "USDT"
) -> Escrow:
    return await create_escrow(
        conn,
        buyer_telegram_id=BUYER,
        seller_handle=f"@user{SELLER}",
        currency=currency,
        amount=D(amount),
        description="A used bicycle",
        fee_split=fee_split,
    )


async def fund(conn, escrow_id: int, telegram_id: int = BUYER, key: str | None = None):
    key = key or f"key-{next(_keys)}"
    return await fund_escrow_from_wallet(
        conn, escrow_id=escrow_id, telegram_id=telegram_id, idempotency_key=key
    )


async def delivered(conn, **kw) -> Escrow:
    e = await new_escrow(conn, **kw)
    await fund(conn, e.id)
    await accept_escrow(conn, escrow_id=e.id, telegram_id=SELLER)
    return (await mark_delivered(conn, escrow_id=e.id, telegram_id=SELLER)).escrow


async def one_trip(call):
    """Run a movement; assert it cost exactly one round trip."""
    async with db.meter.measure() as m:
        result = await call
    assert m.round_trips == 1, m.statements
    return result


# --- the state machine -----------------------------------------------------------------


async def test_transitions_mirror_the_table(conn):
    rows = {
        (S(r["from_status"]), r["action"], r["actor"], S(r["to_status"]))
        async for r in queries.escrow_test_transitions(conn)
    }
    assert rows == TRANSITIONS
    assert {a for (_, a, _, _) in TRANSITIONS} == set(ACTIONS)
    assert {who for (_, _, who, _) in TRANSITIONS} == set(ACTORS)


def test_allowed_actions_read_the_mirror():
    assert allowed_actions(S.AWAITING_PAYMENT, "buyer") == ["pay", "cancel"]
    assert allowed_actions(S.FUNDED, "seller") == ["accept", "decline", "refund"]
    assert allowed_actions(S.DELIVERED, "buyer") == ["release", "dispute"]
    assert allowed_actions(S.DISPUTED, "admin") == ["resolve"]
    assert allowed_actions(S.COMPLETED, "buyer") == []
    assert allowed_actions("funded", "admin") == ["refund"]


# --- creation ----------------------------------------------------------------------------


async def test_create_finds_the_seller_by_username_email_or_phone(conn):
    ids = await people(conn)
    for handle in (f"@USER{SELLER}", f"U{SELLER}@Example.com", f"+234 80 {SELLER} 0000"):
        e = await one_trip(
            create_escrow(
                conn,
                buyer_telegram_id=BUYER,
                seller_handle=handle,
                currency="USDT",
                amount=D("25"),
                description="  Phone case  ",
                fee_split=FeeSplit.SPLIT,
                payment_method=PaymentMethod.WALLET,
            )
        )
        assert e.seller_id == ids[SELLER] and e.buyer_id == ids[BUYER]
        assert e.description == "Phone case"
        assert e.payment_method is PaymentMethod.WALLET
    assert e.seller_handle == f"+23480{SELLER}0000"


async def test_create_computes_the_fee_rounded_up_and_the_deadline(conn):
    await people(conn)
    e = await new_escrow(conn, amount="100.000001", fee_split=FeeSplit.SPLIT)
    # 5% of 100.000001 is 5.00000005: up to USDT's 6 decimals, then halves (buyer's up).
    assert (e.fee, e.buyer_fee, e.seller_fee) == (D("5.000001"), D("2.500001"), D("2.5"))
    assert e.total == D("105.000002")
    assert e.status is S.AWAITING_PAYMENT
    assert re.fullmatch(r"ESC-[A-Z2-7]{8}", e.ref) and e.payment_reference == e.ref
    assert e.payment_deadline - e.created_at == timedelta(hours=24)
    assert e.seller_handle == f"user{SELLER}"
    assert e.funded_at is None and e.closed_at is None and e.paid_amount == 0


async def test_an_unknown_seller_is_invited_by_their_normalised_handle(conn):
    await people(conn)
    e = await create_escrow(
        conn,
        buyer_telegram_id=BUYER,
        seller_handle="New.Person@Example.COM",
        currency="NGN",
        amount=D("15000.50"),
        description="Logo design",
        fee_split=FeeSplit.SELLER,
    )
    assert e.seller_id is None and e.seller_handle == "new.person@example.com"
    assert (e.fee, e.buyer_fee, e.seller_fee) == (D("750.03"), D("0"), D("750.03"))


async def test_create_refuses_bad_requests_and_creates_nothing(conn):
    await people(conn)

    async def make(**kw):
        args = {
            "buyer_telegram_id": BUYER,
            "seller_handle": f"@user{SELLER}",
            "currency": "USDT",
            "amount": D("10"),
            "description": "Gift card",
            "fee_split": FeeSplit.BUYER,
        } | kw
        return await create_escrow(conn, **args)

    with pytest.raises(Invalid, match="yourself"):
        await make(seller_handle=f"@user{BUYER}")
    with pytest.raises(BelowMinimum) as below:
        await make(amount=D("4.999999"))
    assert below.value.minimum == 5 and below.value.currency == "USDT"
    with pytest.raises(Invalid, match="decimals"):
        await make(amount=D("10.0000001"))
    with pytest.raises(Invalid, match="more than zero"):
        await make(amount=D("-10"))
    with pytest.raises(Invalid, match="description"):
        await make(description="   ")
    with pytest.raises(Invalid, match="description"):
        await make(description="x" * 1001)
    with pytest.raises(NotFound) as nf:
        await make(currency="DOGE")
    assert nf.value.what == "currency"
    with pytest.raises(NotFound) as nf:
        await make(buyer_telegram_id=999)
    assert nf.value.what == "user"
    with pytest.raises(HandleError):
        await make(seller_handle="no way")
    ok = await make()  # the first escrow there is: nothing was created before it
    assert ok.id == 1


# --- the happy path, for each fee split ---------------------------------------------------

# amount 100.000001 USDT, fee 5.000001: (buyer pays, seller receives) for each split.
SPLITS = {
    FeeSplit.BUYER: (D("105.000002"), D("100.000001")),
    FeeSplit.SELLER: (D("100.000001"), D("95.000000")),
    FeeSplit.SPLIT: (D("102.500002"), D("97.500001")),
}


@pytest.mark.parametrize("split", list(FeeSplit))
async def test_happy_path_moves_exact_money(conn, split):
    await people(conn)
    await seeding.credit(conn, BUYER, "USDT", "200")
    pays, receives = SPLITS[split]
    e = await one_trip(new_escrow(conn, amount="100.000001", fee_split=split))

    funded = await one_trip(fund(conn, e.id))
    assert funded.escrow.status is S.FUNDED and not funded.replayed
    assert funded.transfer_id is not None
    assert funded.escrow.funded_at is not None and funded.escrow.accept_deadline is not None
    assert funded.escrow.payment_method is PaymentMethod.WALLET
    assert funded.escrow.paid_amount == pays
    assert await available(conn, BUYER) == D("200") - pays
    assert await holding(conn, e.id) == pays

    accepted = await one_trip(accept_escrow(conn, escrow_id=e.id, telegram_id=SELLER))
    assert accepted.escrow.status is S.ACCEPTED and accepted.transfer_id is None
    assert accepted.escrow.delivery_deadline - accepted.escrow.accepted_at == timedelta(hours=72)

    shipped = await one_trip(mark_delivered(conn, escrow_id=e.id, telegram_id=SELLER))
    assert shipped.escrow.status is S.DELIVERED
    assert shipped.escrow.auto_release_at - shipped.escrow.delivered_at == timedelta(hours=48)

    released = await one_trip(release_escrow(conn, escrow_id=e.id, telegram_id=BUYER))
    assert released.escrow.status is S.COMPLETED and released.escrow.closed_at is not None
    assert released.transfer_id is not None and released.rewards == ()
    assert await available(conn, SELLER) == receives
    assert await available(conn, BUYER) == D("200") - pays
    assert await fees(conn) == D("5.000001")
    assert await holding(conn, e.id) == 0


async def test_decline_and_refund_give_the_buyer_everything_back(conn):
    await people(conn)
    await seeding.credit(conn, BUYER, "USDT", "500")
    declined = await new_escrow(conn, fee_split=FeeSplit.SPLIT)
    await fund(conn, declined.id)
    r = await one_trip(decline_escrow(conn, escrow_id=declined.id, telegram_id=SELLER))
    assert r.escrow.status is S.DECLINED and r.transfer_id is not None

    by_seller = await delivered(conn, fee_split=FeeSplit.BUYER)
    r = await one_trip(refund_escrow(conn, escrow_id=by_seller.id, telegram_id=SELLER))
    assert r.escrow.status is S.REFUNDED

    by_admin = await new_escrow(conn, fee_split=FeeSplit.SELLER)
    await fund(conn, by_admin.id)
    r = await one_trip(refund_escrow(conn, escrow_id=by_admin.id, telegram_id=ADMIN))
    assert r.escrow.status is S.REFUNDED and r.escrow.closed_at is not None

    assert await available(conn, BUYER) == D("500")
    assert await available(conn, SELLER) == 0
    assert await fees(conn) == 0


async def test_cancel_before_payment_moves_no_money(conn):
    await people(conn)
    e = await new_escrow(conn)
    before = await state(conn, e.id)
    r = await one_trip(cancel_escrow(conn, escrow_id=e.id, telegram_id=BUYER))
    assert r.escrow.status is S.CANCELLED and r.transfer_id is None
    after = await state(conn, e.id)
    assert after["transfers"] == before["transfers"] and after["wallets"] == before["wallets"]


async def test_an_invited_seller_cannot_be_acted_for_until_linked(conn):
    await people(conn)
    await seeding.credit(conn, BUYER, "USDT", "100")
    e = await create_escrow(
        conn,
        buyer_telegram_id=BUYER,
        seller_handle="@somebody_new",
        currency="USDT",
        amount=D("50"),
        description="Concert ticket",
        fee_split=FeeSplit.BUYER,
    )
    await fund(conn, e.id)
    with pytest.raises(NotAParty):
        await accept_escrow(conn, escrow_id=e.id, telegram_id=SELLER)
    r = await refund_escrow(conn, escrow_id=e.id, telegram_id=ADMIN)
    assert r.escrow.status is S.REFUNDED
    assert await available(conn, BUYER) == D("100")


async def test_unknown_escrow_is_not_found(conn):
    await people(conn)
    with pytest.raises(NotFound):
        await accept_escrow(conn, escrow_id=424242, telegram_id=SELLER)
    with pytest.raises(NotFound):
        await fund(conn, 424242)


# --- paying: funds, idempotency, a caller's transaction ----------------------------------


async def test_insufficient_funds_is_refused_with_the_numbers_and_moves_nothing(conn):
    await people(conn)
    await seeding.credit(conn, BUYER, "USDT", "105")
    e = await new_escrow(conn, amount="100.000001", fee_split=FeeSplit.BUYER)
    before = await state(conn, e.id)
    with pytest.raises(InsufficientFunds) as err:
        await one_trip(fund(conn, e.id))
    assert (err.value.currency, err.value.available, err.value.needed) == (
        "USDT",
        D("105"),
        D("105.000002"),
    )
    assert await state(conn, e.id) == before


async def test_the_same_key_pays_once_and_answers_again(conn):
    await people(conn)
    await seeding.credit(conn, BUYER, "USDT", "300")
    e = await new_escrow(conn)
    first = await fund(conn, e.id, key="tap-1")
    again = await one_trip(fund(conn, e.id, key="tap-1"))
    assert not first.replayed and again.replayed
    assert again.transfer_id is None and again.escrow.status is S.FUNDED
    assert again.escrow.funded_at == first.escrow.funded_at
    assert await available(conn, BUYER) == D("195")

    other = await new_escrow(conn)
    before = await state(conn, other.id)
    with pytest.raises(IdempotencyConflict):
        await fund(conn, other.id, key="tap-1")
    assert await state(conn, other.id) == before
    with pytest.raises(Invalid):
        await fund(conn, other.id, key="k" * 129)
    assert await state(conn, other.id) == before
    # A fresh key pays the other escrow.
    await fund(conn, other.id, key="tap-2")
    assert await available(conn, BUYER) == D("90")


async def test_the_same_key_twice_at_once_debits_once(pool, conn):
    await people(conn)
    await seeding.credit(conn, BUYER, "USDT", "600")
    for n in range(5):
        e = await new_escrow(conn)
        results = await asyncio.gather(
            fund(pool, e.id, key=f"race-{n}"), fund(pool, e.id, key=f"race-{n}")
        )
        assert sorted(r.replayed for r in results) == [False, True]
        assert all(r.escrow.status is S.FUNDED for r in results)
    assert await available(conn, BUYER) == D("600") - 5 * D("105")


async def test_one_key_for_two_escrows_at_once_pays_one_and_refuses_the_other(pool, conn):
    await people(conn)
    await seeding.credit(conn, BUYER, "USDT", "1000")
    for n in range(5):
        a, b = await new_escrow(conn), await new_escrow(conn)
        results = await asyncio.gather(
            fund(pool, a.id, key=f"twice-{n}"),
            fund(pool, b.id, key=f"twice-{n}"),
            return_exceptions=True,
        )
        assert sorted(type(r).__name__ for r in results) == ["EscrowResult", "IdempotencyConflict"]
    assert await available(conn, BUYER) == D("1000") - 5 * D("105")


async def test_funding_joins_the_callers_transaction(conn):
    await people(conn)
    e = await new_escrow(conn)
    # A payment webhook: credit the buyer, then pay the escrow, all or nothing.
    with pytest.raises(RuntimeError):
        async with db.transaction(conn):
            await seeding.credit(conn, BUYER, "USDT", "105")
            await fund(conn, e.id, key="deposit:blockbee:evt-1")
            raise RuntimeError("the webhook failed after paying")
    assert await available(conn, BUYER) == 0
    assert (await state(conn, e.id))["escrow"]["status"] == "awaiting_payment"

    async with db.transaction(conn):
        await seeding.credit(conn, BUYER, "USDT", "105")
        paid = await fund(conn, e.id, key="deposit:blockbee:evt-1")
    assert paid.escrow.status is S.FUNDED and await available(conn, BUYER) == 0
    assert await holding(conn, e.id) == D("105")


# --- every transition the table does not list is refused, changing nothing ---------------


async def escrow_in(conn, status: EscrowStatus) -> tuple[Escrow, int | None]:
    """An escrow brought to `status` by the movements (expired: no movement expires here)."""
    e = await new_escrow(conn, fee_split=FeeSplit.SPLIT)
    dispute_id = None
    if status is S.CANCELLED:
        await cancel_escrow(conn, escrow_id=e.id, telegram_id=BUYER)
    elif status is S.EXPIRED:
        await queries.escrow_test_expire(conn, escrow_id=e.id)
    elif status is not S.AWAITING_PAYMENT:
        await fund(conn, e.id)
        if status is S.DECLINED:
            await decline_escrow(conn, escrow_id=e.id, telegram_id=SELLER)
        elif status is not S.FUNDED:
            await accept_escrow(conn, escrow_id=e.id, telegram_id=SELLER)
            if status is not S.ACCEPTED:
                await mark_delivered(conn, escrow_id=e.id, telegram_id=SELLER)
                if status is not S.DELIVERED:
                    d = await open_dispute(conn, escrow_id=e.id, telegram_id=BUYER, reason="Broken")
                    dispute_id = d.id
                    if status is S.COMPLETED:
                        await resolve_dispute(
                            conn, dispute_id=d.id, admin_telegram_id=ADMIN, buyer_share=D(0)
                        )
                    elif status is S.REFUNDED:
                        await resolve_dispute(
                            conn, dispute_id=d.id, admin_telegram_id=ADMIN, buyer_share=e.amount
                        )
    assert (await state(conn, e.id))["escrow"]["status"] == status.value
    return e, dispute_id


def attempt(conn, action: str, telegram_id: int, e: Escrow, dispute_id: int | None):
    """The movement that performs `action`, as `telegram_id`."""
    ids = {"escrow_id": e.id, "telegram_id": telegram_id}
    match action:
        case "pay":
            return fund(conn, e.id, telegram_id)
        case "cancel":
            return cancel_escrow(conn, **ids)
        case "accept":
            return accept_escrow(conn, **ids)
        case "decline":
            return decline_escrow(conn, **ids)
        case "deliver":
            return mark_delivered(conn, **ids)
        case "release":
            return release_escrow(conn, **ids)
        case "refund":
            return refund_escrow(conn, **ids)
        case "dispute":
            return open_dispute(conn, reason="Not as described", **ids)
        case "resolve":
            return resolve_dispute(
                conn, dispute_id=dispute_id, admin_telegram_id=telegram_id, buyer_share=D(0)
            )
    raise AssertionError(action)


PEOPLE = {"buyer": BUYER, "seller": SELLER, "admin": ADMIN, "stranger": STRANGER}
ADMIN_ACTIONS = {a for (_, a, who, _) in TRANSITIONS if who == "admin"}


@pytest.mark.parametrize("status", list(EscrowStatus))
async def test_every_transition_not_in_the_table_is_refused_and_changes_nothing(conn, status):
    await people(conn)
    await seeding.credit(conn, BUYER, "USDT", "1000")
    e, dispute_id = await escrow_in(conn, status)
    refused = 0
    for action in ACTIONS:
        if action == "expire" or (action == "resolve" and dispute_id is None):
            continue  # no movement here expires; resolving needs a dispute
        for who, telegram_id in PEOPLE.items():
            if (status, action, who) in {(s, a, w) for (s, a, w, _) in TRANSITIONS}:
                continue
            before = await state(conn, e.id)
            with pytest.raises((WrongStatus, NotAParty)) as err:
                await attempt(conn, action, telegram_id, e, dispute_id)
            party = who in ("buyer", "seller") or (who == "admin" and action in ADMIN_ACTIONS)
            assert isinstance(err.value, WrongStatus if party else NotAParty), (action, who)
            if party:
                assert err.value.status == status.value, (action, who)
            assert await state(conn, e.id) == before, (action, who)
            refused += 1
    # The system may only release, and only a delivered escrow.
    if status is not S.DELIVERED:
        await queries.escrow_test_make_due(conn, escrow_id=e.id)
        before = await state(conn, e.id)
        assert await auto_release_due(conn) == []
        assert await state(conn, e.id) == before
    assert refused >= 20


# --- races ----------------------------------------------------------------------------------


async def test_release_racing_refund_exactly_one_wins(pool, conn):
    await people(conn)
    await seeding.credit(conn, BUYER, "USDT", "1000")
    for _ in range(6):
        e = await delivered(conn)
        results = await asyncio.gather(
            release_escrow(pool, escrow_id=e.id, telegram_id=BUYER),
            refund_escrow(pool, escrow_id=e.id, telegram_id=SELLER),
            return_exceptions=True,
        )
        wins = [r for r in results if not isinstance(r, Exception)]
        losses = [r for r in results if isinstance(r, Exception)]
        assert len(wins) == 1 and len(losses) == 1, results
        assert isinstance(losses[0], WrongStatus)
        assert losses[0].status == wins[0].escrow.status.value
    # Every escrow paid out once: what the seller got plus what the buyer kept is all there is.
    completed = (await available(conn, SELLER)) / D("100")
    assert await available(conn, BUYER) == D("1000") - completed * D("105")
    assert await fees(conn) == completed * D("5")


# --- auto-release ---------------------------------------------------------------------------


async def test_auto_release_pays_due_escrows_as_the_buyer_would(conn):
    await people(conn)
    await seeding.credit(conn, BUYER, "USDT", "500")
    due = await delivered(conn, fee_split=FeeSplit.SPLIT)
    not_yet = await delivered(conn)
    await queries.escrow_test_make_due(conn, escrow_id=due.id)
    assert await auto_release_due(conn) == [due.id]
    assert await available(conn, SELLER) == D("97.5")
    assert await fees(conn) == D("5")
    assert (await state(conn, not_yet.id))["escrow"]["status"] == "delivered"
    assert await auto_release_due(conn) == []


async def test_two_auto_release_runs_at_once_release_each_escrow_once(pool, conn):
    await people(conn)
    await seeding.credit(conn, BUYER, "USDT", "5000")
    due = set()
    for _ in range(24):
        e = await delivered(conn)
        await queries.escrow_test_make_due(conn, escrow_id=e.id)
        due.add(e.id)
    first, second = await asyncio.gather(
        auto_release_due(pool, limit=5), auto_release_due(pool, limit=5)
    )
    assert set(first) | set(second) == due
    assert not set(first) & set(second)
    assert len(first) + len(second) == len(due)
    assert await available(conn, SELLER) == 24 * D("100")
    assert await fees(conn) == 24 * D("5")


# --- referral rewards -----------------------------------------------------------------------


async def test_referral_reward_is_paid_once_per_referred_user(conn):
    await people(conn)
    await seeding.set_referrer(conn, BUYER, REFERRER)
    await seeding.credit(conn, BUYER, "USDT", "500")

    e = await delivered(conn)
    r = await one_trip(release_escrow(conn, escrow_id=e.id, telegram_id=BUYER))
    assert len(r.rewards) == 1
    assert r.rewards[0].amount == D("0.5") and r.rewards[0].currency == "USDT"
    assert await available(conn, REFERRER) == D("0.5")
    assert await fees(conn) == D("4.5")
    rewards = [dict(x) async for x in queries.escrow_test_referral_rewards(conn)]
    assert rewards == [
        {
            "referrer_telegram_id": REFERRER,
            "referred_telegram_id": BUYER,
            "escrow_id": e.id,
            "currency": "USDT",
            "amount": D("0.5"),
            "transfer_id": r.rewards[0].transfer_id,
            "transfer_kind": TransferKind.REFERRAL_REWARD.value,
        }
    ]

    # A second completed escrow, even through auto-release, pays nothing more.
    second = await delivered(conn)
    await queries.escrow_test_make_due(conn, escrow_id=second.id)
    assert await auto_release_due(conn) == [second.id]
    assert await available(conn, REFERRER) == D("0.5")
    assert await fees(conn) == D("9.5")
    assert len([x async for x in queries.escrow_test_referral_rewards(conn)]) == 1


async def test_both_parties_earn_their_referrers_a_reward_rounded_down(conn):
    await people(conn)
    # The seller brought the buyer in; REFERRER brought the seller in.
    await seeding.set_referrer(conn, BUYER, SELLER)
    await seeding.set_referrer(conn, SELLER, REFERRER)
    await seeding.credit(conn, BUYER, "BTC", "1")
    # Fee: 5% of 0.00012345 is 0.0000061725, up to 0.00000618; a reward 10% of it, down.
    e = await delivered(conn, amount="0.00012345", currency="BTC")
    r = await release_escrow(conn, escrow_id=e.id, telegram_id=BUYER)
    assert sorted(x.amount for x in r.rewards) == [D("0.00000061")] * 2
    assert await available(conn, SELLER, "BTC") == D("0.00012345") + D("0.00000061")
    assert await available(conn, REFERRER, "BTC") == D("0.00000061")
    assert await fees(conn, "BTC") == D("0.00000618") - 2 * D("0.00000061")


async def test_two_first_escrows_completing_at_once_pay_one_reward(pool, conn):
    await people(conn)
    await seeding.set_referrer(conn, BUYER, REFERRER)
    await seeding.credit(conn, BUYER, "USDT", "500")
    a, b = await delivered(conn), await delivered(conn)
    results = await asyncio.gather(
        release_escrow(pool, escrow_id=a.id, telegram_id=BUYER),
        release_escrow(pool, escrow_id=b.id, telegram_id=BUYER),
    )
    assert sorted(len(r.rewards) for r in results) == [0, 1]
    assert await available(conn, REFERRER) == D("0.5")
