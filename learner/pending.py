"""The learner's pending segments: what has arrived and is not yet trained on, in arrival order,
less the segments that went stale as the learner's version moved on. Plain Python.

A segment is stale once its oldest sample was acted by a policy too many versions old
(ppo.max_policy_lag). Whole segments go (GAE needs them whole). Finding them must not cost a scan
of everything pending on every add(): a min-heap of (policy version, arrival number) yields the
stale ones in O(log n) each, and O(1) when none is; a segment dropped from the heap leaves its
arrival number behind in the arrival queue, where take() skips it.
"""

from __future__ import annotations

import heapq
from collections import deque

from learner.segment import Segment


class PendingSegments:
    def __init__(self) -> None:
        self._by_arrival: dict[int, Segment] = {}
        self._arrivals: deque[int] = deque()
        self._by_version: list[tuple[int, int]] = []
        self._arrived = 0
        self._samples = 0

    @property
    def samples(self) -> int:
        """Samples pending (stale ones already dropped)."""
        return self._samples

    def __len__(self) -> int:
        return len(self._by_arrival)

    def segments(self) -> list[Segment]:
        """What is pending, oldest arrival first."""
        return [self._by_arrival[a] for a in self._arrivals if a in self._by_arrival]

    def add(self, segment: Segment) -> None:
        self._by_arrival[self._arrived] = segment
        self._arrivals.append(self._arrived)
        heapq.heappush(self._by_version, (segment.policy_version, self._arrived))
        self._arrived += 1
        self._samples += len(segment)

    def drop_older_than(self, oldest_allowed: int) -> int:
        """Drop every segment whose oldest sample's policy version is below oldest_allowed; the
        samples dropped."""
        heap, dropped = self._by_version, 0
        while heap and heap[0][0] < oldest_allowed:
            _, arrival = heapq.heappop(heap)
            s = self._by_arrival.pop(arrival, None)
            if s is not None:  # None: take() took it already
                dropped += len(s)
        self._samples -= dropped
        while self._arrivals and self._arrivals[0] not in self._by_arrival:
            self._arrivals.popleft()  # dropped ones at the front: keeps the queue as short as the data
        if not self._by_arrival:
            heap.clear()  # what is left only names segments take() took
        return dropped

    def take(self, samples: int) -> list[Segment]:
        """The oldest arrivals, whole segments, until they hold at least `samples` (or all there is)."""
        batch, n = [], 0
        while self._arrivals and n < samples:
            s = self._by_arrival.pop(self._arrivals.popleft(), None)
            if s is None:
                continue  # dropped as stale after it arrived
            batch.append(s)
            n += len(s)
        self._samples -= n
        return batch

    def clear(self) -> None:
        self._by_arrival.clear()
        self._arrivals.clear()
        self._by_version.clear()
        self._samples = 0
