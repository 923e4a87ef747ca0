"""What the learner reports: one record per update, one for its running counters.

The driver reads these fields by name (the console line, the health document, the run's summary);
`scalars` keeps every number the update produced, under CleanRL's prefixes, for TensorBoard.
"""

from __future__ import annotations

import math

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class IterationReport:
    """One learner update (Learner.update()'s metrics, with the update's timing)."""

    version: int
    """The learner version this update produced."""
    policy_loss: float
    value_loss: float
    entropy: float
    staleness_min: float
    staleness_mean: float
    staleness_max: float
    """Policy lag of the batch: learner version minus the version that produced each sample."""
    nonfinite_skipped: int
    """Minibatches skipped because their loss was NaN/inf."""
    update_s: float = 0.0
    wait_for_data_s: float = 0.0
    scalars: Mapping[str, float] = field(default_factory=dict)
    """Every losses/* and system/* number of the update, timings included."""
    role: str = ""
    """Whose policy this update changed, in a game with roles (actors/roles.py); "" without roles."""

    @classmethod
    def from_metrics(
        cls, m: Mapping[str, float], update_s: float = 0.0, wait_for_data_s: float = 0.0, role: str = ""
    ) -> "IterationReport":
        """From Learner.update()'s metrics dict."""
        scalars = {**m, "system/update_s": update_s, "system/wait_for_data_s": wait_for_data_s}
        return cls(
            version=int(m["system/learner_version"]),
            # absent when every minibatch was skipped (NaN/inf losses)
            policy_loss=float(m.get("losses/policy", math.nan)),
            value_loss=float(m.get("losses/value", math.nan)),
            entropy=float(m.get("losses/entropy", math.nan)),
            staleness_min=float(m["system/staleness_min"]),
            staleness_mean=float(m["system/staleness_mean"]),
            staleness_max=float(m["system/staleness_max"]),
            nonfinite_skipped=int(m.get("losses/nonfinite_skipped", 0)),
            update_s=update_s,
            wait_for_data_s=wait_for_data_s,
            scalars=scalars,
            role=role,
        )


@dataclass(frozen=True)
class LearnerStatus:
    """The learner's counters at one moment, whether or not it has just updated."""

    learner_version: int
    samples_in: int
    samples_used: int
    dropped_stale: int
    corrupt_payloads: int = 0
    rejected_full: int = 0
    republished: int = 0
    queue: int = 0
    """Segments waiting in the learner's bounded queue."""
    sample_reuse: float = 0.0
    learner_busy: float = 0.0
    """Share of the learner's time spent updating rather than waiting for samples: near 1, the
    learner is the bottleneck; well below, the actors are."""
    role_versions: tuple[tuple[str, int], ...] = ()
    """(role, its learner's version) per role, in a game with roles; empty without roles."""

    def versions(self) -> dict[str, int]:
        """Each learner's version by name: {"": learner_version} for a run of one learner."""
        return dict(self.role_versions) if self.role_versions else {"": self.learner_version}

    def scalars(self) -> dict[str, float]:
        """The counters by name (cluster/ui/metrics.py files them under system/)."""
        out = {k: float(v) for k, v in self.__dict__.items() if k != "role_versions"}
        out.update((f"learner_version/{role}", float(v)) for role, v in self.role_versions)
        return out


@dataclass(frozen=True)
class LearnerProgress:
    """The updates since the last report (oldest first) and the counters now."""

    updates: tuple[IterationReport, ...]
    status: LearnerStatus
