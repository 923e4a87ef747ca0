// selfplay play page: a person against a policy, one click per move. No libraries.
//
// GET  /api/play/options            -> {game, players: [id], unplayable: message|null}
// POST /api/play/new  {player, first, sample}  -> game
// POST /api/play/move {id, action}  -> game, the policy's reply already played
// game: {id, game, player, version, rows, cols, drop, grid: [[0|1|2]], moves, human_piece: 1|2,
//        your_turn, legal: [action], outcome: win|loss|draw|null, result: text|null}
// Cells are grid[row][col], row 0 the top; an action is a column (drop) or row * cols + col.
// The board is drawn by board.js (shared with the replay page), loaded before this file.
// A non-200 answer carries {"error": message}, shown in the banner.
"use strict";

// The #errors banner (recordError) comes from board.js.
const $ = (id) => document.getElementById(id);
let current = null; // the game being shown
let busy = false; // a move is on its way: further clicks wait

function showError(message) {
  const banner = $("banner");
  banner.hidden = !message;
  banner.textContent = message || "";
}

async function api(method, path, body) {
  const resp = await fetch(path, {
    method,
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await resp.json();
  if (!resp.ok) throw new Error(data.error || `${method} ${path}: HTTP ${resp.status}`);
  return data;
}

function render(game) {
  current = game;
  const board = $("board");
  drawBoard(board, game, game.grid, new Set(game.legal), move); // board.js
  board.dataset.moves = String(game.moves.length);
  const status = $("status");
  status.dataset.outcome = game.outcome || "";
  status.textContent = game.result ? game.result : game.your_turn ? "your move" : "the policy is thinking";
  const you = game.drop ? ["yellow", "red"][game.human_piece - 1] : PIECE_TEXT[game.human_piece];
  $("legend").textContent = `you are ${you}; ${game.player} (learner version ${game.version}) plays the other side` +
    (game.drop ? "; click a column to drop a piece" : "; click a cell");
  document.body.dataset.game = game.id;
  document.body.dataset.state = game.outcome ? "over" : game.your_turn ? "your-turn" : "waiting";
}

async function move(action) {
  if (busy || !current || !current.your_turn) return;
  busy = true;
  document.body.dataset.state = "waiting";
  try {
    render(await api("POST", "/api/play/move", { id: current.id, action }));
    showError(null);
  } catch (err) {
    showError(err.message);
    if (current) render(current);
  } finally {
    busy = false;
  }
}

async function newGame() {
  try {
    render(await api("POST", "/api/play/new", {
      player: $("player").value,
      first: $("side-first").checked,
      sample: $("sample").checked,
    }));
    showError(null);
  } catch (err) {
    showError(err.message);
  }
}

async function start() {
  try {
    const opts = await api("GET", "/api/play/options");
    $("game").textContent = opts.game || "";
    const select = $("player");
    for (const id of opts.players) {
      const option = document.createElement("option");
      option.value = id;
      option.textContent = id;
      select.appendChild(option);
    }
    const hash = new URLSearchParams(location.hash.slice(1)); // #player=v000120 preselects one
    if (hash.get("player") && opts.players.includes(hash.get("player"))) select.value = hash.get("player");
    if (opts.unplayable || !opts.players.length) {
      showError(opts.unplayable || "no policy to play yet: the run has published no weights");
      $("new-game").disabled = true;
    }
    $("new-game").addEventListener("click", newGame);
    document.body.dataset.loaded = "1";
  } catch (err) {
    showError(err.message);
  }
}

start();
