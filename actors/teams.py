"""Sides and team rewards: which agents of a game one league player controls, and what they learn from.

A *side* is one league player: it plays all of its agents with one policy (shared weights, one
batched forward pass per policy per tick, since the rollout loop batches by player). Free-for-all
games have one agent per side; team games group agents by name prefix (`adversary_0`, `adversary_1`
against `agent_0`) or by an explicit mapping in the config (`game.sides`).

Team rewards follow OpenAI Five (Berner et al. 2019, appendix "Reward"):
- team spirit tau blends each agent's own reward with its team's mean,
  r_i' = (1 - tau) * r_i + tau * mean_{j in team(i)} r_j, so tau = 1 makes teammates share
  credit fully and tau = 0 leaves every agent selfish;
- zero-sum: each agent's reward has the enemy teams' mean reward subtracted, so that a gain for
  everyone (a shared bonus, a slow clock) teaches nothing and only beating the enemy pays. With N
  sides the enemy mean is the mean over the other sides of each side's mean.
Both are linear, so shaping every step's rewards equals shaping the episode's sums.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

_INDEX_SUFFIX = re.compile(r"_\d+$")


class SideError(ValueError):
    """The side mapping does not fit the game's agents; the message says how to fix it."""


def agent_prefix(agent: str) -> str:
    """`adversary_2` -> `adversary`; a name without a numeric suffix is its own prefix."""
    return _INDEX_SUFFIX.sub("", agent)


def map_sides(agents: tuple[str, ...], explicit: dict | None = None) -> tuple[tuple[str, ...], tuple[tuple[int, ...], ...]]:
    """(side names, the seats (indices into `agents`) of each side).

    `explicit`: {side name: [agent, ...]} covering every agent exactly once. Without it, agents are
    grouped by name prefix when that gives two or more groups (teams: adversary_* / agent_*);
    otherwise (player_0 ... player_3: one prefix) every agent is its own side (free-for-all).
    """
    seat_of = {a: i for i, a in enumerate(agents)}
    if explicit:
        names, sides, seen = [], [], set()
        for name, members in explicit.items():
            members = [members] if isinstance(members, str) else list(members)
            unknown = [m for m in members if m not in seat_of]
            if unknown or not members:
                raise SideError(f"game.sides[{name!r}] names {unknown or 'no agents'}; the game's agents are {list(agents)}")
            twice = seen.intersection(members)
            if twice:
                raise SideError(f"agents {sorted(twice)} are in more than one side of game.sides")
            seen.update(members)
            names.append(str(name))
            sides.append(tuple(sorted(seat_of[m] for m in members)))
        missing = [a for a in agents if a not in seen]
        if missing:
            raise SideError(f"game.sides leaves agents {missing} without a side; every agent needs one")
    else:
        groups: dict[str, list[int]] = {}
        for i, a in enumerate(agents):
            groups.setdefault(agent_prefix(a), []).append(i)
        if len(groups) >= 2:
            names, sides = list(groups), [tuple(s) for s in groups.values()]
        else:
            names, sides = list(agents), [(i,) for i in range(len(agents))]
    if len(sides) < 2:
        raise SideError(f"the game's agents {list(agents)} form {len(sides)} side; self-play needs two or more")
    return tuple(names), tuple(sides)


def side_of_seats(sides: tuple[tuple[int, ...], ...]) -> tuple[int, ...]:
    """Per seat, the index of its side."""
    out = [0] * sum(len(s) for s in sides)
    for k, seats in enumerate(sides):
        for i in seats:
            out[i] = k
    return tuple(out)


def team_rewards(
    rewards: np.ndarray,
    side_of: np.ndarray,
    num_sides: int,
    team_spirit: float,
    zero_sum: bool,
    scale: float = 1.0,
    live: np.ndarray | None = None,
) -> np.ndarray:
    """Per-seat rewards shaped as OpenAI Five's (module docstring): team spirit, then zero-sum, then
    multiplied by `scale`. `live` (bool per seat; None: all) leaves the seats whose agent has left
    the game out of the team means, so its zeros do not dilute what its live teammates receive."""
    r = np.asarray(rewards, dtype=np.float64)
    if live is None:
        counts = np.bincount(side_of, minlength=num_sides)
        team_mean = np.bincount(side_of, r, minlength=num_sides) / np.maximum(counts, 1)
    else:
        w = np.asarray(live, dtype=np.float64)
        counts = np.bincount(side_of, w, minlength=num_sides)
        team_mean = np.bincount(side_of, r * w, minlength=num_sides) / np.maximum(counts, 1.0)
    out = (1.0 - team_spirit) * r + team_spirit * team_mean[side_of]
    if zero_sum and num_sides > 1:
        # Blending keeps each team's mean, so the enemy teams' mean is taken from team_mean.
        enemy_mean = (team_mean.sum() - team_mean) / (num_sides - 1)
        out = out - enemy_mean[side_of]
    return out * scale if scale != 1.0 else out


@dataclass(frozen=True)
class RewardShaper:
    """team_rewards bound to one game's sides; `shaper_for` returns None when shaping is the identity."""

    side_of: np.ndarray
    num_sides: int
    team_spirit: float
    zero_sum: bool
    scale: float = 1.0

    def __call__(self, rewards: list[float], live: np.ndarray | None = None) -> list[float]:
        r = np.asarray(rewards)
        return team_rewards(r, self.side_of, self.num_sides, self.team_spirit, self.zero_sum, self.scale, live).tolist()


def shaper_for(sides: tuple[tuple[int, ...], ...], team_spirit: float, zero_sum: bool, scale: float = 1.0) -> RewardShaper | None:
    """The shaper for a game's sides, or None when it would change nothing: no zero-sum, no scale and
    one agent per side (team spirit blends an agent only with itself), as in every two-player board game."""
    if not (0.0 <= team_spirit <= 1.0):
        raise SideError(f"game.team_spirit must lie in [0, 1]; got {team_spirit}")
    if not zero_sum and scale == 1.0 and all(len(s) == 1 for s in sides):
        return None
    return RewardShaper(np.asarray(side_of_seats(sides), dtype=np.int64), len(sides), float(team_spirit), bool(zero_sum), float(scale))


def placement_scores(side_returns: list[float]) -> tuple[float, ...]:
    """Each side's share of the other sides it finished ahead of (ties count half), from the sides'
    returns: a placement. With two sides this is win 1 / draw 0.5 / loss 0; with N, the winner
    scores 1, the last 0, and the ranking is read back by comparing scores (league pairwise_results)."""
    n = len(side_returns)
    out = []
    for i, ri in enumerate(side_returns):
        beaten = sum((ri > rj) + 0.5 * (ri == rj) for j, rj in enumerate(side_returns) if j != i)
        out.append(float(beaten) / (n - 1))
    return tuple(out)
