// selfplay live dashboard. No libraries: the DOM and SVG are built by hand.
//
// GET /api/state returns:
// { run_id, game, updated_at (unix s), running (bool),
//   players: [{id, kind: learner|snapshot|reference, version, elo, elo_stderr, games,
//              win_rate_vs_random}],
//   elo_history: [{t, learner_version, ratings: {id: [elo, stderr|null]}}],   ordered by t
//   payoff: {players: [id], win_rate: [[p|null]], games: [[n]]},
//   health: {learner_version, env_steps, env_steps_per_s, games, samples_per_s,
//            staleness: {min, mean, max}, sample_reuse, dropped_stale} }
// Any field may be null or empty; the page must still draw. A non-200 answer carries
// {"error": message}, which is shown in a banner while the last good state stays up.
"use strict";

const REFRESH_MS = 2000;
const SVG_NS = "http://www.w3.org/2000/svg";
const Z95 = 1.96;

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

// ---- small helpers ---------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttrs(node, attrs);
  if (text !== undefined) node.textContent = text;
  return node;
}

function setAttrs(node, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== null && v !== undefined) node.setAttribute(k, String(v));
  }
}

const isNum = (x) => typeof x === "number" && Number.isFinite(x);
const fmt = (x, digits = 0) => (isNum(x) ? x.toFixed(digits) : "—");
const pct = (x) => (isNum(x) ? `${(100 * x).toFixed(0)}%` : "—");

function compact(x) {
  if (!isNum(x)) return "—";
  const a = Math.abs(x);
  if (a >= 1e9) return `${(x / 1e9).toFixed(2)}G`;
  if (a >= 1e6) return `${(x / 1e6).toFixed(2)}M`;
  if (a >= 1e4) return `${(x / 1e3).toFixed(1)}k`;
  if (a >= 100) return Math.round(x).toLocaleString("en-US");
  return Number.isInteger(x) ? String(x) : x.toFixed(1);
}

function clockTime(unixSeconds) {
  if (!isNum(unixSeconds)) return "—";
  return new Date(unixSeconds * 1000).toLocaleTimeString([], { hour12: false });
}

function duration(seconds) {
  const s = Math.round(seconds);
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  const h = Math.floor(s / 3600);
  const m = Math.round((s % 3600) / 60);
  return m ? `${h}h${String(m).padStart(2, "0")}` : `${h}h`;
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

// ---- league table ---------------------------------------------------------------------

function renderLeague(players, colours) {
  const sorted = [...players].sort((a, b) => (isNum(b.elo) ? b.elo : -Infinity) - (isNum(a.elo) ? a.elo : -Infinity));
  const rows = sorted.map((p, i) => {
    const elo = isNum(p.elo_stderr) ? `${fmt(p.elo)} ± ${fmt(p.elo_stderr)}` : fmt(p.elo);
    return el("tr", { "data-player": p.id, class: `kind-${p.kind}` },
      el("td", { class: "rank" }, String(i + 1)),
      el("td", { class: "player" },
        el("span", { class: "swatch", style: `background:${colours.get(p.id)}` }), p.id),
      el("td", {}, el("span", { class: `kind kind-${p.kind}` }, p.kind || "?")),
      el("td", { class: "num" }, fmt(p.version)),
      el("td", { class: "num", title: "Elo ± standard error" }, elo),
      el("td", { class: "num" }, compact(p.games)),
      el("td", { class: "num" }, pct(p.win_rate_vs_random)));
  });
  document.querySelector("#league tbody").replaceChildren(...rows);
  document.getElementById("league-empty").hidden = rows.length > 0;
}

// ---- payoff heat map ------------------------------------------------------------------

// Diverging scale: red (row loses) -> neutral -> blue (row wins).
function winColour(p) {
  const lo = [214, 96, 77], mid = [74, 80, 94], hi = [67, 147, 195];
  const [a, b, t] = p < 0.5 ? [lo, mid, p / 0.5] : [mid, hi, (p - 0.5) / 0.5];
  const c = a.map((v, i) => Math.round(v + (b[i] - v) * t));
  return `rgb(${c.join(",")})`;
}

function renderPayoff(payoff) {
  const box = document.getElementById("payoff");
  const ids = (payoff && payoff.players) || [];
  if (!ids.length) {
    box.replaceChildren(el("p", { class: "empty" }, "No games played yet."));
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
}

// ---- Elo chart ------------------------------------------------------------------------

// x axis of the Elo chart: "t" (elapsed time) or "learner_version"; "#x=learner_version"
// in the URL picks it, so a view can be bookmarked.
const X_KEYS = ["t", "learner_version"];
let xKey = X_KEYS.find((k) => location.hash === `#x=${k}`) || "t";

// Elapsed-time ticks land on round seconds/minutes/hours rather than decimal steps.
const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800,
                    21600, 43200, 86400];
function timeTicks(span, count) {
  const step = TIME_STEPS.find((s) => span / s <= count) || 86400 * Math.ceil(span / count / 86400);
  const ticks = [];
  for (let v = 0; v <= span + 1e-9; v += step) ticks.push(v);
  return ticks;
}

function niceTicks(lo, hi, count) {
  const span = hi - lo || 1;
  const raw = span / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => span / s <= count) || 10 * mag;
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) ticks.push(v);
  return ticks;
}

