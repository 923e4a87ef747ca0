"""The whole distributed training run, wired in one place.

    driver (this file) ── starts Redis (embedded) or connects to one, starts/joins Ray
      ├─ LearnerService  (Ray actor, GPU if asked)  ← segments from actors (bounded queue)
      │     └─ publishes versioned weights ───────→ Redis parameter store
      ├─ RolloutService × N (Ray actors)  ← poll weights / league pool from Redis
      │     └─ report finished games ────────────→ Redis game queue
      ├─ EvaluatorService × M (Ray actors) ← latest weights, snapshots; rating games → game queue
      ├─ LeagueManager (in the driver) ← game queue; writes ratings, snapshots, history to Redis
      └─ MetricsSink (in the driver) → TensorBoard (RUN_DIR/tb) and Ray's Prometheus gauges

A run trains a set of learners (actors/learners.py): one for a game whose sides are alike, one per
role for a game whose sides differ; the same code builds both (cluster/run/assembly.py), and every
part (learner service, rollout actors, evaluators, leagues, checkpoints) serves each learner.

Stops and faults: the driver writes a learner checkpoint (learner/checkpoint.py) into RUN_DIR every
checkpoint.every_versions versions and on every clean stop (the end, Ctrl-C, SIGTERM from
`ray job stop`); `resume=True` continues from the newest one with the league kept in Redis
(cluster/run/resume.py checks everything before anything is written). Rollout actors are
supervised by cluster/remote/fleet.py (restarted by Ray, lost work counted); a dead learner is
replaced by a new one from the newest checkpoint (learner.max_restarts, cluster/run/driver.py); when
those are used up, or on repeated NaN losses, the run stops with a RunError that says how to resume.
One driver drives a run: it holds the run's lease in Redis (cluster/stores/lease.py) from before its
first write to its end. What a run refuses and survives: docs/faults.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import ray
from redis.exceptions import OutOfMemoryError

from actors.evaluate import MatchResult
from cluster.config import Config, write_config_file, written_config
from cluster.events import LearnerStarted, Observer, Observers, RunMeta, RunStarted
from cluster.remote.evaluator_service import EvaluatorPool
from cluster.remote.fleet import RolloutFleet
from cluster.remote.learner_handle import RayLearner
from cluster.remote.preflight import PreflightError, check_joined_cluster
from cluster.plan import RunPlan, plan_run
from cluster.run.assembly import open_leagues
from cluster.run.console import ConsoleLog
from cluster.run.driver import DRIVER_TICK_S, DriverParts, Relaunched, drive
from cluster.run.finals import final_eval, final_line, role_final_lines, role_finals, save_final_policy
from cluster.run.leagues import LeagueSet, per_learner
from cluster.run.resume import StartPoint, checkpoint_to_resume
from cluster.run.train_checks import check_resume_args
from cluster.stores.connection import redact, resolve_url, with_password
from cluster.stores.embedded_redis import EmbeddedRedis
from cluster.stores.keys import RunKeys
from cluster.stores.lease import RunLease, refuse_if_driven, run_lease
from cluster.stores.league_store import LeagueStore
from cluster.stores.redis_memory import refuse_evicting_redis
from cluster.ui.metrics import MetricsObserver, MetricsSink
from league.league import Player
from league.records import RANDOM_ID
from learner.checkpoint_store import CheckpointStore, newest_readable, open_checkpoints


@dataclass
class TrainResult:
    run_id: str
    run_dir: Path
    learner_version: int
    env_steps: int
    games: int
    final_eval: MatchResult | None
    """The final policy (greedy) against the random player; None when the run was interrupted."""
    table: list[Player]
    summary: dict
    final_matches: dict = dataclasses.field(default_factory=dict)
    """The final policy (greedy) against every reference player of the game, by name."""
    versions: dict = dataclasses.field(default_factory=dict)
    """Each learner's final version, by name ({"": version} for a game without roles)."""
    role_finals: dict = dataclasses.field(default_factory=dict)
    """A game with roles: per role, its "first" snapshot's and "final" latest's RoleMatchResult
    against the other roles' random players."""


def default_run_dir(cfg: Config) -> Path:
    if cfg.run.run_dir:
        return Path(cfg.run.run_dir)
    return Path("runs") / f"{cfg.game.name.replace(':', '_').replace('.', '_')}-{time.strftime('%Y%m%d-%H%M%S')}"


@contextmanager
def redis_for_run(cfg: Config, run_dir: Path, log: Callable[[str], None]) -> Iterator[str]:
    url = resolve_url(cfg.redis.url)
    if url:
        yield with_password(url)  # the password from REDIS_PASSWORD, if the URL was given without one: actors get the whole URL
        return
    with EmbeddedRedis(run_dir / "redis") as embedded:
        log(f"embedded redis-server on 127.0.0.1:{embedded.port} (data in {run_dir / 'redis'})")
        yield embedded.url


