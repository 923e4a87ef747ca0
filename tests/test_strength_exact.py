"""benchmarks/strength_parts.py: the exact tic-tac-toe tree walk on hand-checkable players, checked
against a second, independent enumeration (plain Python boards, no PettingZoo), and the summary
over seeds. No training, no services."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from actors.games import load_game
from benchmarks.strength_parts import exact_losses, exact_tictactoe, seed_summary, summarize

LINES = ((0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6))


class FirstLegal:
    """A greedy 'policy' that always plays the lowest legal action."""

    recurrent = False

    def act(self, obs, mask, rng, greedy=True):
        return np.array([int(np.flatnonzero(mask[0])[0])]), None, None


def _winner(board: tuple) -> int | None:
    for a, b, c in LINES:
        if board[a] is not None and board[a] == board[b] == board[c]:
            return board[a]
    return None


@lru_cache(maxsize=None)
def _value(board: tuple, mover: int) -> int:
    """Negamax with the scripted bot's preference for fast wins: +-(1 + empty cells), 0 a draw."""
    if _winner(board) is not None:
        return -(1 + board.count(None))  # the previous mover won
    if None not in board:
        return 0
    return max(-_value(_play(board, a, mover), 1 - mover) for a in range(9) if board[a] is None)


def _play(board: tuple, a: int, mover: int) -> tuple:
    return board[:a] + (mover,) + board[a + 1 :]


def _random(board: tuple, mover: int) -> list[tuple[int, float]]:
    free = [a for a in range(9) if board[a] is None]
    return [(a, 1 / len(free)) for a in free]


def _minimax(board: tuple, mover: int) -> list[tuple[int, float]]:
    values = {a: -_value(_play(board, a, mover), 1 - mover) for a in range(9) if board[a] is None}
    best = [a for a, v in values.items() if v == max(values.values())]
    return [(a, 1 / len(best)) for a in best]


def _loss_probability(seat: int, opponent, board: tuple = (None,) * 9, mover: int = 0) -> float:
    """P(first-legal in `seat` loses) against `opponent`, by plain recursion over boards."""
    won = _winner(board)
    if won is not None:
        return float(won != seat)
    if None not in board:
        return 0.0
    if mover == seat:
        return _loss_probability(seat, opponent, _play(board, board.index(None), mover), 1 - mover)
    return sum(p * _loss_probability(seat, opponent, _play(board, a, mover), 1 - mover) for a, p in opponent(board, mover))


@pytest.fixture(scope="module")
def first_legal_exact():  # ~10 s: the walk replays every line of PettingZoo's game from its start
    make_slot, _ = load_game("tictactoe_v3")
    return exact_tictactoe(make_slot, FirstLegal())


@pytest.mark.slow
def test_first_legal_loses_every_game_to_minimax_moving_first(first_legal_exact):
    """By hand: X 0, minimax's only drawing reply is the centre (4); X 1, O must block at 2, which
    also threatens 2-4-6; X 3, O wins at 6. Every tie-break of minimax ends there: P(loss) = 1."""
    assert exact_losses(first_legal_exact)["minimax"][0] == pytest.approx(1.0)


@pytest.mark.slow
def test_tree_walk_agrees_with_an_independent_enumeration(first_legal_exact):
    losses = exact_losses(first_legal_exact)
    for seat in (0, 1):
        assert losses["random"][seat] == pytest.approx(_loss_probability(seat, _random), abs=1e-9)
        assert losses["minimax"][seat] == pytest.approx(_loss_probability(seat, _minimax), abs=1e-9)
    # Not a degenerate 0 or 1 against random, so the agreement says something.
    assert 0.05 < losses["random"][0] < 0.95 and 0.05 < losses["random"][1] < 0.95
    for seat in (0, 1):
        w, d, l = first_legal_exact["random"][seat]
        assert w + d + l == pytest.approx(1.0)


def test_summary_over_seeds_golden():
    assert summarize([1.0, 0.5, 0.75]) == pytest.approx({"mean": 0.75, "worst": 0.5, "best": 1.0, "spread": 0.5, "std": 0.25})
    assert summarize([0.0, 0.2], higher_is_better=False)["worst"] == 0.2
    assert summarize([0.3])["std"] == 0.0
    with pytest.raises(ValueError, match="at least one"):
        summarize([])
    row = lambda score: {"score": score, "wins": 0, "draws": 0, "losses": 0}  # noqa: E731
    seeds = [
        {"seed": 0, "score": {"minimax": row(0.5)}, "exact": {"minimax": [0.0, 0.0]}},
        {"seed": 1, "score": {"minimax": row(0.4)}, "exact": {"minimax": [0.0, 0.25]}},
    ]
    got = seed_summary(seeds, ["minimax"])["minimax"]
    assert got["score"]["worst"] == 0.4 and got["exact_loss_seat1"]["worst"] == 0.25
    assert got["exact_loss_seat1"]["mean"] == pytest.approx(0.125) and got["exact_loss_seat0"]["spread"] == 0.0
