"""the attacks of `python -m bench abuse`, each bounded in count and in time, loopback only.

every attack takes the target and its duration and returns what it sent; none
loops on anything but a deadline and a fixed count. an attack may print lines
`note ...` before its count: the table shows them. the bench runs each in a
process of its own (`python -m bench.abuse.attacks NAME PORT REDIS_URL
PATH SECONDS`, printing what it sent), so the attacker's own work does not slow
the legitimate client the bench measures.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final

from docket import Docket

from jetstream.contract import MAX_TRACK_URI_LENGTH
from jetstream.enqueue import Enqueuer
from jetstream.events import ListCommit
from jetstream.flood import FloodControl, FloodLimits

HOST: Final = "127.0.0.1"
SERVICE_DID: Final = "did:web:recs.plyr.fm"  # the default `SERVICE_DID`: the bench API's aud
ANSWER_TIMEOUT_SECONDS: Final = 5.0


@dataclass(frozen=True)
class Target:
    port: int
    redis_url: str
    legit_path: str  # a real playlist path (for requests the attacks dress up)


@dataclass(frozen=True)
class Attack:
    name: str
    rate: str  # what it sends, in words
    run: Callable[[Target, float], Coroutine[Any, Any, int]]  # -> requests or connections


async def _exchange(port: int, payload: bytes) -> bytes:
    """one request on its own connection; whatever came back before close or timeout."""
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
    except OSError:
        return b""
    try:
        with contextlib.suppress(ConnectionError):
            writer.write(payload)
            await writer.drain()
        with contextlib.suppress(ConnectionError, TimeoutError):
            return await asyncio.wait_for(reader.read(4096), ANSWER_TIMEOUT_SECONDS)
        return b""
    finally:
        writer.close()


async def _paced(
    seconds: float, per_second: float, send: Callable[[], Coroutine[Any, Any, object]]
) -> int:
    """`send` at a fixed pace for `seconds` (each in its own task), all awaited."""
    count = int(seconds * per_second)
    start = time.monotonic()
    tasks = []
    for n in range(count):
        delay = start + n / per_second - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send()))
    await asyncio.gather(*tasks, return_exceptions=True)
    return count


def _head(path: str, *headers: bytes) -> bytes:
    lines = [f"GET {path} HTTP/1.1".encode(), f"host: {HOST}".encode(), *headers]
    return b"\r\n".join([*lines, b"connection: close"]) + b"\r\n\r\n"


async def idle_connections(target: Target, seconds: float) -> int:
    """1,100 TCP connections that never send a byte, held for the phase."""
    held = []
    for _ in range(1100):
        with contextlib.suppress(OSError):
            held.append(await asyncio.open_connection(HOST, target.port))
    await asyncio.sleep(seconds)
    for _, writer in held:
        writer.close()
    return len(held)


async def slowloris(target: Target, seconds: float) -> int:
    """200 connections sending a header byte every half second, never finishing."""
    held = []
    for _ in range(200):
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection(HOST, target.port)
            writer.write(b"GET /health HTTP/1.1\r\nhost: x\r\nx-slow: ")
            held.append(writer)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for writer in held:
            if not writer.is_closing():
                writer.write(b"a")
        await asyncio.sleep(0.5)
    for writer in held:
        writer.close()
    return len(held)


async def huge_headers(target: Target, seconds: float) -> int:
    payload = _head(target.legit_path, b"x-big: " + b"a" * (1024 * 1024))
    return await _paced(seconds, 20, lambda: _exchange(target.port, payload))


async def many_headers(target: Target, seconds: float) -> int:
    payload = _head(target.legit_path, *(b"x-h%d: 1" % n for n in range(5000)))
    return await _paced(seconds, 20, lambda: _exchange(target.port, payload))


async def health_flood(target: Target, seconds: float) -> int:
    """64 keep-alive connections asking /health back to back (raw HTTP/1.1: an
    httpx pool of 64 costs the client more than the server)."""
    sent = 0
    deadline = time.monotonic() + seconds
    request = f"GET /health HTTP/1.1\r\nhost: {HOST}\r\n\r\n".encode()

    async def caller() -> None:
        nonlocal sent
        try:
            reader, writer = await asyncio.open_connection(HOST, target.port)
        except OSError:
            return
        try:
            while time.monotonic() < deadline and sent < 200_000:
                writer.write(request)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.lower().split(b"\r\n")
                    if line.startswith(b"content-length:")
                )
                await asyncio.wait_for(reader.readexactly(length), 5)
                sent += 1
        except (OSError, TimeoutError, asyncio.IncompleteReadError, StopIteration):
            pass
        finally:
            writer.close()

    await asyncio.gather(*(caller() for _ in range(64)))
    return sent


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def garbage_jwt(issuer: str) -> str:
    """well-formed and current, naming `issuer`, signed by nobody: resolution comes first."""
    now = int(time.time())
    head = {"typ": "JWT", "alg": "ES256K"}
    claims = {
        "iss": issuer,
        "aud": SERVICE_DID,
        "exp": now + 60,
        "iat": now,
        "lxm": "fm.plyr.getPlaylistRecommendations",
    }
    parts = [_b64(json.dumps(part).encode()) for part in (head, claims)]
    return ".".join([*parts, _b64(secrets.token_bytes(64))])


_BASE32: Final = "abcdefghijklmnopqrstuvwxyz234567"


def _random_plc() -> str:
    return "did:plc:" + "".join(secrets.choice(_BASE32) for _ in range(24))


def _bearer(issuer: str, path: str) -> bytes:
    return _head(path, f"authorization: Bearer {garbage_jwt(issuer)}".encode())


async def bogus_plc(target: Target, seconds: float) -> int:
    """100 tokens a second, each naming a new did:plc the directory does not know."""
    return await _paced(
        seconds, 100, lambda: _exchange(target.port, _bearer(_random_plc(), target.legit_path))
    )


async def silent_did_web(target: Target, seconds: float) -> int:
    """20 tokens a second naming did:web hosts under a domain whose DNS never answers."""

    def payload() -> bytes:
        host = f"h{secrets.token_hex(6)}.silent.example"
        return _bearer(f"did:web:{host}", target.legit_path)

    return await _paced(seconds, 20, lambda: _exchange(target.port, payload()))


async def forged_forwarded_for(target: Target, seconds: float) -> int:
    """100 bogus did:plc tokens a second, each with an `X-Forwarded-For` of its own: a
    new client per token, if anything believed it (issue 23)."""

    def payload() -> bytes:
        forged = f"x-forwarded-for: 198.51.{secrets.randbelow(256)}.{secrets.randbelow(256)}"
        return _head(
            target.legit_path,
            f"authorization: Bearer {garbage_jwt(_random_plc())}".encode(),
            forged.encode(),
        )

    return await _paced(seconds, 100, lambda: _exchange(target.port, payload()))


async def bogus_plc_behind_proxy(target: Target, seconds: float) -> int:
    """20 bogus did:plc tokens a second from one client behind the proxy (its address in
    `Fly-Client-IP`): issue 23's attacker, who at 7 a second locked most first-time JWT
    users out while everyone had the proxy's address."""

    def payload() -> bytes:
        return _head(
            target.legit_path,
            f"authorization: Bearer {garbage_jwt(_random_plc())}".encode(),
            b"fly-client-ip: 203.0.113.66",
        )

    return await _paced(seconds, 20, lambda: _exchange(target.port, payload()))


