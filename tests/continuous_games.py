"""A small scripted game with a Box action space, for the continuous-action tests (a PettingZoo AECEnv).

Loaded by module path (`tests.continuous_games:target`), as a user's own game would be, so Ray's
rollout actors import it too.

Target: two agents, each moves once (east, then west). A move is a vector in the Box [-2, 2]^2 and
pays its mover -|a - target|^2, where east's target is (0.6, -0.4) and west's (-0.6, 0.4); the
observation is the mover's one-hot (east, west), so one policy must read it to aim at its own
target. The higher payoff wins. A unit Gaussian around 0 earns about -2.5 a move (uniform random
-3.2); aiming at the target earns 0, which no untrained policy comes near by chance. The bounds are
wide so that clipping seldom flattens the payoff (near a bound, a wide Gaussian's best mean lies
beyond it: clipped samples all pay the bound's payoff).
"""

from __future__ import annotations

import numpy as np
from gymnasium.spaces import Box, Discrete, MultiDiscrete
from pettingzoo import AECEnv

AGENTS = ("east", "west")
TARGETS = {"east": np.array([0.6, -0.4], np.float32), "west": np.array([-0.6, 0.4], np.float32)}


def payoff(agent: str, action: np.ndarray) -> float:
    return -float(np.sum((np.asarray(action, np.float64) - TARGETS[agent]) ** 2))


class Target(AECEnv):
    metadata = {"name": "target_v0"}

    def __init__(self, low: float = -2.0, high: float = 2.0) -> None:
        self.possible_agents = list(AGENTS)
        self.low, self.high = low, high
        self.received: list[np.ndarray] = []  # every action the game was given, for the tests

    def action_space(self, agent):
        return Box(self.low, self.high, (2,), np.float32)

    def observation_space(self, agent):
        return Box(0.0, 1.0, (2,), np.float32)

    def reset(self, seed=None, options=None):
        self.agents = list(self.possible_agents)
        self.turn = 0
        self.agent_selection = AGENTS[0]
        self.rewards = {a: 0.0 for a in self.agents}
        self._cumulative_rewards = {a: 0.0 for a in self.agents}
        self.terminations = {a: False for a in self.agents}
        self.truncations = {a: False for a in self.agents}
        self.infos = {a: {} for a in self.agents}

    def observe(self, agent):
        return np.array([agent == "east", agent == "west"], np.float32)

    def step(self, action):
        me = self.agent_selection
        if self.terminations[me]:
            self._was_dead_step(action)
            return
        action = np.asarray(action)
        assert self.action_space(me).contains(action), action  # the adapter clips to the Box
        self.received.append(action.copy())
        self.rewards = {a: 0.0 for a in self.agents}
        self.rewards[me] = payoff(me, action)
        self.turn += 1
        if self.turn == len(AGENTS):
            self.terminations = {a: True for a in self.agents}
        self.agent_selection = AGENTS[self.turn % len(AGENTS)]


def target(low: float = -2.0, high: float = 2.0) -> Target:
    return Target(low, high)


class _Uneven(Target):
    """Target with west's action space changed: `what` is discrete, shape or bounds (all refused)."""

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what

    def action_space(self, agent):
        if agent == "east":
            return super().action_space(agent)
        if self.what == "discrete":
            return Discrete(2)
        if self.what == "multidiscrete":
            return MultiDiscrete([2, 2])
        return Box(-2.0, 2.0, (3,), np.float32) if self.what == "shape" else Box(-3.0, 3.0, (2,), np.float32)


def uneven(what: str = "discrete") -> _Uneven:
    return _Uneven(what)
