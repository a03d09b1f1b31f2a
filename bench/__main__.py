"""`python -m bench [--scale large] [--rtt-ms 0,5] ...`: seed (or reuse) the benchmark's
database, run every screen both ways, print the report and write it to bench/results/."""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
from pathlib import Path

from .run import Options, log, run
from .seed import NotABenchDatabase


def parse(argv: list[str]) -> Options:
    defaults = Options()
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument(
        "--scale",
        choices=["default", "large"],
        default=defaults.scale,
        help="default: 100,000 users, ~1M ledger entries; large: 1M users, ~10M entries",
    )
    p.add_argument(
        "--database-url",
        help="the benchmark's own database (default: lockbay_bench, or lockbay_bench_large, "
        "on DATABASE_URL's server, else on the embedded one)",
    )
    p.add_argument(
        "--rtt-ms",
        default="0,5",
        help="added round-trip times to measure at, comma separated (default: 0,5)",
    )
    p.add_argument("--iterations", type=int, default=defaults.iterations)
    p.add_argument("--dashboard-iterations", type=int, default=defaults.dashboard_iterations)
    p.add_argument("--flows", type=int, default=defaults.flows)
    p.add_argument("--throughput-ops", type=int, default=defaults.throughput_ops)
    p.add_argument("--pools", default="10,50", help="simulated users for throughput")
    p.add_argument("--people", type=int, default=defaults.people)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--reseed", action="store_true", help="drop the database and seed it again")
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--out-dir", type=Path, default=defaults.out_dir)
    a = p.parse_args(argv)
    return Options(
        scale=a.scale,
        database_url=a.database_url,
        rtt_ms=tuple(float(x) for x in a.rtt_ms.split(",") if x.strip()),  # float-ok: ms
        iterations=a.iterations,
        dashboard_iterations=a.dashboard_iterations,
        flows=a.flows,
        throughput_ops=a.throughput_ops,
        pools=tuple(int(x) for x in a.pools.split(",") if x.strip()),
        people=a.people,
        seed=a.seed,
        reseed=a.reseed,
        skip_throughput=a.skip_throughput,
        out_dir=a.out_dir,
        command=shlex.join(["python", "-m", "bench", *argv]),
    )


def main(argv: list[str] | None = None) -> int:
    opts = parse(sys.argv[1:] if argv is None else argv)
    try:
        results = asyncio.run(run(opts))
    except NotABenchDatabase as e:
        log(f"bench: {e}")
        return 2
    from .report import write  # matplotlib: the bench extra

    text, written = write(results, opts.out_dir)
    print(text)
    log("written: " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
