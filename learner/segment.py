"""The learner's input record: a trajectory segment, stamped with the versions that produced it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Segment:
    """A fixed-length run of one learning agent's consecutive decisions in one game slot.

    Segments are cut every `segment_length` decisions, mid-game, and may span game boundaries
    (dones[t] marks the last decision of a game). rewards[t] is everything the agent received from
    its decision t until its next decision or the game's end (turn-based attribution).
    versions[t] is the learner version whose weights chose actions[t].
    initial_state is a recurrent policy's state (h, c) before decision 0, float32 [2, lstm_size]:
    the learner unrolls the segment from it (learner/recurrent.py). None for feed-forward policies.
    Box games' segments hold float32 action vectors (the Gaussian's unclipped samples, which logp
    scores) and an empty mask [T, 0]: a continuous action has no legal-action mask.
    """

    actor_id: int
    segment_id: int
    obs: np.ndarray  # [T, obs_dim] float32
    masks: np.ndarray  # [T, num_actions] bool; [T, 0] in Box games
    actions: np.ndarray  # [T] int64; [T, action_dim] float32 in Box games
    logp: np.ndarray  # [T] float32, log-prob under the masked behaviour distribution
    values: np.ndarray  # [T] float32
    rewards: np.ndarray  # [T] float32
    dones: np.ndarray  # [T] bool
    versions: np.ndarray  # [T] int64
    bootstrap_value: float  # V(next decision) when the last step is not terminal, else 0
    initial_state: np.ndarray | None = None  # [2, lstm_size] float32, recurrent policies only

    def __post_init__(self) -> None:
        t = len(self.actions)
        continuous = getattr(self.actions, "dtype", None) == np.float32
        expect = {
            "obs": (np.float32, 2),
            "masks": (np.bool_, 2),
            "actions": (np.float32, 2) if continuous else (np.int64, 1),
            "logp": (np.float32, 1),
            "values": (np.float32, 1),
            "rewards": (np.float32, 1),
            "dones": (np.bool_, 1),
            "versions": (np.int64, 1),
        }
        for name, (dtype, ndim) in expect.items():
            a = getattr(self, name)
            if not isinstance(a, np.ndarray) or a.dtype != dtype or a.ndim != ndim or len(a) != t:
                got = f"{getattr(a, 'dtype', type(a).__name__)} {getattr(a, 'shape', '')}"
                raise ValueError(f"segment field {name}: expected {np.dtype(dtype).name} with {ndim} dims and length {t}, got {got}")
        if t == 0:
            raise ValueError("segment is empty")
        if continuous and (self.masks.shape[1] != 0 or self.actions.shape[1] == 0 or not np.isfinite(self.actions).all()):
            raise ValueError(
                f"segment of continuous actions {self.actions.shape}: needs an empty mask [T, 0] (got {self.masks.shape}) "
                "and finite actions of at least one component"
            )
        if not np.isfinite(self.bootstrap_value):
            raise ValueError("segment bootstrap_value is not finite")
        # What the learner trains on must be finite (a NaN spreads to every loss of the batch), and
        # a categorical action must index the mask: out of range it raises in the update (a
        # device-side assert on CUDA). A game that hands out NaN rewards fails here, at the actor.
        for name in ("obs", "logp", "values", "rewards"):
            if not np.isfinite(getattr(self, name)).all():
                raise ValueError(f"segment field {name} holds NaN or inf values")
        if not continuous and ((self.actions < 0).any() or (self.actions >= self.masks.shape[1]).any()):
            raise ValueError(
                f"segment actions {int(self.actions.min())}..{int(self.actions.max())} out of range for {self.masks.shape[1]} actions"
            )
        st = self.initial_state
        if st is not None:
            if not isinstance(st, np.ndarray) or st.dtype != np.float32 or st.ndim != 2 or st.shape[0] != 2:
                got = f"{getattr(st, 'dtype', type(st).__name__)} {getattr(st, 'shape', '')}"
                raise ValueError(f"segment field initial_state: expected float32 [2, lstm_size], got {got}")
            if not np.isfinite(st).all():
                raise ValueError("segment initial_state is not finite")

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def policy_version(self) -> int:
        """The oldest version that produced any of its samples (what staleness is measured on)."""
        return int(self.versions.min())
