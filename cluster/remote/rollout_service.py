"""Thin Ray adapter around the plain-Python rollout worker (actors/rollout.py).

RolloutService owns a RolloutWorker whose sink (RaySegmentSink) gathers the segments of several
ticks (SendBuffer: rollout.send_segments, rollout.send_max_age_s) and sends them to the learner as
one msgpack batch, with at most `max_inflight` calls outstanding; when the learner's queue is full it retries
with backoff, and the time spent waiting is counted; when the learner dies it waits for the new one
the driver starts and sends to it. A game that raises ends the process so that Ray restarts the
actor (cluster/remote/fleet.py supervises the restarts).
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from dataclasses import dataclass

import ray

from actors.rollout import RoleIO, RolloutWorker
from cluster.config import Config, config_from_dict
from cluster.remote.learner_service import queue_bound
from cluster.remote.process import restart_salt, set_torch_threads
from cluster.plan import all_references, plan_run
from cluster.stores.league_store import LeagueReader, RedisResultSink, run_stores
from learner.segment import Segment
from learner.wire import encode_segments


@dataclass(frozen=True)
class ActorStats:
    """One rollout actor incarnation's counters, as the driver polls them."""

    source: str
    """The incarnation (a restarted actor is a new one)."""
    pid: int
    env_steps: int
    games: int
    segments: int
    samples: int
    policy_version: int
    weight_updates: int
    backpressure_s: float
    """Time spent waiting for room in the learner's queue."""
    dropped_at_stop: int
    opponent_fallbacks: int
    opponent_cache_hits: int
    """Games against a past opponent whose policy the actor held (rollout.opponent_cache)."""
    opponent_cache_misses: int
    """Games against a past opponent whose weights it fetched from the parameter store."""
    sends: int
    """Calls that carried segments to the learner (each gathers several ticks', rollout.send_segments)."""


# Ray passes call arguments up to 100 KiB inline with the call and larger ones through its object
# store, which costs more per segment (benchmarks/hot_paths.py --ray: 16 segments in 191 KiB cost
# more per segment than 8 in 96 KiB): a call is sent before it outgrows that.
INLINE_BYTES = 90 * 1024


class SendBuffer:
    """Segments gathered over ticks until there are `max_segments` of them, they fill `max_bytes`,
    or the oldest has waited `max_age_s`: fewer, larger calls to the learner. Plain Python, so it
    is tested without Ray."""

    def __init__(self, max_segments: int, max_age_s: float, max_bytes: int = INLINE_BYTES) -> None:
        self.max_segments, self.max_age_s, self.max_bytes = max_segments, max_age_s, max_bytes
        self._held: list[Segment] = []
        self._bytes = 0
        self._since = 0.0

    def add(self, segments: list[Segment], now: float) -> list[Segment]:
        """What to send now: everything held once it is due, else nothing."""
        if segments and not self._held:
            self._since = now
        self._held.extend(segments)
        self._bytes += sum(s.obs.nbytes + s.masks.nbytes + 29 * len(s) for s in segments)  # 29: the per-step fields
        due = len(self._held) >= self.max_segments or self._bytes >= self.max_bytes or now - self._since >= self.max_age_s
        return self.take() if self._held and due else []

    def take(self) -> list[Segment]:
        held, self._held, self._bytes = self._held, [], 0
        return held

    def __len__(self) -> int:
        return len(self._held)


