"""Malformed trajectory segments reach the learner: each is dropped and counted (corrupt_payloads),
training goes on, and the inbound queue stays bounded in bytes whatever an actor declares. The
learner service runs in-process against a real redis-server."""

from __future__ import annotations

import queue

import numpy as np
import pytest

from cluster.remote.inbox import MIN_QUEUE_BYTES, SegmentQueue, queue_bytes_bound, segment_bytes
from cluster.remote.learner_service import LearnerService
from learner.segment import Segment
from learner.wire import PayloadError, decode_segments, encode_segments
from tests.fault_support import make_segment, small_config


def _poisoned(field: str, value) -> bytes:
    """A segment payload whose `field` holds `value` at one step: built after Segment's checks, as
    a hostile or broken actor can send it."""
    seg = make_segment(seed=3)
    getattr(seg, field)[5] = value
    return encode_segments([seg])


MALFORMED = {
    "action past the last": ("actions", 9),  # tic-tac-toe: actions 0..8
    "negative action": ("actions", -1),
    "NaN observation": ("obs", np.nan),
    "inf reward": ("rewards", np.inf),
    "NaN reward": ("rewards", np.nan),
    "NaN value": ("values", np.nan),
    "NaN logp": ("logp", np.nan),
}


@pytest.mark.parametrize("field,value", MALFORMED.values(), ids=list(MALFORMED))
def test_decode_refuses_out_of_range_actions_and_non_finite_numbers(field, value):
    with pytest.raises(PayloadError, match=rf"segments\[0\]: segment (field {field} holds NaN or inf|actions .* out of range for 9)"):
        decode_segments(_poisoned(field, value))


def test_an_actor_refuses_to_make_a_segment_of_nan_rewards():
    good = make_segment()
    with pytest.raises(ValueError, match="segment field rewards holds NaN or inf"):
        Segment(**{**good.__dict__, "rewards": np.full(len(good), np.nan, np.float32)})


def test_malformed_segments_are_dropped_and_counted_and_training_goes_on(redis_server, redis_client):
    """Before: the out-of-range action raised in the update (the training thread died; on CUDA a
    device-side assert), and NaN rewards or observations went into the losses."""
    cfg = small_config("ppo.batch_size=32", "ppo.minibatch_size=16", "learner.queue_segments=64")
    learner = LearnerService(cfg.to_dict(), redis_server.url, "malformed-segments")  # the Ray actor's class, in-process
    for field, value in MALFORMED.values():
        assert learner.submit(_poisoned(field, value), source="a0-x", count=1)
    assert learner.submit(encode_segments([make_segment()]), source="a0-x", count=1)
    m = learner.train(0.0)
    assert m.status.corrupt_payloads == len(MALFORMED)
    assert m.status.learner_version == 1 and len(m.updates) == 1  # the good segment was trained on
    assert all(np.isfinite(v) for v in m.updates[0].scalars.values())


def test_the_queue_is_bounded_in_bytes_whatever_an_actor_declares(redis_server, redis_client):
    """Before: the queue counted only the segments an actor declared, so a payload of 40 segments
    declared as one let an actor queue 40x the bound."""
    one = len(encode_segments([make_segment()]))
    cfg = small_config("ppo.batch_size=32", "ppo.minibatch_size=16", "learner.queue_segments=4", f"learner.queue_bytes={4 * one}")
    learner = LearnerService(cfg.to_dict(), redis_server.url, "bytes-bound")
    big = encode_segments([make_segment(seed=k) for k in range(40)])
    assert learner.submit(big, source="a0-x", count=1, timeout_s=0.0)  # an empty queue takes any payload
    assert not learner.submit(encode_segments([make_segment()]), source="a0-x", count=1, timeout_s=0.0)
    assert learner.inbox.qsize() == 1 and learner.inbox.nbytes() == len(big)
    m = learner.train(0.0)
    assert m.status.rejected_full == 1 and m.status.corrupt_payloads == 1  # 1 declared, 40 held: dropped
    assert m.status.learner_version == 0


def test_segment_queue_waits_on_bytes_as_on_segments():
    q = SegmentQueue(max_segments=100, max_bytes=10)
    q.put(b"x" * 8, 1, timeout=0.0)
    with pytest.raises(queue.Full):
        q.put(b"y" * 8, 1, timeout=0.01)
    assert q.get(timeout=0.0) == (b"x" * 8, 1) and q.nbytes() == 0
    q.put(b"y" * 8, 1, timeout=0.0)


def test_the_byte_bound_is_configured_or_derived_from_the_segment_bound():
    one = segment_bytes((84, 84, 4), 6, 128)  # an Atari-sized segment: about 14 MB
    assert 14e6 < one < 15e6
    assert queue_bytes_bound(0, 32, one) == 64 * one  # twice a full queue of them
    assert queue_bytes_bound(0, 8, segment_bytes((18,), 9, 32)) == MIN_QUEUE_BYTES  # small games: the floor
    assert queue_bytes_bound(1000, 8, one) == 1000


def test_the_chaos_benchmarks_poison_is_refused_by_the_boundary_checks():
    """benchmarks/chaos.py --kinds poison injects these into a live run: each must fail decoding."""
    from actors.games import load_game
    from benchmarks.chaos_poison import bad_game_payloads, bad_segment_payloads
    from cluster.stores.payloads import decode_game

    games = bad_game_payloads(7)
    assert len(games) == 2
    for raw in games:
        with pytest.raises(PayloadError):
            decode_game(raw)
    _, spec = load_game("tictactoe_v3")
    segments = bad_segment_payloads(spec, 16)
    assert len(segments) == 2
    for raw in segments:
        with pytest.raises(PayloadError):
            decode_segments(raw)
