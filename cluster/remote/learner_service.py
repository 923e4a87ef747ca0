"""Thin Ray adapter around the plain-Python learners (learner/learner.py) of a run.

A run trains a set of learners (actors/learners.py): one for a game whose sides are alike, one per
role for a game whose sides differ. LearnerService holds each learner's stream: its Learner, a
bounded inbound queue of encoded segment batches and the parameter store it publishes to (the
learner's own keys). `submit()` runs on Ray's thread pool while `train()` runs the update, so
actors never wait on an update, only on a full queue (backpressure); actors say which learner a
batch is for (the learner's name, "" for the one learner of a game without roles). Every update,
version, staleness and publish is one learner's own; the learners take turns, so none starves.

Faults: the service restores a checkpoint when given one (every learner's state), republishes a
learner's weights if Redis comes back without them, and counts per rollout-actor incarnation the
segments produced and received, so the segments a crashed actor lost can be reported
(cluster/remote/fleet.py restarts it).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np

from actors.learners import LearnerDef
from cluster.config import Config, config_from_dict, written_config
from cluster.plan import plan_run
from cluster.remote.inbox import SegmentQueue, queue_bytes_bound, segment_bytes
from cluster.remote.process import set_torch_threads
from cluster.stores.connection import connect
from cluster.stores.keys import RunKeys
from cluster.stores.param_store import ParamStore
from learner.checkpoint import Checkpoint, LearnerState, decode_checkpoint, encode_checkpoint, model_spec
from learner.learner import Learner
from learner.report import IterationReport, LearnerProgress, LearnerStatus
from learner.wire import PayloadError, decode_segments


def queue_bound(cfg: Config) -> int:
    """Segments the learner's inbound queue holds (learner.queue_segments; 0: one batch)."""
    return cfg.learner.queue_segments or -(-cfg.ppo.batch_size // cfg.rollout.segment_length)


@dataclass
class Stream:
    """One learner's part of the service: its Learner, inbound queue and parameter store."""

    defn: LearnerDef
    learner: Learner
    inbox: "SegmentQueue"
    params: ParamStore
    published: int = -1


def queue_bytes(cfg: Config, spec) -> int:
    """Bytes the learner's inbound queue holds (learner.queue_bytes; 0: derived, cluster/remote/inbox.py)."""
    lstm = cfg.model.lstm_size if cfg.model.kind == "lstm" else 0
    one = max(segment_bytes(s.obs_shape, s.num_actions, cfg.rollout.segment_length, lstm) for s in (spec, *spec.roles))
    return queue_bytes_bound(cfg.learner.queue_bytes, queue_bound(cfg), one)


class LearnerService:
    def __init__(
        self,
        cfg_dict: dict,
        redis_url: str,
        run_id: str,
        initial_weights: dict | None = None,
        initial_version: int | dict[str, int] = 0,
        checkpoint: bytes | None = None,
        own_process: bool = True,
    ) -> None:
        """`checkpoint` (a learner/checkpoint.py payload) restores every learner's weights,
        optimizer, RNGs and counters; `initial_version` is then the version to continue from (see
        resume_version), one number, or one per learner by name for a run of several.
        `own_process`: False when the service runs inside the driver (an in-process run), whose
        process-wide torch settings it then leaves alone."""
        cfg = config_from_dict(cfg_dict)
        if own_process:
            set_torch_threads(cfg.learner.torch_threads)
        self.cfg = cfg
        plan = plan_run(cfg)
        self.spec = plan.spec
        client, keys = connect(redis_url), RunKeys(cfg.redis.key_prefix, run_id)
        # Each learner seeded on its own (index 0 for the one learner of a game: the seed as always).
        self.streams = {
            d.name: Stream(
                d, Learner(d.spec, cfg.model, cfg.ppo, cfg.learner, seed=cfg.run.seed + d.index),
                SegmentQueue(queue_bound(cfg), queue_bytes(cfg, plan.spec)), ParamStore(client, keys.for_role(d.name), cfg.redis.keep_versions),
            )
            for d in plan.learners
        }
        self.names = tuple(self.streams)
        if checkpoint is not None:
            saved = decode_checkpoint(checkpoint).learner_states()
            if sorted(saved) != sorted(self.names):
                raise ValueError(f"the checkpoint holds learners {sorted(saved)}; this game trains {sorted(self.names)}")
            for name, st in saved.items():
                self.streams[name].learner.load_state_dict(st.learner)
        if initial_weights is not None:
            self.learner.load_weights(initial_weights)
        for name, stream in self.streams.items():
            stream.learner.version = initial_version if isinstance(initial_version, int) else initial_version[name]
        self.corrupt_payloads = 0
        self.rejected_full = 0
        self.republished = 0
        self._turn = -1
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
        self._updates: deque[IterationReport] = deque(maxlen=256)  # bounded: a driver that stops polling costs nothing
        self._error: BaseException | None = None
        self._updating_s = self._waited_s = 0.0

    # A run of one learner (a game without roles) is served through these, as it always was.
    @property
    def only(self) -> Stream:
        if len(self.streams) != 1:
            raise ValueError(f"this run trains learners {list(self.names)}: name one")
        return next(iter(self.streams.values()))

    learner = property(lambda self: self.only.learner)
    params = property(lambda self: self.only.params)
    inbox = property(lambda self: self.only.inbox)

    @property
    def params_of(self) -> dict[str, ParamStore]:
        return {name: s.params for name, s in self.streams.items()}

    def pid(self) -> int:
        return os.getpid()

    def device(self) -> str:
        """The learner's device as the console names it: "cpu", "cuda", "cpu, bf16 autocast"."""
        learner = self.streams[self.names[0]].learner
        return f"{learner.device}, bf16 autocast" if learner.bf16 else str(learner.device)

    def publish(self, name: str | None = None) -> int:
        """Publish learner `name`'s weights (every learner's when None); returns the (first) one's version."""
        for n in self.names if name is None else (name,):
            stream = self.streams[n]
            learner = stream.learner
            stream.params.publish(learner.version, learner.weights(), {"device": str(learner.device), "published_at": time.time()})
            stream.published = learner.version
        return self.streams[self.names[0] if name is None else name].learner.version

    def reset_learner(self, name: str, source: str = "") -> int:
        """An exploiter's reset (cluster/run/leagues.py): learner `name` restarts from learner
        `source`'s current weights with a fresh optimizer, as its next version (versions never go
        back, so no version names two sets of weights), published at once. Returns that version."""
        if name not in self.streams or source not in self.streams or name == source:
            raise ValueError(f"reset learner {name!r} from {source!r}: this run trains learners {list(self.names)}")
        with self._update_lock:
            target = self.streams[name].learner
            target.restart_from(self.streams[source].learner.weights(), target.version + 1)
            self.publish(name)
            return target.version

    def versions(self) -> dict[str, int]:
        """Each learner's version by name ({"": version} for a game without roles)."""
        return {n: s.learner.version for n, s in self.streams.items()}

    def _republish_if_lost(self, name: str) -> None:
        """A Redis that restarted without its data, or lost the weights key, no longer has our weights: publish them again."""
        stream = self.streams[name]
        if stream.published >= 0 and (stream.params.latest_version() < stream.published or not stream.params.holds_weights(stream.published)):
            self.publish(name)  # restarted empty, or the weights key evicted
            self.republished += 1

    def checkpoint(self, progress: dict, leagues: dict | None = None) -> tuple[int, bytes]:
        """(the checkpoint's version, every learner's complete state and the driver's `leagues`
        ({learner name: league}) as a checkpoint payload); the driver writes it where checkpoints
        live. One learner: its version, and the payload a run has always written."""
        c = self.cfg
        with self._update_lock:
            states = {
                n: LearnerState(s.learner.version, s.learner.state_dict(), model_spec(c.game.name, s.defn.spec.obs_shape, s.defn.spec.num_actions, c.model, s.defn.spec.head))
                for n, s in self.streams.items()
            }
        if len(states) == 1:
            (st,) = states.values()
            league = (leagues or {}).get(self.names[0])
            return st.version, encode_checkpoint(Checkpoint(st.version, st.learner, st.spec, written_config(c), progress, time.time(), league))
        version = sum(st.version for st in states.values())
        first = states[self.names[0]]
        return version, encode_checkpoint(Checkpoint(version, {}, first.spec, written_config(c), progress, time.time(), None, states, leagues))

    def submit(
        self, payload: bytes, timeout_s: float = 0.5, source: str = "", produced: int = 0, count: int = 0, role: str = ""
    ) -> bool:
        """Called by actors. False = the queue stayed full for timeout_s; the caller retries later.
        `source` names the actor incarnation, `produced` its running count of segments made and
        `count` the segments in this payload: what a crashed incarnation lost is their difference.
        `role`: which learner's segments these are (its role in a game with roles; "" for a game without)."""
        stream = self.streams.get(role)
        if stream is None:
            raise ValueError(f"segments for learner {role!r}, but this run trains learners {list(self.names)}")
        inbox = stream.inbox
        try:
            inbox.put(payload, max(count, 1), timeout=timeout_s)
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

    def _drain(self, wait_s: float, name: str = "") -> None:
        """Move batches from the queue into the learner: wait (up to wait_s) until a batch is
        ready, then stop, so that while the learner updates on it the actors fill the bounded queue
        with the next batch (and then wait: backpressure) instead of running ever further ahead."""
        deadline = time.monotonic() + wait_s
        learner, inbox = self.streams[name].learner, self.streams[name].inbox
        while not learner.ready():
            try:  # what is queued is taken even when the wait is over
                payload, declared = inbox.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return
            try:
                segments = decode_segments(payload)
                if len(segments) != declared:  # the queue counted what the actor declared
                    raise PayloadError(f"a payload declared {declared} segments and holds {len(segments)}")
                learner.add(segments)
            except (PayloadError, ValueError):
                # A corrupt batch must not kill training: drop it and count it where users look.
                self.corrupt_payloads += 1

    def train(self, wait_s: float = 1.0) -> LearnerProgress:
        """Run one update if enough samples arrive within wait_s; its report (no update when
        there were too few samples) and the counters after it."""
        report = self._train_once(wait_s)
        return LearnerProgress(() if report is None else (report,), self._status())

    def add(self, segments: list, name: str = "") -> None:
        """An in-process run's segments, straight into learner `name` (no queue, no wire format)."""
        self.streams[name].learner.add(segments)

    def train_ready(self, on_update: Callable[[Learner], None] | None = None) -> LearnerProgress:
        """Update for as long as a learner holds a full batch (an in-process run's learner step:
        its segments go straight into the learners, `add`), calling on_update(learner) after
        each. Reports every update, then the counters."""
        reports = []
        while any(s.learner.ready() for s in self.streams.values()):
            report = self._train_once(0.0)
            if report is None:
                break
            reports.append(report)
            if on_update is not None:
                on_update(self.streams[report.role].learner)
        return LearnerProgress(tuple(reports), self._status())

    def _train_once(self, wait_s: float) -> IterationReport | None:
        """One update's report, or None when too few samples arrived within wait_s. The learners
        take turns: the first with a full batch (each waited for wait_s / learners) updates."""
        for name in self._turns():
            report = self._train_learner(name, wait_s / len(self.names))
            if report is not None:
                return report
        return None

    def _turns(self) -> tuple[str, ...]:
        """The learners in the order they try next: rotated after each call, so none starves."""
        if len(self.names) == 1:
            return self.names
        self._turn = (self._turn + 1) % len(self.names)
        return self.names[self._turn :] + self.names[: self._turn]

    def _train_learner(self, name: str, wait_s: float) -> IterationReport | None:
        t0 = time.monotonic()
        self._drain(wait_s, name)
        t1 = time.monotonic()
        learner = self.streams[name].learner
        with self._update_lock:
            self._republish_if_lost(name)
            if not learner.ready():
                self._waited_s += time.monotonic() - t0
                return None
            out = learner.update()
            if learner.version % self.cfg.learner.publish_every == 0:
                self.publish(name)
        t2 = time.monotonic()
        self._waited_s += t1 - t0
        self._updating_s += t2 - t1
        return IterationReport.from_metrics(out, update_s=t2 - t1, wait_for_data_s=t1 - t0, role=name)

    def _status(self) -> LearnerStatus:
        """The counters, summed over learners; learner_version is the first one's (role_versions: each,
        for a run of several)."""
        learners = [s.learner for s in self.streams.values()]
        busy = self._updating_s + self._waited_s
        return LearnerStatus(
            learner_version=learners[0].version,
            samples_in=sum(l.stats.samples_in for l in learners),
            samples_used=sum(l.stats.samples_used for l in learners),
            dropped_stale=sum(l.stats.dropped_stale for l in learners),
            corrupt_payloads=self.corrupt_payloads,
            rejected_full=self.rejected_full,
            republished=self.republished,
            queue=sum(s.inbox.qsize() for s in self.streams.values()),
            sample_reuse=sum(l.sample_reuse() for l in learners) / len(learners),
            learner_busy=self._updating_s / busy if busy > 0 else 0.0,
            role_versions=tuple(self.versions().items()) if len(learners) > 1 else (),
        )

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

    def progress(self) -> LearnerProgress:
        """The reports of every update since the last call (oldest first; at most the newest 256)
        and the counters now. Re-raises what stopped the training thread (NonFiniteLossError,
        ...), so the driver sees it as if it had called the update itself, once the updates before
        it have been reported (their reports say what led up to it)."""
        with self._lock:
            updates = tuple(self._updates)
            self._updates.clear()
        if self._error is not None and not updates:
            raise self._error
        return LearnerProgress(updates, self._status())

    def stop_training(self, timeout_s: float = 60.0) -> int:
        """Stop the training thread after its update in flight; returns the learner version."""
        self._stop_training.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._error is not None:
            raise self._error
        return self.streams[self.names[0]].learner.version

    def weights(self, name: str = "") -> tuple[int, dict[str, np.ndarray]]:
        """Learner `name`'s version and weights (the first learner's when "" names none)."""
        stream = self.streams.get(name) or self.streams[self.names[0]]
        with self._update_lock:
            return stream.learner.version, stream.learner.weights()
