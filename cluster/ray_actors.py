"""Thin Ray adapters around the plain-Python learner and rollout worker.

LearnerService: owns the Learner, a bounded inbound queue of encoded segment batches, and the
parameter store it publishes to. `submit()` runs on Ray's thread pool while `train()` runs the
update, so actors never wait on an update, only on a full queue (backpressure).

RolloutService: owns a RolloutWorker whose sink sends msgpack batches to the learner with at most
`max_inflight` calls outstanding; when the learner's queue is full it retries with backoff, and
the time spent waiting is counted.

Faults: the learner restores a checkpoint when given one, republishes its weights if Redis comes
back without them, and counts per rollout-actor incarnation the segments produced and received, so
the segments a crashed actor lost can be reported (cluster/fleet.py restarts it).
"""

from __future__ import annotations

import os
import queue
import threading
import time
import traceback
import warnings
from collections import deque

import numpy as np
import ray

from actors.games import load_game
from actors.rollout import RolloutWorker
from actors.scripted import references_for
from cluster.config import Config, config_from_dict
from cluster.league_store import LeagueReader, LeagueStore, run_stores
from cluster.param_store import ParamStore
from cluster.redis_conn import RunKeys, connect
from league.records import GameResult
from learner.checkpoint import Checkpoint, decode_checkpoint, encode_checkpoint, model_spec
from learner.learner import Learner
from learner.segment import Segment
from learner.wire import PayloadError, decode_segments, encode_segments


def _set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def _restart_salt() -> int | None:
    """None in an actor's first incarnation, a fresh random number once Ray has restarted it."""
    with warnings.catch_warnings():
        # Ray 2.60's own implementation reads a deprecated property of its runtime context.
        warnings.simplefilter("ignore", DeprecationWarning)
        restarted = ray.get_runtime_context().was_current_actor_reconstructed
    if not restarted:
        return None
    return int.from_bytes(os.urandom(4), "little")


