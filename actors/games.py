"""Game adapter: any PettingZoo game with two or more sides (AEC or parallel) behind one small, turn-aware API.

The adapter hides three PettingZoo details the rest of the system must not care about:
- where the legal-action mask lives (in the observation dict, in infos, or nowhere = all legal);
- parallel games, stepped as parallel games by ParallelSlot (actors/parallel_games.py), which
  offers a step's decisions at once and also keeps this one-decision-at-a-time surface;
- reward attribution: env.rewards after a step holds what *every* agent received on that step
  (in turn-based games the loser's -1 arrives on the winner's move), so the adapter hands back
  per-seat rewards after every step and the caller accumulates them until the seat's next move.

Seats are the game's agents; sides (actors/teams.py) group them into league players: one agent
per side in free-for-all games, several in team games. A game is scored per side (placements).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Collection

import numpy as np

from actors.game_names import GameError, check_trusted_game, resolve_game  # noqa: F401 - imported from here too
from actors.action_spaces import ActionSpaceError, BoxActions, shared_action_space
from actors.roles import RoleError, RoleSpec, action_signature, map_roles
from actors.teams import SideError, map_sides, placement_scores, side_of_seats
from learner.arch import CATEGORICAL, GAUSSIAN

@dataclass(frozen=True)
class GameSpec:
    """What the policy needs to know about a game."""

    name: str
    agents: tuple[str, ...]
    obs_shape: tuple[int, ...]
    num_actions: int
    """Discrete: the number of moves. Box: the number of components of an action (the Box flattened)."""
    sides: tuple[tuple[int, ...], ...] = ((0,), (1,))
    """Seats (indices into agents) of each side; one league player plays all seats of a side."""
    action_low: tuple[float, ...] = ()
    """Box games only: each action component's lower bound (empty for Discrete games)."""
    action_high: tuple[float, ...] = ()
    """Box games only: each action component's upper bound."""
    roles: tuple[RoleSpec, ...] = ()
    """Empty for a game whose agents all observe and act alike (one role: one policy plays every
    side). Two or more when sides differ (actors/roles.py); obs_shape, num_actions and the bounds
    above are then the FIRST role's, and code that plays one policy must refuse (refuse_roles)."""
    role_name: str = ""
    """The role this spec describes when it is one role's (GameSpec.role()); empty otherwise."""

    @property
    def continuous(self) -> bool:
        """A Box game: actions are real vectors, without a legal-action mask."""
        return bool(self.action_low)

    @property
    def head(self) -> str:
        """The policy head this game's action space needs (learner/arch.py's HEADS)."""
        return GAUSSIAN if self.action_low else CATEGORICAL

    @property
    def num_sides(self) -> int:
        return len(self.sides)

    @property
    def obs_dim(self) -> int:
        return int(np.prod(self.obs_shape))

    def role(self, name: str) -> "GameSpec":
        """The spec one role's policy sees: that role's observation shape and action space, no roles."""
        for r in self.roles:
            if r.name == name:
                return GameSpec(self.name, self.agents, r.obs_shape, r.num_actions, self.sides, r.action_low, r.action_high, role_name=r.name)
        raise GameError(f"game {self.name!r} has no role {name!r}; its roles are {[r.name for r in self.roles]}")


def refuse_roles(spec: GameSpec, what: str) -> None:
    """Raise a GameError saying that `what` plays one policy and cannot serve a game with roles."""
    if spec.roles:
        listed = ", ".join(f"{r.name} (obs {r.obs_shape}, {r.num_actions} actions)" for r in spec.roles)
        raise GameError(
            f"game {spec.name!r} has asymmetric roles ({listed}): its sides observe or act differently, and "
            f"{what} does not support roles yet (docs/architecture.md, 'Asymmetric roles')"
        )


