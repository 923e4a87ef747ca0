"""The same training run in one process: the same worker, learner, stores and league, no Ray.

Actors and learner take turns instead of running concurrently, so a run is deterministic given its
seed, which makes it the right tool for learning tests and for debugging a game adapter. Redis is
still real: the parameter store and league behave exactly as in a distributed run. With
eval.num_evaluators > 0, one evaluator round (rating games, actors/evaluator.py) follows every league
step, and a last one rates the final weights.
"""

from __future__ import annotations

import time
from typing import Callable

from actors.evaluator import Evaluator, initial_league
from actors.games import load_game
from actors.rollout import RolloutWorker
from actors.scripted import references_for
from cluster.config import Config, check_model_fits
from cluster.stores.league_store import LeagueReader, run_stores
from cluster.stores.league_store import RedisResultSink
from league.manager import LeagueManager
from learner.learner import Learner
from learner.segment import Segment


class _LearnerSink:
    def __init__(self, learner: Learner) -> None:
        self.learner = learner

    def send(self, segments: list[Segment]) -> None:
        self.learner.add(segments)


def run_inline(
    cfg: Config,
    redis_url: str,
    run_id: str,
    log: Callable[[str], None] = print,
    on_update: Callable[[Learner], None] | None = None,
) -> tuple[Learner, LeagueManager, int]:
    """Train until run.total_env_steps (or run.max_seconds); return (learner, league manager, env steps).

    on_update(learner) runs after every learner iteration (learning curves, benchmarks/)."""
    make_slot, spec = load_game(cfg.game.name, cfg.game.kwargs, cfg.game.native)
    check_model_fits(cfg, spec)
    params, store = run_stores(cfg, redis_url, run_id)
    state = initial_league(cfg, references_for(cfg.game.name))
    store.save(state)
    learner = Learner(spec, cfg.model, cfg.ppo, cfg.learner, seed=cfg.run.seed)
    params.publish(learner.version, learner.weights())
    manager = LeagueManager(store, params, cfg.league, state)
    manager.step(learner.version)
    # Readers reload only when told to, right after each league step: no wall clock, so a run
    # is deterministic, and the league document is not re-read on every new game.
    readers = [LeagueReader(store, refresh_s=float("inf")) for _ in range(cfg.rollout.num_actors)]
    workers = [
        RolloutWorker(
            i, cfg, make_slot, spec, params, readers[i],
            _LearnerSink(learner), RedisResultSink(store), references_for(cfg.game.name),
        )
        for i in range(cfg.rollout.num_actors)
    ]
    evaluator = None
    if cfg.eval.num_evaluators > 0:
        evaluator = Evaluator(
            0, cfg, make_slot, spec, params, LeagueReader(store, refresh_s=0.0), RedisResultSink(store), references_for(cfg.game.name)
        )
    for w in workers:
        w.start()
    steps = 0
    metrics: dict = {}
    started = last_log = time.monotonic()
    while steps < cfg.run.total_env_steps and not (cfg.run.max_seconds and time.monotonic() - started >= cfg.run.max_seconds):
        for w in workers:
            w.tick()
        while learner.ready():
            metrics = learner.update()
            if on_update is not None:
                on_update(learner)
            if learner.version % cfg.learner.publish_every == 0:
                params.publish(learner.version, learner.weights())
            if learner.version % 10 == 0:  # refits and snapshots need not follow every update
                manager.step(learner.version)
                for r in readers:
                    r.invalidate()
                if evaluator is not None:
                    evaluator.round()  # its games count at the next league step
            for w in workers:
                w.sync_weights(force=True)
        steps = sum(w.stats.env_steps for w in workers)
        if time.monotonic() - last_log >= cfg.run.log_every_s:
            last_log = time.monotonic()
            log(f"v{learner.version} steps {steps} entropy {metrics.get('losses/entropy', float('nan')):.2f}")
    if evaluator is not None:
        if params.latest_version() < learner.version:  # rate the final weights, however publish_every falls
            params.publish(learner.version, learner.weights())
        evaluator.round()
    manager.step(learner.version)
    return learner, manager, steps
