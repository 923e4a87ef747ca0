"""Placement by custom Ray resources (learner.resources, rollout.resources, eval.resources): the
config checks, what the preflight asks the cluster for, and its refusals (no Ray needed; the
node-loss tests in tests/test_node_loss.py place actors this way on a real multi-node Ray)."""

from __future__ import annotations

import pytest

from cluster.config import ConfigError, config_from_dict, load_config
from cluster.remote.preflight import NodeGroup, PreflightError, check_placement, check_resources, resource_bundles
from test_preflight import node, totals


def placed(**sections) -> object:
    base = {"learner": {"num_cpus": 1.0}, "rollout": {"num_actors": 4, "actor_num_cpus": 1.0}, "eval": {"num_evaluators": 1}}
    for section, resources in sections.items():
        base[section] = {**base[section], "resources": resources}
    return config_from_dict(base)


def with_resources(n: dict, **resources: float) -> dict:
    n["Resources"].update(resources)
    return n


HEAD = node("10.0.0.10", 2, head=True)
LEARNER_NODE = with_resources(node("10.0.1.20", 2), learner_node=1.0)
ROLLOUT_NODES = [with_resources(node(f"10.0.2.{i}", 4), rollout_node=2.0) for i in (30, 31)]
CLUSTER = [HEAD, LEARNER_NODE, *ROLLOUT_NODES]


def test_resources_default_to_none_and_load_from_overrides():
    cfg = load_config("configs/tictactoe_smoke.yaml", ["rollout.resources={rollout_node: 1}", "learner.resources={learner_node: 0.5}"])
    assert cfg.rollout.resources == {"rollout_node": 1} and cfg.learner.resources == {"learner_node": 0.5}
    assert config_from_dict({}).eval.resources == {}


@pytest.mark.parametrize(
    "resources,message",
    [
        ({"CPU": 1}, r"rollout.resources: 'CPU' is not a custom resource name"),
        ({"rollout_node": 0}, r"rollout.resources.rollout_node: expected a number > 0, got 0"),
        ({"rollout_node": "one"}, r"rollout.resources.rollout_node: expected a number > 0"),
    ],
)
def test_bad_resources_are_refused_naming_the_key(resources, message):
    with pytest.raises(ConfigError, match=message):
        placed(rollout=resources)


def test_bundles_carry_the_custom_resources():
    bundles = resource_bundles(placed(learner={"learner_node": 1}, rollout={"rollout_node": 1}, eval={"head": 0.1}))
    assert bundles[0] == {"CPU": 1.0, "learner_node": 1}
    assert bundles[1:5] == [{"CPU": 1.0, "rollout_node": 1}] * 4
    assert bundles[5] == {"CPU": 0.25, "head": 0.1}


def test_a_cluster_that_offers_the_resources_passes():
    cfg = placed(learner={"learner_node": 1}, rollout={"rollout_node": 1})
    check_resources(cfg, totals(CLUSTER), CLUSTER)


def test_a_resource_no_node_offers_is_refused_with_the_ray_start_flag():
    with pytest.raises(PreflightError, match=r"learner.resources asks for gpu_pool=1 but no node of this cluster offers that much gpu_pool \(0 at most\); start the nodes meant for it with `ray start --resources='\{\"gpu_pool\": N\}'`"):
        check_placement(placed(learner={"gpu_pool": 1}), CLUSTER)


def test_too_little_of_a_resource_in_all_is_refused():
    # 4 actors x rollout_node 1.5 = 6, the two rollout nodes offer 2 + 2.
    with pytest.raises(PreflightError, match=r"rollout.resources asks for rollout_node=1.5 for each of 4 but the cluster offers 4 rollout_node in all"):
        check_placement(placed(rollout={"rollout_node": 1.5}), CLUSTER)


def test_a_dead_node_offers_nothing_and_an_autoscaler_group_counts():
    dead = [HEAD, node("10.0.1.20", 2, alive=False), *ROLLOUT_NODES]
    cfg = placed(learner={"learner_node": 1})
    with pytest.raises(PreflightError, match="no node of this cluster offers"):
        check_placement(cfg, dead)
    check_placement(cfg, dead, (NodeGroup("learner", {"CPU": 2.0, "learner_node": 1.0}, max_count=1),))
