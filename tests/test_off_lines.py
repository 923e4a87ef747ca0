"""benchmarks/off_lines.py: the tactical tests it scores, checked on hand-set boards and with players
whose answers are known (pure logic: the players stand in for a network behind the same act())."""

from __future__ import annotations

import numpy as np

from actors.games import load_game
from actors.scripted import random_legal, references_for
from benchmarks.off_lines import _tactics, off_line_tactics, summary_line


def _board(mine: list[tuple[int, int]], theirs: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    obs = np.zeros((6, 7, 2), np.int8)
    for r, c in mine:
        obs[r, c, 0] = 1
    for r, c in theirs:
        obs[r, c, 1] = 1
    occupied = obs.sum(-1).astype(bool)
    mask = ~occupied[0]
    return obs, mask.astype(np.int8)


def test_a_win_in_one_and_a_single_threat_are_found():
    # Three of mine on the bottom row, columns 0-2: column 3 wins.
    obs, mask = _board([(5, 0), (5, 1), (5, 2)], [(4, 0), (4, 1)])
    assert _tactics(obs, mask) == ("win", {3})
    # Three of theirs stacked in column 6: only column 6 stops them.
    obs, mask = _board([(5, 0), (5, 1)], [(5, 6), (4, 6), (3, 6)])
    assert _tactics(obs, mask) == ("block", {6})
    # Two threats of theirs: no single right answer, not a test.
    obs, mask = _board([(4, 0), (4, 1), (5, 5)], [(5, 0), (5, 1), (5, 2), (5, 6), (4, 6), (3, 6)])
    assert _tactics(obs, mask) is None


class _Player:
    """A scripted player behind InferencePolicy's act(): reads the network input as the raw board
    (connect four's network input is the raw observation, flattened)."""

    def __init__(self, fn):
        self.fn = fn

    def act(self, obs, mask, rng, greedy=False):
        actions = np.array([self.fn(o.reshape(6, 7, 2), m, rng) for o, m in zip(obs, mask)])
        return actions, np.zeros(len(actions)), np.zeros(len(actions))


def test_the_tactical_player_passes_every_test_and_the_random_one_does_not():
    make_slot, _ = load_game("connect_four_v3")
    tactical = off_line_tactics(make_slot, _Player(references_for("connect_four_v3")["tactical"]), positions=400, seed=1)
    for where in ("own", "off"):
        for test in ("win", "block"):
            assert tactical[where][test]["n"] >= 10, tactical
            assert tactical[where][test]["share"] == 1.0, (where, test, tactical)
    rand = off_line_tactics(make_slot, _Player(random_legal), positions=400, seed=1)
    assert rand["off"]["win"]["share"] < 0.5 and rand["off"]["block"]["share"] < 0.5, rand
    assert summary_line(tactical) == "off lines: win 1.000, block 1.000; own lines: win 1.000, block 1.000"
