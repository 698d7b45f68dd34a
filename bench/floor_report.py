"""`python -m bench floor`'s figures: the table, the whole beside the sum of its parts,
and the JSON. pure: the figures in, text and a table out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

from bench.yardstick import HostSpeed


@dataclass(frozen=True)
class Step:
    """one step a recompute takes, measured alone: the caller's CPU per call."""

    key: str  # its name in the JSON
    label: str  # its name in the table
    calls: int  # per recompute
    us_per_call: float
    in_sum: bool = True  # False: another process's CPU (shown, not summed)

    @property
    def us_per_recompute(self) -> float:
        return self.calls * self.us_per_call


@dataclass(frozen=True)
class Reference:
    """a step through the turbopuffer SDK beside the same request by a bare HTTP client."""

    key: str
    label: str
    sdk_us: float
    bare_us: float

    @property
    def ratio(self) -> float:
        return self.sdk_us / self.bare_us


@dataclass(frozen=True)
class FloorFigures:
    tracks: int  # the typical playlist's
    queries: int  # sub-queries of its multi-query
    top_k: int
    candidates: int  # ids hydrated (the lists' heads)
    every_candidate: int  # the lists' candidates, all (what was hydrated before the heads)
    hydrate_every_us: float  # the hydrate of all of them
    playlists: int  # recomputes per round of the whole
    tasks: int  # no-op tasks per round of the docket step
    rounds: int
    concurrency: int
    loop: str
    whole_us: float  # CPU per recompute of the real task through a docket worker
    # the whole's share spent by the worker's loops while it waited (its idle CPU a
    # second x the round's wall time / recomputes): part of the glue
    idle_us: float
    whole_wall_seconds: float  # a round of the whole, on the clock
    steps: list[Step] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    host: HostSpeed | None = None  # the yardstick, sampled during the run
    # the PDS read (step "pds.fetch") through the httpx client it had before issue 20
    pds_before_us: float | None = None
    # the same recomputes `batch_size` to a `recompute_batch` task (the reconcile loop's way)
    whole_batched_us: float | None = None
    batch_size: int | None = None
    # the Redis steps through a client packing in Python (redis-py's asyncio default)
    python_packed_us: dict[str, float] = field(default_factory=dict)

    @property
    def sum_us(self) -> float:
        return sum(step.us_per_recompute for step in self.steps if step.in_sum)

    @property
    def glue_us(self) -> float:
        """the whole's CPU that no step accounts for (negative: the parts overstate it)."""
        return self.whole_us - self.sum_us

    def to_json(self) -> dict[str, Any]:
        return {
            "tracks": self.tracks,
            "queries": self.queries,
            "top_k": self.top_k,
            "candidates": self.candidates,
            "every_candidate": self.every_candidate,
            "hydrate_every_us": self.hydrate_every_us,
            "playlists": self.playlists,
            "tasks": self.tasks,
            "rounds": self.rounds,
            "concurrency": self.concurrency,
            "loop": self.loop,
            "steps": {
                step.key: {
                    "label": step.label,
                    "calls_per_recompute": step.calls,
                    "us_per_call": step.us_per_call,
                    "us_per_recompute": step.us_per_recompute,
                    "in_sum": step.in_sum,
                }
                for step in self.steps
            },
            "references": {
                ref.key: {
                    "label": ref.label,
                    "sdk_us": ref.sdk_us,
                    "bare_us": ref.bare_us,
                    "ratio": ref.ratio,
                }
                for ref in self.references
            },
            "sum_us": self.sum_us,
            "whole_us": self.whole_us,
            "glue_us": self.glue_us,
            "idle_us": self.idle_us,
            "whole_wall_seconds": self.whole_wall_seconds,
            "pds_before_us": self.pds_before_us,
            "whole_batched_us": self.whole_batched_us,
            "batch_size": self.batch_size,
            "python_packed_us": self.python_packed_us,
            "host": self.host.to_json() if self.host is not None else None,
            "at_reference": None
            if self.host is None
            else {
                "sum_us": self.host.at_reference(self.sum_us),
                "whole_us": self.host.at_reference(self.whole_us),
                "whole_batched_us": None
                if self.whole_batched_us is None
                else self.host.at_reference(self.whole_batched_us),
                "glue_us": self.host.at_reference(self.glue_us),
            },
        }


