"""benchmarks/tactics.py: its per-seat scores and the openings of the games a policy lost."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from actors.games import load_game
from benchmarks.tactics import OPENING_MOVES, tally
from learner.arch import ModelConfig
from learner.export import policy_meta, save_policy
from learner.model import InferencePolicy

ROOT = Path(__file__).resolve().parents[1]


class _Leftmost:
    """Plays the leftmost legal column: a fixed line that `lookahead` beats from either seat."""

    def act(self, obs, mask, rng, greedy=True):
        return np.array([int(np.flatnonzero(mask[0])[0])]), None


def test_tally_scores_each_seat_and_groups_lost_games_by_their_opening():
    counts, seats, lost = tally(_Leftmost(), "lookahead", games=40, seed=3)
    assert [sum(s) for s in seats] == [20, 20]  # seats alternate
    assert [counts["won"], counts["drawn"], counts["lost"]] == [a + b for a, b in zip(*seats)]
    assert counts["lost"] > 30 and sum(lost.values()) == counts["lost"]
    for seat, moves in lost:
        assert 0 < len(moves) <= OPENING_MOVES  # fewer when the game ended sooner
        # Moving first, the policy opens in column 0; moving second, lookahead opens in the centre.
        assert moves[0] == (0 if seat == 0 else 3)
        assert all(m == 0 for m in moves[seat::2][:2])  # the policy's first moves, stacked in column 0
    assert len(lost) < counts["lost"]  # a fixed player against a nearly fixed one: few distinct lines


def test_the_script_prints_the_seats_and_the_lost_openings(tmp_path):
    _, spec = load_game("connect_four_v3")
    model = ModelConfig(kind="conv", channels=4, blocks=1, hidden_sizes=(8,))
    policy = InferencePolicy(spec.obs_shape, spec.num_actions, model)
    meta = policy_meta(spec.name, model, spec.obs_shape, spec.num_actions, spec.head)
    save_policy(tmp_path / "p.msgpack", {k: v.numpy() for k, v in policy.net.state_dict().items()}, 7, meta)
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "tactics.py"), str(tmp_path / "p.msgpack"), "--opponent", "lookahead", "--games", "20"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    assert "as first: W" in out and "as second: W" in out and f"lost games by their first {OPENING_MOVES} moves:" in out
