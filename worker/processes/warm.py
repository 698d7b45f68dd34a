"""`plyr-recs warm`: one reconcile pass now, in the foreground, and what it did.

the workers run the same pass on their own (`worker.tasks.reconcile`); this is
for an operator who wants it now (after restoring Redis, before sending traffic
to a fresh deploy) or who wants to see what a pass would do (`--dry-run`: no
PDS read, no enqueue, no write; the counts say what would be enqueued). the
recomputes it enqueues are run by the workers, as the loop's are. it has its
own position (`plyr:reconcile:warm:*`), so it never moves the loop's.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from docket import Docket
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from worker.recs.services import open_services
from worker.settings import Settings
from worker.store.reconcile_state import PassSummary, ReconcileState, reconcile_totals
from worker.tasks.reconcile import reconcile_once
from worker.wiring import ConfigurationError, connect_redis

# the summary's rows: what a count means, in the order an operator reads them
LABELS = (
    ("warm", "already warm"),
    ("enqueued:cold", "enqueued: not cached"),
    ("enqueued:missed_by_firehose", "enqueued: missed by the firehose"),
    ("enqueued:refresh", "enqueued: refresh before expiry"),
    ("enqueued:private", "enqueued: private"),
    ("pending", "already queued (an edit in hand)"),
    ("deleted", "deleted from the owner's PDS"),
    ("deleted_known", "deleted from the owner's PDS (known: not read again)"),
    ("lapsing", "inactive, left to expire"),
    ("lapsed", "inactive, expired"),
    ("recent", "changed moments ago (left to the firehose)"),
)


async def warm(settings: Settings, console: Console, *, dry_run: bool) -> int:
    """one pass with a progress bar, then its summary; 0 when the pass completed."""
    if settings.docket_url.startswith("memory://") and not dry_run:
        raise ConfigurationError(
            "DOCKET_URL is memory://: the recomputes would be queued where no worker "
            "looks. Point DOCKET_URL at the workers' Redis (or use --dry-run)."
        )
    if settings.redis_url is None:
        raise ConfigurationError("REDIS_URL is not set: there is no cache to warm")
    async with (
        open_services(settings) as services,
        Docket(name=settings.docket_name, url=settings.docket_url) as docket,
    ):
        with Progress(
            TextColumn("[bold]warm[/]" + (" (dry run)" if dry_run else "")),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as bar:
            task = bar.add_task("", total=None)

            def progress(summary: PassSummary) -> None:
                bar.update(
                    task,
                    completed=summary.listed,
                    total=max(summary.total_estimate, summary.listed),
                    description=f"{summary.enqueued} {'to enqueue' if dry_run else 'enqueued'}",
                )

            summary = await reconcile_once(
                services, docket, run="warm", dry_run=dry_run, progress=progress, resume=False
            )
    title = "warm pass" + (" (dry run)" if dry_run else "")
    console.print(render_pass(summary, title=title, dry_run=dry_run))
    return 0 if summary.finished_at is not None else 1


def render_pass(summary: PassSummary, *, title: str, dry_run: bool = False) -> Table:
    """a pass's counts as a table (`warm`, and `status` for the loop's last pass); a dry
    run enqueued nothing, and says "to enqueue" for what a pass would have."""
    when = datetime.fromtimestamp(summary.started_at, UTC).isoformat(timespec="seconds")
    seconds = summary.seconds
    caption = f"started {when}" + (
        f", {seconds:.1f} s" if seconds is not None else ", not finished"
    )
    table = Table(title=title, caption=caption)
    table.add_column("playlists")
    table.add_column("count", justify="right")
    table.add_row("listed", str(summary.listed))
    shown = set()
    for kind, label in LABELS:
        shown.add(kind)
        if summary.counts.get(kind):
            shown_label = label.replace("enqueued:", "to enqueue:") if dry_run else label
            table.add_row(shown_label, str(summary.counts[kind]))
    for kind, count in sorted(summary.counts.items()):
        if kind not in shown and count:
            table.add_row(kind.replace("failed:", "failed: "), str(count))
    return table


async def reconcile_status(settings: Settings) -> tuple[PassSummary | None, dict[str, int]]:
    """the loop's last pass and the totals across passes, from REDIS_URL."""
    redis = connect_redis(settings.redis_url)
    try:
        last = await ReconcileState(redis, run="loop", position_ttl_seconds=1).last()
        return last, await reconcile_totals(redis)
    finally:
        await redis.aclose()


def render_reconcile_status(last: PassSummary | None, totals: dict[str, int]) -> Table:
    if last is None:
        table = Table(title="reconcile loop: no pass recorded yet")
        table.add_column("playlists")
        table.add_column("count", justify="right")
    else:
        ago = time.time() - (last.finished_at or last.started_at)
        table = render_pass(last, title=f"reconcile loop: last pass {ago:.0f} s ago")
    table.add_row("passes (a week)", str(totals.get("passes", 0)))
    table.add_row("missed_by_firehose (a week)", str(totals.get("missed_by_firehose", 0)))
    return table
