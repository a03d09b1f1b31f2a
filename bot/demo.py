"""`lockbay demo`: a scripted tour of every flow, offline, on the embedded database.

The real Application (every handler, the job queue, the flow cache) runs against
`bot.offline.FakeTelegram`; `bot.offline.Chat` plays the people: Ada, Bayo and Chidi (seeded
once), an admin, and a newcomer who signs up through Ada's invite link on every run. Each step
is printed as the user sees it, with the database round trips and the latency it cost, and the
tour ends with a table of round trips per flow against the budgets of SCREENS.md and the flow
cache's hit rate.

The database keeps what the tour did (the embedded one lives in .lockbay/), so every run tops
the spenders' wallets back up and refreshes the rates: `make demo` runs again and again.
A flow that raises is reported and the tour goes on; the command then exits with 1.
"""

from __future__ import annotations

import asyncio
import html
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal

import asyncpg
from telegram.ext import Application

from bot import cache, db
from bot.app import build_application
from bot.data.enums import PaymentProvider
from bot.data.ledger import reconcile
from bot.data.onboarding import onboarding_context
from bot.data.referral import referral_context
from bot.data.wallet import (
    CryptoDestination,
    create_deposit_order,
    credit_deposit,
    request_cashout,
)
from bot.handlers.ui import Settings
from bot.offline import BOT_USERNAME, Chat, FakeTelegram, Sent, Step
from bot.outbox import deliver_due

ADA, BAYO, CHIDI, ADMIN = 7_000_001, 7_000_002, 7_000_003, 7_000_004
# Newcomers get an id of their own on each run, so that onboarding really runs.
NEWCOMERS = 7_100_000_000

RATES = [
    ("BTC", "USD", "97250.50"),
    ("ETH", "USD", "3420.75"),
    ("LTC", "USD", "88.10"),
    ("USDT", "USD", "1.0002"),
    ("USD", "NGN", "1530.25"),
]
# What the spenders hold available when each tour starts (topped up to it on every run).
BALANCES = [
    (ADA, "USDT", "1250.5"),
    (ADA, "BTC", "0.0523"),
    (ADA, "NGN", "2450000"),
    (BAYO, "USDT", "60"),
]
ADA_USDT_ADDRESS = "TN3W4H6rK2ce4vX9YnFQHwKENnHjoxb3m9"
TRON = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"

# A screen longer than this is cut in the printout (the bot sent all of it).
SCREEN_LINES = 16
BUTTON_ROWS = 6


# --- seeding --------------------------------------------------------------------------


async def seed(conn: asyncpg.Connection) -> None:
    """The demo people once; on every run, fresh rates and the spenders' balances."""
    async with conn.transaction():
        fresh = await db.queries.seed_is_fresh(conn)
        people = [
            (ADA, "ada_trades", "Ada 🌍", "ada@example.com", "+2348031234567"),
            (BAYO, "bayo", "Bayo", None, None),
            (CHIDI, "chidi_store", "Chidi", "chidi@example.com", None),
            (ADMIN, "tolu_ops", "Tolu", "tolu@lockbay.example", None),
        ]
        for telegram_id, username, first_name, email, phone in people:
            await db.queries.seed_user(
                conn,
                telegram_id=telegram_id,
                username=username,
                first_name=first_name,
                email=email,
                phone=phone,
            )
        if fresh:
            for currency, amount in [("BTC", "0.0523"), ("USDT", "1250.5"), ("NGN", "2450000")]:
                await db.queries.seed_credit(
                    conn, telegram_id=ADA, currency=currency, amount=Decimal(amount)
                )
            await db.queries.seed_address(
                conn,
                telegram_id=ADA,
                currency="USDT",
                network="TRC20",
                address=ADA_USDT_ADDRESS,
                label="Binance",
            )
            await db.queries.seed_bank_account(
                conn,
                telegram_id=ADA,
                bank_code="058",
                account_number="0123456789",
                account_name="ADA OKAFOR",
                label="GTBank salary",
            )
            await db.queries.seed_cashout(
                conn,
                telegram_id=ADA,
                currency="USDT",
                amount=Decimal("100"),
                fee=Decimal("1"),
                network="TRC20",
                address=ADA_USDT_ADDRESS,
                idempotency_key="demo-1",
            )
        # Every run: the exchange refuses rates older than 15 minutes, and the tour spends.
        for base, quote, rate in RATES:
            await db.queries.seed_rate(conn, base=base, quote=quote, rate=Decimal(rate))
        for telegram_id, currency, target in BALANCES:
            await db.queries.seed_top_up(
                conn, telegram_id=telegram_id, currency=currency, target=Decimal(target)
            )


