"""The run's results as a markdown report and a chart, written to bench/results/."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from . import compare, screens


def ms(value: float) -> str:  # float-ok: latency
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def ratio(baseline: float, project: float) -> str:  # float-ok: latency
    return f"{baseline / project:.1f}x"


def trips(summary: dict[str, Any]) -> str:
    mean, most = summary["round_trips"], summary["round_trips_max"]
    text = f"{mean:.0f}" if mean == int(mean) else f"{mean:.1f}"
    return text if most == mean else f"{text} (≤{most})"


def duration(seconds: float) -> str:  # float-ok: seconds
    minutes, s = divmod(round(seconds), 60)
    return f"{minutes} min {s} s" if minutes else f"{s} s"


def screen_table(measured: dict[str, Any]) -> list[str]:
    lines = [
        "| screen | round trips: project | baseline | p50 project (ms) | p50 baseline (ms) "
        "| p99 project (ms) | p99 baseline (ms) | baseline / project (p50) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in screens.SCREENS:
        s = measured["screens"][name]
        p, b = s["project"], s["baseline"]
        lines.append(
            f"| {name} | {trips(p)} | {trips(b)} | {ms(p['p50'])} | {ms(b['p50'])} "
            f"| {ms(p['p99'])} | {ms(b['p99'])} | {ratio(b['p50'], p['p50'])} |"
        )
    return lines


def dashboards(results_dir: Path, current: dict[str, Any]) -> list[dict[str, Any]]:
    """The dashboard at this run's scale, and at the other scales as last recorded."""
    rows = {}
    for path in sorted(results_dir.glob("dashboard-*.json")):
        row = json.loads(path.read_text())
        rows[row["scale"]] = row
    rows[current["scale"]] = current
    return sorted(rows.values(), key=lambda r: r["users"])


def dashboard_record(results: dict[str, Any]) -> dict[str, Any]:
    zero = results["rtt"][f"{min(float(r) for r in results['rtt']):g}"]  # float-ok: ms
    s = zero["screens"]["dashboard_stats"]
    pop = results["population"]
    return {
        "scale": pop["scale"],
        "users": pop["counts"].get("users", pop["users"]),
        "ledger_entries": pop["counts"].get("ledger_entries"),
        "rtt_ms": min(float(r) for r in results["rtt"]),  # float-ok: ms
        "project_p50": s["project"]["p50"],
        "project_p99": s["project"]["p99"],
        "baseline_p50": s["baseline"]["p50"],
        "baseline_p99": s["baseline"]["p99"],
        "recorded_at": results["started_at"],
    }


