"""One way to build a run, for Ray and in-process runs alike (in the manner of Acme's builders).

    plan_run(cfg)            resolve the game once: its slots, spec, learners (cluster/plan.py;
                             every Ray service builds its parts from the same plan)
    open_leagues(...)        every learner's stores and league: new, resumed from Redis, or restored
                             from the checkpoint; checked before anything is written

cluster/run/trainer.py (Ray actors) and cluster/run/inline.py (one process, turns) take what these
build and differ only in how they start the learner, the actors and the evaluators; the driver's loop
(cluster/run/driver.py) is the same for both.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable

from actors.evaluator import eval_reference_ids
from actors.learners import LearnerDef, league_roster
from actors.scripted import references_for
from cluster.plan import RunPlan
from cluster.run.leagues import ExploiterLine, LeagueSet, LearnerLeague
from cluster.run.resume import RunError, StartPoint, league_to_resume, league_without_checkpoint
from learner.checkpoint import resume_version
from cluster.stores.league_store import run_stores
from league.league import LeagueState
from league.manager import LeagueManager
from league.records import RANDOM_ID
from learner.checkpoint_store import CheckpointStore


def new_league(plan: RunPlan, d: LearnerDef) -> LeagueState:
    """A new run's league for learner d: the learner, random (a training opponent and the Elo
    anchor), the references named in league.train_references (training opponents too) and, when
    evaluators are on, the other references as evaluation-only players."""
    cfg = plan.cfg
    available = references_for(cfg.game.name, d.spec)
    # A role's evaluator plays the other roles' random players only (actors/role_evaluator.py): its
    # league holds no evaluation-only references that nobody would play.
    evals = eval_reference_ids(cfg, available) if cfg.eval.num_evaluators > 0 and len(plan.owners) == 1 else ()
    train = (RANDOM_ID, *(r for r in cfg.league.train_references if r != RANDOM_ID))
    return LeagueState.new(
        tuple(map(d.player, train)), tuple(map(d.player, evals)), payoff_decay=cfg.league.payoff_decay,
        roster=league_roster(plan.learners, d.name) if len(plan.learners) > 1 else None,
    )


def open_leagues(
    plan: RunPlan, url: str, run_id: str, run_dir: Path, start: StartPoint | None, resume, ckpts: CheckpointStore | None,
    log: Callable[[str], None], manager_cfg=None,
) -> tuple[LeagueSet, StartPoint]:
    """Every learner's league at the start of the run, and where each learner starts.

    `start`: the checkpoint to resume from (cluster/run/resume.py checkpoint_to_resume), or None.
    Fresh: new leagues, saved. Resumed: each league from Redis (or restored from the checkpoint's
    copy when Redis lost the run), each learner past its published versions. `--resume auto` with a
    league but no checkpoint: the leagues go on, the learners start afresh past what they published.
    Everything is read and checked before the first write."""
    cfg = plan.cfg
    stores = {d.name: run_stores(cfg, url, run_id, d.name) for d in plan.learners}
    # Exploiters own no league (actors/learners.py): the main learner's holds their players.
    existing = {d.name: stores[d.name][1].load() for d in plan.owners}  # a corrupt league raises PayloadError here
    exploiter_params = {d.name: stores[d.name][0] for d in plan.learners if d.exploiter}
    states: dict[str, LeagueState] = {}
    versions: dict[str, int] = {}
    restored: set[str] = set()
    if start is not None:
        for k, d in enumerate(plan.owners):
            params, _ = stores[d.name]
            own = start.for_learner(d.name)
            if k:
                own = replace(own, config_changes=())  # said once, with the first learner
            states[d.name], got = league_to_resume(
                cfg, d.spec, run_id, run_dir, params, existing[d.name], own, log, ckpts, d.label, exploiter_params
            )
            versions[d.name] = got.version
            if existing[d.name] is None:
                restored.add(d.name)
        for name, params in exploiter_params.items():  # past what it published, as any learner
            versions[name] = resume_version(start.for_learner(name).checkpoint_version, params.latest_version())
        start = start.with_versions({d.name: versions[d.name] for d in plan.learners})
    elif any(v is not None for v in existing.values()) and resume == "auto":
        for name, params in exploiter_params.items():
            versions[name] = params.latest_version() + 1
        for d in plan.owners:
            params, _ = stores[d.name]
            if existing[d.name] is None:
                raise RunError(f"run {run_id!r} has the leagues of {[n for n, v in existing.items() if v]} in Redis but not learner {d.label}'s")
            states[d.name], got = league_without_checkpoint(cfg, d.spec, run_id, params, existing[d.name], log)
            versions[d.name] = got.version
        start = StartPoint().with_versions({d.name: versions[d.name] for d in plan.learners})
    elif any(v is not None for v in existing.values()):
        raise RunError(f"run {run_id!r} already exists in this Redis; continue it with --resume, or choose another --run-dir or run.run_id")
    else:
        for d in plan.owners:
            states[d.name] = new_league(plan, d)
            restored.add(d.name)
        start = StartPoint()
    league_cfg = manager_cfg or cfg.league
    leagues = []
    for d in plan.owners:
        params, store = stores[d.name]
        if d.name in restored:
            store.save(states[d.name])  # new, or restored from the checkpoint: Redis holds it now
        leagues.append(LearnerLeague(d, params, store, LeagueManager(store, params, league_cfg, states[d.name])))
    lines = [ExploiterLine(d, stores[d.name][0]) for d in plan.learners if d.exploiter]
    return LeagueSet(leagues, lines, league_cfg), start
