"""Typed records that cross process boundaries. Ids are opaque strings; versions are stamped on all data."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

LEARNER_ID = "latest"
"""Player id of the policy being trained. Snapshots get their own ids; nobody parses ids."""
RANDOM_ID = "random"
"""Player id of the uniformly random reference, pinned at Elo 0."""


@dataclass(frozen=True, eq=False)
class Segment:
    """A fixed-length run of one learning agent's consecutive decisions in one game slot.

    Segments are cut every `segment_length` decisions, mid-game, and may span game boundaries
    (dones[t] marks the last decision of a game). rewards[t] is everything the agent received from
    its decision t until its next decision or the game's end (turn-based attribution).
    versions[t] is the learner version whose weights chose actions[t].
    """

    actor_id: int
    segment_id: int
    obs: np.ndarray  # [T, obs_dim] float32
    masks: np.ndarray  # [T, num_actions] bool
    actions: np.ndarray  # [T] int64
    logp: np.ndarray  # [T] float32, log-prob under the masked behaviour distribution
    values: np.ndarray  # [T] float32
    rewards: np.ndarray  # [T] float32
    dones: np.ndarray  # [T] bool
    versions: np.ndarray  # [T] int64
    bootstrap_value: float  # V(next decision) when the last step is not terminal, else 0

    def __post_init__(self) -> None:
        t = len(self.actions)
        expect = {
            "obs": (np.float32, 2),
            "masks": (np.bool_, 2),
            "actions": (np.int64, 1),
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
        if not np.isfinite(self.bootstrap_value):
            raise ValueError("segment bootstrap_value is not finite")

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def policy_version(self) -> int:
        """The oldest version that produced any of its samples (what staleness is measured on)."""
        return int(self.versions.min())


@dataclass(frozen=True)
class GameResult:
    """One finished game, reported once to the league.

    players/versions/scores are per seat. score 1 = win, 0.5 = draw, 0 = loss. kind "eval" games
    (evaluators, the end-of-run match) are rating games; "train" games feed ratings only when
    league.rate_training_games is set.
    `opponent_prob` is the probability with which the past opponent was sampled (for OpenAI Five's
    quality update); 1.0 when the opponent was the latest policy or the game is not a training game.
    """

    game_id: str
    players: tuple[str, str]
    versions: tuple[int, int]
    scores: tuple[float, float]
    length: int
    kind: str  # "train" or "eval"
    opponent_prob: float
    finished_at: float

    FIELDS = ("game_id", "players", "versions", "scores", "length", "kind", "opponent_prob", "finished_at")

    def __post_init__(self) -> None:
        if len(self.players) != 2 or len(self.versions) != 2 or len(self.scores) != 2:
            raise ValueError("a game result needs exactly two seats")
        if any(s not in (0.0, 0.5, 1.0) for s in self.scores) or abs(sum(self.scores) - 1.0) > 1e-9:
            raise ValueError(f"scores {self.scores} must be win/draw/loss summing to 1")
        if self.kind not in ("train", "eval"):
            raise ValueError(f"game kind {self.kind!r} must be 'train' or 'eval'")

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("players", "versions", "scores"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "GameResult":
        return cls(
            game_id=str(d["game_id"]),
            players=(str(d["players"][0]), str(d["players"][1])),
            versions=(int(d["versions"][0]), int(d["versions"][1])),
            scores=(float(d["scores"][0]), float(d["scores"][1])),
            length=int(d["length"]),
            kind=str(d["kind"]),
            opponent_prob=float(d["opponent_prob"]),
            finished_at=float(d["finished_at"]),
        )
