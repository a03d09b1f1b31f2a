"""The bank test: thousands of random movements from many concurrent workers, and
the books must balance at every moment and at the end.

Set LOCKBAY_BANK_SEED to replay a run; the seed is printed (and shown on failure).
"""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter, defaultdict
from decimal import Decimal

import asyncpg
import pytest
import seeding

from bot import db
from bot.data.dispute import open_dispute, resolve_dispute
from bot.data.enums import FeeSplit, PaymentProvider
from bot.data.errors import DomainError
from bot.data.escrow import (
    accept_escrow,
    auto_release_due,
    create_escrow,
    decline_escrow,
    fund_escrow_from_wallet,
    mark_delivered,
    refund_escrow,
    release_escrow,
)
from bot.data.exchange import execute_exchange, lock_rate
from bot.data.ledger import reconcile
from bot.data.wallet import (
    BankDestination,
    CryptoDestination,
    create_deposit_order,
    credit_deposit,
    fail_cashout,
    request_cashout,
    settle_cashout,
)

USERS = list(range(3001, 3021))
ADMIN = 3999
WORKERS = 50
MOVEMENTS = 5000
CHECKS = 25  # reconciliations at random moments during the run

DESTINATIONS = {
    "USDT": CryptoDestination(network="TRC20", address="TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"),
    "BTC": CryptoDestination(network="BTC", address="1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"),
    "NGN": BankDestination(bank_code="058", account_number="0123456789", account_name="BANK TEST"),
}
DEPOSITS = {"USDT": (5, 400), "BTC": (Decimal("0.0001"), Decimal("0.01")), "NGN": (1000, 400000)}
PROVIDER = {
    "USDT": PaymentProvider.BLOCKBEE,
    "BTC": PaymentProvider.DYNOPAY,
    "NGN": PaymentProvider.FINCRA,
}
PRECISION = {"USDT": 6, "BTC": 8, "NGN": 2}


def amount_between(rng: random.Random, currency: str, low, high) -> Decimal:
    places = PRECISION[currency]
    value = Decimal(str(rng.uniform(float(low), float(high))))  # float-ok: random test input
    return value.quantize(Decimal(1).scaleb(-places))


class Bank:
    """The run's own account of money in and out of the platform, per currency."""

    def __init__(self, pool, seed: int) -> None:
        self.pool = pool
        self.seed = seed
        self.inflow: defaultdict[str, Decimal] = defaultdict(Decimal)
        self.outflow: defaultdict[str, Decimal] = defaultdict(Decimal)
        self.done: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self.violations: list = []

    async def deposit(self, rng: random.Random, n: int) -> None:
        currency = rng.choice(list(DEPOSITS))
        user = rng.choice(USERS)
        order = await create_deposit_order(
            self.pool, telegram_id=user, currency=currency, provider=PROVIDER[currency]
        )
        event = dict(
            provider=PROVIDER[currency],
            event_id=f"evt-{self.seed}-{n}",
            order_ref=order.ref,
            currency=currency,
            amount=amount_between(rng, currency, *DEPOSITS[currency]),
        )
        # Providers retry: sometimes the same event arrives several times at once.
        copies = rng.choice([1, 1, 1, 2, 3])
        results = await asyncio.gather(*(credit_deposit(self.pool, **event) for _ in range(copies)))
        credited = [r for r in results if not r.duplicate]
        assert len(credited) == 1, f"event {event['event_id']} credited {len(credited)} times"
        self.inflow[currency] += event["amount"]

    async def cashout(self, rng: random.Random, n: int) -> None:
        currency = rng.choice(list(DESTINATIONS))
        low, high = DEPOSITS[currency]
        cashout = await request_cashout(
            self.pool,
            telegram_id=rng.choice(USERS),
            currency=currency,
            amount=amount_between(rng, currency, low, high / 2),
            destination=DESTINATIONS[currency],
            idempotency_key=f"co-{self.seed}-{n}",
        )
        fate = rng.random()
        if fate < 0.5:
            await settle_cashout(
                self.pool,
                cashout_id=cashout.id,
                provider=PROVIDER[currency],
                provider_reference=f"ref-{n}",
            )
            self.outflow[currency] += cashout.amount
        elif fate < 0.8:
            await fail_cashout(self.pool, cashout_id=cashout.id, reason="provider said no")

    async def escrow(self, rng: random.Random, n: int) -> None:
        buyer, seller = rng.sample(USERS, 2)
        currency = rng.choice(["USDT", "NGN"])
        low, high = DEPOSITS[currency]
        escrow = await create_escrow(
            self.pool,
            buyer_telegram_id=buyer,
            seller_handle=f"@user{seller}",
            currency=currency,
            amount=amount_between(rng, currency, low, high / 4),
            description=f"bank test trade {n}",
            fee_split=rng.choice(list(FeeSplit)),
        )
        e = dict(escrow_id=escrow.id)
        await fund_escrow_from_wallet(
            self.pool, **e, telegram_id=buyer, idempotency_key=f"esc-{self.seed}-{n}"
        )
        path = rng.choice(["release", "refund", "decline", "dispute", "auto"])
        if path == "decline":
            await decline_escrow(self.pool, **e, telegram_id=seller)
            return
        await accept_escrow(self.pool, **e, telegram_id=seller)
        if path == "refund":
            await refund_escrow(self.pool, **e, telegram_id=seller)
        elif path == "dispute":
            dispute = await open_dispute(self.pool, **e, telegram_id=buyer, reason="not as said")
            share = (escrow.amount * Decimal(rng.randint(0, 100)) / 100).quantize(
                Decimal(1).scaleb(-PRECISION[currency])
            )
            await resolve_dispute(
                self.pool, dispute_id=dispute.id, admin_telegram_id=ADMIN, buyer_share=share
            )
        else:
            await mark_delivered(self.pool, **e, telegram_id=seller)
            if path == "release":
                await release_escrow(self.pool, **e, telegram_id=buyer)
            else:
                await db.queries.escrow_test_make_due(self.pool, escrow_id=escrow.id)
                await auto_release_due(self.pool, limit=5)

    async def exchange(self, rng: random.Random, n: int) -> None:
        pair = rng.choice([("USDT", "NGN"), ("NGN", "USDT")])
        low, high = (Decimal(5), Decimal(200)) if pair[0] == "USDT" else (5000, 200000)
        user = rng.choice(USERS)
        quote = await lock_rate(
            self.pool,
            telegram_id=user,
            from_currency=pair[0],
            to_currency=pair[1],
            amount=amount_between(rng, pair[0], low, high),
        )
        await execute_exchange(self.pool, telegram_id=user, order_id=quote.order_id)

    async def check(self) -> None:
        self.violations += await reconcile(self.pool)