class Mailer:
    """Stands in for SMTP: prints the mail and keeps the code for the tour to type."""

    def __init__(self) -> None:
        self.codes: dict[str, str] = {}

    async def __call__(self, email: str, code: str) -> None:
        self.codes[email] = code
        print(f"   📧 mail to {email}: your code is {code}")


async def account_lookup(bank_code: str, account_number: str) -> str | None:
    """Stands in for the payout provider's name check of a bank account."""
    return {"0123456789": "ADA OKAFOR"}.get(account_number)


# --- printing -----------------------------------------------------------------------------


def plain(text: str) -> str:
    """A message as the user reads it: the HTML tags gone, the entities unescaped."""
    return html.unescape(re.sub(r"<[^>]*>", "", text))


def round_trips(n: int) -> str:
    return f"{n} round trip" + ("" if n == 1 else "s")


def print_screen(sent: Sent) -> None:
    lines = plain(sent.text).splitlines()
    if len(lines) > SCREEN_LINES:
        more = len(lines) - SCREEN_LINES
        lines = [*lines[:SCREEN_LINES], f"… ({more} more line{'s' if more > 1 else ''})"]
    for line in lines:
        print(f"   {line}".rstrip())
    rows = sent.buttons
    if len(rows) > BUTTON_ROWS:
        # Long lists of one kind (a queue's items): the first few and the way back.
        rows = [*rows[: BUTTON_ROWS - 2], [(f"… {len(rows) - BUTTON_ROWS + 1} more rows", "")],
                rows[-1]]  # fmt: skip
    for row in rows:
        print("   " + " ".join(f"[ {label} ]" for label, _ in row))


# --- the tour ----------------------------------------------------------------------------


@dataclass
class FlowRun:
    """One flow of the tour: what its steps cost against the budget of SCREENS.md."""

    name: str
    budget: int
    rule: str
    trips: list[int] = field(default_factory=list)
    hits: int = 0
    misses: int = 0
    error: str | None = None

    @property
    def round_trips(self) -> int:
        return sum(self.trips)

    @property
    def status(self) -> str:
        if self.error:
            return f"FAILED: {self.error[:60]}"
        return "ok" if self.round_trips <= self.budget else "over budget"


