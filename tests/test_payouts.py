"""The cashout worker against a fake Fincra over real HTTP and the real database: the
claim committed before the call, the provider's reference recorded, a crash between
call and record recovered by looking the payout up (never a second payout request),
two workers at once paying each cashout once, refusals failing the cashout (hold
released), timeouts and 5xx left for the next run."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal
from types import SimpleNamespace

import pytest
import seeding
from fake_providers import FINCRA_API_KEY, FINCRA_BUSINESS_ID, Answer, FakeFincra, serve
from webhook_support import offline_bot, texts_to

from bot import db
from bot.data.enums import CashoutStatus, PaymentProvider
from bot.data.wallet import (
    BankDestination,
    PayoutClaim,
    apply_payout_event,
    approve_cashout,
    request_cashout,
)
from bot.db import queries
from bot.outbox import deliver_due
from bot.payouts import (
    JOB_NAME,
    FincraBankPayouts,
    Outcome,
    PayoutReceipt,
    PayoutWorker,
    payouts_job,
    schedule_payouts,
    worker_from_env,
)
from bot.providers import cashout_reference
from bot.providers.fincra import FincraClient
from bot.providers.http import HttpSettings, ProviderRefused

D = Decimal
ADMIN, ADA, BAYO = 62000, 62001, 62002
GTB = BankDestination(bank_code="058", account_number="0123456789", account_name="ADA OBI")
FAST = HttpSettings(timeout_seconds=5, max_attempts=3, backoff_seconds=0)
IMPATIENT = HttpSettings(timeout_seconds=0.2, max_attempts=3, backoff_seconds=0)
LEASE = 300


@pytest.fixture
async def fincra():
    fake = FakeFincra()
    async with serve(fake) as url:
        fake.url = url
        yield fake


def rail(fake: FakeFincra, settings: HttpSettings = FAST) -> FincraBankPayouts:
    return FincraBankPayouts(
        FincraClient(
            api_key=FINCRA_API_KEY,
            business_id=FINCRA_BUSINESS_ID,
            api_url=fake.url,
            settings=settings,
        )
    )


@pytest.fixture
async def worker(pool, fincra):
    bank = rail(fincra)
    async with bank.client:
        yield PayoutWorker(pool, bank=bank, lease_seconds=LEASE)


async def people(pool) -> None:
    await seeding.user(pool, ADMIN)
    await seeding.make_admin(pool, ADMIN)
    for person in (ADA, BAYO):
        await seeding.user(pool, person)
        await seeding.credit(pool, person, "NGN", "1000000")


async def approved(pool, telegram_id: int = ADA, amount: str = "10000", n: int = 1) -> int:
    c = await request_cashout(
        pool,
        telegram_id=telegram_id,
        currency="NGN",
        amount=D(amount),
        destination=GTB,
        idempotency_key=f"payout-test-{telegram_id}-{n}",
    )
    await approve_cashout(pool, cashout_id=c.id, admin_telegram_id=ADMIN)
    return c.id


async def state(pool, cashout_id: int):
    return await queries.wallet_test_payout_state(pool, cashout_id=cashout_id)


# --- the plain case ---------------------------------------------------------------


async def test_an_approved_cashout_is_claimed_and_committed_before_fincra_is_called(
    pool, worker, fincra
):
    await people(pool)
    cashout_id = await approved(pool, amount="10000")
    pending = await request_cashout(  # not approved: not the worker's
        pool,
        telegram_id=BAYO,
        currency="NGN",
        amount=D("5000"),
        destination=GTB,
        idempotency_key="not-approved",
    )
    seen_during_call = []

    async def look(_request) -> None:  # from another connection, while the call is held
        seen_during_call.append(await state(pool, cashout_id))

    fincra.before_payout = look

    [attempt] = await worker.run_once()

    assert attempt.outcome is Outcome.SENT and attempt.cashout_id == cashout_id
    [during] = seen_during_call
    assert during["status"] == "processing" and during["provider"] == "fincra"
    assert during["payout_started_at"] is not None and during["provider_reference"] is None
    [request] = fincra.payout_requests()
    assert request.body["customerReference"] == cashout_reference(cashout_id)
    assert request.body["amount"] == "10000.00"  # the amount; the fee stays with us
    after = await state(pool, cashout_id)
    assert after["status"] == "processing" and after["provider_reference"] == "fcr-po-70001"
    assert after["payout_started_at"] is None and after["payout_attempts"] == 1
    assert after["held"] == D("10150")  # the money moves on Fincra's confirmation
    assert attempt.provider_reference == "fcr-po-70001"
    assert (await state(pool, pending.id))["status"] == "pending"

    # Nothing is due any more: a second run calls no one.
    assert await worker.run_once() == []
    assert len(fincra.requests) == 1

    # Fincra's webhook settles it.
    settled = await apply_payout_event(
        pool,
        provider=PaymentProvider.FINCRA,
        event_id="payout.successful:70001",
        event_type="payout.successful",
        cashout_id=cashout_id,
        succeeded=True,
        provider_reference="fcr-po-70001",
    )
    assert settled.cashout.status is CashoutStatus.COMPLETED
    assert (await state(pool, cashout_id))["held"] == 0


# --- crashes ----------------------------------------------------------------------


class Crash(BaseException):
    """The process dies: nothing in the worker catches this."""


class DiesBeforeRecording(PayoutWorker):
    async def record(self, claim, receipt, *, recovered=False):
        raise Crash


async def test_a_crash_between_the_payout_and_its_record_is_recovered_by_a_lookup(
    pool, worker, fincra
):
    await people(pool)
    cashout_id = await approved(pool)
    reference = cashout_reference(cashout_id)
    dying = DiesBeforeRecording(pool, bank=worker.bank, lease_seconds=LEASE)
    with pytest.raises(Crash):
        await dying.run_once()
    # Fincra made the payout; we know only that a call was under way.
    assert list(fincra.payouts) == [reference]
    crashed = await state(pool, cashout_id)
    assert crashed["status"] == "processing" and crashed["provider_reference"] is None
    assert crashed["payout_started_at"] is not None

    # While the dead worker's lease runs, no one touches the cashout.
    assert await worker.run_once() == []

    await queries.wallet_test_age_payout_claims(pool, seconds=LEASE + 1)
    [attempt] = await worker.run_once()

    assert attempt.outcome is Outcome.RECOVERED
    assert len(fincra.payout_requests(reference)) == 1  # never asked twice
    assert [r.path for r in fincra.lookups()] == [
        f"/disbursements/payouts/customer-reference/{reference}"
    ]
    recovered = await state(pool, cashout_id)
    assert recovered["provider_reference"] == fincra.payouts[reference]["reference"]
    assert recovered["status"] == "processing" and recovered["payout_attempts"] == 2
    assert await worker.run_once() == []


async def test_a_crash_after_the_claim_before_the_call_sends_once_after_a_lookup(
    pool, worker, fincra
):
    await people(pool)
    cashout_id = await approved(pool)
    [claim] = await worker.claim()  # step 1 committed... and the process dies here
    assert not claim.recovering and claim.claimed_at is not None
    assert fincra.requests == []

    await queries.wallet_test_age_payout_claims(pool, seconds=LEASE + 1)
    [attempt] = await worker.run_once()

    assert attempt.outcome is Outcome.SENT
    reference = cashout_reference(cashout_id)
    assert [(r.method, r.path) for r in fincra.requests] == [
        ("GET", f"/disbursements/payouts/customer-reference/{reference}"),  # looked up first
        ("POST", "/disbursements/payouts"),
    ]
    assert (await state(pool, cashout_id))["provider_reference"] == "fcr-po-70001"


# --- two workers ------------------------------------------------------------------


async def test_two_workers_at_once_pay_each_cashout_exactly_once(pool, database_url, fincra):
    await people(pool)
    ids = [await approved(pool, ADA if n % 2 else BAYO, "2000", n) for n in range(8)]
    other_pool = await db.create_pool(database_url, min_size=1, max_size=4)
    try:
        bank_a, bank_b = rail(fincra), rail(fincra)
        async with bank_a.client, bank_b.client:
            first = PayoutWorker(pool, bank=bank_a, lease_seconds=LEASE)
            second = PayoutWorker(other_pool, bank=bank_b, lease_seconds=LEASE)
            runs = await asyncio.gather(first.run_once(), second.run_once())
    finally:
        await other_pool.close()

    sent = [a.cashout_id for run in runs for a in run]
    assert sorted(sent) == sorted(ids)  # each cashout taken by one worker only
    assert {a.outcome for run in runs for a in run} == {Outcome.SENT}
    references = [r.body["customerReference"] for r in fincra.payout_requests()]
    assert sorted(references) == sorted(cashout_reference(i) for i in ids)  # one request each
    assert fincra.lookups() == []
    for cashout_id in ids:
        row = await state(pool, cashout_id)
        assert (
            row["provider_reference"] == fincra.payouts[cashout_reference(cashout_id)]["reference"]
        )


# --- refusals and failures ------------------------------------------------------------


async def test_a_refused_payout_fails_the_cashout_and_releases_the_hold(pool, worker, fincra):
    await people(pool)
    cashout_id = await approved(pool)
    fincra.then(Answer.status_code(422, {"message": "Invalid account number"}, method="POST"))

    [attempt] = await worker.run_once()

    assert attempt.outcome is Outcome.FAILED
    assert len(fincra.payout_requests()) == 1 and len(fincra.lookups()) == 1  # not retried
    row = await state(pool, cashout_id)
    assert row["status"] == "failed" and "Invalid account number" in row["failure_reason"]
    assert row["held"] == 0 and row["available"] == D("1000000")  # all of it back
    assert attempt.cashout is not None and attempt.cashout.status is CashoutStatus.FAILED


async def test_a_duplicate_reference_refusal_records_the_payout_fincra_has(pool, worker, fincra):
    await people(pool)
    cashout_id = await approved(pool)
    reference = cashout_reference(cashout_id)
    # An earlier call reached Fincra, and no record of it survived on our side.
    fincra.payouts[reference] = {
        "id": 1,
        "reference": "fcr-po-earlier",
        "customerReference": reference,
        "status": "successful",
    }
    [attempt] = await worker.run_once()
    assert attempt.outcome is Outcome.RECOVERED  # not failed: Fincra has the payout
    row = await state(pool, cashout_id)
    assert row["status"] == "processing" and row["provider_reference"] == "fcr-po-earlier"
    assert row["held"] == D("10150")


async def test_a_payout_fincra_reports_failed_fails_the_cashout(pool, fincra):
    await people(pool)
    cashout_id = await approved(pool)
    fincra.payout_status = "failed"
    bank = rail(fincra)
    async with bank.client:
        [attempt] = await PayoutWorker(pool, bank=bank, lease_seconds=LEASE).run_once()
    assert attempt.outcome is Outcome.FAILED
    assert (await state(pool, cashout_id))["status"] == "failed"


@pytest.mark.parametrize(
    "answers, settings",
    [
        ([Answer.status_code(503, method="POST")] * 3, FAST),
        ([Answer.hang(method="POST")] * 3, IMPATIENT),
        ([Answer.malformed(method="POST")], FAST),
        ([Answer.status_code(401, method="POST")], FAST),
    ],
    ids=["5xx", "timeouts", "malformed", "401"],
)
async def test_an_unclear_call_is_left_processing_and_looked_up_on_the_next_run(
    pool, fincra, answers, settings
):
    await people(pool)
    cashout_id = await approved(pool)
    reference = cashout_reference(cashout_id)
    fincra.then(*answers)
    bank = rail(fincra, settings)
    async with bank.client:
        worker = PayoutWorker(pool, bank=bank, lease_seconds=LEASE)
        [attempt] = await worker.run_once()
        assert attempt.outcome is Outcome.RETRY
        row = await state(pool, cashout_id)
        assert row["status"] == "processing" and row["provider_reference"] is None
        assert row["payout_started_at"] is None  # released: the next run takes it at once
        assert row["held"] == D("10150")  # never failed on an unclear answer
        calls = len(fincra.payout_requests())
        assert calls == len(answers)

        [again] = await worker.run_once()

    assert again.outcome is Outcome.SENT
    assert fincra.requests[calls].method == "GET"  # looked up before anything is sent
    assert fincra.requests[calls].path.endswith(reference)
    assert len(fincra.payout_requests()) == calls + 1
    assert (await state(pool, cashout_id))["provider_reference"] == "fcr-po-70001"


async def test_a_cashout_is_tried_once_per_run(pool, fincra, worker):
    await people(pool)
    await approved(pool, n=1)
    await approved(pool, n=2)
    fincra.then(*[Answer.status_code(500, method="POST")] * 6)
    attempts = await worker.run_once()
    assert [a.outcome for a in attempts] == [Outcome.RETRY, Outcome.RETRY]
    assert len(fincra.payout_requests()) == 6  # three tries each, within one run


# --- rails ------------------------------------------------------------------------


@dataclass
class FakeCryptoRail:
    """A crypto payout client as `PayoutRail` asks (none ships: see bot.payouts)."""

    provider: PaymentProvider = PaymentProvider.BLOCKBEE
    worst_case_seconds: float = 1.0  # float-ok: seconds
    sent: dict[str, PayoutClaim] = field(default_factory=dict)

    async def send(self, claim: PayoutClaim, reference: str) -> PayoutReceipt:
        if reference in self.sent:
            raise ProviderRefused(self.provider.value, "duplicate reference", status=409)
        self.sent[reference] = claim
        return PayoutReceipt(f"tx-{claim.cashout_id}", "pending", failed=False)

    async def find(self, reference: str) -> PayoutReceipt | None:
        claim = self.sent.get(reference)
        return None if claim is None else PayoutReceipt(f"tx-{claim.cashout_id}", "pending", False)


async def test_crypto_cashouts_wait_for_a_crypto_rail_and_then_go_through_it(pool, worker):
    await people(pool)
    await seeding.credit(pool, ADA, "USDT", "100")
    crypto_id = await seeding.cashout(pool, ADA, "USDT", "40", fee="1")
    await approve_cashout(pool, cashout_id=crypto_id, admin_telegram_id=ADMIN)

    assert await worker.run_once() == []  # a bank-only worker leaves it approved
    assert (await state(pool, crypto_id))["status"] == "approved"

    crypto = FakeCryptoRail()
    [attempt] = await PayoutWorker(pool, crypto=crypto, lease_seconds=LEASE).run_once()
    assert attempt.outcome is Outcome.SENT and attempt.provider is PaymentProvider.BLOCKBEE
    claim = crypto.sent[cashout_reference(crypto_id)]
    assert (claim.currency, claim.network, claim.amount) == ("USDT", "TRC20", D("40"))
    assert claim.address.startswith("T")
    row = await state(pool, crypto_id)
    assert (row["provider"], row["provider_reference"]) == ("blockbee", f"tx-{crypto_id}")


def test_a_worker_refuses_a_lease_shorter_than_its_calls(pool):
    with pytest.raises(ValueError, match="lease_seconds"):
        PayoutWorker(pool, crypto=FakeCryptoRail(worst_case_seconds=10), lease_seconds=30)
    with pytest.raises(ValueError):
        PayoutWorker(pool)
    with pytest.raises(ValueError, match="providers of their own"):
        PayoutWorker(pool, bank=FakeCryptoRail(), crypto=FakeCryptoRail())


async def test_the_worker_is_configured_from_the_environment(pool):
    assert worker_from_env(pool, {}) is None  # no rail configured: no worker
    env = {
        "LOCKBAY_FINCRA_API_KEY": "sk",
        "LOCKBAY_FINCRA_BUSINESS_ID": "biz",
        "LOCKBAY_PAYOUT_LEASE_SECONDS": "600",
        "LOCKBAY_PAYOUT_MAX_PER_RUN": "5",
    }
    worker = worker_from_env(pool, env)
    async with worker.bank.client:
        assert (worker.lease_seconds, worker.max_per_run) == (600, 5)
        assert worker.bank.provider is PaymentProvider.FINCRA and worker.crypto is None
    with pytest.raises(ValueError, match="LOCKBAY_PAYOUT_LEASE_SECONDS"):
        worker_from_env(pool, {**env, "LOCKBAY_PAYOUT_LEASE_SECONDS": "soon"})
    with pytest.raises(ValueError, match="lease_seconds"):
        worker_from_env(pool, {**env, "LOCKBAY_PAYOUT_LEASE_SECONDS": "60"})


# --- the job ----------------------------------------------------------------------


async def test_the_job_tells_the_owner_of_a_failed_cashout(pool, worker, fincra):
    await people(pool)
    await approved(pool)
    fincra.then(Answer.status_code(400, {"message": "Account is dormant"}, method="POST"))
    async with offline_bot() as (app, telegram):
        # The failure's notification is an outbox row: the job wakes delivery (here the
        # after_update hook, as bot.offline's Chat runs it), which sends it.
        app.bot_data.update(pool=pool, after_update=deliver_due)
        context = SimpleNamespace(bot=app.bot, bot_data={"payout_worker": worker}, application=app)
        await payouts_job(context)
        # The approval was told too (its outbox row), then the failure.
        [approved_note, text] = texts_to(telegram, ADA)
    assert "was approved" in approved_note
    assert "could not be paid out" in text and "Account is dormant" in text
    assert "₦10,150.00 is back in your balance" in text


async def test_schedule_payouts_puts_one_repeating_job_on_the_job_queue():
    async with offline_bot() as (app, _):
        schedule_payouts(app.job_queue, 60)
        job = schedule_payouts(app.job_queue, 20)
        assert job.name == JOB_NAME and job.callback is payouts_job
        assert len(app.job_queue.get_jobs_by_name(JOB_NAME)) == 1
