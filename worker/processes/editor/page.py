"""putting the editor page into `plyr-recs run`: when it is served, and the parts.

served only in the embedded mode with its own demo: the demo catalogue as plyr.fm's
database (the page's edits must update plyr.fm's rows, which only the demo's
in-memory catalog lets it do), the demo session on the local replay server (the
page's commits go out there), and the API on a loopback address (the page acts
with the run's credentials). `plyr-recs api` never builds any of this.
"""

from __future__ import annotations

import dataclasses

from fastapi import FastAPI
from rich.console import Console

from engine.memory_catalog import InMemoryCatalog
from jetstream.replay import ReplayServer
from worker.demo import DemoCatalogue, DemoSession
from worker.processes.editor.book import PlaylistBook, TrackIndex
from worker.processes.editor.events import EditorView, EventHub
from worker.processes.editor.guard import is_loopback, page_hosts
from worker.processes.editor.routes import PDS_PATH, mount_editor
from worker.processes.editor.site import EditorSite
from worker.processes.editor.writer import DemoWriter
from worker.recs.services import Services
from worker.settings import Settings


def why_not_served(
    settings: Settings, demo: DemoCatalogue | None, session: DemoSession | None
) -> str | None:
    """None when the run serves the page, else the reason it does not."""
    if demo is None or session is None or settings.database_url is not None:
        return "the editor page needs the demo's catalogue and session"
    if not is_loopback(settings.api_host):
        return f"the editor page is served on loopback only, not on API_HOST={settings.api_host}"
    return None


def editor_view(
    console: Console, names: dict[str, str], session: DemoSession, token: str
) -> EditorView:
    """the live view that also feeds the page; the token is redacted from its events."""
    book = PlaylistBook({uri: e.playlist_id for uri, e in session.expected.items()})
    return EditorView(console, names, book=book, hub=EventHub(secrets=(token,)))


def serve_editor(
    app: FastAPI,
    *,
    view: EditorView,
    demo: DemoCatalogue,
    session: DemoSession,
    replay: ReplayServer,
    services: Services,
    settings: Settings,
    port: int,
    token: str,
) -> EditorSite:
    """the page's routes on `app`, and its playlist of fresh uploads on the firehose
    (call before the session is fed)."""
    catalog = services.catalog
    if not isinstance(catalog, InMemoryCatalog):
        raise TypeError("the editor page edits the demo's in-memory catalog")
    host = f"[{settings.api_host}]" if ":" in settings.api_host else settings.api_host
    writer = DemoWriter(
        book=view.book,
        tracks=TrackIndex(demo.tracks, demo.artists),
        catalog=catalog,
        replay=replay,
        announce=view.frame_sent,
        seed=demo.params.seed,
        pds_url=f"http://{host}:{port}/editor{PDS_PATH}",
    )
    hosts = page_hosts(settings.api_host, port)
    site = EditorSite(
        demo=demo,
        catalog=catalog,
        session=session,
        view=view,
        writer=writer,
        services=services,
        api_url=f"http://{host}:{port}",
        token=token,
    )
    site.add_fresh_uploads()
    # every demo artist's PDS is the page's (plyr.fm's `artists.pds_url`), which serves
    # the session's records as well as the page's: an API that asks before the worker
    # has cached a session version reads it there and computes, as in production,
    # instead of answering `available: false` (no_pds) for want of a PDS
    for artist in demo.artists:
        catalog.replace_artist(dataclasses.replace(artist, pds_url=writer.pds_url))
    mount_editor(app, site, hosts=hosts)
    return site
