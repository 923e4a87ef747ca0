"""Continuous actions on the distributed path: the normal train entry point on a real local Ray with a
real embedded redis-server, on the scripted Box game of tests/continuous_games.py (loaded by module
path, as a user's own game). No competitive mpe2 game has agents of one observation shape yet."""

from __future__ import annotations

import numpy as np
import pytest

from cluster.config import load_config
from cluster.run.trainer import run_training
from cluster.stores.connection import connect
from cluster.stores.embedded_redis import EmbeddedRedis
from cluster.stores.keys import RunKeys
from cluster.stores.league_store import LeagueStore
from league.records import LEARNER_ID, RANDOM_ID
from learner.export import load_policy
from tests.continuous_games import payoff


@pytest.mark.ray
def test_a_box_game_trains_and_rates_on_ray(local_ray, tmp_path):
    cfg = load_config(None, [
        "game.name=tests.continuous_games:target", "run.total_env_steps=10000", "rollout.segment_length=8",
        "rollout.num_actors=2", "rollout.envs_per_actor=8", "rollout.actor_num_cpus=0.5", "learner.num_cpus=0.5",
        "ppo.batch_size=256", "ppo.minibatch_size=128", "ppo.lr=3e-3", "ppo.ent_coef=0.0",
        "league.snapshot_every=2", "eval.games_per_pair=10", "eval.interval_s=1", "run.eval_games=20", "model.hidden_sizes=[32]",
    ])
    lines: list[str] = []
    result = run_training(cfg, tmp_path / "run", log=lines.append)
    assert result.learner_version >= 5 and result.summary["samples_in"] > 0, lines
    with EmbeddedRedis(tmp_path / "run" / "redis") as r:
        state = LeagueStore(connect(r.url), RunKeys("selfplay", "run")).load()
    assert state is not None and state.games_total >= result.games > 0
    assert state.players[RANDOM_ID].elo == 0.0
    latest = state.players[LEARNER_ID]
    assert latest.elo_stderr is not None and latest.games > 0, lines  # rated by the evaluators' games
    assert any(p.kind == "snapshot" for p in state.players.values())
    final = result.final_matches[RANDOM_ID]
    assert final.games == 20 and {side for side, *_ in final.outcomes} == {0, 1}
    # The final policy file rebuilds the Gaussian, whose mean (its greedy move) has learned to aim:
    # an untrained policy's mean, about 0, pays -0.52.
    policy = load_policy(tmp_path / "run" / "final_policy.msgpack")
    assert policy.meta["head"] == "gaussian"
    means, _, _ = policy.act(np.eye(2, dtype=np.float32), np.zeros((2, 0), bool), None, greedy=True)
    greedy = [payoff("east", np.clip(means[0], -2, 2)), payoff("west", np.clip(means[1], -2, 2))]
    assert min(greedy) > -0.1, (greedy, lines[-5:])
    # The run's last checkpoint loads as the same Gaussian policy (its spec records the head).
    (ckpt,) = sorted((tmp_path / "run" / "checkpoints").glob("ckpt-v*.pt"))[-1:]
    from_ckpt = load_policy(ckpt)
    assert from_ckpt.net.log_std is not None and from_ckpt.version == policy.version
    assert np.array_equal(from_ckpt.act(np.eye(2, dtype=np.float32), np.zeros((2, 0), bool), None, greedy=True)[0], means)
