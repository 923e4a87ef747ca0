"""The same training run in one process: the same worker, learner, stores, league and driver loop
(cluster/run/driver.py), no Ray.

Actors and learner take turns instead of running concurrently, so a run is deterministic given its
seed, which makes it the right tool for learning tests and for debugging a game adapter. Redis is
still real: the parameter store and league behave exactly as in a distributed run. With
eval.num_evaluators > 0, one evaluator round (rating games, actors/evaluator.py) follows every league
step, and a last one rates the final weights. Given a run directory, the run writes checkpoints and
TensorBoard scalars there as a distributed run does.
"""

from __future__ import annotations

import dataclasses

from pathlib import Path
from typing import Callable

from actors.rollout import RoleIO, RolloutWorker
from cluster.config import Config
from cluster.events import Observer, Observers
from cluster.plan import all_references, plan_run
from cluster.remote.evaluator_service import build_evaluators
from cluster.remote.learner_service import LearnerService
from cluster.run.assembly import open_leagues
from cluster.run.console import ConsoleLog
from cluster.run.driver import DriverParts, drive
from cluster.run.leagues import per_learner
from cluster.stores.keys import RunKeys
from cluster.stores.league_store import LeagueReader, RedisResultSink
from cluster.stores.replay_store import ReplayStore
from cluster.ui.metrics import MetricsObserver, MetricsSink
from league.manager import LeagueManager
from learner.checkpoint import CheckpointDir
from learner.learner import Learner
from learner.report import LearnerProgress
from learner.segment import Segment

LEAGUE_EVERY_VERSIONS = 10
"""The in-process league cadence: a league step (refit, snapshot, the actors' league re-read, an
evaluator round) when the learner version passes a multiple of this. With no wall clock in the
loop a step on every tick would refit ratings after each of the actors' moves; every 10 versions
is what tests/test_learning.py's bar was measured with."""


class LocalLearner:
    """The learner handle of an in-process run: the Ray actor's class, called directly; its
    updates run when the driver asks for progress."""

    def __init__(self, service: LearnerService, on_update: Callable[[Learner], None] | None = None) -> None:
        self.service, self.on_update = service, on_update

    def sink(self, name: str) -> "LocalSink":
        """Learner `name`'s segment sink for the rollout workers."""
        return LocalSink(self.service, name)

    def send(self, segments: list[Segment]) -> None:
        """The rollout workers' segment sink (a run of one learner)."""
        self.service.add(segments)

    def progress(self) -> LearnerProgress:
        return self.service.train_ready(self.on_update)

    def checkpoint(self, progress: dict, leagues: dict | None = None) -> tuple[int, bytes]:
        return self.service.checkpoint(progress, leagues)

    def stop(self) -> int:
        return self.service.stop_training()

    def versions(self) -> dict[str, int]:
        return self.service.versions()

    def weights(self, name: str = ""):
        return self.service.weights(name)

    def reset_learner(self, name: str, source: str = "") -> int:
        return self.service.reset_learner(name, source)


class LocalSink:
    """One learner's segment sink in an in-process run: straight into its Learner."""

    def __init__(self, service: LearnerService, name: str) -> None:
        self.service, self.name = service, name

    def send(self, segments: list[Segment]) -> None:
        self.service.add(segments, self.name)


class LocalRollouts:
    """The rollouts handle of an in-process run: every poll advances each worker by one decision."""

    restarts = 0
    lost_segments = 0

    def __init__(self, workers: list[RolloutWorker], readers: list[LeagueReader]) -> None:
        self.workers, self.readers = workers, readers
        for w in workers:
            w.start()

    def check(self) -> None:
        pass  # a worker's error is raised where it happens, in poll()

    def poll(self) -> tuple[int, int]:
        for w in self.workers:
            # The learner may have moved since the last tick: play with its newest weights.
            w.sync_weights(force=True)
            w.tick()
        return sum(w.stats.env_steps for w in self.workers), sum(w.stats.games for w in self.workers)

    def learner_replaced(self) -> None:
        pass  # an in-process learner is never replaced

    def league_changed(self) -> None:
        # Readers reload only when told to: no wall clock, so a run is deterministic, and the
        # league document is not re-read on every new game.
        for r in self.readers:
            r.invalidate()

    def stop(self) -> int:
        return 0


