"""The learner's inbound queue of encoded segment batches, bounded twice: by the segments the actors
say a payload holds (learner.queue_segments) and by the bytes it measures (learner.queue_bytes),
so an actor that declares fewer segments than it sends cannot grow the learner's memory past the
byte bound. The learner then checks each declared count against the decoded payload
(LearnerService._drain: a disagreement is a corrupt payload, dropped and counted)."""

from __future__ import annotations

import math
import queue
import threading
import time
from collections import deque

MIN_QUEUE_BYTES = 64 * 1024 * 1024
"""Floor of the derived byte bound: small games' queues are bounded by segments, not bytes."""


def segment_bytes(obs_shape: tuple[int, ...], num_actions: int, segment_length: int, lstm_size: int = 0) -> int:
    """Bytes of one encoded segment, about: float32 observations, the bool mask, an int64 (or a
    float32 vector) action, float32 logp/value/reward, bool done, int64 version, per decision;
    plus a recurrent policy's initial state and the envelope."""
    per_step = 4 * math.prod(obs_shape) + num_actions + 8 + 4 * num_actions + 3 * 4 + 1 + 8
    return segment_length * per_step + 8 * lstm_size + 1024


def queue_bytes_bound(configured: int, max_segments: int, one_segment: int) -> int:
    """learner.queue_bytes if set, else twice the byte size of a full queue of segments (the slack
    covers payloads whose segments are longer than estimated), at least MIN_QUEUE_BYTES."""
    return configured or max(MIN_QUEUE_BYTES, 2 * max_segments * one_segment)


class SegmentQueue:
    """A FIFO of encoded segment batches bounded by the number of segments they hold (one batch
    of segments, or several, per payload), so `learner.queue_segments` means what it says however
    many segments an actor's tick produces, and by their bytes. A payload larger than a whole bound
    still enters an empty queue: nothing is refused forever (and the wire refuses payloads over
    learner/wire.py MAX_PAYLOAD_BYTES)."""

    def __init__(self, max_segments: int, max_bytes: int = 0) -> None:
        self.max_segments = max_segments
        self.max_bytes = max_bytes or MIN_QUEUE_BYTES
        self._items: deque[tuple[bytes, int]] = deque()
        self._segments = 0
        self._bytes = 0
        self._cond = threading.Condition()

    def _full_for(self, segments: int, size: int) -> bool:
        return bool(self._items) and (self._segments + segments > self.max_segments or self._bytes + size > self.max_bytes)

    def put(self, payload: bytes, segments: int, timeout: float) -> None:
        """Queue `payload`, declared to hold `segments`; raises queue.Full if there is no room
        within timeout seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._full_for(segments, len(payload)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise queue.Full
                self._cond.wait(remaining)
            self._items.append((payload, segments))
            self._segments += segments
            self._bytes += len(payload)
            self._cond.notify_all()

    def get(self, timeout: float) -> tuple[bytes, int]:
        """(payload, the segments it was declared to hold); raises queue.Empty if nothing arrives
        within timeout seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._items:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise queue.Empty
                self._cond.wait(remaining)
            payload, segments = self._items.popleft()
            self._segments -= segments
            self._bytes -= len(payload)
            self._cond.notify_all()
            return payload, segments

    def qsize(self) -> int:
        """Segments queued."""
        with self._cond:
            return self._segments

    def nbytes(self) -> int:
        """Bytes queued."""
        with self._cond:
            return self._bytes
