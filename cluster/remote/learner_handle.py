"""The learner handle of a distributed run: LearnerService as a Ray actor, as the driver's loop
(cluster/run/driver.py) sees it. The in-process handle is cluster/run/inline.py's LocalLearner."""

from __future__ import annotations

import secrets
import time

import numpy as np
import ray
from ray.exceptions import ActorAlreadyExistsError, GetTimeoutError

from cluster.config import Config
from cluster.remote.learner_service import LearnerService
from learner.report import LearnerProgress

# How long a new learner waits for a dead one's name to be released.
NAME_RELEASE_S = 60.0


class LearnerTimeout(GetTimeoutError):
    """The learner did not answer within learner.call_timeout_s (the driver's loop says how to resume)."""


class RayLearner:
    def __init__(self, actor: "ray.actor.ActorHandle", name: str, timeout_s: float = 300.0) -> None:
        self.actor, self.name, self.timeout_s = actor, name, timeout_s

    def _get(self, ref, what: str):
        """ray.get with learner.call_timeout_s: a wedged learner (a stuck device, a deadlock) stops the
        run with a message instead of hanging the driver forever."""
        try:
            return ray.get(ref, timeout=self.timeout_s)
        except GetTimeoutError as exc:
            raise LearnerTimeout(
                f"the learner {self.name} did not answer {what} within {self.timeout_s:g} s (learner.call_timeout_s): "
                "it is wedged or overloaded; its process is left to Ray (ray.kill it if it lingers)."
            ) from exc

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
        ray.get(actor.publish.remote())  # no timeout: it may wait for a node with room (learner.resources)
        actor.start_training.remote()
        return cls(actor, name, cfg.learner.call_timeout_s)

    def replace(self, cfg: Config, url: str, run_id: str, version: int | dict[str, int], checkpoint: bytes | None) -> "RayLearner":
        """A new learner under this (dead) one's name; this one is killed first, should it linger."""
        try:
            ray.kill(self.actor, no_restart=True)
        except ValueError:
            pass  # not an actor handle Ray still knows: already gone
        return RayLearner.start(cfg, url, run_id, version, checkpoint, name=self.name)

    def device(self) -> str:
        return self._get(self.actor.device.remote(), "device()")

    def pid(self) -> int:
        return self._get(self.actor.pid.remote(), "pid()")

    def progress(self) -> LearnerProgress:
        return self._get(self.actor.progress.remote(), "progress()")

    def checkpoint(self, progress: dict, leagues: dict | None = None) -> tuple[int, bytes]:
        return self._get(self.actor.checkpoint.remote(progress, leagues), "checkpoint()")

    def stop(self) -> int:
        return self._get(self.actor.stop_training.remote(), "stop()")

    def versions(self) -> dict[str, int]:
        return self._get(self.actor.versions.remote(), "versions()")

    def weights(self, name: str = "") -> tuple[int, dict[str, np.ndarray]]:
        return self._get(self.actor.weights.remote(name), "weights()")

    def reset_learner(self, name: str, source: str = "") -> int:
        return self._get(self.actor.reset_learner.remote(name, source), "reset_learner()")