async def silent_tls_did_web(target: Target, seconds: float) -> int:
    """10 tokens a second naming did:web hosts that accept TCP and never finish TLS,
    under one domain (issue 23: 3 a second held all 8 did:web fetch slots)."""
    from bench.abuse.server import TLS_SILENT_DOMAIN

    def payload() -> bytes:
        host = f"h{secrets.token_hex(6)}.{TLS_SILENT_DOMAIN}"
        return _bearer(f"did:web:{host}", target.legit_path)

    return await _paced(seconds, 10, lambda: _exchange(target.port, payload()))


async def silent_tls_many_domains(target: Target, seconds: float) -> int:
    """the same, each token under a registrable domain of its own (`*.co.uk`): only
    the deadline and the handshake's bound hold them."""
    from bench.abuse.server import TLS_SILENT_SUFFIX

    def payload() -> bytes:
        host = f"d{secrets.token_hex(4)}.{TLS_SILENT_SUFFIX}"
        return _bearer(f"did:web:{host}", target.legit_path)

    return await _paced(seconds, 10, lambda: _exchange(target.port, payload()))


FLOOD_PLAYLISTS: Final = 600
FLOOD_TRACKS: Final = 500


async def redis_flood(target: Target, seconds: float) -> int:
    """one account's 600 playlists of 500 longest-allowed track URIs, through the
    consumer's real enqueuer and flood control into docket (nothing runs them)."""
    from worker.tasks.playlist import PLAYLIST_TASKS

    owner = "did:plc:" + "f" * 24
    prefix = f"at://did:plc:{'t' * 24}/fm.plyr.track/"
    async with Docket(name="bench-abuse", url=target.redis_url) as docket:
        enqueuer = Enqueuer(
            docket,
            tasks=PLAYLIST_TASKS,
            debounce_seconds=2.0,
            flood=FloodControl(FloodLimits()),
        )
        changes = []
        for n in range(FLOOD_PLAYLISTS):
            rkey = f"3flood{n:07d}"
            uris = tuple(
                (prefix + f"{n:04d}{i:04d}").ljust(MAX_TRACK_URI_LENGTH, "a")
                for i in range(FLOOD_TRACKS)
            )
            changes.append(
                ListCommit(
                    time_us=int(time.time() * 1e6),
                    did=owner,
                    rkey=rkey,
                    rev="3m64hnzv42222",
                    cid="bafyrei" + f"{n:052d}".replace("0", "a").replace("1", "b"),
                    playlist_uri=f"at://{owner}/fm.plyr.list/{rkey}",
                    track_uris=uris,
                )
            )
        deadline = time.monotonic() + seconds
        sent = 0
        for start in range(0, len(changes), 50):
            if time.monotonic() > deadline:
                break
            await enqueuer.enqueue(changes[start : start + 50])
            sent += len(changes[start : start + 50])
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))
    return sent


