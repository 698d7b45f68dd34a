"""the playlist editor page of `plyr-recs run`, in a real browser.

`plyr-recs run` starts as a person starts it (a subprocess in a fresh directory,
a small demo), Debian's chromium opens the page through Playwright, and the
page is used as plyr.fm's editor is: open a playlist, enter edit mode, see the
recommended cards, press "+". the edit must travel the real path (a new list
record version on the replay firehose, the consumer, the worker, the cache)
and the recommendations asked again must be for the new version.

`EDITOR_SCREENSHOT=path` writes the screenshot the README shows (see
scripts/editor-screenshot); without it the screenshot goes to a temp dir.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
        print(f"\nthe page's answers by source, all tests: {running.api('/status')['answers']}")


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
