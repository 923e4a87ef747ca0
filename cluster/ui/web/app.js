// selfplay live dashboard. No libraries: the DOM and SVG are built by hand (helpers in charts.js).
//
// GET /api/state?learner=NAME&top=K&newest=N&filter=TEXT&all=1&curves=ID,ID&payoff=ID,ID returns a
// document whose size is bounded whatever the league's size (cluster/ui/dashboard_data.py):
// { run_id, game, updated_at (unix s), running (bool),
//   learners: [name], learner: name,   the run's learners (one per role; [""] for a game without
//                                       roles) and whose league the rest of the document is
//   league: {players: in the league, matched: by the filter, shown, truncated (bool)},
//   selection: {top, newest, filter, all, curves: [id], payoff: [id]},   what the server applied
//   players: [{id, kind: learner|snapshot|reference, version, elo, elo_stderr, games,
//              win_rate_vs_random, vs_main (an exploiter's snapshot's win rate against the main
//              agent when taken; null otherwise)}],     the shown ones: latest, references, top K, newest N (or
//                                        every match with all=1, at most 200), best Elo first
//   elo_history: {id: [[t, learner_version, elo, stderr|null], ...]},   selection.curves' curves
//   strength: {reference: [[t, env_steps|null, learner_version, wins, draws, losses, score, lo, hi]]},
//             the latest policy's rating games against each reference, score with its 95% interval
//   payoff: {players: [id], win_rate: [[p|null]], games: [[n]]},   over selection.payoff
//   health: {learner_version, env_steps, env_steps_per_s, games, samples_per_s,
//            staleness: {min, mean, max}, sample_reuse, dropped_stale} }
// Parameters left out take the server's defaults (top 10, newest 5; curves: latest, the references
// and the top 3; payoff: the players shown, at most 30). Any field may be null or empty; the page
// must still draw. A non-200 answer carries {"error": message}, shown in a banner while the last
// good state stays up (an unknown learner is a 404 that also lists the run's `learners`). The page keeps its view (x axes, selection, curves) in the URL's #fragment.
"use strict";

const REFRESH_MS = 2000;
const Z95 = 1.96;
const MAX_CURVES = 12;  // as cluster/ui/dashboard_data.py

// ---- error capture (read by the headless browser test) --------------------------------

const errorBox = document.getElementById("errors");
function recordError(message) {
  const n = Number(errorBox.dataset.count || 0) + 1;
  errorBox.dataset.count = String(n);
  errorBox.hidden = false;
  errorBox.appendChild(el("div", { class: "js-error" }, String(message)));
}
window.onerror = (message, source, line, col) => {
  recordError(`${message} (${source || "?"}:${line || "?"}:${col || "?"})`);
};
window.addEventListener("unhandledrejection", (ev) => {
  recordError(`unhandled rejection: ${ev.reason && ev.reason.stack ? ev.reason.stack : ev.reason}`);
});

// ---- the view: what to ask the server for, kept in the URL's fragment -----------------------

const hashParams = new URLSearchParams(location.hash.slice(1));
const view = {
  learner: hashParams.get("learner") || "",                                 // whose league ("": the first)
  x: hashParams.get("x") === "learner_version" ? "learner_version" : "t",    // Elo chart's x axis
  sx: hashParams.get("sx") === "t" ? "t" : "env_steps",                     // strength chart's x axis
  top: hashParams.get("top") || "",
  newest: hashParams.get("newest") || "",
  filter: hashParams.get("filter") || "",
  all: hashParams.get("all") === "1",
  curves: hashParams.has("curves") ? hashParams.get("curves").split(",").filter(Boolean) : null,  // null: the server's
};

function query() {
  const q = new URLSearchParams();
  if (view.learner) q.set("learner", view.learner);
  if (view.top !== "") q.set("top", view.top);
  if (view.newest !== "") q.set("newest", view.newest);
  if (view.filter) q.set("filter", view.filter);
  if (view.all) q.set("all", "1");
  if (view.curves !== null) q.set("curves", view.curves.join(","));
  return q;
}

