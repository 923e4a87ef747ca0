"""PettingZoo's Atari games as this system builds them: ROMs from ale-py, stepped directly, a frame skip.

What PettingZoo's Atari factories do not do:
- find the ROMs that ale-py ships (they look in AutoROM's folder unless told);
- step the game without their AEC round trip, which more than doubles a frame's cost (AtariGame);
- skip frames. Every published Atari agent (DQN, PPO's Atari runs, Gymnasium's `ALE/...-v5` with
  `frameskip=4`) decides every 4th frame and repeats its action in between: a decision then moves
  the paddle far enough to matter, a point is 4x fewer decisions away (gamma reaches it), and each
  decision costs one network forward pass instead of four. PettingZoo's Atari envs decide every
  frame; `frameskip: K` in `game.kwargs` (Gymnasium's name for it) repeats each joint action K
  frames, rewards summed, and stops early when any agent's game ends. `max_cycles` still counts
  frames;
- tell an agent which player it is. Every agent of a PettingZoo Atari game observes the same
  screen or RAM, so a network shared by the players of a team, or by both sides in self-play,
  cannot tell which paddle it moves or which side of the net it is on (PettingZoo recommends
  SuperSuit's agent_indicator). Here each agent's observation ends with a one-hot of its index
  among the game's agents (n more bytes of RAM, or n more channels of an image), on unless
  `agent_indicator: false`.
Both kwargs travel with the game's other kwargs (run metadata, policy files, replays), so a policy
is always played as it learned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import gymnasium
import numpy as np
from pettingzoo.utils.env import ParallelEnv
from pettingzoo.utils.wrappers import BaseParallelWrapper

from actors.game_names import GameError, _missing_package_error


class AtariGame(BaseParallelWrapper):
    """PettingZoo's own parallel Atari env (ParallelAtariEnv), stepped directly, with a frame skip and
    the agent indicator (the module's note).

    PettingZoo's `parallel_env()` for an Atari game is that env converted to AEC, wrapped twice and
    converted back to parallel: about 120 attribute lookups a frame through the wrappers, 0.9 ms
    a frame of which the emulator is 0.2 (cProfile, volleyball pong, 4 players). Stepped directly
    it does the same work 2.1-2.3x as fast (benchmarks/atari_speed.py); what the conversions added
    is done here: an agent leaves `agents` when its game ends by truncation (max_cycles) as well as
    by termination. Actions are not range-checked again: the rollout loop only plays legal ones.
    tests/test_atari.py checks that both step alike, frame by frame."""

    def __init__(self, env: Any, skip: int = 1, indicator: bool = True) -> None:
        super().__init__(env)
        self.skip = skip
        self.agents: list = []
        self._marks: dict = {}
        self._spaces: dict = {}
        if indicator and len(env.possible_agents) > 1:
            n = len(env.possible_agents)
            for i, agent in enumerate(env.possible_agents):
                space = env.observation_space(agent)
                shape = (*space.shape, 1) if len(space.shape) == 2 else space.shape  # grayscale: one channel
                mark = np.zeros((*shape[:-1], n), space.dtype)
                mark[..., i] = space.high.flat[0]  # 255, the brightest byte: scaled to 1 like the rest
                self._marks[agent] = mark
                self._spaces[agent] = gymnasium.spaces.Box(0, space.high.flat[0], (*shape[:-1], shape[-1] + n), space.dtype)

    def observation_space(self, agent: Any) -> Any:
        return self._spaces.get(agent) or self.env.observation_space(agent)

    @property
    def observation_spaces(self) -> dict:  # the wrapped env's would lack the indicator
        return {agent: self.observation_space(agent) for agent in self.env.possible_agents}

    def _mark(self, observations: dict) -> dict:
        if not self._marks:
            return observations
        out = {}
        for agent, obs in observations.items():
            mark = self._marks[agent]
            out[agent] = np.concatenate([obs.reshape(*mark.shape[:-1], -1), mark], axis=-1)
        return out

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        observations, infos = self.env.reset(seed=seed, options=options)
        self.agents = list(self.env.agents)
        return self._mark(observations), infos

    def step(self, actions: dict) -> tuple[dict, dict, dict, dict, dict]:
        totals = dict.fromkeys(self.agents, 0.0)
        for _ in range(self.skip):
            observations, rewards, terminations, truncations, infos = self.env.step(actions)
            for agent, r in rewards.items():
                totals[agent] = totals.get(agent, 0.0) + float(r)
            # Any end of an agent's game ends the repeat: the next frame needs new decisions.
            if any(terminations.values()) or any(truncations.values()):
                break
        self.agents = [a for a in self.agents if not (terminations.get(a) or truncations.get(a))]
        return self._mark(observations), totals, terminations, truncations, infos


def ale_roms(name: str = "an Atari game") -> str:
    """The folder of the ROMs ale-py ships (GameError with the extra to install if it is missing)."""
    try:
        import ale_py
    except ModuleNotFoundError as exc:
        raise _missing_package_error(name, "ale_py") from exc
    return str(Path(ale_py.__file__).parent / "roms")


def atari_factory(factory: Callable[..., Any], name: str) -> Callable[..., Any]:
    """`factory` (a PettingZoo Atari game's parallel_env) with ale-py's ROMs unless the kwargs name a
    folder, stepped as an AtariGame with `frameskip` (an int >= 1, default 1) and `agent_indicator`
    (a bool, default true) taken from the kwargs."""

    def make(**kwargs: Any) -> Any:
        skip = kwargs.pop("frameskip", 1)
        indicator = kwargs.pop("agent_indicator", True)
        if not isinstance(indicator, bool):
            raise GameError(f"game {name!r}: agent_indicator must be true or false, got {indicator!r}")
        if isinstance(skip, bool) or not isinstance(skip, int) or skip < 1:
            raise GameError(f"game {name!r}: frameskip must be a whole number >= 1 (frames each decision is played for), got {skip!r}")
        if "auto_rom_install_path" not in kwargs:
            kwargs["auto_rom_install_path"] = ale_roms(name)
        env = factory(**kwargs)
        raw = env.unwrapped  # ParallelAtariEnv under PettingZoo's conversions, if this version has it
        return AtariGame(raw if isinstance(raw, ParallelEnv) else env, skip, indicator)

    return make
