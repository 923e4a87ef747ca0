"""The whole distributed training run, wired in one place.

    driver (this file) ── starts Redis (embedded) or connects to one, starts/joins Ray
      ├─ LearnerService  (Ray actor, GPU if asked)  ← segments from actors (bounded queue)
      │     └─ publishes versioned weights ───────→ Redis parameter store
      ├─ RolloutService × N (Ray actors)  ← poll weights / league pool from Redis
      │     └─ report finished games ────────────→ Redis game queue
      ├─ EvaluatorService × M (Ray actors) ← latest weights, snapshots; rating games → game queue
      ├─ LeagueManager (in the driver) ← game queue; writes ratings, snapshots, history to Redis
      └─ MetricsSink (in the driver) → TensorBoard (RUN_DIR/tb) and Ray's Prometheus gauges

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

from actors.evaluate import Agent, MatchResult, play_match
from actors.evaluator import initial_league, match_games
from actors.games import GameSpec, load_game
from actors.roles import role_player
from actors.scripted import references_for
from cluster.config import Config, check_model_fits, write_config_file, written_config
from cluster.events import LearnerStarted, Observer, Observers, RunMeta, RunStarted
from cluster.remote.evaluator_service import EvaluatorPool
from cluster.remote.fleet import RolloutFleet
from cluster.remote.learner_handle import RayLearner
from cluster.remote.preflight import PreflightError, check_joined_cluster
from cluster.run.console import ConsoleLog
from cluster.run.driver import DRIVER_TICK_S, DriverParts, Relaunched, drive
from cluster.run.resume import RunError, StartPoint, checkpoint_to_resume, league_to_resume, league_without_checkpoint
from cluster.run.roles_run import check_roles_run, train_roles
from cluster.stores.connection import redact, resolve_url, with_password
from cluster.stores.embedded_redis import EmbeddedRedis
from cluster.stores.lease import RunLease, refuse_if_driven, run_lease
from cluster.stores.redis_memory import refuse_evicting_redis
from cluster.stores.league_store import LeagueStore, run_stores
from cluster.stores.param_store import ParamStore
from cluster.ui.metrics import MetricsObserver, MetricsSink
from league.league import LeagueState, Player
from league.manager import LeagueManager
from league.records import LEARNER_ID, RANDOM_ID
from learner.checkpoint_store import CheckpointStore, is_uri, newest_readable, open_checkpoints
from learner.export import policy_meta, save_policy
from learner.model import InferencePolicy


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
    from its newest checkpoint and its league in Redis; everything is checked before anything is written.
    resume="auto" continues the run if it exists (a checkpoint, or a league that stopped before its
    first checkpoint) and starts it otherwise: what a retried job wants.
    `log` receives the console lines; `observers` the run's events (cluster/events.py), after the
    console and the metrics have."""
    make_slot, spec = load_game(cfg.game.name, cfg.game.kwargs, cfg.game.native, cfg.game.sides, cfg.game.roles)  # an unknown game fails here, before anything starts
    if spec.roles:  # asymmetric roles: a policy, learner stream and league per role (cluster/run/roles_run.py)
        check_roles_run(cfg, spec, resume)
        for role in spec.roles:
            check_model_fits(cfg, spec.role(role.name))
    else:
        check_model_fits(cfg, spec)
    if resume not in (False, True, "auto"):
        raise RunError(f"--resume takes no value, or 'auto' (continue the run if it exists, else start it); got {resume!r}")
    if resume and not (run_dir or cfg.run.run_dir):
        what = "--resume auto needs a run directory that stays the same across tries" if resume == "auto" else "--resume continues an existing run"
        raise RunError(f"{what}: say which with --run-dir DIR")
    if is_uri(str(run_dir or cfg.run.run_dir)):
        raise RunError(
            f"the run directory {run_dir or cfg.run.run_dir} must be local (TensorBoard files, the embedded Redis' data, the final "
            "policy); to keep checkpoints in object storage, add --set checkpoint.uri=s3://BUCKET/PATH (or gs://, ...)"
        )
    run_dir = Path(run_dir or default_run_dir(cfg))
    run_id = cfg.run.run_id or run_dir.name
    refuse_evicting_redis(resolve_url(cfg.redis.url), log)  # an external Redis that evicts would lose weights, games silently
    refuse_if_driven(resolve_url(cfg.redis.url), cfg.redis.key_prefix, run_id, cfg.run.lease_ttl_s)  # a live driver: refused first
    c = cfg.checkpoint
    ckpts = open_checkpoints(c.uri or run_dir / c.dir_name, c.keep, c.storage_options, run_id)
    start = checkpoint_to_resume(cfg, spec, run_dir, ckpts, resume, log)
    run_dir.mkdir(parents=True, exist_ok=True)
    log(f"run {run_id}: game {spec.name}, run dir {run_dir}")

    started_ray = init_ray(cfg, log)  # before touching Redis: a rejected run leaves nothing behind
    try:
        with redis_for_run(cfg, run_dir, log) as url, run_lease(url, cfg.redis.key_prefix, run_id, cfg.run.lease_ttl_s) as lease:
            log(f"redis {redact(url)}")
            if spec.roles:
                return _train_roles(cfg, spec, make_slot, run_dir, run_id, url, log, observers)
            params, store = run_stores(cfg, url, run_id)
            existing = store.load()  # a corrupt league document raises PayloadError here, and stays as it is
            if start is not None:
                state, start = league_to_resume(cfg, spec, run_id, run_dir, params, existing, start, log, ckpts)
                if existing is None:
                    store.save(state)  # restored from the checkpoint: Redis holds it again
            elif existing is not None and resume == "auto":
                state, start = league_without_checkpoint(cfg, spec, run_id, params, existing, log)
            elif existing is not None:
                raise RunError(
                    f"run {run_id!r} already exists in this Redis; continue it with --resume, "
                    "or choose another --run-dir or run.run_id"
                )
            else:
                state = initial_league(cfg, references_for(cfg.game.name))
                store.save(state)
            write_config_file(run_dir, cfg)
            new = RunMeta(run_id, spec.name, time.time())
            meta = RunMeta.from_doc({**new.to_doc(), **(store.meta() or {})}) if start is not None else new
            store.set_meta(dataclasses.replace(meta, running=True, config=written_config(cfg), resumed_at=time.time() if start else meta.resumed_at).to_doc())
            events = Observers([ConsoleLog(log, cfg.run.log_every_s), MetricsObserver(MetricsSink(run_dir / "tb", run_id)), *observers])
            run = _Run(cfg, spec, make_slot, run_id, run_dir, url, params, store, state, log, ckpts, start or StartPoint(), events, lease)
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