async def test_the_books_balance_under_thousands_of_concurrent_movements(database_url):
    seed = int(os.environ.get("LOCKBAY_BANK_SEED") or random.randrange(2**32))
    print(f"bank test seed: {seed} (replay with LOCKBAY_BANK_SEED={seed})")
    pool = await db.create_pool(database_url, min_size=WORKERS, max_size=WORKERS)
    try:
        for user in [*USERS, ADMIN]:
            await seeding.user(pool, user)
        await seeding.make_admin(pool, ADMIN)
        for referred, referrer in zip(USERS[10:], USERS[:10], strict=True):
            await seeding.set_referrer(pool, referred, referrer)
        for base, quote, rate in [
            ("USDT", "USD", "1"),
            ("BTC", "USD", "95000"),
            ("USD", "NGN", "1500"),
        ]:
            await seeding.rate(pool, base, quote, rate)

        bank = Bank(pool, seed)
        kinds = (
            [bank.deposit] * 30 + [bank.cashout] * 20 + [bank.escrow] * 30 + [bank.exchange] * 20
        )
        plan = random.Random(seed)
        checks_at = set(plan.sample(range(MOVEMENTS), CHECKS))
        queue = iter(range(MOVEMENTS))

        async def worker() -> None:
            for n in queue:
                rng = random.Random(f"{seed}:{n}")
                movement = rng.choice(kinds)
                try:
                    await movement(rng, n)
                    bank.done[movement.__name__] += 1
                except DomainError as refused:
                    # Refusals are normal traffic here (too little money, a race lost).
                    bank.refused[type(refused).__name__] += 1
                except asyncpg.DeadlockDetectedError as e:
                    pytest.fail(f"deadlock in {movement.__name__} #{n} (seed {seed}): {e}")
                if n in checks_at:
                    await bank.check()

        await asyncio.gather(*(worker() for _ in range(WORKERS)))
        print(f"done {dict(bank.done)}; refused {dict(bank.refused)}")

        assert bank.violations == [], f"seed {seed}: broken during the run"
        assert await reconcile(pool) == [], f"seed {seed}: broken at the end"
        inside = {
            r["currency"]: r["total"] async for r in db.queries.ledger_test_inside_totals(pool)
        }
        for currency in DEPOSITS:
            assert inside.get(currency, 0) == bank.inflow[currency] - bank.outflow[currency], (
                f"seed {seed}: {currency} inside the platform differs from inflow minus outflow"
            )
        # Every kind of movement really ran, and most were not refused.
        assert set(bank.done) == {"deposit", "cashout", "escrow", "exchange"}
        assert sum(bank.done.values()) > MOVEMENTS / 2
    finally:
        await pool.close()
