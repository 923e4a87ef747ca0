"""Fixed reference players: the anchors of the rating scale and sanity baselines.

Every policy has the signature ``fn(obs, mask, rng) -> int`` where ``obs`` is the
raw PettingZoo observation array from the mover's perspective and ``mask`` the
legal-action mask. Layouts, checked against the real environments:

- connect_four_v3: obs (6, 7, 2); channel 0 = mover's pieces, 1 = opponent's;
  row 0 is the top, row 5 the bottom; action c drops a piece into column c.
- tictactoe_v3: obs (3, 3, 2), same channels; action a is cell obs[a // 3, a % 3]
  (i.e. ``obs.reshape(9, 2)[a]``). Winning lines are symmetric under transpose,
  so the board module's own column-major comment does not matter here.

All randomness comes from the ``rng`` argument, so games are reproducible from seeds.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np

# The one definition of a scripted player's type; rollouts, matches and evaluators import it from here.
ScriptedFn = Callable[[np.ndarray, np.ndarray, np.random.Generator], int]


def _legal_actions(mask: np.ndarray) -> np.ndarray:
    legal = np.flatnonzero(np.asarray(mask))
    if legal.size == 0:
        raise ValueError("the action mask has no legal action; do not ask a policy to move in a finished game")
    return legal


def random_legal(obs: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> int:
    """Uniformly random legal action: the rating scale's zero point."""
    return int(rng.choice(_legal_actions(mask)))


# --- connect four ---------------------------------------------------------------

_C4_ROWS, _C4_COLS = 6, 7
_C4_DIRECTIONS = ((0, 1), (1, 0), (1, 1), (1, -1))


def _landing_row(occupied: np.ndarray, col: int) -> int | None:
    empty = np.flatnonzero(~occupied[:, col])
    return int(empty[-1]) if empty.size else None  # gravity: the lowest empty row


def _makes_four(pieces: np.ndarray, row: int, col: int) -> bool:
    """Would a piece at (row, col) complete four in a row for ``pieces``?"""
    for dr, dc in _C4_DIRECTIONS:
        count = 1
        for sign in (1, -1):
            r, c = row + sign * dr, col + sign * dc
            while 0 <= r < _C4_ROWS and 0 <= c < _C4_COLS and pieces[r, c]:
                count += 1
                r, c = r + sign * dr, c + sign * dc
        if count >= 4:
            return True
    return False


def _winning_columns(pieces: np.ndarray, occupied: np.ndarray, legal: np.ndarray) -> list[int]:
    wins = []
    for col in legal:
        row = _landing_row(occupied, int(col))
        if row is not None and _makes_four(pieces, row, int(col)):
            wins.append(int(col))
    return wins


def _c4_win_or_block(name: str, obs: np.ndarray, mask: np.ndarray, rng: np.random.Generator):
    """(column that wins now or blocks an immediate loss, or None; legal columns, own and opponent's pieces)."""
    if obs.shape != (_C4_ROWS, _C4_COLS, 2):
        raise ValueError(f"{name} expects a (6, 7, 2) connect_four_v3 observation; got {obs.shape}")
    legal = _legal_actions(mask)
    mine, theirs = obs[..., 0].astype(bool), obs[..., 1].astype(bool)
    for pieces in (mine, theirs):
        cols = _winning_columns(pieces, mine | theirs, legal)
        if cols:
            return int(rng.choice(cols)), legal, mine, theirs
    return None, legal, mine, theirs


def connect_four_immediate_wins(obs: np.ndarray, mask: np.ndarray) -> tuple[list[int], list[int]]:
    """(columns where the mover wins now, columns where the opponent would win if it moved now)."""
    legal = _legal_actions(mask)
    mine, theirs = obs[..., 0].astype(bool), obs[..., 1].astype(bool)
    return _winning_columns(mine, mine | theirs, legal), _winning_columns(theirs, mine | theirs, legal)


