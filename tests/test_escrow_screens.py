"""The escrow screens: the creation lookup, the escrow view per viewer, and my escrows paged
by keyset, each in one round trip, built on the real movements."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import seeding

from bot import db
from bot.data.dispute import open_dispute, post_dispute_message, resolve_dispute
from bot.data.enums import DisputeStatus, EscrowStatus, FeeSplit
from bot.data.escrow import (
    STATUS_GROUPS,
    Escrow,
    EscrowPage,
    accept_escrow,
    allowed_actions,
    cancel_escrow,
    create_escrow,
    decline_escrow,
    escrow_creation_context,
    escrow_view,
    fund_escrow_from_wallet,
    mark_delivered,
    my_escrows,
    refund_escrow,
    release_escrow,
)
from bot.data.rating import rate_trade, rating_summary
from bot.db import queries
from bot.money import HandleError

BUYER, SELLER, STRANGER, ADMIN, OTHER = 8001, 8002, 8003, 8004, 8005
SELLER_PHONE = "+2348031234567"
HANDLES = {BUYER: "@BunmiBuys", SELLER: "@SadeSells", OTHER: "@OtherOne"}
S = EscrowStatus
D = Decimal
_keys = itertools.count(1)


async def people(conn) -> dict[int, int]:
    """The cast, telegram id -> user id. The seller's handles are stored in mixed case."""
    ids = {
        BUYER: await seeding.user(conn, BUYER, first_name="Bunmi", username="BunmiBuys"),
        SELLER: await seeding.user(
            conn,
            SELLER,
            first_name="Sade",
            username="SadeSells",
            email="Sade.Sells@Example.com",
            phone=SELLER_PHONE,
        ),
        STRANGER: await seeding.user(conn, STRANGER, first_name="Stranger"),
        ADMIN: await seeding.user(conn, ADMIN, first_name="Admin"),
        OTHER: await seeding.user(conn, OTHER, first_name="", username="OtherOne"),
    }
    await seeding.make_admin(conn, ADMIN)
    for t in (BUYER, SELLER, OTHER):
        await seeding.credit(conn, t, "USDT", "10000")
    return ids


async def one_trip(call):
    """Run a screen; assert it cost exactly one round trip."""
    async with db.meter.measure() as m:
        result = await call
    assert m.round_trips == 1, m.statements
    return result


async def new_escrow(
    conn,
    buyer: int = BUYER,
    seller_handle: str = "@sadesells",
    amount: str = "100",
    description: str = "A used bicycle",
) -> Escrow:
    return await create_escrow(
        conn,
        buyer_telegram_id=buyer,
        seller_handle=seller_handle,
        currency="USDT",
        amount=D(amount),
        description=description,
        fee_split=FeeSplit.SPLIT,
    )


async def fund(conn, escrow_id: int, buyer: int = BUYER) -> None:
    await fund_escrow_from_wallet(
        conn, escrow_id=escrow_id, telegram_id=buyer, idempotency_key=f"k{next(_keys)}"
    )


async def in_status(conn, status: S, buyer: int = BUYER, seller: int = SELLER) -> int:
    """An escrow of `buyer` and `seller` brought to `status` by the real movements."""
    e = await new_escrow(conn, buyer=buyer, seller_handle=HANDLES[seller])
    if status is S.AWAITING_PAYMENT:
        return e.id
    if status is S.CANCELLED:
        await cancel_escrow(conn, escrow_id=e.id, telegram_id=buyer)
        return e.id
    if status is S.EXPIRED:
        await queries.escrow_test_expire(conn, escrow_id=e.id)
        return e.id
    await fund(conn, e.id, buyer)
    if status is S.DECLINED:
        await decline_escrow(conn, escrow_id=e.id, telegram_id=seller)
    if status in (S.DECLINED, S.FUNDED):
        return e.id
    if status is S.REFUNDED:
        await refund_escrow(conn, escrow_id=e.id, telegram_id=seller)
        return e.id
    await accept_escrow(conn, escrow_id=e.id, telegram_id=seller)
    if status is S.COMPLETED:
        await release_escrow(conn, escrow_id=e.id, telegram_id=buyer)
    elif status is S.DELIVERED:
        await mark_delivered(conn, escrow_id=e.id, telegram_id=seller)
    elif status is S.DISPUTED:
        await open_dispute(conn, escrow_id=e.id, telegram_id=buyer, reason="Never arrived")
    return e.id


