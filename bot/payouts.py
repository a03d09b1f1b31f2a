"""The cashout worker: pays approved cashouts out through the providers, never twice.

One run takes due cashouts one at a time and, for each:

1. claims it (`wallet_claim_payouts`: `FOR UPDATE SKIP LOCKED`, one statement, committed
   before any provider call): the cashout becomes `processing`, names its provider,
   and records when the call starts (`payout_started_at`). Two workers never hold the
   same cashout: the second skips the locked row, and after the commit the claim itself
   keeps it off every other run until the lease runs out.
2. when the cashout was already processing (`recovering`: a worker died between its
   call and its record, or a call ended without a clear answer), looks the payout up at
   the provider by our reference (`CSH-<id>`) first: found, its reference is recorded
   and nothing is sent again; not found, it is safe to send (the provider also refuses a
   second payout with the same reference).
3. calls the provider with our reference as the payout's idempotency key.
4. records the provider's reference (`wallet_record_payout`), ending the claim. The money
   moves when the provider confirms: its payout webhook settles (or fails) the cashout.

When the provider refuses the payout (4xx), the worker looks it up once more (a refusal
of a duplicate reference means an earlier call went through) and otherwise fails the
cashout, releasing the hold to the user. Timeouts and 5xx (after the client's retries),
answers it cannot read, and refusals that are about us rather than the payout (401,
403, 408, 429) release the claim: the next run looks the payout up before anything
else. Any other error leaves the claim as it is, to be recovered once its lease runs
out. A cashout is tried at most once per run.

Rails:

- bank accounts (NGN): Fincra payouts, `FincraBankPayouts` over `FincraClient`.
- crypto addresses: `PayoutRail` is the interface a crypto payout client implements.
  None ships: BlockBee's payout API (payout requests, then payouts) takes no reference
  of ours and cannot be looked up by one, and DynoPay publishes no payout API, so
  neither can meet steps 2 and 3. Without a crypto rail the worker leaves crypto
  cashouts approved (for an admin to pay by hand and settle) and takes only bank ones.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from bot import outbox
from bot.data.enums import DestinationKind, PaymentProvider
from bot.data.errors import WrongStatus
from bot.data.wallet import (
    Cashout,
    PayoutClaim,
    claim_payouts,
    fail_cashout,
    record_payout,
    release_payout_claim,
)
from bot.providers import cashout_reference
from bot.providers.fincra import FincraClient
from bot.providers.http import ProviderError, ProviderRefused

log = logging.getLogger(__name__)

DEFAULT_LEASE_SECONDS = 300
DEFAULT_MAX_PER_RUN = 50
JOB_NAME = "cashout-payouts"
BOT_DATA_WORKER = "payout_worker"

# Refusals about our request's standing, not about the payout: tried again later.
NOT_THE_PAYOUTS_FAULT = frozenset({401, 403, 408, 429})
DUPLICATE_REFERENCE = 409


# --- rails ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PayoutReceipt:
    """What a provider says of one payout."""

    provider_reference: str  # the provider's own id of the payout
    status: str  # the provider's word, lower case
    failed: bool  # over, and nothing was paid
    reason: str | None = None


class PayoutRail(Protocol):
    """A provider's payout API, as the worker uses it. `send` must carry `reference` as
    the provider's idempotency key (the provider refuses a second payout with it), and
    `find` must find a payout by that reference. Both raise `ProviderError`s from
    `bot.providers.http`: ProviderRefused for a 4xx, ProviderUnavailable or
    ProviderMalformed when it is unknown whether the provider acted."""

    provider: PaymentProvider

    @property
    def worst_case_seconds(self) -> float:  # float-ok: seconds
        """The longest one call can take, retries included."""
        ...

    async def send(self, claim: PayoutClaim, reference: str) -> PayoutReceipt: ...

    async def find(self, reference: str) -> PayoutReceipt | None: ...


class FincraBankPayouts:
    """NGN cashouts to Nigerian bank accounts through Fincra."""

    provider = PaymentProvider.FINCRA

    def __init__(self, client: FincraClient) -> None:
        self.client = client

    @property
    def worst_case_seconds(self) -> float:  # float-ok: seconds
        return self.client.http.settings.worst_case_seconds

    async def send(self, claim: PayoutClaim, reference: str) -> PayoutReceipt:
        if claim.destination is not DestinationKind.BANK_ACCOUNT or claim.currency != "NGN":
            raise ValueError(f"cashout {claim.cashout_id} is not NGN to a bank account")
        if not (claim.bank_code and claim.account_number and claim.account_name):
            raise ValueError(f"cashout {claim.cashout_id} has no complete bank account")
        payout = await self.client.create_payout(
            reference=reference,
            amount=claim.amount,
            bank_code=claim.bank_code,
            account_number=claim.account_number,
            account_name=claim.account_name,
            description=f"LockBay cashout {reference}",
        )
        return PayoutReceipt(payout.reference, payout.status, payout.failed, payout.reason)

    async def find(self, reference: str) -> PayoutReceipt | None:
        payout = await self.client.payout_by_reference(reference)
        if payout is None:
            return None
        return PayoutReceipt(payout.reference, payout.status, payout.failed, payout.reason)


# --- outcomes -------------------------------------------------------------------


class Outcome(StrEnum):
    SENT = "sent"  # the provider took the payout; its reference is recorded
    RECOVERED = "recovered"  # found at the provider (no new call); its reference recorded
    FAILED = "failed"  # refused, or found failed: the cashout failed, the hold released
    RETRY = "retry"  # unknown whether the provider acted: claim released, looked up next run
    LEFT = "left"  # an unexpected error: the claim stays until its lease runs out
    SETTLED_MEANWHILE = "settled_meanwhile"  # the webhook came first: nothing to record


@dataclass(frozen=True, slots=True)
class PayoutAttempt:
    """What one run did with one cashout."""

    cashout_id: int
    telegram_id: int
    provider: PaymentProvider
    outcome: Outcome
    provider_reference: str | None = None
    reason: str | None = None
    cashout: Cashout | None = None  # the failed cashout, for telling its owner


# --- the worker -----------------------------------------------------------------


class PayoutWorker:
    """Pays approved cashouts through `bank` (NGN bank accounts) and `crypto` (crypto
    addresses); a rail that is None is not paid out by this worker."""

    def __init__(
        self,
        pool,
        *,
        bank: PayoutRail | None = None,
        crypto: PayoutRail | None = None,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
        max_per_run: int = DEFAULT_MAX_PER_RUN,
    ) -> None:
        if bank is None and crypto is None:
            raise ValueError("a payout worker needs a bank or a crypto rail")
        if bank is not None and crypto is not None and bank.provider == crypto.provider:
            raise ValueError("the bank and crypto rails need providers of their own")
        for rail in (bank, crypto):
            # A claim must outlive the calls made under it (look-up, payout, look-up),
            # or a second worker could take a cashout whose call is still in flight.
            if rail is not None and lease_seconds <= 3 * rail.worst_case_seconds:
                raise ValueError(
                    f"lease_seconds ({lease_seconds}) must exceed three {rail.provider} "
                    f"calls at their slowest ({rail.worst_case_seconds} s each)"
                )
        if max_per_run < 1:
            raise ValueError("max_per_run must be at least 1")
        self.pool = pool
        self.rails: Mapping[PaymentProvider, PayoutRail] = {
            r.provider: r for r in (bank, crypto) if r is not None
        }
        self.bank = bank
        self.crypto = crypto
        self.lease_seconds = lease_seconds
        self.max_per_run = max_per_run

    async def run_once(self) -> list[PayoutAttempt]:
        """Pays out what is due, one cashout at a time, each at most once per run."""
        attempts: list[PayoutAttempt] = []
        tried: list[int] = []
        while len(tried) < self.max_per_run:
            claims = await self.claim(skip_ids=tried)
            if not claims:
                break
            for claim in claims:
                tried.append(claim.cashout_id)
                attempts.append(await self._pay_safely(claim))
        return attempts

    async def claim(self, *, skip_ids: list[int] | tuple[int, ...] = ()) -> list[PayoutClaim]:
        """Step 1: takes the next due cashout (committed before any call)."""
        return await claim_payouts(
            self.pool,
            bank_provider=self.bank.provider if self.bank else None,
            crypto_provider=self.crypto.provider if self.crypto else None,
            lease_seconds=self.lease_seconds,
            batch_size=1,
            skip_ids=skip_ids,
        )

    async def _pay_safely(self, claim: PayoutClaim) -> PayoutAttempt:
        try:
            return await self.pay(claim)
        except Exception as e:  # the database, a bug: the lease brings it back, looked up
            log.exception("cashout %s: payout interrupted; its claim stays", claim.cashout_id)
            return self._attempt(claim, Outcome.LEFT, reason=repr(e))

    async def pay(self, claim: PayoutClaim) -> PayoutAttempt:
        """Steps 2 to 4 for one claimed cashout."""
        rail = self.rails[claim.provider]
        reference = cashout_reference(claim.cashout_id)
        if claim.recovering:
            try:
                found = await rail.find(reference)
            except ProviderError as e:
                return await self._retry(claim, e)
            if found is not None:
                return await self.record(claim, found, recovered=True)
        try:
            receipt = await rail.send(claim, reference)
        except ProviderRefused as e:
            if e.status in NOT_THE_PAYOUTS_FAULT:
                return await self._retry(claim, e)
            return await self._refused(claim, rail, reference, e)
        except ProviderError as e:
            return await self._retry(claim, e)
        return await self.record(claim, receipt)

    async def record(
        self, claim: PayoutClaim, receipt: PayoutReceipt, *, recovered: bool = False
    ) -> PayoutAttempt:
        """Step 4: the provider's answer on the cashout."""
        if receipt.failed:
            return await self._fail(claim, receipt.reason or f"the payout {receipt.status}")
        row = await record_payout(
            self.pool,
            cashout_id=claim.cashout_id,
            provider=claim.provider,
            provider_reference=receipt.provider_reference,
        )
        if not row.recorded:
            log.info(
                "cashout %s is %s already; %s's reference %s not recorded",
                claim.cashout_id,
                row.status,
                claim.provider,
                receipt.provider_reference,
            )
            return self._attempt(
                claim, Outcome.SETTLED_MEANWHILE, provider_reference=row.provider_reference
            )
        outcome = Outcome.RECOVERED if recovered else Outcome.SENT
        log.info(
            "cashout %s %s at %s as %s (%s)",
            claim.cashout_id,
            "found" if recovered else "sent",
            claim.provider,
            receipt.provider_reference,
            receipt.status,
        )
        return self._attempt(claim, outcome, provider_reference=receipt.provider_reference)

    async def _refused(
        self, claim: PayoutClaim, rail: PayoutRail, reference: str, refusal: ProviderRefused
    ) -> PayoutAttempt:
        # A payout made by an earlier call is refused as a duplicate: never fail one that
        # the provider has.
        try:
            found = await rail.find(reference)
        except ProviderError as e:
            return await self._retry(claim, e)
        if found is not None and not found.failed:
            return await self.record(claim, found, recovered=True)
        if found is None and refusal.status == DUPLICATE_REFERENCE:
            # The provider has the reference but will not show it yet: ask again later.
            return await self._retry(claim, refusal)
        return await self._fail(claim, f"{rail.provider} refused it: {refusal.message}")

    async def _fail(self, claim: PayoutClaim, reason: str) -> PayoutAttempt:
        try:
            cashout = await fail_cashout(self.pool, cashout_id=claim.cashout_id, reason=reason)
        except WrongStatus as e:
            log.warning("cashout %s not failed, it is %s already", claim.cashout_id, e.status)
            return self._attempt(claim, Outcome.SETTLED_MEANWHILE, reason=reason)
        log.warning("cashout %s failed: %s", claim.cashout_id, reason)
        return self._attempt(claim, Outcome.FAILED, reason=reason, cashout=cashout)

    async def _retry(self, claim: PayoutClaim, error: ProviderError) -> PayoutAttempt:
        await release_payout_claim(
            self.pool, cashout_id=claim.cashout_id, claimed_at=claim.claimed_at
        )
        log.warning("cashout %s: %s; to be looked up next run", claim.cashout_id, error)
        return self._attempt(claim, Outcome.RETRY, reason=str(error))

    @staticmethod
    def _attempt(claim: PayoutClaim, outcome: Outcome, **details) -> PayoutAttempt:
        return PayoutAttempt(
            cashout_id=claim.cashout_id,
            telegram_id=claim.telegram_id,
            provider=claim.provider,
            outcome=outcome,
            **details,
        )


