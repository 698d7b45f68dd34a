// the editor page of `plyr-recs run`: plyr.fm's playlist editor, against the demo.
// it behaves as plyr.fm's frontend does: entering edit mode fetches the
// recommendations (limit 3), "+" adds the track and fetches them again, leaving
// edit mode clears them, and `available: false` hides the section entirely.
// "more" asks the same answer further on (offset 3, 6 ...) while the site says
// there is more; on a long playlist, entering edit mode scrolls the section in.
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
const PAGE_SIZE = 3; // what plyr.fm's frontend shows at once (the site asks for these)
const LONG_PLAYLIST = 8; // from here on the recommended section starts below the fold

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
  more: false, // whether the answer has tracks past those shown
  nextOffset: PAGE_SIZE,
  loadingMore: false,
  asked: 0, // answers asked for so far: only the newest one is drawn
  focusAfter: null, // the card whose "+" takes the focus once drawn (after "more")
};

const $ = (id) => document.getElementById(id);

// "1 track", "2 tracks"
function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

function reducedMotion() {
  return window.matchMedia("(prefers-reduced-motion: reduce)").matches;
}

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
      ? `live: the demo session is replayed (${plural(session.frames, "frame")}); edits are open`
      : `replaying the demo session: ${session.sent} of ${plural(session.frames, "frame")}; edits open when it ends`;
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
          el("span", { class: "playlist-meta", text: `${plural(p.track_count, "track")} · @${p.owner_handle}` }),
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
  $("byline").textContent = `${p.owner_name} · @${p.owner_handle} · ${plural(p.tracks.length, "track")}`;
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
  $("jump-recs").hidden = !(state.editing && p.tracks.length >= LONG_PLAYLIST);
  renderRecs();
}

// the edit area (add tracks, then recommended) at the top of the screen, if it is not
// already in its upper part: below a long playlist it starts far out of sight
function revealEditArea({ always = false } = {}) {
  const area = $("edit-area");
  if (!always && area.getBoundingClientRect().top < window.innerHeight * 0.6) return;
  area.scrollIntoView({ block: "start", behavior: reducedMotion() ? "auto" : "smooth" });
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
    state.more = false;
    state.lastAnswer = null;
    $("add-hint").hidden = true;
  }
  renderPlaylist();
  if (state.editing) revealEditArea();
}

// offset 0: a fresh answer (entering edit mode, after "+"); past 0: "more" of it
async function fetchRecommendations(offset = 0) {
  const id = state.current.id;
  const ask = ++state.asked;
  if (offset === 0) state.loadingRecs = true;
  renderRecs();
  try {
    const answer = await api(`/playlists/${encodeURIComponent(id)}/recommendations?offset=${offset}`);
    if (ask !== state.asked || state.current?.id !== id || !state.editing) return;
    logAnswer(answer);
    state.lastAnswer = answer;
    const inPlaylist = new Set(state.current.tracks.map((t) => t.id));
    const fresh = answer.tracks.filter((t) => !inPlaylist.has(t.id));
    if (offset === 0) {
      state.recsAvailable = answer.available;
      state.recs = fresh;
    } else {
      const shown = new Set(state.recs.map((t) => t.id));
      const added = fresh.filter((t) => !shown.has(t.id));
      state.recs = state.recs.concat(added);
      state.focusAfter = added.length > 0 ? added[0].id : "more";
    }
    state.more = answer.available && answer.more;
    state.nextOffset = answer.offset + PAGE_SIZE;
  } catch (error) {
    if (offset === 0) state.recsAvailable = false;
    else state.drawn.recs = ""; // redrawn: "more" loses its busy state and can be asked again
    logAnswer({ source: "error", ms: 0, tracks: [], available: false, cid: null, error: error.message });
  } finally {
    if (ask === state.asked) {
      state.loadingRecs = false;
      state.loadingMore = false;
    }
    renderRecs();
    loadStatus();
  }
}

function showMore(event) {
  if (state.loadingMore) return;
  state.loadingMore = true;
  // said on the button itself, not redrawn: the focus stays on it meanwhile
  event.currentTarget.setAttribute("aria-busy", "true");
  event.currentTarget.textContent = "more…";
  fetchRecommendations(state.nextOffset);
}

function renderRecs() {
  const slot = $("recommendations-slot");
  const show = state.editing && state.recsAvailable && (state.recs.length > 0 || state.loadingRecs);
  const answer = state.lastAnswer;
  const drawn = JSON.stringify([
    show, state.loadingRecs, state.recs.map((t) => t.id), state.adding, state.editable, state.more, answer,
  ]);
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
    el("h3", { class: "recommendations-title", id: "rec-title", tabindex: "-1", text: "recommended" }),
    el("span", { class: "recommendations-subtitle", text: "based on this playlist" }),
    meta,
  );
  const body =
    state.loadingRecs && state.recs.length === 0
      ? el("p", { class: "recommendations-loading", role: "status", text: "finding tracks that fit…" })
      : el("ul", { class: "rec-list" }, ...state.recs.map(recCard));
  // why "+" is greyed out, in words: a tooltip never shows on a touch screen
  const closed = state.editable
    ? null
    : el("p", {
        class: "rec-note",
        id: "rec-closed",
        role: "status",
        text: "the demo session is still replaying: \"+\" opens when it ends (progress in the top bar).",
      });
  const more =
    state.more && !state.loadingRecs
      ? el("button", { type: "button", class: "more-btn", text: "more", on: { click: showMore } })
      : null;
  slot.replaceChildren(
    el(
      "section",
      { class: "recommendations-section", id: "recommended", "aria-labelledby": "rec-title" },
      header,
      closed,
      body,
      more,
    ),
  );
  focusAfterMore(more);
}

// after "more", the focus goes to the first new card's "+" (the button it was on may be
// gone: nothing more to show), else back to "more", else to the section's title
function focusAfterMore(more) {
  if (state.focusAfter === null) return;
  const plus = document.querySelector(`.recommendation-item[data-track-id="${state.focusAfter}"] .rec-add-btn`);
  state.focusAfter = null;
  const target = plus && !plus.disabled ? plus : more || $("rec-title");
  target.focus();
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
  if (!state.editable) button.setAttribute("aria-describedby", "rec-closed");
  // the playlist track that explains this one, when the answer says (absent: nothing)
  const because = track.because
    ? el("span", { class: "because", text: `because of ${track.because.title}` })
    : null;
  return el(
    "li",
    { class: "recommendation-item", "data-track-id": String(track.id) },
    art(track.id),
    el(
      "div",
      { class: "info" },
      el("span", { class: "title", text: track.title }),
      el("span", { class: "artist", text: track.artist_display_name }),
      because,
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
      ? `${plural(answer.tracks.length, "track")}${answer.offset ? ` from #${answer.offset + 1}` : ""}`
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
  $("jump-recs").addEventListener("click", (event) => {
    event.preventDefault(); // scrolled and focused here: the edit area itself takes no focus
    revealEditArea({ always: true });
    $("add-tracks").focus({ preventScroll: true });
  });
  $("add-tracks").addEventListener("click", () => ($("add-hint").hidden = false));
  listen();
  loadStatus();
  setInterval(loadStatus, 2000);
});
