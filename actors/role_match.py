"""A match between roles (actors/roles.py): one agent per role, every side of a role played by it.

play_match (actors/evaluate.py) seats agent A on each side in turn, which only makes sense when
sides are alike; with roles a policy can only play its own role's sides. Scores are the game's raw
returns (no team shaping), so a figure like simple_tag's catches per episode reads straight off them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from actors.evaluate import Agent
from actors.games import GameSlot, GameSpec
from actors.roles import role_of_sides
from league.records import GameResult


@dataclass(frozen=True)
class Seat:
    """Who plays a role in a match: its league id, its version (-1 for references) and its agent."""

    player_id: str
    version: int
    agent: Agent


@dataclass(frozen=True)
class RoleMatchResult:
    games: int
    mean_return: dict[str, float]
    """Per role: the mean over games of the mean return of its seats."""
    results: tuple[GameResult, ...]
    """The games as league results (one player per side), to report as rating games."""


def role_match(make_slot, spec: GameSpec, seats: dict[str, Seat], games: int, seed: int, game_id: str = "match") -> RoleMatchResult:
    """Play `games` games, each role's sides by seats[role]; seeds follow from `seed`."""
    if sorted(seats) != sorted(r.name for r in spec.roles):
        raise ValueError(f"a role match needs one seat per role {[r.name for r in spec.roles]}; got {sorted(seats)}")
    rng = np.random.default_rng(seed)
    role_of_side = role_of_sides(spec.roles, spec.num_sides)
    side_role = [spec.roles[r].name for r in role_of_side]
    totals = dict.fromkeys(seats, 0.0)
    results = []
    slot: GameSlot = make_slot()
    for g in range(games):
        slot.reset(seed=seed * 100_003 + g)
        for seat in seats.values():
            seat.agent.new_game(0)
        while not slot.over:
            agent = seats[side_role[slot.side]].agent
            slot.step(agent.act([slot], rng, keys=[0])[0])
        for role in spec.roles:
            ids = [i for k in role.sides for i in spec.sides[k]]
            totals[role.name] += sum(slot.returns[i] for i in ids) / len(ids)
        players = tuple(seats[r].player_id for r in side_role)
        versions = tuple(seats[r].version for r in side_role)
        results.append(GameResult(f"{game_id}-{g}", players, versions, slot.scores(), slot.length, "eval", 1.0, time.time()))
    return RoleMatchResult(games, {r: t / max(games, 1) for r, t in totals.items()}, tuple(results))
