"""An LSTM learns what a feed-forward policy cannot: the recall game (tests/memory_games.py), trained
in-process through the real rollout loop, the wire and the real Learner."""

from __future__ import annotations

import time

import numpy as np
import pytest

from actors.games import load_game
from actors.memory import SeatMemory
from actors.rollout import RolloutWorker
from actors.scripted import random_legal
from cluster.config import Config
from league.records import RANDOM_ID
from learner.learner import Learner
from learner.model import InferencePolicy
from learner.wire import decode_segments, encode_segments
from tests.test_rollout import FakeLeague, ListResults


def _train_on_recall(kind: str, versions: int) -> float:
    """Train in-process (the real rollout loop feeding the real Learner) on the recall game for
    `versions` learner versions; return the greedy policy's fraction of right answers."""
    make_slot, spec = load_game("tests.memory_games:recall", {"steps": 4})
    cfg = (
        Config()
        .replace("rollout", envs_per_actor=16, segment_length=8, weight_poll_s=0.0)
        .replace("model", kind=kind, hidden_sizes=(32,), lstm_size=32)
        .replace("ppo", batch_size=512, minibatch_size=128, epochs=4, lr=3e-3)
    )
    learner = Learner(spec, cfg.model, cfg.ppo, cfg.learner, seed=0)

    class Latest:
        def poll(self, known):
            return None if known >= learner.version else (learner.version, learner.weights())

        def fetch_snapshot(self, player_id):
            raise KeyError(player_id)

    class ToLearner:
        def send(self, segments):
            learner.add(decode_segments(encode_segments(segments)))

    worker = RolloutWorker(
        0, cfg, make_slot, spec, Latest(), FakeLeague(None, "uniform"), ToLearner(), ListResults(), {RANDOM_ID: random_legal}
    )
    worker.start()
    while learner.version < versions:
        worker.tick()
        if learner.ready():
            learner.update()
    policy = InferencePolicy(spec.obs_shape, spec.num_actions, cfg.model, learner.version)
    policy.load(learner.weights(), learner.version)
    slot, memory, rng = make_slot(), SeatMemory(), np.random.default_rng(1)
    answers = []
    for game in range(200):
        slot.reset(seed=50_000 + game)
        memory.new_game(0)
        while not slot.over:
            action, _, _, _ = memory.act(policy, slot.obs[None], slot.mask[None], rng, [(0, slot.seat)], greedy=True)
            answers += [r for r in slot.step(int(action[0])) if r != 0]
    return float(np.mean(np.asarray(answers) > 0))


@pytest.mark.slow
def test_an_lstm_learns_to_recall_a_cue_a_feed_forward_policy_cannot():
    """Recall (tests/memory_games.py): the cue is shown at a player's first decision and asked for at
    its fourth. Chance is 1/2, and no feed-forward policy can do better; 40 learner versions of 512
    samples take an LSTM to (nearly) always right (1.0 in the runs we made)."""
    t0 = time.monotonic()
    lstm = _train_on_recall("lstm", 40)
    mlp = _train_on_recall("mlp", 40)
    assert lstm >= 0.9, (lstm, mlp)
    assert mlp <= 0.65, (lstm, mlp)  # 400 answers: chance is 0.5 +- 0.025
    assert time.monotonic() - t0 < 300