def _split_obs(raw: Any, info: dict | None, num_actions: int) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(raw, dict) and "observation" in raw:
        obs = np.asarray(raw["observation"])
        mask = raw.get("action_mask")
    else:
        obs = np.asarray(raw)
        mask = None
    if mask is None and info:
        mask = info.get("action_mask")
    mask = np.ones(num_actions, dtype=bool) if mask is None or num_actions == 0 else np.asarray(mask).astype(bool)
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


def _is_byte_space(env: Any, agent: str) -> bool:
    try:
        space = env.observation_space(agent)
    except (AttributeError, NotImplementedError, KeyError):
        return False
    return getattr(space, "dtype", None) == np.uint8 and float(np.max(getattr(space, "high", 0))) == 255.0


class GameSlot:
    """One copy of a game stepped one decision at a time.

    Seats are the indices of env.possible_agents; `sides` groups them (actors/teams.py). After
    reset()/step(), `seat`, `side`, `obs`, `mask` and `raw_obs` describe the decision to make next
    (undefined once `over`). `truncated` maps each seat whose game ended by truncation (a time
    limit, not a loss or a win) to its final network input, for bootstrapping its last decision.
    """

    simultaneous = False
    """True for ParallelSlot (actors/parallel_games.py), which offers a step's decisions at once."""

    def __init__(
        self, factory: Callable[..., Any], kwargs: dict | None = None, name: str = "game", sides: dict | None = None, roles: dict | None = None
    ) -> None:
        self.env = self._build(factory, kwargs, name)
        self.name = name
        self.agents = tuple(self.env.possible_agents)
        try:
            self.side_names, self.sides = map_sides(self.agents, sides)
        except SideError as exc:
            raise GameError(f"game {name!r}: {exc}") from exc
        self.side_of = side_of_seats(self.sides)
        self.num_sides = len(self.sides)
        self._map_roles(roles)
        self._seat_of = {a: i for i, a in enumerate(self.agents)}
        # Byte observations (Atari RAM or screens: 0-255) reach the network scaled to [0, 1], as
        # every Atari agent does; raw_obs, what scripted players read, keeps the game's values.
        self._obs_scale = 1.0 / 255.0 if _is_byte_space(self.env, self.agents[0]) else None
        self.over = True
        self.seat = 0
        self.side = 0
        self.obs = np.zeros(0, np.float32)
        self._mask_size = self._mask_sizes[0]
        self.mask = np.zeros(self._mask_size, bool)
        self.raw_obs: np.ndarray = np.zeros(0)
        self.returns = [0.0] * len(self.agents)
        self.length = 0
        self.truncated: dict[int, np.ndarray] = {}
        self.left: frozenset[int] = frozenset()
        """Seats whose agent has left the game by termination (died) while others play on: their
        last decision is over (the rollout loop ends it), and team means count only the others."""

    @staticmethod
    def _build(factory: Callable[..., Any], kwargs: dict | None, name: str) -> Any:
        try:
            return factory(**(kwargs or {}))
        except TypeError as exc:
            raise GameError(f"game {name!r} rejected its kwargs {kwargs}: {exc}") from exc

    def _map_roles(self, explicit: dict | None) -> None:
        """Group the sides into roles (actors/roles.py) and learn each seat's action space.
        One role (every agent observes and acts alike): `roles` is empty, as before roles existed."""
        name, env = self.name, self.env
        spaces = {a: env.action_space(a) for a in self.agents}
        shapes = {a: _obs_shape(env, a) for a in self.agents}
        known = None not in shapes.values()  # an undeclared shape cannot tell roles apart
        sigs = tuple((shapes[a] if known else None, action_signature(spaces[a])) for a in self.agents)
        try:
            role_names, role_sides = map_roles(self.side_names, self.sides, sigs, explicit)
        except RoleError as exc:
            raise GameError(f"game {name!r}: {exc}") from exc
        roles, per_seat = [], [None] * len(self.agents)
        for rname, ks in zip(role_names, role_sides):
            seats = [i for k in ks for i in self.sides[k]]
            try:
                n, box = shared_action_space({self.agents[i]: spaces[self.agents[i]] for i in seats})
            except ActionSpaceError as exc:
                raise GameError(f"game {name!r}: {exc}") from exc
            for i in seats:
                per_seat[i] = (n, box)
            bounds = () if box is None else (tuple(map(float, box.low)), tuple(map(float, box.high)))
            roles.append(RoleSpec(rname, ks, shapes[self.agents[seats[0]]] or (), n, *bounds))
        if len(roles) > 1 and not known:
            raise GameError(f"game {name!r}: its sides act differently, but not every agent declares its observation space")
        self.roles: tuple[RoleSpec, ...] = tuple(roles) if len(roles) > 1 else ()
        self.num_actions, self.box = per_seat[0]
        self._boxes = tuple(b for _, b in per_seat)
        self._mask_sizes = tuple(n if b is None else 0 for n, b in per_seat)  # Box games have no mask

    def spec(self) -> GameSpec:
        self.reset(seed=0)
        box: BoxActions | None = self.box
        bounds = {} if box is None else {"action_low": tuple(map(float, box.low)), "action_high": tuple(map(float, box.high))}
        if self.roles:  # the first role's shape and actions at the top (GameSpec.roles says why)
            first = self.roles[0]
            return GameSpec(self.name, self.agents, first.obs_shape, first.num_actions, self.sides, first.action_low, first.action_high, self.roles)
        return GameSpec(self.name, self.agents, tuple(self.raw_obs.shape), self.num_actions, self.sides, **bounds)

    def reset(self, seed: int | None = None) -> None:
        self.env.reset(seed=seed)
        self.over = False
        self.returns = [0.0] * len(self.agents)
        self.length = 0
        self.truncated = {}
        self.left = frozenset()
        self._advance()

    def step(self, action: int | np.ndarray) -> list[float]:
        """Play `action` for the current seat; return the reward each seat received on this step.
        A Box game's action is a vector, which the game receives clipped to its bounds."""
        self.env.step(self._env_action(self.seat, action, self.mask))
        self.length += 1
        rewards = self._collect_rewards()
        extra = self._advance()
        return [r + e for r, e in zip(rewards, extra)]

    def _env_action(self, seat: int, action: int | np.ndarray, mask: np.ndarray) -> int | np.ndarray:
        """What the game receives for `seat`'s action: a legal move, or a Box game's vector clipped
        to its bounds. An illegal move or a malformed vector raises GameError."""
        box = self._boxes[seat]
        if box is not None:
            try:
                return box.clip(action)
            except ActionSpaceError as exc:
                raise GameError(f"game {self.name!r}, seat {seat}: {exc}") from exc
        if not (0 <= action < mask.size and mask[action]):  # out of range: another role's move
            raise GameError(f"illegal action {action} for seat {seat} (mask {mask.astype(int).tolist()})")
        return int(action)

    def _collect_rewards(self) -> list[float]:
        out = [0.0] * len(self.agents)
        for agent, r in self.env.rewards.items():
            out[self._seat_of[agent]] += float(r)
        self.returns = [a + b for a, b in zip(self.returns, out)]
        return out

    def _advance(self) -> list[float]:
        """Move to the next live decision; dead agents are stepped with None as AEC requires."""
        extra = [0.0] * len(self.agents)
        env = self.env
        while True:
            live = [a for a in env.agents if not (env.terminations[a] or env.truncations[a])]
            if not live:
                for agent in env.agents:
                    self._note_truncation(agent)
                self.over = True
                return extra
            agent = env.agent_selection
            if env.terminations[agent] or env.truncations[agent]:
                self._note_truncation(agent)
                if env.terminations[agent]:  # others still play: it has left the game (died)
                    self.left = self.left | {self._seat_of[agent]}
                env.step(None)
                extra = [a + b for a, b in zip(extra, self._collect_rewards())]
                continue
            self.seat = self._seat_of[agent]
            self.side = self.side_of[self.seat]
            raw = env.observe(agent)
            obs, mask = _split_obs(raw, env.infos.get(agent), self._mask_sizes[self.seat])
            if self._mask_sizes[self.seat] and not mask.any():
                raise GameError(f"game {self.name!r}: seat {self.seat} must move but has no legal action")
            self.raw_obs = obs
            self.obs = self._network_input(obs)
            self.mask = mask
            return extra

    def _note_truncation(self, agent: str) -> None:
        """Keep the final observation of an agent cut by a time limit (not by the game's end)."""
        if self.env.truncations[agent] and not self.env.terminations[agent]:
            final, _ = _split_obs(self.env.observe(agent), None, self._mask_sizes[self._seat_of[agent]])
            self.truncated[self._seat_of[agent]] = self._network_input(final)

    def _network_input(self, raw: np.ndarray) -> np.ndarray:
        obs = np.asarray(raw).astype(np.float32, copy=False).reshape(-1)
        return obs * self._obs_scale if self._obs_scale is not None else obs

    def scores(self) -> tuple[float, ...]:
        return side_scores(self.returns, self.sides)


