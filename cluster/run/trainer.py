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
supervised by cluster/remote/fleet.py (restarted by Ray, lost work counted); a dead learner or repeated NaN losses stop the run with a
RunError that says how to resume.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import ray
import yaml
from ray.exceptions import RayActorError

from actors.evaluate import Agent, MatchResult, play_match
from actors.evaluator import initial_league, match_games
from actors.games import load_game
from actors.scripted import references_for
from cluster.config import Config, check_model_fits
from cluster.remote.evaluator_service import EvaluatorPool
from cluster.remote.fleet import FleetError, RolloutFleet
from cluster.remote.learner_service import LearnerService
from cluster.remote.preflight import PreflightError, check_joined_cluster
from cluster.run.resume import RunError, StartPoint, checkpoint_to_resume, league_to_resume
from cluster.stores.connection import redact, resolve_url
from cluster.stores.embedded_redis import EmbeddedRedis
from cluster.stores.league_store import LeagueStore, run_stores
from cluster.ui.metrics import MetricsSink, run_scalars
from league.league import Player
from league.manager import LeagueManager
from league.records import LEARNER_ID, RANDOM_ID
from learner.checkpoint import CheckpointDir
from learner.export import policy_meta, save_policy
from learner.learner import NonFiniteLossError
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
        yield url
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


def _format_progress(m: dict, steps: int, rate: float, games: int, elo: float) -> str:
    st = (m.get("system/staleness_mean"), m.get("system/staleness_max"))
    stale = f"{st[0]:.1f}/{st[1]:.0f}" if st[0] is not None else "-"
    loss = f" pi={m['losses/policy']:+.3f} v={m['losses/value']:.3f} H={m['losses/entropy']:.2f}" if "losses/policy" in m else ""
    return (
        f"v{m.get('learner_version', 0):>4}  steps {steps:>9,}  {rate:7.0f} steps/s  games {games:>7,}  "
        f"Elo(latest) {elo:7.1f}  lag {stale}  reuse {m.get('sample_reuse', 0):.2f}  busy {m.get('learner_busy', 0):.2f}{loss}"
    )