def _train_roles(cfg, spec, make_slot, run_dir, run_id, url, log, observers) -> TrainResult:
    outcome = train_roles(cfg, spec, make_slot, run_dir, run_id, url, log, observers)
    # Each role's league, without its own latest (the other league holds it as its learner): every
    # id once, each Elo on its own league's scale (anchored at that role's random player).
    table = [p for role, players in outcome.tables.items() for p in players if p.id != role_player(role, LEARNER_ID)]
    return TrainResult(run_id, run_dir, outcome.version, outcome.env_steps, outcome.games, None, table, outcome.summary)


@dataclass
class _Run:
    """Everything run_training has set up before the driver's loop starts."""

    cfg: Config
    spec: GameSpec
    make_slot: Callable
    run_id: str
    run_dir: Path
    url: str
    params: ParamStore
    store: LeagueStore
    state: LeagueState
    log: Callable[[str], None]
    ckpts: CheckpointStore
    start: StartPoint
    events: Observers
    lease: RunLease | None = None


def _train(run: _Run) -> TrainResult:
    """Start the learner and the actors, drive them (cluster/run/driver.py), then the final policy
    and the final matches."""
    cfg, start, events = run.cfg, run.start, run.events
    resumed_from = start.checkpoint_version if start.checkpoint is not None else None
    events.run_started(RunStarted(run.run_id, run.run_dir, run.url, resumed_from, start.version, tuple(start.config_changes)))
    learner = RayLearner.start(cfg, run.url, run.run_id, start.version, start.checkpoint)
    events.learner_started(LearnerStarted(learner.device(), learner.pid(), start.version, learner.name))
    manager = LeagueManager(run.store, run.params, cfg.league, run.state)
    finals: dict[str, MatchResult] = {}
    final_version: list[int] = []

    def wrap_up() -> None:
        """A budget was spent: the final policy and its matches, before the last checkpoint."""
        version, weights = parts.learner.weights()  # the learner that finished the run (a restarted one, perhaps)
        _save_final_policy(run, version, weights)
        finals.update(_final_eval(cfg, run.spec, run.make_slot, version, weights, run.store))
        final_version.append(version)

    parts = DriverParts(
        cfg, learner, RolloutFleet(cfg, run.url, run.run_id, learner.name, events), EvaluatorPool(cfg, run.url, run.run_id, run.log),
        manager, run.store, events, run.log, ckpts=run.ckpts, run_dir=run.run_dir, start=start, tick_s=DRIVER_TICK_S, league_every_versions=0,
        relaunch=lambda dead: _relaunch(run, dead), wrap_up=wrap_up, lease=run.lease,
    )
    outcome = drive(parts)
    if final_version:
        version = final_version[0]
    else:  # interrupted, no wrap-up: the final policy is still written, the matches are skipped
        version, weights = parts.learner.weights()
        _save_final_policy(run, version, weights)
    for name, r in finals.items():
        lo, hi = r.confidence_interval()
        run.log(f"final: latest (v{version}, greedy) vs {name} over {r.games} games: "
                f"W {r.wins} D {r.draws} L {r.losses}, score {r.score:.3f} (95% CI {lo:.3f}-{hi:.3f})")
    return TrainResult(
        run.run_id, run.run_dir, version, outcome.env_steps, outcome.games, finals.get(RANDOM_ID), manager.state.table(), outcome.summary, finals
    )