def _internal(playlist_id: str, viewer: str) -> bytes:
    from bench.api_server import INTERNAL_TOKEN

    return _head(
        f"/playlists/{playlist_id}/recommendations",
        f"x-internal-token: {INTERNAL_TOKEN}".encode(),
        f"x-viewer-did: {viewer}".encode(),
    )


async def hostile_pds(target: Target, seconds: float) -> int:
    """the attacker asks for its own 3 playlists, 2 a second in turn, whose PDS answers
    hostile records (~0.8 MB, 501 items, 100,000 nested lists): finding 1."""
    from bench.abuse.pds_world import HOSTILE_OWNER, hostile_playlists

    payloads = [_internal(p.playlist_id, HOSTILE_OWNER) for p in hostile_playlists()]
    turn = iter(range(1_000_000))
    return await _paced(
        seconds, 2, lambda: _exchange(target.port, payloads[next(turn) % len(payloads)])
    )


async def hanging_pds(target: Target, seconds: float) -> int:
    """8 accounts whose PDS never answers ask for their own playlists, 13 misses a
    second, each a playlist not asked before: finding 5."""
    from bench.abuse.pds_world import HANGING_PLAYLISTS, hanging_playlist

    playlists = [hanging_playlist(n) for n in range(HANGING_PLAYLISTS)]
    turn = iter(range(1_000_000))

    def payload() -> bytes:
        playlist = playlists[next(turn) % len(playlists)]
        return _internal(playlist.playlist_id, playlist.owner_did)

    return await _paced(seconds, 13, lambda: _exchange(target.port, payload()))


MANY_ACCOUNTS: Final = 100


