"""the editor page's parts without a browser: who may use it (the guard), that the
production API never serves it, the event hub's bounds and redaction, and the
book that reads the demo's own frames back, and what the page gets of a track."""

from __future__ import annotations

import asyncio

import pytest

from bench.loopback.asgi import app_client
from tests.support.world import embedded_services
from worker.api.app import create_app
from worker.demo.steps import SessionStep, StepKind
from worker.demo.wire import commit_frame, list_record
from worker.identity.auth import Authenticator
from worker.processes.editor.book import PlaylistBook
from worker.processes.editor.events import HISTORY, STREAM_QUEUE, EventHub
from worker.processes.editor.guard import is_loopback, page_hosts, refusal
from worker.processes.editor.page import why_not_served
from worker.processes.editor.site import track_for_page
from worker.settings import Settings

HOSTS = page_hosts("127.0.0.1", 8000)
SAME_ORIGIN_EDIT = {
    "host": "127.0.0.1:8000",
    "origin": "http://127.0.0.1:8000",
    "content-type": "application/json",
    "sec-fetch-site": "same-origin",
}


# --- the guard ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("192.168.1.10", False),
        ("::", False),
        ("example.com", False),
        ("localhost.example.com", False),
    ],
)
def test_only_loopback_addresses_count_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_same_origin_edit_from_loopback_is_served() -> None:
    assert (
        refusal(client_host="127.0.0.1", method="POST", headers=SAME_ORIGIN_EDIT, hosts=HOSTS)
        is None
    )
    reads = {"host": "localhost:8000"}
    assert refusal(client_host="::1", method="GET", headers=reads, hosts=HOSTS) is None


@pytest.mark.parametrize(
    ("client", "method", "changed", "expected"),
    [
        ("10.0.0.2", "GET", {}, 403),  # a peer off this machine
        (None, "GET", {}, 403),
        ("127.0.0.1", "GET", {"host": "rebound.example:8000"}, 403),  # DNS rebinding
        ("127.0.0.1", "GET", {"host": "127.0.0.1:9999"}, 403),
        ("127.0.0.1", "POST", {"origin": "http://evil.example"}, 403),
        ("127.0.0.1", "POST", {"sec-fetch-site": "cross-site"}, 403),
        ("127.0.0.1", "POST", {"content-type": "text/plain"}, 415),  # a form another site can send
        ("127.0.0.1", "POST", {"content-type": "application/x-www-form-urlencoded"}, 415),
    ],
)
def test_requests_from_elsewhere_or_across_sites_are_refused(
    client: str | None, method: str, changed: dict[str, str], expected: int
) -> None:
    headers = SAME_ORIGIN_EDIT | changed
    refused = refusal(client_host=client, method=method, headers=headers, hosts=HOSTS)
    assert refused is not None
    assert refused[0] == expected


def test_the_page_is_served_only_on_loopback_with_the_demo() -> None:
    demo, session = object(), object()
    assert why_not_served(Settings(), demo, session) is None  # type: ignore[arg-type]
    outside = why_not_served(Settings(api_host="0.0.0.0"), demo, session)  # type: ignore[arg-type]
    assert outside is not None
    assert "loopback" in outside
    assert why_not_served(Settings(), demo, None) is not None  # type: ignore[arg-type]
    with_db = Settings(database_url="postgresql://db.example/plyr")
    assert why_not_served(with_db, demo, session) is not None  # type: ignore[arg-type]


async def test_the_production_api_serves_no_editor_page() -> None:
    """`plyr-recs api` serves `create_app`'s app: the page's paths are not there."""
    async with embedded_services(internal_api_token="secret") as services:
        settings = services.settings
        app = create_app(services, Authenticator.from_settings(settings))
        async with app_client(app, base_url="http://127.0.0.1:8000") as client:
            for path in (
                "/",
                "/editor/static/editor.js",
                "/editor/api/status",
                "/editor/api/events",
            ):
                response = await client.get(path)
                assert response.status_code == 404, path
            edit = await client.post(
                "/editor/api/playlists/x/tracks", json={"track_id": 1}, headers=SAME_ORIGIN_EDIT
            )
            assert edit.status_code == 404


# --- the event hub ---------------------------------------------------------------------------


async def _take(hub: EventHub, count: int, after_id: int = 0) -> list[str]:
    taken: list[str] = []
    stream = hub.stream(after_id, keepalive_seconds=5)
    async for event in stream:
        assert event is not None
        taken.append(event.text)
        if len(taken) == count:
            break
    await stream.aclose()
    return taken


