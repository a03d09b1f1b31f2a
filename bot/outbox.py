"""Notifications: rendering the outbox's rows and delivering them to Telegram.

The movements write the rows (triggers of migration 0012, in the movement's own
transaction); this module turns each into a message and sends it:

- `deliver_due(app)` runs one pass: claims up to `limit` due rows (FOR UPDATE SKIP
  LOCKED, with everything their texts need, one read), renders and sends each, and
  records the results as it commits. Tests and the demo call it after each update
  (the `after_update` hook of bot.offline's Chat).
- `start_sender(app)` / `stop_sender(app)`: the background task of a running bot. It
  LISTENs on channel 'lockbay_outbox' (a NOTIFY comes with every commit that wrote
  rows) on a dedicated connection, and also polls every `poll_seconds`, for retries
  coming due and for anything sent while the listener was reconnecting.
- `schedule_reminders(job_queue)`: the job that queues delivery-deadline reminders.

Sending: Telegram's limits are kept with token buckets (about 30 messages a second
for the bot, one a second per chat with a short burst). A row whose chat has no
token left is deferred, not waited for; a 429 (RetryAfter) defers that chat's rows
for as long as Telegram says, and other chats go on. A network error or a 5xx is
retried with exponential back-off, up to MAX_ATTEMPTS; a 403 (the user blocked the
bot) or a 400 (Telegram refuses the message) fails the row at once, so one chat never
stalls the queue. Delivery is at least once: a sender that dies after Telegram took a
message but before its commit leaves the row to be sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import random
import time
import warnings
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
from telegram import InlineKeyboardMarkup
from telegram.constants import ParseMode
from telegram.error import BadRequest, ChatMigrated, Forbidden, RetryAfter
from telegram.ext import Application
from telegram.warnings import PTBDeprecationWarning

from bot.data.outbox import Batch, Due, OutboxKind, Outcome, claim_due, prune, queue_reminders
from bot.handlers.admin import REJECTED
from bot.handlers.rating import rate_row
from bot.handlers.ui import button, esc, fit, keyboard
from bot.money import format_amount

log = logging.getLogger(__name__)

K = OutboxKind
CHANNEL = "lockbay_outbox"  # what migration 0012's outbox_wake notifies on
BOT_DATA_SENDER = "outbox_sender"
# bot.offline's Chat runs this bot_data entry after each update; `wake` runs it too.
AFTER_UPDATE = "after_update"
REMINDER_JOB = "outbox_reminders"

DEFAULT_BATCH = 50
MAX_ATTEMPTS = 12
BACKOFF_BASE_SECONDS = 5.0  # float-ok: seconds
BACKOFF_MAX_SECONDS = 3600.0  # float-ok: seconds
NOTICE_BODY = 1000  # how much of a reason or a message a notification quotes

Markup = InlineKeyboardMarkup | None


# --- rendering ------------------------------------------------------------------------


class Skip(Exception):
    """The row no longer needs sending (what it reminds of is done)."""


def _when(moment: datetime | None) -> str:
    return f"{moment.astimezone(UTC):%d %b %Y %H:%M} UTC" if moment else "—"


def _cut(text: str | None, limit: int) -> str:
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _m(due: Due, amount: Decimal | None) -> str:
    if amount is None or due.currency is None:
        raise ValueError(f"row {due.id} ({due.kind}): no amount or currency to show")
    return format_amount(amount, due.currency, due.decimals or 0)


def _need(value: Any, what: str) -> Any:
    if value is None:
        raise ValueError(f"the row's {what} is missing")
    return value


def _open_escrow(due: Due, *rows: list) -> InlineKeyboardMarkup:
    return keyboard(*rows, [button("🤝 Open", "escrow", "view", _need(due.escrow_id, "escrow"))])


def _ref(due: Due) -> str:
    return f"<b>{esc(_need(due.escrow_ref, 'escrow'))}</b>"


def _what(due: Due) -> str:
    return f"“{esc(_cut(due.escrow_description, 100))}”"


def _escrow_created(due: Due) -> tuple[str, Markup]:
    buyer = esc(due.buyer_name or "A buyer")
    lines = [
        f"🤝 {buyer} opened escrow {_ref(due)} with you: {_m(due, due.escrow_amount)} "
        f"for {_what(due)}."
    ]
    status = due.payload.get("status")  # at its creation
    if status == "awaiting_payment":
        lines.append("It is not paid yet; you will hear when it is.")
    elif status == "funded":
        lines.append("It is paid: accept or decline it.")
    return "\n".join(lines), _open_escrow(due)


def _escrow_funded(due: Due) -> tuple[str, Markup]:
    amount = _m(due, due.escrow_amount)
    return (
        f"💰 Escrow {_ref(due)} is funded: {amount} for {_what(due)}. Accept or decline it; "
        f"once you accept, {amount} is held for you until the buyer releases it.",
        _open_escrow(due),
    )


def _escrow_accepted(due: Due) -> tuple[str, Markup]:
    return (
        f"✅ The seller accepted escrow {_ref(due)} ({_what(due)}) and will deliver by "
        f"{_when(due.delivery_deadline)}.",
        _open_escrow(due),
    )


def _buyer_total(due: Due) -> Decimal:
    return _need(due.escrow_amount, "amount") + _need(due.escrow_buyer_fee, "buyer fee")


def _seller_gets(due: Due) -> Decimal:
    return _need(due.escrow_amount, "amount") - _need(due.escrow_seller_fee, "seller fee")


def _escrow_declined(due: Due) -> tuple[str, Markup]:
    return (
        f"❌ The seller declined escrow {_ref(due)}. {_m(due, _buyer_total(due))} is back in "
        "the buyer's wallet.",
        _open_escrow(due),
    )


def _escrow_delivered(due: Due) -> tuple[str, Markup]:
    return (
        f"📦 The seller marked escrow {_ref(due)} as delivered. Release the funds if all is "
        f"well; they are released automatically on {_when(due.auto_release_at)}.",
        _open_escrow(due),
    )


def _escrow_released(due: Due) -> tuple[str, Markup]:
    return (
        f"🎉 The buyer released escrow {_ref(due)}: {_m(due, _seller_gets(due))} is in the "
        "seller's wallet. Rate the trade:",
        _open_escrow(due, rate_row(_need(due.escrow_id, "escrow"))),
    )


def _escrow_auto_released(due: Due) -> tuple[str, Markup]:
    return (
        f"🎉 Escrow {_ref(due)} was released automatically, its release time having come: "
        f"{_m(due, _seller_gets(due))} is in the seller's wallet. Rate the trade:",
        _open_escrow(due, rate_row(_need(due.escrow_id, "escrow"))),
    )


def _escrow_refunded(due: Due) -> tuple[str, Markup]:
    return (
        f"↩️ Escrow {_ref(due)} was refunded: {_m(due, _buyer_total(due))} is back in the "
        "buyer's wallet.",
        _open_escrow(due),
    )


def _escrow_cancelled(due: Due) -> tuple[str, Markup]:
    return f"✖ The buyer cancelled escrow {_ref(due)} before paying it.", _open_escrow(due)


LEADS = {1440: "24 hours", 480: "8 hours", 120: "2 hours", 30: "30 minutes"}


def _delivery_reminder(due: Due) -> tuple[str, Markup]:
    if due.escrow_status != "accepted":
        raise Skip(f"escrow is {due.escrow_status} now")
    lead = int(due.payload.get("lead_minutes", 0))
    left = LEADS.get(lead, f"{lead} minutes")
    return (
        f"⏰ Escrow {_ref(due)} ({_what(due)}): less than {left} left to deliver, by "
        f"{_when(due.delivery_deadline)}. Mark it delivered once you have.",
        _open_escrow(due),
    )


def _dispute_about(due: Due) -> str:
    return (
        f"escrow <code>{esc(_need(due.escrow_ref, 'escrow'))}</code> "
        f"({_m(due, due.escrow_amount)})"
        f"\nReason: <i>{esc(_cut(due.dispute_reason, NOTICE_BODY))}</i>"
    )


def _opener(due: Due) -> str:
    return f"{esc(due.opener_name or '—')} ({due.opener_role})"


def _dispute_opened(due: Due) -> tuple[str, Markup]:
    return (
        f"⚖️ {_opener(due)} opened dispute #{_need(due.dispute_id, 'dispute')} on "
        f"{_dispute_about(due)}\n\nThe money stays held until an admin decides. "
        "Send /disputes to reply.",
        None,
    )


def _dispute_opened_admin(due: Due) -> tuple[str, Markup]:
    return (
        f"⚖️ New dispute #{_need(due.dispute_id, 'dispute')} by {_opener(due)} on "
        f"{_dispute_about(due)}\n\nSend /disputes to see the queue.",
        None,
    )


def _dispute_message(due: Due) -> tuple[str, Markup]:
    role = due.sender_role or "admin"
    return (
        f"💬 <b>{esc(due.sender_name or role)}</b> ({role}) in dispute "
        f"#{_need(due.dispute_id, 'dispute')} (escrow <code>{esc(due.escrow_ref)}</code>):\n"
        f"{esc(_cut(_need(due.message_body, 'message'), NOTICE_BODY))}\n\n"
        "Send /disputes to reply.",
        None,
    )


def _dispute_resolved(due: Due) -> tuple[str, Markup]:
    return (
        f"⚖️ An admin resolved dispute #{_need(due.dispute_id, 'dispute')} (escrow "
        f"<code>{esc(due.escrow_ref)}</code>): {due.dispute_resolution}. "
        f"You receive {_m(due, due.amount('amount') or Decimal(0))} in your wallet.",
        None,
    )


def _destination(due: Due) -> str:
    if due.cashout_destination == "bank_account":
        return (
            f"{esc(due.cashout_bank)} {esc(due.cashout_account_number)} "
            f"({esc(due.cashout_account_name)})"
        )
    return f"{esc(due.cashout_network)} <code>{esc(due.cashout_address)}</code>"


def _cashout_total(due: Due) -> Decimal:
    return _need(due.cashout_amount, "cashout") + _need(due.cashout_fee, "cashout fee")


def _cashout_approved(due: Due) -> tuple[str, Markup]:
    return (
        f"✅ Your cashout #{due.cashout_id} of {_m(due, due.cashout_amount)} was approved and "
        f"is on its way to {_destination(due)}.",
        None,
    )


def _cashout_failed(due: Due) -> tuple[str, Markup]:
    if due.cashout_failure_reason == REJECTED:  # an admin's refusal, not the payout's
        return _cashout_rejected(due)
    return (
        f"⚠️ Your cashout of {_m(due, due.cashout_amount)} could not be paid out "
        f"({esc(due.cashout_failure_reason or 'refused')}). {_m(due, _cashout_total(due))} "
        "is back in your balance.",
        None,
    )


def _cashout_rejected(due: Due) -> tuple[str, Markup]:
    return (
        f"❌ Your cashout #{due.cashout_id} of {_m(due, due.cashout_amount)} was not "
        f"approved. {_m(due, _cashout_total(due))} (amount and fee) is back in your "
        "available balance.",
        None,
    )


def _cashout_paid(due: Due) -> tuple[str, Markup]:
    return f"✅ Your cashout of {_m(due, due.cashout_amount)} is paid.", None


def _deposit_credited(due: Due) -> tuple[str, Markup]:
    """What the payer is told: the payload holds the facts of the commit (trigger
    outbox_deposit_credited): what arrived, the balance it left, what it paid for."""
    p = due.payload
    got = _m(due, due.amount("amount"))
    balance = _m(due, due.amount("available") or Decimal(0))
    kind, status = p.get("order_kind"), p.get("status")
    ref = esc(due.escrow_ref or p.get("order_ref") or "")
    if kind == "deposit":
        return f"✅ Deposit received: {got}. Your {esc(due.currency)} balance: {balance}.", None
    if kind == "escrow":
        if p.get("paid"):
            text = f"✅ Payment received for escrow {ref}: {got}. The escrow is now paid."
            extra = due.amount("difference")
            if extra is not None and extra > 0:
                text += f" The {_m(due, extra)} paid over what was due is in your wallet."
            return text, None
        if status == "awaiting_payment":
            needed = _need(due.amount("needed"), "needed")
            short = needed - (due.amount("available") or Decimal(0))
            return (
                f"⚠️ {got} arrived for escrow {ref}, which needs {_m(due, needed)}. "
                f"It is in your wallet ({balance}); {_m(due, short)} more pays the escrow.",
                None,
            )
        return (
            f"{got} arrived for escrow {ref}, which is {esc(str(status).replace('_', ' '))}. "
            f"Nothing is lost: it is in your wallet ({balance}).",
            None,
        )
    if kind == "exchange":
        if p.get("paid"):
            done = format_amount(
                _need(due.amount("to_amount"), "exchange"),
                p.get("to_currency", ""),
                int(p.get("to_decimals", 2)),
            )
            return (
                f"✅ Payment received: {got}. Exchange {ref} done: {done} is in your wallet.",
                None,
            )
        if status == "expired":
            return (
                f"{got} arrived after the quote for exchange {ref} expired. It is in your "
                f"wallet ({balance}): start a new exchange to convert it.",
                None,
            )
        if status in ("quoted", "awaiting_payment", "paid", "underpaid"):
            return (
                f"⚠️ {got} arrived for exchange {ref}, which needed "
                f"{_m(due, _need(due.amount('needed'), 'needed'))}. The exchange was not made; "
                f"what arrived is in your wallet ({balance}).",
                None,
            )
    return f"{got} arrived for {ref}. It is in your wallet ({balance}).", None


RENDERERS: dict[OutboxKind, Callable[[Due], tuple[str, Markup]]] = {
    K.ESCROW_CREATED: _escrow_created,
    K.ESCROW_FUNDED: _escrow_funded,
    K.ESCROW_ACCEPTED: _escrow_accepted,
    K.ESCROW_DECLINED: _escrow_declined,
    K.ESCROW_DELIVERED: _escrow_delivered,
    K.ESCROW_RELEASED: _escrow_released,
    K.ESCROW_AUTO_RELEASED: _escrow_auto_released,
    K.ESCROW_REFUNDED: _escrow_refunded,
    K.ESCROW_CANCELLED: _escrow_cancelled,
    K.DELIVERY_REMINDER: _delivery_reminder,
    K.DISPUTE_OPENED: _dispute_opened,
    K.DISPUTE_OPENED_ADMIN: _dispute_opened_admin,
    K.DISPUTE_MESSAGE: _dispute_message,
    K.DISPUTE_RESOLVED: _dispute_resolved,
    K.DEPOSIT_CREDITED: _deposit_credited,
    K.CASHOUT_APPROVED: _cashout_approved,
    K.CASHOUT_PAID: _cashout_paid,
    K.CASHOUT_FAILED: _cashout_failed,
}


def render(due: Due) -> tuple[str, Markup]:
    """The message for one row: HTML text (what users typed escaped) and its buttons.
    Skip when it need not be sent any more; ValueError when its data is missing."""
    text, markup = RENDERERS[due.kind](due)
    return fit(text), markup


# --- rate limits ------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """Telegram's: about 30 messages a second in all, one a second per chat (bursts of a
    few are tolerated)."""

    per_second: float = 30.0  # float-ok: a rate
    burst: int = 30
    chat_per_second: float = 1.0  # float-ok: a rate
    chat_burst: int = 3


class RateLimiter:
    """Token buckets: one for the bot, one per chat, and per-chat pauses (RetryAfter).

    `clock` is seconds on a monotonic scale; tests pass their own.
    """

    MAX_CHATS = 10_000  # chats remembered; full buckets are forgotten beyond that

    def __init__(
        self, limits: Limits | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits or Limits()
        self.clock = clock
        self._bot = (float(self.limits.burst), clock())  # float-ok: tokens
        self._chats: dict[int, tuple[float, float]] = {}  # float-ok: (tokens, at)
        self._paused: dict[int, float] = {}  # float-ok: chat -> until

    @staticmethod
    def _level(bucket: tuple[float, float], rate: float, cap: int, now: float) -> float:  # float-ok
        tokens, at = bucket
        return min(float(cap), tokens + (now - at) * rate)  # float-ok: tokens

    def _chat_tokens(self, chat_id: int, now: float) -> float:  # float-ok: tokens
        lim = self.limits
        bucket = self._chats.get(chat_id, (float(lim.chat_burst), now))  # float-ok
        return self._level(bucket, lim.chat_per_second, lim.chat_burst, now)

    def chat_delay(self, chat_id: int) -> float:  # float-ok: seconds
        """Seconds until `chat_id` may get a message (0: now)."""
        now = self.clock()
        paused = max(0.0, self._paused.get(chat_id, now) - now)  # float-ok
        missing = 1.0 - self._chat_tokens(chat_id, now)  # float-ok
        return max(paused, missing / self.limits.chat_per_second if missing > 0 else 0.0)

    def bot_delay(self) -> float:  # float-ok: seconds
        """Seconds until the bot may send anything (0: now)."""
        now = self.clock()
        missing = 1.0 - self._level(self._bot, self.limits.per_second, self.limits.burst, now)
        return missing / self.limits.per_second if missing > 0 else 0.0

    def take(self, chat_id: int) -> None:
        """One message sent to `chat_id` (call when both delays are 0)."""
        now = self.clock()
        lim = self.limits
        self._bot = (self._level(self._bot, lim.per_second, lim.burst, now) - 1.0, now)
        self._chats[chat_id] = (self._chat_tokens(chat_id, now) - 1.0, now)
        if len(self._chats) > self.MAX_CHATS:
            for chat in [c for c in self._chats if self._chat_tokens(c, now) >= lim.chat_burst]:
                del self._chats[chat]

    def pause(self, chat_id: int, seconds: float) -> None:  # float-ok: seconds
        """Telegram said to wait `seconds` before writing to this chat again."""
        until = self.clock() + seconds
        self._paused[chat_id] = max(until, self._paused.get(chat_id, until))
        if len(self._paused) > self.MAX_CHATS:
            now = self.clock()
            self._paused = {c: t for c, t in self._paused.items() if t > now}


# --- delivering ---------------------------------------------------------------------------


def backoff_seconds(attempts: int) -> float:  # float-ok: seconds
    """The wait before the next try, after `attempts` failed ones: exponential, capped,
    with ±20 % jitter so that a burst of failures does not come back at once."""
    base = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempts - 1))
    return base * random.uniform(0.8, 1.2)  # jitter, not a secret


def _retry_after_seconds(error: RetryAfter) -> float:  # float-ok: seconds
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)  # float-ok


@dataclass(frozen=True)
class PassResult:
    claimed: int
    sent: int


SENT, BLOCKED, NOT_SENT = "sent", "blocked", "not sent"


async def _send(bot: Any, due: Due, batch: Batch, limiter: RateLimiter) -> str:
    """Render and send one row, recording what became of it on `batch`; SENT, BLOCKED
    (the chat refuses the bot) or NOT_SENT."""
    try:
        text, markup = render(due)
    except Skip as why:
        batch.settle(due, Outcome.FAILED, reason=f"skipped: {why}")
        return NOT_SENT
    except Exception as e:  # a row we cannot render would fail for ever: set it aside
        log.exception("outbox row %d (%s) cannot be rendered", due.id, due.kind)
        batch.settle(due, Outcome.FAILED, reason=f"render: {e!r}")
        return NOT_SENT
    wait = limiter.bot_delay()
    if wait > 0:
        await asyncio.sleep(wait)  # the bot's own pace: a fraction of a second at most
    limiter.take(due.telegram_id)
    try:
        await bot.send_message(
            due.telegram_id, text, parse_mode=ParseMode.HTML, reply_markup=markup
        )
    except Forbidden as e:  # blocked, deactivated, never started the bot: it will not pass
        batch.settle(due, Outcome.FAILED, reason=f"blocked: {e.message}")
        return BLOCKED
    except RetryAfter as e:  # flood control: this chat waits what Telegram says
        seconds = _retry_after_seconds(e)
        limiter.pause(due.telegram_id, seconds)
        batch.settle(due, Outcome.DEFER, delay_seconds=seconds, reason=f"retry after {seconds}s")
    except (BadRequest, ChatMigrated) as e:  # Telegram refuses this message as it is
        log.error("Telegram refused outbox row %d (%s): %s", due.id, due.kind, e)
        batch.settle(due, Outcome.FAILED, reason=f"refused: {e.message}")
    except Exception as e:  # timeouts, 5xx, the network: try again later
        attempts = due.attempts + 1
        if attempts >= MAX_ATTEMPTS:
            log.error("outbox row %d given up after %d attempts: %r", due.id, attempts, e)
            batch.settle(due, Outcome.FAILED, reason=f"gave up after {attempts} attempts: {e!r}")
        else:
            log.warning("outbox row %d: attempt %d failed: %r", due.id, attempts, e)
            batch.settle(
                due, Outcome.RETRY, delay_seconds=backoff_seconds(attempts), reason=repr(e)
            )
    else:
        batch.settle(due, Outcome.SENT)
        return SENT
    return NOT_SENT


async def deliver_pass(
    pool: asyncpg.Pool, bot: Any, *, limit: int = DEFAULT_BATCH, limiter: RateLimiter
) -> PassResult:
    """One pass over the queue: up to `limit` due rows claimed, sent and settled, in one
    transaction (2 statements besides BEGIN and COMMIT)."""
    sent = 0
    async with claim_due(pool, batch=limit) as batch:
        waiting: Counter[int] = Counter()  # rows of each chat deferred in this pass
        blocked: set[int] = set()  # chats that answered 403 in this pass
        for due in batch.items:
            chat = due.telegram_id
            if chat in blocked:
                batch.settle(due, Outcome.FAILED, reason="blocked: the chat refused the bot")
                continue
            wait = limiter.chat_delay(chat)
            if wait > 0:
                # Their turns, one per chat interval, after the chat's next token.
                later = wait + waiting[chat] / limiter.limits.chat_per_second
                waiting[chat] += 1
                batch.settle(due, Outcome.DEFER, delay_seconds=later)
                continue
            result = await _send(bot, due, batch, limiter)
            sent += result == SENT
            if result == BLOCKED:
                blocked.add(chat)
        claimed = len(batch.items)
    return PassResult(claimed, sent)


async def deliver_due(
    app: Application, limit: int = DEFAULT_BATCH, *, limiter: RateLimiter | None = None
) -> int:
    """One pass (see `deliver_pass`) with the app's pool and bot; how many were sent.

    The pace is the running sender's (its limiter) when there is one, else this pass's
    own: a pass alone keeps Telegram's limits within itself.
    """
    sender: Sender | None = app.bot_data.get(BOT_DATA_SENDER)
    if limiter is None:
        limiter = sender.limiter if sender is not None else RateLimiter()
    result = await deliver_pass(app.bot_data["pool"], app.bot, limit=limit, limiter=limiter)
    return result.sent


async def wake(app: Application | None) -> None:
    """Rows were just committed outside an update handler (a webhook, a job): deliver
    them soon. The app's `after_update` hook (the offline driver: tests, the demo) runs
    now; else the running sender is woken (it hears the commit's NOTIFY too)."""
    if app is None:
        return
    hook: Callable[[Application], Awaitable[Any]] | None = app.bot_data.get(AFTER_UPDATE)
    if hook is not None:
        try:
            await hook(app)
        except Exception:  # what was committed stands; the rows wait for the next pass
            log.exception("outbox delivery after a commit failed")
        return
    sender: Sender | None = app.bot_data.get(BOT_DATA_SENDER)
    if sender is not None:
        sender.wake()


# --- the background sender --------------------------------------------------------------


class Sender:
    """The running bot's delivery loop: a pass whenever a NOTIFY arrives on CHANNEL (a
    dedicated connection, reconnected when lost), every `poll_seconds` in any case, and
    at once again while passes come back full. Failed passes (the database away) are
    retried with a capped back-off; now and then, rows settled `keep_days` ago are pruned.

    For tests and logs: `idle` is set while it waits for work, `connections` counts the
    LISTEN connections made (`listener_pid` is the current one's server pid), `passes`
    the passes run; `wait_until(predicate)` returns once a change makes it true.
    """

    def __init__(
        self,
        app: Application,
        *,
        dsn: str | None,
        batch: int = DEFAULT_BATCH,
        poll_seconds: float = 2.0,  # float-ok: seconds
        limiter: RateLimiter | None = None,
        keep_days: int = 30,
        prune_every_seconds: float = 3600.0,  # float-ok: seconds
    ) -> None:
        self.app = app
        self.dsn = dsn
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.limiter = limiter or RateLimiter()
        self.keep_days = keep_days
        self.prune_every_seconds = prune_every_seconds
        self.idle = asyncio.Event()
        self.connections = 0
        self.passes = 0
        self.listener_pid: int | None = None
        self._conn: asyncpg.Connection | None = None
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    @property
    def woken(self) -> bool:
        """A pass is asked for and has not started yet."""
        return self._wake.is_set()

    def _signal(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            await self._changed.wait()

    @property
    def listening(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    def start(self) -> None:
        if self._task is None or self._task.done():
            # A context of its own: no caller's round-trip measurement follows it.
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="lockbay-outbox", context=contextvars.Context()
            )

    async def stop(self) -> None:
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        conn, self._conn = self._conn, None
        self.listener_pid = None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), 5)
            except Exception:  # gone already: let it go
                conn.terminate()

    async def _listen(self) -> None:
        """LISTEN on a dedicated connection, unless already listening (or no dsn)."""
        if self.dsn is None or self.listening:
            return
        try:
            conn = await asyncpg.connect(self.dsn)
            conn.add_termination_listener(lambda _conn: self._lost())
            await conn.add_listener(CHANNEL, lambda *_: self.wake())
        except (OSError, TimeoutError, asyncpg.PostgresError) as e:
            log.warning("outbox listener cannot connect (polling meanwhile): %s", e)
            return
        self._conn = conn
        self.listener_pid = conn.get_server_pid()
        self.connections += 1
        # Listening from now on; rows committed while it was not are found by this pass.
        self.wake()
        self._signal()

    def _lost(self) -> None:
        if self._stopping:
            return
        log.warning("outbox listener lost its connection; reconnecting")
        self._conn = None
        self.listener_pid = None
        self.wake()  # reconnect, and look for rows whose NOTIFY went unheard
        self._signal()

    async def _run(self) -> None:
        failures = 0
        last_prune = time.monotonic()
        pool = self.app.bot_data["pool"]
        while True:
            await self._listen()
            self._wake.clear()
            try:
                result = await deliver_pass(
                    pool, self.app.bot, limit=self.batch, limiter=self.limiter
                )
                failures = 0
            except Exception:
                failures += 1
                log.exception("outbox pass failed (%d in a row)", failures)
                result = None
            self.passes += 1
            self._signal()
            if time.monotonic() - last_prune >= self.prune_every_seconds:
                last_prune = time.monotonic()
                with contextlib.suppress(Exception):
                    await prune(pool, keep_days=self.keep_days)
            if result is not None and result.claimed >= self.batch:
                continue  # more rows are waiting
            timeout = self.poll_seconds if failures == 0 else min(60.0, 2.0**failures)
            self.idle.set()
            self._signal()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self.idle.clear()


