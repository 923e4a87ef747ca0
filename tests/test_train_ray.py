"""The distributed path on a real local Ray (2 CPUs) with a real embedded redis-server."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from cluster.config import load_config
from cluster.events import RunStarted, RunStopped
from cluster.run.cli import main
from cluster.run.driver import budget_spent as _budget_spent
from cluster.run.trainer import run_training
from cluster.stores.connection import connect
from cluster.stores.embedded_redis import live_server_url
from cluster.stores.keys import RunKeys
from cluster.stores.league_store import LeagueStore, list_runs
from cluster.stores.param_store import ParamStore
from league.records import LEARNER_ID, RANDOM_ID
from fault_support import EventWatch


def test_whichever_budget_runs_out_first_ends_the_run():
    cfg = load_config(None, ["run.total_env_steps=1000", "run.max_versions=50", "run.max_seconds=60"])
    assert not _budget_spent(cfg, 999, 49, 59.0)
    assert _budget_spent(cfg, 1000, 0, 0.0)
    assert _budget_spent(cfg, 0, 50, 0.0)
    assert _budget_spent(cfg, 0, 0, 60.0)
    unlimited = load_config(None, ["run.total_env_steps=1000"])  # max_versions and max_seconds 0: no limit
    assert not _budget_spent(unlimited, 999, 10**6, 10.0**6)


@pytest.mark.ray
def test_short_run_with_two_actors_trains_and_rates(tmp_path, capsys):
    cfg = load_config(
        "configs/tictactoe_smoke.yaml",
        [
            "rollout.num_actors=2",
            "rollout.envs_per_actor=8",
            "rollout.actor_num_cpus=0.5",
            "learner.num_cpus=0.5",
            "ppo.batch_size=512",
            "ppo.minibatch_size=256",
            "league.snapshot_every=2",
            "run.total_env_steps=15000",
            "run.eval_games=40",
        ],
    )
    run_dir = tmp_path / "ray-run"
    watch = EventWatch()
    live: dict = {}

    def read_the_live_league(w: EventWatch) -> None:
        """What a user does in a second terminal: `selfplay league --run-dir` while the run goes on.
        It must read the run's own embedded Redis, not start a second server on the same files."""
        live["version"] = w.version()
        live["url"] = live_server_url(run_dir / "redis")
        live["rc"] = main(["league", "--run-dir", str(run_dir)])

    watch.at_version(2, read_the_live_league)
    lines: list[str] = []  # the console's lines, for assertion messages
    result = run_training(cfg, run_dir, log=lines.append, observers=[watch])

    # Trajectories were consumed and the learner moved on, publishing its versions.
    assert result.env_steps >= 15000
    assert result.summary["samples_in"] > 0
    assert result.learner_version >= 3, lines
    assert result.final_eval is not None and result.final_eval.games == 40
    # The final match covers every reference of the game, the random anchor first.
    assert list(result.final_matches) == [RANDOM_ID, "minimax"] and result.final_matches["minimax"].games == 40
    # Actors stopped when asked, though the learner had stopped taking their segments.
    assert [e.stuck_actors for e in watch.of(RunStopped)] == [0], lines
    assert (run_dir / "final_policy.msgpack").is_file()

    # The live read saw the running league: the learner at (at least) the version the driver had logged.
    assert live.get("rc") == 0, lines
    run_url = urlsplit(watch.of(RunStarted)[0].redis_url)  # the embedded server the run started
    assert run_url.hostname == "127.0.0.1" and live["url"].endswith(f"@127.0.0.1:{run_url.port}/0")  # the run's own server
    table = capsys.readouterr().out
    shown = re.search(r"^run ray-run \(tictactoe_v3, running\) learner v(\d+)", table, re.M)
    assert shown and int(shown.group(1)) >= live["version"] >= 2, table  # the league is saved before the line is logged
    assert not (run_dir / "redis" / "endpoint").exists()  # gone with the server

    # The run's state survives in its embedded Redis' append-only file: reopen and inspect it.
    from cluster.stores.embedded_redis import EmbeddedRedis

    with EmbeddedRedis(run_dir / "redis") as r:
        client = connect(r.url)
        assert list_runs(client, "selfplay") == ["ray-run"]
        keys = RunKeys("selfplay", "ray-run")
        assert ParamStore(client, keys).latest_version() == result.learner_version
        state = LeagueStore(client, keys).load()
        health = LeagueStore(client, keys).health()
    assert state is not None
    # What the dashboard's health tiles show: the learner's pace as well as the actors'.
    assert health["learner_version"] >= 3 and health["env_steps_per_s"] > 0 and health["samples_per_s"] > 0
    assert state.games_total >= result.games > 0
    snapshots = [p for p in state.players.values() if p.kind == "snapshot"]
    assert len(snapshots) >= 2
    # Ratings were fitted from reported games: the random reference stays pinned at 0 while
    # others moved and carry an uncertainty.
    assert state.players[RANDOM_ID].elo == 0.0
    rated = [p for p in state.players.values() if p.elo_stderr is not None]
    assert rated and any(abs(p.elo) > 1.0 for p in rated)
    assert state.players[LEARNER_ID].version == result.learner_version
    # The driver wrote TensorBoard scalars under the four prefixes, stepped by env steps.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"losses/policy", "system/staleness_mean", "charts/env_steps_per_s", "league/elo/latest", "league/elo/random"} <= tags, tags
    assert acc.Scalars("charts/env_steps")[-1].step == acc.Scalars("charts/env_steps")[-1].value > 0