def init_ray(cfg: Config, log: Callable[[str], None]) -> bool:
    """Join a cluster when one is named (run.ray_address, or RAY_ADDRESS as set by `ray job
    submit`), else start a private local Ray. Returns True if this call started Ray."""
    if ray.is_initialized():
        return False
    address = cfg.run.ray_address or os.environ.get("RAY_ADDRESS", "")
    if address:
        ray.init(address=address, log_to_driver=True)
        log(f"joined Ray cluster at {address}")
        try:
            # Fail now, with a message, rather than hang waiting for resources that do not exist.
            check_joined_cluster(cfg, resolve_url(cfg.redis.url))
        except PreflightError:
            ray.shutdown()
            raise
        return True
    needed = cfg.learner.num_cpus + cfg.rollout.num_actors * cfg.rollout.actor_num_cpus + cfg.eval.num_evaluators * cfg.eval.num_cpus + 1
    # Logical CPUs may exceed physical ones on a laptop: actors mostly wait on each other.
    ray.init(
        address="local",
        num_cpus=max(int(needed + 0.999), os.cpu_count() or 1),
        num_gpus=int(cfg.learner.num_gpus + 0.999),
        include_dashboard=False,
        log_to_driver=True,
    )
    log("started a private local Ray")
    return True


def run_training(
    cfg: Config,
    run_dir: Path | str | None = None,
    log: Callable[[str], None] = print,
    resume: bool | str = False,
    observers: Sequence[Observer] = (),
) -> TrainResult:
    """Train until run.total_env_steps or run.max_versions. With resume, continue the run in run_dir
    from its newest checkpoint and its leagues in Redis; everything is checked before anything is written.
    resume="auto" continues the run if it exists (a checkpoint, or a league that stopped before its
    first checkpoint) and starts it otherwise: what a retried job wants.
    `log` receives the console lines; `observers` the run's events (cluster/events.py), after the
    console and the metrics have."""
    plan = plan_run(cfg)  # an unknown game fails here, before anything starts
    check_resume_args(str(run_dir or cfg.run.run_dir or ""), resume)
    run_dir = Path(run_dir or default_run_dir(cfg))
    run_id = cfg.run.run_id or run_dir.name
    refuse_evicting_redis(resolve_url(cfg.redis.url), log)  # an external Redis that evicts would lose weights, games silently
    refuse_if_driven(resolve_url(cfg.redis.url), cfg.redis.key_prefix, run_id, cfg.run.lease_ttl_s)  # a live driver: refused first
    c = cfg.checkpoint
    ckpts = open_checkpoints(c.uri or run_dir / c.dir_name, c.keep, c.storage_options, run_id)
    start = checkpoint_to_resume(cfg, plan.learners, run_dir, ckpts, resume, log)
    run_dir.mkdir(parents=True, exist_ok=True)
    log(f"run {run_id}: game {plan.spec.name}, run dir {run_dir}" + (f", learners {list(plan.names)}" if len(plan.learners) > 1 else ""))

    started_ray = init_ray(cfg, log)  # before touching Redis: a rejected run leaves nothing behind
    try:
        with redis_for_run(cfg, run_dir, log) as url, run_lease(url, cfg.redis.key_prefix, run_id, cfg.run.lease_ttl_s) as lease:
            log(f"redis {redact(url)}")
            leagues, start = open_leagues(plan, url, run_id, run_dir, start, resume, ckpts, log)
            resumed = start.checkpoint is not None or start.version > 0
            store = LeagueStore(leagues.first.store.r, RunKeys(cfg.redis.key_prefix, run_id))  # the run's own keys: meta, health
            write_config_file(run_dir, cfg)
            extra = {"roles": list(plan.names)} if plan.spec.roles else {}
            if len(plan.owners) < len(plan.learners):
                extra["exploiters"] = [d.name for d in plan.learners if d.exploiter]
            new = RunMeta(run_id, plan.spec.name, time.time(), extra=extra)
            meta = RunMeta.from_doc({**new.to_doc(), **(store.meta() or {})}) if resumed else new
            store.set_meta(dataclasses.replace(meta, running=True, config=written_config(cfg), resumed_at=time.time() if resumed else meta.resumed_at).to_doc())
            events = Observers([ConsoleLog(log, cfg.run.log_every_s), MetricsObserver(MetricsSink(run_dir / "tb", run_id), per_learner(leagues)), *observers])
            run = _Run(cfg, plan, run_id, run_dir, url, leagues, store, log, ckpts, start, events, lease)
            try:
                return _train(run)
            finally:
                events.close()
                # A driver that lost its lease writes nothing more; a full Redis refuses this write (the error says so).
                with contextlib.suppress(OutOfMemoryError):
                    if lease.held:
                        meta = RunMeta.from_doc({**new.to_doc(), **(store.meta() or {})})
                        store.set_meta(dataclasses.replace(meta, running=False, finished_at=time.time()).to_doc())
    finally:
        if started_ray:
            ray.shutdown()


