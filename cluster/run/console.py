"""The console log as one observer of the run: each event becomes the line `selfplay train` prints."""

from __future__ import annotations

import math
from typing import Callable

from cluster.events import (
    ActorRestarted,
    ActorStarted,
    CheckpointWritten,
    LearnerRestarted,
    LearnerStarted,
    Observer,
    Progress,
    RunStopped,
    SnapshotAdded,
)
from learner.report import IterationReport


class ConsoleLog(Observer):
    """Writes events through `log` (print by default); progress lines at most every `every_s`
    seconds of the run (run.log_every_s), the first one `every_s` after the loop starts."""

    def __init__(self, log: Callable[[str], None], every_s: float) -> None:
        self.log, self.every_s = log, every_s
        self._logged_at = 0.0
        self._losses: IterationReport | None = None  # the newest update that had losses to show

    def learner_started(self, e: LearnerStarted) -> None:
        self.log(f"learner on {e.device} (pid {e.pid}), published version {e.version}")

    def learner_restarted(self, e: LearnerRestarted) -> None:
        origin = f"checkpoint v{e.checkpoint_version}" if e.checkpoint_version is not None else "fresh weights (no checkpoint yet)"
        lost = f"; versions {e.checkpoint_version + 1}..{e.died_at} were lost" if e.checkpoint_version is not None and e.died_at > e.checkpoint_version else ""
        self.log(
            f"learner died ({e.reason}); restart {e.restarts} (learner.max_restarts): a new learner on {e.device} "
            f"(pid {e.pid}) restored {origin}{lost} and continues as v{e.version}"
        )

    def actor_started(self, e: ActorStarted) -> None:
        self.log(f"rollout actor {e.actor}: incarnation {e.source} (pid {e.pid})")

    def actor_restarted(self, e: ActorRestarted) -> None:
        self.log(
            f"rollout actor {e.actor} restarted ({e.old_source} -> {e.new_source}) after "
            f"{e.reason}: {e.lost_segments} segments it had produced never reached the learner "
            f"(lost); its unfinished games were dropped, finished ones were reported once. "
            f"Restarts so far: {e.restarts}"
        )

    def update(self, e: IterationReport) -> None:
        if not math.isnan(e.policy_loss):
            self._losses = e
        if e.nonfinite_skipped:
            self.log(f"v{e.version}: skipped {e.nonfinite_skipped} minibatches with a NaN/inf loss")

    def snapshot(self, e: SnapshotAdded) -> None:
        self.log(f"snapshot {e.player_id} joined the league")

    def progress(self, e: Progress) -> None:
        if e.elapsed_s - self._logged_at >= self.every_s:
            self._logged_at = e.elapsed_s
            self.log(format_progress(e, self._losses))

    def checkpoint(self, e: CheckpointWritten) -> None:
        if e.final:  # periodic checkpoints go by silently, as they are frequent
            self.log(f"checkpoint {e.path} (learner version {e.version}); continue with: {e.resume_hint}")

    def run_stopped(self, e: RunStopped) -> None:
        if e.stuck_actors:
            self.log(f"{e.stuck_actors} rollout actor(s) did not stop within 30 s; Ray ends them with the run")


def format_progress(e: Progress, losses: IterationReport | None) -> str:
    """The progress line; `losses`: the newest update whose losses were not all skipped."""
    u, s = e.latest_update, e.learner
    stale = f"{u.staleness_mean:.1f}/{u.staleness_max:.0f}" if u is not None else "-"
    loss = f" pi={losses.policy_loss:+.3f} v={losses.value_loss:.3f} H={losses.entropy:.2f}" if losses is not None else ""
    # With roles, every role's version, and the Elo of the league shown (the first role's league,
    # whose learner is the other role's latest: docs/architecture.md, "Asymmetric roles").
    # With exploiters, the main learner ("") first as v100, then e.g. main_exploiter v14.
    version = " ".join(f"{r} v{v}".strip() for r, v in s.role_versions) if s.role_versions else f"v{s.learner_version:>4}"
    rated, elo = e.league.shown_rating()  # latest's, or its newest rated snapshot's while latest has none
    return (
        f"{version}  steps {e.env_steps:>9,}  {e.env_steps_per_s:7.0f} steps/s  games {e.games:>7,}  "
        f"Elo({rated}) {elo:7.1f}  lag {stale}  reuse {s.sample_reuse:.2f}  busy {s.learner_busy:.2f}{loss}"
    )
