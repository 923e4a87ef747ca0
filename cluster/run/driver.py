"""The driver's loop, one for in-process and Ray runs.

The loop talks to three handles, each with an in-process implementation (cluster/run/inline.py)
and a Ray one (cluster/remote/handles.py, fleet.py, evaluator_service.py), as Sample Factory's
serial and parallel runners do; the two modes differ only in how the parts are started, so they
cannot drift apart. Every tick:

    rollouts.poll()                     env steps and games so far (in-process: one round of moves)
    learner.progress()                  the updates since the last tick (in-process: they run now)
    rollouts.check()                    actors alive? (after the learner: a dead learner says so)
    league step                         claim games, refit, snapshot (every tick, or every N versions)
    checkpoint                          every checkpoint.every_versions versions
    health, evaluators, Progress event  console, metrics and tests are observers of the events

and at the end (the budget, Ctrl-C, SIGTERM, or an observer's stop request): stop the learner, write
a final checkpoint, stop the actors. What follows (the final policy and matches) is each mode's own.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
from ray.exceptions import RayActorError

from cluster.config import Config
from cluster.events import CheckpointWritten, Health, Observer, Progress, RunStopped, SnapshotAdded
from cluster.run.resume import RunError, StartPoint
from cluster.stores.league_store import LeagueStore
from league.manager import LeagueManager
from learner.checkpoint import CheckpointDir
from learner.learner import NonFiniteLossError
from learner.report import IterationReport, LearnerProgress, LearnerStatus


class LearnerHandle(Protocol):
    def progress(self) -> LearnerProgress: ...
    def checkpoint(self, progress: dict) -> tuple[int, bytes]: ...
    def stop(self) -> int: ...
    def weights(self) -> tuple[int, dict[str, np.ndarray]]: ...


class RolloutsHandle(Protocol):
    restarts: int
    lost_segments: int

    def check(self) -> None:
        """Raise FleetError for an actor gone for good."""

    def poll(self) -> tuple[int, int]:
        """(env steps, games) of this session so far."""

    def league_changed(self) -> None: ...
    def stop(self) -> int:
        """Returns how many actors did not stop in time."""


class EvaluatorsHandle(Protocol):
    def check(self) -> None: ...
    def games(self) -> int: ...
    def league_changed(self) -> None: ...
    def stop(self) -> None: ...


# The Ray driver's loop runs at this period. The learner trains on its own thread meanwhile, so the
# period only sets how fresh the league, checkpoints and metrics are, never the learning speed.
DRIVER_TICK_S = 0.5


@dataclass
class DriverParts:
    """What the loop drives, built by the caller (trainer.py for Ray, inline.py in-process)."""

    cfg: Config
    learner: LearnerHandle
    rollouts: RolloutsHandle
    evaluators: EvaluatorsHandle
    manager: LeagueManager
    store: LeagueStore
    events: Observer
    log: Callable[[str], None]
    ckpts: CheckpointDir | None = None
    """None: no checkpoints (an in-process run without a run directory)."""
    run_dir: Path | None = None
    start: StartPoint = field(default_factory=StartPoint)
    tick_s: float = DRIVER_TICK_S
    league_every_versions: int = 0
    """0: a league step every tick; N: only when the learner version passes a multiple of N."""


@dataclass
class DriveOutcome:
    env_steps: int
    games: int
    interrupted: bool
    checkpoint_version: int
    status: "LearnerStatus | None"
    summary: dict


def resume_hint(run_dir: Path | None) -> str:
    return f"selfplay train --config {run_dir / 'config.yaml'} --run-dir {run_dir} --resume"


def learner_call(call: Callable, run_dir: Path | None, last_checkpoint: int):
    """call()'s result, with the failures of the learner (its training thread or its process)
    turned into a message that says how to continue."""
    try:
        return call()
    except NonFiniteLossError as exc:
        raise RunError(f"{exc} The last checkpoint (v{last_checkpoint}) predates them: after fixing the cause, {resume_hint(run_dir)}") from exc
    except RayActorError as exc:
        raise RunError(
            f"learner died ({str(exc).strip().splitlines()[0]}); continue from the last checkpoint "
            f"(v{last_checkpoint}) with: {resume_hint(run_dir)}"
        ) from exc


def sigterm_as_interrupt() -> Callable[[], None]:
    """`ray job stop` sends SIGTERM, then SIGKILL after RAY_JOB_STOP_WAIT_TIME_S (3 s by default):
    treat SIGTERM as Ctrl-C so the run writes its checkpoint first. Returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    return lambda: signal.signal(signal.SIGTERM, previous)


def budget_spent(cfg: Config, env_steps: int, version: int, seconds: float) -> bool:
    """Whichever of the run's budgets (env steps, learner versions, wall time) runs out first ends it."""
    r = cfg.run
    return env_steps >= r.total_env_steps or bool(r.max_versions and version >= r.max_versions) or bool(r.max_seconds and seconds >= r.max_seconds)


class _Stop(Exception):
    """An observer asked the run to stop: handled as Ctrl-C."""


