"""Support for the fault tests: a game that misbehaves on purpose, and a log callback that injects
faults when the run reaches a given point.

The game is loaded by module path (`tests.fault_support:env`), as a user's own game would be, so
Ray's rollout actors import it too (they run with the driver's working directory on sys.path).
"""

from __future__ import annotations

import os
import re
from typing import Callable

import numpy as np
from pettingzoo.classic import tictactoe_v3

# Small real runs for the fault and resume tests: tic-tac-toe, 2 actors, checkpoints every 2 versions,
# bounded by the test (run.max_versions or a fault), never by total_env_steps.
SMALL = [
    "rollout.num_actors=2",
    "rollout.envs_per_actor=8",
    "rollout.actor_num_cpus=0.5",
    "learner.num_cpus=0.5",
    "ppo.batch_size=256",
    "ppo.minibatch_size=128",
    "league.snapshot_every=2",
    "run.total_env_steps=100000000",
    "run.eval_games=10",
    "run.log_every_s=0",
    "checkpoint.every_versions=2",
    # A small, cheap network and the default deep queue: these runs test faults, not learning.
    "model.kind=mlp",
    "model.symmetry=none",
    "model.hidden_sizes=[64, 64]",
    "learner.queue_segments=256",
]


def small_config(*extra: str):
    from cluster.config import load_config

    return load_config("configs/tictactoe_smoke.yaml", [*SMALL, *extra])


_moves = [0]  # moves played in this process, over all game copies


def env(mode: str = "ok", flag: str = "", after: int = 40, **kwargs):
    """Tic-tac-toe, except: mode 'raise_once' raises in one game of one process (the first to claim
    the `flag` file once it has played `after` moves); 'raise_always' raises in every process once
    it has played `after` moves; 'nan_rewards' hands out NaN rewards."""
    game = tictactoe_v3.env(**kwargs)
    step = game.step

    def faulty_step(action):
        step(action)
        _moves[0] += 1
        if mode == "nan_rewards":
            game.rewards = {a: float("nan") for a in game.rewards}
        if mode == "raise_once" and _moves[0] >= after and _claim(flag):
            raise RuntimeError("injected fault in a game")
        if mode == "raise_always" and _moves[0] >= after:
            raise RuntimeError("injected fault in every game")

    game.step = faulty_step
    return game


def _claim(flag: str) -> bool:
    """True exactly once across all processes: whoever creates the file first."""
    try:
        os.close(os.open(flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


PROGRESS = re.compile(r"^v\s*(\d+)\s+steps")


class LogWatch:
    """A `log` callback for run_training: keeps every line, runs actions once, in the driver's loop,
    when the run reaches a learner version, and presses Ctrl-C (a clean stop) on the first progress
    line where `stop_when` holds. Faults are injected, and runs end, on conditions, not after sleeps."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.pids: dict[str, int] = {}
        self._actions: list[list] = []
        self.stop_when: Callable[["LogWatch"], bool] | None = None

    def at_version(self, version: int, action: Callable[["LogWatch"], None], needs: str = "") -> None:
        """Run `action` once a progress line shows learner version >= `version` (and, with `needs`,
        once that process' pid has been logged: 'learner', 'actor0', ...)."""
        self._actions.append([version, action, needs, False])

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        if m := re.match(r"learner on \S+ \(pid (\d+)\)", line):
            self.pids["learner"] = int(m.group(1))
        if m := re.match(r"rollout actor (\d+): incarnation \S+ \(pid (\d+)\)", line):
            self.pids[f"actor{m.group(1)}"] = int(m.group(2))
        m = PROGRESS.match(line)
        for entry in self._actions:
            version, action, needs, done = entry
            if m and not done and int(m.group(1)) >= version and (not needs or needs in self.pids):
                entry[3] = True
                action(self)
        if m and self.stop_when is not None and self.stop_when(self):
            raise KeyboardInterrupt  # as Ctrl-C: the run writes a checkpoint and returns

    def version(self) -> int:
        """The newest learner version in a progress line (-1 before any)."""
        for line in reversed(self.lines):
            if m := PROGRESS.match(line):
                return int(m.group(1))
        return -1

    def versions_after(self, pattern: str) -> list[int]:
        """Learner versions of the progress lines after the first line matching `pattern`."""
        hits = [i for i, line in enumerate(self.lines) if re.search(pattern, line)]
        if not hits:
            return []
        return [int(m.group(1)) for line in self.lines[hits[0] + 1 :] if (m := PROGRESS.match(line))]

    def text(self) -> str:
        return "\n".join(self.lines)

    def matching(self, pattern: str) -> list[str]:
        return [line for line in self.lines if re.search(pattern, line)]


class _Uneven:
    """A two-player game whose sides do not fit one policy: different observations or actions."""

    metadata = {"name": "uneven"}
    possible_agents = ["a", "b"]

    def __init__(self, what: str) -> None:
        self.what = what

    def action_space(self, agent):
        from gymnasium.spaces import Discrete

        return Discrete(3 if self.what == "actions" and agent == "b" else 2)

    def observation_space(self, agent):
        from gymnasium.spaces import Box

        return Box(0, 1, (4,) if self.what == "observations" and agent == "b" else (2,), np.float32)


def uneven_env(what: str = "observations"):
    return _Uneven(what)


def make_segment(obs_dim: int = 18, num_actions: int = 9, n: int = 32, version: int = 0, seed: int = 0):
    """A well-formed trajectory segment with random content (tic-tac-toe shapes by default)."""
    from learner.segment import Segment

    rng = np.random.default_rng(seed)
    return Segment(
        actor_id=0,
        segment_id=seed,
        obs=rng.random((n, obs_dim), dtype=np.float32),
        masks=np.ones((n, num_actions), bool),
        actions=rng.integers(0, num_actions, n),
        logp=np.full(n, -np.log(num_actions), np.float32),
        values=rng.normal(size=n).astype(np.float32),
        rewards=rng.choice([-1.0, 0.0, 1.0], n).astype(np.float32),
        dones=np.arange(n) % 5 == 4,
        versions=np.full(n, version, np.int64),
        bootstrap_value=0.0,
    )
