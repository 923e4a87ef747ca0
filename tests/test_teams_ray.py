"""Teams and N sides on the distributed path: a real local Ray and a real embedded redis-server.

A 2 v 2 team game (tests/team_games.py) and four-player hold'em: each run must advance the learner
on segments from every agent of its side and rate its players from games of two sides and of four.
"""

from __future__ import annotations

import pytest

from cluster.config import load_config
from cluster.run.trainer import run_training
from cluster.stores.connection import connect
from cluster.stores.embedded_redis import EmbeddedRedis
from cluster.stores.keys import RunKeys
from cluster.stores.league_store import LeagueStore
from league.records import LEARNER_ID, RANDOM_ID

SMALL = [
    "rollout.num_actors=2",
    "rollout.envs_per_actor=8",
    "rollout.actor_num_cpus=0.5",
    "learner.num_cpus=0.5",
    "ppo.batch_size=256",
    "ppo.minibatch_size=128",
    "league.snapshot_every=2",
    "eval.games_per_pair=10",
    "eval.interval_s=1",
    "run.eval_games=20",
    "model.hidden_sizes=[32]",
]


def _league(run_dir, run_id):
    with EmbeddedRedis(run_dir / "redis") as r:
        return LeagueStore(connect(r.url), RunKeys("selfplay", run_id)).load()


def _check_trained_and_rated(result, state, lines):
    assert result.learner_version >= 3, lines
    assert result.summary["samples_in"] > 0
    assert state is not None and state.games_total >= result.games > 0
    assert state.players[RANDOM_ID].elo == 0.0  # the anchor stays pinned
    latest = state.players[LEARNER_ID]
    assert latest.elo_stderr is not None and latest.games > 0, lines  # rated from rating games
    assert any(p.kind == "snapshot" for p in state.players.values())
    assert not [line for line in lines if "evaluator" in line and "failed" in line], lines  # no evaluator died


@pytest.mark.ray
def test_a_team_game_trains_and_rates_on_ray(tmp_path):
    cfg = load_config(None, ["game.name=tests.team_games:relay", "game.zero_sum=true", "game.team_spirit=0.5",
                             "run.total_env_steps=12000", "rollout.segment_length=6", *SMALL])
    lines: list[str] = []
    result = run_training(cfg, tmp_path / "run", log=lines.append)
    _check_trained_and_rated(result, _league(tmp_path / "run", "run"), lines)
    # The final match: the latest policy's side against random's, both sides taken in turn.
    final = result.final_matches[RANDOM_ID]
    assert final.games == 20 and {side for side, *_ in final.outcomes} == {0, 1}


@pytest.mark.ray
def test_four_player_holdem_trains_and_rates_on_ray(tmp_path):
    cfg = load_config(None, ["game.name=texas_holdem_no_limit_v6", "game.kwargs={num_players: 4}",
                             "run.total_env_steps=8000", "rollout.segment_length=8", *SMALL])
    lines: list[str] = []
    result = run_training(cfg, tmp_path / "run", log=lines.append)
    state = _league(tmp_path / "run", "run")
    _check_trained_and_rated(result, state, lines)
    final = result.final_matches[RANDOM_ID]
    assert final.games == 20 and {side for side, *_ in final.outcomes} == {0, 1, 2, 3}
    assert all(len(scores) == 4 for *_, scores in final.outcomes)
