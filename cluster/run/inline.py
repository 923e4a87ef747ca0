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

from actors.evaluator import Evaluator, initial_league
from actors.games import load_game, refuse_roles
from actors.rollout import RolloutWorker
from actors.scripted import references_for
from cluster.config import Config, check_model_fits
from cluster.events import Observer, Observers
from cluster.remote.learner_service import LearnerService
from cluster.run.console import ConsoleLog
from cluster.run.driver import DriverParts, drive
from cluster.stores.league_store import LeagueReader, RedisResultSink, run_stores
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

    def send(self, segments: list[Segment]) -> None:
        """The rollout workers' segment sink."""
        self.service.learner.add(segments)

    def progress(self) -> LearnerProgress:
        return self.service.train_ready(self.on_update)

    def checkpoint(self, progress: dict, league: dict | None = None) -> tuple[int, bytes]:
        return self.service.checkpoint(progress, league)

    def stop(self) -> int:
        return self.service.stop_training()

    def weights(self):
        return self.service.weights()


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
    """At most one evaluator, playing one round of rating games after every league step."""

    def __init__(self, evaluator: Evaluator | None) -> None:
        self.evaluator = evaluator

    def check(self) -> None:
        pass

    def games(self) -> int:
        return self.evaluator.stats.games if self.evaluator is not None else 0

    def league_changed(self) -> None:
        if self.evaluator is not None:
            self.evaluator.round()  # its games count at the next league step

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
    make_slot, spec = load_game(cfg.game.name, cfg.game.kwargs, cfg.game.native, cfg.game.sides, cfg.game.roles)
    refuse_roles(spec, "in-process training")
    check_model_fits(cfg, spec)
    params, store = run_stores(cfg, redis_url, run_id)
    refs = references_for(cfg.game.name, spec)
    state = initial_league(cfg, refs)
    store.save(state)
    service = LearnerService(cfg.to_dict(), redis_url, run_id, own_process=False)
    service.publish()
    learner = LocalLearner(service, on_update)
    # Steps come every LEAGUE_EVERY_VERSIONS versions here, not every half second: fit at each one.
    manager = LeagueManager(store, params, dataclasses.replace(cfg.league, rating_every_s=0.0), state)
    manager.step(service.learner.version)
    readers = [LeagueReader(store, refresh_s=float("inf"), sampler=cfg.league.sampler) for _ in range(cfg.rollout.num_actors)]
    sink = RedisResultSink(store)
    workers = [RolloutWorker(i, cfg, make_slot, spec, params, readers[i], learner, sink, refs) for i in range(cfg.rollout.num_actors)]
    evaluator = None
    if cfg.eval.num_evaluators > 0:
        replays = ReplayStore(store.r, store.keys)
        evaluator = Evaluator(0, cfg, make_slot, spec, params, LeagueReader(store, refresh_s=0.0), sink, refs, replays, curves=store)
    tb = Path(run_dir) / "tb" if run_dir is not None else None
    events = Observers([ConsoleLog(log, cfg.run.log_every_s), MetricsObserver(MetricsSink(tb, run_id)), *observers])
    try:
        parts = DriverParts(
            cfg, learner, LocalRollouts(workers, readers), LocalEvaluators(evaluator), manager, store, events, log,
            ckpts=CheckpointDir(Path(run_dir) / cfg.checkpoint.dir_name, cfg.checkpoint.keep) if run_dir is not None else None,
            run_dir=run_dir, tick_s=0.0, league_every_versions=LEAGUE_EVERY_VERSIONS,
        )
        outcome = drive(parts)
    finally:
        events.close()
    version = service.learner.version
    if evaluator is not None:
        if params.latest_version() < version:  # rate the final weights, however publish_every falls
            service.publish()
        evaluator.round()
    manager.step(version, refit=True, env_steps=outcome.env_steps)
    return service.learner, manager, outcome.env_steps