class Tour:
    def __init__(self, app: Application, telegram: FakeTelegram) -> None:
        self.app = app
        self.telegram = telegram
        self.names: dict[int, str] = {}
        self.runs: list[FlowRun] = []
        self.current: FlowRun | None = None

    def chat(self, telegram_id: int, first_name: str, username: str, shown_as: str) -> Chat:
        self.names[telegram_id] = shown_as
        return Chat(self.app, self.telegram, telegram_id, first_name, username)

    def on_cache(self, flow: str, hit: bool) -> None:
        """bot.cache's listener: each lookup of a flow's context, counted for the tour's flow."""
        if self.current is not None:
            if hit:
                self.current.hits += 1
            else:
                self.current.misses += 1

    async def flow(
        self, name: str, budget: int, rule: str, script: Callable[[], Awaitable[None]]
    ) -> None:
        """Run one flow's script; a step that raises ends this flow only."""
        run = FlowRun(name, budget, rule)
        self.runs.append(run)
        self.current = run
        self.app.bot_data["errors"] = []
        print()
        print(f"━━ {name} — budget {budget}: {rule}")
        try:
            await script()
        except Exception as e:  # the tour goes on; the table and the exit status say so
            run.error = f"{type(e).__name__}: {e}".splitlines()[0][:160]
            print(f"   ✗ {name} stopped: {run.error}")
        finally:
            self.current = None

    async def _step(
        self, chat: Chat, action: str, update: Awaitable[Step], show: bool, expect: str | None
    ) -> Step:
        step = await update
        run = self.current
        assert run is not None
        run.trips.append(step.round_trips)
        who = self.names.get(chat.id, str(chat.id))
        print(
            f"── {run.name} · {who} {action}: "
            f"{round_trips(step.round_trips)}, {step.elapsed_ms:.1f} ms"
        )
        if show:
            for sent in step.replies:
                print_screen(sent)
        for alert in step.alerts:
            print(f"   ⚠ pop-up: {plain(alert)}")
        for call in step.calls:
            to = int(call.params.get("chat_id", chat.id))
            if call.method == "sendMessage" and to != chat.id:
                first = plain(call.params["text"]).strip().splitlines()[0]
                print(f"   ↳ to {self.names.get(to, to)}: {first}")
        if expect is not None:
            seen = " ".join([*(plain(s.text) for s in step.replies), *map(plain, step.alerts)])
            if expect not in seen:
                raise AssertionError(f"expected “{expect}” after {action}, saw: {seen[:200]!r}")
        return step

    async def send(
        self, chat: Chat, text: str, *, show: bool = True, expect: str | None = None
    ) -> Step:
        shown = text if len(text) <= 60 else text[:57] + "…"
        action = f"sends {shown}" if text.startswith("/") else f"types “{shown}”"
        return await self._step(chat, action, chat.send(text), show, expect)

    async def tap(
        self, chat: Chat, label: str, *, show: bool = True, expect: str | None = None
    ) -> Step:
        """Press the button whose label contains `label`, on the newest message showing one."""
        message = self._newest(
            chat, label, lambda s: any(label in b for row in s.buttons for b, _ in row)
        )
        data = message.button(label)
        return await self._step(
            chat, f"taps “{_label(message, data)}”", chat.press(data, on=message), show, expect
        )

    async def press(
        self, chat: Chat, data: str, *, show: bool = True, expect: str | None = None
    ) -> Step:
        """Press the button carrying `data`, on the newest message showing it."""
        message = self._newest(chat, data, lambda s: data in s.callbacks)
        return await self._step(
            chat, f"taps “{_label(message, data)}”", chat.press(data, on=message), show, expect
        )

    def _newest(self, chat: Chat, wanted: str, has: Callable[[Sent], bool]) -> Sent:
        for sent in reversed(self.telegram.sent_to(chat.id)):
            if has(sent):
                return sent
        raise AssertionError(f"no “{wanted}” button in {self.names.get(chat.id)}'s chat")

    def note(self, text: str) -> None:
        print(f"   ({text})")


def _label(message: Sent, data: str) -> str:
    return next(label for row in message.buttons for label, d in row if d == data)


# --- the flows -----------------------------------------------------------------------------


