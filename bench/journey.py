"""`python -m bench journey`: what an operator and a user see, end to end, on loopback.

1. deploy into a plyr.fm that already has playlists (an empty Redis, nothing on the
   firehose): seconds until 50 % / 100 % of the live playlists are cached; then editor
   opens spread over a minute: share served from the cache, p50/p99 latency.
2. with `CACHE_TTL_SECONDS=60` (a second deployment), over three periods: the share of
   opens of active playlists that hit (the goal is all of them), and of inactive ones.
3. the edit flow as the frontend drives it: "+" on a recommended track (a new record on
   the PDS, plyr.fm's row updated, the commit on Jetstream), the refetch 200 ms later;
   beside it, in the same run, the seed's path: the same edit with nothing precomputed,
   so the refetch computes inline.
4. healing: versions only plyr.fm's database knows (no firehose event): seconds until
   cached, and the `missed_by_firehose` count.

every figure depends on this machine, the stand-ins' latencies (PDS 30-150 ms,
turbopuffer 10-30 ms per request) and the settings printed with it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

import orjson
from rich.console import Console
from rich.table import Table

from bench.api import Connection, request_bytes
from bench.journey_servers import is_deleted
from bench.journey_stack import INTERNAL_TOKEN, JourneyOptions, JourneyStack
from bench.load.world import KnownPlaylist, WorldSpec
from engine.cache import cache_key
from worker.demo.wire import cid, list_commit, tid
from worker.store.reconcile_state import ReconcileState, reconcile_totals

SOURCE: Final = b"x-recommendations-source: "
REFETCH_DELAY_SECONDS: Final = 0.2
# between the editor showing its recommendations and the person pressing "+" on one:
# a person reads the cards first (the speculative answers are computed meanwhile)
THINK_SECONDS: Final = 1.0
WARM_TIMEOUT_SECONDS: Final = 600.0
REV_BASE: Final = 1 << 41  # above any rev the world's records could carry


@dataclass
class Opens:
    latencies_ms: list[float] = field(default_factory=list)
    sources: Counter[str] = field(default_factory=Counter)

    def add(self, latency_ms: float, source: str) -> None:
        self.latencies_ms.append(latency_ms)
        self.sources[source] += 1

    @property
    def hit_share(self) -> float:
        total = sum(self.sources.values())
        return self.sources["hit"] / total if total else 0.0

    def share(self, source: str) -> float:
        total = sum(self.sources.values())
        return self.sources[source] / total if total else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def request_for(playlist: KnownPlaylist) -> bytes:
    headers = {"x-internal-token": INTERNAL_TOKEN, "x-viewer-did": playlist.owner_did}
    return request_bytes(f"/playlists/{playlist.playlist_id}/recommendations?limit=3", headers)


def source_of(head: bytes) -> str:
    start = head.find(SOURCE)
    if start < 0:
        return "none"
    start += len(SOURCE)
    return head[start : head.index(b"\r\n", start)].decode()


async def open_once(port: int, playlist: KnownPlaylist) -> tuple[float, str, bytes]:
    connection = await Connection.open(port)
    try:
        started = time.perf_counter()
        _, head, body = await connection.get(request_for(playlist))
        return (time.perf_counter() - started) * 1000, source_of(head), body
    finally:
        await connection.close()


async def paced_opens(
    port: int, playlists: Sequence[KnownPlaylist], *, count: int, seconds: float, seed: int
) -> Opens:
    """`count` opens at even intervals over `seconds`, each of a random playlist, over
    a pool of keep-alive connections (a browser's), latency from send to answer."""
    rng = random.Random(seed)
    chosen = [rng.choice(playlists) for _ in range(count)]
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(8):
        pool.put_nowait(await Connection.open(port))
    opens = Opens()
    start = time.perf_counter()

    async def one(index: int, playlist: KnownPlaylist) -> None:
        await asyncio.sleep(max(0.0, start + index * seconds / count - time.perf_counter()))
        connection = await pool.get()
        began = time.perf_counter()
        _, head, _ = await connection.get(request_for(playlist))
        opens.add((time.perf_counter() - began) * 1000, source_of(head))
        pool.put_nowait(connection)

    await asyncio.gather(*(one(i, p) for i, p in enumerate(chosen)))
    while not pool.empty():
        await pool.get_nowait().close()
    return opens


async def cached_count(stack: JourneyStack, versions: dict[str, str]) -> int:
    assert stack.redis is not None
    keys = [cache_key(pid, token) for pid, token in versions.items()]
    found = 0
    for start in range(0, len(keys), 1000):
        found += sum(1 for v in await stack.redis.mget(keys[start : start + 1000]) if v)
    return found


async def wait_warm(stack: JourneyStack, versions: dict[str, str]) -> tuple[float, float]:
    """seconds from the service's start until 50 % and 100 % of `versions` are cached."""
    half = full = None
    while full is None:
        stack.check_alive()
        found = await cached_count(stack, versions)
        elapsed = time.monotonic() - stack.service_started_at
        if half is None and found * 2 >= len(versions):
            half = elapsed
        if found >= len(versions):
            full = elapsed
        elif elapsed > WARM_TIMEOUT_SECONDS:
            raise TimeoutError(f"{found} of {len(versions)} warm after {elapsed:.0f}s")
        await asyncio.sleep(0.2)
    assert half is not None
    return half, full


async def first_pass_done(stack: JourneyStack) -> float:
    assert stack.redis is not None
    state = ReconcileState(stack.redis, run="loop", position_ttl_seconds=1)
    while await state.last() is None:
        stack.check_alive()
        if time.monotonic() - stack.service_started_at > WARM_TIMEOUT_SECONDS:
            raise TimeoutError("no reconcile pass finished")
        await asyncio.sleep(0.5)
    return time.monotonic() - stack.service_started_at


async def wait_queue_empty(stack: JourneyStack) -> None:
    """until docket's stream holds no due task (the pass's recomputes have run)."""
    assert stack.redis is not None
    while True:
        pending = await stack.redis.xlen(f"{stack.docket_name}:stream")
        if not pending or time.monotonic() - stack.service_started_at > WARM_TIMEOUT_SECONDS:
            return
        await asyncio.sleep(0.5)


class Editor:
    """the frontend's "+": the playlist plus one recommended track, as plyr.fm saves it."""

    def __init__(self, stack: JourneyStack, world: WorldSpec) -> None:
        self.stack = stack
        self.world = world
        self.tracks: dict[str, list[int]] = {p.playlist_id: list(p.track_ids) for p in world.known}
        self.edits = 0

    async def plus(
        self,
        playlist: KnownPlaylist,
        *,
        firehose: bool,
        ingest: bool = True,
        shown_track: bool = True,
        think_seconds: float = 0.0,
    ) -> str:
        """`shown_track`: "+" on a track the editor showed (what a person does); else a
        track it did not show, so nothing was precomputed for it (the seed's path)."""
        _, _, body = await open_once(self.stack.api_port, playlist)  # what the editor shows
        await asyncio.sleep(think_seconds)
        shown = [t["id"] for t in orjson.loads(body)["tracks"]]
        added = (
            next((t for t in shown if t not in self.tracks[playlist.playlist_id]), None)
            if shown_track
            else None
        )
        if added is None:
            added = max(self.tracks[playlist.playlist_id]) + self.world.regions
        tracks = [*self.tracks[playlist.playlist_id], added]
        self.tracks[playlist.playlist_id] = tracks
        self.edits += 1
        new_cid = cid(f"journey:{playlist.playlist_id}:{self.edits}")
        await self.stack.write_record(playlist.record_uri, new_cid, tracks)
        if firehose:
            frame = list_commit(
                owner=playlist.owner_did,
                rkey=playlist.rkey,
                rev=tid(REV_BASE + self.edits),
                record_cid=new_cid,
                tracks=[self.world.track_uri(t) for t in tracks],
                time_us=time.time_ns() // 1000,
            )
            self.stack.replay.append([frame])
        if ingest:
            await self.stack.ingest(playlist.playlist_id, new_cid)
        return new_cid


async def edit_flow(
    stack: JourneyStack,
    editor: Editor,
    playlists: Sequence[KnownPlaylist],
    *,
    firehose: bool,
    pds_reads: Opens | None = None,
) -> Opens:
    """`pds_reads` (if given) gets one timed read of each new record from its owner's
    PDS right after the refetch: the floor of a refetch that reads the record."""
    opens = Opens()
    for playlist in playlists:
        await editor.plus(
            playlist, firehose=firehose, shown_track=firehose, think_seconds=THINK_SECONDS
        )
        await asyncio.sleep(REFETCH_DELAY_SECONDS)
        latency, source, _ = await open_once(stack.api_port, playlist)
        opens.add(latency, source)
        if pds_reads is not None:
            read = await stack.time_pds_read(playlist.record_uri, playlist.owner_did)
            pds_reads.add(read, "pds")
    return opens


async def healing(
    stack: JourneyStack, editor: Editor, playlists: Sequence[KnownPlaylist]
) -> tuple[float, int]:
    """versions written to the PDS and plyr.fm's database only; seconds until all cached."""
    versions = {}
    for playlist in playlists:
        versions[playlist.playlist_id] = await editor.plus(playlist, firehose=False)
    started = time.monotonic()
    while await cached_count(stack, versions) < len(versions):
        stack.check_alive()
        if time.monotonic() - started > WARM_TIMEOUT_SECONDS:
            raise TimeoutError("healing did not finish")
        await asyncio.sleep(0.2)
    seconds = time.monotonic() - started
    assert stack.redis is not None
    await asyncio.sleep(1.0)
    return seconds, (await reconcile_totals(stack.redis))["missed_by_firehose"]


def live_of(world: WorldSpec) -> list[KnownPlaylist]:
    return [p for p in world.known if not is_deleted(p)]


def table(title: str, rows: Sequence[tuple[str, str]], caption: str) -> Table:
    out = Table(title=title, caption=caption)
    out.add_column("measure")
    out.add_column("value", justify="right")
    for name, value in rows:
        out.add_row(name, value)
    return out


def cpu_table(stack: JourneyStack, *, recomputes: int) -> Table:
    """CPU seconds each process spent so far (read from /proc), from start and since
    every process answered (start-up apart), the service's apart from the stand-ins'
    (they share this machine): the cold deploy's cost."""
    total = {name: process.cpu_seconds() for name, process in stack.processes.items()}
    since = {name: value - stack.cpu_at_ready.get(name, 0.0) for name, value in total.items()}
    workers = sum(v for name, v in since.items() if name.startswith("worker"))
    stand_ins = sum(v for name, v in since.items() if name.startswith(("pds", "turbopuffer")))
    rows = [(name, f"{total[name]:.1f} / {since[name]:.1f}") for name in sorted(total)]
    rows += [
        ("workers, all (since ready)", f"{workers:.1f}"),
        ("stand-ins (PDS, turbopuffer), not the service", f"{stand_ins:.1f}"),
        ("worker CPU per recompute, ms", f"{1e3 * workers / max(recomputes, 1):.1f}"),
        # the stand-ins serve the same requests in every run: this ratio nets out the
        # machine's speed, which was seen to change twofold between runs (`bench scale`)
        ("workers' CPU per stand-ins' CPU", f"{workers / stand_ins:.2f}" if stand_ins else "-"),
    ]
    return table(
        "1c. CPU seconds per process during the cold deploy (total / since ready)",
        rows,
        f"{recomputes} versions warmed; redis-server, PostgreSQL and this driver not counted",
    )


def opens_rows(opens: Opens) -> list[tuple[str, str]]:
    sources = ", ".join(f"{k} {v}" for k, v in opens.sources.most_common())
    return [
        ("opens", str(len(opens.latencies_ms))),
        ("served from the cache", f"{opens.hit_share:.1%}"),
        ("served speculative", f"{opens.share('speculative'):.1%}"),
        ("p50 ms", f"{opens.percentile(0.5):.1f}"),
        ("p99 ms", f"{opens.percentile(0.99):.1f}"),
        ("sources", sources),
    ]


async def deploy_run(console: Console, options: JourneyOptions, opens: int, edits: int) -> None:
    world = options.world
    live = live_of(world)
    versions = {p.playlist_id: p.first_cid for p in live}
    async with JourneyStack(options) as stack:
        half, full = await wait_warm(stack, versions)
        console.print(cpu_table(stack, recomputes=len(versions)))
        deleted = [p for p in world.known if is_deleted(p)]
        stray = await cached_count(stack, {p.playlist_id: p.first_cid for p in deleted})
        console.print(
            table(
                "1a. cold deploy",
                [
                    ("live playlists", str(len(live))),
                    ("deleted (in the DB, not on the PDS)", str(len(deleted))),
                    ("50 % warm, s after start", f"{half:.1f}"),
                    ("100 % warm, s after start", f"{full:.1f}"),
                    ("deleted ones cached", str(stray)),
                ],
                f"2 workers x {options.worker_concurrency}, {options.pds_hosts} PDS hosts, "
                + ", ".join(f"{k}={v}" for k, v in options.extra_env.items()),
            )
        )
        rng = random.Random(world.seed)
        order = rng.sample(live, len(live))
        flow, inline, healed = order[:edits], order[edits : 2 * edits], order[2 * edits : 3 * edits]
        untouched = order[3 * edits :]
        opened = await paced_opens(stack.api_port, untouched, count=opens, seconds=60.0, seed=1)
        console.print(
            table("1b. editor opens over a minute", opens_rows(opened), "after 100 % warm")
        )
        editor = Editor(stack, world)
        seed_path = await edit_flow(stack, editor, inline, firehose=False)
        pds_reads = Opens()
        plus_path = await edit_flow(stack, editor, flow, firehose=True, pds_reads=pds_reads)
        console.print(
            table(
                "3a. the seed's path: refetch computes inline",
                opens_rows(seed_path),
                "edit on PDS + DB, no firehose, a track the editor did not show (nothing "
                "precomputed for it), refetch 200 ms later",
            )
        )
        console.print(
            table(
                "3b. the edit flow: + then refetch 200 ms later",
                opens_rows(plus_path),
                "+ on a shown track a second after the open (PDS + DB + Jetstream "
                "commit); speculative = served from the answer computed before the edit",
            )
        )
        ratio = plus_path.percentile(0.5) / max(seed_path.percentile(0.5), 1e-9)
        console.print(f"edit flow / seed path, p50: {ratio:.2f}")
        # the stand-in gives a record version one latency, so each flow's own PDS
        # read is its refetch's PDS wait: the difference is what the service added
        added = Opens()
        for total, floor in zip(plus_path.latencies_ms, pds_reads.latencies_ms, strict=True):
            added.add(total - floor, "added")
        console.print(
            "the owner's PDS read alone (getRecord of the same record version from this "
            f"driver, right after each refetch): p50 {pds_reads.percentile(0.5):.1f} ms, "
            f"p99 {pds_reads.percentile(0.99):.1f} ms; the refetch's p50 is "
            f"{plus_path.percentile(0.5) - pds_reads.percentile(0.5):+.1f} ms over it, its "
            f"p99 {plus_path.percentile(0.99) - pds_reads.percentile(0.99):+.1f} ms; per "
            f"flow, the service added p50 {added.percentile(0.5):+.1f} ms, p99 "
            f"{added.percentile(0.99):+.1f} ms to its PDS read"
        )
        seconds, missed = await healing(stack, editor, healed)
        console.print(
            table(
                "4. healing",
                [
                    ("versions only the DB knows", str(len(healed))),
                    ("s until all cached", f"{seconds:.1f}"),
                    ("missed_by_firehose counted", str(missed)),
                ],
                "RECONCILE_INTERVAL_SECONDS="
                + options.extra_env.get("RECONCILE_INTERVAL_SECONDS", "300"),
            )
        )


async def ttl_run(console: Console, options: JourneyOptions, active: int) -> None:
    world = options.world
    live = live_of(world)
    async with JourneyStack(options) as stack:
        # with a 60 s TTL the inactive entries may lapse before the last one is warm:
        # wait for the loop's first pass to finish, and for what it enqueued to run
        full = await first_pass_done(stack)
        await wait_queue_empty(stack)
        rng = random.Random(world.seed + 1)
        order = rng.sample(live, len(live))
        hot, cold = order[:active], order[active:]
        for playlist in hot:  # a first view marks each active
            await open_once(stack.api_port, playlist)
        ttl = float(options.extra_env["CACHE_TTL_SECONDS"])
        hot_opens = await paced_opens(
            stack.api_port, hot, count=int(3 * ttl * 5), seconds=3 * ttl, seed=2
        )
        cold_opens = await paced_opens(stack.api_port, cold, count=200, seconds=10.0, seed=3)
        console.print(
            table(
                "2. CACHE_TTL_SECONDS=60 over three periods",
                [
                    ("first pass finished, s after start", f"{full:.1f}"),
                    ("active playlists", str(len(hot))),
                    *[(f"active: {k}", v) for k, v in opens_rows(hot_opens)],
                    ("inactive: served from the cache", f"{cold_opens.hit_share:.1%}"),
                ],
                ", ".join(f"{k}={v}" for k, v in options.extra_env.items()),
            )
        )


def main(
    *,
    playlists: int,
    opens: int,
    edits: int,
    active: int,
    skip_ttl: bool,
    skip_deploy: bool = False,
    pds_hosts: int = 8,
) -> None:
    console = Console()
    world = WorldSpec(playlists=playlists)
    base_env = {"RECONCILE_INTERVAL_SECONDS": "30", "RECONCILE_HEAL_GRACE_SECONDS": "5"}
    if not skip_deploy:
        options = JourneyOptions(world=world, extra_env=base_env, pds_hosts=pds_hosts)
        asyncio.run(deploy_run(console, options, opens, edits))
    if not skip_ttl:
        ttl_env = {
            "CACHE_TTL_SECONDS": "60",
            "RECONCILE_INTERVAL_SECONDS": "10",
            "REFRESH_MARGIN_SECONDS": "15",
        }
        options = JourneyOptions(world=world, extra_env=ttl_env, pds_hosts=pds_hosts)
        asyncio.run(ttl_run(console, options, active))