function saveView() {
  const q = query();
  if (view.x !== "t") q.set("x", view.x);
  if (view.sx !== "env_steps") q.set("sx", view.sx);
  history.replaceState(null, "", q.toString() ? `#${q}` : location.pathname);
}

// Stable colours: the learner is the accent, references are grey, snapshots walk a
// palette in version order so neighbouring versions stay distinguishable.
const PALETTE = ["#f2a541", "#9d7bf2", "#4fc3a1", "#e86f8a", "#6fb4f2", "#c8d65b",
                 "#f28e5c", "#5bd0d6", "#d68fd6", "#a3b18a"];
function colourMap(players, historyIds) {
  const kinds = new Map(players.map((p) => [p.id, p.kind]));
  const ids = [...new Set([...players.map((p) => p.id), ...historyIds])];
  const snapshots = ids.filter((id) => kinds.get(id) !== "learner" && kinds.get(id) !== "reference");
  snapshots.sort();
  const colours = new Map();
  let refIndex = 0;
  for (const id of ids) {
    const kind = kinds.get(id);
    if (kind === "learner") colours.set(id, "#4aa8ff");
    else if (kind === "reference") colours.set(id, ["#9aa4b2", "#7c8593", "#b8c0cc"][refIndex++ % 3]);
  }
  snapshots.forEach((id, i) => colours.set(id, PALETTE[i % PALETTE.length]));
  return { colours, kinds };
}

// ---- header, banner, health -----------------------------------------------------------

function renderHeader(state) {
  document.getElementById("run-id").textContent = state.run_id || "—";
  document.getElementById("game").textContent = state.game || "";
  const badge = document.getElementById("run-badge");
  badge.textContent = state.running ? "running" : "finished";
  badge.className = `badge ${state.running ? "badge-running" : "badge-finished"}`;
  document.getElementById("updated").textContent =
    isNum(state.updated_at) ? `updated ${clockTime(state.updated_at)}` : "";
}

function showBanner(message) {
  const banner = document.getElementById("banner");
  if (message) {
    banner.textContent = message;
    banner.hidden = false;
    document.body.dataset.error = message;
  } else {
    banner.hidden = true;
    banner.textContent = "";
    delete document.body.dataset.error;
  }
}

function renderHealth(health) {
  const h = health || {};
  const st = h.staleness || {};
  const tiles = [
    ["learner version", fmt(h.learner_version)],
    ["env steps", compact(h.env_steps)],
    ["env steps / s", compact(h.env_steps_per_s)],
    ["samples / s", compact(h.samples_per_s)],
    ["games", compact(h.games)],
    ["staleness min/mean/max", `${fmt(st.min)} / ${fmt(st.mean, 1)} / ${fmt(st.max)}`],
    ["sample reuse", fmt(h.sample_reuse, 2)],
    ["dropped stale", compact(h.dropped_stale)],
  ];
  const box = document.getElementById("health");
  box.replaceChildren(...tiles.map(([label, value]) =>
    el("div", { class: "tile" }, el("div", { class: "tile-value" }, value),
       el("div", { class: "tile-label" }, label))));
}

// ---- league table and its controls ----------------------------------------------------------

