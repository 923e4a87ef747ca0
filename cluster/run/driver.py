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

A learner that dies (its process or node gone: Ray's RayActorError from any call) is replaced, when the
parts say how (`relaunch`), by a new one from the newest checkpoint, at most learner.max_restarts times
within any learner.restart_window_s (cluster/restart_budget.py) with a growing pause between tries; the call it died in is made again on the new one. The actors keep
their games and send to the new learner (found under the same Ray name). Only when the tries are used
up does the run stop, with the command that resumes it.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TypeVar

from ray.exceptions import GetTimeoutError, RayActorError

from cluster.config import Config
from cluster.events import CheckpointWritten, Health, LearnerRestarted, Observer, Progress, RunStopped, SnapshotAdded
from cluster.restart_budget import RestartWindow
from cluster.run.resume import RunError, StartPoint
from cluster.stores.league_store import LeagueStore
from cluster.run.handles import EvaluatorsHandle, LearnerHandle, LeaseHandle, RolloutsHandle  # noqa: F401 - imported from here too
from cluster.run.leagues import LeagueSet
from cluster.stores.redis_memory import is_out_of_memory, out_of_memory_message, unless_out_of_memory
from learner.checkpoint_store import CheckpointStore
from learner.learner import NonFiniteLossError
from learner.report import IterationReport, LearnerStatus


@dataclass(frozen=True)
class Relaunched:
    """A new learner started in place of a dead one (DriverParts.relaunch)."""

    learner: LearnerHandle
    checkpoint_version: int | None
    """The checkpoint it restored; None when there was none yet."""
    died_at: int
    """The newest published version when the old one died."""
    version: int
    """The version it published first (past every published one)."""
    device: str
    pid: int


T = TypeVar("T")

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
    leagues: LeagueSet
    """Every learner's league (cluster/run/leagues.py)."""
    store: LeagueStore
    """The run's own keys: its health and meta."""
    events: Observer
    log: Callable[[str], None]
    ckpts: CheckpointStore | None = None
    """None: no checkpoints (an in-process run without a run directory)."""
    run_dir: Path | None = None
    start: StartPoint = field(default_factory=StartPoint)
    tick_s: float = DRIVER_TICK_S
    league_every_versions: int = 0
    """0: a league step every tick; N: only when the learner version passes a multiple of N."""
    relaunch: "Callable[[LearnerHandle], Relaunched] | None" = None
    """Start a new learner from the newest checkpoint in place of the dead one given (Ray runs);
    None: a dead learner stops the run."""
    restart_backoff_s: float = 1.0
    """Pause before the first restart of the learner; doubled for each further one, at most 30 s."""
    wrap_up: Callable[[], None] | None = None
    """Run when a budget is spent, after the learner and the actors stopped and before the final
    league step and checkpoint (trainer.py: the final policy and its matches against the references),
    so the last checkpoint's league holds the games it reports."""
    lease: LeaseHandle | None = None
    """The run's lease (cluster/stores/lease.py), renewed before every write of the loop: a driver
    that lost it stops there, writing nothing more. None: no other driver can exist (in-process)."""


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


def learner_call(call: Callable[[], T], run_dir: Path | None, last_checkpoint: int) -> T:
    """call()'s result, with the failures of the learner (its training thread or its process)
    turned into a message that says how to continue."""
    try:
        return call()
    except NonFiniteLossError as exc:
        raise RunError(f"{exc} The last checkpoint (v{last_checkpoint}) predates them: after fixing the cause, {resume_hint(run_dir)}") from exc
    except RayActorError as exc:
        raise learner_died(exc, run_dir, last_checkpoint) from exc
    except GetTimeoutError as exc:  # a wedged learner (learner.call_timeout_s): say so rather than hang
        raise RunError(f"{exc} Continue from the last checkpoint (v{last_checkpoint}) with: {resume_hint(run_dir)}") from exc


def learner_died(exc: BaseException, run_dir: Path | None, last_checkpoint: int, restarts: int = 0) -> RunError:
    """The error that stops a run whose learner died (`restarts`: learners already replaced this session)."""
    after = f" after {restarts} restart{'s' if restarts != 1 else ''} (learner.max_restarts per learner.restart_window_s)" if restarts else ""
    return RunError(
        f"learner died ({_first_line(exc)}){after}; continue from the last checkpoint "
        f"(v{last_checkpoint}) with: {resume_hint(run_dir)}"
    )


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def sigterm_as_interrupt() -> Callable[[], None]:
    """`ray job stop` sends SIGTERM, then SIGKILL after RAY_JOB_STOP_WAIT_TIME_S (3 s by default):
    treat SIGTERM as Ctrl-C so the run writes its checkpoint first. Returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    return lambda: signal.signal(signal.SIGTERM, previous)


def checkpoint_version(status: LearnerStatus) -> int:
    """What names a checkpoint: the learner's version, or the sum of every learner's (a run of
    several), which grows with every update of any of them."""
    return sum(status.versions().values())


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
        # Snapshots whose weights are already kept beside the checkpoints: those the start
        # checkpoint's league names (kept before it was written).
        leagues = [p.start.league or {}, *(league or {} for _, _, league in p.start.learners)]
        self.kept_snapshots: set[str] = {d["id"] for lg in leagues for d in lg.get("players", []) if d.get("kind") == "snapshot"}
        self.league_version = p.start.version  # the league stepped at the start (see drive())
        self.lag_sum, self.lag_n, self.lag_max = 0.0, 0, 0.0
        self.base_samples: int | None = None
        self.latest: IterationReport | None = None
        self.status: LearnerStatus | None = None
        self.run_steps = 0
        self.learner_restarts = 0
        self.restart_budget = RestartWindow(p.cfg.learner.max_restarts, p.cfg.learner.restart_window_s)

    def call(self, what: Callable[[LearnerHandle], T]) -> T:
        """what(the learner); when the learner has died, a new one replaces it (learner.max_restarts)
        and the call is made again on the new one."""
        while True:
            try:
                return learner_call(lambda: what(self.p.learner), self.p.run_dir, self.last_ckpt)
            except RunError as exc:
                if not isinstance(exc.__cause__, RayActorError):
                    raise
                self._replace_learner(exc.__cause__)

    def _replace_learner(self, cause: RayActorError) -> None:
        """Start a new learner, trying until one starts or the restarts are used up (then the run stops)."""
        p, reason = self.p, _first_line(cause)
        while True:
            if p.relaunch is None or not self.restart_budget.allows():
                raise learner_died(cause, p.run_dir, self.last_ckpt, self.learner_restarts) from cause
            # Wait before each try, longer each time: what killed the learner (a node going away,
            # memory) may take a moment to clear, and a learner that dies at once must not spin.
            time.sleep(min(p.restart_backoff_s * 2 ** self.restart_budget.recent(), 30.0))
            self.learner_restarts += 1
            self.restart_budget.record()
            try:
                new = p.relaunch(p.learner)
            except RayActorError as exc:  # the new one died while starting: that was one try
                cause = exc
                continue
            p.learner = new.learner
            p.rollouts.learner_replaced()
            self.base_samples = None  # the restored learner's counters are the checkpoint's
            p.events.learner_restarted(
                LearnerRestarted(reason, self.learner_restarts, new.checkpoint_version, new.died_at, new.version, new.device, new.pid)
            )
            return

    def hold(self) -> None:
        """Before a write: still this run's driver? (LeaseLost stops the run otherwise.)"""
        if self.p.lease is not None:
            self.p.lease.renew()

    def checkpoint(self, final: bool) -> None:
        p = self.p
        if p.ckpts is None:
            return
        self.hold()
        trained = p.start.train_seconds + time.monotonic() - self.t0
        progress = {"env_steps": self.steps, "games": self.games, "train_seconds": trained}
        self._keep_snapshots()
        leagues = p.leagues.checkpoint_leagues()
        version, data = self.call(lambda learner: learner.checkpoint(progress, leagues))
        where = p.ckpts.save(data, version)
        self.last_ckpt = version
        p.events.checkpoint(CheckpointWritten(where, version, final, resume_hint(p.run_dir)))

    def _keep_snapshots(self) -> None:
        """Copy the weights of snapshots not yet kept beside the checkpoints (each once): the league a
        checkpoint carries then never names a snapshot whose weights only Redis holds."""
        p = self.p
        for pid, params in p.leagues.snapshot_ids():
            if pid in self.kept_snapshots:
                continue
            payload = params.snapshot_payload(pid)
            if payload is not None:
                p.ckpts.save_blob(pid, payload)
                self.kept_snapshots.add(pid)

    def tick(self) -> bool:
        """One round of the loop; True when a budget is spent."""
        p = self.p
        self.hold()
        report = self.call(lambda learner: learner.progress())
        for u in report.updates:
            self.lag_sum, self.lag_n = self.lag_sum + u.staleness_mean, self.lag_n + 1
            self.lag_max = max(self.lag_max, u.staleness_max)
            p.events.update(u)
        # With exploiters, the console and charts follow the main learner's updates (not theirs).
        ours = [u for u in report.updates if u.role == p.leagues.first.learner.name] if p.leagues.exploiters else report.updates
        update = ours[-1] if ours else None
        self.latest, self.status = update or self.latest, report.status
        self.check_rollouts()
        self._league_step(report.status)
        if p.ckpts is not None and checkpoint_version(report.status) >= self.last_ckpt + p.cfg.checkpoint.every_versions:
            self.checkpoint(final=False)
        now = time.monotonic()
        rate = self.run_steps / max(now - self.t0, 1e-9)
        if self.base_samples is None:
            self.base_samples = report.status.samples_used  # a resumed learner's counters start above 0
        samples_rate = (report.status.samples_used - self.base_samples) / max(now - self.t0, 1e-9)
        p.store.set_health(self._health(rate, samples_rate).to_doc())
        p.evaluators.check()
        p.events.progress(
            Progress(now - self.t0, self.steps, rate, self.games, p.evaluators.games(), report.status, update, self.latest, p.leagues.first.state)
        )
        if p.events.stop_requested():
            raise _Stop
        most = max(report.status.versions().values())  # run.max_versions: the most advanced learner's
        return budget_spent(p.cfg, self.steps, most, p.start.train_seconds + now - self.t0)

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

    def final_league_step(self, versions: dict[str, int]) -> None:
        """Claim every game reported so far and refit the ratings, whatever the cadence (`versions`:
        the stopped learners', which may be past the last tick's)."""
        p = self.p
        self.hold()
        for pid, version in p.leagues.step(versions, refit=True, env_steps=self.steps):
            p.events.snapshot(SnapshotAdded(pid, version))

    def _league_step(self, status: LearnerStatus) -> None:
        p, every, version = self.p, self.p.league_every_versions, status.learner_version
        if every and version // every <= self.league_version // every:
            return
        self.league_version = version
        for pid, v in p.leagues.step(status.versions(), env_steps=self.steps):
            p.events.snapshot(SnapshotAdded(pid, v))
        self._reset_exploiters()
        p.rollouts.league_changed()
        p.evaluators.league_changed()

    def _reset_exploiters(self) -> None:
        """Exploiters the league step found due (snapshotted already) restart from the main learner's weights."""
        p = self.p
        main = p.leagues.first.learner.name
        for name in p.leagues.take_resets():
            version = self.call(lambda learner, name=name: learner.reset_learner(name, main))
            p.leagues.exploiter_reset(name, version)
            p.log(f"exploiter {name} reset to the main agent's weights as v{version}")

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
            "learner_restarts": self.learner_restarts,
            "lost_segments": p.rollouts.lost_segments,
            "duplicate_games": p.leagues.duplicate_games,
            "bad_games": p.leagues.bad_games,  # game results refused and set aside (docs/faults.md)
            "checkpoint_version": self.last_ckpt,
            "interrupted": interrupted,
        }