async def tour(t: Tour, pool: asyncpg.Pool, mailer: Mailer, dsn: str) -> None:
    """Every flow, in the order a newcomer would meet them."""
    ada = t.chat(ADA, "Ada", "ada_trades", "Ada")
    bayo = t.chat(BAYO, "Bayo", "bayo", "Bayo")
    chidi = t.chat(CHIDI, "Chidi", "chidi_store", "Chidi")
    admin = t.chat(ADMIN, "Tolu", "tolu_ops", "Tolu (admin)")
    newcomer_id = NEWCOMERS + time.time_ns() // 1_000_000 % 1_000_000_000
    while await onboarding_context(pool, telegram_id=newcomer_id) is not None:
        newcomer_id += 1
    nkem = t.chat(newcomer_id, "Nkem", f"nkem_{newcomer_id % 10**9}", "Nkem")
    email = f"nkem.{newcomer_id}@example.com"

    async def onboarding() -> None:
        code = (await referral_context(pool, telegram_id=ADA)).referral_code
        t.note(f"Ada shares her invite link https://t.me/{BOT_USERNAME}?start={code}")
        await t.send(nkem, f"/start {code}", expect="Welcome")
        await t.send(nkem, email, expect=email)
        await t.send(nkem, mailer.codes[email], expect="confirmed")
        await t.tap(nkem, "I accept", expect="all set")

    async def menu() -> None:
        await t.tap(nkem, "Menu", expect="Hello")
        await t.send(ada, "/menu", expect="Hello")

    async def crypto_cashout() -> None:
        await t.send(ada, "/wallet", expect="Wallet of")
        await t.tap(ada, "Cash out crypto", show=False)
        await t.tap(ada, "USDT", show=False)
        await t.send(ada, "12.3456789", expect="decimal places")
        await t.send(ada, "25", show=False)
        await t.tap(ada, "Tron", show=False)
        await t.tap(ada, "Binance", expect="Check and confirm")
        await t.tap(ada, "Confirm", show=False, expect="requested")

    async def ngn_cashout() -> None:
        await t.tap(ada, "Wallet", show=False)
        await t.tap(ada, "Cash out NGN", show=False)
        await t.tap(ada, "GTBank salary", show=False)
        await t.send(ada, "50,000", show=False, expect="Check and confirm")
        await t.tap(ada, "Confirm", expect="requested")

    async def stale_cashout() -> None:
        await t.send(bayo, "/wallet", show=False)
        await t.tap(bayo, "Cash out crypto", show=False)
        await t.tap(bayo, "USDT", show=False)
        await t.send(bayo, "50", show=False)
        await t.tap(bayo, "Tron", show=False)
        await t.send(bayo, TRON, show=False, expect="Check and confirm")
        t.note("meanwhile, from Bayo's other phone: a 20 USDT cashout, behind this flow's back")
        await request_cashout(
            pool,
            telegram_id=BAYO,
            currency="USDT",
            amount=Decimal(20),
            destination=CryptoDestination("TRC20", TRON),
            idempotency_key=f"demo-elsewhere-{newcomer_id}",
        )
        await t.tap(bayo, "Confirm", expect="balance changed")

    async def invalidation() -> None:
        # This process listens like every bot process does (a dedicated connection).
        listener = await cache.start_invalidation(t.app, dsn)
        try:
            await t.send(bayo, "/wallet", show=False)
            await t.tap(bayo, "Cash out crypto", show=False)
            t.note("meanwhile, a 25 USDT deposit to Bayo is credited by a provider's webhook")
            order = await create_deposit_order(
                pool, telegram_id=BAYO, currency="USDT", provider=PaymentProvider.BLOCKBEE
            )
            seen = listener.evictions
            await credit_deposit(
                pool,
                provider=PaymentProvider.BLOCKBEE,
                event_id=f"demo-{order.ref}",
                order_ref=order.ref,
                currency="USDT",
                amount=Decimal(25),
            )
            await asyncio.wait_for(listener.wait_for(evictions=seen + 1), 30)
            t.note("its commit's NOTIFY reached this bot process: Bayo's cached wallet is evicted")
            await t.tap(bayo, "USDT", expect="balance changed")
        finally:
            await cache.stop_invalidation(t.app)

    async def exchange() -> None:
        await t.send(ada, "/exchange", expect="Exchange")
        await t.tap(ada, "BTC → NGN", show=False)
        await t.send(ada, "0.01", show=False)
        await t.tap(ada, "My NGN wallet", expect="You get")
        await t.tap(ada, "Confirm", expect="Exchanged")

    async def create_escrow(description: str, show: bool = True) -> None:
        """Ada creates an escrow with Chidi, to be paid from her wallet."""
        await t.tap(ada, "New escrow", show=False)
        await t.send(ada, "@chidi_store", show=False, expect="Chidi")
        await t.press(ada, "escrow:cur:USDT", show=False)
        await t.send(ada, "100", show=False)
        await t.send(ada, description, show=False)
        await t.press(ada, "escrow:split:split", show=False)
        await t.press(ada, "escrow:method:wallet", show=show)
        await t.press(ada, "escrow:confirm", show=False, expect="Escrow")

    async def pay_escrow(show: bool = True) -> None:
        """Paying from the wallet: the escrow's first action."""
        await t.tap(ada, "Pay from wallet", show=show, expect="funded")

    async def escrow_create() -> None:
        await create_escrow("Canon AE-1 film camera, boxed, with a 50 mm lens")

    async def escrow_actions() -> None:
        await pay_escrow(show=False)
        await t.tap(chidi, "🤝 Open", show=False, expect="Escrow")
        await t.tap(chidi, "Accept", show=False, expect="accepted")
        await t.tap(chidi, "Mark delivered", show=False, expect="delivered")
        await t.tap(ada, "🤝 Open", show=False)
        await t.tap(ada, "Release funds", show=False, expect="cannot be undone")
        await t.tap(ada, "Yes, release", expect="released")

    async def rating() -> None:
        await t.tap(ada, "5★", expect="★★★★★")
        await t.tap(chidi, "4★", expect="★★★★☆")

    async def dispute_setup() -> None:
        await t.tap(ada, "Menu", show=False)
        await create_escrow("Nikon FM2 body, “like new”", show=False)
        await pay_escrow(show=False)
        await t.tap(chidi, "🤝 Open", show=False)
        await t.tap(chidi, "Accept", show=False, expect="accepted")

    async def dispute() -> None:
        await t.tap(ada, "🤝 Open", show=False)
        await t.tap(ada, "Open dispute", show=False)
        opened = await t.send(
            ada, "The shutter sticks at 1/1000 and the listing said “like new”.", show=False
        )
        dispute_id = int(opened.screen.button("Refresh").rsplit(":", 1)[1])
        await t.send(ada, "Photos of the shutter are on their way.", show=False)
        await t.send(chidi, "/disputes", show=False)
        await t.press(chidi, f"dispute:view:{dispute_id}", show=False)
        await t.send(chidi, "It worked when I shipped it; I can take it back for a refund.")
        await t.send(admin, "/disputes", show=False)
        await t.press(admin, f"dispute:view:{dispute_id}", show=False)
        await t.send(
            admin, "Thanks both. A fair split: 40% back to Ada, the rest to Chidi.", show=False
        )
        await t.tap(admin, "Split", show=False)
        await t.send(admin, "40%", expect="the buyer gets 40 USDT")
        await t.tap(admin, "Confirm", expect="resolved")

    async def support() -> None:
        await t.send(nkem, "/support", show=False)
        await t.tap(nkem, "New ticket", show=False)
        await t.send(nkem, "Referral bonus", show=False)
        await t.send(nkem, "Hi! Ada invited me. When does she get her referral reward?", show=False)
        await t.tap(admin, "Reply", show=False)
        await t.send(
            admin, "Hi Nkem! After your first completed escrow. Welcome aboard!", show=False
        )
        await t.send(nkem, "/support", expect="After your first completed escrow")

    async def contacts() -> None:
        await t.send(nkem, "/contacts", show=False)
        await t.tap(nkem, "Address", show=False)
        await t.press(nkem, "contacts:cur:USDT", show=False)
        await t.press(nkem, "contacts:net:TRC20", show=False)
        await t.send(nkem, TRON, show=False)
        await t.send(nkem, "Trust Wallet", expect="Saved")

    async def referral() -> None:
        await t.send(ada, "/referral", expect="Nkem")

    async def history() -> None:
        await t.send(ada, "/history", expect="History")
        await t.tap(ada, "Older", show=False, expect="History")

    async def admin_console() -> None:
        await t.send(admin, "/admin", expect="Admin dashboard")
        await t.tap(admin, "Users", show=False)
        await t.tap(admin, "Dashboard", show=False)
        await t.tap(admin, "Transactions", show=False)
        await t.tap(admin, "Dashboard", show=False)
        queue = await t.tap(admin, "Cashouts", expect="#")
        oldest = next(c for c in queue.screen.callbacks if c.startswith("admin:cashout:"))
        await t.press(admin, oldest)
        await t.tap(admin, "Approve", show=False, expect="Approved")

    flows = [
        ("onboarding", 4, "1 per step that writes", onboarding),
        ("menu", 2, "1 per screen", menu),
        ("crypto cashout", 2, "1 to open, 0 per step, 1 to confirm", crypto_cashout),
        ("NGN cashout", 2, "1 to open, 0 per step, 1 to confirm", ngn_cashout),
        ("cashout, stale cache", 3, "1 to open, 1 refused confirm, 1 for the fresh screen",
         stale_cashout),
        ("invalidation", 2, "1 to open, 1 to refetch after another process's commit",
         invalidation),
        ("exchange BTC→NGN", 3, "1 to open, 1 to lock, 1 to confirm", exchange),
        ("escrow create", 2, "1 lookup, 1 to create", escrow_create),
        ("escrow actions", 6, "1 per view, 1 per action (pay, accept, deliver, release)",
         escrow_actions),
        ("rating", 2, "1 per screen", rating),
        ("escrow #2 set-up", 6, "menu 1, create 3, view 1, accept 1", dispute_setup),
        ("dispute", 10, "1 per message posted, 1 per screen, 1 to resolve", dispute),
        ("support", 4, "1 per screen, 1 per message", support),
        ("contacts", 2, "1 to open, 0 per step, 1 to save", contacts),
        ("referral", 1, "1 per screen", referral),
        ("history", 2, "1 per screen (page)", history),
        ("admin", 7, "1 per screen, 1 per approval", admin_console),
    ]  # fmt: skip
    for name, budget, rule, script in flows:
        await t.flow(name, budget, rule, script)


