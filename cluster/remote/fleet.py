"""The rollout actors as one supervised group: a thin Ray adapter the driver polls.

A rollout actor holds nothing that cannot be rebuilt (weights and league come from Redis), so a crash
costs only its work in flight, and training goes on. Whether its process was killed or a game raised
(the actor then reports the error to the learner and ends its own process), Ray restarts the actor
(max_restarts = rollout.max_restarts) and runs its interrupted run() task again there
(max_task_retries = -1). A game that fails every time therefore stops the run after max_restarts
restarts, with its error, instead of looping forever. The budget is per rollout.restart_window_s
(cluster/restart_budget.py): an actor that took longer than that to use its restarts up is replaced
by a fresh one, so a run of weeks on preemptible nodes keeps its actors.

A node that goes away takes its actors with it; Ray restarts them, as it does killed ones, on
nodes with room for them (rollout.resources names the nodes that qualify), or holds them until a
node with room joins, while the others go on feeding the learner.

A restart is noticed by the new incarnation id in the actor's stats. The fleet then asks the learner
why the old incarnation ended and how many segments it produced that never reached the learner, and
tells the run's observers (the console logs it). Finished games were reported once, under the dead
incarnation's game ids (which a new incarnation never reuses); its unfinished games are dropped. Stats are polled without blocking, so a
restarting actor never stalls the learner, and totals keep the dead incarnations' counts.
"""

from __future__ import annotations

import time

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError, RayTaskError

from cluster.config import Config
from cluster.events import ActorRestarted, ActorStarted, Observer
from cluster.remote.rollout_service import ActorStats, RolloutService
from cluster.restart_budget import used_up_within_window


class FleetError(RuntimeError):
    """A rollout actor is gone for good (restarts used up); the message names it and the cause."""


class RolloutFleet:
    """The rollouts handle of a distributed run (cluster/run/driver.py); `events` hears of every
    incarnation that starts and every restart."""

    def __init__(self, cfg: Config, redis_url: str, run_id: str, learner_name: str, events: Observer) -> None:
        self.cfg, self.learner_name, self.events = cfg, learner_name, events
        self.learner = ray.get_actor(learner_name)
        self._args = (cfg.to_dict(), redis_url, run_id, learner_name)
        n = cfg.rollout.num_actors
        self.actors: list = [None] * n
        self.runs: list = [None] * n
        self.started_at = [0.0] * n  # when each slot's Ray actor was created (its Ray restarts count from there)
        for i in range(n):
            self._spawn(i)
        self._pending: list = [None] * n  # outstanding stats() call per actor
        self._last: list[ActorStats | None] = [None] * n  # newest stats of the current incarnation
        self._dead_totals = [[0, 0] for _ in range(n)]  # env steps, games of earlier incarnations
        self.restarts = 0
        self.lost_segments = 0

    def _spawn(self, i: int) -> None:
        """A Ray actor for slot i, with Ray's own restart count (rollout.max_restarts) starting at 0."""
        cfg = self.cfg
        self.actors[i] = (
            ray.remote(RolloutService)
            .options(
                num_cpus=cfg.rollout.actor_num_cpus,
                resources=dict(cfg.rollout.resources),  # rollout.resources: on chosen nodes only
                max_concurrency=3,
                scheduling_strategy="SPREAD",
                max_restarts=cfg.rollout.max_restarts,
                max_task_retries=-1,
            )
            .remote(i, *self._args)
        )
        self.runs[i] = self.actors[i].run.remote()
        self.started_at[i] = time.monotonic()

    # --- supervision -----------------------------------------------------------------------
    def check(self) -> None:
        """Raise FleetError for an actor that is gone for good (its restarts used up) or stopped."""
        for i, ref in enumerate(self.runs):
            done, _ = ray.wait([ref], timeout=0)
            if not done:
                continue
            try:
                ray.get(ref)
            except RayActorError as exc:
                r = self.cfg.rollout
                if r.max_restarts > 0 and not used_up_within_window(self.started_at[i], time.monotonic(), r.restart_window_s):
                    self._pending[i] = None
                    self._spawn(i)  # its restarts were spread wider than the budget's rate: a fresh actor, a fresh count
                    continue
                errors = [e for src, e in self._learner_failures().items() if src.startswith(f"a{i}-")]
                last = f"; last error: {errors[-1]}" if errors else ""
                raise FleetError(
                    f"rollout actor {i} died and was restarted {self.cfg.rollout.max_restarts} times within "
                    f"{self.cfg.rollout.restart_window_s:g} s (rollout.max_restarts per rollout.restart_window_s); "
                    f"giving up: {_first_line(exc)}{last}"
                ) from exc
            except RayTaskError as exc:
                raise FleetError(f"rollout actor {i} failed: {_first_line(getattr(exc, 'cause', None) or exc)}") from exc
            raise FleetError(f"rollout actor {i} stopped unexpectedly")

    def poll(self, wait_s: float = 0.2) -> tuple[int, int]:
        """(env steps, games) over all actors and incarnations; waits at most wait_s for replies."""
        for i, a in enumerate(self.actors):
            if self._pending[i] is None:
                self._pending[i] = a.stats.remote()
        pending = [r for r in self._pending if r is not None]
        ready = set(ray.wait(pending, num_returns=len(pending), timeout=wait_s)[0])
        for i, ref in enumerate(self._pending):
            if ref in ready:
                self._pending[i] = None
                try:
                    self._seen(i, ray.get(ref))
                except RayError:
                    pass  # dead for now: check() decides whether it comes back
        steps = sum(t[0] + (s.env_steps if s else 0) for t, s in zip(self._dead_totals, self._last))
        games = sum(t[1] + (s.games if s else 0) for t, s in zip(self._dead_totals, self._last))
        return steps, games

    def _seen(self, i: int, stats: ActorStats) -> None:
        last = self._last[i]
        if last is None or last.source != stats.source:
            if last is not None:
                self.restarts += 1
                self._dead_totals[i][0] += last.env_steps
                self._dead_totals[i][1] += last.games
                try:
                    lost, error = ray.get(self.learner.incarnation_ended.remote(last.source), timeout=self.cfg.learner.call_timeout_s)
                except (RayActorError, GetTimeoutError):  # the learner died too (the driver replaces it) or is wedged (the driver stops)
                    lost, error = 0, ""
                self.lost_segments += lost
                self.events.actor_restarted(
                    ActorRestarted(i, last.source, stats.source, error or "its process died", lost, self.restarts)
                )
            self.events.actor_started(ActorStarted(i, stats.source, stats.pid))
        self._last[i] = stats

    def league_changed(self) -> None:
        pass  # the actors re-read the league themselves (LeagueReader's refresh period)

    def learner_replaced(self) -> None:
        """A new learner took the dead one's name: ask it from now on. (The actors find it
        themselves: their sends to the dead one fail, and they look the name up again.)"""
        self.learner = ray.get_actor(self.learner_name)

    def _learner_failures(self) -> dict[str, str]:
        try:
            return ray.get(self.learner.failures.remote(), timeout=self.cfg.learner.call_timeout_s)
        except (RayActorError, GetTimeoutError):
            return {}  # the learner that heard them died, or does not answer

    def stop(self, timeout_s: float = 30.0) -> int:
        """Ask every actor to stop and wait for their run() calls; returns how many had not ended
        after timeout_s (each drops what the learner, which no longer trains, cannot take)."""
        for a in self.actors:
            a.stop.remote()
        done, _ = ray.wait(self.runs, num_returns=len(self.runs), timeout=timeout_s)
        return len(self.runs) - len(done)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"
