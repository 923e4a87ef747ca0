"""The learner's Ray adapter (cluster/remote/learner_service.py), in-process with a real Redis: its bounded
inbound queue, and training on its own thread while the driver only polls."""

from __future__ import annotations

import queue
import time

import numpy as np
import pytest

from cluster.remote.learner_service import LearnerService, SegmentQueue
from cluster.remote.rollout_service import SendBuffer, send_buffer
from learner.learner import Learner, NonFiniteLossError
from learner.wire import encode_segments
from tests.fault_support import make_segment, small_config

# --- the queue -----------------------------------------------------------------------------------


def test_segment_queue_is_bounded_by_segments_not_payloads():
    q = SegmentQueue(max_segments=5)
    q.put(b"a", 3, timeout=0.0)
    q.put(b"b", 2, timeout=0.0)
    assert q.qsize() == 5
    t0 = time.monotonic()
    with pytest.raises(queue.Full):
        q.put(b"c", 1, timeout=0.05)  # full: waits its timeout, then refuses
    assert time.monotonic() - t0 >= 0.04
    assert q.get(timeout=0.0) == (b"a", 3)  # first in, first out, with the count it was declared with
    q.put(b"c", 3, timeout=0.0)  # 2 + 3 fits again
    assert [q.get(timeout=0.0)[0] for _ in range(2)] == [b"b", b"c"]
    with pytest.raises(queue.Empty):
        q.get(timeout=0.01)
    q.put(b"big", 50, timeout=0.0)  # larger than the bound: an empty queue still takes it
    assert q.qsize() == 50
    with pytest.raises(queue.Full):
        q.put(b"d", 1, timeout=0.0)


def test_send_buffer_gathers_ticks_until_enough_segments_or_the_oldest_is_old_enough():
    buf = SendBuffer(max_segments=4, max_age_s=0.5)
    a, b, c, d, e = (make_segment(seed=i) for i in range(5))
    assert buf.add([a, b], now=10.0) == [] and len(buf) == 2
    assert buf.add([], now=10.2) == []  # a tick without segments sends nothing
    assert buf.add([c, d, e], now=10.3) == [a, b, c, d, e]  # enough: all of it, the tick not split
    assert len(buf) == 0
    assert buf.add([a], now=20.0) == []  # the age counts from the oldest segment held...
    assert buf.add([b], now=20.4) == []
    assert buf.add([c], now=20.5) == [a, b, c]  # ...not from the newest
    assert buf.add([], now=99.0) == []
    buf.add([d], now=30.0)
    assert buf.take() == [d] and buf.take() == []  # what a stopping actor flushes
    small = SendBuffer(max_segments=100, max_age_s=10.0, max_bytes=3 * (a.obs.nbytes + a.masks.nbytes))
    assert small.add([a, b], now=0.0) == [] and small.add([c], now=0.0) == [a, b, c]  # full by size
    every_tick = SendBuffer(max_segments=1, max_age_s=0.0)
    assert every_tick.add([a], now=0.0) == [a] and every_tick.add([b, c], now=0.0) == [b, c]


def test_an_actor_never_sends_more_than_half_the_learners_queue_in_one_call():
    cfg = small_config("ppo.batch_size=2048", "rollout.segment_length=32", "learner.queue_segments=0", "rollout.send_segments=8")
    assert send_buffer(cfg).max_segments == 8  # queue: 2048 / 32 = 64 segments
    cfg = small_config("ppo.batch_size=64", "ppo.minibatch_size=32", "rollout.segment_length=32", "learner.queue_segments=0", "rollout.send_segments=8")
    assert send_buffer(cfg).max_segments == 1  # queue: 2 segments, so every tick's are sent
    cfg = small_config("learner.queue_segments=10", "rollout.send_segments=8")
    assert send_buffer(cfg).max_segments == 5


def _service(redis_server, run_id: str, *overrides: str) -> LearnerService:
    cfg = small_config("ppo.batch_size=64", "ppo.minibatch_size=32", "rollout.segment_length=32", *overrides)
    service = LearnerService(cfg.to_dict(), redis_server.url, run_id)  # the Ray actor's class, in-process
    service.publish()
    return service