def print_table(runs: list[FlowRun]) -> None:
    print()
    print("━━ round trips per flow (budgets: SCREENS.md)")
    head = (
        f"{'flow':<22} {'steps':>5} {'round trips':>11} {'budget':>6}  "
        f"{'per step':<28} {'cache hit/miss':>14}  status"
    )
    print(head)
    print("─" * len(head))
    for r in runs:
        per_step = " ".join(str(n) for n in r.trips)
        if len(per_step) > 28:
            per_step = per_step[:26] + " …"
        lookups = r.hits + r.misses
        ratio = f"{r.hits}/{r.misses} {r.hits / lookups:>4.0%}" if lookups else "—"
        print(
            f"{r.name:<22} {len(r.trips):>5} {r.round_trips:>11} {r.budget:>6}  "
            f"{per_step:<28} {ratio:>14}  {r.status}"
        )
    total = sum(r.round_trips for r in runs)
    budget = sum(r.budget for r in runs)
    steps = sum(len(r.trips) for r in runs)
    print("─" * len(head))
    print(f"{'all flows':<22} {steps:>5} {total:>11} {budget:>6}")
    stats = cache.stats
    hits, misses = sum(stats.hits.values()), sum(stats.misses.values())
    print()
    print(f"cache hit rate: {stats.hit_rate():.1%} ({hits} hits, {misses} misses)")
    for flow in sorted(set(stats.hits) | set(stats.misses)):
        h, m = stats.hits[flow], stats.misses[flow]
        print(f"   {flow:<16} {h:>3} hits {m:>3} misses  {h / (h + m):>4.0%}")