def run_training(
    cfg: Config, run_dir: Path | None = None, log: Callable[[str], None] = print, resume: bool = False
) -> TrainResult:
    """Train until run.total_env_steps or run.max_versions. With resume, continue the run in run_dir
    from its newest checkpoint and its league in Redis; everything is checked before anything is written."""
    make_slot, spec = load_game(cfg.game.name, cfg.game.kwargs, cfg.game.native)  # an unknown game fails here, before anything starts
    check_model_fits(cfg, spec)
    if resume and not (run_dir or cfg.run.run_dir):
        raise RunError("--resume continues an existing run: say which with --run-dir DIR")
    run_dir = Path(run_dir or default_run_dir(cfg))
    run_id = cfg.run.run_id or run_dir.name
    ckpts = CheckpointDir(run_dir / cfg.checkpoint.dir_name, cfg.checkpoint.keep)
    start = checkpoint_to_resume(cfg, spec, run_dir, ckpts, resume)
    run_dir.mkdir(parents=True, exist_ok=True)
    log(f"run {run_id}: game {spec.name}, run dir {run_dir}")

    started_ray = init_ray(cfg, log)  # before touching Redis: a rejected run leaves nothing behind
    try:
        with redis_for_run(cfg, run_dir, log) as url:
            params, store = run_stores(cfg, url, run_id)
            log(f"redis {redact(url)}")
            existing = store.load()  # a corrupt league document raises PayloadError here, and stays as it is
            if start is not None:
                state, start = league_to_resume(cfg, spec, run_id, run_dir, params, existing, start, log)
            elif existing is not None:
                raise RunError(
                    f"run {run_id!r} already exists in this Redis; continue it with --resume, "
                    "or choose another --run-dir or run.run_id"
                )
            else:
                state = initial_league(cfg, references_for(cfg.game.name))
                store.save(state)
            (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
            meta = (store.meta() or {}) if start is not None else {"run_id": run_id, "game": spec.name, "started_at": time.time()}
            store.set_meta({**meta, "running": True, "config": cfg.to_dict(), **({"resumed_at": time.time()} if start else {})})
            try:
                return _train_loop(cfg, spec, make_slot, run_id, run_dir, url, params, store, state, log, ckpts, start or StartPoint())
            finally:
                meta = store.meta() or {}
                store.set_meta({**meta, "running": False, "finished_at": time.time()})
    finally:
        if started_ray:
            ray.shutdown()


def _start_learner(cfg: Config, url: str, run_id: str, start: StartPoint, log: Callable[[str], None]):
    """Start the learner (restoring the checkpoint, if any) and publish its weights. Returns (handle, name)."""
    name = f"selfplay-learner-{run_id}-{secrets.token_hex(4)}"  # rollout actors look it up by name
    learner = (
        ray.remote(LearnerService)
        .options(
            name=name,
            num_cpus=cfg.learner.num_cpus,
            num_gpus=cfg.learner.num_gpus,
            max_concurrency=cfg.rollout.num_actors * cfg.rollout.max_inflight + 4,
        )  # no max_restarts: a restarted learner would have lost its state; the run stops and is resumed
        .remote(cfg.to_dict(), url, run_id, initial_version=start.version, checkpoint=start.checkpoint)
    )
    ray.get(learner.publish.remote())
    learner.start_training.remote()
    log(f"learner on {ray.get(learner.device.remote())} (pid {ray.get(learner.pid.remote())}), published version {start.version}")
    return learner, name


def _resume_hint(run_dir: Path) -> str:
    return f"selfplay train --config {run_dir / 'config.yaml'} --run-dir {run_dir} --resume"


def _learner_call(ref, run_dir: Path, last_checkpoint: int):
    """The result of a call to the learner (progress(), stop_training()), with the failures of its
    training thread or process turned into a message that says how to continue."""
    try:
        return ray.get(ref)
    except NonFiniteLossError as exc:
        raise RunError(f"{exc} The last checkpoint (v{last_checkpoint}) predates them: after fixing the cause, {_resume_hint(run_dir)}") from exc
    except RayActorError as exc:
        raise RunError(
            f"learner died ({str(exc).strip().splitlines()[0]}); continue from the last checkpoint "
            f"(v{last_checkpoint}) with: {_resume_hint(run_dir)}"
        ) from exc


# The driver's loop runs at this period. The learner trains on its own thread meanwhile, so the
# period only sets how fresh the league, checkpoints and metrics are, never the learning speed.
DRIVER_TICK_S = 0.5


def _sigterm_as_interrupt() -> Callable[[], None]:
    """`ray job stop` sends SIGTERM, then SIGKILL after RAY_JOB_STOP_WAIT_TIME_S (3 s by default):
    treat SIGTERM as Ctrl-C so the run writes its checkpoint first. Returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    return lambda: signal.signal(signal.SIGTERM, previous)


def _train_loop(cfg, spec, make_slot, run_id, run_dir, url, params, store, state, log, ckpts: CheckpointDir, start: StartPoint) -> TrainResult:
    learner, learner_name = _start_learner(cfg, url, run_id, start, log)
    fleet = RolloutFleet(cfg, url, run_id, learner_name, log)
    manager = LeagueManager(store, params, cfg.league, state)
    evaluators, sink = EvaluatorPool(cfg, url, run_id, log), MetricsSink(run_dir / "tb", run_id)
    t0 = last_log = time.monotonic()
    metrics: dict = {}
    lag_sum, lag_n, lag_max = 0.0, 0, 0.0
    steps, games, last_ckpt, interrupted = start.env_steps, start.games, start.checkpoint_version, False
    base_samples: int | None = None

    def checkpoint() -> int:
        trained = start.train_seconds + time.monotonic() - t0
        version, data = ray.get(learner.checkpoint.remote({"env_steps": steps, "games": games, "train_seconds": trained}))
        ckpts.save(data, version)
        return version

    restore_sigterm = _sigterm_as_interrupt()
    try:
        try:
            while True:
                tick_started = time.monotonic()
                report = _learner_call(learner.progress.remote(), run_dir, last_ckpt)
                for u in report["updates"]:
                    lag_sum, lag_n = lag_sum + u["system/staleness_mean"], lag_n + 1
                    lag_max = max(lag_max, u["system/staleness_max"])
                    if u.get("losses/nonfinite_skipped"):
                        log(f"v{u['system/learner_version']:.0f}: skipped {u['losses/nonfinite_skipped']:.0f} minibatches with a NaN/inf loss")
                m = {**(report["updates"][-1] if report["updates"] else {}), **report["status"]}
                metrics = {**metrics, **m}  # the newest update's losses stay until the next update
                try:
                    fleet.check()
                except FleetError as exc:
                    raise RunError(f"{exc}. Continue from the last checkpoint with: {_resume_hint(run_dir)}") from exc
                run_steps, run_games = fleet.poll()
                steps, games = start.env_steps + run_steps, start.games + run_games
                for pid in manager.step(m["learner_version"]):
                    log(f"snapshot {pid} joined the league")
                if m["learner_version"] >= last_ckpt + cfg.checkpoint.every_versions:
                    last_ckpt = checkpoint()
                now = time.monotonic()
                rate = run_steps / max(now - t0, 1e-9)
                if base_samples is None:
                    base_samples = m["samples_used"]  # a resumed learner's counters start above 0
                samples_rate = (m["samples_used"] - base_samples) / max(now - t0, 1e-9)
                store.set_health(_health(metrics, steps, rate, games, samples_rate))
                evaluators.check()
                progress = {"env_steps": steps, "env_steps_per_s": rate, "games": games, "eval_games": evaluators.games()}
                sink.record(run_scalars(m, progress, manager.state), steps)
                if now - last_log >= cfg.run.log_every_s:
                    last_log = now
                    log(_format_progress(metrics, steps, rate, games, manager.state.players[LEARNER_ID].elo))
                if _budget_spent(cfg, steps, m["learner_version"], start.train_seconds + now - t0):
                    break
                time.sleep(max(0.0, DRIVER_TICK_S - (time.monotonic() - tick_started)))
        except KeyboardInterrupt:
            interrupted = True
            log("interrupted: writing a checkpoint, then stopping actors")
        # Stop updates first: the checkpoint and the final policy are then the same weights.
        _learner_call(learner.stop_training.remote(), run_dir, last_ckpt)
        last_ckpt = checkpoint()  # a clean stop always leaves a checkpoint of the final state
        log(f"checkpoint {ckpts.file(last_ckpt)} (learner version {last_ckpt}); continue with: {_resume_hint(run_dir)}")
    finally:
        restore_sigterm()
        stuck = fleet.stop()
        if stuck:
            log(f"{stuck} rollout actor(s) did not stop within 30 s; Ray ends them with the run")
        evaluators.stop()
        sink.close()
    elapsed = time.monotonic() - t0
    summary = {
        "env_steps_per_s": (steps - start.env_steps) / elapsed,
        "learner_samples_per_s": metrics.get("samples_used", 0) / elapsed,
        "staleness_mean": lag_sum / max(lag_n, 1),
        "staleness_max": lag_max,
        "sample_reuse": metrics.get("sample_reuse", 0.0),
        "dropped_stale": metrics.get("dropped_stale", 0),
        "samples_in": metrics.get("samples_in", 0),
        "actor_restarts": fleet.restarts,
        "lost_segments": fleet.lost_segments,
        "duplicate_games": manager.duplicate_games,
        "checkpoint_version": last_ckpt,
        "interrupted": interrupted,
    }
    version, weights = ray.get(learner.weights.remote())
    save_policy(run_dir / "final_policy.msgpack", weights, version, policy_meta(spec.name, cfg.model, spec.obs_shape, spec.num_actions))
    finals = {} if interrupted else _final_eval(cfg, spec, make_slot, version, weights, store)
    manager.step(version)
    for name, r in finals.items():
        lo, hi = r.confidence_interval()
        log(f"final: latest (v{version}, greedy) vs {name} over {r.games} games: "
            f"W {r.wins} D {r.draws} L {r.losses}, score {r.score:.3f} (95% CI {lo:.3f}-{hi:.3f})")
    return TrainResult(run_id, run_dir, version, steps, games, finals.get(RANDOM_ID), manager.state.table(), summary, finals)


def _budget_spent(cfg: Config, env_steps: int, version: int, seconds: float) -> bool:
    """Whichever of the run's budgets (env steps, learner versions, wall time) runs out first ends it."""
    r = cfg.run
    return env_steps >= r.total_env_steps or bool(r.max_versions and version >= r.max_versions) or bool(r.max_seconds and seconds >= r.max_seconds)


def _health(m: dict, steps: int, rate: float, games: int, samples_rate: float) -> dict:
    return {
        "learner_version": int(m.get("learner_version", 0)),
        "env_steps": steps,
        "env_steps_per_s": rate,
        "samples_per_s": samples_rate,
        "games": games,
        "staleness": {k: m.get(f"system/staleness_{k}") for k in ("min", "mean", "max")},
        "sample_reuse": m.get("sample_reuse"),
        "dropped_stale": m.get("dropped_stale", 0),
        "updated_at": time.time(),
    }


def _final_eval(cfg, spec, make_slot, version, weights, store: LeagueStore) -> dict[str, MatchResult]:
    """Latest, playing its most likely move, against every reference of the game (random first),
    run.eval_games each, seats alternating. Reported to the league as rating ('eval') games so
    the table is anchored."""
    policy = InferencePolicy(spec.obs_shape, spec.num_actions, cfg.model, version)
    policy.load(weights, version)
    refs = references_for(cfg.game.name)
    out = {}
    for name in sorted(refs, key=lambda r: r != RANDOM_ID):
        result = play_match(make_slot, Agent(policy=policy, greedy=True), Agent(scripted=refs[name]), cfg.run.eval_games, seed=cfg.run.seed + 7)
        store.push_games(match_games(f"final-eval-{name}-{version}", LEARNER_ID, version, name, result, time.time()))
        out[name] = result
    return out
