"""The league's records: player ids and the game result every finished game reports. Ids are opaque strings."""

from __future__ import annotations

from dataclasses import asdict, dataclass

LEARNER_ID = "latest"
"""Player id of the policy being trained. Snapshots get their own ids; nobody parses ids."""
RANDOM_ID = "random"
"""Player id of the uniformly random reference, pinned at Elo 0."""


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
