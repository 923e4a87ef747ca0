"""Training and league scalars, for TensorBoard and for Ray's Prometheus metrics.

One pure function, `run_scalars`, names every number the driver watches, under four prefixes
(CleanRL's convention, extended):

    losses/   the learner's PPO losses, as the learner reports them
    system/   the plumbing: staleness, sample reuse, drops, queue, learner version
    charts/   progress: env steps, env steps/s, training games, rating games
    league/   ratings: league/elo/<player> and league/elo_stderr/<player> for the learner and the
              references (and the newest snapshot's), games, snapshots

`MetricsSink` writes them to TensorBoard (RUN_DIR/tb; the global step is the env-step count, as in
CleanRL) and, while Ray is initialised, sets one `ray.util.metrics.Gauge` per scalar name, tagged
with the run id (and the player, for per-player scalars). Ray's metrics agent exports those to
Prometheus as `ray_selfplay_<name>`, e.g. `ray_selfplay_league_elo{run_id="...",player="latest"}`.

A run of several learners (a game with roles: one per role) records each learner's losses/, its
version and its league/ scalars under the learner's name: in TensorBoard `adversary/losses/policy`,
`adversary/league/elo/agent/latest`; in Prometheus the same gauge with a `learner` tag,
`ray_selfplay_losses_policy{run_id="...",learner="adversary"}`. What is the run's (charts/, the
learner service's queue and drop counters) stays untagged. A run of one learner (learner "") keeps
exactly the names and tags above.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cluster.events import Observer, Progress
from league.league import LeagueState
from learner.report import IterationReport

PLAYER_PREFIXES = ("league/elo/", "league/elo_stderr/")
"""Scalars named <prefix><player id>: one gauge per prefix, the player as a tag."""

# Counters the learner service reports without a prefix; they belong under system/.
_LEARNER_PLAIN = (
    "learner_version", "sample_reuse", "dropped_stale", "corrupt_payloads", "rejected_full", "queue", "samples_in", "samples_used", "learner_busy",
)
_CHARTS = ("env_steps", "env_steps_per_s", "games", "eval_games")
_PER_LEARNER = ("learner_version", "sample_reuse", "dropped_stale")  # also in a learner's update (system/...)


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def run_scalars(learner: Mapping[str, Any], progress: Mapping[str, Any], state: LeagueState | None) -> dict[str, float]:
    """Every scalar of one driver tick. `learner`: the newest update's scalars (on ticks with an update)
    and the learner's counters (LearnerStatus.scalars()); `progress`: env_steps, env_steps_per_s, games, eval_games."""
    out: dict[str, float] = {}
    for k, v in learner.items():
        if k.startswith(("losses/", "system/")) and _number(v) is not None:
            out[k] = float(v)
    for k in _LEARNER_PLAIN:
        if _number(learner.get(k)) is not None:
            out.setdefault(f"system/{k}", float(learner[k]))
    for k in _CHARTS:
        if _number(progress.get(k)) is not None:
            out[f"charts/{k}"] = float(progress[k])
    if state is not None:
        # The learner, the references and the newest snapshot (one tag): a scalar per player would
        # grow with the league (thousands of tags); the dashboard and `selfplay league` show the rest.
        newest = state.snapshot_id(state.last_snapshot_version)
        for p in (p for p in (state.players.get(pid) for pid in state.charted_ids()) if p is not None):
            out[f"league/elo/{p.id}"] = p.elo
            if p.elo_stderr is not None:
                out[f"league/elo_stderr/{p.id}"] = p.elo_stderr
        if newest in state.players:
            out["league/elo_newest_snapshot"] = state.players[newest].elo
        out["league/games_total"] = float(state.games_total)
        out["league/snapshots"] = float(state.snapshot_count)
        learner = state.players.get(state.learner_id)  # a role's league rates the other role's latest
        score = learner.win_rate_vs_random() if learner is not None else None
        if score is not None:
            out["league/latest_score_vs_random"] = score
    return {k: v for k, v in out.items() if math.isfinite(v)}


@dataclass(frozen=True)
class GaugePoint:
    name: str  # Prometheus-safe; Ray exports it as ray_<name>
    tags: dict
    value: float


def _prom_name(key: str) -> str:
    return "selfplay_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)


