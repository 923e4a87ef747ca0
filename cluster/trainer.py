"""The whole distributed training run, wired in one place.

    driver (this file) ── starts Redis (embedded) or connects to one, starts/joins Ray
      ├─ LearnerService  (Ray actor, GPU if asked)  ← segments from actors (bounded queue)
      │     └─ publishes versioned weights ───────→ Redis parameter store
      ├─ RolloutService × N (Ray actors)  ← poll weights / league pool from Redis
      │     └─ report finished games ────────────→ Redis game queue
      └─ LeagueManager (in the driver) ← game queue; writes ratings, snapshots, history to Redis
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import ray
import yaml

from actors.evaluate import Agent, MatchResult, play_match
from actors.games import load_game
from actors.scripted import random_legal
from cluster.config import Config
from cluster.embedded_redis import EmbeddedRedis
from cluster.league_store import LeagueStore
from cluster.param_store import ParamStore
from cluster.preflight import PreflightError, check_joined_cluster
from cluster.ray_actors import LearnerService, RolloutService
from cluster.records import LEARNER_ID, RANDOM_ID, GameResult
from cluster.redis_conn import RunKeys, connect, redact, resolve_url
from learner.export import policy_meta, save_policy
from learner.model import InferencePolicy
from league.league import LeagueState, Player
from league.manager import LeagueManager


class RunError(RuntimeError):
    """The run cannot start or continue; the message says what to do."""


@dataclass
class TrainResult:
    run_id: str
    run_dir: Path
    learner_version: int
    env_steps: int
    games: int
    final_eval: MatchResult | None
    table: list[Player]
    summary: dict


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
    needed = cfg.learner.num_cpus + cfg.rollout.num_actors * cfg.rollout.actor_num_cpus + 1
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
        f"Elo(latest) {elo:7.1f}  lag {stale}  reuse {m.get('sample_reuse', 0):.2f}{loss}"
    )


def run_training(cfg: Config, run_dir: Path | None = None, log: Callable[[str], None] = print) -> TrainResult:
    make_slot, spec = load_game(cfg.game.name, cfg.game.kwargs)  # an unknown game fails here, before anything starts
    run_dir = Path(run_dir or default_run_dir(cfg))
    run_dir.mkdir(parents=True, exist_ok=True)
    run_id = cfg.run.run_id or run_dir.name
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    log(f"run {run_id}: game {spec.name}, run dir {run_dir}")

    started_ray = init_ray(cfg, log)  # before touching Redis: a rejected run leaves nothing behind
    try:
        with redis_for_run(cfg, run_dir, log) as url:
            client = connect(url)
            log(f"redis {redact(url)}")
            keys = RunKeys(cfg.redis.key_prefix, run_id)
            params = ParamStore(client, keys, cfg.redis.keep_versions)
            store = LeagueStore(client, keys, cfg.league.max_history)
            if store.load() is not None:
                raise RunError(f"run {run_id!r} already exists in this Redis; choose another --run-dir or run.run_id")
            state = LeagueState.new((RANDOM_ID,))
            store.save(state)
            store.set_meta({"run_id": run_id, "game": spec.name, "started_at": time.time(), "running": True, "config": cfg.to_dict()})
            try:
                return _train_loop(cfg, spec, make_slot, run_id, run_dir, url, params, store, state, log)
            finally:
                meta = store.meta() or {}
                store.set_meta({**meta, "running": False, "finished_at": time.time()})
    finally:
        if started_ray:
            ray.shutdown()


def _train_loop(cfg, spec, make_slot, run_id, run_dir, url, params, store, state, log) -> TrainResult:
    cfg_dict = cfg.to_dict()
    n = cfg.rollout.num_actors
    learner = (
        ray.remote(LearnerService)
        .options(num_cpus=cfg.learner.num_cpus, num_gpus=cfg.learner.num_gpus, max_concurrency=n * cfg.rollout.max_inflight + 4)
        .remote(cfg_dict, url, run_id)
    )
    ray.get(learner.publish.remote())
    log(f"learner on {ray.get(learner.device.remote())}, published version 0")
    actors = [
        ray.remote(RolloutService)
        .options(num_cpus=cfg.rollout.actor_num_cpus, max_concurrency=3, scheduling_strategy="SPREAD")
        .remote(i, cfg_dict, url, run_id, learner)
        for i in range(n)
    ]
    runs = [a.run.remote() for a in actors]
    manager = LeagueManager(store, params, cfg.league, state)
    t0 = last_log = time.monotonic()
    metrics: dict = {}
    lags: list[tuple[float, float]] = []
    steps = games = 0
    try:
        while True:
            m = ray.get(learner.train.remote(0.5))
            if "losses/total" in m or not metrics:
                metrics = m
            if "system/staleness_mean" in m:
                lags.append((m["system/staleness_mean"], m["system/staleness_max"]))
            metrics.update({k: m[k] for k in ("learner_version", "sample_reuse", "dropped_stale", "corrupt_payloads", "samples_in", "samples_used")})
            done, _ = ray.wait(runs, num_returns=len(runs), timeout=0)
            if done:
                ray.get(done)  # an actor's run() only returns early by raising: surface it
                raise RunError("a rollout actor stopped unexpectedly")
            stats = ray.get([a.stats.remote() for a in actors])
            steps, games = sum(s["env_steps"] for s in stats), sum(s["games"] for s in stats)
            for pid in manager.step(m["learner_version"]):
                log(f"snapshot {pid} joined the league")
            now = time.monotonic()
            rate = steps / max(now - t0, 1e-9)
            store.set_health(_health(metrics, steps, rate, games))
            if now - last_log >= cfg.run.log_every_s:
                last_log = now
                log(_format_progress(metrics, steps, rate, games, manager.state.players[LEARNER_ID].elo))
            if steps >= cfg.run.total_env_steps or (cfg.run.max_versions and m["learner_version"] >= cfg.run.max_versions):
                break
    except KeyboardInterrupt:
        log("interrupted: stopping actors")
    finally:
        for a in actors:
            a.stop.remote()
        ray.wait(runs, num_returns=len(runs), timeout=30)
    elapsed = time.monotonic() - t0
    summary = {
        "env_steps_per_s": steps / elapsed,
        "learner_samples_per_s": metrics.get("samples_used", 0) / elapsed,
        "staleness_mean": sum(x for x, _ in lags) / max(len(lags), 1),
        "staleness_max": max((y for _, y in lags), default=0.0),
        "sample_reuse": metrics.get("sample_reuse", 0.0),
        "dropped_stale": metrics.get("dropped_stale", 0),
        "samples_in": metrics.get("samples_in", 0),
    }
    version, weights = ray.get(learner.weights.remote())
    save_policy(run_dir / "final_policy.msgpack", weights, version, policy_meta(spec.name, cfg.model.hidden_sizes, spec.obs_dim, spec.num_actions))
    final = _final_eval(cfg, spec, make_slot, version, weights, store)
    manager.step(version)
    log(f"final: latest (v{version}) vs random over {final.games} games: "
        f"W {final.wins} D {final.draws} L {final.losses}, score {final.score:.3f}")
    return TrainResult(run_id, run_dir, version, steps, games, final, manager.state.table(), summary)


def _health(m: dict, steps: int, rate: float, games: int) -> dict:
    return {
        "learner_version": int(m.get("learner_version", 0)),
        "env_steps": steps,
        "env_steps_per_s": rate,
        "games": games,
        "staleness": {k: m.get(f"system/staleness_{k}") for k in ("min", "mean", "max")},
        "sample_reuse": m.get("sample_reuse"),
        "dropped_stale": m.get("dropped_stale", 0),
        "updated_at": time.time(),
    }


def _final_eval(cfg, spec, make_slot, version, weights, store: LeagueStore) -> MatchResult:
    """Latest vs random, reported to the league as rating ('eval') games so the table is anchored."""
    policy = InferencePolicy(spec.obs_dim, spec.num_actions, tuple(cfg.model.hidden_sizes), version)
    policy.load(weights, version)
    result = play_match(make_slot, Agent(policy=policy), Agent(scripted=random_legal), cfg.run.eval_games, seed=cfg.run.seed + 7)
    games = []
    for i, (s_latest) in enumerate([1.0] * result.wins + [0.5] * result.draws + [0.0] * result.losses):
        games.append(
            GameResult(f"final-eval-{version}-{i}", (LEARNER_ID, RANDOM_ID), (version, -1), (s_latest, 1.0 - s_latest), 0, "eval", 1.0, time.time())
        )
    store.push_games(games)
    return result