async def many_dids_flood(target: Target, seconds: float) -> int:
    """100 accounts, each at the pace flood control allows (its burst of 30 at once,
    then one a second), each change a new playlist of 500 longest-allowed URIs that
    plyr.fm never ingests: finding 3. prints what the flood control shed and deferred."""
    from worker.tasks.playlist import PLAYLIST_TASKS

    limits = FloodLimits()
    prefix = f"at://did:plc:{'t' * 24}/fm.plyr.track/"
    uris = tuple((prefix + f"{i:04d}").ljust(MAX_TRACK_URI_LENGTH, "a") for i in range(500))
    owners = [
        f"did:plc:{'m' * 18}{n:06d}".replace("0", "a").replace("1", "b")
        for n in range(MANY_ACCOUNTS)
    ]
    sent = shed = deferred = 0
    async with Docket(name="bench-abuse", url=target.redis_url) as docket:
        enqueuer = Enqueuer(
            docket, tasks=PLAYLIST_TASKS, debounce_seconds=2.0, flood=FloodControl(limits)
        )
        start = time.monotonic()
        second = 0
        while time.monotonic() - start < seconds:
            # each account's allowance for this second: the burst first, then its pace
            per_account = (
                limits.burst if second == 0 else max(1, int(limits.changes_per_minute / 60))
            )
            changes = [
                ListCommit(
                    time_us=int(time.time() * 1e6),
                    did=owner,
                    rkey=f"3many{second:04d}{k:04d}",
                    rev="3m64hnzv42222",
                    cid="bafyrei" + f"{n:026d}{second:013d}{k:013d}".replace("0", "a"),
                    playlist_uri=f"at://{owner}/fm.plyr.list/3many{second:04d}{k:04d}",
                    track_uris=uris,
                )
                for n, owner in enumerate(owners)
                for k in range(per_account)
            ]
            for begin in range(0, len(changes), 100):
                report = await enqueuer.enqueue(changes[begin : begin + 100])
                shed += report.shed
                deferred += report.deferred
                sent += len(changes[begin : begin + 100])
            second += 1
            await asyncio.sleep(max(0.0, start + second - time.monotonic()))
    print(f"note admitted={sent - shed} shed={shed} deferred={deferred}", flush=True)
    return sent


async def quiet(target: Target, seconds: float) -> int:
    await asyncio.sleep(seconds)
    return 0


ATTACKS: Final = (
    Attack("quiet (baseline)", "-", quiet),
    Attack("idle connections", "1,100 held open", idle_connections),
    Attack("slowloris", "200 conns, 2 B/s each", slowloris),
    Attack("huge header (1 MiB)", "20/s", huge_headers),
    Attack("5,000 headers", "20/s", many_headers),
    Attack("/health flood", "64 clients, back to back", health_flood),
    Attack("bogus did:plc tokens", "100/s, all distinct", bogus_plc),
    Attack("did:web, silent DNS", "20/s, all distinct", silent_did_web),
    Attack("bogus did:plc, behind proxy", "20/s, one client", bogus_plc_behind_proxy),
    Attack("bogus did:plc, forged XFF", "100/s, an XFF each", forged_forwarded_for),
    Attack("did:web, TLS never ends", "10/s, one domain", silent_tls_did_web),
    Attack("did:web, TLS, many domains", "10/s, a domain each", silent_tls_many_domains),
    Attack("one DID fills Redis", "600 lists x 500 URIs", redis_flood),
    Attack("many DIDs at the allowed pace", "100 DIDs x (30 + 1/s)", many_dids_flood),
    Attack("hostile PDS answers (own lists)", "2/s, 3 records", hostile_pds),
    Attack("hanging PDS (own lists)", "13/s, 8 accounts", hanging_pds),
)


if __name__ == "__main__":
    import sys

    name, port, redis_url, path, seconds = sys.argv[1:6]
    chosen = next(attack for attack in ATTACKS if attack.run.__name__ == name)
    target = Target(int(port), redis_url, path)
    if name in ("redis_flood", "many_dids_flood"):
        import worker.tasks.playlist  # noqa: F401  (imported before "ready", not during)
    import bench.abuse.pds_world  # noqa: F401  (numpy and the bench world, likewise)

    print("ready", flush=True)  # imports done: the bench starts measuring now
    print(asyncio.run(chosen.run(target, float(seconds))))
