"""A small turn-based (AEC) game with two roles, for the tests of human play and replays with roles
(tests/test_role_cli.py). Loaded by module path, `tests.role_games:hide`, as a user's own game is.

Hide and seek, `rounds` rounds: each round the mouse hides in hole 0 or 1 (2 actions), then the cat
looks in hole 0, 1 or 2 (3 actions; there is no hole 2, so that move always misses). The cat sees
(round / rounds, 1) and never where the mouse hid; the mouse sees (round / rounds, 0, 0). A find pays
the cat 1 and the mouse -1, a miss the reverse. The two observe and act differently: two roles
(actors/roles.py), `mouse` and `cat`. It draws itself as text (render_mode "ansi").
"""

from __future__ import annotations

import numpy as np
from gymnasium.spaces import Box, Discrete
from pettingzoo import AECEnv

AGENTS = ("mouse_0", "cat_0")


class Hide(AECEnv):
    metadata = {"name": "hide_v0", "render_modes": ["ansi"]}

    def __init__(self, rounds: int = 2, render_mode: str | None = None) -> None:
        self.rounds, self.render_mode = rounds, render_mode
        self.possible_agents = list(AGENTS)

    def action_space(self, agent):
        return Discrete(2) if agent.startswith("mouse") else Discrete(3)

    def observation_space(self, agent):
        return Box(0.0, 1.0, (3,) if agent.startswith("mouse") else (2,), np.float32)

    def reset(self, seed=None, options=None):
        self.agents = list(self.possible_agents)
        self.round, self.hole, self.log = 0, -1, []
        self.agent_selection = AGENTS[0]
        self.rewards = {a: 0.0 for a in self.agents}
        self._cumulative_rewards = {a: 0.0 for a in self.agents}
        self.terminations = {a: False for a in self.agents}
        self.truncations = {a: False for a in self.agents}
        self.infos = {a: {} for a in self.agents}

    def observe(self, agent):
        t = self.round / self.rounds
        return np.array([t, 0, 0] if agent.startswith("mouse") else [t, 1], np.float32)

    def render(self):
        return "\n".join([f"round {min(self.round + 1, self.rounds)} of {self.rounds}", *self.log])

    def step(self, action):
        me = self.agent_selection
        if self.terminations[me]:
            self._was_dead_step(action)
            return
        self.rewards = {a: 0.0 for a in self.agents}
        if me.startswith("mouse"):
            self.hole = int(action)
            self.agent_selection = AGENTS[1]
            return
        found = int(action) == self.hole
        self.rewards = {"cat_0": 1.0 if found else -1.0, "mouse_0": -1.0 if found else 1.0}
        self.log.append(f"round {self.round + 1}: the cat looked in hole {int(action)}: {'found' if found else 'missed'}")
        self.round += 1
        if self.round == self.rounds:
            self.terminations = {a: True for a in self.agents}
        self.agent_selection = AGENTS[0]


def hide(rounds: int = 2, render_mode: str | None = None) -> Hide:
    return Hide(rounds, render_mode)