@dataclass
class _Run:
    """Everything run_training has set up before the driver's loop starts."""

    cfg: Config
    plan: RunPlan
    run_id: str
    run_dir: Path
    url: str
    leagues: LeagueSet
    store: LeagueStore
    """The run's own keys (meta, health); each learner's league has its own store in `leagues`."""
    log: Callable[[str], None]
    ckpts: CheckpointStore
    start: StartPoint
    events: Observers
    lease: RunLease | None = None


def _train(run: _Run) -> TrainResult:
    """Start the learners and the actors, drive them (cluster/run/driver.py), then the final
    policies and the final matches."""
    cfg, start, events, plan = run.cfg, run.start, run.events, run.plan
    resumed_from = start.checkpoint_version if start.checkpoint is not None else None
    events.run_started(RunStarted(run.run_id, run.run_dir, run.url, resumed_from, start.version, tuple(start.config_changes)))
    learner = RayLearner.start(cfg, run.url, run.run_id, start.learner_versions(plan.names), start.checkpoint)
    events.learner_started(LearnerStarted(learner.device(), learner.pid(), start.version, learner.name))
    finals: dict[str, dict] = {}

    def wrap_up() -> None:
        """A budget was spent: the final policies and their matches, before the last checkpoint."""
        finals.update(_wrap_up(run, parts.learner, final=True))

    parts = DriverParts(
        cfg, learner, RolloutFleet(cfg, run.url, run.run_id, learner.name, events), EvaluatorPool(cfg, run.url, run.run_id, run.log),
        run.leagues, run.store, events, run.log, ckpts=run.ckpts, run_dir=run.run_dir, start=start, tick_s=DRIVER_TICK_S, league_every_versions=0,
        relaunch=lambda dead: _relaunch(run, dead), wrap_up=wrap_up, lease=run.lease,
    )
    outcome = drive(parts)
    if not finals:  # interrupted, no wrap-up: the final policies are still written, the matches are skipped
        finals.update(_wrap_up(run, parts.learner, final=False))
    versions = {name: f["version"] for name, f in finals.items()}
    if len(plan.learners) > 1:
        run.log(f"learner versions per role: {versions}")
    for d in plan.learners:
        for line in finals[d.name]["lines"]:
            run.log(line)
    first = finals[plan.learners[0].name]
    return TrainResult(
        run.run_id, run.run_dir, first["version"], outcome.env_steps, outcome.games, first["matches"].get(RANDOM_ID),
        run.leagues.table(), outcome.summary, first["matches"], versions=versions,
        role_finals={name: f["role_matches"] for name, f in finals.items() if f["role_matches"]},
    )


def _wrap_up(run: _Run, learner, final: bool) -> dict[str, dict]:
    """Per learner: write its final policy; with `final`, play its final matches (reported to the
    leagues as rating games). {name: {version, matches, role_matches, lines}}."""
    out = {}
    for d in run.plan.learners:
        version, weights = learner.weights(d.name)  # the learner that finished the run (a restarted one, perhaps)
        save_final_policy(run.run_dir, run.cfg, d, version, weights, several=len(run.plan.learners) > 1)
        out[d.name] = {"version": version, "matches": {}, "role_matches": {}, "lines": []}
    if not final:
        return out
    if not run.plan.spec.roles:  # the main learner's matches (its exploiters play none)
        d = run.plan.learners[0]
        matches = final_eval(run.cfg, run.plan, d, out[d.name]["version"], learner.weights(d.name)[1], run.leagues.first.store)
        out[d.name]["matches"] = matches
        out[d.name]["lines"] = [final_line(name, r, out[d.name]["version"]) for name, r in matches.items()]
        return out
    for d in run.plan.learners:
        results = role_finals(run.cfg, run.plan, d, run.leagues)
        out[d.name]["role_matches"] = results
        out[d.name]["lines"] = role_final_lines(run.plan, d, results)
    return out


def _relaunch(run: _Run, dead: RayLearner) -> Relaunched:
    """A new learner service in place of a dead one: every learner from the newest readable
    checkpoint (fresh weights if there is none yet), each numbering its versions past every one it
    published, so that actors notice it and no version number ever names two sets of weights."""
    names = run.plan.names
    died = {lg.learner.name: lg.params.latest_version() for lg in run.leagues}
    died.update({x.learner.name: x.params.latest_version() for x in run.leagues.exploiters})
    found = newest_readable(run.ckpts, run.log)  # a corrupt newest one is skipped, not reread on every try
    ckpt_version, data, ckpt = found if found is not None else (None, None, None)
    saved = {name: st.version for name, st in ckpt.learner_states().items()} if ckpt is not None else {}
    versions = {n: max(saved.get(n, 0), died[n] + 1) for n in names}
    new = dead.replace(run.cfg, run.url, run.run_id, versions[""] if list(names) == [""] else versions, data)
    total = lambda v: sum(v.values())  # noqa: E731 - the checkpoint's numbering: the sum over learners
    return Relaunched(new, ckpt_version, total(died), total(versions), new.device(), new.pid())