function renderLeague(state, colours) {
  const players = state.players || [];
  const charted = new Set(Object.keys(state.elo_history || {}));
  const rows = players.map((p, i) => {
    const elo = isNum(p.elo_stderr) ? `${fmt(p.elo)} ± ${fmt(p.elo_stderr)}` : fmt(p.elo);
    const on = charted.has(p.id);
    const tr = el("tr", { "data-player": p.id, class: `kind-${p.kind}${on ? " charted" : ""}`,
                          title: `click to ${on ? "remove" : "add"} its Elo curve` },
      el("td", { class: "rank" }, String(i + 1)),
      el("td", { class: "player" },
        el("span", { class: "swatch", style: on ? `background:${colours.get(p.id)}` : "" }), p.id),
      el("td", {}, el("span", { class: `kind kind-${p.kind}` }, p.kind || "?")),
      el("td", { class: "num" }, fmt(p.version)),
      el("td", { class: "num", title: "Elo ± standard error" }, elo),
      el("td", { class: "num" }, compact(p.games)),
      el("td", { class: "num" }, pct(p.win_rate_vs_random)),
      el("td", { class: "num", title: "an exploiter's snapshot: its win rate against the main agent when taken" }, pct(p.vs_main)));
    tr.addEventListener("click", () => toggleCurve(p.id));
    return tr;
  });
  document.querySelector("#league tbody").replaceChildren(...rows);
  document.getElementById("league-empty").hidden = rows.length > 0;
  const lg = state.league || {};
  const sel = state.selection || {};
  let count = `${compact(lg.shown ?? players.length)} of ${compact(lg.players ?? players.length)} players`;
  if (sel.filter) count += ` (${compact(lg.matched)} match “${sel.filter}”)`;
  if (lg.truncated) count += "; narrow the filter to see the rest";
  document.getElementById("league-count").textContent = count;
}

function toggleCurve(id) {
  const current = view.curves ?? ((lastState && lastState.selection && lastState.selection.curves) || []);
  const note = document.getElementById("elo-note");
  if (current.includes(id)) {
    view.curves = current.filter((c) => c !== id);
  } else if (current.length >= MAX_CURVES) {
    note.textContent = `at most ${MAX_CURVES} curves: click a charted row to remove one first`;
    return;
  } else {
    view.curves = [...current, id];
  }
  note.textContent = "";
  saveView();
  refreshNow();
}

function bindControls() {
  const filter = document.getElementById("filter"), top = document.getElementById("top");
  const newest = document.getElementById("newest"), all = document.getElementById("all");
  filter.value = view.filter; top.value = view.top; newest.value = view.newest; all.checked = view.all;
  let typing = null;
  const changed = () => {
    view.filter = filter.value.trim();
    view.top = top.value; view.newest = newest.value; view.all = all.checked;
    saveView();
    clearTimeout(typing);
    typing = setTimeout(refreshNow, 250);  // one request per pause in typing
  };
  for (const input of [filter, top, newest]) input.addEventListener("input", changed);
  all.addEventListener("change", changed);
}

// ---- payoff heat map ------------------------------------------------------------------

// Diverging scale: red (row loses) -> neutral -> blue (row wins).
function winColour(p) {
  const lo = [214, 96, 77], mid = [74, 80, 94], hi = [67, 147, 195];
  const [a, b, t] = p < 0.5 ? [lo, mid, p / 0.5] : [mid, hi, (p - 0.5) / 0.5];
  const c = a.map((v, i) => Math.round(v + (b[i] - v) * t));
  return `rgb(${c.join(",")})`;
}

function renderPayoff(payoff, league) {
  const box = document.getElementById("payoff");
  const ids = (payoff && payoff.players) || [];
  if (!ids.length) {
    box.replaceChildren(el("p", { class: "empty" }, "No games played yet."));
    document.getElementById("payoff-note").textContent = "";
    return;
  }
  const rate = payoff.win_rate || [];
  const games = payoff.games || [];
  const head = el("tr", {}, el("th", { class: "corner" }, "row \\ col"),
    ...ids.map((id) => el("th", { class: "col-head", title: id }, id)));
  const rows = ids.map((rowId, i) => el("tr", { "data-player": rowId },
    el("th", { class: "row-head" }, rowId),
    ...ids.map((colId, j) => {
      const p = rate[i] ? rate[i][j] : null;
      const n = games[i] ? games[i][j] : null;
      const title = `${rowId} vs ${colId}: ${isNum(p) ? pct(p) : "no data"}, ${isNum(n) ? n : 0} games`;
      if (!isNum(p)) return el("td", { class: "cell null", title }, "—");
      return el("td", { class: "cell", title, style: `background:${winColour(p)}` },
        el("div", { class: "cell-rate" }, pct(p)),
        el("div", { class: "cell-games" }, `${isNum(n) ? compact(n) : 0} g`));
    })));
  box.replaceChildren(el("table", { class: "heat" }, el("thead", {}, head), el("tbody", {}, ...rows)));
  const shown = league && isNum(league.shown) ? league.shown : ids.length;
  document.getElementById("payoff-note").textContent =
    ids.length < shown ? `· the first ${ids.length} of the ${shown} players shown` : "";
}

