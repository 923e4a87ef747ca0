"""The rollout loop's collaborators and records (actors/rollout.py): the four small protocols it is
wired through, a role's own collaborators, a game slot's seating and the loop's counters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from actors.lanes import Lane
from actors.opponents import OpponentCache
from league.pool import LeagueView
from league.records import GameResult
from learner.model import InferencePolicy
from learner.segment import Segment


class ParamSource(Protocol):
    def poll(self, known_version: int) -> tuple[int, dict[str, np.ndarray]] | None: ...
    def fetch_snapshot(self, player_id: str) -> tuple[int, dict[str, np.ndarray]]: ...


class LeagueSource(Protocol):
    def state(self) -> LeagueView | None:
        """The league as last read (league/pool.py), or None before it exists."""


class SegmentSink(Protocol):
    def send(self, segments: list[Segment]) -> None: ...


class ResultSink(Protocol):
    def report(self, results: list[GameResult]) -> None: ...


@dataclass(frozen=True)
class RoleIO:
    """One role's own collaborators, in a game with roles (actors/roles.py): its weights, its
    league (whose players are that role's), and its learner's segment stream."""

    params: ParamSource
    league: LeagueSource
    sink: SegmentSink


@dataclass
class _Role:
    """What the worker holds for one role. A game without roles has one, named "", whose ids are
    the plain LEARNER_ID and snapshot ids: the path two-player games always took."""

    name: str
    latest_id: str
    io: RoleIO
    latest: InferencePolicy
    opponents: OpponentCache
    sides: tuple[int, ...]
    continuous: bool
    kind: str = "main"
    """actors/learners.py: main (the one learner, or a role's), main_exploiter or league_exploiter."""


@dataclass
class Seating:
    """Who plays each side of one game slot, and the bookkeeping of the current game.

    `players` is per side (a side plays all its seats with one policy, actors/teams.py); `lanes`
    per seat, since every agent of a learning side has its own stream of decisions."""

    players: list[str]
    opponent_prob: float
    episode: int = 0
    lanes: list[Lane] = field(default_factory=list)


@dataclass
class RolloutStats:
    env_steps: int = 0
    games: int = 0
    segments: int = 0
    samples: int = 0
    weight_updates: int = 0
    opponent_fallbacks: int = 0
    opponent_cache_hits: int = 0
    """Games against a past opponent whose policy the actor already held."""
    opponent_cache_misses: int = 0
    """Games against a past opponent whose weights had to be fetched from the store."""
    ticks: int = 0
