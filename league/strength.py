"""Strength over time: the latest policy's score against each reference (OpenAI Five's
TrueSkill-over-time plot, in plain scores with a 95% interval).

The league manager feeds every applied game to a StrengthTracker; at the end of each of its steps the
latest policy's rating games (kind "eval") against each reference since the last step become one
point per reference, [wins, draws, losses] at the newest learner version that played them, which the
store appends to that reference's bounded history. One evaluator round reports all its games at once,
so a point is usually one round. The cost is O(1) per game and O(references) per step, whatever the
size of the league.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from league.league import REFERENCE, LeagueState
from league.records import GameResult


def score_interval(wins: float, draws: float, losses: float, z: float = 1.96) -> tuple[float, float, float]:
    """(score, low, high): the score (W + D/2) / N and its Wilson interval (z = 1.96: 95%), as
    `selfplay evaluate` reports it. No games: (0.5, 0, 1), nothing known."""
    n = wins + draws + losses
    if n <= 0:
        return 0.5, 0.0, 1.0
    p = (wins + 0.5 * draws) / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return p, max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class StrengthPoint:
    version: int  # the newest learner version among the games
    wins: int = 0
    draws: int = 0
    losses: int = 0


class StrengthTracker:
    """The latest policy's rating games per reference since the last take()."""

    def __init__(self) -> None:
        self._pending: dict[str, StrengthPoint] = {}

    def add(self, g: GameResult, state: LeagueState) -> None:
        """Count `g` if it is a rating game of latest against a reference of `state`."""
        if g.kind != "eval" or state.learner_id not in g.players:
            return
        seat = g.players.index(state.learner_id)
        other = state.players.get(g.players[1 - seat])
        if other is None or other.kind != REFERENCE:
            return
        point = self._pending.setdefault(other.id, StrengthPoint(g.versions[seat]))
        point.version = max(point.version, g.versions[seat])
        score = g.scores[seat]
        point.wins += score == 1.0
        point.draws += score == 0.5
        point.losses += score == 0.0

    def take(self) -> dict[str, StrengthPoint]:
        """The points gathered since the last call, by reference id; starts afresh."""
        out, self._pending = self._pending, {}
        return out
