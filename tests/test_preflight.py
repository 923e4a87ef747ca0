"""Golden tests for the cluster preflight checks, on ray.nodes()-shaped dicts (no Ray needed)."""

from __future__ import annotations

import pytest

from cluster.config import Config, ConfigError, config_from_dict
from cluster.remote.preflight import NodeGroup, PreflightError, alive_nodes, check_redis_for_cluster, check_resources, resource_bundles, wait_for_resources

GiB = 1024**3


def node(ip: str, cpus: float, gpus: float = 0.0, alive: bool = True, head: bool = False) -> dict:
    """One entry of ray.nodes() as Ray 2.60 returns it (fields the checks ignore included)."""
    resources = {"CPU": cpus, "memory": 24.0 * GiB, "object_store_memory": 7.0 * GiB, f"node:{ip}": 1.0}
    if gpus:
        resources["GPU"] = gpus
        resources["accelerator_type:A10G"] = 1.0
    if head:
        resources["node:__internal_head__"] = 1.0
    return {
        "NodeID": ip.replace(".", "").ljust(56, "f"),
        "Alive": alive,
        "NodeManagerAddress": ip,
        "NodeManagerHostname": f"ip-{ip.replace('.', '-')}",
        "NodeManagerPort": 40123,
        "ObjectManagerPort": 8076,
        "ObjectStoreSocketName": "/tmp/ray/session_2025-01-01_00-00-00_000000_1/sockets/plasma_store",
        "RayletSocketName": "/tmp/ray/session_2025-01-01_00-00-00_000000_1/sockets/raylet",
        "MetricsExportPort": 61234,
        "NodeName": ip,
        "RuntimeEnvAgentPort": 52367,
        "DeathReason": 0 if alive else 2,
        "DeathReasonMessage": "" if alive else "health check failed",
        "alive": alive,
        "Resources": resources if alive else {},
        "Labels": {"ray.io/node-id": "x"},
    }


def totals(nodes: list[dict]) -> dict:
    """ray.cluster_resources(): the sum over alive nodes."""
    out: dict[str, float] = {}
    for n in alive_nodes(nodes):
        for k, v in n["Resources"].items():
            out[k] = out.get(k, 0.0) + v
    return out


def cfg(num_actors=16, actor_cpus=1.0, learner_cpus=1.0, learner_gpus=1.0, evaluators=0, eval_cpus=0.25) -> Config:
    return config_from_dict({
        "learner": {"num_gpus": learner_gpus, "num_cpus": learner_cpus},
        "rollout": {"num_actors": num_actors, "actor_num_cpus": actor_cpus},
        "eval": {"num_evaluators": evaluators, "num_cpus": eval_cpus},
    })


# The deploy/ray-cluster.yaml shape: a CPU-less head, one GPU learner node, CPU rollout nodes.
HEAD = node("10.0.0.10", 0, head=True)
GPU_NODE = node("10.0.1.20", 8, gpus=1)
CPU_NODE = node("10.0.2.30", 16)
CLUSTER = [HEAD, GPU_NODE, CPU_NODE]


def test_fitting_config_passes():
    check_resources(cfg(num_actors=16), totals(CLUSTER), CLUSTER)  # 1 + 16 = 17 <= 24 CPUs, 1 GPU on one node


def test_preflight_error_is_a_config_error():
    assert issubclass(PreflightError, ConfigError) and issubclass(PreflightError, ValueError)


def test_learner_gpus_must_be_on_one_node():
    two_single_gpu = [HEAD, node("10.0.1.20", 8, gpus=1), node("10.0.1.21", 8, gpus=1)]
    assert totals(two_single_gpu)["GPU"] == 2.0
    with pytest.raises(PreflightError) as err:
        check_resources(cfg(num_actors=2, learner_gpus=2), totals(two_single_gpu), two_single_gpu)
    assert str(err.value) == (
        "learner.num_gpus is 2 but the largest node of this cluster has 1 GPU(s); the learner needs all its "
        "GPUs on one node. Set learner.num_gpus to at most 1, or add a node with 2 GPU(s)."
    )


def test_gpu_request_on_cpu_only_cluster():
    cpu_only = [node("127.0.0.1", 2, head=True)]
    with pytest.raises(PreflightError, match=r"learner.num_gpus is 1 but the largest node of this cluster has 0 GPU"):
        check_resources(cfg(num_actors=1, actor_cpus=0.5, learner_cpus=0.5), totals(cpu_only), cpu_only)


