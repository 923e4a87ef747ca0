"""Thin Ray adapter around the plain-Python learner (learner/learner.py).

LearnerService owns the Learner, a bounded inbound queue of encoded segment batches, and the
parameter store it publishes to. `submit()` runs on Ray's thread pool while `train()` runs the
update, so actors never wait on an update, only on a full queue (backpressure).

Roles (actors/roles.py): a game whose sides differ has one policy per role. The service then holds
one Learner, one inbound queue and one parameter store (role-namespaced keys) per role, and every
update, version, staleness and publish is that role's own; actors say which role a batch is for.
A game without roles has one, named "", and is served exactly as before.

Faults: the learner restores a checkpoint when given one, republishes its weights if Redis comes
back without them, and counts per rollout-actor incarnation the segments produced and received, so
the segments a crashed actor lost can be reported (cluster/remote/fleet.py restarts it).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from typing import Callable

import numpy as np

from actors.games import load_game
from cluster.config import Config, config_from_dict
from cluster.remote.inbox import SegmentQueue, queue_bytes_bound, segment_bytes
from cluster.remote.process import set_torch_threads
from cluster.stores.connection import connect
from cluster.stores.keys import RunKeys
from cluster.stores.param_store import ParamStore
from learner.checkpoint import Checkpoint, decode_checkpoint, encode_checkpoint, model_spec
from learner.learner import Learner
from learner.report import IterationReport, LearnerProgress, LearnerStatus
from learner.wire import PayloadError, decode_segments


def queue_bound(cfg: Config) -> int:
    """Segments the learner's inbound queue holds (learner.queue_segments; 0: one batch)."""
    return cfg.learner.queue_segments or -(-cfg.ppo.batch_size // cfg.rollout.segment_length)


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
        initial_version: int = 0,
        checkpoint: bytes | None = None,
        own_process: bool = True,
    ) -> None:
        """`checkpoint` (a learner/checkpoint.py payload) restores weights, optimizer, RNGs and
        counters; `initial_version` is then the version to continue from (see resume_version).
        `own_process`: False when the service runs inside the driver (an in-process run), whose
        process-wide torch settings it then leaves alone."""
        cfg = config_from_dict(cfg_dict)
        if own_process:
            set_torch_threads(cfg.learner.torch_threads)
        self.cfg = cfg
        _, spec = load_game(cfg.game.name, cfg.game.kwargs, cfg.game.native, cfg.game.sides, cfg.game.roles)
        self.spec = spec
        self.roles = tuple(r.name for r in spec.roles) or ("",)
        if spec.roles and (checkpoint is not None or initial_weights is not None):
            raise ValueError(f"game {spec.name!r} has roles {list(self.roles)}: restoring a checkpoint or weights is not supported for roles yet")
        client, keys = connect(redis_url), RunKeys(cfg.redis.key_prefix, run_id)
        # One learner per role, each seeded on its own (k = 0 without roles: the seed as always).
        self.learners = {
            role: Learner(spec.role(role) if role else spec, cfg.model, cfg.ppo, cfg.learner, seed=cfg.run.seed + k)
            for k, role in enumerate(self.roles)
        }
        self.params_of = {role: ParamStore(client, keys.for_role(role), cfg.redis.keep_versions) for role in self.roles}
        self.inboxes = {role: SegmentQueue(queue_bound(cfg), queue_bytes(cfg, spec)) for role in self.roles}
        self.learner, self.params, self.inbox = self.learners[self.roles[0]], self.params_of[self.roles[0]], self.inboxes[self.roles[0]]
        if checkpoint is not None:
            self.learner.load_state_dict(decode_checkpoint(checkpoint).learner)
        if initial_weights is not None:
            self.learner.load_weights(initial_weights)
        for learner in self.learners.values():
            learner.version = initial_version
        self.corrupt_payloads = 0
        self.rejected_full = 0
        self.republished = 0
        self._published = dict.fromkeys(self.roles, -1)
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

    def pid(self) -> int:
        return os.getpid()

    def device(self) -> str:
        return str(self.learner.device)

    def publish(self, role: str | None = None) -> int:
        """Publish `role`'s weights (every role's when None); returns the (first) role's version."""
        for r in self.roles if role is None else (role,):
            learner = self.learners[r]
            self.params_of[r].publish(learner.version, learner.weights(), {"device": str(learner.device), "published_at": time.time()})
            self._published[r] = learner.version
        return self.learners[self.roles[0] if role is None else role].version

    def versions(self) -> dict[str, int]:
        """Each role's learner version ({"": version} for a game without roles)."""
        return {r: learner.version for r, learner in self.learners.items()}

    def _republish_if_lost(self, role: str) -> None:
        """A Redis that restarted without its data no longer has our weights: publish them again."""
        if self._published[role] >= 0 and self.params_of[role].latest_version() < self._published[role]:
            self.publish(role)
            self.republished += 1

    def checkpoint(self, progress: dict, league: dict | None = None) -> tuple[int, bytes]:
        """(version, the learner's complete state, and the driver's `league`, as a checkpoint payload);
        the driver writes it where checkpoints live."""
        if self.spec.roles:
            raise ValueError(f"game {self.spec.name!r} has roles: checkpoints of several policies are not supported yet")
        c = self.cfg
        spec = model_spec(c.game.name, self.spec.obs_shape, self.spec.num_actions, c.model, self.spec.head)
        with self._update_lock:
            v, state = self.learner.version, self.learner.state_dict()
        return v, encode_checkpoint(Checkpoint(v, state, spec, c.to_dict(), progress, time.time(), league))

    def submit(
        self, payload: bytes, timeout_s: float = 0.5, source: str = "", produced: int = 0, count: int = 0, role: str = ""
    ) -> bool:
        """Called by actors. False = the queue stayed full for timeout_s; the caller retries later.
        `source` names the actor incarnation, `produced` its running count of segments made and
        `count` the segments in this payload: what a crashed incarnation lost is their difference.
        `role`: whose segments these are (a game with roles); "" for a game without."""
        inbox = self.inboxes.get(role)
        if inbox is None:
            raise ValueError(f"segments for role {role!r}, but this learner serves roles {list(self.roles)}")
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

    def _drain(self, wait_s: float, role: str = "") -> None:
        """Move batches from the queue into the learner: wait (up to wait_s) until a batch is
        ready, then stop, so that while the learner updates on it the actors fill the bounded queue
        with the next batch (and then wait: backpressure) instead of running ever further ahead."""
        deadline = time.monotonic() + wait_s
        learner, inbox = self.learners[role], self.inboxes[role]
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

    def train_ready(self, on_update: Callable[[Learner], None] | None = None) -> LearnerProgress:
        """Update for as long as the learner holds a full batch (an in-process run's learner step:
        its segments go straight into `self.learner`), calling on_update(learner) after each.
        Reports every update, then the counters."""
        reports = []
        if self.spec.roles:
            raise ValueError(f"game {self.spec.name!r} has roles: the in-process learner step serves one policy")
        while self.learner.ready():
            report = self._train_once(0.0)
            if report is None:
                break
            reports.append(report)
            if on_update is not None:
                on_update(self.learner)
        return LearnerProgress(tuple(reports), self._status())

    def _train_once(self, wait_s: float) -> IterationReport | None:
        """One update's report, or None when too few samples arrived within wait_s. With roles,
        the roles take turns: the first with a full batch (each waited for wait_s / roles) updates."""
        for role in self._turns():
            report = self._train_role(role, wait_s / len(self.roles))
            if report is not None:
                return report
        return None

    def _turns(self) -> tuple[str, ...]:
        """The roles in the order they try next: rotated after each call, so no role starves."""
        if len(self.roles) == 1:
            return self.roles
        self._turn = (getattr(self, "_turn", -1) + 1) % len(self.roles)
        return self.roles[self._turn :] + self.roles[: self._turn]

    def _train_role(self, role: str, wait_s: float) -> IterationReport | None:
        t0 = time.monotonic()
        self._drain(wait_s, role)
        t1 = time.monotonic()
        learner = self.learners[role]
        with self._update_lock:
            self._republish_if_lost(role)
            if not learner.ready():
                self._waited_s += time.monotonic() - t0
                return None
            out = learner.update()
            if learner.version % self.cfg.learner.publish_every == 0:
                self.publish(role)
        t2 = time.monotonic()
        self._waited_s += t1 - t0
        self._updating_s += t2 - t1
        return IterationReport.from_metrics(out, update_s=t2 - t1, wait_for_data_s=t1 - t0, role=role)

    def _status(self) -> LearnerStatus:
        """The counters, summed over roles; learner_version is the first role's (role_versions: each)."""
        learners = list(self.learners.values())
        busy = self._updating_s + self._waited_s
        return LearnerStatus(
            learner_version=self.learner.version,
            samples_in=sum(l.stats.samples_in for l in learners),
            samples_used=sum(l.stats.samples_used for l in learners),
            dropped_stale=sum(l.stats.dropped_stale for l in learners),
            corrupt_payloads=self.corrupt_payloads,
            rejected_full=self.rejected_full,
            republished=self.republished,
            queue=sum(q.qsize() for q in self.inboxes.values()),
            sample_reuse=self.learner.sample_reuse(),
            learner_busy=self._updating_s / busy if busy > 0 else 0.0,
            role_versions=tuple(self.versions().items()) if self.spec.roles else (),
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
        return self.learner.version

    def weights(self) -> tuple[int, dict[str, np.ndarray]]:
        with self._update_lock:
            return self.learner.version, self.learner.weights()
