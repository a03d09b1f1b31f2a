"""One benchmark run: every screen both ways, interleaved, over the same random people, at each
added round-trip time; the crypto cashout flow both ways; throughput with pools of 10 and 50
simulated users; and the admin dashboard's cost at the scale seeded."""

from __future__ import annotations

import asyncio
import math
import os
import platform
import random
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot import db
from bot.data.wallet import CryptoDestination, WalletContext, request_cashout, wallet_context
from bot.money import parse_amount, validate_address

from . import baseline, compare, screens
from . import seed as seeding
from .proxy import ProxyProcess

TRON = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"  # a valid TRC20 address (the demo's)
RESULTS = Path(__file__).with_name("results")
CASHOUT_AMOUNT = "5"  # USDT, the minimum; with the 1 USDT fee, 6 leave the wallet


@dataclass
class Options:
    scale: str = "default"
    database_url: str | None = None
    rtt_ms: tuple[float, ...] = (0.0, 5.0)  # float-ok: added round-trip times
    iterations: int = 200  # per screen, per side, per added round-trip time
    dashboard_iterations: int = 50  # the baseline's dashboard scans the big tables
    flows: int = 50  # cashout flows per side per added round-trip time
    throughput_ops: int = 2000  # screens per throughput pass, shared by the simulated users
    pools: tuple[int, ...] = (10, 50)
    people: int = 300  # the random users the screens are shown to
    seed: int = 1
    reseed: bool = False
    skip_throughput: bool = False
    out_dir: Path = RESULTS
    command: str = "python -m bench"


@dataclass
class Samples:
    """One side's measurements of one thing: milliseconds and round trips per showing."""

    ms: list[float] = field(default_factory=list)  # float-ok: latency
    round_trips: list[int] = field(default_factory=list)

    def add(self, ms: float, round_trips: int) -> None:  # float-ok: latency
        self.ms.append(ms)
        self.round_trips.append(round_trips)

    def summary(self) -> dict[str, float]:  # float-ok: latency
        return {
            "n": len(self.ms),
            "p50": percentile(self.ms, 0.50),
            "p99": percentile(self.ms, 0.99),
            "mean": sum(self.ms) / len(self.ms),
            "round_trips": sum(self.round_trips) / len(self.round_trips),
            "round_trips_max": max(self.round_trips),
        }


def percentile(values: list[float], q: float) -> float:  # float-ok: latency
    """Nearest rank: the smallest value with at least q of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the machine --------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


async def machine(dsn: str, server: seeding.Server) -> dict[str, Any]:
    conn = await db.connect(dsn)
    try:
        version = conn.get_settings().server_version  # what the server says, e.g. "16.2"
    finally:
        await conn.close()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "postgres": version.split()[0],
        "postgres_via": "unix socket" if server.host.startswith("/") else f"TCP {server.host}",
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "load_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


# --- the two sides --------------------------------------------------------------------------


class Sides:
    """The project's pool and the baseline's engine, on the same DSN (straight, or through the
    delaying proxy)."""

    def __init__(self, dsn: str, size: int) -> None:
        self.dsn, self.size = dsn, size

    async def __aenter__(self) -> Sides:
        self.pool = await db.create_pool(self.dsn, min_size=self.size, max_size=self.size)
        self.engine = baseline.create_engine(self.dsn, pool_size=self.size)
        self.old = baseline.Baseline(self.engine)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.pool.close()
        await self.engine.dispose()

    async def project(
        self, name: str, kwargs: dict[str, Any]
    ) -> tuple[float, int, Any]:  # float-ok
        async with db.meter.measure() as m:
            started = time.perf_counter()
            result = await screens.PROJECT[name](self.pool, **kwargs)
            ms = (time.perf_counter() - started) * 1000
        return ms, m.round_trips, result

    async def baseline(
        self, name: str, kwargs: dict[str, Any]
    ) -> tuple[float, int, Any]:  # float-ok
        counted = self.old.counter.round_trips
        started = time.perf_counter()
        result = await getattr(self.old, name)(**kwargs)
        ms = (time.perf_counter() - started) * 1000
        return ms, self.old.counter.round_trips - counted, result


# --- the crypto cashout flow ------------------------------------------------------------------


def cashout_steps() -> list[Callable[[WalletContext, dict[str, Any]], None]]:
    """The five steps between opening the wallet and confirming: what each one checks against
    the flow's context (the same Python both ways)."""

    def currency(ctx: WalletContext, draft: dict[str, Any]) -> None:
        draft["wallet"] = ctx.wallet("USDT")
        assert draft["wallet"] is not None and not ctx.user.is_blocked

    def amount(ctx: WalletContext, draft: dict[str, Any]) -> None:
        w = ctx.wallet("USDT")
        draft["amount"] = parse_amount(
            CASHOUT_AMOUNT, w.decimals, minimum=w.cashout_min, maximum=w.cashout_max
        )

    def network(ctx: WalletContext, draft: dict[str, Any]) -> None:
        draft["network"] = next(
            n.network for n in ctx.wallet("USDT").networks if n.network == "TRC20"
        )

    def address(ctx: WalletContext, draft: dict[str, Any]) -> None:
        draft["address"] = validate_address("USDT", draft["network"], TRON)

    def review(ctx: WalletContext, draft: dict[str, Any]) -> None:
        w = ctx.wallet("USDT")
        fee = w.cashout_fee_flat + draft["amount"] * w.cashout_fee_rate
        assert draft["amount"] + fee <= w.available, "the spender ran dry"

    return [currency, amount, network, address, review]