async def test_events_carry_no_secret_and_a_new_stream_gets_the_history() -> None:
    hub = EventHub(secrets=("s3cret-token",))
    hub.publish(0.1, "firehose  one")
    hub.publish(0.2, "curl -H 'X-Internal-Token: s3cret-token' http://127.0.0.1:8000/")
    texts = await _take(hub, 2)
    assert texts[0] == "firehose  one"
    assert "s3cret-token" not in texts[1]
    assert await _take(hub, 1, after_id=1) == [texts[1]]  # a reconnect resumes after its id


async def test_the_history_is_bounded_and_a_slow_stream_loses_events_not_memory() -> None:
    hub = EventHub()
    for n in range(HISTORY + 10):
        hub.publish(0.0, f"worker    {n}")
    first = await _take(hub, 1)
    assert first == ["worker    10"]  # the oldest ten fell out of the history

    stream = hub.stream(after_id=HISTORY + 10, keepalive_seconds=5)  # past the history
    waiting = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)  # the stream is open and waiting on its queue
    for n in range(STREAM_QUEUE + 5):
        hub.publish(0.0, f"consumer  {n}")
    assert hub.lost == 5  # the queue holds STREAM_QUEUE; the rest are lost, and counted
    first_queued = await waiting
    assert first_queued is not None
    assert first_queued.text == "consumer  0"
    hub.close()
    rest = [event async for event in stream]
    assert len(rest) == STREAM_QUEUE - 1  # all that stayed queued, then the end
    assert hub.streams == 0


async def test_a_closed_hub_ends_its_streams() -> None:
    hub = EventHub()
    stream = hub.stream(keepalive_seconds=5)
    reading = asyncio.ensure_future(anext(stream, "ended"))
    await asyncio.sleep(0)
    hub.close()
    assert await reading == "ended"
    assert [event async for event in hub.stream()] == []


# --- the book ---------------------------------------------------------------------------------


def _step(uri: str, operation: str, items: list[tuple[str, str]], time_us: int) -> SessionStep:
    did, _, rkey = uri.removeprefix("at://").split("/")
    record = None
    if operation != "delete":
        record = list_record(
            name="road trip",
            list_type="playlist",
            items=items,
            created_at="2026-01-15T00:00:00.000Z",
        )
    frame, _ = commit_frame(
        did=did,
        time_us=time_us,
        rev="3m64hnzv42222",
        operation=operation,
        collection="fm.plyr.list",
        rkey=rkey,
        record=record,
    )
    return SessionStep(frame, time_us, StepKind.UPDATE, "", uri)


def test_the_book_keeps_each_playlists_newest_record_and_nothing_else() -> None:
    uri = "at://did:plc:6eougfhpazchdzjqplapphgj/fm.plyr.list/3m64hnzv42222"
    album = "at://did:plc:6eougfhpazchdzjqplapphgj/fm.plyr.list/3m64hnzv42522"
    track = ("at://did:plc:x66s2o4a2qpoastvjtboqbjb/fm.plyr.track/3m64hnzv42622", "bafytrack")
    book = PlaylistBook({uri: "p1"})
    book.saw(_step(uri, "create", [], 10))
    book.saw(_step(uri, "update", [track], 20))
    book.saw(_step(album, "create", [track], 30))  # not a playlist the book was told of
    record = book.get("p1")
    assert record is not None
    assert record.track_uris == (track[0],)
    assert record.owner_did == "did:plc:6eougfhpazchdzjqplapphgj"
    assert book.by_uri(uri) == record
    assert [r.playlist_id for r in book.records()] == ["p1"]
    assert book.last_time_us == 30
    book.saw(_step(uri, "delete", [], 40))
    assert book.get("p1") is None


def test_the_page_loads_nothing_from_outside() -> None:
    """every file the page references is its own (the CSP says so too, and the browser
    tests fail on any console error, a CSP violation included)."""
    import re

    from worker.processes.editor.routes import HEADERS, load_static

    files = load_static()
    references = re.findall(rb'(?:src|href)="([^"]*)"', files["index.html"])
    assert references
    assert all(ref.startswith((b"/editor/static/", b"#", b"data:")) for ref in references)
    assert b"url(" not in files["editor.css"]
    assert b"@import" not in files["editor.css"]
    assert re.search(rb"fetch\(\s*[\"'`]https?:", files["editor.js"]) is None
    assert "default-src 'none'" in HEADERS["content-security-policy"]


# --- what the page gets of an answer's track -------------------------------------------


def test_a_track_for_the_page_keeps_because_only_when_it_is_well_formed() -> None:
    track = {"id": 7, "title": "t", "artist_handle": "a", "artist_display_name": "A"}
    assert "because" not in track_for_page(track)
    explained = track_for_page(track | {"because": {"id": 3, "title": "near", "extra": 1}})
    assert explained["because"] == {"id": 3, "title": "near"}
    for odd in ({"id": "3", "title": "near"}, {"id": 3}, {"id": True, "title": "x"}, "near"):
        assert "because" not in track_for_page(track | {"because": odd}), odd
