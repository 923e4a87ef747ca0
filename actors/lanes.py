"""A learning seat's stream of decisions, cut into fixed-length trajectory segments (actors/rollout.py's Lanes)."""

from __future__ import annotations

import numpy as np

from learner.segment import Segment


class Lane:
    """One learning seat's (agent's) stream of decisions in one game slot, cut into fixed-length segments.

    A decision's reward is only known at that seat's *next* decision (or the game's end), so the
    newest decision waits in `pending` collecting rewards. When the buffer reaches T finished
    decisions, the segment is cut; the bootstrap value is V(next decision), which is exactly the
    value computed for the decision that finalised the buffer. A recurrent policy's state before a
    segment's first decision (`start_state`) goes out with the cut: [rows, bootstrap, start_state].
    """

    def __init__(self, length: int) -> None:
        self.length = length
        self.rows: list[tuple] = []
        self.pending: list | None = None  # [obs, mask, action, logp, value, version, reward]
        self.start_state = None

    def decide(self, obs, mask, action, logp, value, version, state=None) -> list | None:
        done_rows = self._finish(done=False)
        self.pending = [obs, mask, action, float(logp), float(value), int(version), 0.0]
        cut = done_rows if done_rows is None else self._cut(bootstrap=float(value))
        if not self.rows:  # this decision opens the next segment
            self.start_state = state
        return cut

    def reward(self, r: float) -> None:
        if self.pending is not None:
            self.pending[6] += r

    def end_game(self) -> list | None:
        done_rows = self._finish(done=True)
        return None if done_rows is None else self._cut(bootstrap=0.0)

    def flush(self) -> list | None:
        """Cut a short segment now (the seat will not learn in the next game); it ends in a done,
        so it needs no bootstrap. Without this, its samples would wait and go stale."""
        if self.pending is not None or not self.rows:
            return None
        rows, self.rows = self.rows, []
        return [rows, 0.0, self.start_state]

    def _finish(self, done: bool) -> list | None:
        if self.pending is None:
            return None
        self.rows.append((*self.pending, done))
        self.pending = None
        return self.rows

    def _cut(self, bootstrap: float) -> list | None:
        if len(self.rows) < self.length:
            return None
        rows, self.rows = self.rows, []
        return [rows, bootstrap, self.start_state]


def rows_to_segment(rows: list[tuple], bootstrap: float, actor_id: int, segment_id: int, initial_state=None) -> Segment:
    obs, mask, act, logp, val, ver, rew, done = zip(*rows)
    return Segment(
        actor_id=actor_id,
        segment_id=segment_id,
        obs=np.stack(obs).astype(np.float32),
        masks=np.stack(mask).astype(bool),
        actions=np.asarray(act, np.float32 if np.ndim(act[0]) else np.int64),  # Box games: vectors
        logp=np.asarray(logp, np.float32),
        values=np.asarray(val, np.float32),
        rewards=np.asarray(rew, np.float32),
        dones=np.asarray(done, bool),
        versions=np.asarray(ver, np.int64),
        bootstrap_value=bootstrap,
        initial_state=initial_state,
    )