def gauge_points(scalars: Mapping[str, float], run_id: str, learner: str = "") -> list[GaugePoint]:
    """The gauge settings for a scalar dict: league/elo/latest -> selfplay_league_elo{run_id, player=latest};
    a learner's (`learner` not empty) also tagged learner=NAME."""
    base = {"run_id": run_id, **({"learner": learner} if learner else {})}
    points = []
    for key, value in scalars.items():
        prefix = next((p for p in PLAYER_PREFIXES if key.startswith(p)), None)
        if prefix is not None:
            points.append(GaugePoint(_prom_name(prefix[:-1]), {**base, "player": key[len(prefix):]}, value))
        else:
            points.append(GaugePoint(_prom_name(key), dict(base), value))
    return points


class MetricsSink:
    """TensorBoard writer plus Ray gauges for one run; `record()` once per driver tick.

    league/ scalars are written at most every `league_every_s` seconds: there is one per player,
    a league grows to hundreds of snapshots, and ratings only move when evaluators report
    (every eval.interval_s), so writing them on every tick would only grow the event files.
    """

    def __init__(
        self, tb_dir: Path | str | None, run_id: str, league_every_s: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.run_id = run_id
        self.league_every_s, self.clock = league_every_s, clock
        self._league_at: dict[str, float] = {}  # by learner: each league is throttled on its own
        self.writer = None
        if tb_dir is not None:
            from torch.utils.tensorboard import SummaryWriter  # local import: tensorboard is slow to import

            self.writer = SummaryWriter(str(tb_dir))
        self._gauges: dict[str, Any] = {}

    def record(self, scalars: Mapping[str, float], step: int, learner: str = "") -> None:
        """Write one tick's scalars; `learner`: whose they are in a run of several learners (their
        TensorBoard names get the prefix `learner/`, their gauges the tag learner=NAME)."""
        now = self.clock()
        if now - self._league_at.get(learner, -math.inf) >= self.league_every_s:
            self._league_at[learner] = now
        else:
            scalars = {k: v for k, v in scalars.items() if not k.startswith("league/")}
        if self.writer is not None:
            for key, value in scalars.items():
                self.writer.add_scalar(f"{learner}/{key}" if learner else key, value, global_step=step)
        import ray  # local import: the sink must not start or need Ray

        if ray.is_initialized():
            for point in gauge_points(scalars, self.run_id, learner):
                self._gauge(point).set(point.value, tags=point.tags)

    def _gauge(self, point: GaugePoint) -> Any:
        key = (point.name, tuple(point.tags))
        gauge = self._gauges.get(key)
        if gauge is None:
            from ray.util.metrics import Gauge

            gauge = Gauge(point.name, description=f"selfplay scalar {point.name}", tag_keys=tuple(point.tags))
            self._gauges[key] = gauge
        return gauge

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class MetricsObserver(Observer):
    """The run's observer that feeds a MetricsSink: every driver tick's scalars, stepped by env steps.

    `leagues`: for a run of several learners, a callable giving each learner's league by name (a
    game with roles: {role: its LeagueState}); each learner's scalars are then recorded under its
    name. None: the run's one learner, whose league every Progress carries."""

    def __init__(self, sink: MetricsSink, leagues: Callable[[], Mapping[str, LeagueState]] | None = None) -> None:
        self.sink, self.leagues = sink, leagues
        self._updates: dict[str, Mapping[str, float]] = {}  # each learner's newest update since the last tick

    def update(self, e: IterationReport) -> None:
        self._updates[e.role] = e.scalars

    def progress(self, e: Progress) -> None:
        counts = {"env_steps": e.env_steps, "env_steps_per_s": e.env_steps_per_s, "games": e.games, "eval_games": e.eval_games}
        if self.leagues is None:
            learner = {**(e.update.scalars if e.update is not None else {}), **e.learner.scalars()}
            self.sink.record(run_scalars(learner, counts, e.league), e.env_steps)
            return
        # The service's counters are the run's, but for those each learner's updates also report (its
        # own version, reuse and drops): one name is never both a run's gauge and a learner's.
        service = {k: v for k, v in e.learner.scalars().items() if k not in _PER_LEARNER}
        self.sink.record(run_scalars(service, counts, None), e.env_steps)
        versions = dict(e.learner.role_versions)
        for name, state in self.leagues().items():
            own = {**self._updates.pop(name, {}), "learner_version": versions.get(name)}
            self.sink.record(run_scalars(own, {}, state), e.env_steps, learner=name)

    def close(self) -> None:
        self.sink.close()
