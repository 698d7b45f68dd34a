"""the fault scenarios, one function each, and the driver that judges them.

a scenario starts the parts it needs on a `ScenarioRun`, breaks one of them
(or delivers a faulty stream), puts it back, and returns how many faults it
injected; it sets `run.fault_ended` when the fault is over. the driver then
waits for the cache to match the fault-free reference (that moment minus the
fault's end is the time to recover), waits for docket to go idle, and judges
everything the cache holds (`reliability_check`) and what the API answered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bench.reliability.check import Verdict, final_entries, judge
from bench.reliability.delivery import replayed_twice, with_out_of_order_revisions
from bench.reliability.harness import ScenarioRun, scenario_run
from bench.reliability.stream import SyntheticStream
from bench.reliability.world import World
from jetstream.replay import ReplayFaults

Body = Callable[[ScenarioRun], Awaitable[int]]
# consumed and docket idle this long without matching: nothing left could fix the cache
NO_MORE_WORK_SECONDS = 2.0


@dataclass(frozen=True)
class Durations:
    """how long faults last (CI keeps them short, the report longer)."""

    outage: float = 1.5  # Redis or PostgreSQL down
    stall: float = 1.5
    refusing: float = 1.5
    turbopuffer: float = 1.5
    within: float = 60.0  # the most a run may take to settle


def unchanged(stream: SyntheticStream) -> SyntheticStream:
    return stream


@dataclass(frozen=True)
class Scenario:
    name: str
    body: Body
    stream: Callable[[SyntheticStream], SyntheticStream] = unchanged
    faults: Callable[[int], ReplayFaults] | None = None  # given the stream's frame count
    durable_redis: bool = False
    appendfsync: str = "always"  # with durable_redis: "everysec" loses the last second


@dataclass
class Outcome:
    scenario: str
    events: int  # frames delivered, faulty deliveries included
    faults: int
    verdict: Verdict
    server_errors: int
    api_mismatches: int
    recover_seconds: float | None  # fault end -> cache right; None: reference or never
    settle_seconds: float | None  # stream consumed -> cache right
    enqueued: int | None  # tasks the in-process consumer enqueued (None: a subprocess)
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return len(self.verdict.lost)

    @property
    def wrong(self) -> int:
        return len(self.verdict.wrong)


async def run_scenario(world: World, scenario: Scenario, durations: Durations) -> Outcome:
    """one scenario on fresh parts; the first run (no reference yet) makes the reference."""
    assert world.stream is not None
    assert world.oracle is not None
    stream = scenario.stream(world.stream)
    faults = scenario.faults(len(stream.frames)) if scenario.faults is not None else None
    async with scenario_run(
        world,
        stream,
        name=scenario.name,
        durable_redis=scenario.durable_redis,
        appendfsync=scenario.appendfsync,
        faults=faults,
    ) as run:
        run.durations = durations
        injected = await scenario.body(run) + stream.extra_frames
        settled_at, consumed_at = await _settling(run, world, durations.within)
        await run.wait_idle(durations.within)
        verdict = await judge(run.state, stream, world.reference, world.oracle)
        mismatches = await run.probe.final_pass(run.state)
        is_reference = world.reference is None
        if is_reference:
            finals = await final_entries(run.state, stream)
            # a final version missing here shows in the verdict (lost), which the
            # callers check; the faulted runs are then held to what is there
            world.reference = {key: value for key, value in finals.items() if value}
        recover_seconds = settle_seconds = None
        if settled_at is not None:
            settle_seconds = max(0.0, settled_at - consumed_at)
            if not is_reference:
                fault_ended = run.fault_ended if run.fault_ended is not None else consumed_at
                recover_seconds = max(0.0, settled_at - fault_ended)
        stats = run.consumer.stats if run.consumer is not None else None
        return Outcome(
            scenario.name,
            len(stream.frames),
            injected,
            verdict,
            run.probe.server_errors,
            len(mismatches),
            recover_seconds,
            settle_seconds,
            stats.recomputes + stats.forgets if stats is not None else None,
            dict(run.probe.statuses),
        )


async def _settling(run: ScenarioRun, world: World, within: float) -> tuple[float | None, float]:
    """(when the cache first was right, when the stream was consumed). right: it matches
    the reference, or, for the reference run itself, docket has nothing left to do.
    None when nothing left could make it right (consumed, idle, still different)."""
    deadline = time.monotonic() + within
    consumed_at: float | None = None
    idle_since: float | None = None
    while time.monotonic() < deadline:
        run.surface_crashes()
        if consumed_at is None and await run.consumed():
            consumed_at = time.monotonic()
        if consumed_at is not None:
            if world.reference is not None and await run.matches(world.reference):
                return time.monotonic(), consumed_at
            if not await run.idle():
                idle_since = None
            elif idle_since is None:
                idle_since = time.monotonic()
            elif world.reference is None:
                return idle_since, consumed_at
            elif time.monotonic() - idle_since > NO_MORE_WORK_SECONDS:
                return None, consumed_at
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{run.stream_name}: not settled within {within}s")


# --- the scenarios -------------------------------------------------------------------


async def _start_all(run: ScenarioRun) -> None:
    await run.start_consumer()
    await run.start_worker()


async def fault_free(run: ScenarioRun) -> int:
    await _start_all(run)
    return 0


async def websocket_drops(run: ScenarioRun) -> int:
    """the host cuts the TCP connection every N frames (armed by `faults`)."""
    await _start_all(run)
    await run.wait_consumed(run.durations.within)
    run.fault_ended = time.monotonic()
    return len(run.replay.connections) - 1


async def stall(run: ScenarioRun) -> int:
    """the host stops sending a third of the way through, then carries on."""
    await _start_all(run)
    await asyncio.wait_for(run.replay.faults.stalled.wait(), run.durations.within)
    await asyncio.sleep(run.durations.stall)
    run.replay.faults.resume()
    run.fault_ended = time.monotonic()
    return 1


async def refused(run: ScenarioRun) -> int:
    """the connection drops a third of the way through and every handshake is refused
    (HTTP 503) for a while."""
    await _start_all(run)
    drop_at = run.replay.faults.drop_after[0] if run.replay.faults.drop_after else 0
    await run.wait_frames_sent(max(0, drop_at - 10))
    armed = 10**6
    run.replay.faults.refuse_connections = armed
    await run.wait_frames_sent(drop_at)
    await asyncio.sleep(run.durations.refusing)
    refusals = armed - run.replay.faults.refuse_connections
    run.replay.faults.refuse_connections = 0
    run.fault_ended = time.monotonic()
    return 1 + refusals


async def redis_killed(run: ScenarioRun) -> int:
    """SIGKILL the one Redis (cache, consumer state, docket) mid-stream, restart it.

    late enough (60%) that some playlists have had their last edit and their final
    recompute: without its data Redis comes back without their answers."""
    await _start_all(run)
    await run.wait_frames_sent(len(run.stream.frames) * 3 // 5)
    await asyncio.to_thread(run.redis_server.stop, kill=True)
    await asyncio.sleep(run.durations.outage)
    await asyncio.to_thread(run.redis_server.start)
    run.fault_ended = time.monotonic()
    return 1


async def postgres_down(run: ScenarioRun) -> int:
    """plyr.fm's database shuts down mid-stream for a while."""
    await _start_all(run)
    await run.wait_frames_sent(len(run.stream.frames) * 2 // 5)
    await asyncio.to_thread(run.world.postgres.stop)
    await asyncio.sleep(run.durations.outage)
    await asyncio.to_thread(run.world.postgres.start)
    run.fault_ended = time.monotonic()
    return 1


def turbopuffer_fault(*, status: int | None = None, delay: float | None = None) -> Body:
    """every turbopuffer request answered `status` (or stalled `delay` s) for a while."""

    async def body(run: ScenarioRun) -> int:
        await _start_all(run)
        await run.wait_frames_sent(len(run.stream.frames) * 3 // 10)
        server = run.world.turbopuffer
        await server.reset()
        if status is not None:
            await server.fail_next(status, times=10**6)
        else:
            await server.delay_next(delay or 0.0, times=10**6)
        await asyncio.sleep(run.durations.turbopuffer)
        answered = await server.request_count()
        await server.reset()
        run.fault_ended = time.monotonic()
        return answered

    return body


async def worker_killed(run: ScenarioRun) -> int:
    """a `plyr-recs worker` process is SIGKILLed with tasks in hand; another worker
    takes them over after WORKER_REDELIVERY_SECONDS."""
    await run.start_consumer()
    process = await run.spawn("worker")
    await run.wait_frames_sent(len(run.stream.frames) // 2)
    server = run.world.turbopuffer
    await server.delay_next(30.0, times=10**6)  # whatever it starts now hangs mid-task
    in_hand = await run.wait_tasks_running(run.durations.within)
    await asyncio.sleep(0.2)  # let the claimed tasks reach turbopuffer
    in_hand = max(in_hand, await run.tasks_running())
    await run.kill(process)
    await server.reset()
    run.fault_ended = time.monotonic()
    await run.start_worker()
    return in_hand


async def consumer_killed(run: ScenarioRun) -> int:
    """a `plyr-recs jetstream` process is SIGKILLed mid-stream and started again: it
    resumes from the cursor it stored."""
    await run.start_worker()
    first = await run.spawn("jetstream")
    await run.wait_frames_sent(len(run.stream.frames) // 2)
    await run.kill(first)
    await asyncio.sleep(0.3)
    await run.spawn("jetstream")
    run.fault_ended = time.monotonic()
    return 1


def scenarios(frames: int) -> list[Scenario]:
    """every scenario, the fault-free reference first; `frames` sizes the drops."""
    # a reconnect rewinds JETSTREAM_CURSOR_REWIND_SECONDS (50 frames of this stream):
    # drops must come further apart than that or no connection gets past its rewind
    drop_every = max(100, frames // 10)
    return [
        Scenario("none", fault_free),
        Scenario(
            f"websocket drops every {drop_every} frames",
            websocket_drops,
            faults=lambda n: ReplayFaults(drop_after=[drop_every] * 10_000),
        ),
        Scenario("websocket stalls", stall, faults=lambda n: ReplayFaults(stall_after=n // 3)),
        Scenario(
            "connections refused for a while",
            refused,
            faults=lambda n: ReplayFaults(drop_after=[n // 3]),
        ),
        Scenario("redis killed, data kept (AOF)", redis_killed, durable_redis=True),
        Scenario(
            "redis killed, last second lost (AOF everysec)",
            redis_killed,
            durable_redis=True,
            appendfsync="everysec",
        ),
        Scenario("redis killed, data lost", redis_killed),
        Scenario("postgresql down", postgres_down),
        Scenario("turbopuffer 429", turbopuffer_fault(status=429)),
        Scenario("turbopuffer 500", turbopuffer_fault(status=500)),
        Scenario("turbopuffer slow (> timeout)", turbopuffer_fault(delay=1.5)),
        Scenario("worker SIGKILLed mid-task", worker_killed),
        Scenario("consumer SIGKILLed, restarted", consumer_killed),
        Scenario("same capture replayed twice", fault_free, stream=replayed_twice),
        Scenario(
            "revisions out of order",
            fault_free,
            stream=lambda stream: with_out_of_order_revisions(stream, every=7),
        ),
    ]
