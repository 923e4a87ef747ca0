"""A game's action space as one shared policy sees it: Discrete or Box, the same for every agent.

Discrete games are played by a categorical policy over `num_actions` moves, with a legal-action
mask. Box games (e.g. mpe2's with continuous_actions=True) by a diagonal Gaussian over a vector of
`num_actions` components, the Box flattened (learner/distributions.py); they have no mask, and what
the game receives is the sampled vector clipped to the Box's bounds (BoxActions.clip).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


class ActionSpaceError(ValueError):
    """The agents' action spaces cannot be played by one policy; actors/games.py names the game."""


class BoxActions:
    """A Box action space flattened: `size` components bounded by `low` and `high` (float32 [size])."""

    def __init__(self, space: Any) -> None:
        self.shape = tuple(int(d) for d in space.shape)
        self.size = math.prod(self.shape)
        if self.size == 0:
            raise ActionSpaceError(f"has an empty Box action space {space}")
        self.dtype = np.dtype(space.dtype)
        self.low = np.asarray(space.low, np.float32).reshape(-1)
        self.high = np.asarray(space.high, np.float32).reshape(-1)

    def clip(self, action: Any) -> np.ndarray:
        """What the game receives for a sampled action: clipped to the bounds, in the Box's shape and dtype."""
        a = np.asarray(action, np.float32).reshape(-1)
        if a.shape != (self.size,) or not np.isfinite(a).all():
            raise ActionSpaceError(f"action {a.tolist()} is not a finite vector of {self.size} components")
        return np.clip(a, self.low, self.high).reshape(self.shape).astype(self.dtype, copy=False)


def shared_action_space(spaces: dict[str, Any]) -> tuple[int, BoxActions | None]:
    """(num_actions, None) for agents that share one Discrete space; (the Box's size, the Box) for
    agents that share one Box. Anything else raises ActionSpaceError."""
    from gymnasium.spaces import Box

    first = next(iter(spaces.values()))
    if hasattr(first, "n"):
        n = int(first.n)
        same = all(int(getattr(s, "n", -1)) == n for s in spaces.values())
        box = None
    elif isinstance(first, Box):
        box = BoxActions(first)
        same = all(
            isinstance(s, Box) and s.shape == first.shape and np.array_equal(s.low, first.low) and np.array_equal(s.high, first.high)
            for s in spaces.values()
        )
        n = box.size
    else:
        raise ActionSpaceError(f"has a {type(first).__name__} action space; only Discrete and Box are supported")
    if not same:
        raise ActionSpaceError(
            f"its agents have different action spaces ({', '.join(f'{a}: {s}' for a, s in spaces.items())}); "
            "one shared policy cannot play them all"
        )
    return n, box


class UniformBox:
    """The random reference player of a Box game: each component uniform between its bounds (a
    standard normal where a bound is infinite), from the caller's Generator. A ScriptedFn."""

    def __init__(self, low: tuple[float, ...], high: tuple[float, ...]) -> None:
        self.low, self.high = np.asarray(low, np.float32), np.asarray(high, np.float32)
        self._bounded = np.isfinite(self.low) & np.isfinite(self.high)

    def __call__(self, obs: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        u = rng.uniform(np.where(self._bounded, self.low, 0.0), np.where(self._bounded, self.high, 1.0))
        return np.where(self._bounded, u, rng.standard_normal(self.low.shape)).astype(np.float32)
