"""`selfplay train --resume auto`: what a retried job runs. It starts the run when there is none,
continues it from its newest checkpoint when there is one, and continues the league of a run that
stopped before its first checkpoint (real local Ray, real redis-server)."""

from __future__ import annotations

import shutil

import pytest

from cluster.events import LearnerStarted, RunStarted
from cluster.run.cli import build_parser, main
from cluster.run.trainer import run_training
from cluster.stores.connection import connect
from cluster.stores.embedded_redis import EmbeddedRedis
from cluster.stores.keys import RunKeys
from cluster.stores.league_store import LeagueStore
from cluster.stores.param_store import ParamStore
from fault_support import EventWatch, small_config
from learner.checkpoint import CheckpointDir


def test_resume_takes_no_value_or_auto(capsys, tmp_path):
    parse = build_parser().parse_args
    base = ["train", "--config", "configs/tictactoe_smoke.yaml"]
    assert parse(base).resume is False and parse([*base, "--resume"]).resume is True
    assert parse([*base, "--resume", "auto"]).resume == "auto"
    assert parse([*base, "--resume", "--set", "run.seed=1"]).resume is True  # plain --resume before another option
    assert main([*base, "--run-dir", str(tmp_path / "run"), "--resume", "always"]) == 2
    assert "--resume takes no value, or 'auto'" in capsys.readouterr().err
    assert main([*base, "--resume", "auto"]) == 2  # a default run dir is new every time: no retry could find it
    assert "--resume auto needs a run directory that stays the same across tries: say which with --run-dir DIR" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def _league(run_dir, run_id: str = "run"):
    with EmbeddedRedis(run_dir / "redis") as r:
        client = connect(r.url)
        keys = RunKeys("selfplay", run_id)
        return LeagueStore(client, keys).load(), ParamStore(client, keys).latest_version()


@pytest.mark.ray
def test_auto_starts_then_continues_then_takes_over_a_league_without_a_checkpoint(local_ray, tmp_path):
    run_dir = tmp_path / "run"
    ckpts = CheckpointDir(run_dir / "checkpoints")

    def attempt(versions: int) -> EventWatch:
        watch = EventWatch()
        watch.stop_when = lambda w: bool(w.of(LearnerStarted)) and w.version() >= w.of(LearnerStarted)[0].version + versions
        run_training(small_config("run.max_versions=200"), run_dir, log=lambda line: None, resume="auto", observers=[watch])
        return watch

    # 1. Nothing there yet: a fresh start.
    first = attempt(4)
    [started] = first.of(RunStarted)
    assert started.resumed_from is None and first.of(LearnerStarted)[0].version == 0
    stopped_at = ckpts.versions()[-1]
    assert stopped_at >= 4

    # 2. The job is retried: it continues from the newest checkpoint, league and numbering kept.
    second = attempt(3)
    [started] = second.of(RunStarted)
    assert started.resumed_from == stopped_at and second.of(LearnerStarted)[0].version == stopped_at
    state, published = _league(run_dir)
    assert published == ckpts.versions()[-1] > stopped_at and state.games_total > 0

    # 3. A retry of a run whose checkpoints are gone (it stopped before its first): its league goes on
    # and its learner starts afresh past every published version.
    shutil.rmtree(run_dir / "checkpoints")
    third = attempt(2)
    [started] = third.of(RunStarted)
    assert started.resumed_from is None and started.start_version == published + 1
    assert third.of(LearnerStarted)[0].version == published + 1
    after, _ = _league(run_dir)
    assert set(state.players) <= set(after.players) and after.games_total >= state.games_total