// ---- Elo chart ---------------------------------------------------------------------------

function renderElo(state, colours, kinds) {
  const box = document.getElementById("elo-chart");
  const index = view.x === "t" ? 0 : 1;
  const series = [];
  for (const [id, points] of Object.entries(state.elo_history || {})) {
    const pts = [];
    for (const row of points || []) {
      const [x, y, s] = [row[index], row[2], row[3]];
      if (!isNum(x) || !isNum(y)) continue;
      pts.push({ x, y, lo: isNum(s) ? y - Z95 * s : null, hi: isNum(s) ? y + Z95 * s : null });
    }
    if (!pts.length) continue;
    const kind = kinds.get(id);
    // A reference is pinned (or barely moves): its latest rating is drawn across the chart.
    series.push({ id, points: pts, colour: colours.get(id) || "#888", flat: kind === "reference",
                  cls: kind === "reference" ? "reference" : `kind-${kind || "snapshot"}` });
  }
  if (!series.length) {
    box.replaceChildren(el("p", { class: "empty" }, "No rating history yet. Click a league row to chart its Elo."));
    document.getElementById("elo-legend").replaceChildren();
    return;
  }
  // Snapshots first, references next, the learner last so it sits on top.
  const order = (s) => ({ learner: 2, reference: 1 }[kinds.get(s.id)] || 0);
  series.sort((a, b) => order(a) - order(b));
  drawChart(box, series, {
    prefix: "elo", xKind: view.x === "t" ? "time" : "version", yLabel: (v) => fmt(v), height: 340,
    aria: "Elo rating over time per player",
    title: (s, last) => `${s.id}: ${fmt(last.y)}${isNum(last.hi) ? ` ± ${fmt(last.hi - last.y)}` : ""}`,
  });
  legend(document.getElementById("elo-legend"), series);
}

// ---- strength against the references ---------------------------------------------------------

const REF_COLOURS = ["#4aa8ff", "#f2a541", "#4fc3a1", "#e86f8a", "#9d7bf2", "#c8d65b"];

function renderStrength(state) {
  const box = document.getElementById("strength-chart");
  const index = view.sx === "t" ? 0 : 1;
  const series = Object.keys(state.strength || {}).sort().map((ref, i) => ({
    id: ref, colour: REF_COLOURS[i % REF_COLOURS.length], cls: "", flat: false,
    points: (state.strength[ref] || []).filter((r) => isNum(r[index]) && isNum(r[6])).map((r) => (
      { x: r[index], y: r[6], lo: r[7], hi: r[8], version: r[2], games: r[3] + r[4] + r[5] })),
  })).filter((s) => s.points.length);
  if (!series.length) {
    box.replaceChildren(el("p", { class: "empty" }, "No rating games of the latest policy yet."));
    document.getElementById("strength-legend").replaceChildren();
    return;
  }
  drawChart(box, series, {
    prefix: "strength", xKind: view.sx === "t" ? "time" : "count", yLabel: pct, yRange: [0, 1], height: 340,
    aria: "the latest policy's score against each reference",
    title: (s, last) => `latest (v${last.version}) vs ${s.id}: ${pct(last.y)}, 95% [${pct(last.lo)}, ${pct(last.hi)}] over ${last.games} games`,
  });
  legend(document.getElementById("strength-legend"), series);
}

// ---- exploitability (Leduc hold'em only: rows [t, version, latest, mixture, snapshots]) --------