async def project_cashout(sides: Sides, telegram_id: int, key: str) -> None:
    """1 round trip to open, 0 per step (the context is kept), 1 to confirm."""
    ctx = await wallet_context(sides.pool, telegram_id=telegram_id)
    draft: dict[str, Any] = {}
    for step in cashout_steps():
        step(ctx, draft)
    await request_cashout(
        sides.pool,
        telegram_id=telegram_id,
        currency="USDT",
        amount=draft["amount"],
        destination=CryptoDestination(network=draft["network"], address=draft["address"]),
        idempotency_key=key,
    )


async def baseline_cashout(sides: Sides, telegram_id: int, key: str) -> None:
    """The old flow: the context read again at every step, then the cashout's transaction."""
    old = sides.old
    await old.wallet_context(telegram_id=telegram_id)
    draft: dict[str, Any] = {}
    for step in cashout_steps():
        ctx = await old.wallet_context(telegram_id=telegram_id)
        step(ctx, draft)
    await old.request_cashout(
        telegram_id=telegram_id,
        currency="USDT",
        amount=draft["amount"],
        destination=CryptoDestination(network=draft["network"], address=draft["address"]),
        idempotency_key=key,
    )


# --- the run ----------------------------------------------------------------------------------


async def proxy_round_trip(sides: Sides, times: int = 100) -> float:  # float-ok: latency
    """The p50 of the cheapest query there is (`health_check`): one round trip's cost."""
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        await db.queries.health_check(sides.pool)
        samples.append((time.perf_counter() - started) * 1000)
    return percentile(samples, 0.5)


async def latency(
    sides: Sides,
    subjects: screens.Subjects,
    opts: Options,
    rtt: float,  # float-ok: the added round-trip time
    run_id: str,
) -> dict[str, Any]:
    """Every screen, `iterations` times each way, interleaved showing by showing (which side
    goes first alternates), over the same people; each pair of screens compared."""
    people = subjects.people
    results: dict[str, Any] = {"screens": {}, "mismatches": [], "compared": 0}
    # Warm both sides up: connections, prepared statements, asyncpg's type introspection.
    for name in screens.SCREENS:
        for i in range(3):
            kwargs = screens.arguments(name, people[i], subjects, random.Random(i))
            await sides.project(name, kwargs)
            await sides.baseline(name, kwargs)
    for name in screens.SCREENS:
        n = opts.dashboard_iterations if name == "dashboard_stats" else opts.iterations
        mine, theirs = Samples(), Samples()
        for i in range(n):
            person = people[i % len(people)]
            kwargs = screens.arguments(
                name, person, subjects, random.Random(f"{opts.seed}{name}{i}")
            )
            if i % 2 == 0:
                p = await sides.project(name, kwargs)
                b = await sides.baseline(name, kwargs)
            else:
                b = await sides.baseline(name, kwargs)
                p = await sides.project(name, kwargs)
            mine.add(p[0], p[1])
            theirs.add(b[0], b[1])
            found = compare.same(name, p[2], b[2])
            results["compared"] += 1
            if found:
                results["mismatches"].append(f"{name}({kwargs}): {'; '.join(found[:3])}")
        results["screens"][name] = {"project": mine.summary(), "baseline": theirs.summary()}
        s = results["screens"][name]
        log(
            f"  +{rtt:g} ms {name:<24} project p50 {s['project']['p50']:7.2f} ms "
            f"({s['project']['round_trips']:.0f} rt)  baseline p50 {s['baseline']['p50']:8.2f} ms "
            f"({s['baseline']['round_trips']:.1f} rt)"
        )
    # The crypto cashout flow, on people with USDT to spare, a fresh key each time.
    spenders = []
    for person in people:
        ctx = await wallet_context(sides.pool, telegram_id=person.telegram_id)
        usdt = ctx.wallet("USDT") if ctx else None
        if usdt is not None and usdt.available >= Decimal(100) and not ctx.user.is_blocked:
            spenders.append(person.telegram_id)
    mine, theirs = Samples(), Samples()
    for i in range(opts.flows):
        telegram_id = spenders[i % len(spenders)]
        order = [("project", mine), ("baseline", theirs)]
        for side, samples in order if i % 2 == 0 else order[::-1]:
            key = f"bench-{run_id}-{rtt:g}-{side}-{i}"
            if side == "project":
                async with db.meter.measure() as m:
                    started = time.perf_counter()
                    await project_cashout(sides, telegram_id, key)
                    ms = (time.perf_counter() - started) * 1000
                samples.add(ms, m.round_trips)
            else:
                counted = sides.old.counter.round_trips
                started = time.perf_counter()
                await baseline_cashout(sides, telegram_id, key)
                ms = (time.perf_counter() - started) * 1000
                samples.add(ms, sides.old.counter.round_trips - counted)
    results["cashout_flow"] = {"project": mine.summary(), "baseline": theirs.summary()}
    f = results["cashout_flow"]
    log(
        f"  +{rtt:g} ms crypto cashout flow        project p50 {f['project']['p50']:7.2f} ms "
        f"({f['project']['round_trips']:.0f} rt)  baseline p50 {f['baseline']['p50']:8.2f} ms "
        f"({f['baseline']['round_trips']:.1f} rt)"
    )
    return results