async def run(dsn: str) -> None:
    """Migrate, seed, tour every flow, print the table; SystemExit(1) when a flow did not
    go through (or went over its budget) or the books do not balance afterwards."""
    pool = await db.create_pool(dsn)
    try:
        async with pool.acquire() as conn:
            applied = await db.migrate(conn)
            print(f"migrations applied: {', '.join(applied) or 'none (up to date)'}")
            await seed(conn)
        runs, balanced = await _run_tour(pool, dsn)
    finally:
        await pool.close()
    print_table(runs)
    print(f"books balance: {'yes' if balanced else 'NO (see bot.data.ledger.reconcile)'}")
    if not balanced or any(r.status != "ok" for r in runs):
        raise SystemExit(1)


async def _run_tour(pool: asyncpg.Pool, dsn: str) -> tuple[list[FlowRun], bool]:
    """The real Application on the pool and the stand-in Telegram, for one tour."""
    telegram = FakeTelegram()
    app = build_application(
        token="123456:DEMO",
        settings=Settings(admin_ids=frozenset({ADMIN})),
        pool=pool,
        request=telegram,
    )
    mailer = Mailer()
    app.bot_data["mailer"] = mailer
    app.bot_data["account_lookup"] = account_lookup
    # Notifications to the other party go through the outbox: deliver after each step.
    app.bot_data["after_update"] = deliver_due
    t = Tour(app, telegram)
    await app.initialize()
    try:
        await app.post_init(app)  # as `lockbay run` does: the configured admin is the admin
        await app.start()  # the job queue: conversation timeouts
        cache.stats.reset()
        cache.stats.listeners.append(t.on_cache)
        try:
            await tour(t, pool, mailer, dsn)
        finally:
            cache.stats.listeners.remove(t.on_cache)
    finally:
        if app.running:
            await app.stop()
        await app.shutdown()
    balanced = not await reconcile(pool)
    return t.runs, balanced
