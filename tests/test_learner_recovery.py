"""A learner that dies is replaced in-run (learner.max_restarts): on a real local Ray and a real
redis-server, and the driver's bookkeeping with stand-in handles (tests/test_driver.py's)."""

from __future__ import annotations

import pytest
import ray
from ray.exceptions import RayActorError

from cluster.events import LearnerRestarted, Progress
from cluster.run.console import ConsoleLog
from cluster.run.driver import Relaunched, drive
from cluster.run.resume import RunError
from cluster.run.trainer import run_training
from cluster.stores.connection import connect
from cluster.stores.embedded_redis import EmbeddedRedis
from cluster.stores.keys import RunKeys
from cluster.stores.param_store import ParamStore
from fault_support import EventWatch, small_config
from test_driver import _Learner, _parts


class _DyingLearner(_Learner):
    """Dies (as Ray reports a dead actor) on its progress() call number `dies_at`."""

    def __init__(self, params, dies_at: int, version: int = 0) -> None:
        super().__init__(params)
        self.version, self.calls, self.dies_at = version, 0, dies_at

    def progress(self):
        self.calls += 1
        if self.calls == self.dies_at:
            raise RayActorError()
        return super().progress()


def test_a_dead_learner_is_replaced_past_every_published_version_until_the_restarts_run_out(redis_server, redis_client, tmp_path):
    watch, lines = EventWatch(), []
    relaunched: list[int] = []

    def relaunch(dead):
        died_at = dead.params.latest_version()
        relaunched.append(died_at)
        new = _DyingLearner(dead.params, dies_at=3, version=died_at + 1)  # dies again after two updates
        return Relaunched(new, 3, died_at, died_at + 1, "cpu", 1000 + len(relaunched))

    from cluster.events import Observers

    parts = _parts(
        redis_server, tmp_path, Observers([watch, ConsoleLog(lines.append, 0.0)]), "run.max_versions=50", "learner.max_restarts=2",
        relaunch=relaunch, restart_backoff_s=0.0,
    )
    parts.learner = _DyingLearner(parts.learner.params, dies_at=5)
    with pytest.raises(RunError, match=r"learner died \(.*\) after 2 restarts \(learner.max_restarts per learner.restart_window_s\); continue from the last checkpoint \(v\d+\) with: selfplay train .* --resume"):
        drive(parts)
    restarts = watch.of(LearnerRestarted)
    assert [(e.restarts, e.died_at, e.version) for e in restarts] == [(1, 4, 5), (2, 7, 8)]
    versions = [p.version for p in watch.of(Progress)]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)  # each number once, increasing
    assert any("restart 1 (learner.max_restarts): a new learner on cpu (pid 1001) restored checkpoint v3; versions 4..4 were lost" in line for line in lines)
    assert parts.rollouts.learners_replaced == 2 and parts.rollouts.stopped  # told of each new learner; stopped at the end


def test_no_relaunch_means_a_dead_learner_stops_the_run_with_todays_message(redis_server, redis_client, tmp_path):
    parts = _parts(redis_server, tmp_path, EventWatch(), "run.max_versions=50")
    parts.learner = _DyingLearner(parts.learner.params, dies_at=2)
    with pytest.raises(RunError, match=r"^learner died \([^)]*\); continue from the last checkpoint \(v0\) with: selfplay train"):
        drive(parts)


@pytest.mark.ray
def test_killed_learner_is_replaced_mid_run_and_training_goes_on_with_monotonic_versions(local_ray, tmp_path):
    """ray.kill the learner twice; each time a new one starts from the newest checkpoint, numbers its
    versions past every published one, and the same rollout actors (never restarted) feed it."""
    watch = EventWatch()
    kills: list[int] = []

    def kill_learner(w: EventWatch) -> None:
        kills.append(w.version())
        ray.kill(ray.get_actor(w.learner_name))

    def kill_again(w: EventWatch) -> bool:
        restarts = w.of(LearnerRestarted)
        if len(restarts) == 1 and len(kills) == 1 and w.version() >= restarts[0].version + 2:
            kill_learner(w)
        return len(restarts) == 2 and w.version() >= restarts[1].version + 6  # past ppo.max_policy_lag: the actors use the new weights

    watch.at_version(4, kill_learner, needs="learner")
    watch.stop_when = kill_again
    result = run_training(small_config("run.max_versions=200", "learner.max_restarts=2"), tmp_path / "run", log=lambda line: None, observers=[watch])

    restarts = watch.of(LearnerRestarted)
    assert len(restarts) == 2 and len(kills) == 2, watch.text()
    versions = [e.version for e in watch.events if isinstance(e, Progress)]
    assert versions == sorted(versions), "learner versions went back"
    for r, killed_at in zip(restarts, kills):
        assert r.checkpoint_version is not None and r.checkpoint_version <= r.died_at
        assert r.version == r.died_at + 1 and r.died_at >= killed_at  # past every version published before it died
    assert result.summary["learner_restarts"] == 2
    assert result.summary["actor_restarts"] == 0  # the actors kept playing through both deaths
    assert result.learner_version >= restarts[1].version + 6 and result.learner_version == result.summary["checkpoint_version"]
    with EmbeddedRedis(tmp_path / "run" / "redis") as r:
        assert ParamStore(connect(r.url), RunKeys("selfplay", "run")).latest_version() == result.learner_version