def markdown(results: dict[str, Any], dashboard_rows: list[dict[str, Any]]) -> str:
    m, pop, opts = results["machine"], results["population"], results["options"]
    counts = pop["counts"]
    compared = sum(r["compared"] for r in results["rtt"].values())
    mismatched = sum(len(r["mismatches"]) for r in results["rtt"].values())
    normalised = ", ".join(f"`{k}` without {v}" for k, v in compare.NORMALISED.items())
    out = [
        "# LockBay benchmark: one query per screen, against the old ORM way",
        "",
        f"Run {results['started_at']} with `{results['command']}`, "
        f"{duration(results['seconds'])} in all.",
        "",
        f"- **Machine:** {m['cpus']} CPUs ({m['cpu_model']}), {m['system']}, "
        f"PostgreSQL {m['postgres']} over a {m['postgres_via']} "
        f"(database `{results['database']}`), "
        f"Python {m['python']}. Load average when it started: {m['load_at_start']:.2f} "
        "(the machine is shared: other test runs may have been going on).",
        f"- **Population** (scale `{pop['scale']}`, "
        f"{'seeded by this run' if pop['seeded_now'] else 'seeded earlier'} in "
        f"{duration(pop['seed_seconds'])}): "
        + ", ".join(f"{n:,} {what.replace('_', ' ')}" for what, n in counts.items())
        + ".",
        f"- **Method:** {opts['people']} random users (seed {opts['seed']}); each screen "
        f"shown {opts['iterations']} times each way ({opts['dashboard_iterations']} for the "
        "dashboard) per added round-trip time, the project and the baseline interleaved "
        "showing by showing with the same arguments (which goes first alternates); the "
        f"cashout flow {opts['flows']} times each way. Added round-trip times go through a "
        "local delaying proxy; measured cost of one round trip (p50 of the smallest query): "
        + ", ".join(
            f"+{rtt} ms → {ms(r['one_round_trip_ms'])} ms" for rtt, r in results["rtt"].items()
        )
        + ".",
        f"- **Same content:** {compared - mismatched:,} of {compared:,} screen pairs identical "
        f"(compared field by field; {normalised}).",
        "",
    ]
    for rtt, measured in results["rtt"].items():
        out += [f"## Screens, +{rtt} ms per round trip", "", *screen_table(measured), ""]
    out += [
        "## Crypto cashout flow: open, five steps, confirm",
        "",
        "The project reads the wallet screen once, keeps it for the five steps (0 round trips) "
        "and confirms with `request_cashout` (one statement). The baseline reads the context "
        "again at every step and confirms in a transaction of several ORM statements.",
        "",
        "| added round trip | round trips: project | baseline | p50 project (ms) "
        "| p50 baseline (ms) | p99 project (ms) | p99 baseline (ms) | baseline / project (p50) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rtt, measured in results["rtt"].items():
        f = measured["cashout_flow"]
        p, b = f["project"], f["baseline"]
        out.append(
            f"| +{rtt} ms | {trips(p)} | {trips(b)} | {ms(p['p50'])} | {ms(b['p50'])} "
            f"| {ms(p['p99'])} | {ms(b['p99'])} | {ratio(b['p50'], p['p50'])} |"
        )
    if results["throughput"]:
        out += [
            "",
            "## Throughput: screens per second",
            "",
            f"Simulated users (asyncio tasks), each on a pool of as many connections, showing "
            f"user screens at random ({len(screens.USER_SCREENS)} of them: all but the admin's) "
            f"until {opts['throughput_ops']:,} are shown; wall time.",
            "",
            "| added round trip | simulated users (pool) | project | baseline "
            "| project / baseline |",
            "|---|---:|---:|---:|---:|",
        ]
        for t in results["throughput"]:
            out.append(
                f"| +{t['rtt_ms']:g} ms | {t['users']} | {t['project']:,.0f} "
                f"| {t['baseline']:,.0f} | {t['project'] / t['baseline']:.1f}x |"
            )
    out += [
        "",
        "## The admin dashboard as the tables grow",
        "",
        "The project reads counters that the movements keep; the baseline counts and sums the "
        "tables each time.",
        "",
        "| users | ledger entries | p50 project (ms) | p50 baseline (ms) | p99 project (ms) "
        "| p99 baseline (ms) | baseline / project (p50) | measured |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for d in dashboard_rows:
        out.append(
            f"| {d['users']:,} | {d['ledger_entries']:,} | {ms(d['project_p50'])} "
            f"| {ms(d['baseline_p50'])} | {ms(d['project_p99'])} | {ms(d['baseline_p99'])} "
            f"| {ratio(d['baseline_p50'], d['project_p50'])} | {d['recorded_at'][:10]} |"
        )
    if not any(d["scale"] == "large" for d in dashboard_rows):
        out += ["", 'For 1,000,000 users: `make bench ARGS="--scale large"`.']
    mismatches = [m for r in results["rtt"].values() for m in r["mismatches"]]
    if mismatches:
        out += ["", "## Screens that differed", "", *(f"- {x}" for x in mismatches[:20])]
    return "\n".join(out) + "\n"


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(screens.SCREENS)
    rtts = list(results["rtt"])
    fig, ax = plt.subplots(figsize=(11, 0.55 * len(names) + 2))
    bars = [(rtt, side) for rtt in rtts for side in ("project", "baseline")]
    height = 0.8 / len(bars)
    colours = {"project": ["#2b8a3e", "#69db7c"], "baseline": ["#c92a2a", "#ffa8a8"]}
    for k, (rtt, side) in enumerate(bars):
        values = [results["rtt"][rtt]["screens"][n][side]["p50"] for n in names]
        shade = colours[side][rtts.index(rtt) % 2]
        ax.barh(
            [i + k * height for i in range(len(names))],
            values,
            height=height,
            color=shade,
            label=f"{side}, +{rtt} ms per round trip",
        )
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(names))])
    ax.set_yticklabels(names)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency (ms, log scale)")
    ax.set_title(
        f"LockBay screens: one query each (project) vs the old ORM way (baseline)\n"
        f"{results['population']['counts'].get('users', 0):,} users, "
        f"{results['machine']['cpus']} CPUs, PostgreSQL {results['machine']['postgres']}, "
        f"{results['started_at'][:16].replace('T', ' ')} UTC"
    )
    ax.grid(axis="x", which="both", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.05), ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results: dict[str, Any], out_dir: Path) -> tuple[str, list[Path]]:
    """The report printed and written: <timestamp>.md/.png/.json and latest.md/.png."""
    out_dir.mkdir(parents=True, exist_ok=True)
    record = dashboard_record(results)
    rows = dashboards(out_dir, record)
    text = markdown(results, rows)
    stamp = datetime.fromisoformat(results["started_at"]).strftime("%Y%m%d-%H%M%S")
    written = []
    for name in (f"{stamp}.md", "latest.md"):
        (out_dir / name).write_text(text, encoding="utf-8")
        written.append(out_dir / name)
    (out_dir / f"{stamp}.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    written.append(out_dir / f"{stamp}.json")
    (out_dir / f"dashboard-{record['scale']}.json").write_text(
        json.dumps(record, indent=1), encoding="utf-8"
    )
    chart(results, out_dir / f"{stamp}.png")
    (out_dir / "latest.png").write_bytes((out_dir / f"{stamp}.png").read_bytes())
    written += [out_dir / f"{stamp}.png", out_dir / "latest.png"]
    return text, written
