"""the tables of `python -m bench abuse`: the API's phases and the components' rows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from statistics import median

from rich.console import Console
from rich.table import Table

from bench.abuse.component_row import ComponentRow
from bench.abuse.legit import JWT_RATE, MISS_RATE
from bench.abuse.phase import MISS_OK, Phase, pds_bound, percentile

API_COLUMNS = (
    "attack",
    "rate",
    "sent",
    "legit ok",
    "JWT new",
    "JWT back",
    "web new",
    "web back",
    "misses",
    "miss p99 ms",
    "legit p99 ms",
    "quiet p99 ms",
    "p99 / quiet",
    "Redis +MB",
    "threads",
    "sockets",
    "PLC fetches",
    "DNS queries",
    "PDS reqs",
    "notes",
    "verdict",
)
COMPONENT_COLUMNS = ("row", "attack", "legit quiet", "legit attack", "resource", "bound", "verdict")


def _share(outcomes: Counter[str], good: str) -> str:
    bad = {k: v for k, v in outcomes.items() if k != good}
    return f"{outcomes[good]}/{sum(outcomes.values())}" + (f" {bad}" if bad else "")


def api_table(
    console: Console, phases: Sequence[Phase], seconds: float, rate: float, port: int
) -> None:
    table = Table(
        title=f"abuse: legitimate owners at {rate:.0f}/s for {seconds:.0f} s per attack "
        f"(API on 127.0.0.1:{port}, one process, warm cache)",
        show_lines=True,
    )
    for column in API_COLUMNS:
        left = column in ("attack", "rate", "notes", "verdict")
        table.add_column(column, justify="left" if left else "right", overflow="fold")
    for phase in phases:
        name = phase.attack.run.__name__
        problems = phase.problems()
        table.add_row(
            phase.attack.name,
            phase.attack.rate,
            str(phase.sent),
            _share(phase.outcomes, "correct"),
            _share(phase.jwt_new, "signed in"),
            _share(phase.jwt_returning, "signed in"),
            _share(phase.web_new, "signed in"),
            _share(phase.web_returning, "signed in"),
            _share(phase.misses, MISS_OK),
            f"{percentile(phase.miss_latencies, 0.99):.0f}",
            f"{phase.p99:.1f}",
            f"{phase.quiet_p99:.1f}",
            f"{phase.p99 / max(phase.quiet_p99, 1e-9):.2f}x",
            f"{phase.redis_bytes / 1e6:.1f}",
            str(phase.threads),
            str(phase.sockets),
            str(phase.plc_fetches),
            str(phase.dns_queries),
            f"{phase.pds_requests}/{pds_bound(name, phase.seconds)}",
            phase.notes,
            "ok" if not problems else "FAIL: " + ", ".join(problems),
        )
    console.print(table)
    quiet = [p.quiet_p99 for p in phases]
    ratios = [p.p99 / max(p.quiet_p99, 1e-9) for p in phases if p.attack.run.__name__ == "quiet"]
    console.print(
        f"JWT new / back: first-time and returning did:plc users ({JWT_RATE:g}/s each, an "
        "address each in Fly-Client-IP, returning keys past the API's 3 s key cache), asking "
        "for someone else's playlist: signed in (403) / asked; web new / back: the same, "
        "did:web users on hosts of their own (real TLS, loopback). misses: owners asking "
        f"for a playlist not cached yet ({MISS_RATE:g}/s, the moment after '+'), computed "
        "inline from their PDS / asked. PDS reqs: requests to the hostile and hanging PDSes "
        "/ their bound (each refused record once per 10 s backoff; a hanging host its 8 "
        "waiting misses, then a probe per backoff). Redis +MB: growth over the phase; "
        "bound for the floods: 4 x the flood control's pending bytes (one DID's, all DIDs') "
        "+ 4 KiB a task (README, 'Redis bytes').\n"
        f"verdict: legitimate answers, sign-ins and misses all right, resources inside their "
        f"bounds. the p99 ratio is shown, not judged: the quiet windows' own p99 ranged "
        f"{min(quiet):.1f}-{max(quiet):.1f} ms (median {median(quiet):.1f}) over this run"
        + (
            f", and the quiet row (no attack at all) came out at {ratios[0]:.2f}x."
            if ratios
            else "."
        )
    )


def components_table(console: Console, rows: Sequence[ComponentRow]) -> None:
    table = Table(
        title="components: each run for real (loopback), beside a quiet run", show_lines=True
    )
    for column in COMPONENT_COLUMNS:
        table.add_column(column, justify="left")
    for row in rows:
        table.add_row(
            row.name,
            row.attack,
            row.legit_quiet,
            row.legit_attack,
            row.resource,
            row.bound,
            "ok" if row.ok else "FAIL",
        )
    console.print(table)
    for row in rows:
        if row.note:
            console.print(f"{row.name}: {row.note}")