# --- escrow_creation_context -----------------------------------------------------------


@pytest.mark.parametrize(
    "handle",
    [
        "@SadeSells",
        "@sadesells",
        "SADESELLS",
        "sade.sells@example.com",
        "SADE.SELLS@EXAMPLE.COM",
        "0803 123 4567",
        SELLER_PHONE,
    ],
)
async def test_the_seller_is_found_by_every_kind_of_handle(conn, handle):
    ids = await people(conn)
    ctx = await one_trip(
        escrow_creation_context(conn, buyer_telegram_id=BUYER, seller_handle=handle)
    )
    assert ctx.seller_status == "found"
    assert ctx.seller is not None and ctx.seller.id == ids[SELLER]
    assert (ctx.seller.display_name, ctx.seller.username) == ("Sade", "SadeSells")


@pytest.mark.parametrize("handle", ["@nobody_here", "ghost@example.com", "0809 999 9999"])
async def test_an_unknown_seller_is_not_found_and_will_be_invited(conn, handle):
    await people(conn)
    ctx = await one_trip(
        escrow_creation_context(conn, buyer_telegram_id=BUYER, seller_handle=handle)
    )
    assert ctx.seller_status == "not_found" and ctx.seller is None
    # The buyer's side of the screen is all there all the same.
    assert ctx.buyer_name == "Bunmi" and ctx.wallet("USDT").available == D("10000")


async def test_naming_oneself_says_self(conn):
    await people(conn)
    ctx = await one_trip(
        escrow_creation_context(conn, buyer_telegram_id=SELLER, seller_handle=SELLER_PHONE)
    )
    assert ctx.seller_status == "self" and ctx.seller is None


async def test_an_unknown_buyer_gets_none_and_a_bad_handle_costs_no_query(conn):
    await people(conn)
    assert (
        await one_trip(
            escrow_creation_context(conn, buyer_telegram_id=999, seller_handle="@sadesells")
        )
        is None
    )
    async with db.meter.measure() as m:
        with pytest.raises(HandleError):
            await escrow_creation_context(conn, buyer_telegram_id=BUYER, seller_handle="no way!")
    assert m.round_trips == 0


async def test_creation_context_carries_wallets_fees_splits_and_minimums(conn):
    ids = await people(conn)
    await seeding.credit(conn, BUYER, "BTC", "0.00000001")
    ctx = await one_trip(
        escrow_creation_context(conn, buyer_telegram_id=BUYER, seller_handle="@sadesells")
    )
    assert (ctx.buyer_id, ctx.buyer_name, ctx.buyer_username) == (ids[BUYER], "Bunmi", "BunmiBuys")
    assert [w.currency for w in ctx.wallets] == ["BTC", "ETH", "LTC", "USDT", "NGN"]
    assert ctx.wallet("BTC").available == D("0.00000001")
    assert ctx.wallet("NGN").available == 0
    assert ctx.handle.kind == "username" and ctx.handle.value == "sadesells"
    assert ctx.fee_rate == D("0.05")
    assert ctx.fee_splits == (FeeSplit.BUYER, FeeSplit.SELLER, FeeSplit.SPLIT)
    mins = {c.code: (c.escrow_min_amount, c.decimals) for c in ctx.currencies}
    assert mins == {
        "BTC": (D("0.0001"), 8),
        "ETH": (D("0.005"), 18),
        "LTC": (D("0.01"), 8),
        "USDT": (D("5"), 6),
        "NGN": (D("1000"), 2),
    }


