"""Thin Ray adapter around the plain-Python evaluator (actors/evaluator.py).

EvaluatorService owns an Evaluator wired to the run's Redis: weights and snapshots from the
parameter store, the league document for picking snapshots, the league's game queue for its
rating games, and the replay store for the last few of them. `run()` plays rounds until `stop()`; `stats()` answers while it runs.
EvaluatorPool is the driver's handle on all of them (cluster/run/trainer.py).
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict
from typing import Callable

import ray

from actors.evaluator import Evaluator
from actors.replay import ReplaySink
from actors.role_evaluator import RoleEvaluator
from actors.scripted import references_for
from cluster.config import Config, config_from_dict
from cluster.plan import RunPlan, plan_run
from cluster.remote.process import set_torch_threads
from cluster.stores.league_store import LeagueReader, run_stores
from cluster.stores.league_store import RedisResultSink
from cluster.stores.replay_store import ReplayStore
from league.records import RANDOM_ID


def build_evaluators(evaluator_id: int, cfg: Config, plan: RunPlan, stores: dict, replays: ReplaySink | None) -> list:
    """The evaluators of one evaluator process: one Evaluator for a run of one learner; one
    RoleEvaluator per role for a game with roles (each role's games reported to every league).
    `stores`: {learner name: (ParamStore, LeagueStore)}. In-process runs build theirs here too."""
    sink = RedisResultSink(*(stores[d.name][1] for d in plan.owners))  # an exploiter's games go to the main league
    if not plan.spec.roles:
        params, store = stores[plan.names[0]]
        # The league holds exploiters' snapshots too: snapshot keys are the run's (ids namespaced,
        # cluster/stores/keys.py), so the main learner's store fetches them like its own.
        league = LeagueReader(store, refresh_s=0.0)  # rounds are seconds apart: always read afresh
        # Leduc's exploitability points go to the run's own keys (actors/exploitability.py).
        return [Evaluator(evaluator_id, cfg, plan.make_slot, plan.spec, params, league, sink, references_for(cfg.game.name, plan.spec), replays, curves=store)]
    out = []
    for d in plan.learners:
        params, store = stores[d.name]
        opponents = {o.name: (o, references_for(cfg.game.name, o.spec)[RANDOM_ID], stores[o.name][0]) for o in plan.learners if o.name != d.name}
        out.append(RoleEvaluator(evaluator_id, cfg, plan.make_slot, plan.spec, d, opponents, params, LeagueReader(store, refresh_s=0.0), sink))
    return out


class EvaluatorService:
    def __init__(self, evaluator_id: int, cfg_dict: dict, redis_url: str, run_id: str) -> None:
        cfg: Config = config_from_dict(cfg_dict)
        set_torch_threads(1)
        plan = plan_run(cfg)
        stores = {name: run_stores(cfg, redis_url, run_id, name) for name in plan.names}
        _, run_store = run_stores(cfg, redis_url, run_id)
        self.evaluators = build_evaluators(evaluator_id, cfg, plan, stores, ReplayStore(run_store.r, run_store.keys))
        self.interval_s = cfg.eval.interval_s
        self._stop = threading.Event()

    def run(self) -> dict:
        """Rounds every eval.interval_s until stop(); a round rates every learner in turn."""
        while not self._stop.is_set():
            t0 = time.monotonic()
            for evaluator in self.evaluators:
                evaluator.round()
            if self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - t0))):
                break
        return self.stats()

    def stop(self) -> None:
        self._stop.set()

    def stats(self) -> dict:
        """The evaluators' counters, summed (games, rounds, missing snapshots); the first's version."""
        stats = [asdict(e.stats) for e in self.evaluators]
        out = dict(stats[0])
        for key in ("rounds", "games", "missing_snapshots"):
            out[key] = sum(s[key] for s in stats)
        return out


class EvaluatorPool:
    """The run's evaluator actors, as the driver sees them: start, watch, replace, stop.

    Nothing here blocks the driver loop: stats are collected when they are ready, and an
    evaluator that failed is replaced (ratings are worth having, but not worth stopping training
    for) up to MAX_REPLACEMENTS times per slot, each replacement logged and counted.
    """

    MAX_REPLACEMENTS = 5

    def __init__(self, cfg: Config, redis_url: str, run_id: str, log: Callable[[str], None] = print) -> None:
        self.cfg_dict, self.url, self.run_id, self.log = cfg.to_dict(), redis_url, run_id, log
        self.num_cpus, self.resources = cfg.eval.num_cpus, dict(cfg.eval.resources)
        n = cfg.eval.num_evaluators
        self.handles: list = [None] * n
        self.runs: list = [None] * n
        self.replacements = [0] * n
        self._stats: list[dict] = [{} for _ in range(n)]
        self._stats_refs: list = [None] * n
        self._games_before = [0] * n  # games of replaced incarnations, so the count never goes back
        for i in range(n):
            self._start(i)

    def _start(self, i: int) -> None:
        self.handles[i] = (
            ray.remote(EvaluatorService)
            .options(num_cpus=self.num_cpus, resources=self.resources, max_concurrency=2, scheduling_strategy="SPREAD")
            .remote(i, self.cfg_dict, self.url, self.run_id)
        )
        self.runs[i] = self.handles[i].run.remote()
        self._stats_refs[i] = None

    def check(self) -> None:
        """Replace evaluators whose run loop ended (it only ends by failing while the run goes on)."""
        for i, ref in enumerate(self.runs):
            if ref is None or not ray.wait([ref], timeout=0)[0]:
                continue
            try:
                ray.get(ref)
                reason = "its loop returned"
            except Exception as exc:  # noqa: BLE001 - any failure of a remote loop is reported, then handled
                cause = getattr(exc, "cause", None) or exc  # a RayTaskError carries the evaluator's own exception
                reason = f"{type(cause).__name__}: {(str(cause).strip().splitlines() or [''])[0]}"
            self._games_before[i] += int(self._stats[i].get("games", 0))
            self._stats[i] = {}
            ray.kill(self.handles[i], no_restart=True)
            if self.replacements[i] >= self.MAX_REPLACEMENTS:
                self.log(f"evaluator {i} failed again ({reason}); giving up on it after {self.MAX_REPLACEMENTS} replacements")
                self.runs[i] = None
                continue
            self.replacements[i] += 1
            self.log(f"evaluator {i} failed ({reason}); starting a replacement ({self.replacements[i]}/{self.MAX_REPLACEMENTS})")
            self._start(i)

    def games(self) -> int:
        """Rating games played so far (as of the latest stats that have arrived)."""
        for i, handle in enumerate(self.handles):
            if self.runs[i] is None:
                continue
            ref = self._stats_refs[i]
            if ref is not None and ray.wait([ref], timeout=0)[0]:
                try:
                    self._stats[i] = ray.get(ref)
                except Exception:  # noqa: BLE001 - a dead evaluator is check()'s business; keep the last stats
                    pass
                ref = None
            self._stats_refs[i] = ref if ref is not None else handle.stats.remote()
        return sum(self._games_before) + sum(int(s.get("games", 0)) for s in self._stats)

    def league_changed(self) -> None:
        pass  # evaluators play on their own clock (eval.interval_s)

    def stop(self, timeout_s: float = 30.0) -> None:
        for i, handle in enumerate(self.handles):
            if self.runs[i] is not None:
                handle.stop.remote()
        live = [r for r in self.runs if r is not None]
        if live:
            ray.wait(live, num_returns=len(live), timeout=timeout_s)
