"""model.kind lstm through the normal training entry point, on a real local Ray with the run's
embedded redis-server: actors ship segments with their initial states over the wire, the learner
unrolls them, snapshots (LSTMs too) are seated as opponents and evaluators rate players."""

from __future__ import annotations

import pytest

from cluster.config import load_config
from cluster.run.trainer import run_training
from cluster.stores.connection import connect
from cluster.stores.embedded_redis import EmbeddedRedis
from cluster.stores.keys import RunKeys
from cluster.stores.league_store import LeagueStore
from learner.export import load_policy
from league.records import LEARNER_ID, RANDOM_ID


@pytest.mark.ray
def test_a_short_lstm_run_trains_snapshots_and_rates(local_ray, tmp_path):
    cfg = load_config(
        "configs/tictactoe_smoke.yaml",
        [
            "model.kind=lstm",
            "model.symmetry=none",
            "model.hidden_sizes=[32]",
            "model.lstm_size=32",
            "rollout.num_actors=2",
            "rollout.envs_per_actor=8",
            "rollout.actor_num_cpus=0.5",
            "learner.num_cpus=0.5",
            "ppo.batch_size=256",
            "ppo.minibatch_size=128",
            "league.snapshot_every=2",
            "run.total_env_steps=6000",
            "run.eval_games=20",
            "eval.games_per_pair=10",
            "eval.interval_s=0",
        ],
    )
    run_dir = tmp_path / "lstm-run"
    lines: list[str] = []
    result = run_training(cfg, run_dir, log=lines.append)

    assert result.env_steps >= 6000
    assert result.learner_version >= 3, lines
    assert result.final_eval is not None and result.final_eval.games == 20
    assert list(result.final_matches) == [RANDOM_ID, "minimax"]
    policy = load_policy(run_dir / "final_policy.msgpack")
    assert policy.recurrent and policy.net.model_cfg == cfg.model

    with EmbeddedRedis(run_dir / "redis") as r:
        state = LeagueStore(connect(r.url), RunKeys("selfplay", "lstm-run")).load()
    assert state is not None and state.players[LEARNER_ID].version == result.learner_version
    assert len([p for p in state.players.values() if p.kind == "snapshot"]) >= 2
    # Rated from the evaluators' games: random pinned at 0, others moved, with an uncertainty.
    assert state.players[RANDOM_ID].elo == 0.0
    rated = [p for p in state.players.values() if p.elo_stderr is not None]
    assert rated and any(abs(p.elo) > 1.0 for p in rated), lines
    assert any(p.kind == "snapshot" for p in rated), lines  # LSTM snapshots rebuilt and rated too
