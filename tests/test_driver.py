"""The driver's loop with stand-in handles, and its console subscriber: what a run tells its
observers, in what order, and the lines `selfplay train` prints for them."""

from __future__ import annotations

import numpy as np

from actors.evaluator import initial_league
from actors.scripted import references_for
from cluster.config import load_config
from cluster.events import (
    CheckpointWritten,
    Health,
    Observer,
    Observers,
    Progress,
    RunMeta,
    RunStopped,
    SnapshotAdded,
)
from cluster.run.console import ConsoleLog, format_progress
from cluster.plan import plan_run
from cluster.run.driver import DriverParts, drive
from cluster.run.leagues import LeagueSet, LearnerLeague
from cluster.stores.league_store import run_stores
from league.manager import LeagueManager
from learner.checkpoint import CheckpointDir
from learner.report import IterationReport, LearnerProgress, LearnerStatus
from fault_support import EventWatch


def _report(version: int, skipped: int = 0) -> IterationReport:
    return IterationReport(version, -0.1234, 0.5678, 1.2345, 0.0, 1.5, 3.0, skipped, scalars={"losses/policy": -0.1234})


def _status(version: int) -> LearnerStatus:
    return LearnerStatus(version, samples_in=1000 * version, samples_used=900 * version, dropped_stale=2, sample_reuse=3.6, learner_busy=0.75)


class _Learner:
    """One update per progress() call; publishes nothing (the league's snapshots need a
    published version, so the parameter store is written by hand below)."""

    def __init__(self, params) -> None:
        self.version, self.params, self.stopped = 0, params, False

    def progress(self) -> LearnerProgress:
        self.version += 1
        self.params.publish(self.version, {"w": np.zeros(2, np.float32)})
        return LearnerProgress((_report(self.version, skipped=int(self.version == 2)),), _status(self.version))

    def checkpoint(self, progress: dict, leagues: dict | None = None) -> tuple[int, bytes]:
        return self.version, b"checkpoint"

    def stop(self) -> int:
        self.stopped = True
        return self.version

    def versions(self) -> dict[str, int]:
        return {"": self.version}

    def weights(self, name: str = ""):
        return self.version, {}


class _Rollouts:
    restarts = lost_segments = 0

    def __init__(self) -> None:
        self.steps, self.league_changes, self.stopped, self.learners_replaced = 0, 0, False, 0

    def check(self) -> None:
        pass

    def poll(self) -> tuple[int, int]:
        self.steps += 100
        return self.steps, self.steps // 10

    def league_changed(self) -> None:
        self.league_changes += 1

    def learner_replaced(self) -> None:
        self.learners_replaced += 1

    def stop(self) -> int:
        self.stopped = True
        return 0


class _Evaluators:
    def check(self) -> None: ...
    def games(self) -> int:
        return 7

    def league_changed(self) -> None: ...
    def stop(self) -> None: ...


def _parts(redis_server, tmp_path, events: Observer, *overrides: str, **kw) -> DriverParts:
    cfg = load_config("configs/tictactoe_smoke.yaml", ["league.snapshot_every=4", "checkpoint.every_versions=3", *overrides])
    params, store = run_stores(cfg, redis_server.url, "driver")
    state = initial_league(cfg, references_for(cfg.game.name))
    store.save(state)
    (one,) = plan_run(cfg).learners
    leagues = LeagueSet([LearnerLeague(one, params, store, LeagueManager(store, params, cfg.league, state))])
    return DriverParts(
        cfg, _Learner(params), _Rollouts(), _Evaluators(), leagues, store, events, lambda line: None,
        ckpts=CheckpointDir(tmp_path / "checkpoints"), run_dir=tmp_path, tick_s=0.0, **kw,
    )