def send_buffer(cfg: Config) -> SendBuffer:
    """rollout.send_segments, capped at half the learner's queue: one call can enter the queue while
    another waits there, and a call never outgrows the queue (which would take it only when empty)."""
    return SendBuffer(max(1, min(cfg.rollout.send_segments, queue_bound(cfg) // 2)), cfg.rollout.send_max_age_s)


class RaySegmentSink:
    """Sends encoded segment batches to the learner; at most max_inflight outstanding calls.

    When the learner dies, the driver starts a new one under the same Ray name (learner.max_restarts):
    the sink looks the name up again until it answers, then sends the batches the dead one never
    answered to the new one. It waits for as long as that takes, or until the run stops."""

    def __init__(
        self,
        learner: "ray.actor.ActorHandle | None",
        max_inflight: int,
        source: str = "",
        learner_name: str = "",
        buffer: SendBuffer | None = None,
        role: str = "",
    ) -> None:
        """`role`: whose segments this sink carries, in a game with roles (one sink per role)."""
        self.learner = learner
        self.learner_name = learner_name  # to find a new learner that replaced a dead one
        self.generation = 0  # learners replaced so far, as this sink has seen
        self.max_inflight = max_inflight
        self.source = source  # this actor incarnation, so the learner can count what a crash lost
        self.produced = 0  # segments produced for the current learner (what it can count as lost)
        self.inflight: dict = {}  # ObjectRef -> (payload, segments in it, generation), kept until accepted
        self.buffer = buffer or SendBuffer(max_segments=1, max_age_s=0.0)
        self.calls = 0
        self.wait_s = 0.0
        self.retries = 0
        self.dropped_at_stop = 0  # segments refused by a full queue after the run began to stop
        self.stopping = threading.Event()
        self._role = {"role": role} if role else {}  # a game without roles calls submit as it always did

    def _submit(self, payload: bytes, count: int) -> None:
        ref = self.learner.submit.remote(payload, source=self.source, produced=self.produced, count=count, **self._role)
        self.inflight[ref] = (payload, count, self.generation)
        self.calls += 1

    def send(self, segments: list[Segment]) -> None:
        due = self.buffer.add(segments, time.monotonic())
        if due:
            self._send_now(due)

    def _send_now(self, segments: list[Segment]) -> None:
        payload = encode_segments(segments)
        self._settle(limit=self.max_inflight)
        if self.learner is None and not self._learner_back(self.generation):
            self.dropped_at_stop += len(segments)
            return
        self.produced += len(segments)
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
            payload, count, generation = self.inflight.pop(ref)
            try:
                accepted = ray.get(ref)
            except ray.exceptions.RayActorError:
                if not self._learner_back(generation):
                    self.dropped_at_stop += count
                    continue
                self.produced += count  # produced for the new learner, as far as it can tell
                self._submit(payload, count)
                continue
            if accepted:
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

    def _learner_back(self, generation: int) -> bool:
        """After a call to the learner of `generation` failed because it died: True once a learner
        answers under its name (at once if a newer one already did), False if the run stops first."""
        if generation < self.generation:
            return True
        if not self.learner_name:
            raise RuntimeError("the learner died and this sink was not told its name, so cannot find a new one")
        pause = 0.1
        while not self.stopping.is_set():
            try:
                learner = ray.get_actor(self.learner_name)
                ray.get(learner.pid.remote(), timeout=30)
            except (ValueError, ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                time.sleep(pause)  # not started yet, or still the dead one: the driver is on it
                pause = min(pause * 2, 2.0)
                continue
            self.learner, self.generation, self.produced = learner, self.generation + 1, 0
            return True
        return False

    def flush(self) -> None:
        """Send what is gathered, then wait for every call to be answered."""
        held = self.buffer.take()
        if held:
            self._send_now(held)
        self._settle(limit=1)


class RolloutService:
    def __init__(self, actor_id: int, cfg_dict: dict, redis_url: str, run_id: str, learner_name: str) -> None:
        """`learner_name`: the learner's Ray actor name. A name, not a handle: Ray keeps a handle
        argument in the object store, where it could be gone by the time it restarts this actor."""
        cfg: Config = config_from_dict(cfg_dict)
        try:
            learner = ray.get_actor(learner_name)
        except ValueError:
            learner = None  # restarted while the learner is being replaced: the sink finds the new one
        set_torch_threads(1)
        plan = plan_run(cfg)
        self.actor_id = actor_id
        # Per learner ("" for the one of a game without roles): its weights, league and stream.
        stores = {name: run_stores(cfg, redis_url, run_id, name) for name in plan.names}
        self.sinks = {
            name: RaySegmentSink(learner, cfg.rollout.max_inflight, learner_name=learner_name, buffer=send_buffer(cfg), role=name)
            for name in plan.names
        }
        self.sink = self.sinks[plan.names[0]]
        # An exploiter owns no league: it reads (and its games go to) the main learner's.
        readers = {d.name: LeagueReader(stores[d.name][1], cfg.rollout.league_refresh_s, sampler=cfg.league.sampler) for d in plan.owners}
        io = {name: RoleIO(params, readers[plan.league_of(name)], self.sinks[name]) for name, (params, _) in stores.items()}
        self.worker = RolloutWorker(
            actor_id, cfg, plan.make_slot, plan.spec, None, None, None,
            results=RedisResultSink(*(stores[d.name][1] for d in plan.owners)),
            references=all_references(plan),
            restart_salt=restart_salt(),
            roles=io,
        )
        for sink in self.sinks.values():
            sink.source = self.source
        self._stop = threading.Event()

    @property
    def source(self) -> str:
        """This incarnation of this actor (a restarted actor is a new one)."""
        return f"a{self.actor_id}-{self.worker.incarnation}"

    def run(self) -> ActorStats:
        try:
            self.worker.run(self._stop.is_set)
        except ray.exceptions.RayError:
            raise  # Ray itself failed us (the sink outlives a dead learner): a restart would not help
        except Exception as exc:  # noqa: BLE001 - an exception in a game: crash, so that Ray restarts us
            self._exit_for_restart(exc)
        for sink in self.sinks.values():
            sink.flush()
        return self.stats()

    def _exit_for_restart(self, exc: Exception) -> None:
        """Tell the learner why this incarnation ends (the driver logs it), then end the process:
        Ray restarts the actor and runs run() again there (max_task_retries=-1), so one path serves
        killed processes and exceptions alike, and rollout.max_restarts bounds both."""
        traceback.print_exc()
        try:
            ray.get(self.sink.learner.report_failure.remote(self.source, f"{type(exc).__name__}: {exc}"), timeout=10)
        finally:
            os._exit(1)

    def stop(self) -> None:
        self._stop.set()
        for sink in self.sinks.values():
            sink.stopping.set()

    def stats(self) -> ActorStats:
        s = self.worker.stats
        return ActorStats(
            source=self.source,
            pid=os.getpid(),
            env_steps=s.env_steps,
            games=s.games,
            segments=s.segments,
            samples=s.samples,
            policy_version=self.worker.latest.version,
            weight_updates=s.weight_updates,
            backpressure_s=sum(sink.wait_s for sink in self.sinks.values()),
            dropped_at_stop=sum(sink.dropped_at_stop for sink in self.sinks.values()),
            opponent_fallbacks=s.opponent_fallbacks,
            opponent_cache_hits=s.opponent_cache_hits,
            opponent_cache_misses=s.opponent_cache_misses,
            sends=sum(sink.calls for sink in self.sinks.values()),
        )