def _submit(service: LearnerService, version: int, n_segments: int, seed: int = 0, **kw) -> bool:
    segs = [make_segment(version=version, seed=seed + i, **kw) for i in range(n_segments)]
    return service.submit(encode_segments(segs), timeout_s=0.0, source="a0-x", produced=n_segments, count=n_segments)


def test_default_queue_holds_one_batch_so_actors_cannot_run_ahead(redis_server, redis_client):
    service = _service(redis_server, "queue-bound", "learner.queue_segments=0")  # 0: one batch = 64 / 32 = 2 segments
    assert service.inbox.max_segments == 2
    assert _submit(service, 0, 2)
    assert not _submit(service, 0, 1)  # full: refused, the actor retries later (backpressure)
    assert service.rejected_full == 1


def test_drain_takes_one_batch_and_leaves_the_rest_queued(redis_server, redis_client):
    service = _service(redis_server, "drain", "learner.queue_segments=8")
    for k in range(4):
        assert _submit(service, 0, 2, seed=10 * k)  # four batches' worth, one payload each
    m = service.train(0.0)
    assert m.status.learner_version == 1 and m.updates[0].scalars["system/batch_samples"] == 64
    assert service.inbox.qsize() == 6  # the other three batches still wait in the bounded queue
    assert service.learner.pending_samples == 0


def _wait_for(condition, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_training_thread_updates_without_the_driver_and_reports_every_update(redis_server, redis_client):
    service = _service(redis_server, "thread", "learner.queue_segments=64")
    service.start_training(wait_s=0.05)
    for k in range(5):
        assert _submit(service, version=k, n_segments=2, seed=10 * k)
        _wait_for(lambda: service.learner.version == k + 1)  # trained with no call from a driver
    # An update's report is queued just after the version moves: poll until all five are in.
    updates: list = []
    deadline = time.monotonic() + 20.0
    while len(updates) < 5 and time.monotonic() < deadline:
        report = service.progress()
        updates += report.updates
        time.sleep(0.01)
    versions = [u.version for u in updates]
    assert versions == [1, 2, 3, 4, 5]
    assert all(np.isfinite(u.scalars["losses/total"]) and u.update_s > 0 for u in updates)
    assert report.status.learner_version == 5 and 0.0 < report.status.learner_busy <= 1.0
    assert service.progress().updates == ()  # each update is reported once
    assert service.params.latest_version() == 5  # every version was published
    assert service.stop_training() == 5
    assert not service._thread.is_alive()
    assert _submit(service, version=5, n_segments=2, seed=99)
    time.sleep(0.2)
    assert service.learner.version == 5  # stopped: no more updates


def test_an_error_in_the_training_thread_reaches_the_driver(redis_server, redis_client):
    service = _service(redis_server, "nan-thread", "learner.queue_segments=64")
    service.start_training(wait_s=0.05)
    for k in range(Learner.MAX_CONSECUTIVE_NONFINITE):
        seg = make_segment(version=0, seed=k)
        seg.rewards[:] = 1e38  # finite, but its losses overflow (NaN rewards are refused at decode)
        service.submit(encode_segments([seg, make_segment(version=0, seed=50 + k)]), timeout_s=1.0, source="a0-x", produced=2, count=2)
    _wait_for(lambda: service._error is not None)
    # The iterations before the error are reported first (the driver logs their skipped
    # minibatches), then the error itself.
    before = service.progress().updates
    assert len(before) == Learner.MAX_CONSECUTIVE_NONFINITE - 1
    assert all(u.nonfinite_skipped > 0 and u.scalars["losses/grad_steps"] == 0 for u in before)
    with pytest.raises(NonFiniteLossError, match="consecutive learner iterations"):
        service.progress()
    with pytest.raises(NonFiniteLossError):
        service.stop_training()
    version, tensors = service.params.fetch()
    assert version == Learner.MAX_CONSECUTIVE_NONFINITE - 1  # the iterations before the last were skipped ones
    assert all(np.isfinite(t).all() for t in tensors.values())  # no broken weights were published
