"""Asymmetric roles on the distributed path: a real local Ray and a real embedded redis-server.

A short mpe2 simple_tag run (three predators against one prey: two roles) must advance each role's
learner on its own versions, take snapshots of each role into that role's league, and rate players.
"""

from __future__ import annotations

import pytest

from cluster.config import load_config
from cluster.run.trainer import run_training
from cluster.stores.connection import connect
from cluster.stores.embedded_redis import EmbeddedRedis
from cluster.stores.keys import RunKeys
from cluster.stores.league_store import LeagueStore
from cluster.stores.param_store import ParamStore

ROLES = ("adversary", "agent")


@pytest.mark.ray
def test_simple_tag_trains_each_role_and_rates_its_players_on_ray(tmp_path, capsys):
    cfg = load_config("configs/simple_tag_smoke.yaml", [
        "game.kwargs={max_cycles: 25}", "run.total_env_steps=15000", "run.eval_games=6", "rollout.envs_per_actor=4",
        "rollout.actor_num_cpus=0.5", "learner.num_cpus=0.5", "ppo.batch_size=512", "ppo.minibatch_size=256",
        "league.snapshot_every=2", "model.hidden_sizes=[32]",
    ])
    lines: list[str] = []
    result = run_training(cfg, tmp_path / "run", log=lines.append)
    with EmbeddedRedis(tmp_path / "run" / "redis") as r:
        client = connect(r.url)
        keys = RunKeys("selfplay", "run")
        params = {role: ParamStore(client, keys.for_role(role)) for role in ROLES}
        leagues = {role: LeagueStore(client, keys.for_role(role)).load() for role in ROLES}
        versions = {role: p.latest_version() for role, p in params.items()}
        # Each role's learner advanced on its own versions (the predators' three seats fill batches faster).
        assert versions["adversary"] >= 2 and versions["agent"] >= 1, lines
        assert f"learner versions per role: {versions}" in lines
        for k, role in enumerate(ROLES):
            other = ROLES[1 - k]
            state = leagues[role]
            snaps = sorted(p.id for p in state.players.values() if p.kind == "snapshot")
            assert snaps and all(s.startswith(f"{role}/v") for s in snaps), snaps  # this role's snapshots only
            assert all(params[other].fetch_snapshot(s) for s in snaps)  # weights of every snapshot are stored
            assert state.players[f"{role}/random"].elo == 0.0  # each league's anchor is its own random player
            assert state.games_total > 0
        # The final matches rated each role's latest against the other role's random player.
        for k, role in enumerate(ROLES):
            rater = leagues[ROLES[1 - k]]
            latest = rater.players[f"{role}/latest"]
            assert latest.elo_stderr is not None and latest.games > 0, lines
            assert latest.version == versions[role]
        assert not LeagueStore(client, keys).load()  # nothing under the role-less keys
    assert any(line.startswith("final: adversary first (greedy) vs random agent over 6 games: mean return per game adversary ") for line in lines), lines
    assert set(result.role_finals) == {"adversary", "agent"} and result.versions == versions
    assert {p.id for p in result.table} >= {"adversary/latest", "agent/latest", "adversary/random", "agent/random"}
    # `selfplay league` prints each role's league.
    from cluster.run.cli import main

    capsys.readouterr()
    assert main(["league", "--run-dir", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "league of role adversary" in out and "league of role agent" in out and "agent/random" in out
