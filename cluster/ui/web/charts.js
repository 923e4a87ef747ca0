// selfplay dashboard: DOM and SVG helpers and one line chart with uncertainty bands, shared by the
// Elo chart and the strength chart (app.js). A classic script loaded before app.js: its top-level
// names are app.js's too. No libraries.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";

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

// ---- the line chart --------------------------------------------------------------------
// A series: {id, colour, cls (extra class of its line), flat (draw its last value across the
// chart: a pinned reference), points: [{x, y, lo, hi}]} with lo/hi null where unknown.

function linePath(points, sx, sy) {
  return points.map((p, i) => `${i ? "L" : "M"}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join("");
}

// One closed band per run of consecutive points whose interval is known.
function bandPath(points, sx, sy) {
  const runs = [];
  let run = [];
  for (const p of points) {
    if (!isNum(p.lo) || !isNum(p.hi)) { if (run.length) runs.push(run); run = []; } else run.push(p);
  }
  if (run.length) runs.push(run);
  return runs.map((r) => {
    const up = r.map((p, i) => `${i ? "L" : "M"}${sx(p.x).toFixed(1)},${sy(p.hi).toFixed(1)}`);
    const down = [...r].reverse().map((p) => `L${sx(p.x).toFixed(1)},${sy(p.lo).toFixed(1)}`);
    // A single point would collapse to a line; widen it so the interval stays visible.
    const extra = r.length === 1 ? `M${sx(r[0].x) - 3},${sy(r[0].hi)}h6V${sy(r[0].lo)}h-6` : "";
    return up.join("") + down.join("") + "Z" + extra;
  }).join("");
}

// Scales sized to the box's real pixel width, so that text is not scaled with the drawing.
// yRange fixes the y axis (a score's [0, 1]); otherwise it fits the data and its bands.
function chartFrame(series, W, H, yRange) {
  const m = { l: 52, r: 16, t: 12, b: 34 };
  // Plain loops: Math.min(...xs) overflows the argument limit on long histories.
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const s of series) for (const p of s.points) {
    x0 = Math.min(x0, p.x); x1 = Math.max(x1, p.x);
    y0 = Math.min(y0, isNum(p.lo) ? p.lo : p.y); y1 = Math.max(y1, isNum(p.hi) ? p.hi : p.y);
  }
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  if (yRange) {
    [y0, y1] = yRange;
  } else {
    const pad = Math.max((y1 - y0) * 0.08, 10);
    y0 -= pad; y1 += pad;
  }
  const sx = (x) => m.l + ((x - x0) / (x1 - x0)) * (W - m.l - m.r);
  const sy = (y) => H - m.b - ((y - y0) / (y1 - y0)) * (H - m.t - m.b);
  return { W, H, m, x0, x1, y0, y1, sx, sy };
}

// xKind: "time" (unix seconds, labelled as time elapsed), "version" (v12) or "count" (12.5k).
function drawGrid({ W, H, m, x0, x1, y0, y1, sx, sy }, xKind, yLabel) {
  const grid = svg("g", { class: "grid" });
  for (const v of niceTicks(y0, y1, 6)) {
    grid.appendChild(svg("line", { x1: m.l, x2: W - m.r, y1: sy(v), y2: sy(v) }));
    grid.appendChild(svg("text", { x: m.l - 6, y: sy(v) + 4, class: "tick y" }, yLabel(v)));
  }
  const xTicks = xKind === "time" ? timeTicks(x1 - x0, Math.max(3, Math.floor(W / 110))).map((d) => x0 + d)
    : niceTicks(x0, x1, Math.max(3, Math.floor(W / 110))).filter((v) => xKind !== "version" || Number.isInteger(v));
  for (const v of xTicks) {
    grid.appendChild(svg("line", { x1: sx(v), x2: sx(v), y1: m.t, y2: H - m.b, class: "vgrid" }));
    const label = xKind === "time" ? duration(v - x0) : xKind === "version" ? `v${v}` : compact(v);
    grid.appendChild(svg("text", { x: sx(v), y: H - m.b + 18, class: "tick x" }, label));
  }
  const caption = { time: `elapsed since ${clockTime(x0)}`, version: "learner version", count: "env steps" }[xKind];
  grid.appendChild(svg("text", { x: W - m.r, y: H - 2, class: "tick caption" }, caption));
  return grid;
}

// Draw `series` (drawn in order: the last on top) into `box`; `title(series, lastPoint)` is each
// line's tooltip; lines and bands get the classes `${prefix}-line` and `${prefix}-band`. Returns nothing; the lines and bands carry data-player = the series id.
function drawChart(box, series, { prefix, xKind, yLabel, yRange, height, aria, title }) {
  const frame = chartFrame(series, Math.max(box.clientWidth || 900, 320), height, yRange);
  const { W, m, sx, sy } = frame;
  const root = svg("svg", { viewBox: `0 0 ${W} ${frame.H}`, class: `chart-svg ${prefix}-svg`, role: "img", "aria-label": aria });
  root.appendChild(drawGrid(frame, xKind, yLabel));
  const bands = svg("g", { class: "bands" }), lines = svg("g", { class: "lines" });
  for (const s of series) {
    const pts = s.points;
    const last = pts[pts.length - 1];
    let line;
    if (s.flat) {
      line = svg("path", { d: `M${m.l},${sy(last.y).toFixed(1)}H${W - m.r}`, class: `${prefix}-line ${s.cls}`,
                           stroke: s.colour, "data-player": s.id });
    } else {
      if (pts.some((p) => isNum(p.lo) && isNum(p.hi))) {
        bands.appendChild(svg("path", { d: bandPath(pts, sx, sy), class: `${prefix}-band`, fill: s.colour,
                                        "data-player": s.id }));
      }
      line = svg("path", { d: linePath(pts, sx, sy), class: `${prefix}-line ${s.cls}`, stroke: s.colour,
                           "data-player": s.id });
      if (pts.length === 1) lines.appendChild(svg("circle", { cx: sx(last.x), cy: sy(last.y), r: 3, fill: s.colour }));
    }
    line.appendChild(svg("title", {}, title(s, last)));
    lines.appendChild(line);
  }
  root.append(bands, lines);
  box.replaceChildren(root);
}

function legend(box, series) {
  box.replaceChildren(...series.slice().reverse().map((s) => el("span", { class: "legend-item", "data-player": s.id },
    el("span", { class: `legend-line ${s.flat ? "dashed" : ""}`, style: `border-color:${s.colour}` }), s.id)));
}
