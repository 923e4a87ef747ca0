// A grid board drawn as buttons, shared by the play page (play.js) and the replay page (replay.js).
// No libraries.
//
// drawBoard(container, shape, grid, legal, onMove): shape {rows, cols, drop}; grid[row][col] in
// 0 (empty), 1 (the first player's piece), 2 (the second's), row 0 the top; legal a Set of the actions
// that may be clicked (empty: none); onMove(action) called on a click. An action is a column (drop)
// or row * cols + col. Each cell carries data-row, data-col, data-piece and data-action for tests.
"use strict";

// The page's #errors banner, shared by the play and replay pages: every script error lands there.
const errorBox = document.getElementById("errors");
function recordError(message) {
  errorBox.dataset.count = String(Number(errorBox.dataset.count || 0) + 1);
  errorBox.hidden = false;
  errorBox.appendChild(document.createTextNode(String(message)));
}
window.onerror = (message, source, line) => recordError(`${message} (${source}:${line})`);
window.addEventListener("unhandledrejection", (ev) => recordError(`unhandled rejection: ${ev.reason}`));

const PIECE_TEXT = ["", "X", "O"];

function actionOf(shape, row, col) {
  return shape.drop ? col : row * shape.cols + col;
}

function drawBoard(container, shape, grid, legal, onMove) {
  container.replaceChildren();
  container.className = `board ${shape.drop ? "drops" : "cells"}`;
  container.style.gridTemplateColumns = `repeat(${shape.cols}, 56px)`;
  for (let r = 0; r < shape.rows; r++) {
    for (let c = 0; c < shape.cols; c++) {
      const piece = grid[r][c];
      const action = actionOf(shape, r, c);
      const playable = piece === 0 && legal.has(action);
      const cell = document.createElement("button");
      cell.type = "button";
      cell.className = `square${piece ? ` p${piece}` : ""}${playable ? " legal" : ""}`;
      cell.dataset.row = String(r);
      cell.dataset.col = String(c);
      cell.dataset.piece = String(piece);
      cell.dataset.action = String(action);
      cell.textContent = shape.drop ? "" : PIECE_TEXT[piece];
      cell.disabled = !(shape.drop ? legal.has(action) : playable);
      if (onMove) cell.addEventListener("click", () => onMove(action));
      container.appendChild(cell);
    }
  }
}