def worker_from_env(pool, environ: Mapping[str, str] | None = None) -> PayoutWorker | None:
    """The worker the environment configures: the Fincra bank rail when
    LOCKBAY_FINCRA_API_KEY is set (see `FincraClient.from_env`), LOCKBAY_PAYOUT_LEASE_SECONDS
    and LOCKBAY_PAYOUT_MAX_PER_RUN; None when no rail is configured. The caller closes
    `worker.bank.client` at shutdown."""
    env = os.environ if environ is None else environ
    if not env.get("LOCKBAY_FINCRA_API_KEY", "").strip():
        return None

    def integer(name: str, default: int) -> int:
        raw = env.get(name, "").strip()
        try:
            return int(raw) if raw else default
        except ValueError:
            raise ValueError(f"{name} must be a whole number, not {raw!r}") from None

    lease_seconds = integer("LOCKBAY_PAYOUT_LEASE_SECONDS", DEFAULT_LEASE_SECONDS)
    max_per_run = integer("LOCKBAY_PAYOUT_MAX_PER_RUN", DEFAULT_MAX_PER_RUN)
    return PayoutWorker(
        pool,
        bank=FincraBankPayouts(FincraClient.from_env(env)),
        lease_seconds=lease_seconds,
        max_per_run=max_per_run,
    )


# --- the job --------------------------------------------------------------------


async def payouts_job(context) -> None:
    """python-telegram-bot job: one run of the worker in `bot_data["payout_worker"]`. The
    owners of cashouts it failed are told through the outbox (the failure wrote their
    notification); the sender is woken when any failed."""
    worker: PayoutWorker = context.bot_data[BOT_DATA_WORKER]
    attempts = await worker.run_once()
    if any(a.outcome is Outcome.FAILED for a in attempts):
        await outbox.wake(getattr(context, "application", None))


def schedule_payouts(job_queue, interval_seconds: float = 30):  # float-ok: seconds
    """Runs `payouts_job` every `interval_seconds` on `job_queue` (an Application's
    JobQueue, whose bot_data holds "payout_worker"). Returns the Job; a second call
    replaces the first schedule. JobQueue never overlaps two runs of one job."""
    if interval_seconds <= 0:
        raise ValueError("interval_seconds must be more than 0")
    for job in job_queue.get_jobs_by_name(JOB_NAME):
        job.schedule_removal()
    return job_queue.run_repeating(payouts_job, interval=interval_seconds, first=0, name=JOB_NAME)
