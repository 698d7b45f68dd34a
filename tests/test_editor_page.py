"""the playlist editor page of `plyr-recs run`, in a real browser.

`plyr-recs run` starts as a person starts it (a subprocess in a fresh directory,
a small demo), Debian's chromium opens the page through Playwright, and the
page is used as plyr.fm's editor is: open a playlist, enter edit mode, see the
recommended cards, press "+". the edit must travel the real path (a new list
record version on the replay firehose, the consumer, the worker, the cache)
and the recommendations asked again must be for the new version. "more" pages
through the cached answer, a long playlist's recommended section comes into view, a
phone's controls are finger-sized, counts are said in words that agree with them,
`because` shows on a card, and while the session replays the page says why "+" is
closed.

`EDITOR_SCREENSHOT=path` writes the screenshot the README shows (see
scripts/editor-screenshot); without it the screenshot goes to a temp dir.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.editor_run import CHROMIUM, RunningDemo, chromium, running_demo

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(120),
    # CI (scripts/check installs chromium) fails rather than skips without it
    pytest.mark.skipif(
        not CHROMIUM.exists() and not os.environ.get("CI"),
        reason="needs Debian's chromium: scripts/check installs it",
    ),
]
WAIT_MS = 20_000  # the longest any step may take on a loaded machine (not a speed claim)
SCREEN = {"width": 1360, "height": 900}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDemo]:
    with running_demo(tmp_path_factory.mktemp("editor-run")) as running:
        yield running
        # what the page measured over the module (`pytest -s` shows it; the README cites it)
        answers = running.api("/status")["answers"]
        print(f"\nthe page's answers by source, all tests: {answers}")
        # every demo owner has the page's PDS: a miss is computed, never "no PDS known"
        assert "no_pds" not in answers, answers


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    profile = tmp_path_factory.mktemp("chromium-profile")
    # reduced motion: the cards' opacity transition is off, so computed styles are final
    with chromium(profile, viewport=SCREEN, reduced_motion="reduce") as context:
        yield context


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    opened = browser.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    yield opened
    opened.close()
    assert errors == [], errors  # no script error, no CSP violation, nothing failed to load


def _playlist(demo: RunningDemo, *, no_embeddings: bool) -> dict[str, Any]:
    """a playlist to open: the one of fresh uploads, or the smallest with 2+ tracks (so
    the whole editor fits in the screenshot)."""
    listed = demo.api("/playlists")
    if no_embeddings:
        return next(p for p in listed if p["no_embeddings"])
    candidates = [p for p in listed if not p["no_embeddings"] and p["track_count"] >= 2]
    return min(candidates, key=lambda p: p["track_count"])


def _open(page: Any, demo: RunningDemo, playlist: dict[str, Any]) -> None:
    from playwright.sync_api import expect

    page.goto(f"{demo.base_url}/")
    page.locator(f'.playlist-link[data-playlist-id="{playlist["id"]}"]').click()
    expect(page.locator("#playlist-name")).to_have_text(playlist["name"])
    expect(page.locator("#tracks .track")).to_have_count(playlist["track_count"])


def _style(locator: Any) -> tuple[str, str]:
    found = locator.evaluate(
        "node => { const s = getComputedStyle(node); return [s.borderTopStyle, s.opacity]; }"
    )
    return found[0], found[1]


def test_plus_adds_the_track_through_the_firehose_and_the_recommendations_are_asked_again(
    page: Any, demo: RunningDemo, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    playlist = _playlist(demo, no_embeddings=False)
    _open(page, demo, playlist)
    old_cid = page.locator("#playlist").get_attribute("data-cid")
    assert old_cid == playlist["cid"]

    page.get_by_role("button", name="edit").click()
    cards = page.locator(".recommendation-item")
    expect(cards.first).to_be_visible(timeout=WAIT_MS)
    assert page.locator(".recommendations-title").inner_text() == "recommended"
    first = cards.first
    assert _style(first) == ("dashed", "0.7")
    added_id = int(first.get_attribute("data-track-id"))
    title = first.locator(".title").inner_text()
    in_playlist = page.locator("#tracks .track").evaluate_all(
        "rows => rows.map(row => Number(row.dataset.trackId))"
    )
    assert added_id not in in_playlist

    # keyboard: the "+" buttons come right after "add tracks" in the focus order, and a
    # focused card is at full opacity, as a hovered one is
    page.locator("#add-tracks").focus()
    page.keyboard.press("Tab")
    plus = page.get_by_role("button", name=f"add {title} to playlist")
    expect(plus).to_be_focused()
    assert _style(first)[1] == "1"
    page.keyboard.press("Enter")

    # the track moved into the playlist, in a new version of its record
    rows = page.locator("#tracks .track")
    expect(rows).to_have_count(playlist["track_count"] + 1, timeout=WAIT_MS)
    expect(rows.last).to_have_attribute("data-track-id", str(added_id))
    expect(page.locator("#playlist")).not_to_have_attribute("data-cid", old_cid, timeout=WAIT_MS)
    new_cid = page.locator("#playlist").get_attribute("data-cid")

    # ...which went the firehose path: queued by the consumer, handled by the worker,
    # in the cache (the page shows it; the run's own state says the same)
    expect(page.locator("#pipeline")).to_have_attribute("data-complete", "true", timeout=WAIT_MS)
    detail = demo.api(f"/playlists/{playlist['id']}")
    assert detail["cid"] == new_cid
    assert detail["pipeline"]["queued_cid"] == new_cid
    assert detail["pipeline"]["worker_cid"] == new_cid
    assert detail["pipeline"]["worker_outcome"] in {"computed", "already_cached"}
    assert detail["pipeline"]["cached"] is True

    # the recommendations were asked again, for the new version, and exclude the track
    newest = page.locator("#answers li").first
    expect(newest).to_have_attribute("data-cid", new_cid, timeout=WAIT_MS)
    expect(cards.first).to_be_visible(timeout=WAIT_MS)
    shown = cards.evaluate_all("nodes => nodes.map(node => Number(node.dataset.trackId))")
    assert shown
    assert added_id not in shown
    assert page.locator(".answer-meta").inner_text().endswith(" ms")

    # the live events panel streams what the terminal prints, without the run's token
    events = page.locator("#events li")
    expect(events.filter(has_text=f'added "{title}"')).to_have_count(1, timeout=WAIT_MS)
    assert demo.token not in page.locator("#events").inner_text()
    assert demo.token not in page.content()

    screenshot = os.environ.get("EDITOR_SCREENSHOT") or tmp_path / "editor.png"
    page.screenshot(path=screenshot, full_page=True)
    status = demo.api("/status")
    print(f"\nthe page's answers by source: {status['answers']}")  # for the README's figure

    # leaving edit mode clears them
    page.get_by_role("button", name="done").click()
    expect(page.locator(".recommendations-section")).to_have_count(0)


def test_a_playlist_without_embeddings_shows_no_recommended_section(
    page: Any, demo: RunningDemo
) -> None:
    from playwright.sync_api import expect

    playlist = _playlist(demo, no_embeddings=True)
    _open(page, demo, playlist)
    page.get_by_role("button", name="edit").click()
    answer = page.locator("#answers li").first
    expect(answer).to_have_attribute("data-available", "false", timeout=WAIT_MS)
    expect(page.locator(".recommendations-section")).to_have_count(0)
    expect(page.locator("#add-tracks")).to_be_visible()  # the editor itself is there


def test_the_page_reflows_on_a_narrow_screen(page: Any, demo: RunningDemo) -> None:
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 375, "height": 740})
    playlist = _playlist(demo, no_embeddings=False)
    _open(page, demo, playlist)
    page.get_by_role("button", name="edit").click()
    expect(page.locator(".recommendation-item").first).to_be_visible(timeout=WAIT_MS)
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1]  # nothing wider than the screen: no sideways scrolling
    box = page.locator(".rec-add-btn").first.bounding_box()
    assert box is not None
    assert box["x"] + box["width"] <= 375


def _longest(demo: RunningDemo) -> dict[str, Any]:
    listed = [p for p in demo.api("/playlists") if not p["no_embeddings"]]
    return max(listed, key=lambda p: p["track_count"])


def _card_ids(page: Any) -> list[int]:
    return [
        int(i)
        for i in page.locator(".recommendation-item").evaluate_all(
            "nodes => nodes.map(node => node.dataset.trackId)"
        )
    ]


def test_more_shows_the_next_tracks_of_the_cached_answer_until_there_are_none(
    page: Any, demo: RunningDemo
) -> None:
    from playwright.sync_api import expect

    playlist = _longest(demo)
    _open(page, demo, playlist)
    page.get_by_role("button", name="edit").click()
    cards = page.locator(".recommendation-item")
    expect(cards).to_have_count(3, timeout=WAIT_MS)
    more = page.get_by_role("button", name="more", exact=True)

    # the whole answer as the site reads it, three at a time from the same offsets
    expected: list[int] = []
    offset, pages = 0, 0
    while True:
        answer = demo.api(f"/playlists/{playlist['id']}/recommendations?offset={offset}")
        expected += [track["id"] for track in answer["tracks"]]
        pages += 1
        if not answer["more"]:
            break
        offset += 3
    assert len(expected) > 9  # the cache holds far more than the three shown at first
    assert len(set(expected)) == len(expected)

    for shown in range(1, pages):
        expect(more).to_be_visible()
        more.focus()
        page.keyboard.press("Enter")
        expect(cards).to_have_count(min(3 * (shown + 1), len(expected)), timeout=WAIT_MS)
        # the focus moved on to the first new card's "+", and those asks were cache reads
        first_new = cards.nth(3 * shown)
        expect(first_new.locator(".rec-add-btn")).to_be_focused()
        expect(page.locator("#answers li").first).to_have_attribute("data-source", "hit")
    assert _card_ids(page) == expected
    expect(more).to_have_count(0)  # nothing more: the control is gone


def test_editing_a_long_playlist_brings_the_recommended_section_into_view(
    page: Any, demo: RunningDemo
) -> None:
    from playwright.sync_api import expect

    playlist = _longest(demo)
    assert playlist["track_count"] >= 30  # the demo's big playlist: far longer than a screen
    _open(page, demo, playlist)
    page.get_by_role("button", name="edit").click()
    section = page.locator(".recommendations-section")
    expect(section.locator(".recommendation-item").first).to_be_visible(timeout=WAIT_MS)
    expect(section).to_be_in_viewport()
    expect(page.locator("#add-tracks")).to_be_in_viewport()

    # scrolled away again, the jump link at the top brings it back and focuses "add tracks"
    page.evaluate("window.scrollTo(0, 0)")
    expect(section).not_to_be_in_viewport()
    jump = page.get_by_role("link", name="jump to recommended")
    jump.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#add-tracks")).to_be_focused()
    expect(section).to_be_in_viewport()


def test_on_a_phone_every_control_is_at_least_44_px(page: Any, demo: RunningDemo) -> None:
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 390, "height": 844})
    playlist = _longest(demo)  # so the jump link and "more" are on screen too
    _open(page, demo, playlist)
    page.get_by_role("button", name="edit").click()
    expect(page.locator(".recommendation-item")).to_have_count(3, timeout=WAIT_MS)
    expect(page.get_by_role("button", name="more", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="jump to recommended")).to_be_visible()

    controls = page.locator("button:visible, a[href]:visible")
    boxes = controls.evaluate_all(
        """nodes => nodes.map(node => {
            const box = node.getBoundingClientRect();
            return [node.id || node.className || node.textContent, box.width, box.height];
        })"""
    )
    # the playlists, edit, jump, add tracks, three "+" and more at the least
    assert len(boxes) >= 8, boxes
    small = [box for box in boxes if box[1] < 44 or box[2] < 44]
    assert small == [], small
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1]


def test_counts_are_said_in_singular_and_plural(page: Any, demo: RunningDemo) -> None:
    from playwright.sync_api import expect

    listed = [p for p in demo.api("/playlists") if not p["no_embeddings"]]
    one = next(p for p in listed if p["track_count"] == 1)
    many = next(p for p in listed if p["track_count"] > 1)
    _open(page, demo, one)
    link = page.locator(f'.playlist-link[data-playlist-id="{one["id"]}"] .playlist-meta')
    expect(link).to_have_text(f"1 track · @{one['owner_handle']}")
    expect(page.locator("#byline")).to_have_text(re.compile(r" · 1 track$"))
    other = page.locator(f'.playlist-link[data-playlist-id="{many["id"]}"] .playlist-meta')
    expect(other).to_have_text(f"{many['track_count']} tracks · @{many['owner_handle']}")


def test_because_is_shown_on_a_card_when_the_answer_carries_it(
    page: Any, demo: RunningDemo
) -> None:
    """the engine says `because` on every track it can explain; on their way to the page
    the first card's is replaced by one with markup in its title (shown as text) and
    the second's removed (nothing shown), the third is the engine's own."""
    from playwright.sync_api import expect

    playlist = _longest(demo)
    explained = {"id": 1, "title": "a <b>title</b> of the playlist"}
    engine_said: list[dict[str, Any]] = []

    def with_because(route: Any) -> None:
        response = route.fetch()
        answer = response.json()
        engine_said.extend(track.get("because") for track in answer["tracks"])
        answer["tracks"][0]["because"] = explained
        answer["tracks"][1].pop("because", None)
        route.fulfill(response=response, json=answer)

    page.route("**/editor/api/playlists/*/recommendations*", with_because)
    _open(page, demo, playlist)
    page.get_by_role("button", name="edit").click()
    cards = page.locator(".recommendation-item")
    expect(cards).to_have_count(3, timeout=WAIT_MS)
    expect(cards.first.locator(".because")).to_have_text(f"because of {explained['title']}")
    expect(cards.first.locator(".because b")).to_have_count(0)  # text, never markup
    expect(cards.nth(1).locator(".because")).to_have_count(0)  # absent: nothing shown
    # the engine explains a pick unless the playlist track behind it is not surfaceable
    assert any(because is not None for because in engine_said)
    third = engine_said[2]
    if third is None:
        expect(cards.nth(2).locator(".because")).to_have_count(0)
    else:
        expect(cards.nth(2).locator(".because")).to_have_text(f"because of {third['title']}")


def test_while_the_session_replays_the_page_says_why_plus_is_closed(
    tmp_path_factory: pytest.TempPathFactory, browser: Any
) -> None:
    from playwright.sync_api import expect

    # slow frames: the session is still replaying throughout the test
    with running_demo(
        tmp_path_factory.mktemp("editor-replaying"), spacing_ms=2_000, replayed=False
    ) as replaying:
        page = browser.new_page()
        try:
            page.goto(f"{replaying.base_url}/")
            status = page.locator("#session-status")
            expect(status).to_contain_text("edits open when it ends", timeout=WAIT_MS)
            link = page.locator(".playlist-link:not([data-playlist-id=''])")
            listed = link.filter(has_not_text="fresh uploads").filter(has_not_text="0 tracks")
            expect(listed.first).to_be_visible(timeout=WAIT_MS)
            listed.first.click()
            page.get_by_role("button", name="edit").click()
            plus = page.locator(".rec-add-btn").first
            expect(plus).to_be_visible(timeout=WAIT_MS)
            expect(plus).to_be_disabled()
            note = page.locator("#rec-closed")
            expect(note).to_be_visible()
            expect(note).to_contain_text("still replaying")
            assert plus.get_attribute("aria-describedby") == "rec-closed"
            assert not replaying.api("/status")["session"]["done"]
        finally:
            page.close()


@pytest.mark.parametrize("offset", ["21", "-3", "abc", "3.0", "²"])
def test_the_site_refuses_an_offset_the_api_would_refuse(demo: RunningDemo, offset: str) -> None:
    playlist = _longest(demo)
    url = f"{demo.base_url}/editor/api/playlists/{playlist['id']}/recommendations"
    response = httpx.get(url, params={"offset": offset}, timeout=10)
    assert response.status_code == 422