class LocalEvaluators:
    """At most one evaluator process' evaluators (one per learner), playing one round of rating
    games each after every league step."""

    def __init__(self, evaluators: list) -> None:
        self.evaluators = evaluators

    def check(self) -> None:
        pass

    def games(self) -> int:
        return sum(e.stats.games for e in self.evaluators)

    def league_changed(self) -> None:
        for e in self.evaluators:
            e.round()  # its games count at the next league step

    def stop(self) -> None:
        pass


def run_inline(
    cfg: Config,
    redis_url: str,
    run_id: str,
    log: Callable[[str], None] = print,
    on_update: Callable[[Learner], None] | None = None,
    run_dir: Path | None = None,
    observers: list[Observer] = (),
) -> tuple[Learner, LeagueManager, int]:
    """Train until a budget of `run` is spent; return (learner, league manager, env steps).

    on_update(learner) runs after every learner iteration (learning curves, benchmarks/). With
    run_dir, checkpoints and TensorBoard scalars are written there."""
    plan = plan_run(cfg)
    service = LearnerService(cfg.to_dict(), redis_url, run_id, own_process=False)
    service.publish()
    learner = LocalLearner(service, on_update)
    # Steps come every LEAGUE_EVERY_VERSIONS versions here, not every half second: fit at each one.
    manager_cfg = dataclasses.replace(cfg.league, rating_every_s=0.0)
    leagues, _ = open_leagues(plan, redis_url, run_id, Path(run_dir or "."), None, False, None, log, manager_cfg)
    leagues.step(service.versions())
    stores = {lg.learner.name: (lg.params, lg.store) for lg in leagues}
    results = RedisResultSink(*(st for _, st in stores.values()))  # an exploiter's games go to the main league
    readers = [[] for _ in range(cfg.rollout.num_actors)]
    workers = []
    for i in range(cfg.rollout.num_actors):
        io = {}
        for lg in leagues:
            reader = LeagueReader(lg.store, refresh_s=float("inf"), sampler=cfg.league.sampler)
            readers[i].append(reader)
            io[lg.learner.name] = RoleIO(lg.params, reader, learner.sink(lg.learner.name))
        for x in leagues.exploiters:  # an exploiter reads the main learner's league (actors/seating.py)
            io[x.learner.name] = RoleIO(x.params, io[plan.league_of(x.learner.name)].league, learner.sink(x.learner.name))
        workers.append(RolloutWorker(i, cfg, plan.make_slot, plan.spec, None, None, None, results, all_references(plan), roles=io))
    evaluators = []
    if cfg.eval.num_evaluators > 0:
        first = leagues.first.store
        evaluators = build_evaluators(0, cfg, plan, stores, ReplayStore(first.r, RunKeys(cfg.redis.key_prefix, run_id)))
    tb = Path(run_dir) / "tb" if run_dir is not None else None
    events = Observers([ConsoleLog(log, cfg.run.log_every_s), MetricsObserver(MetricsSink(tb, run_id), per_learner(leagues)), *observers])
    try:
        parts = DriverParts(
            cfg, learner, LocalRollouts(workers, [r for rs in readers for r in rs]), LocalEvaluators(evaluators), leagues, leagues.first.store, events, log,
            ckpts=CheckpointDir(Path(run_dir) / cfg.checkpoint.dir_name, cfg.checkpoint.keep) if run_dir is not None else None,
            run_dir=run_dir, tick_s=0.0, league_every_versions=LEAGUE_EVERY_VERSIONS,
        )
        outcome = drive(parts)
    finally:
        events.close()
    versions = service.versions()
    if evaluators:
        for name, stream in service.streams.items():
            if stream.params.latest_version() < versions[name]:  # rate the final weights, however publish_every falls
                service.publish(name)
        for e in evaluators:
            e.round()
    leagues.step(versions, refit=True, env_steps=outcome.env_steps)
    first = leagues.first
    return service.streams[first.learner.name].learner, first.manager, outcome.env_steps
