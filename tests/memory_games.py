"""A scripted two-player game that needs memory, for the recurrent-policy tests (a PettingZoo AECEnv).

Loaded by module path (`tests.memory_games:recall`), as a user's own game would be.

Recall: player_0 and player_1 move in turn, `steps` decisions each. At its first decision each
player is shown a cue, 0 or 1 (drawn from the reset seed, independently per player); at its later
decisions it sees only how far the game has gone. Its last decision is the answer: the cue gets it
+1, the other move -1; earlier moves do nothing. The player with more wins; equal is a draw.

Nothing a player sees at its answer tells it the cue, so a feed-forward policy answers right half
the time whatever it learns; a policy that remembers its first observation can always be right.
Observation: (cue is 0, cue is 1, first decision, answer decision, decisions made / steps): the
two cue entries are 0 after the first decision.
"""

from __future__ import annotations

import numpy as np
from gymnasium.spaces import Box, Discrete
from pettingzoo import AECEnv

AGENTS = ("player_0", "player_1")


class Recall(AECEnv):
    metadata = {"name": "recall_v0"}

    def __init__(self, steps: int = 4) -> None:
        if steps < 2:
            raise ValueError("recall needs at least 2 decisions per player (the cue, then the answer)")
        self.steps = steps
        self.possible_agents = list(AGENTS)
        self.cues = {a: 0 for a in AGENTS}

    def action_space(self, agent):
        return Discrete(2)

    def observation_space(self, agent):
        return Box(0.0, 1.0, (5,), np.float32)

    def reset(self, seed=None, options=None):
        rng = np.random.default_rng(seed)
        self.cues = {a: int(rng.integers(2)) for a in AGENTS}
        self.agents = list(self.possible_agents)
        self.turn = 0
        self.agent_selection = AGENTS[0]
        self.rewards = {a: 0.0 for a in self.agents}
        self._cumulative_rewards = {a: 0.0 for a in self.agents}
        self.terminations = {a: False for a in self.agents}
        self.truncations = {a: False for a in self.agents}
        self.infos = {a: {} for a in self.agents}

    def observe(self, agent):
        made = self.turn // 2  # decisions this agent has made (it moves at even or odd turns)
        first = made == 0
        cue = self.cues[agent]
        return np.array(
            [first and cue == 0, first and cue == 1, first, made == self.steps - 1, made / self.steps], np.float32
        )

    def step(self, action):
        me = self.agent_selection
        if self.terminations[me]:
            self._was_dead_step(action)
            return
        self.rewards = {a: 0.0 for a in self.agents}
        if self.turn // 2 == self.steps - 1:  # this agent's answer
            self.rewards[me] = 1.0 if int(action) == self.cues[me] else -1.0
        self.turn += 1
        if self.turn == 2 * self.steps:
            self.terminations = {a: True for a in self.agents}
        self.agent_selection = AGENTS[self.turn % 2]


def recall(steps: int = 4) -> Recall:
    return Recall(steps)