async def test_the_seller_card_counts_completed_trades_and_carries_the_rating_summary(conn):
    ids = await people(conn)
    fresh = await one_trip(
        escrow_creation_context(conn, buyer_telegram_id=BUYER, seller_handle="@sadesells")
    )
    assert fresh.seller.completed_trades == 0
    assert fresh.seller.rating.count == 0 and fresh.seller.rating.average is None
    assert dict(fresh.seller.rating.distribution) == {1: 0, 2: 0, 3: 0, 4: 0, 5: 0}

    # Completed: two as seller, one as buyer. Not completed: refunded, funded, disputed.
    for buyer in (BUYER, OTHER):
        e = await in_status(conn, S.COMPLETED, buyer=buyer, seller=SELLER)
        await rate_trade(conn, escrow_id=e, telegram_id=buyer, stars=4, comment="Good 👍")
    e = await in_status(conn, S.COMPLETED, buyer=SELLER, seller=OTHER)
    await rate_trade(conn, escrow_id=e, telegram_id=OTHER, stars=1)
    await in_status(conn, S.REFUNDED)
    await in_status(conn, S.FUNDED)
    await in_status(conn, S.DISPUTED)
    # A trade between others is not the seller's.
    await in_status(conn, S.COMPLETED, buyer=BUYER, seller=OTHER)

    ctx = await one_trip(
        escrow_creation_context(conn, buyer_telegram_id=BUYER, seller_handle="@sadesells")
    )
    assert ctx.seller.completed_trades == 3
    # The same content as the rating summary screen.
    assert ctx.seller.rating == await rating_summary(conn, user_id=ids[SELLER])
    assert ctx.seller.rating.count == 3 and ctx.seller.rating.average == D("3.00")
    assert ctx.seller.rating.as_seller.count == 2 and ctx.seller.rating.as_buyer.count == 1
    assert [r.rater_name for r in ctx.seller.rating.latest] == ["OtherOne", "OtherOne", "Bunmi"]


# --- escrow_view -----------------------------------------------------------------------


async def test_the_buyer_sees_an_invited_seller_by_handle(conn):
    ids = await people(conn)
    e = await new_escrow(conn, seller_handle="New.Person@Example.COM", description="Logo ✏️ 🎨")
    view = await one_trip(escrow_view(conn, escrow_id=e.id, viewer_telegram_id=BUYER))
    assert view.escrow == e
    assert view.escrow.description == "Logo ✏️ 🎨"
    assert view.buyer.id == ids[BUYER] and view.buyer.display_name == "Bunmi"
    assert view.seller is None and view.escrow.seller_handle == "new.person@example.com"
    assert view.viewer_role == "buyer"
    assert view.allowed_actions == ("pay", "cancel")
    assert view.dispute is None


async def test_the_view_shows_amounts_payment_and_deadlines(conn):
    ids = await people(conn)
    e = await new_escrow(conn, amount="100.000001")
    await fund(conn, e.id)
    accepted = (await accept_escrow(conn, escrow_id=e.id, telegram_id=SELLER)).escrow
    view = await one_trip(escrow_view(conn, escrow_id=e.id, viewer_telegram_id=SELLER))
    assert view.escrow == accepted
    assert (view.escrow.amount, view.escrow.fee) == (D("100.000001"), D("5.000001"))
    assert (view.escrow.buyer_fee, view.escrow.seller_fee) == (D("2.500001"), D("2.5"))
    assert view.escrow.total == D("105.000002") and view.escrow.fee_split is FeeSplit.SPLIT
    assert view.escrow.paid_amount == D("102.500002")
    assert view.escrow.payment_method.value == "wallet" and view.escrow.payment_reference
    assert view.escrow.accept_deadline and view.escrow.delivery_deadline
    assert view.seller.id == ids[SELLER] and view.seller.username == "SadeSells"
    assert view.viewer_role == "seller"
    assert view.allowed_actions == ("deliver", "refund", "dispute")


async def test_allowed_actions_match_the_state_machine_for_every_role_and_status(conn):
    await people(conn)
    viewers = {BUYER: "buyer", SELLER: "seller", ADMIN: "admin"}
    for status in S:
        escrow_id = await in_status(conn, status)
        for telegram_id, role in viewers.items():
            view = await one_trip(
                escrow_view(conn, escrow_id=escrow_id, viewer_telegram_id=telegram_id)
            )
            assert view.escrow.status is status
            assert view.viewer_role == role
            assert list(view.allowed_actions) == allowed_actions(status, role), (status, role)
    # Spot checks against the transitions as written.
    funded = await in_status(conn, S.FUNDED)
    seller_view = await escrow_view(conn, escrow_id=funded, viewer_telegram_id=SELLER)
    assert seller_view.allowed_actions == ("accept", "decline", "refund")
    disputed = await in_status(conn, S.DISPUTED)
    admin_view = await escrow_view(conn, escrow_id=disputed, viewer_telegram_id=ADMIN)
    assert admin_view.allowed_actions == ("resolve",)


async def test_an_admin_who_is_a_party_sees_their_party_role(conn):
    await people(conn)
    await seeding.make_admin(conn, BUYER)
    escrow_id = await in_status(conn, S.FUNDED)
    view = await escrow_view(conn, escrow_id=escrow_id, viewer_telegram_id=BUYER)
    assert view.viewer_role == "buyer" and view.allowed_actions == ()