def drive(p: DriverParts) -> DriveOutcome:
    """Run the loop until a budget is spent or the run is interrupted, then stop the learner, write
    the final checkpoint and stop the actors. The learner and the actors are already started."""
    loop, interrupted, error, stuck, oom = _Loop(p), False, "", None, None
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
        except Exception as exc:  # Redis full (noeviction): stop as on Ctrl-C, the checkpoint needs no Redis
            if not is_out_of_memory(exc):
                raise
            interrupted, oom, error = True, exc, f"Redis out of memory: {_first_line(exc)}"
            p.log(f"{error}: writing a checkpoint, then stopping actors")
        # Stop updates first: the checkpoint and the final policy are then the same weights.
        if oom is None:
            loop.call(lambda learner: learner.stop())
        else:  # a learner whose thread died of the same full Redis re-raises it on stop: its state is still there
            unless_out_of_memory(lambda: loop.call(lambda learner: learner.stop()))
        stopped_at = loop.call(lambda learner: learner.versions()) if oom is None else {}
        if interrupted:
            loop.checkpoint(final=True)  # before anything else: a preempted job has seconds left
        else:
            # A budget was spent: the actors' last games and the wrap-up's matches are claimed and
            # rated before the last checkpoint, whose league (what a run resumes from when its Redis
            # lost everything) then holds every game of the run.
            stuck = _stop_actors(p)
            if p.wrap_up is not None:
                p.wrap_up()
            loop.final_league_step(stopped_at)
            loop.checkpoint(final=True)
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        restore_sigterm()
        if stuck is None:
            stuck = _stop_actors(p)
        p.events.run_stopped(RunStopped(interrupted, stuck, loop.last_ckpt, error))
    if oom is not None:
        raise RunError(out_of_memory_message(oom, loop.last_ckpt, p.ckpts.where if p.ckpts else "-", resume_hint(p.run_dir))) from oom
    return DriveOutcome(loop.steps, loop.games, interrupted, loop.last_ckpt, loop.status, loop.summary(interrupted))


def _stop_actors(p: DriverParts) -> int:
    """Stop the rollout actors and the evaluators; how many rollout actors had not ended in time."""
    stuck = p.rollouts.stop()
    p.evaluators.stop()
    return stuck