class LearnerService:
    def __init__(
        self,
        cfg_dict: dict,
        redis_url: str,
        run_id: str,
        initial_weights: dict | None = None,
        initial_version: int = 0,
        checkpoint: bytes | None = None,
    ) -> None:
        """`checkpoint` (a learner/checkpoint.py payload) restores weights, optimizer, RNGs and
        counters; `initial_version` is then the version to continue from (see resume_version)."""
        cfg = config_from_dict(cfg_dict)
        _set_threads(cfg.learner.torch_threads)
        self.cfg = cfg
        _, spec = load_game(cfg.game.name, cfg.game.kwargs, cfg.game.native)
        self.spec = spec
        self.learner = Learner(spec, cfg.model, cfg.ppo, cfg.learner, seed=cfg.run.seed)
        if checkpoint is not None:
            self.learner.load_state_dict(decode_checkpoint(checkpoint).learner)
        if initial_weights is not None:
            self.learner.load_weights(initial_weights)
        self.learner.version = initial_version
        self.params = ParamStore(connect(redis_url), RunKeys(cfg.redis.key_prefix, run_id), cfg.redis.keep_versions)
        self.inbox = SegmentQueue(cfg.learner.queue_segments or -(-cfg.ppo.batch_size // cfg.rollout.segment_length))
        self.corrupt_payloads = 0
        self.rejected_full = 0
        self.republished = 0
        self._published = -1
        # Per rollout-actor incarnation: [segments it says it produced, segments queued here].
        self._delivery: dict[str, list[int]] = {}
        self._failures: dict[str, str] = {}
        self._lock = threading.Lock()
        # train() and checkpoint() run on different threads of this actor: a checkpoint taken while
        # an update is in flight (the driver was interrupted mid-call) waits for it, so it holds
        # the newest published version and never a half-applied optimizer step.
        self._update_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop_training = threading.Event()
        self._updates: deque[dict] = deque(maxlen=256)  # bounded: a driver that stops polling costs nothing
        self._error: BaseException | None = None
        self._updating_s = self._waited_s = 0.0

    def pid(self) -> int:
        return os.getpid()

    def device(self) -> str:
        return str(self.learner.device)

    def publish(self) -> int:
        self.params.publish(
            self.learner.version, self.learner.weights(), {"device": str(self.learner.device), "published_at": time.time()}
        )
        self._published = self.learner.version
        return self.learner.version

    def _republish_if_lost(self) -> None:
        """A Redis that restarted without its data no longer has our weights: publish them again."""
        if self._published >= 0 and self.params.latest_version() < self._published:
            self.publish()
            self.republished += 1

    def checkpoint(self, progress: dict) -> tuple[int, bytes]:
        """(version, the learner's complete state as a checkpoint payload); the driver writes it to disk."""
        c = self.cfg
        spec = model_spec(c.game.name, self.spec.obs_shape, self.spec.num_actions, c.model)
        with self._update_lock:
            v, state = self.learner.version, self.learner.state_dict()
        return v, encode_checkpoint(Checkpoint(v, state, spec, c.to_dict(), progress, time.time()))

    def submit(self, payload: bytes, timeout_s: float = 0.5, source: str = "", produced: int = 0, count: int = 0) -> bool:
        """Called by actors. False = the queue stayed full for timeout_s; the caller retries later.
        `source` names the actor incarnation, `produced` its running count of segments made and
        `count` the segments in this payload: what a crashed incarnation lost is their difference."""
        try:
            self.inbox.put(payload, max(count, 1), timeout=timeout_s)
            accepted = True
        except queue.Full:
            accepted = False
        with self._lock:
            if not accepted:
                self.rejected_full += 1
            if source:
                row = self._delivery.setdefault(source, [0, 0])
                row[0] = max(row[0], produced)
                row[1] += count if accepted else 0
        return accepted

    def report_failure(self, source: str, error: str) -> None:
        """A rollout actor incarnation is about to crash on purpose because of `error`."""
        with self._lock:
            self._failures[source] = error

    def incarnation_ended(self, source: str) -> tuple[int, str]:
        """(segments the incarnation produced that never reached this learner's queue, the error it
        reported or '' if its process just died). Forgets the incarnation."""
        with self._lock:
            produced, queued = self._delivery.pop(source, [0, 0])
            return max(produced - queued, 0), self._failures.pop(source, "")

    def failures(self) -> dict[str, str]:
        """Errors reported by incarnations not yet ended (the driver reads them when an actor is gone for good)."""
        with self._lock:
            return dict(self._failures)

    def _drain(self, wait_s: float) -> None:
        """Move batches from the queue into the learner: wait (up to wait_s) until a batch is
        ready, then stop, so that while the learner updates on it the actors fill the bounded queue
        with the next batch (and then wait: backpressure) instead of running ever further ahead."""
        deadline = time.monotonic() + wait_s
        while not self.learner.ready():
            try:  # what is queued is taken even when the wait is over
                payload = self.inbox.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return
            try:
                self.learner.add(decode_segments(payload))
            except (PayloadError, ValueError):
                # A corrupt batch must not kill training: drop it and count it where users look.
                self.corrupt_payloads += 1

    def train(self, wait_s: float = 1.0) -> dict:
        """Run one update if enough samples arrive within wait_s. Returns metrics (only the
        counters when there was no update)."""
        return {**(self._train_once(wait_s) or {}), **self._status()}

    def _train_once(self, wait_s: float) -> dict | None:
        """One update's metrics, or None when too few samples arrived within wait_s."""
        t0 = time.monotonic()
        self._drain(wait_s)
        t1 = time.monotonic()
        with self._update_lock:
            self._republish_if_lost()
            if not self.learner.ready():
                self._waited_s += time.monotonic() - t0
                return None
            out = self.learner.update()
            if self.learner.version % self.cfg.learner.publish_every == 0:
                self.publish()
        t2 = time.monotonic()
        self._waited_s += t1 - t0
        self._updating_s += t2 - t1
        out["system/update_s"] = t2 - t1
        out["system/wait_for_data_s"] = t1 - t0
        return out

    def _status(self) -> dict:
        s = self.learner.stats
        busy = self._updating_s + self._waited_s
        return {
            "learner_version": self.learner.version,
            "samples_in": s.samples_in,
            "samples_used": s.samples_used,
            "dropped_stale": s.dropped_stale,
            "corrupt_payloads": self.corrupt_payloads,
            "rejected_full": self.rejected_full,
            "republished": self.republished,
            "queue": self.inbox.qsize(),
            "sample_reuse": self.learner.sample_reuse(),
            # Share of the learner's time spent updating rather than waiting for samples: near 1,
            # the learner is the bottleneck; well below, the actors are.
            "learner_busy": self._updating_s / busy if busy > 0 else 0.0,
        }

    # --- training on its own thread (what a distributed run uses) ----------------------------
    def start_training(self, wait_s: float = 0.5) -> None:
        """Train on a thread of this actor until stop_training(): each update follows the last as
        soon as samples are there, instead of waiting for the driver's next call (whose loop also
        refits ratings, writes checkpoints and metrics). Idempotent."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._train_forever, args=(wait_s,), name="learner-train", daemon=True)
            self._thread.start()

    def _train_forever(self, wait_s: float) -> None:
        try:
            while not self._stop_training.is_set():
                m = self._train_once(wait_s)
                if m is not None:
                    with self._lock:
                        self._updates.append(m)
        except BaseException as exc:  # noqa: BLE001 - kept and re-raised to the driver by progress()
            self._error = exc

    def progress(self) -> dict:
        """{"updates": the metrics of every update since the last call (oldest first; at most the
        newest 256), "status": the counters now}. Re-raises what stopped the training thread
        (NonFiniteLossError, ...), so the driver sees it as if it had called the update itself,
        once the updates before it have been reported (their metrics say what led up to it)."""
        with self._lock:
            updates = list(self._updates)
            self._updates.clear()
        if self._error is not None and not updates:
            raise self._error
        return {"updates": updates, "status": self._status()}

    def stop_training(self, timeout_s: float = 60.0) -> int:
        """Stop the training thread after its update in flight; returns the learner version."""
        self._stop_training.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._error is not None:
            raise self._error
        return self.learner.version

    def weights(self) -> tuple[int, dict[str, np.ndarray]]:
        with self._update_lock:
            return self.learner.version, self.learner.weights()


class SegmentQueue:
    """A FIFO of encoded segment batches bounded by the number of segments they hold (one batch
    of segments, or several, per payload), so `learner.queue_segments` means what it says however
    many segments an actor's tick produces. A payload larger than the whole bound still enters an
    empty queue: nothing is refused forever."""

    def __init__(self, max_segments: int) -> None:
        self.max_segments = max_segments
        self._items: deque[tuple[bytes, int]] = deque()
        self._segments = 0
        self._cond = threading.Condition()

    def put(self, payload: bytes, segments: int, timeout: float) -> None:
        """Raises queue.Full if there is no room within timeout seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._items and self._segments + segments > self.max_segments:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise queue.Full
                self._cond.wait(remaining)
            self._items.append((payload, segments))
            self._segments += segments
            self._cond.notify_all()

    def get(self, timeout: float) -> bytes:
        """Raises queue.Empty if nothing arrives within timeout seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._items:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise queue.Empty
                self._cond.wait(remaining)
            payload, segments = self._items.popleft()
            self._segments -= segments
            self._cond.notify_all()
            return payload

    def qsize(self) -> int:
        """Segments queued."""
        with self._cond:
            return self._segments


class RaySegmentSink:
    """Sends encoded segment batches to the learner; at most max_inflight outstanding calls."""

    def __init__(self, learner: "ray.actor.ActorHandle", max_inflight: int, source: str = "") -> None:
        self.learner = learner
        self.max_inflight = max_inflight
        self.source = source  # this actor incarnation, so the learner can count what a crash lost
        self.produced = 0
        self.inflight: dict = {}  # ObjectRef -> (payload, segments in it), kept until accepted
        self.wait_s = 0.0
        self.retries = 0
        self.dropped_at_stop = 0  # segments refused by a full queue after the run began to stop
        self.stopping = threading.Event()

    def _submit(self, payload: bytes, count: int) -> None:
        ref = self.learner.submit.remote(payload, source=self.source, produced=self.produced, count=count)
        self.inflight[ref] = (payload, count)

    def send(self, segments: list[Segment]) -> None:
        payload = encode_segments(segments)
        self.produced += len(segments)
        self._settle(limit=self.max_inflight)
        self._submit(payload, len(segments))

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
            payload, count = self.inflight.pop(ref)
            if ray.get(ref):
                self.retries = 0
                continue
            if self.stopping.is_set():
                # The run is ending and the learner no longer trains, so its queue stays full:
                # retrying would hold this actor (and the driver's shutdown) until a timeout.
                self.dropped_at_stop += count
                continue
            # The learner's queue stayed full: back off, then send the same batch again.
            self.retries += 1
            time.sleep(min(0.05 * self.retries, 0.5))
            self._submit(payload, count)

    def flush(self) -> None:
        self._settle(limit=1)


class RedisResultSink:
    def __init__(self, store: LeagueStore) -> None:
        self.store = store

    def report(self, results: list[GameResult]) -> None:
        self.store.push_games(results)


class RolloutService:
    def __init__(self, actor_id: int, cfg_dict: dict, redis_url: str, run_id: str, learner_name: str) -> None:
        """`learner_name`: the learner's Ray actor name. A name, not a handle: Ray keeps a handle
        argument in the object store, where it could be gone by the time it restarts this actor."""
        cfg: Config = config_from_dict(cfg_dict)
        learner = ray.get_actor(learner_name)
        _set_threads(1)
        params, store = run_stores(cfg, redis_url, run_id)
        make_slot, spec = load_game(cfg.game.name, cfg.game.kwargs, cfg.game.native)
        self.actor_id = actor_id
        self.learner = learner
        self.sink = RaySegmentSink(learner, cfg.rollout.max_inflight)
        self.worker = RolloutWorker(
            actor_id,
            cfg,
            make_slot,
            spec,
            params=params,
            league=LeagueReader(store, cfg.rollout.league_refresh_s),
            sink=self.sink,
            results=RedisResultSink(store),
            references=references_for(cfg.game.name),
            restart_salt=_restart_salt(),
        )
        self.sink.source = self.source
        self._stop = threading.Event()

    @property
    def source(self) -> str:
        """This incarnation of this actor (a restarted actor is a new one)."""
        return f"a{self.actor_id}-{self.worker.incarnation}"

    def run(self) -> dict:
        try:
            self.worker.run(self._stop.is_set)
        except ray.exceptions.RayError:
            raise  # the learner is gone: the driver stops the run, and a restart would not help
        except Exception as exc:  # noqa: BLE001 - an exception in a game: crash, so that Ray restarts us
            self._exit_for_restart(exc)
        self.sink.flush()
        return self.stats()

    def _exit_for_restart(self, exc: Exception) -> None:
        """Tell the learner why this incarnation ends (the driver logs it), then end the process:
        Ray restarts the actor and runs run() again there (max_task_retries=-1), so one path serves
        killed processes and exceptions alike, and rollout.max_restarts bounds both."""
        traceback.print_exc()
        try:
            ray.get(self.learner.report_failure.remote(self.source, f"{type(exc).__name__}: {exc}"), timeout=10)
        finally:
            os._exit(1)

    def stop(self) -> None:
        self._stop.set()
        self.sink.stopping.set()

    def stats(self) -> dict:
        s = self.worker.stats
        return {
            "source": self.source,
            "pid": os.getpid(),
            "env_steps": s.env_steps,
            "games": s.games,
            "segments": s.segments,
            "samples": s.samples,
            "policy_version": self.worker.latest.version,
            "weight_updates": s.weight_updates,
            "backpressure_s": self.sink.wait_s,
            "dropped_at_stop": self.sink.dropped_at_stop,
            "opponent_fallbacks": s.opponent_fallbacks,
        }
