"""Restart budgets per time window (cluster/restart_budget.py): the pure rule with a fake clock, and
the driver's loop applying it to a learner that dies now and then (stand-in handles, real Redis)."""

from __future__ import annotations

import pytest
from ray.exceptions import RayActorError

from cluster.events import Observers
from cluster.restart_budget import RestartWindow, used_up_within_window
from cluster.run.driver import Relaunched, drive
from cluster.run.resume import RunError
from test_driver import _Learner, _parts


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_a_window_allows_max_restarts_within_any_window_and_forgets_older_ones():
    clock = _Clock()
    budget = RestartWindow(max_restarts=2, window_s=3600, clock=clock)
    budget.record()
    clock.t += 60
    budget.record()
    assert not budget.allows() and budget.recent() == 2  # two within the hour: spent
    clock.t += 3540  # the first one is now an hour old
    assert budget.allows() and budget.recent() == 1
    budget.record()
    assert not budget.allows()
    for _ in range(24 * 14):  # two weeks of one preemption every hour: never spent
        clock.t += 3600
        assert budget.allows()
        budget.record()
    assert budget.total == 3 + 24 * 14
    assert not RestartWindow(0, 3600, clock).allows()  # 0: the first death stops the run


def test_an_actor_that_used_its_ray_restarts_up_within_the_window_is_spent_and_one_slower_is_replaced():
    assert used_up_within_window(started_at=0.0, now=3599.0, window_s=3600.0)
    assert not used_up_within_window(started_at=0.0, now=3601.0, window_s=3600.0)


class _DiesEvery(_Learner):
    """A stand-in learner that dies (Ray's RayActorError) when it reaches version `dies_at`."""

    def __init__(self, params, version: int, dies_at: int) -> None:
        super().__init__(params)
        self.version, self.dies_at = version, dies_at

    def progress(self):
        if self.version + 1 == self.dies_at:
            raise RayActorError()
        return super().progress()


def _relaunch(parts, every: int):
    def relaunch(dead: _DiesEvery) -> Relaunched:
        new = _DiesEvery(dead.params, dead.version, dead.version + 1 + every)
        return Relaunched(new, None, dead.version, dead.version, "cpu", 1)

    return relaunch


@pytest.mark.slow
def test_a_learner_that_dies_less_often_than_the_budget_allows_never_stops_the_run(redis_server, redis_client, tmp_path):
    """max_restarts=1 per 0.6 s, a death every 3 versions at 0.3 s a tick (0.9 s apart): over the
    whole run that is 3 restarts, which a run-long count of 1 would have refused at the second."""
    parts = _parts(redis_server, tmp_path, Observers([]), "run.max_versions=11", "learner.max_restarts=1", "learner.restart_window_s=0.6",
                   restart_backoff_s=0.0)
    parts.tick_s = 0.3
    parts.learner = _DiesEvery(parts.learner.params, 0, 3)
    parts.relaunch = _relaunch(parts, 3)
    outcome = drive(parts)
    assert not outcome.interrupted and outcome.summary["learner_restarts"] == 3


def test_a_learner_that_dies_faster_than_the_budget_allows_stops_the_run_naming_the_window(redis_server, redis_client, tmp_path):
    parts = _parts(redis_server, tmp_path, Observers([]), "run.max_versions=11", "learner.max_restarts=1", "learner.restart_window_s=3600",
                   restart_backoff_s=0.0)
    parts.learner = _DiesEvery(parts.learner.params, 0, 3)
    parts.relaunch = _relaunch(parts, 3)
    with pytest.raises(RunError, match=r"after 1 restart \(learner.max_restarts per learner.restart_window_s\)"):
        drive(parts)
