"""the playlist editor page of `plyr-recs run`: plyr.fm's editor, against the demo.

    why_not_served(settings, demo, session) -> reason | None
    editor_view(console, names, session, token) -> EditorView   (the live view, + the page's feed)
    serve_editor(app, view=..., ...) -> EditorSite              (routes on the run's API app)

the page (static/: plain HTML, CSS and a little JavaScript, no build step) lists
the demo's playlists and opens each into an editor: its tracks, the "add
tracks" button and the recommended section, whose "+" writes a new version of
the list record that travels the firehose path (replay server, consumer,
worker, cache) before the recommendations are fetched again. a side panel
streams the live events. loopback only (`guard`), embedded mode only (`page`).
"""

from worker.processes.editor.events import EditorView, EventHub
from worker.processes.editor.page import editor_view, serve_editor, why_not_served
from worker.processes.editor.site import EditorSite

__all__ = ["EditorSite", "EditorView", "EventHub", "editor_view", "serve_editor", "why_not_served"]
