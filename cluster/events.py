"""The run's records and the observers that receive them.

The driver writes two records to Redis (health, run metadata: their documents keep their layout,
`to_doc`, so the dashboard, the CLI and older runs read them as before) and tells its observers,
as the run goes on, what happened: typed events, never log lines. The console log is one observer
(cluster/run/console.py), TensorBoard and Ray's gauges another (cluster/ui/metrics.py), a test a
third: a test asserts on these events, and may ask the run to stop (`stop_requested`), which the
driver treats as Ctrl-C (a checkpoint, then a clean stop).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from league.league import LeagueState
from learner.report import IterationReport, LearnerStatus


@dataclass(frozen=True)
class Health:
    """The `health` document: the run's pace and policy lag, for the dashboard's tiles."""

    learner_version: int
    env_steps: int
    env_steps_per_s: float
    samples_per_s: float
    """Samples the learner trained on per second, this session."""
    games: int
    staleness: dict[str, float | None]
    """min/mean/max policy lag of the newest update (None before the first)."""
    sample_reuse: float | None
    dropped_stale: int
    updated_at: float

    def to_doc(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class RunMeta:
    """The `meta` document: what the run is, and whether it is running."""

    run_id: str
    game: str
    started_at: float
    running: bool = False
    config: dict = field(default_factory=dict)
    resumed_at: float | None = None
    finished_at: float | None = None
    extra: dict = field(default_factory=dict)
    """Keys this version does not know (a newer writer's), written back unchanged."""

    @classmethod
    def from_doc(cls, doc: dict) -> "RunMeta":
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in doc.items() if k in known}, extra={k: v for k, v in doc.items() if k not in known})

    def to_doc(self) -> dict:
        doc = {k: v for k, v in dataclasses.asdict(self).items() if k != "extra" and v is not None}
        return {**self.extra, **doc}


@dataclass(frozen=True)
class RunStarted:
    """The run has its Redis and (for a resumed run) its starting point; nothing is trained yet."""

    run_id: str
    run_dir: Path
    redis_url: str
    resumed_from: int | None = None
    """The checkpoint's learner version, for a resumed run."""
    start_version: int = 0
    """The first version this session trains on top of (after a resume: past every published one)."""
    config_changes: tuple[str, ...] = ()
    """Resumed runs: the settings that differ from the checkpoint's, as 'key: old -> new'."""


@dataclass(frozen=True)
class LearnerStarted:
    device: str
    pid: int
    version: int
    """The version it published first."""
    name: str = ""
    """The learner's Ray actor name (rollout actors find it by name; empty in-process)."""


@dataclass(frozen=True)
class LearnerRestarted:
    """The learner died and the driver started a new one (learner.max_restarts)."""

    reason: str
    """Why the old one ended (the first line of Ray's error)."""
    restarts: int
    """Restarts so far in this session, this one included."""
    checkpoint_version: int | None
    """The checkpoint the new learner restored; None when the run had none yet (fresh weights)."""
    died_at: int
    """The newest version published when it died: versions after the checkpoint up to this one were lost."""
    version: int
    """The version the new learner published first: past every published one."""
    device: str
    pid: int


@dataclass(frozen=True)
class ActorStarted:
    """A rollout actor incarnation was seen for the first time."""

    actor: int
    source: str
    pid: int


@dataclass(frozen=True)
class ActorRestarted:
    actor: int
    old_source: str
    new_source: str
    reason: str
    """The error the old incarnation reported, or 'its process died'."""
    lost_segments: int
    restarts: int
    """Restarts so far in this run, over all actors."""


@dataclass(frozen=True)
class Progress:
    """One tick of the driver's loop."""

    elapsed_s: float
    """Since this session's loop began."""
    env_steps: int
    env_steps_per_s: float
    games: int
    eval_games: int
    learner: LearnerStatus
    update: IterationReport | None
    """This tick's newest update, None when the learner did not update since the last tick."""
    latest_update: IterationReport | None
    """The newest update so far (its losses and lag stay on show until the next)."""
    league: LeagueState

    @property
    def version(self) -> int:
        return self.learner.learner_version


@dataclass(frozen=True)
class SnapshotAdded:
    player_id: str
    version: int


@dataclass(frozen=True)
class CheckpointWritten:
    path: Path | str
    """The file, or the object's URI (checkpoint.uri)."""
    version: int
    final: bool
    """The checkpoint of a stop (the end, Ctrl-C, SIGTERM), as opposed to a periodic one."""
    resume_hint: str
    """The command that continues the run from it."""


@dataclass(frozen=True)
class RunStopped:
    """The actors have been asked to stop (after a clean end or an error)."""

    interrupted: bool
    stuck_actors: int
    """Rollout actors that did not stop in time (Ray ends them with the run)."""
    checkpoint_version: int
    error: str = ""



class Observer:
    """Receives the run's events, in the driver's thread, in order. Every method does nothing by
    default: subscribe to what you need. An exception raised here ends the run like any other."""

    def run_started(self, e: RunStarted) -> None: ...
    def learner_started(self, e: LearnerStarted) -> None: ...
    def learner_restarted(self, e: LearnerRestarted) -> None: ...
    def actor_started(self, e: ActorStarted) -> None: ...
    def actor_restarted(self, e: ActorRestarted) -> None: ...
    def update(self, e: IterationReport) -> None:
        """One learner update (every one, however many happen between two ticks)."""

    def progress(self, e: Progress) -> None: ...
    def snapshot(self, e: SnapshotAdded) -> None: ...
    def checkpoint(self, e: CheckpointWritten) -> None: ...
    def run_stopped(self, e: RunStopped) -> None: ...

    def stop_requested(self) -> bool:
        """Asked after every progress event: True ends the run as Ctrl-C would."""
        return False

    def close(self) -> None:
        """The run is over (called once, also after an error)."""


class Observers(Observer):
    """Several observers as one: each event goes to each, in the order given."""

    def __init__(self, observers: "list[Observer]") -> None:
        self.observers = list(observers)

    def run_started(self, e: RunStarted) -> None:
        for o in self.observers:
            o.run_started(e)

    def learner_started(self, e: LearnerStarted) -> None:
        for o in self.observers:
            o.learner_started(e)

    def learner_restarted(self, e: LearnerRestarted) -> None:
        for o in self.observers:
            o.learner_restarted(e)

    def actor_started(self, e: ActorStarted) -> None:
        for o in self.observers:
            o.actor_started(e)

    def actor_restarted(self, e: ActorRestarted) -> None:
        for o in self.observers:
            o.actor_restarted(e)

    def update(self, e: IterationReport) -> None:
        for o in self.observers:
            o.update(e)

    def progress(self, e: Progress) -> None:
        for o in self.observers:
            o.progress(e)

    def snapshot(self, e: SnapshotAdded) -> None:
        for o in self.observers:
            o.snapshot(e)

    def checkpoint(self, e: CheckpointWritten) -> None:
        for o in self.observers:
            o.checkpoint(e)

    def run_stopped(self, e: RunStopped) -> None:
        for o in self.observers:
            o.run_stopped(e)

    def stop_requested(self) -> bool:
        return any([o.stop_requested() for o in self.observers])

    def close(self) -> None:
        for o in self.observers:
            o.close()