async def throughput(
    dsn: str, side: str, users: int, subjects: screens.Subjects, opts: Options
) -> float:  # float-ok: screens per second
    """`users` simulated users (asyncio tasks) on a pool of `users` connections, each showing
    user screens at random, `throughput_ops` in all; screens per second of wall time."""
    per_user = max(1, opts.throughput_ops // users)
    async with Sides(dsn, users) as sides:
        call: Callable[[str, dict[str, Any]], Awaitable[Any]] = (
            sides.project if side == "project" else sides.baseline
        )

        async def user(i: int, ops: int, warm: bool) -> None:
            rng = random.Random(f"{opts.seed}-{i}-{warm}")
            names = list(screens.USER_SCREENS)
            for k in range(ops):
                # Warming up: every screen once, so each connection has prepared its share.
                name = names[k % len(names)] if warm else rng.choice(names)
                person = rng.choice(subjects.people)
                await call(name, screens.arguments(name, person, subjects, rng))

        await asyncio.gather(*(user(i, len(screens.USER_SCREENS), True) for i in range(users)))
        started = time.perf_counter()
        await asyncio.gather(*(user(i, per_user, False) for i in range(users)))
        wall = time.perf_counter() - started
    return per_user * users / wall


async def run(opts: Options) -> dict[str, Any]:
    started = time.perf_counter()
    scale = seeding.SCALES[opts.scale]
    server = (
        seeding.Server.parse(opts.database_url)
        if opts.database_url
        else seeding.default_database(scale)
    )
    log(f"database: {server.dbname} on {server.host}:{server.port} (scale {scale.name})")
    population = await seeding.prepare(server, scale, reseed=opts.reseed)
    log(
        f"population: {'seeded' if population.seeded_now else 'reused'} "
        f"({population.seconds:.0f} s to seed): "
        + ", ".join(f"{n:,} {what}" for what, n in population.counts.items())
    )
    run_id = uuid.uuid4().hex[:8]
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": opts.command,
        "options": {
            "scale": scale.name,
            "rtt_ms": list(opts.rtt_ms),
            "iterations": opts.iterations,
            "dashboard_iterations": opts.dashboard_iterations,
            "flows": opts.flows,
            "throughput_ops": opts.throughput_ops,
            "pools": list(opts.pools),
            "people": opts.people,
            "seed": opts.seed,
        },
        "machine": await machine(server.dsn, server),
        "database": server.dbname,
        "population": {
            "scale": scale.name,
            "users": scale.users,
            "seeded_now": population.seeded_now,
            "seed_seconds": population.seconds,
            "counts": population.counts,
        },
        "rtt": {},
        "throughput": [],
    }
    rng = random.Random(opts.seed)
    telegram_ids = rng.sample(
        range(seeding.FIRST_TELEGRAM_ID, seeding.FIRST_TELEGRAM_ID + scale.users), opts.people
    )
    async with Sides(server.dsn, 2) as straight:
        subjects = await screens.gather(straight.pool, telegram_ids)
    log(f"people: {len(subjects.people)}, live disputes sampled: {len(subjects.dispute_ids)}")
    for rtt in opts.rtt_ms:
        proxy = None
        dsn = server.dsn
        if rtt > 0:
            proxy = ProxyProcess(server.host, server.port, rtt)
            dsn = server.through("127.0.0.1", proxy.start())
        try:
            async with Sides(dsn, 4) as sides:
                one_trip = await proxy_round_trip(sides)
                log(f"+{rtt:g} ms: one round trip costs {one_trip:.2f} ms (p50 of health_check)")
                measured = await latency(sides, subjects, opts, rtt, run_id)
            measured["one_round_trip_ms"] = one_trip
            results["rtt"][f"{rtt:g}"] = measured
            if not opts.skip_throughput:
                for n, users in enumerate(opts.pools):
                    # Which side runs first alternates, as everywhere else.
                    sides_order = ["project", "baseline"] if n % 2 == 0 else ["baseline", "project"]
                    rates = {}
                    for side in sides_order:
                        rates[side] = await throughput(dsn, side, users, subjects, opts)
                    results["throughput"].append({"rtt_ms": rtt, "users": users, **rates})
                    log(
                        f"+{rtt:g} ms, {users} users: project {rates['project']:.0f}/s, "
                        f"baseline {rates['baseline']:.0f}/s"
                    )
        finally:
            if proxy is not None:
                proxy.stop()
    results["seconds"] = time.perf_counter() - started
    return results