def floor_table(figures: FloorFigures) -> Table:
    whole = figures.whole_us
    table = Table(
        title=f"client CPU of one recompute, step by step ({figures.tracks} tracks, "
        f"median of {figures.rounds} rounds)"
    )
    table.add_column("step")
    table.add_column("calls / recompute", justify="right")
    table.add_column("µs / call", justify="right")
    table.add_column("µs / recompute", justify="right")
    table.add_column("share of the whole", justify="right")
    for step in figures.steps:
        if step.in_sum:
            share = f"{step.us_per_recompute / whole:.0%}"
            per_recompute = f"{step.us_per_recompute:,.0f}"
        else:
            share, per_recompute = "not in the sum", f"({step.us_per_recompute:,.0f})"
        table.add_row(step.label, str(step.calls), f"{step.us_per_call:,.0f}", per_recompute, share)
    table.add_section()
    table.add_row(
        "sum of the steps", "", "", f"{figures.sum_us:,.0f}", f"{figures.sum_us / whole:.0%}"
    )
    table.add_row(
        f"whole: the recompute task in a docket worker (x{figures.playlists} a round)",
        "",
        "",
        f"{whole:,.0f}",
        "100%",
    )
    table.add_row(
        "glue: whole - sum", "", "", f"{figures.glue_us:,.0f}", f"{figures.glue_us / whole:.0%}"
    )
    table.add_row(
        "  of which: docket's loops while it waits",
        "",
        "",
        f"{figures.idle_us:,.0f}",
        f"{figures.idle_us / whole:.0%}",
    )
    if figures.whole_batched_us is not None:
        table.add_row(
            f"whole, batched: {figures.batch_size} to a recompute_batch task "
            "(the reconcile loop's way)",
            "",
            "",
            f"{figures.whole_batched_us:,.0f}",
            f"{figures.whole_batched_us / whole:.0%}",
        )
    return table


def reference_table(figures: FloorFigures) -> Table:
    table = Table(title="the turbopuffer SDK's request path beside a bare aiohttp POST + orjson")
    table.add_column("call")
    table.add_column("SDK µs", justify="right")
    table.add_column("bare µs", justify="right")
    table.add_column("SDK / bare", justify="right")
    for ref in figures.references:
        table.add_row(ref.label, f"{ref.sdk_us:,.0f}", f"{ref.bare_us:,.0f}", f"{ref.ratio:.2f}")
    return table


def summary_lines(figures: FloorFigures) -> list[str]:
    host = figures.host
    return [
        f"typical playlist: {figures.tracks} tracks (the median of `bench scale`'s world), "
        f"{figures.queries} queries x top_k {figures.top_k}, {figures.candidates} candidates "
        "hydrated",
        f"the hydrate of the lists' heads ({figures.candidates} ids) beside every candidate "
        f"({figures.every_candidate}): {_step_us(figures, 'postgres.hydrate'):,.0f} / "
        f"{figures.hydrate_every_us:,.0f} µs "
        f"({_step_us(figures, 'postgres.hydrate') / figures.hydrate_every_us:.2f}x)",
        f"whole: {figures.playlists} recomputes a round ({figures.whole_wall_seconds:.1f} s "
        f"on the clock), worker concurrency {figures.concurrency}, {figures.loop} loop; "
        "every step's CPU is this process's (time.process_time), the servers run apart",
        *_pds_lines(figures),
        *_batched_lines(figures),
        *_packing_lines(figures),
        f"sum of the steps {figures.sum_us / 1e3:.2f} ms, whole {figures.whole_us / 1e3:.2f} ms, "
        f"glue {figures.glue_us / 1e3:.2f} ms per recompute",
        *(
            []
            if host is None
            else [
                host.line(),
                f"at the yardstick's reference speed: sum "
                f"{host.at_reference(figures.sum_us) / 1e3:.2f} ms, whole "
                f"{host.at_reference(figures.whole_us) / 1e3:.2f} ms, glue "
                f"{host.at_reference(figures.glue_us) / 1e3:.2f} ms per recompute",
            ]
        ),
    ]


def _step_us(figures: FloorFigures, key: str) -> float:
    return next(step.us_per_call for step in figures.steps if step.key == key)


def _pds_lines(figures: FloorFigures) -> list[str]:
    now = next((step for step in figures.steps if step.key == "pds.fetch"), None)
    if now is None or figures.pds_before_us is None:
        return []
    before = figures.pds_before_us
    return [
        f"the PDS read through aiohttp (now) beside httpx (before issue 20): "
        f"{now.us_per_call:,.0f} / {before:,.0f} µs ({now.us_per_call / before:.2f}x); "
        "it is the reconcile pass's, one per playlist not cached, so not in the sum"
    ]


def _batched_lines(figures: FloorFigures) -> list[str]:
    batched = figures.whole_batched_us
    if batched is None:
        return []
    lines = [
        f"whole, batched ({figures.batch_size} to a recompute_batch task, as the reconcile "
        f"loop enqueues them) beside one task each: {batched / 1e3:.2f} / "
        f"{figures.whole_us / 1e3:.2f} ms per recompute ({batched / figures.whole_us:.2f}x)"
    ]
    if figures.host is not None:
        lines.append(
            f"  at the yardstick's reference speed: {figures.host.at_reference(batched) / 1e3:.2f}"
            f" ms per recompute, batched"
        )
    return lines


def _packing_lines(figures: FloorFigures) -> list[str]:
    if not figures.python_packed_us:
        return []
    parts = [
        f"{key.removeprefix('redis.')} {_step_us(figures, key):,.0f} / {python:,.0f} µs "
        f"({_step_us(figures, key) / python:.2f}x)"
        for key, python in figures.python_packed_us.items()
    ]
    return [
        "Redis, commands packed by hiredis (the service's) beside redis-py's Python packing: "
        + ", ".join(parts)
    ]
