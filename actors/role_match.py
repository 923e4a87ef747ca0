"""A match between roles (actors/roles.py): one agent per role, every side of a role played by it.

play_match (actors/evaluate.py) seats agent A on each side in turn, which only makes sense when
sides are alike; with roles a policy can only play its own role's sides. Scores are the game's raw
returns (no team shaping), so a figure like simple_tag's catches per episode reads straight off them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from actors.evaluate import Agent, MatchResult
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


def role_outcomes(result: RoleMatchResult, spec: GameSpec, role: str) -> MatchResult:
    """`role`'s wins, draws and losses in `result` (its sides' mean score per game above, at or below
    0.5): the score and 95% interval of play_match's MatchResult, for a role instead of a seat."""
    sides = next(r.sides for r in spec.roles if r.name == role)
    w = d = l = 0
    for game in result.results:
        s = sum(game.scores[k] for k in sides) / len(sides)
        w, d, l = w + (s > 0.5), d + (s == 0.5), l + (s < 0.5)
    return MatchResult(w, d, l)


def sample_role_positions(make_slot, spec: GameSpec, role: str, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(obs float32 [count, obs_dim], mask bool [count, A]) of `role`'s decisions in seeded games where
    every role plays its random reference: what sample_positions (actors/evaluate.py) is for one role."""
    from actors.scripted import references_for

    random_of = [references_for(spec.name, spec.role(r.name))["random"] for r in spec.roles]
    role_of_side = role_of_sides(spec.roles, spec.num_sides)
    mine = [r.name for r in spec.roles].index(role)
    rng = np.random.default_rng(seed)
    obs, masks = [], []
    slot: GameSlot = make_slot()
    game = 0
    while len(obs) < count:
        slot.reset(seed=seed * 100_003 + game)
        game += 1
        while not slot.over and len(obs) < count:
            r = role_of_side[slot.side]
            if r == mine:
                obs.append(slot.obs.copy())
                masks.append(slot.mask.copy())
            slot.step(random_of[r](slot.raw_obs, slot.mask, rng))
        if game > count and not obs:
            raise ValueError(f"{count} random games of {spec.name} gave role {role!r} no decision to make")
    return np.stack(obs).astype(np.float32), np.stack(masks)
