"""Small scripted games for the teams and parallel-stepping tests, in pure Python (PettingZoo envs).

Loaded by module path (`tests.team_games:relay`, `tests.team_games:countdown`), as a user's own game would be, so Ray's rollout
actors import it too.

Relay: two teams of two (red_0, red_1 against blue_0, blue_1) move in turn, red_0, blue_0, red_1,
blue_1, for `rounds` rounds. A move is a number 0, 1 or 2, and the mover alone is paid that much
(its individual reward); so each side should learn to play 2. The team whose agents collected more
on average wins. The observation is (round / rounds, the mover's index in its team, its team). That
rewards go to one agent only is what makes team spirit and zero-sum visible in the tests.
"""

from __future__ import annotations

import numpy as np
from gymnasium.spaces import Box, Discrete
from pettingzoo import AECEnv, ParallelEnv

ORDER = ("red_0", "blue_0", "red_1", "blue_1")


class Relay(AECEnv):
    metadata = {"name": "relay_v0"}

    def __init__(self, rounds: int = 3) -> None:
        self.rounds = rounds
        self.possible_agents = list(ORDER)

    def action_space(self, agent):
        return Discrete(3)

    def observation_space(self, agent):
        return Box(0.0, 1.0, (3,), np.float32)

    def reset(self, seed=None, options=None):
        self.agents = list(self.possible_agents)
        self.turn = 0
        self.agent_selection = ORDER[0]
        self.rewards = {a: 0.0 for a in self.agents}
        self._cumulative_rewards = {a: 0.0 for a in self.agents}
        self.terminations = {a: False for a in self.agents}
        self.truncations = {a: False for a in self.agents}
        self.infos = {a: {} for a in self.agents}

    def observe(self, agent):
        return np.array([self.turn // 4 / self.rounds, int(agent[-1]), agent.startswith("blue")], np.float32)

    def step(self, action):
        me = self.agent_selection
        if self.terminations[me]:
            self._was_dead_step(action)
            return
        self.rewards = {a: 0.0 for a in self.agents}
        self.rewards[me] = float(action)
        self.turn += 1
        if self.turn == 4 * self.rounds:
            self.terminations = {a: True for a in self.agents}
        self.agent_selection = ORDER[self.turn % 4]


def relay(rounds: int = 3) -> Relay:
    return Relay(rounds)


class Countdown(ParallelEnv):
    """A parallel game for the parallel-stepping tests: two agents move at once for `steps` steps.

    Each step an agent is paid 1 for action 1 and 0 for action 0, and sees (steps left / steps,
    its index). With `time_limit` the game is cut by truncation after the last step (a time limit:
    the rollout loop must bootstrap it); without, it ends by termination (nothing to bootstrap).
    """

    metadata = {"name": "countdown_v0"}

    def __init__(self, steps: int = 3, time_limit: bool = True) -> None:
        self.steps, self.time_limit = steps, time_limit
        self.possible_agents = ["left_0", "right_0"]

    def action_space(self, agent):
        return Discrete(2)

    def observation_space(self, agent):
        return Box(0.0, 1.0, (2,), np.float32)

    def _obs(self):
        return {a: np.array([(self.steps - self.t) / self.steps, i], np.float32) for i, a in enumerate(self.agents)}

    def reset(self, seed=None, options=None):
        self.agents = list(self.possible_agents)
        self.t = 0
        return self._obs(), {a: {} for a in self.agents}

    def step(self, actions):
        assert set(actions) == set(self.agents), "every live agent acts on every step"
        self.t += 1
        rewards = {a: float(actions[a]) for a in self.agents}
        end = self.t >= self.steps
        obs = self._obs()
        terms = {a: end and not self.time_limit for a in self.agents}
        truncs = {a: end and self.time_limit for a in self.agents}
        infos = {a: {} for a in self.agents}
        if end:
            self.agents = []
        return obs, rewards, terms, truncs, infos


def countdown(steps: int = 3, time_limit: bool = True) -> Countdown:
    return Countdown(steps, time_limit)


class Chase(ParallelEnv):
    """An asymmetric parallel game for the roles tests (actors/roles.py): two hunters (one side,
    `hunter_*`) against one runner (`runner_0`), which observe and act differently, as simple_tag's
    predators and prey do, so the game has two roles.

    Hunters see (steps left / steps, their index, 1) and pick 0, 1 or 2; the runner sees (steps left
    / steps, 0, 0, 0) and picks 0 or 1. Each step a hunter is paid action / 2 and the runner its
    action, so every role has a best move to learn. Ends by termination after `steps` steps, or by
    truncation with `time_limit`.
    """

    metadata = {"name": "chase_v0"}

    def __init__(self, steps: int = 3, time_limit: bool = False) -> None:
        self.steps, self.time_limit = steps, time_limit
        self.possible_agents = ["hunter_0", "hunter_1", "runner_0"]

    def action_space(self, agent):
        return Discrete(2) if agent.startswith("runner") else Discrete(3)

    def observation_space(self, agent):
        return Box(0.0, 1.0, (4,) if agent.startswith("runner") else (3,), np.float32)

    def _obs(self):
        left = (self.steps - self.t) / self.steps
        return {
            a: np.array([left, 0, 0, 0] if a.startswith("runner") else [left, int(a[-1]), 1], np.float32) for a in self.agents
        }

    def reset(self, seed=None, options=None):
        self.agents = list(self.possible_agents)
        self.t = 0
        return self._obs(), {a: {} for a in self.agents}

    def step(self, actions):
        assert set(actions) == set(self.agents), "every live agent acts on every step"
        self.t += 1
        rewards = {a: float(actions[a]) if a.startswith("runner") else actions[a] / 2.0 for a in self.agents}
        end = self.t >= self.steps
        obs = self._obs()
        terms = {a: end and not self.time_limit for a in self.agents}
        truncs = {a: end and self.time_limit for a in self.agents}
        infos = {a: {} for a in self.agents}
        if end:
            self.agents = []
        return obs, rewards, terms, truncs, infos


def chase(steps: int = 3, time_limit: bool = False) -> Chase:
    return Chase(steps, time_limit)


class Skirmish(ParallelEnv):
    """A parallel team game where an agent dies, for the team-reward tests: red_0, red_1 against
    blue_0, blue_1 move at once for `steps` steps; each live agent is paid its action (0 or 1) and
    sees (steps left / steps, its index, its team). red_1 is terminated on step `dies_at` (after
    being paid for it) and leaves the game, which the others play to the end (termination)."""

    metadata = {"name": "skirmish_v0"}

    def __init__(self, steps: int = 4, dies_at: int = 2) -> None:
        self.steps, self.dies_at = steps, dies_at
        self.possible_agents = ["red_0", "red_1", "blue_0", "blue_1"]

    def action_space(self, agent):
        return Discrete(2)

    def observation_space(self, agent):
        return Box(0.0, 1.0, (3,), np.float32)

    def _obs(self):
        left = (self.steps - self.t) / self.steps
        return {a: np.array([left, int(a[-1]), a.startswith("blue")], np.float32) for a in self.agents}

    def reset(self, seed=None, options=None):
        self.agents = list(self.possible_agents)
        self.t = 0
        return self._obs(), {a: {} for a in self.agents}

    def step(self, actions):
        assert set(actions) == set(self.agents), "every live agent acts on every step"
        self.t += 1
        rewards = {a: float(actions[a]) for a in self.agents}
        end = self.t >= self.steps
        terms = {a: end or (a == "red_1" and self.t == self.dies_at) for a in self.agents}
        truncs = {a: False for a in self.agents}
        self.agents = [] if end else [a for a in self.agents if not terms[a]]
        infos = {a: {} for a in self.agents}
        return self._obs(), rewards, terms, truncs, infos


def skirmish(steps: int = 4, dies_at: int = 2) -> Skirmish:
    return Skirmish(steps, dies_at)


FALLEN_ORDER = ("red_0", "blue_0", "red_1", "blue_1", "red_0", "blue_0", "blue_1", "red_0", "blue_0", "blue_1")


class Fallen(AECEnv):
    """Relay's turn-based game, where red_1 dies after its first move: the moves follow FALLEN_ORDER,
    the mover alone is paid its action (0, 1 or 2), and red_1 is terminated right after its move and
    leaves the game (stepped with None, as AEC games do with dead agents); the others play on."""

    metadata = {"name": "fallen_v0"}

    def __init__(self) -> None:
        self.possible_agents = list(ORDER)

    def action_space(self, agent):
        return Discrete(3)

    def observation_space(self, agent):
        return Box(0.0, 1.0, (3,), np.float32)

    def reset(self, seed=None, options=None):
        self.agents = list(self.possible_agents)
        self.turn = 0
        self.agent_selection = FALLEN_ORDER[0]
        self._skip_agent_selection = None
        self.rewards = {a: 0.0 for a in self.agents}
        self._cumulative_rewards = {a: 0.0 for a in self.agents}
        self.terminations = {a: False for a in self.agents}
        self.truncations = {a: False for a in self.agents}
        self.infos = {a: {} for a in self.agents}

    def observe(self, agent):
        return np.array([self.turn / len(FALLEN_ORDER), int(agent[-1]), agent.startswith("blue")], np.float32)

    def step(self, action):
        me = self.agent_selection
        if self.terminations[me]:
            self._was_dead_step(action)
            return
        self.rewards = {a: 0.0 for a in self.agents}
        self.rewards[me] = float(action)
        self.turn += 1
        if self.turn == len(FALLEN_ORDER):
            self.terminations = {a: True for a in self.agents}
            return
        if me == "red_1":
            self.terminations["red_1"] = True
        self.agent_selection = FALLEN_ORDER[self.turn]
        self._deads_step_first()


def fallen() -> Fallen:
    return Fallen()
