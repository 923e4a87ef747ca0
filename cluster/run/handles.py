"""What the driver's loop (cluster/run/driver.py) talks to: one protocol per part of a run, each with
an in-process implementation (cluster/run/inline.py) and a Ray one (cluster/remote/handles.py,
fleet.py, evaluator_service.py)."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from learner.report import LearnerProgress


class LearnerHandle(Protocol):
    """The run's learners (one service for all of them: cluster/remote/learner_service.py)."""

    def progress(self) -> LearnerProgress: ...
    def checkpoint(self, progress: dict, leagues: dict | None = None) -> tuple[int, bytes]: ...
    def stop(self) -> int: ...
    def versions(self) -> dict[str, int]: ...
    def weights(self, name: str = "") -> tuple[int, dict[str, np.ndarray]]: ...
    def reset_learner(self, name: str, source: str = "") -> int:
        """An exploiter's reset: `name` restarts from `source`'s weights as its next version, published."""


class RolloutsHandle(Protocol):
    restarts: int
    lost_segments: int

    def check(self) -> None:
        """Raise FleetError for an actor gone for good."""

    def poll(self) -> tuple[int, int]:
        """(env steps, games) of this session so far."""

    def league_changed(self) -> None: ...
    def learner_replaced(self) -> None:
        """A new learner took over from a dead one (actors find it under the same name)."""

    def stop(self) -> int:
        """Returns how many actors did not stop in time."""


class LeaseHandle(Protocol):
    def renew(self) -> None:
        """Raise (cluster/stores/lease.py's LeaseLost) when this driver no longer holds the run."""


class EvaluatorsHandle(Protocol):
    def check(self) -> None: ...
    def games(self) -> int: ...
    def league_changed(self) -> None: ...
    def stop(self) -> None: ...