function renderExploitability(state) {
  const rows = state.exploitability || [];
  const card = document.getElementById("exploit-card");
  card.hidden = !rows.length;
  if (!rows.length) return;
  const series = [["latest", 2, "#4aa8ff"], ["mixture", 3, "#f2a541"]].map(([id, k, colour]) => ({
    id, colour, cls: "", flat: false,
    points: rows.map((r) => ({ x: r[0], y: r[k], version: r[1], snapshots: r[4] })),
  }));
  let top = 0;
  for (const r of rows) top = Math.max(top, r[2], r[3]);
  const chips = (v) => v.toFixed(2);
  drawChart(document.getElementById("exploit-chart"), series, {
    prefix: "exploit", xKind: "time", yLabel: chips, yRange: [0, top * 1.1 || 1], height: 220,
    aria: "exploitability of the latest policy and of the league's mixture, in chips per hand",
    title: (s, last) => `${s.id} (v${last.version}${s.id === "mixture" ? `, ${last.snapshots} snapshots` : ""}): ${chips(last.y)} chips per hand`,
  });
  legend(document.getElementById("exploit-legend"), series);
}

// ---- refresh loop ---------------------------------------------------------------------------

let lastState = null;
let refreshTimer = null;
let requestSeq = 0;

function render(state) {
  const players = state.players || [];
  const { colours, kinds } = colourMap(players, Object.keys(state.elo_history || {}));
  renderHeader(state);
  renderLearners(state.learners, state.learner);
  renderHealth(state.health);
  renderLeague(state, colours);
  renderPayoff(state.payoff, state.league);
  renderElo(state, colours, kinds);
  renderStrength(state);
  renderExploitability(state);
  document.body.dataset.loaded = "1";
}

async function fetchState() {
  let response;
  try {
    response = await fetch(`api/state?${query()}`, { cache: "no-store" });
  } catch (err) {
    throw new Error(`dashboard server unreachable: ${err.message}`);
  }
  let body = null;
  try { body = await response.json(); } catch (_) { /* non-JSON body: reported below */ }
  if (!response.ok) {
    const err = new Error((body && body.error) || `HTTP ${response.status} ${response.statusText}`);
    err.learners = body && Array.isArray(body.learners) ? body.learners : null;
    throw err;
  }
  if (!body || typeof body !== "object") throw new Error("malformed /api/state response");
  return body;
}

async function refresh() {
  const seq = ++requestSeq;
  try {
    let state;
    try {
      state = await fetchState();
    } catch (err) {
      if (seq !== requestSeq) return;
      if (err.learners) renderLearners(err.learners, view.learner);  // an unknown learner: offer the run's
      // Keep the last good state on screen; the banner says why it is not updating.
      showBanner(lastState ? `${err.message} (showing last state)` : err.message);
      if (!lastState) {
        const badge = document.getElementById("run-badge");
        badge.textContent = "no data";
        badge.className = "badge badge-error";
      }
      return;
    }
    if (seq !== requestSeq) return;  // the view changed while this answer was on its way
    lastState = state;
    showBanner(null);
    try {
      render(state);
    } catch (err) {
      // A drawing bug is a page error, not a server one: record it where tests look.
      recordError(`render failed: ${err && err.stack ? err.stack : err}`);
      showBanner(`dashboard could not draw this state: ${err.message}`);
    }
  } finally {
    if (seq === requestSeq) {
      clearTimeout(refreshTimer);
      refreshTimer = setTimeout(refresh, REFRESH_MS);
    }
  }
}

function refreshNow() {
  clearTimeout(refreshTimer);
  refresh();
}

function bindToggle(attr, key) {
  const buttons = document.querySelectorAll(`.toggle button[data-${attr}]`);
  for (const button of buttons) {
    button.classList.toggle("active", button.dataset[attr] === view[key]);
    button.addEventListener("click", () => {
      view[key] = button.dataset[attr];
      saveView();
      for (const b of buttons) b.classList.toggle("active", b === button);
      if (lastState) render(lastState);
    });
  }
}

bindToggle("x", "x");
bindToggle("sx", "sx");
bindControls();
bindLearner();

let resizeTimer = null;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => { if (lastState) render(lastState); }, 150);
});

refresh();
