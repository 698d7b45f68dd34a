// the editor page of `plyr-recs run`: plyr.fm's playlist editor, against the demo.
// it behaves as plyr.fm's frontend does: entering edit mode fetches the
// recommendations (limit 3), "+" adds the track and fetches them again, leaving
// edit mode clears them, and `available: false` hides the section entirely.
// every text goes in through textContent: titles are data, never markup.
"use strict";

const API = "/editor/api";
const SOURCES = {
  hit: "cache hit",
  computed: "computed inline",
  computed_uncached: "computed inline (no cache)",
  reused: "reused (an answer for the same tracks)",
  already_cached: "the worker's, written meanwhile",
  unavailable: "computed inline: nothing to recommend from",
  last_known: "last known version",
};
const INLINE = ["computed", "computed_uncached"];
const MAX_EVENTS = 400;

const state = {
  playlists: [],
  current: null, // the open playlist's detail
  wanted: null, // the playlist asked for last (a slower answer for another is dropped)
  drawn: { tracks: "", recs: "" }, // what is on screen, so a refresh keeps focus in place
  editing: false,
  recs: [],
  recsAvailable: true,
  loadingRecs: false,
  lastAnswer: null,
  adding: null,
  editable: false,
};

const $ = (id) => document.getElementById(id);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "on") for (const [name, fn] of Object.entries(value)) node.addEventListener(name, fn);
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function noteIcon() {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("fill", "none");
  svg.setAttribute("stroke", "currentColor");
  svg.setAttribute("stroke-width", "2");
  svg.setAttribute("aria-hidden", "true");
  for (const d of ["M9 18V5l12-2v13", "M9 18a3 3 0 1 1-6 0 3 3 0 0 1 6 0", "M21 16a3 3 0 1 1-6 0 3 3 0 0 1 6 0"]) {
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}

function hueOf(seed) {
  let hash = 0;
  for (const ch of String(seed)) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return String(hash % 360);
}

// an artwork placeholder: a gradient whose hue comes from the id (nothing is fetched)
function art(seed) {
  const node = el("div", { class: "art", "aria-hidden": "true" }, noteIcon());
  node.style.setProperty("--hue", hueOf(seed));
  return node;
}

async function api(path, options = {}) {
  const response = await fetch(API + path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail || `HTTP ${response.status}`);
  return body;
}

// --- status and the playlists -----------------------------------------------------------

async function loadStatus() {
  try {
    const status = await api("/status");
    const session = status.session;
    const line = $("session-status");
    line.dataset.state = session.done ? "live" : "replaying";
    line.textContent = session.done
      ? `live: the demo session is replayed (${session.frames} frames); edits are open`
      : `replaying the demo session: ${session.sent} of ${session.frames} frames`;
    const answers = status.answers;
    const total = Object.values(answers).reduce((a, b) => a + b, 0);
    const hits = answers.hit || 0;
    const inline = INLINE.reduce((sum, key) => sum + (answers[key] || 0), 0);
    $("tally-hit").textContent = hits;
    $("tally-inline").textContent = inline;
    $("tally-other").textContent = total - hits - inline;
    if (session.done !== state.editable) {
      state.editable = session.done;
      renderRecs();
    }
    await loadPlaylists();
  } catch (error) {
    $("session-status").textContent = `the run is not answering (${error.message})`;
  }
}

async function loadPlaylists() {
  const playlists = await api("/playlists");
  const signature = (list) => list.map((p) => `${p.id}:${p.cid}`).join();
  if (signature(playlists) === signature(state.playlists)) return;
  state.playlists = playlists;
  const list = $("playlist-list");
  list.replaceChildren(
    ...playlists.map((p) =>
      el(
        "li",
        {},
        el(
          "button",
          {
            type: "button",
            class: "playlist-link",
            "data-playlist-id": p.id,
            "aria-current": String(state.current?.id === p.id),
            on: { click: () => openPlaylist(p.id) },
          },
          el("span", { class: "playlist-name", text: p.name }),
          el("span", { class: "playlist-meta", text: `${p.track_count} tracks · @${p.owner_handle}` }),
        ),
      ),
    ),
  );
}

// --- one playlist ---------------------------------------------------------------------------

async function openPlaylist(id) {
  state.wanted = id;
  state.editing = false;
  state.recs = [];
  state.lastAnswer = null;
  $("answers").replaceChildren();
  await refreshPlaylist(id);
  for (const button of document.querySelectorAll(".playlist-link")) {
    button.setAttribute("aria-current", String(button.dataset.playlistId === id));
  }
  $("playlist-name").focus();
}

async function refreshPlaylist(id = state.current?.id) {
  if (!id) return;
  const detail = await api(`/playlists/${encodeURIComponent(id)}`);
  if (state.wanted !== id) return;
  state.current = detail;
  state.editable = detail.editable;
  renderPlaylist();
}

function renderPlaylist() {
  const p = state.current;
  $("editor-empty").hidden = true;
  $("playlist").hidden = false;
  $("playlist").dataset.playlistId = p.id;
  $("playlist").dataset.cid = p.cid;
  if (!$("cover").firstChild) $("cover").append(noteIcon());
  $("cover").style.setProperty("--hue", hueOf(p.id));
  $("playlist-name").textContent = p.name;
  $("byline").textContent = `${p.owner_name} · @${p.owner_handle} · ${p.tracks.length} tracks`;
  $("version").textContent = `version …${p.cid.slice(-10)}`;
  const pipe = p.pipeline;
  const done = {
    queued: pipe.queued_cid === p.cid,
    worker: pipe.worker_cid === p.cid,
    cached: pipe.cached === true,
  };
  for (const step of $("pipeline").children) {
    step.dataset.state = done[step.dataset.step] ? "done" : "pending";
    if (step.dataset.step === "worker" && done.worker) step.textContent = `worker: ${pipe.worker_outcome.replace("_", " ")}`;
    if (step.dataset.step === "worker" && !done.worker) step.textContent = "worker handled it";
  }
  $("pipeline").dataset.complete = String(done.queued && done.worker && done.cached);
  const drawn = `${p.id}:${p.tracks.map((t) => t.id).join()}`;
  if (drawn !== state.drawn.tracks) renderTracks(p);
  state.drawn.tracks = drawn;
  const toggle = $("edit-toggle");
  toggle.textContent = state.editing ? "done" : "edit";
  toggle.setAttribute("aria-pressed", String(state.editing));
  $("edit-area").hidden = !state.editing;
  renderRecs();
}

function renderTracks(p) {
  $("tracks").replaceChildren(
    ...p.tracks.map((track, index) =>
      el(
        "li",
        { class: "track", "data-track-id": String(track.id) },
        el("span", { class: "track-index", text: String(index + 1) }),
        art(track.id ?? index),
        el(
          "div",
          { class: "info" },
          el("span", { class: "title", text: track.title }),
          el("span", { class: "artist", text: track.artist_display_name || "" }),
        ),
      ),
    ),
  );
}

function toggleEdit() {
  if (!state.current) return;
  state.editing = !state.editing;
  if (state.editing) {
    state.recsAvailable = true;
    if (state.current.tracks.length > 0) fetchRecommendations();
  } else {
    state.recs = []; // as plyr.fm: leaving edit mode clears them
    state.lastAnswer = null;
    $("add-hint").hidden = true;
  }
  renderPlaylist();
}

async function fetchRecommendations() {
  const id = state.current.id;
  state.loadingRecs = true;
  renderRecs();
  try {
    const answer = await api(`/playlists/${encodeURIComponent(id)}/recommendations`);
    if (state.current?.id !== id || !state.editing) return;
    logAnswer(answer);
    state.lastAnswer = answer;
    state.recsAvailable = answer.available;
    const inPlaylist = new Set(state.current.tracks.map((t) => t.id));
    state.recs = answer.tracks.filter((t) => !inPlaylist.has(t.id));
  } catch (error) {
    state.recsAvailable = false;
    logAnswer({ source: "error", ms: 0, tracks: [], available: false, cid: null, error: error.message });
  } finally {
    state.loadingRecs = false;
    renderRecs();
    loadStatus();
  }
}

function renderRecs() {
  const slot = $("recommendations-slot");
  const show = state.editing && state.recsAvailable && (state.recs.length > 0 || state.loadingRecs);
  const answer = state.lastAnswer;
  const drawn = JSON.stringify([show, state.loadingRecs, state.recs.map((t) => t.id), state.adding, state.editable, answer]);
  if (drawn === state.drawn.recs) return; // unchanged: keep the focus where it is
  state.drawn.recs = drawn;
  if (!show) {
    slot.replaceChildren(); // hidden entirely, as plyr.fm hides it
    return;
  }
  const meta = answer
    ? el("span", {
        class: "answer-meta",
        "data-source": answer.source,
        text: `${SOURCES[answer.source] || answer.source} · ${answer.ms.toFixed(1)} ms`,
      })
    : null;
  const header = el(
    "div",
    { class: "recommendations-header" },
    el("h3", { class: "recommendations-title", id: "rec-title", text: "recommended" }),
    el("span", { class: "recommendations-subtitle", text: "based on this playlist" }),
    meta,
  );
  const body =
    state.loadingRecs && state.recs.length === 0
      ? el("p", { class: "recommendations-loading", role: "status", text: "finding tracks that fit…" })
      : el("ul", { class: "rec-list" }, ...state.recs.map(recCard));
  slot.replaceChildren(
    el("section", { class: "recommendations-section", "aria-labelledby": "rec-title" }, header, body),
  );
}

function recCard(track) {
  const button = el("button", {
    type: "button",
    class: "rec-add-btn",
    "aria-label": `add ${track.title} to playlist`,
    title: state.editable ? "add to playlist" : "edits open once the demo session is replayed",
    text: "+",
    on: { click: () => addTrack(track) },
  });
  if (state.adding === track.id || !state.editable) button.disabled = true;
  return el(
    "li",
    { class: "recommendation-item", "data-track-id": String(track.id) },
    art(track.id),
    el(
      "div",
      { class: "info" },
      el("span", { class: "title", text: track.title }),
      el("span", { class: "artist", text: track.artist_display_name }),
    ),
    button,
  );
}

async function addTrack(track) {
  const id = state.current.id;
  state.adding = track.id;
  renderRecs();
  try {
    await api(`/playlists/${encodeURIComponent(id)}/tracks`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ track_id: track.id }),
    });
    state.recs = state.recs.filter((r) => r.id !== track.id);
    await refreshPlaylist(id);
    const row = document.querySelector(`#tracks [data-track-id="${track.id}"]`);
    if (row) row.classList.add("added");
    $("session-status").textContent = `added "${track.title}": a new version is on the firehose`;
    if (state.editing) fetchRecommendations(); // the playlist changed: ask again, as plyr.fm does
    $("add-tracks").focus();
  } catch (error) {
    $("session-status").textContent = `could not add "${track.title}": ${error.message}`;
  } finally {
    state.adding = null;
    renderRecs();
  }
}

