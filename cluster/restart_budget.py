"""Restart budgets per time window: a run of weeks on preemptible nodes loses a learner or an actor
now and then, forever; a fault that repeats (a game that raises every time, a learner that dies at
once) uses a budget up quickly. So budgets count restarts within a sliding window (`max_restarts`
per `restart_window_s`, an hour by default), not over the whole run. Pure logic, tested with a fake
clock (tests/test_restart_budget.py); the driver (learner) and the fleet (rollout actors) apply it.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Callable


class RestartWindow:
    """At most `max_restarts` restarts within any `window_s` seconds."""

    def __init__(self, max_restarts: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_restarts, self.window_s, self.clock = max_restarts, window_s, clock
        self._times: deque[float] = deque()
        self.total = 0
        """Restarts over the whole run (for the summary)."""

    def recent(self) -> int:
        """Restarts within the last window_s."""
        now = self.clock()
        while self._times and self._times[0] <= now - self.window_s:
            self._times.popleft()
        return len(self._times)

    def allows(self) -> bool:
        """Whether one more restart fits the budget now."""
        return self.recent() < self.max_restarts

    def record(self) -> None:
        self.recent()
        self._times.append(self.clock())
        self.total += 1


def used_up_within_window(started_at: float, now: float, window_s: float) -> bool:
    """A Ray actor created at `started_at` has just died for good, its Ray restarts
    (rollout.max_restarts) used up: all of them fell within a window if it was created less than
    window_s ago, and the budget is spent. Otherwise they were spread wider than the budget's rate:
    the fleet starts a fresh actor in its place, with a fresh count."""
    return now - started_at < window_s
