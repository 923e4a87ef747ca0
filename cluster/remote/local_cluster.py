"""A multi-node Ray on one machine, for the node-loss tests and benchmarks/chaos.py.

Each node is a raylet of its own (ray.cluster_utils.Cluster), offering CPUs and custom resources, so
a run placed by learner.resources / rollout.resources lands on chosen nodes, and a node can be taken
away (its raylet and every worker on it killed, as when a machine loses power) and added back. The
driver joins the head node, which therefore can never be removed.

Two things differ from Ray's defaults, both for the sake of the machine this runs on:
- the head declares a node dead after DEATH_PERIOD_MS x DEATH_FAILURES of failed health checks
  (about 5 s instead of 15 s), so a test does not wait on Ray's patience;
- the file through which a plain `ray.init()` finds "the latest cluster on this machine" is removed
  at once, so that no other Ray program on a shared machine joins this cluster by mistake.
"""

from __future__ import annotations

import signal

import ray
import ray._private.state
from ray._common.utils import reset_ray_address
from ray.cluster_utils import Cluster

DEATH_PERIOD_MS = 1000
DEATH_FAILURES = 5


class LocalCluster:
    def __init__(self, head_cpus: int = 1, head_resources: dict | None = None) -> None:
        self.cluster = Cluster(
            initialize_head=True,
            head_node_args=dict(
                num_cpus=head_cpus,
                resources=dict(head_resources or {}),
                include_dashboard=False,
                _system_config={"health_check_period_ms": DEATH_PERIOD_MS, "health_check_failure_threshold": DEATH_FAILURES},
            ),
        )
        reset_ray_address()
        self.resources_of: dict = {}  # node -> what it was started with, to start an identical one

    @property
    def address(self) -> str:
        return self.cluster.address

    def connect(self, **init_args) -> None:
        """Join the head node from this process (the driver's place)."""
        ray.init(address=self.address, **init_args)

    def add_node(self, cpus: int = 1, **resources: float):
        """A worker node offering `cpus` CPUs and the custom resources given; returns it once Ray lists
        it. Call it on the main thread: Ray sets a SIGTERM handler for each node it starts (put back
        here, so that a run's own handler, which writes a checkpoint, stays in place)."""
        previous = signal.getsignal(signal.SIGTERM)
        try:
            node = self.cluster.add_node(num_cpus=cpus, resources=dict(resources))
        finally:
            signal.signal(signal.SIGTERM, previous)
        self.resources_of[node] = (cpus, dict(resources))
        return node

    def remove_node(self, node) -> None:
        """Kill the node's raylet and everything on it at once (no graceful drain)."""
        self.cluster.remove_node(node, allow_graceful=False)

    def add_like(self, node):
        """A fresh node offering what `node` (removed or not) was started with."""
        cpus, resources = self.resources_of[node]
        return self.add_node(cpus, **resources)

    def workers(self) -> list:
        return list(self.cluster.worker_nodes)

    def node_of(self, pid: int):
        """The worker node an alive actor with this process id runs on (None: the head, or not found)."""
        for info in ray._private.state.actors().values():
            if info["State"] == "ALIVE" and info["Pid"] == pid:
                return next((n for n in self.cluster.worker_nodes if n.node_id == info["Address"]["NodeID"]), None)
        return None

    def alive_node_ids(self) -> set[str]:
        return {n["NodeID"] for n in ray.nodes() if n["Alive"]}

    def shutdown(self) -> None:
        if ray.is_initialized():
            ray.shutdown()
        self.cluster.shutdown()