def test_dead_gpu_node_does_not_count():
    dead_gpu = dict(node("10.0.1.20", 8, gpus=1, alive=False), Resources={"CPU": 8.0, "GPU": 1.0})
    nodes = [HEAD, dead_gpu, CPU_NODE]
    with pytest.raises(PreflightError, match="has 0 GPU"):
        check_resources(cfg(num_actors=2), totals(nodes), nodes)


def test_learner_cpus_and_gpus_on_the_same_node():
    nodes = [HEAD, node("10.0.1.20", 2, gpus=1), node("10.0.2.30", 16)]
    with pytest.raises(PreflightError, match=r"no node of this cluster has both learner.num_gpus=1 GPU\(s\) and learner.num_cpus=4"):
        check_resources(cfg(num_actors=2, learner_cpus=4), totals(nodes), nodes)


def test_total_cpus():
    with pytest.raises(PreflightError) as err:
        check_resources(cfg(num_actors=32), totals(CLUSTER), CLUSTER)  # 1 + 32 > 24
    assert str(err.value) == (
        "the run asks for 33 CPUs (learner.num_cpus 1 + rollout.num_actors 32 x rollout.actor_num_cpus 1) but the "
        "cluster has 24. Lower rollout.num_actors (at most 23 fit) or rollout.actor_num_cpus, or add nodes."
    )


def test_total_cpus_exactly_full_passes():
    check_resources(cfg(num_actors=23), totals(CLUSTER), CLUSTER)  # 1 + 23 == 24


def test_evaluators_count_towards_the_cpus():
    check_resources(cfg(num_actors=22, evaluators=4), totals(CLUSTER), CLUSTER)  # 1 + 22 + 4 x 0.25 == 24
    with pytest.raises(PreflightError) as err:
        check_resources(cfg(num_actors=22, evaluators=2, eval_cpus=1), totals(CLUSTER), CLUSTER)
    assert str(err.value) == (
        "the run asks for 25 CPUs (learner.num_cpus 1 + rollout.num_actors 22 x rollout.actor_num_cpus 1 + "
        "eval.num_evaluators 2 x eval.num_cpus 1) but the cluster has 24. Lower rollout.num_actors (at most 21 fit) "
        "or rollout.actor_num_cpus, or eval.num_evaluators, or add nodes."
    )
    assert resource_bundles(cfg(num_actors=1, learner_gpus=0, evaluators=2, eval_cpus=0.5))[-2:] == [{"CPU": 0.5}, {"CPU": 0.5}]


def test_actor_larger_than_any_node():
    with pytest.raises(PreflightError) as err:
        check_resources(cfg(num_actors=1, actor_cpus=20), totals(CLUSTER), CLUSTER)  # 21 <= 24 total, but no node has 20
    assert str(err.value) == (
        "rollout.actor_num_cpus is 20 but the largest node of this cluster has 16 CPU(s), so no rollout actor can be "
        "placed. Lower rollout.actor_num_cpus, or add larger nodes."
    )


def test_cpu_only_run_on_cpu_only_cluster_passes():
    local = [node("127.0.0.1", 2, head=True)]
    check_resources(cfg(num_actors=2, actor_cpus=0.5, learner_cpus=0.5, learner_gpus=0), totals(local), local)


# deploy/ray-cluster.yaml at job start: learner_gpu has min_workers 0, rollout_cpu min 1 max 8.
GROUPS = (
    NodeGroup("head", {"CPU": 0.0}, 1),
    NodeGroup("learner_gpu", {"CPU": 8.0, "GPU": 1.0}, 1),
    NodeGroup("rollout_cpu", {"CPU": 16.0}, 8),
)


def test_autoscaler_node_types_count_as_capacity():
    at_start = [HEAD, CPU_NODE]  # no GPU node yet, 16 CPUs
    check_resources(cfg(num_actors=64), totals(at_start), at_start, GROUPS)  # 65 <= 8 + 128


def test_autoscaler_limits_still_apply():
    at_start = [HEAD, CPU_NODE]
    with pytest.raises(PreflightError) as err:
        check_resources(cfg(num_actors=200), totals(at_start), at_start, GROUPS)
    assert str(err.value) == (
        "the run asks for 201 CPUs (learner.num_cpus 1 + rollout.num_actors 200 x rollout.actor_num_cpus 1) but the "
        "cluster has 136 (counting nodes the autoscaler may add). Lower rollout.num_actors (at most 135 fit) or "
        "rollout.actor_num_cpus, or add nodes."
    )
    with pytest.raises(PreflightError, match=r"largest node of this cluster has 1 GPU\(s\) \(counting nodes the autoscaler may add\)"):
        check_resources(cfg(num_actors=2, learner_gpus=2), totals(at_start), at_start, GROUPS)