// Turn history into per-player series of {x, y, s} with s = stderr (or null).
function seriesFrom(history) {
  const series = new Map();
  for (const point of history) {
    const x = point[xKey];
    if (!isNum(x)) continue;
    for (const [id, r] of Object.entries(point.ratings || {})) {
      const [y, s] = Array.isArray(r) ? r : [r, null];
      if (!isNum(y)) continue;
      if (!series.has(id)) series.set(id, []);
      series.get(id).push({ x, y, s: isNum(s) ? s : null });
    }
  }
  return series;
}

function linePath(points, sx, sy) {
  return points.map((p, i) => `${i ? "L" : "M"}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join("");
}

// One closed band per run of consecutive points whose stderr is known.
function bandPath(points, sx, sy) {
  const runs = [];
  let run = [];
  for (const p of points) {
    if (p.s === null) { if (run.length) runs.push(run); run = []; } else run.push(p);
  }
  if (run.length) runs.push(run);
  return runs.map((r) => {
    const up = r.map((p, i) => `${i ? "L" : "M"}${sx(p.x).toFixed(1)},${sy(p.y + Z95 * p.s).toFixed(1)}`);
    const down = [...r].reverse().map((p) => `L${sx(p.x).toFixed(1)},${sy(p.y - Z95 * p.s).toFixed(1)}`);
    // A single point would collapse to a line; widen it so the interval stays visible.
    const extra = r.length === 1 ? `M${sx(r[0].x) - 3},${sy(r[0].y + Z95 * r[0].s)}h6V${sy(r[0].y - Z95 * r[0].s)}h-6` : "";
    return up.join("") + down.join("") + "Z" + extra;
  }).join("");
}

// Scales for the Elo chart, sized to the box's real pixel width so that text is not
// scaled along with the drawing.
function chartFrame(series, W, H) {
  const m = { l: 52, r: 16, t: 12, b: 34 };
  // Plain loops: Math.min(...xs) overflows the argument limit on long histories.
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const pts of series.values()) for (const p of pts) {
    const half = Z95 * (p.s || 0);
    x0 = Math.min(x0, p.x); x1 = Math.max(x1, p.x);
    y0 = Math.min(y0, p.y - half); y1 = Math.max(y1, p.y + half);
  }
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  const pad = Math.max((y1 - y0) * 0.08, 10);
  y0 -= pad; y1 += pad;
  const sx = (x) => m.l + ((x - x0) / (x1 - x0)) * (W - m.l - m.r);
  const sy = (y) => H - m.b - ((y - y0) / (y1 - y0)) * (H - m.t - m.b);
  return { W, H, m, x0, x1, y0, y1, sx, sy };
}

function drawGrid({ W, H, m, x0, x1, y0, y1, sx, sy }) {
  const grid = svg("g", { class: "grid" });
  for (const v of niceTicks(y0, y1, 6)) {
    grid.appendChild(svg("line", { x1: m.l, x2: W - m.r, y1: sy(v), y2: sy(v) }));
    grid.appendChild(svg("text", { x: m.l - 6, y: sy(v) + 4, class: "tick y" }, fmt(v)));
  }
  const xTicks = xKey === "t" ? timeTicks(x1 - x0, Math.max(3, Math.floor(W / 110))).map((d) => x0 + d)
                              : niceTicks(x0, x1, 8).filter((v) => Number.isInteger(v));
  for (const v of xTicks) {
    grid.appendChild(svg("line", { x1: sx(v), x2: sx(v), y1: m.t, y2: H - m.b, class: "vgrid" }));
    const label = xKey === "t" ? duration(v - x0) : `v${v}`;
    grid.appendChild(svg("text", { x: sx(v), y: H - m.b + 18, class: "tick x" }, label));
  }
  const caption = xKey === "t" ? `elapsed since ${clockTime(x0)}` : "learner version";
  grid.appendChild(svg("text", { x: W - m.r, y: H - 2, class: "tick caption" }, caption));
  return grid;
}

function renderElo(state, colours, kinds) {
  const box = document.getElementById("elo-chart");
  const series = seriesFrom(state.elo_history || []);
  if (!series.size) {
    box.replaceChildren(el("p", { class: "empty" }, "No rating history yet."));
    document.getElementById("elo-legend").replaceChildren();
    return;
  }
  const frame = chartFrame(series, Math.max(box.clientWidth || 900, 320), 360);
  const { W, m, sx, sy } = frame;
  const root = svg("svg", { viewBox: `0 0 ${W} ${frame.H}`, class: "elo-svg", role: "img",
                            "aria-label": "Elo rating over time per player" });
  root.appendChild(drawGrid(frame));

  // Draw snapshots first, references next, the learner last so it sits on top.
  const order = (id) => ({ learner: 2, reference: 1 }[kinds.get(id)] || 0);
  const ids = [...series.keys()].sort((a, b) => order(a) - order(b));
  const bands = svg("g", { class: "bands" }), lines = svg("g", { class: "lines" });
  for (const id of ids) {
    const pts = series.get(id);
    const colour = colours.get(id) || "#888";
    const last = pts[pts.length - 1];
    const title = svg("title", {}, `${id}: ${fmt(last.y)}${last.s !== null ? ` ± ${fmt(Z95 * last.s)}` : ""}`);
    let line;
    if (kinds.get(id) === "reference") {
      // A reference is pinned, so draw its latest rating across the whole chart.
      line = svg("path", { d: `M${m.l},${sy(last.y).toFixed(1)}H${W - m.r}`, class: "elo-line reference",
                           stroke: colour, "data-player": id });
    } else {
      if (pts.some((p) => p.s !== null)) {
        bands.appendChild(svg("path", { d: bandPath(pts, sx, sy), class: "elo-band", fill: colour,
                                        "data-player": id }));
      }
      line = svg("path", { d: linePath(pts, sx, sy), class: `elo-line kind-${kinds.get(id) || "snapshot"}`,
                           stroke: colour, "data-player": id });
      if (pts.length === 1) {
        lines.appendChild(svg("circle", { cx: sx(last.x), cy: sy(last.y), r: 3, fill: colour }));
      }
    }
    line.appendChild(title);
    lines.appendChild(line);
  }
  root.append(bands, lines);
  box.replaceChildren(root);

  const legend = ids.slice().reverse().map((id) => el("span", { class: "legend-item", "data-player": id },
    el("span", { class: `legend-line ${kinds.get(id) === "reference" ? "dashed" : ""}`,
                 style: `border-color:${colours.get(id)}` }), id));
  document.getElementById("elo-legend").replaceChildren(...legend);
}

// ---- refresh loop ---------------------------------------------------------------------

let lastState = null;

function render(state) {
  const players = state.players || [];
  const historyIds = (state.elo_history || []).flatMap((p) => Object.keys(p.ratings || {}));
  const { colours, kinds } = colourMap(players, historyIds);
  renderHeader(state);
  renderHealth(state.health);
  renderLeague(players, colours);
  renderPayoff(state.payoff);
  renderElo(state, colours, kinds);
  document.body.dataset.loaded = "1";
}

async function fetchState() {
  let response;
  try {
    response = await fetch("api/state", { cache: "no-store" });
  } catch (err) {
    throw new Error(`dashboard server unreachable: ${err.message}`);
  }
  let body = null;
  try { body = await response.json(); } catch (_) { /* non-JSON body: reported below */ }
  if (!response.ok) {
    throw new Error((body && body.error) || `HTTP ${response.status} ${response.statusText}`);
  }
  if (!body || typeof body !== "object") throw new Error("malformed /api/state response");
  return body;
}

async function refresh() {
  try {
    let state;
    try {
      state = await fetchState();
    } catch (err) {
      // Keep the last good state on screen; the banner says why it is not updating.
      showBanner(lastState ? `${err.message} (showing last state)` : err.message);
      if (!lastState) {
        const badge = document.getElementById("run-badge");
        badge.textContent = "no data";
        badge.className = "badge badge-error";
      }
      return;
    }
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
    setTimeout(refresh, REFRESH_MS);
  }
}

for (const button of document.querySelectorAll(".toggle button")) {
  button.classList.toggle("active", button.dataset.x === xKey);
  button.addEventListener("click", () => {
    xKey = button.dataset.x;
    history.replaceState(null, "", `#x=${xKey}`);
    for (const b of document.querySelectorAll(".toggle button")) b.classList.toggle("active", b === button);
    if (lastState) render(lastState);
  });
}

let resizeTimer = null;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => { if (lastState) render(lastState); }, 150);
});

refresh();
