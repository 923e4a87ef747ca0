"""Support for the fault tests: a game that misbehaves on purpose, and an observer of the run that
injects faults when the run reaches a given point.

The game is loaded by module path (`tests.fault_support:env`), as a user's own game would be, so
Ray's rollout actors import it too (they run with the driver's working directory on sys.path).
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np
from pettingzoo.classic import tictactoe_v3

from cluster.events import (
    ActorRestarted,
    ActorStarted,
    CheckpointWritten,
    LearnerRestarted,
    LearnerStarted,
    Observer,
    Progress,
    RunStarted,
    RunStopped,
    SnapshotAdded,
)
from learner.report import IterationReport

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
    it has played `after` moves; 'nan_rewards' hands out NaN rewards (which the actor refuses);
    'huge_rewards' hands out finite rewards so large (1e38) that the losses overflow to inf."""
    game = tictactoe_v3.env(**kwargs)
    step = game.step

    def faulty_step(action):
        step(action)
        _moves[0] += 1
        if mode == "nan_rewards":
            game.rewards = {a: float("nan") for a in game.rewards}
        if mode == "huge_rewards":
            # Read from the game itself: once set here, `game.rewards` is the wrapper's own copy.
            game.rewards = {a: 1e38 * r for a, r in game.unwrapped.rewards.items()}
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


class EventWatch(Observer):
    """An observer for run_training: keeps every event, runs actions once, in the driver's loop,
    when the run reaches a learner version, and asks the run to stop (a clean stop, as Ctrl-C) on
    the first progress event where `stop_when` holds. Faults are injected, and runs end, on
    conditions, not after sleeps."""

    def __init__(self) -> None:
        self.events: list = []
        self.pids: dict[str, int] = {}
        self.learner_name = ""
        self._actions: list[list] = []
        self.stop_when: Callable[["EventWatch"], bool] | None = None
        self._stop = False

    def at_version(self, version: int, action: Callable[["EventWatch"], None], needs: str = "") -> None:
        """Run `action` once a progress event shows learner version >= `version` (and, with `needs`,
        once that process has started: 'learner', 'actor0', ...)."""
        self._actions.append([version, action, needs, False])

    def run_started(self, e: RunStarted) -> None:
        self.events.append(e)

    def learner_started(self, e: LearnerStarted) -> None:
        self.events.append(e)
        self.pids["learner"] = e.pid
        self.learner_name = e.name

    def learner_restarted(self, e: LearnerRestarted) -> None:
        self.events.append(e)
        self.pids["learner"] = e.pid

    def actor_started(self, e: ActorStarted) -> None:
        self.events.append(e)
        self.pids[f"actor{e.actor}"] = e.pid

    def actor_restarted(self, e: ActorRestarted) -> None:
        self.events.append(e)

    def update(self, e: IterationReport) -> None:
        self.events.append(e)

    def snapshot(self, e: SnapshotAdded) -> None:
        self.events.append(e)

    def checkpoint(self, e: CheckpointWritten) -> None:
        self.events.append(e)

    def run_stopped(self, e: RunStopped) -> None:
        self.events.append(e)

    def progress(self, e: Progress) -> None:
        self.events.append(e)
        for entry in self._actions:
            version, action, needs, done = entry
            if not done and e.version >= version and (not needs or needs in self.pids):
                entry[3] = True
                action(self)
        if self.stop_when is not None and self.stop_when(self):
            self._stop = True

    def stop_requested(self) -> bool:
        return self._stop

    def of(self, kind: type) -> list:
        """The events of one kind, in order."""
        return [e for e in self.events if isinstance(e, kind)]

    def version(self) -> int:
        """The newest learner version of a progress event (-1 before any)."""
        progress = self.of(Progress)
        return progress[-1].version if progress else -1

    def versions_after(self, first: Callable[[object], bool]) -> list[int]:
        """Learner versions of the progress events after the first event for which `first` holds."""
        hits = [i for i, e in enumerate(self.events) if first(e)]
        if not hits:
            return []
        return [e.version for e in self.events[hits[0] + 1 :] if isinstance(e, Progress)]

    def text(self) -> str:
        """Every event but progress and updates, for assertion messages."""
        return "\n".join(repr(e) for e in self.events if not isinstance(e, (Progress, IterationReport)))


class _Uneven:
    """A game with a side (a_0, a_1 against b_0) whose agents do not fit one policy: a_1 observes
    or acts differently from a_0. (Sides that differ are roles, actors/roles.py; within a side, refused.)"""

    metadata = {"name": "uneven"}
    possible_agents = ["a_0", "a_1", "b_0"]

    def __init__(self, what: str) -> None:
        self.what = what

    def action_space(self, agent):
        from gymnasium.spaces import Discrete

        return Discrete(3 if self.what == "actions" and agent == "a_1" else 2)

    def observation_space(self, agent):
        from gymnasium.spaces import Box

        return Box(0, 1, (4,) if self.what == "observations" and agent == "a_1" else (2,), np.float32)


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
