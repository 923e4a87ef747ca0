"""The learner handle of a distributed run: LearnerService as a Ray actor, as the driver's loop
(cluster/run/driver.py) sees it. The in-process handle is cluster/run/inline.py's LocalLearner."""

from __future__ import annotations

import secrets
import time

import numpy as np
import ray
from ray.exceptions import ActorAlreadyExistsError

from cluster.config import Config
from cluster.remote.learner_service import LearnerService
from learner.report import LearnerProgress

# How long a new learner waits for a dead one's name to be released.
NAME_RELEASE_S = 60.0


class RayLearner:
    def __init__(self, actor: "ray.actor.ActorHandle", name: str) -> None:
        self.actor, self.name = actor, name

    @classmethod
    def start(cls, cfg: Config, url: str, run_id: str, version: int | dict[str, int], checkpoint: bytes | None, name: str = "") -> "RayLearner":
        """Start the learner actor (restoring the checkpoint, if any), publish its weights and
        start its training thread. `version`: where its learners continue (one number, or one per
        learner by name). `name`: the Ray actor name, by which rollout actors find it
        (a new learner that replaces a dead one takes the dead one's name)."""
        name = name or f"selfplay-learner-{run_id}-{secrets.token_hex(4)}"
        options = dict(
            name=name,
            num_cpus=cfg.learner.num_cpus,
            num_gpus=cfg.learner.num_gpus,
            resources=dict(cfg.learner.resources),  # learner.resources: on chosen nodes only
            max_concurrency=cfg.rollout.num_actors * cfg.rollout.max_inflight + 4,
        )  # no max_restarts: Ray would restart it with its first arguments; the driver starts a new one from the newest checkpoint
        deadline = time.monotonic() + NAME_RELEASE_S
        while True:
            try:
                actor = ray.remote(LearnerService).options(**options).remote(
                    cfg.to_dict(), url, run_id, initial_version=version, checkpoint=checkpoint
                )
                break
            except ActorAlreadyExistsError:  # the dead learner's name is released once Ray has seen it die
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        ray.get(actor.publish.remote())
        actor.start_training.remote()
        return cls(actor, name)

    def replace(self, cfg: Config, url: str, run_id: str, version: int | dict[str, int], checkpoint: bytes | None) -> "RayLearner":
        """A new learner under this (dead) one's name; this one is killed first, should it linger."""
        try:
            ray.kill(self.actor, no_restart=True)
        except ValueError:
            pass  # not an actor handle Ray still knows: already gone
        return RayLearner.start(cfg, url, run_id, version, checkpoint, name=self.name)

    def device(self) -> str:
        return ray.get(self.actor.device.remote())

    def pid(self) -> int:
        return ray.get(self.actor.pid.remote())

    def progress(self) -> LearnerProgress:
        return ray.get(self.actor.progress.remote())

    def checkpoint(self, progress: dict, leagues: dict | None = None) -> tuple[int, bytes]:
        return ray.get(self.actor.checkpoint.remote(progress, leagues))

    def stop(self) -> int:
        return ray.get(self.actor.stop_training.remote())

    def versions(self) -> dict[str, int]:
        return ray.get(self.actor.versions.remote())

    def weights(self, name: str = "") -> tuple[int, dict[str, np.ndarray]]:
        return ray.get(self.actor.weights.remote(name))