def _save_final_policy(run: _Run, version: int, weights) -> None:
    spec = run.spec
    save_policy(run.run_dir / "final_policy.msgpack", weights, version, policy_meta(spec.name, run.cfg.model, spec.obs_shape, spec.num_actions, spec.head))


def _relaunch(run: _Run, dead: RayLearner) -> Relaunched:
    """A new learner in place of a dead one: from the newest checkpoint (fresh weights if there is
    none yet), numbering its versions past every published one, so that actors notice it and no
    version number ever names two sets of weights."""
    died_at = run.params.latest_version()
    found = newest_readable(run.ckpts, run.log)  # a corrupt newest one is skipped, not reread on every try
    ckpt_version, data = (found[0], found[1]) if found is not None else (None, None)
    version = max(ckpt_version or 0, died_at + 1)
    new = dead.replace(run.cfg, run.url, run.run_id, version, data)
    return Relaunched(new, ckpt_version, died_at, version, new.device(), new.pid())


def _final_eval(cfg, spec, make_slot, version, weights, store: LeagueStore) -> dict[str, MatchResult]:
    """Latest, playing its most likely move, against every reference of the game (random first),
    run.eval_games each, seats alternating. Reported to the league as rating ('eval') games so
    the table is anchored."""
    policy = InferencePolicy(spec.obs_shape, spec.num_actions, cfg.model, version, head=spec.head)
    policy.load(weights, version)
    refs = references_for(cfg.game.name, spec)
    out = {}
    for name in sorted(refs, key=lambda r: r != RANDOM_ID):
        result = play_match(make_slot, Agent(policy=policy, greedy=True), Agent(scripted=refs[name]), cfg.run.eval_games, seed=cfg.run.seed + 7)
        store.push_games(match_games(f"final-eval-{name}-{version}", LEARNER_ID, version, name, result, time.time()))
        out[name] = result
    return out
