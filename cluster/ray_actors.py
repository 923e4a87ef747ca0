"""Thin Ray adapters around the plain-Python learner and rollout worker.

LearnerService: owns the Learner, a bounded inbound queue of encoded segment batches, and the
parameter store it publishes to. `submit()` runs on Ray's thread pool while `train()` runs the
update, so actors never wait on an update, only on a full queue (backpressure).

RolloutService: owns a RolloutWorker whose sink sends msgpack batches to the learner with at most
`max_inflight` calls outstanding; when the learner's queue is full it retries with backoff, and
the time spent waiting is counted.
"""

from __future__ import annotations

import queue
import threading
import time

import numpy as np
import ray

from actors.games import load_game
from actors.rollout import RolloutWorker
from actors.scripted import references_for
from cluster.config import Config, config_from_dict
from cluster.league_store import LeagueReader, LeagueStore
from cluster.param_store import ParamStore
from cluster.records import GameResult, Segment
from cluster.redis_conn import RunKeys, connect
from cluster.wire import PayloadError, decode_segments, encode_segments
from learner.learner import Learner


def _set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


class LearnerService:
    def __init__(self, cfg_dict: dict, redis_url: str, run_id: str, initial_weights: dict | None = None, initial_version: int = 0) -> None:
        cfg = config_from_dict(cfg_dict)
        _set_threads(cfg.learner.torch_threads)
        self.cfg = cfg
        _, spec = load_game(cfg.game.name, cfg.game.kwargs)
        self.learner = Learner(spec, cfg.model, cfg.ppo, cfg.learner, seed=cfg.run.seed)
        if initial_weights is not None:
            self.learner.load_weights(initial_weights)
        self.learner.version = initial_version
        self.params = ParamStore(connect(redis_url), RunKeys(cfg.redis.key_prefix, run_id), cfg.redis.keep_versions)
        self.inbox: queue.Queue[bytes] = queue.Queue(maxsize=cfg.learner.queue_segments)
        self.corrupt_payloads = 0
        self.rejected_full = 0
        self._lock = threading.Lock()

    def device(self) -> str:
        return str(self.learner.device)

    def publish(self) -> int:
        self.params.publish(
            self.learner.version, self.learner.weights(), {"device": str(self.learner.device), "published_at": time.time()}
        )
        return self.learner.version

    def submit(self, payload: bytes, timeout_s: float = 0.5) -> bool:
        """Called by actors. False = the queue stayed full for timeout_s; the caller retries later."""
        try:
            self.inbox.put(payload, timeout=timeout_s)
            return True
        except queue.Full:
            with self._lock:
                self.rejected_full += 1
            return False

    def _drain(self, wait_s: float) -> None:
        """Move batches from the queue into the learner: wait (up to wait_s) until a batch is
        ready, then take what is queued without waiting, holding at most two batches in memory
        so that a slow learner leaves the rest in the bounded queue (backpressure)."""
        deadline = time.monotonic() + wait_s
        limit = 2 * self.cfg.ppo.batch_size
        while self.learner.pending_samples < limit:
            remaining = deadline - time.monotonic()
            try:
                if self.learner.ready() or remaining <= 0:
                    payload = self.inbox.get_nowait()
                else:
                    payload = self.inbox.get(timeout=remaining)
            except queue.Empty:
                return
            try:
                self.learner.add(decode_segments(payload))
            except (PayloadError, ValueError):
                # A corrupt batch must not kill training: drop it and count it where users look.
                self.corrupt_payloads += 1

    def train(self, wait_s: float = 1.0) -> dict:
        """Run one update if enough samples arrive within wait_s. Returns metrics (empty if none)."""
        self._drain(wait_s)
        out: dict = {}
        if self.learner.ready():
            out = self.learner.update()
            if self.learner.version % self.cfg.learner.publish_every == 0:
                self.publish()
        s = self.learner.stats
        out.update(
            {
                "learner_version": self.learner.version,
                "samples_in": s.samples_in,
                "samples_used": s.samples_used,
                "dropped_stale": s.dropped_stale,
                "corrupt_payloads": self.corrupt_payloads,
                "rejected_full": self.rejected_full,
                "queue": self.inbox.qsize(),
                "sample_reuse": self.learner.sample_reuse(),
            }
        )
        return out

    def weights(self) -> tuple[int, dict[str, np.ndarray]]:
        return self.learner.version, self.learner.weights()


class RaySegmentSink:
    """Sends encoded segment batches to the learner; at most max_inflight outstanding calls."""

    def __init__(self, learner: "ray.actor.ActorHandle", max_inflight: int) -> None:
        self.learner = learner
        self.max_inflight = max_inflight
        self.inflight: dict = {}  # ObjectRef -> payload, kept until accepted
        self.wait_s = 0.0
        self.retries = 0

    def send(self, segments: list[Segment]) -> None:
        payload = encode_segments(segments)
        self._settle(limit=self.max_inflight)
        self.inflight[self.learner.submit.remote(payload)] = payload

    def _settle(self, limit: int) -> None:
        """Block until fewer than `limit` calls are outstanding; collect any that finished."""
        t0 = time.monotonic()
        while len(self.inflight) >= limit:
            ready, _ = ray.wait(list(self.inflight), num_returns=1)
            self._resolve(ready)
        if self.inflight:
            ready, _ = ray.wait(list(self.inflight), num_returns=len(self.inflight), timeout=0)
            self._resolve(ready)
        self.wait_s += time.monotonic() - t0

    def _resolve(self, refs: list) -> None:
        for ref in refs:
            payload = self.inflight.pop(ref)
            if ray.get(ref):
                self.retries = 0
                continue
            # The learner's queue stayed full: back off, then send the same batch again.
            self.retries += 1
            time.sleep(min(0.05 * self.retries, 0.5))
            self.inflight[self.learner.submit.remote(payload)] = payload

    def flush(self) -> None:
        self._settle(limit=1)


class RedisResultSink:
    def __init__(self, store: LeagueStore) -> None:
        self.store = store

    def report(self, results: list[GameResult]) -> None:
        self.store.push_games(results)


class RolloutService:
    def __init__(self, actor_id: int, cfg_dict: dict, redis_url: str, run_id: str, learner: "ray.actor.ActorHandle") -> None:
        cfg: Config = config_from_dict(cfg_dict)
        _set_threads(1)
        client = connect(redis_url)
        keys = RunKeys(cfg.redis.key_prefix, run_id)
        make_slot, spec = load_game(cfg.game.name, cfg.game.kwargs)
        store = LeagueStore(client, keys, cfg.league.max_history)
        self.sink = RaySegmentSink(learner, cfg.rollout.max_inflight)
        self.worker = RolloutWorker(
            actor_id,
            cfg,
            make_slot,
            spec,
            params=ParamStore(client, keys, cfg.redis.keep_versions),
            league=LeagueReader(store, cfg.rollout.league_refresh_s),
            sink=self.sink,
            results=RedisResultSink(store),
            references=references_for(cfg.game.name),
        )
        self._stop = threading.Event()

    def run(self) -> dict:
        self.worker.run(self._stop.is_set)
        self.sink.flush()
        return self.stats()

    def stop(self) -> None:
        self._stop.set()

    def stats(self) -> dict:
        s = self.worker.stats
        return {
            "env_steps": s.env_steps,
            "games": s.games,
            "segments": s.segments,
            "samples": s.samples,
            "policy_version": self.worker.latest.version,
            "weight_updates": s.weight_updates,
            "backpressure_s": self.sink.wait_s,
            "opponent_fallbacks": s.opponent_fallbacks,
        }