def connect_four_tactical(obs: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> int:
    """Win now if possible, else block the opponent's immediate win, else random.

    A one-ply bot: strong enough to beat random play almost always, weak enough
    that a learner soon overtakes it, which makes it a useful second anchor.
    """
    col, legal, _, _ = _c4_win_or_block("connect_four_tactical", obs, mask, rng)
    return col if col is not None else int(rng.choice(legal))


def connect_four_lookahead(obs: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> int:
    """Two plies: win now if possible, else block the opponent's immediate win, else never play
    under a cell where the opponent would then win (it would land there next), and among the
    remaining moves prefer the central columns (random among equals). Clearly stronger than
    ``tactical``; a held-out reference for agents trained against ``tactical``."""
    col, legal, mine, theirs = _c4_win_or_block("connect_four_lookahead", obs, mask, rng)
    if col is not None:
        return col
    occupied = mine | theirs
    safe = []
    for col in legal:
        row = _landing_row(occupied, int(col))
        above = row - 1
        if above >= 0 and _makes_four(theirs, above, int(col)):
            continue  # our piece here would let theirs land on a winning cell
        safe.append(int(col))
    options = safe or [int(c) for c in legal]
    centrality = [-abs(c - _C4_COLS // 2) for c in options]
    best = max(centrality)
    return int(rng.choice([c for c, k in zip(options, centrality) if k == best]))


# --- tic-tac-toe ------------------------------------------------------------------

_TTT_LINES = tuple(
    sum(1 << i for i in line)
    for line in ((0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6))
)
_TTT_FULL = (1 << 9) - 1


def _has_line(bits: int) -> bool:
    return any(bits & line == line for line in _TTT_LINES)


@lru_cache(maxsize=None)
def _negamax(mover: int, other: int) -> int:
    """Game value for the player to move, on bitboards: positive wins, 0 draws,
    negative loses. The magnitude is 1 + empty cells at the end, so a faster win
    (and a slower loss) scores higher: without it a forced win in three looks as
    good as winning now, and the bot would dawdle past an immediate win."""
    if _has_line(other):
        return -(1 + 9 - bin(mover | other).count("1"))  # the previous move won
    if mover | other == _TTT_FULL:
        return 0
    free = _TTT_FULL & ~(mover | other)
    return max(-_negamax(other, mover | (1 << a)) for a in range(9) if free >> a & 1)


def _bits(cells: np.ndarray) -> int:
    return sum(1 << int(i) for i in np.flatnonzero(cells))


def tictactoe_move_values(obs: np.ndarray, mask: np.ndarray) -> dict[int, int]:
    """Negamax value of every legal move for the player to move (see _negamax)."""
    if obs.shape != (3, 3, 2):
        raise ValueError(f"tictactoe_minimax expects a (3, 3, 2) tictactoe_v3 observation; got {obs.shape}")
    legal = _legal_actions(mask)
    flat = obs.reshape(9, 2)
    mover, other = _bits(flat[:, 0]), _bits(flat[:, 1])
    return {int(a): -_negamax(other, mover | (1 << int(a))) for a in legal}


def tictactoe_minimax(obs: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> int:
    """Perfect play (never loses; wins as fast as it can). Ties between equally good
    moves are broken with ``rng`` so the reference is not one fixed line that a
    learner could memorise."""
    values = tictactoe_move_values(obs, mask)
    best = max(values.values())
    return int(rng.choice([a for a, v in values.items() if v == best]))


# --- registry -----------------------------------------------------------------------

def _registry() -> tuple[dict[str, dict[str, ScriptedFn]], dict[tuple[str, str], dict[str, ScriptedFn]]]:
    """(references per game, references per (game, role)); the poker and MPE players live in their
    own modules (actors/poker_refs.py, actors/mpe_refs.py), which import ScriptedFn from here."""
    from actors.mpe_refs import ROLE_REFERENCES
    from actors.poker_refs import hand_strength

    poker = {"random": random_legal, "hand_strength": hand_strength}
    per_game = {
        "connect_four_v3": {"random": random_legal, "tactical": connect_four_tactical, "lookahead": connect_four_lookahead},
        "tictactoe_v3": {"random": random_legal, "minimax": tictactoe_minimax},
        "texas_holdem_no_limit_v6": poker,
        "texas_holdem_v4": poker,
        "leduc_holdem_v4": poker,
    }
    return per_game, {key: {"random": random_legal, **refs} for key, refs in ROLE_REFERENCES.items()}


REFERENCES, ROLE_REFERENCES = _registry()
GENERIC_REFERENCES: dict[str, ScriptedFn] = {"random": random_legal}


def references_for(game_name: str, spec=None) -> dict[str, ScriptedFn]:
    """Reference players for a game; any game without scripted bots gets random only. Given the
    game's spec (actors/games.py), a Box game's random player acts uniformly within its bounds,
    and one role's spec (spec.role(name)) gives that role's references (simple_tag's predators
    get a chaser, its prey an evader).

    Returns a fresh dict so callers can add or drop entries without touching the registry.
    """
    if spec is not None and spec.continuous:
        from actors.action_spaces import UniformBox

        return {"random": UniformBox(spec.action_low, spec.action_high)}
    role = getattr(spec, "role_name", "") if spec is not None else ""
    if role:
        return dict(ROLE_REFERENCES.get((game_name, role), GENERIC_REFERENCES))
    return dict(REFERENCES.get(game_name, GENERIC_REFERENCES))
