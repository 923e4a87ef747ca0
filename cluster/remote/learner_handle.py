"""The learner handle of a distributed run: LearnerService as a Ray actor, as the driver's loop
(cluster/run/driver.py) sees it. The in-process handle is cluster/run/inline.py's LocalLearner."""

from __future__ import annotations

import secrets

import numpy as np
import ray

from cluster.config import Config
from cluster.remote.learner_service import LearnerService
from learner.report import LearnerProgress


class RayLearner:
    def __init__(self, actor: "ray.actor.ActorHandle", name: str) -> None:
        self.actor, self.name = actor, name

    @classmethod
    def start(cls, cfg: Config, url: str, run_id: str, version: int, checkpoint: bytes | None) -> "RayLearner":
        """Start the learner actor (restoring the checkpoint, if any), publish its weights and
        start its training thread."""
        name = f"selfplay-learner-{run_id}-{secrets.token_hex(4)}"  # rollout actors look it up by name
        actor = (
            ray.remote(LearnerService)
            .options(
                name=name,
                num_cpus=cfg.learner.num_cpus,
                num_gpus=cfg.learner.num_gpus,
                max_concurrency=cfg.rollout.num_actors * cfg.rollout.max_inflight + 4,
            )  # no max_restarts: a restarted learner would have lost its state; the run stops and is resumed
            .remote(cfg.to_dict(), url, run_id, initial_version=version, checkpoint=checkpoint)
        )
        ray.get(actor.publish.remote())
        actor.start_training.remote()
        return cls(actor, name)

    def device(self) -> str:
        return ray.get(self.actor.device.remote())

    def pid(self) -> int:
        return ray.get(self.actor.pid.remote())

    def progress(self) -> LearnerProgress:
        return ray.get(self.actor.progress.remote())

    def checkpoint(self, progress: dict) -> tuple[int, bytes]:
        return ray.get(self.actor.checkpoint.remote(progress))

    def stop(self) -> int:
        return ray.get(self.actor.stop_training.remote())

    def weights(self) -> tuple[int, dict[str, np.ndarray]]:
        return ray.get(self.actor.weights.remote())
