"""Node loss on a real multi-node Ray on one machine (cluster/remote/local_cluster.py): each node is a
raylet of its own; roles are placed on chosen nodes by custom resources (learner.resources,
rollout.resources), and a node is taken away by killing its raylet and every worker on it.

As in tests/test_faults.py, the faults are injected when the run reaches a learner version, and the
runs end on conditions, never after sleeps. A node is removed on a thread of its own, so the
driver's loop goes on meanwhile, as it would while a real node dies; one is added on the driver's
thread (Ray requires the main thread for that), which holds the loop for a second or two.
"""

from __future__ import annotations

import threading

import pytest
import ray

from cluster.events import ActorRestarted, LearnerRestarted, Progress
from cluster.remote.local_cluster import LocalCluster
from cluster.run.trainer import run_training
from fault_support import EventWatch, small_config

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture
def local_cluster():
    clusters: list[LocalCluster] = []

    def start(**head) -> LocalCluster:
        c = LocalCluster(**head)
        clusters.append(c)
        return c

    yield start
    for c in clusters:
        c.shutdown()


class _Marks:
    """Points of a run (the index of the next event) at which the test did something."""

    def __init__(self, watch: EventWatch) -> None:
        self.watch, self.at, self.versions = watch, {}, {}

    def mark(self, name: str) -> None:
        self.at[name], self.versions[name] = len(self.watch.events), self.watch.version()

    def versions_between(self, first: str, last: str | None = None) -> list[int]:
        end = self.at[last] if last else len(self.watch.events)
        return [e.version for e in self.watch.events[self.at[first] : end] if isinstance(e, Progress)]


def _in_background(action) -> None:
    threading.Thread(target=action, daemon=True).start()


def test_rollout_node_lost_training_goes_on_and_its_actor_returns_with_the_node(local_cluster, tmp_path):
    """Two rollout nodes, one actor each (rollout.resources={rollout_node: 1}); the learner on the head.
    The node of actor 0 goes: the learner keeps training on actor 1's games, actor 0 waits (no node
    offers rollout_node), and once a node offering it joins, Ray restarts actor 0 there."""
    c = local_cluster(head_cpus=2, head_resources={"learner_node": 1})
    nodes = [c.add_node(1, rollout_node=1), c.add_node(1, rollout_node=1)]
    c.connect(log_to_driver=False)
    cfg = small_config("learner.resources={learner_node: 1}", "rollout.resources={rollout_node: 1}", "eval.num_evaluators=0", "run.max_versions=300")
    watch = EventWatch()
    marks, lost = _Marks(watch), {}

    def remove_actor0_node(w: EventWatch) -> None:
        lost["node"] = c.node_of(w.pids["actor0"])
        lost["other"] = c.node_of(w.pids["actor1"])
        marks.mark("removed")
        _in_background(lambda: (c.remove_node(lost["node"]), lost.setdefault("gone", True)))

    def restarted(e) -> bool:
        return isinstance(e, ActorRestarted)

    def stop_when(w: EventWatch) -> bool:
        if "gone" in lost and "back" not in marks.at and w.version() >= marks.versions["removed"] + 8:
            lost["restarts_while_away"] = len(w.of(ActorRestarted))
            marks.mark("back")
            lost["new"] = c.add_node(1, rollout_node=1)  # on the driver's (main) thread, as Ray requires
        done = "back" in marks.at and max(w.versions_after(restarted), default=-1) >= marks.versions["back"] + 4
        if done:
            lost["actor0_now"] = c.node_of(w.pids["actor0"])
        return done

    watch.at_version(3, remove_actor0_node, needs="actor1")
    watch.stop_when = stop_when
    result = run_training(cfg, tmp_path / "run", log=lambda line: None, observers=[watch])

    assert lost["node"] in nodes and lost["other"] in nodes and lost["node"] is not lost["other"], "one actor per rollout node"
    assert lost["restarts_while_away"] == 0, watch.text()  # actor 0 waited for a node: nothing offered rollout_node
    away = marks.versions_between("removed", "back")
    assert away[-1] >= marks.versions["removed"] + 8 and away == sorted(away)  # training went on with actor 1 alone
    restarts = watch.of(ActorRestarted)
    assert [e.actor for e in restarts] == [0], watch.text()  # only the lost node's actor, and only once
    assert watch.events.index(restarts[0]) > marks.at["back"]  # ... once a node offering rollout_node joined
    assert lost["actor0_now"] is lost["new"]  # where it runs now
    versions = [e.version for e in watch.of(Progress)]
    assert versions == sorted(versions)
    assert result.summary["actor_restarts"] == 1 and result.summary["learner_restarts"] == 0
    assert result.summary["duplicate_games"] == 0
    assert result.learner_version == result.summary["checkpoint_version"] < 300


def test_learner_node_lost_a_new_learner_starts_on_another_node(local_cluster, tmp_path):
    """Two nodes offer learner_node; the rollout actors live on the head. The learner's node goes:
    the driver starts a new learner from the newest checkpoint (learner.max_restarts) on the other
    node, numbering its versions past every published one, and the same actors feed it."""
    c = local_cluster(head_cpus=2, head_resources={"rollout_node": 2})
    nodes = [c.add_node(1, learner_node=1), c.add_node(1, learner_node=1)]
    c.connect(log_to_driver=False)
    cfg = small_config("learner.resources={learner_node: 1}", "rollout.resources={rollout_node: 1}", "eval.num_evaluators=0", "run.max_versions=300")
    watch, lost = EventWatch(), {}

    def remove_learner_node(w: EventWatch) -> None:
        lost["node"], lost["at"] = c.node_of(w.pids["learner"]), w.version()
        _in_background(lambda: c.remove_node(lost["node"]))

    def stop_when(w: EventWatch) -> bool:
        restarts = w.of(LearnerRestarted)
        done = bool(restarts) and w.version() >= restarts[0].version + 6  # past ppo.max_policy_lag: actors use its weights
        if done:
            lost["new"] = c.node_of(w.pids["learner"])
        return done

    watch.at_version(4, remove_learner_node, needs="learner")
    watch.stop_when = stop_when
    result = run_training(cfg, tmp_path / "run", log=lambda line: None, observers=[watch])

    assert lost["node"] in nodes, watch.text()
    (restart,) = watch.of(LearnerRestarted)
    assert restart.checkpoint_version is not None and restart.version == restart.died_at + 1 and restart.died_at >= lost["at"]
    assert lost["new"] in nodes and lost["new"] is not lost["node"]  # the other learner node
    versions = [e.version for e in watch.of(Progress)]
    assert versions == sorted(versions), "learner versions went back"
    assert result.summary["learner_restarts"] == 1 and result.summary["actor_restarts"] == 0  # the actors kept playing
    assert result.learner_version >= restart.version + 6 and result.learner_version == result.summary["checkpoint_version"]
