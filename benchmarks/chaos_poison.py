"""The `poison` kind of benchmarks/chaos.py: hostile input injected mid-run instead of a kill. Each
time: game results that fail the league's checks (an opponent_prob outside (0, 1], a NaN score)
pushed into the run's game queue, and segments the learner must refuse (an action past the last,
a NaN reward) sent to the learner as a rollout actor sends them. The run must count them
(bad_games, corrupt_payloads) and go on (docs/faults.md, "Hostile input")."""

from __future__ import annotations

import math

import msgpack
import numpy as np

from actors.games import load_game
from cluster.stores.connection import connect
from cluster.stores.keys import RunKeys
from learner.segment import Segment
from learner.wire import encode_segments


def bad_game_payloads(run_version: int) -> list[bytes]:
    """Game results the league must refuse: each a win of the learner over the random player
    (the case that moved quality scores), with one field out of range."""
    body = {
        "game_id": "", "players": ["latest", "random"], "versions": [run_version, -1], "scores": [1.0, 0.0],
        "length": 5, "kind": "train", "opponent_prob": 1.0, "finished_at": 0.0,
    }
    changes = ({"opponent_prob": 5.0}, {"scores": [math.nan, 0.0]})
    return [
        msgpack.packb({"schema": "game", "v": 1, **body, **change, "game_id": f"chaos-poison-{run_version}-{k}"}, use_bin_type=True)
        for k, change in enumerate(changes)
    ]


def bad_segment_payloads(spec, length: int) -> list[bytes]:
    """One payload per defect, each one segment of the game's shapes: built valid, then spoiled, as
    a broken or hostile actor could send it."""
    out = []
    for defect in ("action", "reward"):
        if defect == "action" and spec.continuous:
            continue  # a Box game's action has no range to leave (its NaN is refused like a reward's)
        actions = np.zeros((length, spec.num_actions), np.float32) if spec.continuous else np.zeros(length, np.int64)
        seg = Segment(
            actor_id=-1, segment_id=0, obs=np.zeros((length, spec.obs_dim), np.float32),
            masks=np.ones((length, 0 if spec.continuous else spec.num_actions), bool), actions=actions,
            logp=np.zeros(length, np.float32), values=np.zeros(length, np.float32), rewards=np.zeros(length, np.float32),
            dones=np.zeros(length, bool), versions=np.zeros(length, np.int64), bootstrap_value=0.0,
        )
        if defect == "action":
            seg.actions[0] = spec.num_actions
        else:
            seg.rewards[0] = np.nan
        out.append(encode_segments([seg]))
    return out


class Poison:
    """Injects the payloads above into a run, and keeps what its learner counted as corrupt over
    learner restarts (each new learner counts from 0)."""

    def __init__(self, cfg, redis_url: str) -> None:
        self.cfg, self.redis_url = cfg, redis_url
        _, self.spec = load_game(cfg.game.name, cfg.game.kwargs, cfg.game.native, cfg.game.sides, cfg.game.roles)
        self.games_injected = self.segments_injected = 0
        self.first_version: int | None = None
        self._corrupt_before = self._corrupt_now = 0

    def inject(self, version: int) -> str:
        """Push the bad games and send the bad segments; a description for the log, '' if skipped."""
        import ray

        if self.spec.roles:
            return ""
        keys = RunKeys(self.cfg.redis.key_prefix, self.cfg.run.run_id)
        client = connect(self.redis_url)
        games = bad_game_payloads(version)
        client.rpush(keys.games, *games)
        client.close()
        prefix = f"selfplay-learner-{self.cfg.run.run_id}-"
        learner = ray.get_actor(next(n for n in ray.util.list_named_actors() if n.startswith(prefix)))
        segments = bad_segment_payloads(self.spec, self.cfg.rollout.segment_length)
        accepted = ray.get([learner.submit.remote(p, timeout_s=5.0, count=1) for p in segments], timeout=60)
        self.games_injected += len(games)
        self.segments_injected += sum(accepted)
        self.first_version = version if self.first_version is None else self.first_version
        return f"{len(games)} bad game results and {sum(accepted)} malformed segments (at v{version})"

    def observe(self, corrupt_payloads: int) -> None:
        """The learner's corrupt_payloads from a progress event."""
        if corrupt_payloads < self._corrupt_now:  # a new learner: its count starts again
            self._corrupt_before += self._corrupt_now
        self._corrupt_now = corrupt_payloads

    @property
    def corrupt_payloads(self) -> int:
        return self._corrupt_before + self._corrupt_now
