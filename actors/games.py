"""Game adapter: any two-sided PettingZoo game (AEC or parallel) behind one small, turn-aware API.

The adapter hides three PettingZoo details the rest of the system must not care about:
- where the legal-action mask lives (in the observation dict, in infos, or nowhere = all legal);
- parallel games, which are converted to AEC so one loop serves both kinds;
- reward attribution: env.rewards after a step holds what *every* agent received on that step
  (in turn-based games the loser's -1 arrives on the winner's move), so the adapter hands back
  per-seat rewards after every step and the caller accumulates them until the seat's next move.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

# pettingzoo.mpe moved to the separate mpe2 package (tried below), and importing it now raises.
BUILTIN_FAMILIES = ("classic", "butterfly", "sisl", "atari")


class GameError(ValueError):
    """The game cannot be loaded or does not fit this system; the message says why."""


@dataclass(frozen=True)
class GameSpec:
    """What the policy needs to know about a game."""

    name: str
    agents: tuple[str, ...]
    obs_shape: tuple[int, ...]
    num_actions: int

    @property
    def obs_dim(self) -> int:
        return int(np.prod(self.obs_shape))


def resolve_game(name: str) -> Callable[..., Any]:
    """Return a factory making an AEC env for `name`.

    Accepts a built-in PettingZoo name ('connect_four_v3'), an mpe2 name, or a module path
    ('package.module' exposing env()/parallel_env(), or 'package.module:factory').
    """
    module_name, _, attr = name.partition(":")
    candidates = [module_name] if "." in module_name else [
        *(f"pettingzoo.{fam}.{module_name}" for fam in BUILTIN_FAMILIES),
        f"mpe2.{module_name}",
    ]
    errors = []
    for cand in candidates:
        try:
            module = importlib.import_module(cand)
        except ModuleNotFoundError as exc:
            # Only "this module does not exist" means try the next family; a missing dependency
            # of an existing game module (e.g. pygame) must be reported as such.
            if exc.name and not cand.startswith(exc.name) and exc.name not in cand:
                raise GameError(f"game {name!r} needs the package {exc.name!r}: pip install it") from exc
            errors.append(cand)
            continue
        except ImportError as exc:
            raise GameError(f"game {name!r} could not be imported: {exc}") from exc
        if attr:
            if not hasattr(module, attr):
                raise GameError(f"game {name!r}: module {cand} has no attribute {attr!r}")
            return _as_aec(getattr(module, attr))
        if hasattr(module, "env"):
            return module.env
        if hasattr(module, "parallel_env"):
            return _as_aec(module.parallel_env)
        raise GameError(f"game {name!r}: module {cand} has neither env() nor parallel_env()")
    raise GameError(
        f"unknown game {name!r}: not a PettingZoo built-in ({', '.join(BUILTIN_FAMILIES)}) and not an importable "
        f"module path. Use e.g. 'connect_four_v3', 'tictactoe_v3' or 'mypkg.mygame:env'."
    )


def _as_aec(factory: Callable[..., Any]) -> Callable[..., Any]:
    from pettingzoo.utils.conversions import parallel_to_aec
    from pettingzoo.utils.env import ParallelEnv

    def make(**kwargs: Any) -> Any:
        env = factory(**kwargs)
        return parallel_to_aec(env) if isinstance(env, ParallelEnv) else env

    return make


def _split_obs(raw: Any, info: dict | None, num_actions: int) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(raw, dict) and "observation" in raw:
        obs = np.asarray(raw["observation"])
        mask = raw.get("action_mask")
    else:
        obs = np.asarray(raw)
        mask = None
    if mask is None and info:
        mask = info.get("action_mask")
    mask = np.ones(num_actions, dtype=bool) if mask is None else np.asarray(mask).astype(bool)
    return obs, mask


def _obs_shape(env: Any, agent: str) -> tuple | None:
    """Shape of what `agent` observes (the 'observation' entry of a dict space); None if undeclared."""
    try:
        space = env.observation_space(agent)
    except (AttributeError, NotImplementedError, KeyError):
        return None
    if hasattr(space, "spaces") and "observation" in getattr(space, "spaces", {}):
        space = space["observation"]
    shape = getattr(space, "shape", None)
    return tuple(shape) if shape is not None else None


class GameSlot:
    """One copy of a two-sided game stepped one decision at a time.

    Seats are the indices of env.possible_agents. After reset()/step(), `seat`, `obs`, `mask` and
    `raw_obs` describe the decision to make next (undefined once `over`).
    """

    def __init__(self, factory: Callable[..., Any], kwargs: dict | None = None, name: str = "game") -> None:
        try:
            self.env = factory(**(kwargs or {}))
        except TypeError as exc:
            raise GameError(f"game {name!r} rejected its kwargs {kwargs}: {exc}") from exc
        self.name = name
        self.agents = tuple(self.env.possible_agents)
        if len(self.agents) != 2:
            raise GameError(
                f"game {name!r} has {len(self.agents)} agents {self.agents}; this version trains two-sided games only"
            )
        space = self.env.action_space(self.agents[0])
        if not hasattr(space, "n"):
            raise GameError(f"game {name!r} has a {type(space).__name__} action space; only Discrete is supported")
        self.num_actions = int(space.n)
        if any(int(getattr(self.env.action_space(a), "n", -1)) != self.num_actions for a in self.agents):
            raise GameError(f"game {name!r}: the two sides have different action spaces; one shared policy cannot play both")
        shapes = {a: _obs_shape(self.env, a) for a in self.agents}
        if None not in shapes.values() and len(set(shapes.values())) > 1:
            raise GameError(
                f"game {name!r}: the two sides observe different shapes {shapes}; one shared policy cannot play both"
            )
        self._seat_of = {a: i for i, a in enumerate(self.agents)}
        self.over = True
        self.seat = 0
        self.obs = np.zeros(0, np.float32)
        self.mask = np.zeros(self.num_actions, bool)
        self.raw_obs: np.ndarray = np.zeros(0)
        self.returns = [0.0, 0.0]
        self.length = 0

    def spec(self) -> GameSpec:
        self.reset(seed=0)
        return GameSpec(self.name, self.agents, tuple(self.raw_obs.shape), self.num_actions)

    def reset(self, seed: int | None = None) -> None:
        self.env.reset(seed=seed)
        self.over = False
        self.returns = [0.0, 0.0]
        self.length = 0
        self._advance()

    def step(self, action: int) -> list[float]:
        """Play `action` for the current seat; return the reward each seat received on this step."""
        if not self.mask[action]:
            raise GameError(f"illegal action {action} for seat {self.seat} (mask {self.mask.astype(int).tolist()})")
        self.env.step(int(action))
        self.length += 1
        rewards = self._collect_rewards()
        extra = self._advance()
        return [r + e for r, e in zip(rewards, extra)]

    def _collect_rewards(self) -> list[float]:
        out = [0.0, 0.0]
        for agent, r in self.env.rewards.items():
            out[self._seat_of[agent]] += float(r)
        self.returns = [a + b for a, b in zip(self.returns, out)]
        return out

    def _advance(self) -> list[float]:
        """Move to the next live decision; dead agents are stepped with None as AEC requires."""
        extra = [0.0, 0.0]
        env = self.env
        while True:
            live = [a for a in env.agents if not (env.terminations[a] or env.truncations[a])]
            if not live:
                self.over = True
                return extra
            agent = env.agent_selection
            if env.terminations[agent] or env.truncations[agent]:
                env.step(None)
                extra = [a + b for a, b in zip(extra, self._collect_rewards())]
                continue
            self.seat = self._seat_of[agent]
            raw = env.observe(agent)
            obs, mask = _split_obs(raw, env.infos.get(agent), self.num_actions)
            if not mask.any():
                raise GameError(f"game {self.name!r}: seat {self.seat} must move but has no legal action")
            self.raw_obs = obs
            self.obs = obs.astype(np.float32, copy=False).reshape(-1)
            self.mask = mask
            return extra

    def scores(self) -> tuple[float, float]:
        return scores_from_returns(self.returns)


def scores_from_returns(returns: list[float]) -> tuple[float, float]:
    """Win/draw/loss per seat from a game's total rewards (higher total wins)."""
    a, b = returns
    if a > b:
        return (1.0, 0.0)
    if b > a:
        return (0.0, 1.0)
    return (0.5, 0.5)


def load_game(name: str, kwargs: dict | None = None, native: bool = True) -> tuple[Callable[[], GameSlot], GameSpec]:
    """Resolve a game and return (slot factory, spec), failing early with a clear GameError.

    With `native`, a game this project implements itself (actors/native_games.py: the same game,
    verified move by move against PettingZoo's) is served by that faster implementation."""
    from actors.native_games import native_slot_factory  # it imports GameSpec from here

    fast = native_slot_factory(name, kwargs) if native else None
    if fast is not None:
        return fast, fast().spec()
    factory = resolve_game(name)

    def make_slot() -> GameSlot:
        return GameSlot(factory, kwargs, name)

    spec = make_slot().spec()
    return make_slot, spec
