"""Parallel-API games (simultaneous moves) stepped as parallel games: one action per live agent per step.

PettingZoo's parallel API (MPE, Butterfly, SISL, Atari, rock-paper-scissors) takes the actions of
every live agent at once. Converting such a game to AEC (parallel_to_aec) makes the rollout loop
spend one tick per agent on each step; ParallelSlot instead offers all of a step's decisions at
once (`decisions`), so the rollout loop decides them in the same tick, batched per policy, and the
game steps when the last of them is made (`decide`).

It keeps GameSlot's one-decision-at-a-time surface too (`seat`, `obs`, `mask`, `step`), for the
evaluators, human play and replays: the seats of a step are offered in turn, the game steps when
the last one has moved, and the step's rewards are returned then (zeros before), which is what
PettingZoo's AEC conversion does.

Rewards are attributed per agent: what each agent received on a step is credited to that agent's
decision of the step. A step can end an agent by termination (its future is worth nothing) or by
truncation (a time limit: its future is not lost, only unseen). `truncated` holds the final
observation of every agent whose game ended by truncation, so the rollout loop can bootstrap its
last decision from V(final observation) instead of treating the cut as a loss of all future reward.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from actors.games import GameError, GameSlot, _split_obs


class ParallelSlot(GameSlot):
    """One copy of a parallel-API game. See GameSlot for the attributes shared with it."""

    simultaneous = True

    def __init__(
        self, factory: Callable[..., Any], kwargs: dict | None = None, name: str = "game", sides: dict | None = None, roles: dict | None = None
    ) -> None:
        super().__init__(factory, kwargs, name, sides, roles)
        self.decisions: list[int] = []
        """Seats that move on the current step and have not moved yet, in seat order."""
        self._views: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._actions: dict[str, Any] = {}
        self.left: frozenset[int] = frozenset()

    def reset(self, seed: int | None = None) -> None:
        observations, infos = self.env.reset(seed=seed)
        self.over = False
        self.returns = [0.0] * len(self.agents)
        self.length = 0
        self.truncated = {}
        self.left = frozenset()
        self._offer(observations, infos or {})

    def view(self, seat: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(network input, legal-action mask, raw observation) of a seat that moves on this step."""
        return self._views[seat]

    def decide(self, seat: int, action: int | np.ndarray) -> list[float] | None:
        """Record `seat`'s action for this step (a Box game's vector is clipped to its bounds).
        When every live agent has one, step the game and return what each seat received; before
        that, None."""
        if seat not in self.decisions:
            raise GameError(f"seat {seat} does not move now (moving: {self.decisions})")
        self._actions[self.agents[seat]] = self._env_action(seat, action, self._views[seat][1])
        self.decisions.remove(seat)
        self.length += 1
        if self.decisions:
            self._show(self.decisions[0])
            return None
        observations, rewards, terminations, truncations, infos = self.env.step(self._actions)
        out = [0.0] * len(self.agents)
        for agent, r in rewards.items():
            out[self._seat_of[agent]] += float(r)
        self.returns = [a + b for a, b in zip(self.returns, out)]
        for agent, cut in truncations.items():
            if cut and not terminations.get(agent, False) and agent in observations:
                raw = np.asarray(_split_obs(observations[agent], None, self._mask_sizes[self._seat_of[agent]])[0])
                self.truncated[self._seat_of[agent]] = self._network_input(raw)
        self._offer(observations, infos or {})
        if not self.over:  # an agent terminated while the game goes on has left it (died)
            gone = {self._seat_of[a] for a, done in terminations.items() if done and self._seat_of[a] not in self._views}
            if gone:
                self.left = self.left | gone
        return out

    def step(self, action: int | np.ndarray) -> list[float]:
        """GameSlot's surface: play `action` for the seat offered now (`seat`)."""
        out = self.decide(self.seat, action)
        return [0.0] * len(self.agents) if out is None else out

    def _offer(self, observations: dict, infos: dict) -> None:
        self._actions = {}
        self._views = {}
        live = [a for a in self.env.agents if a in observations]
        for agent in live:
            seat = self._seat_of[agent]
            raw, mask = _split_obs(observations[agent], infos.get(agent), self._mask_sizes[seat])
            if self._mask_sizes[seat] and not mask.any():
                raise GameError(f"game {self.name!r}: agent {agent} must move but has no legal action")
            self._views[seat] = (self._network_input(raw), mask, raw)
        self.decisions = sorted(self._views)
        if not self.decisions:
            self.over = True
            return
        self._show(self.decisions[0])

    def _show(self, seat: int) -> None:
        self.seat = seat
        self.side = self.side_of[seat]
        self.obs, self.mask, self.raw_obs = self._views[seat]

    def _network_input(self, raw: np.ndarray) -> np.ndarray:
        obs = np.asarray(raw).astype(np.float32, copy=False).reshape(-1)
        return obs * self._obs_scale if self._obs_scale is not None else obs
