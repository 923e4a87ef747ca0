"""The league's records: player ids and the game result every finished game reports. Ids are opaque strings."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

LEARNER_ID = "latest"
"""Player id of the policy being trained. Snapshots get their own ids; nobody parses ids."""
RANDOM_ID = "random"
"""Player id of the uniformly random reference, pinned at Elo 0."""


@dataclass(frozen=True)
class GameResult:
    """One finished game, reported once to the league.

    players/versions/scores are per seat, two or more. With two seats a score is 1 = win, 0.5 =
    draw, 0 = loss. With N seats (free-for-all, or teams: a seat here is a side, one league player)
    the scores are placements: each seat's share of the other seats it finished ahead of, ties
    counting half (the winner 1, the last 0; they sum to N/2); `pairs()` decomposes them into the
    head-to-head results the ratings and the payoff table use. kind "eval" games
    (evaluators, the end-of-run match) are rating games; "train" games feed ratings only when
    league.rate_training_games is set.
    `opponent_prob` is the probability with which the past opponent was sampled (for OpenAI Five's
    quality update); 1.0 when the opponent was the latest policy or the game is not a training game.
    """

    game_id: str
    players: tuple[str, ...]
    versions: tuple[int, ...]
    scores: tuple[float, ...]
    length: int
    kind: str  # "train" or "eval"
    opponent_prob: float
    finished_at: float

    FIELDS = ("game_id", "players", "versions", "scores", "length", "kind", "opponent_prob", "finished_at")

    def __post_init__(self) -> None:
        n = len(self.players)
        if n < 2 or len(self.versions) != n or len(self.scores) != n:
            raise ValueError("a game result needs two or more seats, each with a player, a version and a score")
        if n == 2:
            if any(s not in (0.0, 0.5, 1.0) for s in self.scores) or abs(sum(self.scores) - 1.0) > 1e-9:
                raise ValueError(f"scores {self.scores} must be win/draw/loss summing to 1")
        elif any(not 0.0 <= s <= 1.0 for s in self.scores) or abs(sum(self.scores) - n / 2) > 1e-9:
            raise ValueError(f"scores {self.scores} must be placements in [0, 1] summing to {n / 2} (N/2)")
        if self.kind not in ("train", "eval"):
            raise ValueError(f"game kind {self.kind!r} must be 'train' or 'eval'")
        # The quality update divides by opponent_prob (league/sampling.py): a probability outside
        # (0, 1] or NaN would raise in the league manager, or move quality scores by inf.
        if not 0.0 < self.opponent_prob <= 1.0:
            raise ValueError(f"opponent_prob {self.opponent_prob!r} must be a probability in (0, 1]")
        if self.length < 0 or not math.isfinite(self.finished_at):
            raise ValueError(f"length {self.length!r} must be >= 0 and finished_at {self.finished_at!r} finite")
        if any(v < -1 for v in self.versions):
            raise ValueError(f"versions {self.versions} must be learner versions >= 0, or -1 for references")

    def pairs(self) -> list[tuple[int, int, float]]:
        """The ranking as head-to-head results: (seat i, seat j, i's score against j) for i < j.
        Placements order the seats, so seat i beat seat j exactly when its score is higher."""
        sc = self.scores
        if len(sc) == 2:
            return [(0, 1, sc[0])]
        n = len(sc)
        return [(i, j, 1.0 if sc[i] > sc[j] else 0.5 if sc[i] == sc[j] else 0.0) for i in range(n) for j in range(i + 1, n)]

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("players", "versions", "scores"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "GameResult":
        return cls(
            game_id=str(d["game_id"]),
            players=tuple(str(x) for x in d["players"]),
            versions=tuple(int(x) for x in d["versions"]),
            scores=tuple(float(x) for x in d["scores"]),
            length=int(d["length"]),
            kind=str(d["kind"]),
            opponent_prob=float(d["opponent_prob"]),
            finished_at=float(d["finished_at"]),
        )
