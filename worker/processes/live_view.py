"""what `plyr-recs run` shows as it happens: each change seen, each task queued,
each recompute with its strategy, time and top picks, and a summary at the end.

a line per event (rich styles them on a terminal and prints plain text when
piped), plus a one-line status footer on a terminal.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from jetstream.enqueue import Enqueued
from worker.demo.steps import SessionStep, StepKind
from worker.recs.recommender import Ensured, Outcome

STEP_STYLES = {
    StepKind.CREATE: "green",
    StepKind.UPDATE: "cyan",
    StepKind.DELETE: "red",
    StepKind.REPLAY: "dim",
    StepKind.IGNORED_LIST: "dim",
    StepKind.OTHER_COLLECTION: "dim",
    StepKind.IDENTITY: "dim",
    StepKind.ACCOUNT: "dim",
    StepKind.MALFORMED: "yellow",
}
TOP_PICKS = 3


@dataclass
class RunTally:
    """the counts behind the summary (also written to `--summary` as JSON)."""

    frames_sent: int = 0
    enqueued: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    strategies: Counter[str] = field(default_factory=Counter)
    compute_ms: list[float] = field(default_factory=list)
    forgotten: int = 0
    dropped: int = 0

    def percentile(self, fraction: float) -> float | None:
        if not self.compute_ms:
            return None
        if len(self.compute_ms) == 1:
            return self.compute_ms[0]
        cuts = statistics.quantiles(self.compute_ms, n=100, method="inclusive")
        return cuts[min(98, max(0, round(fraction * 100) - 1))]


class LiveView:
    """prints the embedded run's events; implements the consumer's observer and the
    worker's `TaskObserver`."""

    def __init__(self, console: Console, names: dict[str, str]) -> None:
        self.console = console
        self.names = names  # playlist URI -> a readable name
        self.tally = RunTally()
        self.started = time.monotonic()
        self._live: Live | None = None
        self.status_text = "starting"

    # --- lifecycle ---------------------------------------------------------------
    def __enter__(self) -> LiveView:
        if self.console.is_terminal:
            self._live = Live(
                self._footer(), console=self.console, refresh_per_second=4, transient=True
            )
            self._live.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def _footer(self) -> Text:
        tally = self.tally
        return Text(
            f"{self.status_text} | frames {tally.frames_sent} | queued "
            f"{sum(tally.enqueued.values())} | recomputes {sum(tally.outcomes.values())}",
            style="bold",
        )

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._footer())

    def status(self, text: str) -> None:
        self.status_text = text
        self._refresh()

    def _line(self, text: Text | str) -> None:
        elapsed = time.monotonic() - self.started
        line = Text(f"{elapsed:6.1f}s ", style="dim")
        line.append(text if isinstance(text, Text) else Text(text))
        self.console.print(line, highlight=False, soft_wrap=True)
        self._refresh()

    def info(self, text: str) -> None:
        self._line(Text(text, style="bold"))

    # --- the replay ----------------------------------------------------------------
    def frame_sent(self, step: SessionStep) -> None:
        self.tally.frames_sent += 1
        if step.playlist_uri is not None and step.kind in (StepKind.CREATE, StepKind.UPDATE):
            name = _record_name(step.frame)
            if name:
                self.names[step.playlist_uri] = name  # the name as of this edit
        self._line(Text(f"firehose  {step.note}", style=STEP_STYLES.get(step.kind, "")))

    # --- the consumer (jetstream.batch.Observer) -------------------------------------
    def __call__(self, enqueued: Enqueued) -> None:
        self.tally.enqueued[enqueued.task] += 1
        name = self.names.get(enqueued.playlist_uri, enqueued.playlist_uri)
        if enqueued.task == "recompute":
            count = len(set(enqueued.track_uris))
            detail = f"{count} track{'' if count == 1 else 's'}, cid …{(enqueued.cid or '')[-8:]}"
        else:
            detail = "deleted"
        self._line(Text(f"consumer  queued {enqueued.task} of '{name}' ({detail})", "blue"))

    # --- the worker (worker.wiring.TaskObserver) ------------------------------------
    def recomputed(self, playlist_uri: str, cid: str, refreshed: Ensured) -> None:
        tally = self.tally
        tally.outcomes[refreshed.outcome.value] += 1
        name = self.names.get(playlist_uri, playlist_uri)
        if refreshed.outcome is Outcome.ALREADY_CACHED or refreshed.value is None:
            self._line(Text(f"worker    '{name}': already cached for this version", "dim"))
            return
        value = refreshed.value
        if refreshed.outcome is Outcome.REUSED:
            how = "same tracks as before (reorder/rename): answer reused, no vector queries"
        elif refreshed.outcome is Outcome.UNAVAILABLE:
            how = "nothing to recommend from (no embeddings)"
        else:
            tally.strategies[value.strategy] += 1
            tally.compute_ms.append(refreshed.seconds * 1e3)
            how = f"{value.strategy} in {refreshed.seconds * 1e3:.1f} ms"
        picks = ", ".join(
            f"{track.title} — {track.artist_display_name}" for track in value.tracks[:TOP_PICKS]
        )
        line = Text(f"worker    '{name}': {how}", style="magenta")
        if picks:
            line.append(f"\n                    top picks: {picks}", style="white")
        self._line(line)

    def forgot(self, playlist_uri: str) -> None:
        self.tally.forgotten += 1
        name = self.names.get(playlist_uri, playlist_uri)
        self._line(Text(f"worker    '{name}': deleted, its recommendations dropped", "red"))

    def dropped(self, playlist_uri: str, reason: str) -> None:
        self.tally.dropped += 1
        self._line(Text(f"worker    dropped {playlist_uri}: {reason}", "yellow"))

    # --- the end -------------------------------------------------------------------
    def summary(self, consumer_counts: dict[str, int], cache_hits: int, cache_misses: int) -> None:
        tally = self.tally
        table = Table(title="plyr-recs run: summary", show_header=False)
        table.add_column("what")
        table.add_column("count", justify="right")
        rows = [
            ("firehose frames sent", tally.frames_sent),
            *((f"consumer {name}", value) for name, value in sorted(consumer_counts.items())),
            ("recomputes queued", tally.enqueued["recompute"]),
            ("forgets queued", tally.enqueued["forget"]),
            *((f"worker {name}", count) for name, count in sorted(tally.outcomes.items())),
            *((f"strategy {name}", count) for name, count in sorted(tally.strategies.items())),
            ("playlists forgotten", tally.forgotten),
            ("tasks dropped", tally.dropped),
            ("API cache hits", cache_hits),
            ("API cache misses", cache_misses),
        ]
        for what, count in rows:
            table.add_row(what, str(count))
        p50, p99 = tally.percentile(0.5), tally.percentile(0.99)
        table.add_row("compute p50", "-" if p50 is None else f"{p50:.1f} ms")
        table.add_row("compute p99", "-" if p99 is None else f"{p99:.1f} ms")
        self.console.print(table)


def _record_name(frame: str) -> str | None:
    """the list record's name in a frame the demo generated (None if it has none)."""
    try:
        name = json.loads(frame)["commit"]["record"]["name"]
    except (ValueError, KeyError, TypeError):
        return None
    return name if isinstance(name, str) else None