def scores_from_returns(returns: list[float]) -> tuple[float, float]:
    """Win/draw/loss per seat from a two-seat game's total rewards (higher total wins)."""
    a, b = returns
    if a > b:
        return (1.0, 0.0)
    if b > a:
        return (0.0, 1.0)
    return (0.5, 0.5)


def side_scores(returns: list[float], sides: tuple[tuple[int, ...], ...]) -> tuple[float, ...]:
    """Per side: win/draw/loss for two one-seat sides, else its placement (actors/teams.py) by the
    mean return of its seats (the mean, so that a bigger team does not win by headcount)."""
    if len(returns) == 2 and len(sides) == 2:
        a, b = scores_from_returns(returns)
        return (a, b) if sides[0] == (0,) else (b, a)
    return placement_scores([sum(returns[i] for i in seats) / len(seats) for seats in sides])


def load_game_config(game) -> tuple[Callable[[], GameSlot], GameSpec]:
    """load_game for a run's `game` config section (actors/config.py GameConfig)."""
    return load_game(game.name, game.kwargs, game.native, game.sides, game.roles)


def load_game(
    name: str, kwargs: dict | None = None, native: bool = True, sides: dict | None = None, roles: dict | None = None,
    trusted: Collection[str] | None = None,
) -> tuple[Callable[[], GameSlot], GameSpec]:
    """Resolve a game and return (slot factory, spec), failing early with a clear GameError.

    With `native`, a game this project implements itself (actors/native_games.py: the same game,
    verified move by move against PettingZoo's) is served by that faster implementation.

    `trusted`: give it whenever `name` was READ (from Redis, a policy file, a replay) rather than
    written by the user: only built-in games and these names are then imported (check_trusted_game).
    None: `name` is the user's own (their config's game.name, their --game)."""
    from actors.native_games import native_slot_factory  # it imports GameSpec from here

    if trusted is not None:
        check_trusted_game(name, trusted)
    fast = native_slot_factory(name, kwargs) if native and not sides and not roles else None
    if fast is not None:
        return fast, fast().spec()
    from actors.parallel_games import ParallelSlot  # it subclasses GameSlot
    from pettingzoo.utils.env import ParallelEnv

    factory = resolve_game(name)
    probe = GameSlot._build(factory, kwargs, name)
    kind = ParallelSlot if isinstance(probe, ParallelEnv) else GameSlot
    first = kind(lambda **_: probe, None, name, sides, roles)  # the probe is the first slot's env

    def make_slot() -> GameSlot:
        return kind(factory, kwargs, name, sides, roles)

    return make_slot, first.spec()