async def test_strangers_unknown_viewers_and_unknown_escrows_get_none(conn):
    await people(conn)
    escrow_id = await in_status(conn, S.DISPUTED)
    for escrow, viewer in ((escrow_id, STRANGER), (escrow_id, OTHER), (escrow_id, 999)):
        assert (
            await one_trip(escrow_view(conn, escrow_id=escrow, viewer_telegram_id=viewer)) is None
        )
    assert await one_trip(escrow_view(conn, escrow_id=10**9, viewer_telegram_id=BUYER)) is None
    assert await one_trip(escrow_view(conn, escrow_id=10**9, viewer_telegram_id=ADMIN)) is None


async def test_the_live_dispute_with_its_message_count_until_resolved(conn):
    ids = await people(conn)
    e = await new_escrow(conn)
    await fund(conn, e.id)
    await accept_escrow(conn, escrow_id=e.id, telegram_id=SELLER)
    dispute = await open_dispute(conn, escrow_id=e.id, telegram_id=SELLER, reason="Buyer 🙈 gone")
    before = await one_trip(escrow_view(conn, escrow_id=e.id, viewer_telegram_id=BUYER))
    assert (before.dispute.status, before.dispute.message_count) == (DisputeStatus.OPEN, 0)
    for telegram_id, body in ((BUYER, "Here"), (SELLER, "Where?"), (ADMIN, "Looking")):
        await post_dispute_message(conn, dispute_id=dispute.id, telegram_id=telegram_id, body=body)

    for viewer in (BUYER, SELLER, ADMIN):
        view = await one_trip(escrow_view(conn, escrow_id=e.id, viewer_telegram_id=viewer))
        assert view.escrow.status is S.DISPUTED
        d = view.dispute
        # An admin's reply takes it into review: still live.
        assert (d.id, d.status, d.reason) == (dispute.id, DisputeStatus.IN_REVIEW, "Buyer 🙈 gone")
        assert (d.opened_by_id, d.opened_by_role) == (ids[SELLER], "seller")
        assert d.message_count == 3 and d.created_at == dispute.created_at

    await resolve_dispute(conn, dispute_id=dispute.id, admin_telegram_id=ADMIN, buyer_share=D("0"))
    after = await one_trip(escrow_view(conn, escrow_id=e.id, viewer_telegram_id=BUYER))
    assert after.escrow.status is S.COMPLETED and after.dispute is None


# --- my_escrows ------------------------------------------------------------------------


async def walk(conn, telegram_id: int, group: str, limit: int) -> list[list[int]]:
    """Every page of a group, each fetched in one round trip; the ids page by page."""
    pages: list[list[int]] = []
    before = None
    while True:
        page: EscrowPage = await one_trip(
            my_escrows(
                conn, telegram_id=telegram_id, status_group=group, before=before, limit=limit
            )
        )
        assert len(page.items) <= limit
        pages.append([i.id for i in page.items])
        if page.next_before is None:
            return pages
        assert len(page.items) == limit
        last = page.items[-1]
        assert (page.next_before.at, page.next_before.id) == (last.created_at, last.id)
        # The cursor survives its round trip through callback data.
        before = type(page.next_before).decode(page.next_before.encode())
        assert len(pages) < 50, "paging does not end"


