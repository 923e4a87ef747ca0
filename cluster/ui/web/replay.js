// selfplay replay page: the rating games evaluators kept, stepped through move by move. No libraries.
//
// GET /api/replays                                  -> {pairs: [{player, opponent, games}], total, truncated}
// GET /api/replays/games?player=P&opponent=R        -> {player, opponent, games: [summary], total, truncated}
//   (bounded pages: the first 200 pairs, the newest 50 games of a pair; cluster/ui/replay.py)
// GET /api/replays/game?player=P&opponent=R&index=I -> summary + {rows, cols, drop, frames: [frame]}
// summary: {index, game_id, game, players, versions, rated_seat, result, moves, finished_at}
// frame:   {move, action, caption, text, grid: [[0|1|2]] | null}   (null: drawn as text instead)
// The server replays the moves through the game; this page only shows its frames. The board is
// drawn by board.js (shared with the play page). #player=P&opponent=R&index=I opens a game directly.
// A non-200 answer carries {"error": message}, shown in the banner.
"use strict";

// The #errors banner (recordError) comes from board.js.
const $ = (id) => document.getElementById(id);
let replay = null; // the game being shown
let step = 0; // the frame shown: 0 the start, replay.frames.length - 1 the end

function showError(message) {
  const banner = $("banner");
  banner.hidden = !message;
  banner.textContent = message || "";
}

async function api(path) {
  const resp = await fetch(path);
  const data = await resp.json();
  if (!resp.ok) throw new Error(data.error || `GET ${path}: HTTP ${resp.status}`);
  return data;
}

function query(pair, extra) {
  const q = new URLSearchParams({ player: pair.player, opponent: pair.opponent, ...extra });
  return q.toString();
}

function selectedPair() {
  const [player, opponent] = JSON.parse($("pair").value || "[]");
  return { player, opponent };
}

function seatText(r, seat) {
  const colour = r.drop ? `, ${["yellow", "red"][seat]}` : ""; // the captions call connect four's pieces X and O too
  const piece = r.rows ? ` (${PIECE_TEXT[1 + seat]}${colour})` : "";
  const version = r.versions[seat] >= 0 ? ` v${r.versions[seat]}` : "";
  return `${r.players[seat]}${piece}${version}`;
}

function show(k) {
  step = Math.max(0, Math.min(k, replay.frames.length - 1));
  const frame = replay.frames[step];
  const end = replay.frames.length - 1;
  const board = $("board");
  if (frame.grid) {
    drawBoard(board, replay, frame.grid, new Set(), null); // board.js: nothing to click
    if (frame.action !== null) {
      // The piece just played: a cell, or the highest piece of the column it dropped into.
      const cells = [...board.querySelectorAll(".square")].filter((c) =>
        replay.drop ? c.dataset.col === String(frame.action) && c.dataset.piece !== "0" : c.dataset.action === String(frame.action));
      if (cells.length) cells[0].classList.add("last");
    }
  } else {
    $("text-board").textContent = frame.text;
  }
  board.hidden = !frame.grid;
  $("text-board").hidden = Boolean(frame.grid);
  board.dataset.move = String(step);
  $("caption").textContent = frame.caption;
  $("counter").textContent = `move ${step} of ${end}`;
  $("result").textContent = step === end ? `result: ${replay.result}` : "";
  $("first").disabled = $("prev").disabled = step === 0;
  $("last").disabled = $("next").disabled = step === end;
  document.body.dataset.step = String(step);
}

async function loadGame() {
  const pair = selectedPair();
  const index = $("index").value;
  if (!pair.player || index === "") return;
  document.body.dataset.state = "loading";
  try {
    replay = await api(`/api/replays/game?${query(pair, { index })}`);
    $("game").textContent = replay.game;
    $("players").textContent = `${seatText(replay, 0)} moves first against ${seatText(replay, 1)}; ` +
      `game ${replay.game_id}, finished ${new Date(replay.finished_at * 1000).toLocaleString()}`;
    document.body.dataset.game = replay.game_id;
    show(0);
    showError(null);
    document.body.dataset.state = "ready";
  } catch (err) {
    showError(err.message);
    document.body.dataset.state = "error";
  }
}

async function loadPair(wantIndex) {
  const pair = selectedPair();
  const list = await api(`/api/replays/games?${query(pair, {})}`);
  const select = $("index");
  select.replaceChildren();
  for (const g of list.games) {
    const option = document.createElement("option");
    option.value = String(g.index);
    option.textContent = `${g.index}: ${g.result} in ${g.moves} moves (${g.players[0]} first)`;
    select.appendChild(option);
  }
  const n = Number.isInteger(list.total) ? list.total : list.games.length;  // indices count every kept game
  const want = Number.isInteger(wantIndex) ? ((wantIndex % n) + n) % n : n - 1; // default: the newest
  select.value = String(want);
  if (select.selectedIndex < 0) select.selectedIndex = select.options.length - 1;  // older than those listed
  await loadGame();
}

async function start() {
  try {
    const { pairs } = await api("/api/replays");
    const select = $("pair");
    for (const p of pairs) {
      const option = document.createElement("option");
      option.value = JSON.stringify([p.player, p.opponent]);
      option.textContent = `${p.player} vs ${p.opponent} (${p.games})`;
      select.appendChild(option);
    }
    if (!pairs.length) {
      showError("no replays kept yet: evaluators keep the last eval.replays_per_pair rating games of each pair");
      document.body.dataset.loaded = "1";
      return;
    }
    const hash = new URLSearchParams(location.hash.slice(1));
    const wanted = JSON.stringify([hash.get("player"), hash.get("opponent")]);
    if ([...select.options].some((o) => o.value === wanted)) select.value = wanted;
    const index = hash.has("index") ? Number(hash.get("index")) : undefined;
    select.addEventListener("change", () => loadPair().catch((err) => showError(err.message)));
    $("index").addEventListener("change", loadGame);
    $("first").addEventListener("click", () => show(0));
    $("prev").addEventListener("click", () => show(step - 1));
    $("next").addEventListener("click", () => show(step + 1));
    $("last").addEventListener("click", () => show(Infinity));
    document.addEventListener("keydown", (ev) => {
      if (!replay || ev.target.tagName === "SELECT") return;
      const to = { ArrowLeft: step - 1, ArrowRight: step + 1, Home: 0, End: Infinity }[ev.key];
      if (to !== undefined) show(to);
    });
    await loadPair(index);
    document.body.dataset.loaded = "1";
  } catch (err) {
    showError(err.message);
  }
}

start();