def test_the_loop_reports_every_update_progress_snapshots_checkpoints_and_the_stop(redis_server, redis_client, tmp_path):
    watch = EventWatch()
    watch.stop_when = lambda w: w.version() >= 9  # as Ctrl-C: a final checkpoint, then the stop
    parts = _parts(redis_server, tmp_path, watch, "run.max_versions=50")
    outcome = drive(parts)
    assert outcome.interrupted and parts.learner.stopped and parts.rollouts.stopped
    assert [u.version for u in watch.of(IterationReport)] == list(range(1, 10))
    assert [p.version for p in watch.of(Progress)] == list(range(1, 10))
    assert [(p.env_steps, p.games, p.eval_games) for p in watch.of(Progress)][-1] == (900, 90, 7)
    # the first published version, then every league.snapshot_every versions
    assert [(s.player_id, s.version) for s in watch.of(SnapshotAdded)] == [("v000001", 1), ("v000005", 5), ("v000009", 9)]
    assert [(c.version, c.final) for c in watch.of(CheckpointWritten)] == [(3, False), (6, False), (9, False), (9, True)]
    assert watch.of(RunStopped) == [RunStopped(interrupted=True, stuck_actors=0, checkpoint_version=9)]
    assert parts.rollouts.league_changes == 9  # a league step on every tick (the Ray cadence)
    assert outcome.summary["checkpoint_version"] == 9 and outcome.summary["staleness_max"] == 3.0
    health = parts.store.health()
    assert health["learner_version"] == 9 and health["staleness"] == {"min": 0.0, "mean": 1.5, "max": 3.0}


def test_the_in_process_cadence_steps_the_league_when_the_version_passes_a_multiple(redis_server, redis_client, tmp_path):
    parts = _parts(redis_server, tmp_path, Observers([]), "run.max_versions=25", league_every_versions=10)
    outcome = drive(parts)
    assert not outcome.interrupted and parts.rollouts.league_changes == 2  # at versions 10 and 20


def test_the_console_prints_the_lines_the_driver_logged(redis_server, redis_client, tmp_path):
    lines: list[str] = []
    parts = _parts(redis_server, tmp_path, ConsoleLog(lines.append, every_s=0.0), "run.max_versions=3")
    drive(parts)
    assert lines[0] == "snapshot v000001 joined the league" and lines[1].startswith("v   1  steps       100  ")
    assert "v2: skipped 1 minibatches with a NaN/inf loss" in lines
    progress = [line for line in lines if line.startswith("v   ")]
    assert len(progress) == 3
    assert progress[-1].startswith("v   3  steps       300  ")
    assert progress[-1].endswith(
        "steps/s  games      30  Elo(latest)     0.0  lag 1.5/3  reuse 3.60  busy 0.75 pi=-0.123 v=0.568 H=1.23"
    )
    assert lines[-1] == f"checkpoint {tmp_path / 'checkpoints' / 'ckpt-v00000003.pt'} (learner version 3); continue with: " \
        f"selfplay train --config {tmp_path / 'config.yaml'} --run-dir {tmp_path} --resume"


def test_progress_before_any_update_shows_no_lag_and_no_losses():
    from league.league import LeagueState

    state = initial_league(load_config("configs/tictactoe_smoke.yaml"), references_for("tictactoe_v3"))
    assert isinstance(state, LeagueState)
    line = format_progress(Progress(1.0, 1234, 617.0, 5, 0, _status(0), None, None, state), None)
    assert line == "v   0  steps     1,234      617 steps/s  games       5  Elo(latest)     0.0  lag -  reuse 3.60  busy 0.75"


def test_run_meta_keeps_keys_it_does_not_know_and_health_keeps_its_layout():
    doc = {"run_id": "r", "game": "g", "started_at": 1.0, "running": True, "config": {"a": 1}, "from_the_future": 3}
    meta = RunMeta.from_doc(doc)
    assert meta.extra == {"from_the_future": 3} and meta.to_doc() == doc
    health = Health(1, 2, 3.0, 4.0, 5, {"min": None, "mean": None, "max": None}, None, 0, 9.0).to_doc()
    assert list(health) == [
        "learner_version", "env_steps", "env_steps_per_s", "samples_per_s", "games", "staleness", "sample_reuse", "dropped_stale", "updated_at",
    ]
