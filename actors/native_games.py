"""Our own implementations of PettingZoo games whose stepping costs more than the learning it feeds.

PettingZoo's connect_four_v3 spends ~80 us per move in wrappers, Python lists and a full-board
win scan; on a 2-core machine that made the rollout actors, not the learner, the biggest user of
CPU. `ConnectFourSlot` plays the same game with the same observations, masks, rewards and seat order
behind GameSlot's interface, at a fraction of the cost (a move touches only the lines through the
cell it fills). tests/test_native_games.py plays thousands of random games move by move against
PettingZoo's own environment and requires identical observations, masks, rewards and results.

`game.native: false` turns this off and steps PettingZoo's environment instead.
"""

from __future__ import annotations

import numpy as np

from actors.games import GameError, GameSpec, scores_from_returns

ROWS, COLS = 6, 7


def _lines_through_cells() -> list[list[tuple[int, ...]]]:
    """For each cell (row-major, row 0 = top), every line of four cells that contains it."""
    lines = []
    for r in range(ROWS):
        for c in range(COLS):
            for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
                cells = [(r + k * dr, c + k * dc) for k in range(4)]
                if all(0 <= rr < ROWS and 0 <= cc < COLS for rr, cc in cells):
                    lines.append(tuple(rr * COLS + cc for rr, cc in cells))
    through: list[list[tuple[int, ...]]] = [[] for _ in range(ROWS * COLS)]
    for line in lines:
        for cell in line:
            through[cell].append(line)
    return through


_THROUGH = _lines_through_cells()


class ConnectFourSlot:
    """connect_four_v3, one game, with GameSlot's attributes and methods (see actors/games.py).

    The observation is PettingZoo's: int8 (6, 7, 2), channel 0 the mover's pieces, channel 1 the
    opponent's, row 0 the top; the mask marks columns whose top cell is empty. player_0 moves first;
    a win gives the winner +1 and the loser -1 on the winning move; a full board is a draw (0, 0).
    """

    name = "connect_four_v3"
    agents = ("player_0", "player_1")
    num_actions = COLS
    sides = ((0,), (1,))
    side_of = (0, 1)
    num_sides = 2
    simultaneous = False
    truncated: dict = {}  # connect four has no time limit: never truncated
    left: frozenset = frozenset()  # no agent leaves a game of connect four before it ends

    def __init__(self) -> None:
        self._board = [0] * (ROWS * COLS)  # 0 empty, 1 player_0, 2 player_1
        self._heights = [0] * COLS
        self._planes = np.zeros((2, ROWS, COLS), np.int8)  # per seat: its pieces
        self.over = True
        self.seat = self.side = 0
        self.returns = [0.0, 0.0]
        self.length = 0
        self.raw_obs = np.zeros((ROWS, COLS, 2), np.int8)
        self.obs = np.zeros(ROWS * COLS * 2, np.float32)
        self.mask = np.zeros(COLS, bool)

    def spec(self) -> GameSpec:
        return GameSpec(self.name, self.agents, (ROWS, COLS, 2), COLS)

    def reset(self, seed: int | None = None) -> None:
        """`seed` is accepted for GameSlot's interface; the game has no randomness."""
        self._board = [0] * (ROWS * COLS)
        self._heights = [0] * COLS
        self._planes[:] = 0
        self.over = False
        self.seat = self.side = 0
        self.returns = [0.0, 0.0]
        self.length = 0
        self._observe()

    def step(self, action: int) -> list[float]:
        """Drop the mover's piece into column `action`; return the reward each seat received."""
        a = int(action)
        if not (0 <= a < COLS) or self.over or not self.mask[a]:
            raise GameError(f"illegal action {action} for seat {self.seat} (mask {self.mask.astype(int).tolist()})")
        seat = self.seat
        row = ROWS - 1 - self._heights[a]
        cell = row * COLS + a
        piece = seat + 1
        board = self._board
        board[cell] = piece
        self._heights[a] += 1
        self._planes[seat, row, a] = 1
        self.length += 1
        won = any(all(board[x] == piece for x in line) for line in _THROUGH[cell])
        rewards = [0.0, 0.0]
        if won:
            rewards[seat], rewards[1 - seat] = 1.0, -1.0
            self.returns[seat] += 1.0
            self.returns[1 - seat] -= 1.0
            self.over = True
        elif self.length == ROWS * COLS:
            self.over = True
        self.seat = self.side = 1 - seat
        if not self.over:
            self._observe()
        return rewards

    def _observe(self) -> None:
        me = self.seat
        raw = np.empty((ROWS, COLS, 2), np.int8)
        raw[..., 0] = self._planes[me]
        raw[..., 1] = self._planes[1 - me]
        self.raw_obs = raw
        self.obs = raw.astype(np.float32).reshape(-1)
        self.mask = np.array([h < ROWS for h in self._heights], bool)

    def scores(self) -> tuple[float, float]:
        return scores_from_returns(self.returns)


NATIVE_GAMES = {"connect_four_v3": ConnectFourSlot}


def native_slot_factory(name: str, kwargs: dict | None):
    """Our implementation of `name`, or None when there is none or the game is given kwargs
    (render modes and the like are PettingZoo's to serve)."""
    if kwargs:
        return None
    return NATIVE_GAMES.get(name)
