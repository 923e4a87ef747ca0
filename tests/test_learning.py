"""Learning really happens: a run bounded in steps beats the random player.

In-process (cluster/inline.py): the same rollout worker, learner, parameter store (real Redis) and
league as a distributed run, taking turns, so the result depends on the seed and not on machine load.
"""

from __future__ import annotations

import pytest

# A few minutes on 2 cores: marked so a quick local loop can skip it with -m 'not learning'.
pytestmark = pytest.mark.learning

from actors.evaluate import Agent, play_match
from actors.games import load_game
from actors.scripted import random_legal
from cluster.config import load_config
from cluster.inline import run_inline
from cluster.records import LEARNER_ID, RANDOM_ID
from learner.model import InferencePolicy


def test_tictactoe_policy_rarely_loses_to_random(redis_server):
    cfg = load_config("configs/tictactoe_learn.yaml")
    learner, manager, steps = run_inline(cfg, redis_server.url, "learn-ttt", log=lambda s: None)
    assert steps >= cfg.run.total_env_steps
    make_slot, spec = load_game(cfg.game.name)
    policy = InferencePolicy(spec.obs_shape, spec.num_actions, cfg.model, learner.version)
    policy.load(learner.weights(), learner.version)
    # 200 games, seats alternating, greedy play as a deployed policy would.
    result = play_match(make_slot, Agent(policy=policy, greedy=True), Agent(scripted=random_legal), 200, seed=12345)
    assert result.games == 200
    assert result.losses <= 10, f"lost {result.losses}/200 to random ({result})"
    # The league saw it too: the learner is rated clearly above the random player (pinned at 0).
    state = manager.state
    assert state.players[RANDOM_ID].elo == 0.0
    best_snapshot = max(p.elo for p in state.players.values() if p.kind == "snapshot")
    assert best_snapshot > 200, [(p.id, round(p.elo), p.games) for p in state.table()]
    assert state.players[LEARNER_ID].version == learner.version