class _Loop:
    """The loop's running state; one instance per drive()."""

    def __init__(self, p: DriverParts) -> None:
        self.p = p
        self.t0 = time.monotonic()
        self.steps, self.games = p.start.env_steps, p.start.games
        self.last_ckpt = p.start.checkpoint_version
        self.league_version = p.start.version  # the league stepped at the start (see drive())
        self.lag_sum, self.lag_n, self.lag_max = 0.0, 0, 0.0
        self.base_samples: int | None = None
        self.latest: IterationReport | None = None
        self.status: LearnerStatus | None = None
        self.run_steps = 0

    def checkpoint(self, final: bool) -> None:
        p = self.p
        if p.ckpts is None:
            return
        trained = p.start.train_seconds + time.monotonic() - self.t0
        progress = {"env_steps": self.steps, "games": self.games, "train_seconds": trained}
        version, data = learner_call(lambda: p.learner.checkpoint(progress), p.run_dir, self.last_ckpt)
        p.ckpts.save(data, version)
        self.last_ckpt = version
        p.events.checkpoint(CheckpointWritten(p.ckpts.file(version), version, final, resume_hint(p.run_dir)))

    def tick(self) -> bool:
        """One round of the loop; True when a budget is spent."""
        p = self.p
        report = learner_call(p.learner.progress, p.run_dir, self.last_ckpt)
        for u in report.updates:
            self.lag_sum, self.lag_n = self.lag_sum + u.staleness_mean, self.lag_n + 1
            self.lag_max = max(self.lag_max, u.staleness_max)
            p.events.update(u)
        update = report.updates[-1] if report.updates else None
        self.latest, self.status = update or self.latest, report.status
        version = report.status.learner_version
        self.check_rollouts()
        self._league_step(version)
        if p.ckpts is not None and version >= self.last_ckpt + p.cfg.checkpoint.every_versions:
            self.checkpoint(final=False)
        now = time.monotonic()
        rate = self.run_steps / max(now - self.t0, 1e-9)
        if self.base_samples is None:
            self.base_samples = report.status.samples_used  # a resumed learner's counters start above 0
        samples_rate = (report.status.samples_used - self.base_samples) / max(now - self.t0, 1e-9)
        p.store.set_health(self._health(rate, samples_rate).to_doc())
        p.evaluators.check()
        p.events.progress(
            Progress(now - self.t0, self.steps, rate, self.games, p.evaluators.games(), report.status, update, self.latest, p.manager.state)
        )
        if p.events.stop_requested():
            raise _Stop
        return budget_spent(p.cfg, self.steps, version, p.start.train_seconds + now - self.t0)

    def poll_rollouts(self) -> None:
        """Env steps and games so far (in-process: the actors play one round now)."""
        self.run_steps, run_games = self.p.rollouts.poll()
        self.steps, self.games = self.p.start.env_steps + self.run_steps, self.p.start.games + run_games

    def check_rollouts(self) -> None:
        """After the learner's progress, so that a dead learner (which also ends the actors that
        were sending to it) is reported as such."""
        from cluster.remote.fleet import FleetError  # the in-process rollouts never raise it

        try:
            self.p.rollouts.check()
        except FleetError as exc:
            raise RunError(f"{exc}. Continue from the last checkpoint with: {resume_hint(self.p.run_dir)}") from exc

    def _league_step(self, version: int) -> None:
        p, every = self.p, self.p.league_every_versions
        if every and version // every <= self.league_version // every:
            return
        self.league_version = version
        for pid in p.manager.step(version, env_steps=self.steps):
            p.events.snapshot(SnapshotAdded(pid, version))
        p.rollouts.league_changed()
        p.evaluators.league_changed()

    def _health(self, rate: float, samples_rate: float) -> Health:
        u, s = self.latest, self.status
        return Health(
            learner_version=s.learner_version,
            env_steps=self.steps,
            env_steps_per_s=rate,
            samples_per_s=samples_rate,
            games=self.games,
            staleness={k: (getattr(u, f"staleness_{k}") if u is not None else None) for k in ("min", "mean", "max")},
            sample_reuse=s.sample_reuse,
            dropped_stale=s.dropped_stale,
            updated_at=time.time(),
        )

    def summary(self, interrupted: bool) -> dict:
        p, elapsed, s = self.p, time.monotonic() - self.t0, self.status
        return {
            "env_steps_per_s": (self.steps - p.start.env_steps) / elapsed,
            "learner_samples_per_s": (s.samples_used if s else 0) / elapsed,
            "staleness_mean": self.lag_sum / max(self.lag_n, 1),
            "staleness_max": self.lag_max,
            "sample_reuse": s.sample_reuse if s else 0.0,
            "dropped_stale": s.dropped_stale if s else 0,
            "samples_in": s.samples_in if s else 0,
            "actor_restarts": p.rollouts.restarts,
            "lost_segments": p.rollouts.lost_segments,
            "duplicate_games": p.manager.duplicate_games,
            "checkpoint_version": self.last_ckpt,
            "interrupted": interrupted,
        }


def drive(p: DriverParts) -> DriveOutcome:
    """Run the loop until a budget is spent or the run is interrupted, then stop the learner, write
    the final checkpoint and stop the actors. The learner and the actors are already started."""
    loop, interrupted, error = _Loop(p), False, ""
    restore_sigterm = sigterm_as_interrupt()
    try:
        try:
            while True:
                tick_started = time.monotonic()
                loop.poll_rollouts()
                if loop.tick():
                    break
                time.sleep(max(0.0, p.tick_s - (time.monotonic() - tick_started)))
        except (KeyboardInterrupt, _Stop):
            interrupted = True
            p.log("interrupted: writing a checkpoint, then stopping actors")
        # Stop updates first: the checkpoint and the final policy are then the same weights.
        learner_call(p.learner.stop, p.run_dir, loop.last_ckpt)
        loop.checkpoint(final=True)  # a clean stop always leaves a checkpoint of the final state
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        restore_sigterm()
        stuck = p.rollouts.stop()
        p.evaluators.stop()
        p.events.run_stopped(RunStopped(interrupted, stuck, loop.last_ckpt, error))
    return DriveOutcome(loop.steps, loop.games, interrupted, loop.last_ckpt, loop.status, loop.summary(interrupted))
