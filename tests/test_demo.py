"""`lockbay demo` on the test database: every flow toured through the real handlers, the
table of round trips against SCREENS.md's budgets, and a second run on the same database
(`make demo` run again) that works just as well."""

from __future__ import annotations

import re

from bot import demo

FLOWS = [
    "onboarding",
    "menu",
    "crypto cashout",
    "NGN cashout",
    "cashout, stale cache",
    "invalidation",
    "exchange BTC→NGN",
    "escrow create",
    "escrow actions",
    "rating",
    "escrow #2 set-up",
    "dispute",
    "support",
    "contacts",
    "referral",
    "history",
    "admin",
]
# SCREENS.md: 1 to open and 1 to confirm; 1 to open, 1 to lock, 1 to confirm; 1 lookup and
# 1 to create. An eviction costs the one refetch.
EXACT = {
    "crypto cashout": 2,
    "NGN cashout": 2,
    "exchange BTC→NGN": 3,
    "escrow create": 2,
    "invalidation": 2,
}


def table_row(table: str, flow: str) -> tuple[int, int, int, str]:
    """(steps, measured round trips, budget, status) of one flow in the final table."""
    found = re.search(rf"^{re.escape(flow)} +(\d+) +(\d+) +(\d+) .* (\S+)$", table, re.M)
    assert found, f"{flow} is not in the table:\n{table}"
    steps, measured, budget, status = found.groups()
    return int(steps), int(measured), int(budget), status


async def test_the_tour_covers_every_flow_within_budget_and_runs_again(database_url, capsys):
    for run in (1, 2):
        await demo.run(database_url)
        out, err = capsys.readouterr()

        # The database is migrated already: running the demo migrates nothing.
        assert "migrations applied: none (up to date)" in out
        table = out[out.index("━━ round trips per flow") :]
        for flow in FLOWS:
            steps, measured, budget, status = table_row(table, flow)
            assert steps > 0 and measured <= budget and status == "ok", (run, flow)
        for flow, budget in EXACT.items():
            assert table_row(table, flow)[1:3] == (budget, budget), (run, flow)
        rate = re.search(r"^cache hit rate: (\d+\.\d)% \((\d+) hits, (\d+) misses\)$", table, re.M)
        assert rate and int(rate[2]) > 0 and int(rate[3]) > 0
        assert "books balance: yes" in out
        assert "Traceback" not in out + err
        assert "failed" not in (out + err).lower() and "stopped:" not in out

        # What the user saw, as they saw it: tags gone, entities unescaped, buttons in rows.
        assert "── crypto cashout · Ada types “12.3456789”: 0 round trips" in out
        assert "Use at most 6 decimal places" in out
        assert "[ ✅ Confirm ]" in out and "<b>" not in out and "&amp;" not in out
        assert "📧 mail to nkem." in out and "   ↳ to Chidi: " in out
        assert "balance changed since this cashout was prepared" in out
