"""What recurrent policies remember while they play: one state per (game, seat).

Every policy seated in a game, the learner's and past opponents' alike, carries its own state per
seat from decision to decision: a snapshot that plays in three game slots, or two seats of one
team, has three or two histories, not one. A state starts as zeros when its game starts
(`new_game`) and is carried across ticks and across the learner's segment cuts; the state before a
decision is handed back, so the rollout loop can ship the one before each segment's first decision
(Segment.initial_state) and the learner unroll from it.

Feed-forward policies pass straight through to InferencePolicy.act, unchanged. Plain Python: the
rollout loop (game = slot index), matches (actors/evaluate.py) and human games (actors/human.py)
share it.
"""

from __future__ import annotations

from typing import Hashable, Iterable

import numpy as np

from learner.model import InferencePolicy


class SeatMemory:
    def __init__(self) -> None:
        self._games: dict[Hashable, dict[Hashable, np.ndarray]] = {}

    def act(
        self,
        policy: InferencePolicy,
        obs: np.ndarray,
        masks: np.ndarray,
        rng: np.random.Generator,
        keys: Iterable[tuple[Hashable, Hashable]],
        greedy: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """One batched decision of `policy` for the seats `keys` ((game, seat) per row of obs).
        Returns act()'s (actions, logp, values) and each seat's state before the decision, float32
        [B, 2, lstm_size]; None for a feed-forward policy (whose keys are never read)."""
        if not policy.recurrent:  # exactly the call the rollout loop made before recurrent policies
            actions, logp, values = policy.act(obs, masks, rng, greedy=True) if greedy else policy.act(obs, masks, rng)
            return actions, logp, values, None
        keys = list(keys)
        before = policy.initial_state(len(keys))
        for j, (game, seat) in enumerate(keys):
            held = self._games.get(game, {}).get(seat)
            if held is not None:
                before[j] = held
        actions, logp, values, after = policy.act_recurrent(obs, masks, before, rng, greedy=greedy)
        for (game, seat), state in zip(keys, after):
            self._games.setdefault(game, {})[seat] = state
        return actions, logp, values, before

    def new_game(self, game: Hashable) -> None:
        """Game `game` starts (again): every seat of it forgets."""
        self._games.pop(game, None)

    def state(self, game: Hashable, seat: Hashable) -> np.ndarray | None:
        """The seat's state after its latest decision in this game; None before its first."""
        return self._games.get(game, {}).get(seat)