async def start_sender(
    app: Application,
    *,
    dsn: str | None = None,
    **options: Any,
) -> Sender:
    """Start delivering `app`'s outbox in the background: a pass at once, then on every
    NOTIFY (LISTEN on `dsn`; without one, `bot.db.database_url()`) and every
    `poll_seconds`. `options` go to `Sender`."""
    from bot import db

    existing: Sender | None = app.bot_data.get(BOT_DATA_SENDER)
    if existing is not None:
        return existing
    sender = Sender(app, dsn=dsn or db.database_url(), **options)
    app.bot_data[BOT_DATA_SENDER] = sender
    sender.start()
    return sender


async def stop_sender(app: Application) -> None:
    """Stop the sender `start_sender` started, if any (rows left wait for the next one)."""
    sender: Sender | None = app.bot_data.pop(BOT_DATA_SENDER, None)
    if sender is not None:
        await sender.stop()


# --- delivery-deadline reminders ------------------------------------------------------------


async def reminders_job(context: Any) -> int:
    """python-telegram-bot job: queues the reminders that fell due (each once, whatever
    other process runs the same job) and wakes the sender; how many were queued."""
    queued = await queue_reminders(context.bot_data["pool"])
    if queued:
        await wake(getattr(context, "application", None))
    return queued


def schedule_reminders(job_queue: Any, interval_seconds: float = 60):  # float-ok: seconds
    """Runs `reminders_job` every `interval_seconds` on `job_queue`; returns the Job. A
    second call replaces the first schedule."""
    if interval_seconds <= 0:
        raise ValueError("interval_seconds must be more than 0")
    for job in job_queue.get_jobs_by_name(REMINDER_JOB):
        job.schedule_removal()
    return job_queue.run_repeating(
        reminders_job, interval=interval_seconds, first=0, name=REMINDER_JOB
    )