async def test_my_escrows_pages_every_group_for_both_roles_without_repeats_or_gaps(conn):
    await people(conn)
    statuses = list(S)
    made: dict[int, tuple[str, S]] = {}  # escrow id -> (BUYER's role in it, status)
    # 25 escrows of BUYER: 14 as buyer of SELLER, 1 of an invited seller, 10 as seller.
    for n in range(14):
        escrow_id = await in_status(conn, statuses[n % 10], buyer=BUYER, seller=SELLER)
        made[escrow_id] = ("buyer", statuses[n % 10])
    invited = await new_escrow(conn, seller_handle="@not_joined_yet")
    made[invited.id] = ("buyer", S.AWAITING_PAYMENT)
    for n in range(10):
        escrow_id = await in_status(conn, statuses[(n + 3) % 10], buyer=OTHER, seller=BUYER)
        made[escrow_id] = ("seller", statuses[(n + 3) % 10])
    # Escrows that are not BUYER's, created at one of BUYER's instants.
    theirs = [await in_status(conn, S.FUNDED, buyer=OTHER, seller=SELLER) for _ in range(3)]

    # Creation instants: three runs of 5 equal ones (roles mixed, across page
    # boundaries), then one each. Mixed order: instants do not follow ids.
    base = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    order = sorted(made, key=lambda i: (i * 7919) % 101)
    at = {i: base + timedelta(minutes=n // 5 * 5 if n < 15 else n) for n, i in enumerate(order)}
    for instant in set(at.values()):
        same = [i for i in order if at[i] == instant]
        await queries.escrow_test_set_created_at(conn, escrow_ids=same, at=instant)
    await queries.escrow_test_set_created_at(conn, escrow_ids=theirs, at=base)
    assert len(made) == 25 and len(set(at.values())) == 13
    assert any(len({made[i][0] for i in order if at[i] == t}) == 2 for t in set(at.values()))

    counts = {}
    for group, wanted in STATUS_GROUPS.items():
        expected = sorted(
            (i for i, (_, st) in made.items() if st in wanted),
            key=lambda i: (at[i], i),
            reverse=True,
        )
        counts[group] = len(expected)
        assert {made[i][0] for i in expected} == {"buyer", "seller"}, group
        for limit in (1, 4, 10, 50):
            pages = await walk(conn, BUYER, group, limit)
            assert [i for p in pages for i in p] == expected, (group, limit)
    assert counts == {"active": 15, "completed": 2, "closed": 8, "all": 25}

    page = await one_trip(my_escrows(conn, telegram_id=BUYER, status_group="all", limit=50))
    items = {i.id: i for i in page.items}
    for escrow_id, (role, status) in made.items():
        item = items[escrow_id]
        assert (item.role, item.status, item.currency) == (role, status, "USDT")
        assert item.created_at == at[escrow_id]
        if escrow_id == invited.id:
            assert (item.counterparty_name, item.counterparty_invited) == ("not_joined_yet", True)
        elif role == "buyer":
            assert (item.counterparty_name, item.counterparty_invited) == ("Sade", False)
        else:
            # OTHER has no first name: their username stands in.
            assert (item.counterparty_name, item.counterparty_invited) == ("OtherOne", False)
        assert item.amount == D("100")
    assert len(items) == 25 and not set(theirs) & set(items)


async def test_each_party_sees_only_their_own_escrows(conn):
    await people(conn)
    mine = await in_status(conn, S.FUNDED, buyer=BUYER, seller=SELLER)
    theirs = await in_status(conn, S.FUNDED, buyer=OTHER, seller=SELLER)
    seller_side = await my_escrows(conn, telegram_id=SELLER, status_group="active")
    assert [(i.id, i.role) for i in seller_side.items] == [(theirs, "seller"), (mine, "seller")]
    buyer_side = await my_escrows(conn, telegram_id=BUYER, status_group="active")
    assert [(i.id, i.role) for i in buyer_side.items] == [(mine, "buyer")]
    other_side = await my_escrows(conn, telegram_id=OTHER, status_group="active")
    assert [(i.id, i.role) for i in other_side.items] == [(theirs, "buyer")]
    assert await my_escrows(conn, telegram_id=STRANGER, status_group="completed") == EscrowPage(
        items=(), next_before=None, is_blocked=False, onboarding_complete=True
    )


async def test_unknown_users_get_none_and_users_with_nothing_an_empty_page(conn):
    await people(conn)
    assert await one_trip(my_escrows(conn, telegram_id=999, status_group="all")) is None
    page = await one_trip(my_escrows(conn, telegram_id=STRANGER, status_group="all"))
    assert page == EscrowPage(
        items=(), next_before=None, is_blocked=False, onboarding_complete=True
    )
    with pytest.raises(ValueError):
        await my_escrows(conn, telegram_id=BUYER, status_group="everything")


async def test_a_page_holds_at_most_fifty(conn):
    await people(conn)
    for _ in range(52):
        await new_escrow(conn, amount="5")
    page = await one_trip(my_escrows(conn, telegram_id=BUYER, status_group="active", limit=500))
    assert len(page.items) == 50 and page.next_before is not None
    rest = await one_trip(
        my_escrows(
            conn, telegram_id=BUYER, status_group="active", before=page.next_before, limit=500
        )
    )
    assert len(rest.items) == 2 and rest.next_before is None
    assert not {i.id for i in page.items} & {i.id for i in rest.items}
    tiny = await my_escrows(conn, telegram_id=BUYER, status_group="active", limit=0)
    assert len(tiny.items) == 1 and tiny.next_before is not None