def test_unlimited_node_group():
    groups = (NodeGroup("cpu", {"CPU": 4.0}, -1),)
    local = [node("10.0.0.10", 2, gpus=1, head=True)]
    check_resources(cfg(num_actors=1000), totals(local), local, groups)


# --- Redis reachability ------------------------------------------------------------------------

MULTI = [HEAD, GPU_NODE, CPU_NODE]
SINGLE = [node("127.0.0.1", 2, head=True)]


def test_single_node_may_use_embedded_or_loopback_redis():
    check_redis_for_cluster("", SINGLE)
    check_redis_for_cluster("redis://:pw@127.0.0.1:6379/0", SINGLE)
    check_redis_for_cluster("redis://:pw@127.0.0.1:6379/0", SINGLE + [node("10.0.9.9", 4, alive=False)])


def test_multi_node_needs_a_redis_url():
    with pytest.raises(PreflightError) as err:
        check_redis_for_cluster("", MULTI)
    assert str(err.value) == (
        "a multi-node run needs a Redis every node can reach, but no redis.url or REDIS_URL is set, so this run "
        "would start an embedded Redis on loopback of the driver's node. Set REDIS_URL (or redis.url, or "
        "--redis-url) to a Redis every node can reach; see docs/cluster.md."
    )


@pytest.mark.parametrize(
    "url",
    [
        "redis://:secret@127.0.0.1:6380/0",
        "redis://:secret@127.1.2.3:6380/0",
        "redis://:secret@localhost:6380/0",
        "rediss://:secret@LOCALHOST:6380/0",
        "redis://:secret@[::1]:6380/0",
        "unix:///tmp/redis.sock",
    ],
)
def test_multi_node_rejects_loopback_redis(url):
    with pytest.raises(PreflightError) as err:
        check_redis_for_cluster(url, MULTI)
    assert "other nodes" in str(err.value) and "docs/cluster.md" in str(err.value)
    assert "secret" not in str(err.value)  # the password is redacted


@pytest.mark.parametrize("url", ["redis://:pw@10.0.0.10:6380/0", "redis://:pw@selfplay-redis:6379/0", "rediss://:pw@[fd00::5]:6380/0"])
def test_multi_node_accepts_reachable_redis(url):
    check_redis_for_cluster(url, MULTI)


def test_autoscaling_cluster_counts_as_multi_node():
    one_now = [HEAD]
    with pytest.raises(PreflightError, match="multi-node run needs a Redis"):
        check_redis_for_cluster("", one_now, GROUPS)
    check_redis_for_cluster("", one_now, (NodeGroup("head", {"CPU": 2.0}, 1),))


# --- waiting for an autoscaler ------------------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


def test_wait_for_resources_returns_once_the_gpu_node_joins():
    t = FakeTime()
    before, after = [HEAD, CPU_NODE], [HEAD, CPU_NODE, GPU_NODE]
    snapshots = iter([(totals(before), before, ())] * 3 + [(totals(after), after, ())])
    wait_for_resources(cfg(num_actors=8), lambda: next(snapshots), wait_s=60, poll_s=5, clock=t.clock, sleep=t.sleep)
    assert t.sleeps == [5, 5, 5]


def test_wait_for_resources_gives_up_with_the_check_message():
    t = FakeTime()
    before = [HEAD, CPU_NODE]
    with pytest.raises(PreflightError) as err:
        wait_for_resources(cfg(num_actors=8), lambda: (totals(before), before, ()), wait_s=12, poll_s=5, clock=t.clock, sleep=t.sleep)
    assert t.sleeps == [5, 5, 2]
    assert str(err.value).startswith("learner.num_gpus is 1 but the largest node of this cluster has 0 GPU(s)")
    assert str(err.value).endswith("(waited 12s for the autoscaler to add nodes)")


def test_wait_zero_fails_at_once():
    t = FakeTime()
    with pytest.raises(PreflightError, match=r"Set learner.num_gpus to 0 \(train on CPU\), or add a node with 1 GPU\(s\)\.$"):
        wait_for_resources(cfg(num_actors=2), lambda: (totals(SINGLE), SINGLE, ()), wait_s=0, clock=t.clock, sleep=t.sleep)
    assert t.sleeps == []


def test_resource_bundles():
    assert resource_bundles(cfg(num_actors=2, actor_cpus=0.5, learner_cpus=2)) == [{"CPU": 2.0, "GPU": 1.0}, {"CPU": 0.5}, {"CPU": 0.5}]
    assert resource_bundles(cfg(num_actors=1, learner_gpus=0))[0] == {"CPU": 1.0}