function logAnswer(answer) {
  const label = SOURCES[answer.source] || answer.source;
  const what = answer.error
    ? answer.error
    : answer.available
      ? `${answer.tracks.length} tracks`
      : "available: false (section hidden)";
  const version = answer.cid ? ` · version …${answer.cid.slice(-10)}` : "";
  const item = el(
    "li",
    { "data-source": answer.source, "data-available": String(answer.available), "data-cid": answer.cid || "" },
    el("span", { class: "source", "data-source": answer.source, text: label }),
    ` · ${answer.ms.toFixed(1)} ms · ${what}${version}`,
  );
  $("answers").prepend(item);
  while ($("answers").children.length > 20) $("answers").lastChild.remove();
}

// --- the live events ------------------------------------------------------------------------

function listen() {
  const source = new EventSource(`${API}/events`);
  const list = $("events");
  source.onopen = () => ($("live-dot").dataset.state = "open");
  source.onerror = () => ($("live-dot").dataset.state = "closed");
  source.onmessage = (message) => {
    const event = JSON.parse(message.data);
    const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    list.append(
      el(
        "li",
        { "data-source": event.source },
        el("span", { class: "at", text: `${event.elapsed.toFixed(1)}s` }),
        event.text.replace(/\n\s+/g, "\n  "), // the terminal's indent is too wide here
      ),
    );
    while (list.children.length > MAX_EVENTS) list.firstChild.remove();
    if (nearBottom) list.scrollTop = list.scrollHeight;
    if (state.current && /^(consumer|worker)/.test(event.source)) scheduleRefresh();
  };
}

// the path's progress arrives as events; a burst of them costs one refresh
let refreshTimer = null;
function scheduleRefresh() {
  if (refreshTimer !== null) return;
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    refreshPlaylist().catch(() => {});
  }, 150);
}

document.addEventListener("DOMContentLoaded", () => {
  $("edit-toggle").addEventListener("click", toggleEdit);
  $("add-tracks").addEventListener("click", () => ($("add-hint").hidden = false));
  listen();
  loadStatus();
  setInterval(loadStatus, 2000);
});
