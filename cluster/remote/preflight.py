"""Checks run right after joining a Ray cluster, before anything is written or scheduled.

Without them a run that asks for more than the cluster has does not fail: Ray keeps the
learner or the rollout actors pending forever, and the job sits in RUNNING with nothing
happening. Likewise a Redis on loopback works on one node and silently strands every
actor placed on another.

The checks are pure functions over what `ray.cluster_resources()`, `ray.nodes()` and the
autoscaler's cluster config report, so they are unit-tested without Ray. They apply only
when joining an existing cluster: a private local Ray is started with exactly the CPUs and
GPUs the config asks for.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from cluster.config import Config, ConfigError
from cluster.stores.connection import redact


class PreflightError(ConfigError):
    """The config cannot run on this cluster; the message says which keys to change.

    A ConfigError (so a ValueError) so `selfplay train` reports it as a user error.
    """


@dataclass(frozen=True)
class NodeGroup:
    """A node type the autoscaler may start: its resources per node and how many it may run."""

    name: str
    resources: Mapping[str, float]
    max_count: int
    """-1 means unlimited."""


def alive_nodes(nodes: Sequence[Mapping]) -> list[Mapping]:
    """The nodes of a `ray.nodes()` list that are alive (dead nodes stay listed for a while)."""
    return [n for n in nodes if n.get("Alive")]


def autoscaler_node_groups() -> tuple[NodeGroup, ...]:
    """Node types the connected cluster's autoscaler reports, () when it reports none.

    Needs `ray.init()` first. Uses Ray's private state API (ray is pinned to 2.60.x).
    """
    import ray._private.state  # local import: the rest of this module must not need Ray

    config = ray._private.state.state.get_cluster_config()
    if config is None:
        return ()
    return tuple(
        NodeGroup(g.name, {k: float(v) for k, v in g.resources.items()}, int(g.max_count))
        for g in config.node_group_configs
    )


def _res(node: Mapping, key: str) -> float:
    return float(node.get("Resources", {}).get(key, 0.0))


def _fmt(x: float) -> str:
    return "unlimited" if math.isinf(x) else f"{x:g}"


@dataclass(frozen=True)
class _Capacity:
    max_node_gpus: float
    max_node_cpus: float
    total_cpus: float
    learner_fits_one_node: bool
    note: str


def _capacity(cfg: Config, cluster: Mapping[str, float], nodes: Sequence[Mapping], groups: Sequence[NodeGroup]) -> _Capacity:
    shapes = [dict(n.get("Resources", {})) for n in alive_nodes(nodes)]
    shapes += [dict(g.resources) for g in groups if g.max_count != 0]
    total_cpus = float(cluster.get("CPU", 0.0))
    if groups:
        # What the autoscaler can reach, as Ray's own state API computes it.
        grown = sum(
            math.inf if g.max_count < 0 else g.max_count * float(g.resources.get("CPU", 0.0))
            for g in groups
            if float(g.resources.get("CPU", 0.0)) > 0
        )
        total_cpus = max(total_cpus, grown)
    learner_fits = any(
        float(s.get("GPU", 0.0)) >= cfg.learner.num_gpus and float(s.get("CPU", 0.0)) >= cfg.learner.num_cpus for s in shapes
    )
    note = " (counting nodes the autoscaler may add)" if groups else ""
    return _Capacity(
        max((float(s.get("GPU", 0.0)) for s in shapes), default=0.0),
        max((float(s.get("CPU", 0.0)) for s in shapes), default=0.0),
        total_cpus,
        learner_fits,
        note,
    )


def check_resources(
    cfg: Config,
    cluster: Mapping[str, float],
    nodes: Sequence[Mapping],
    node_groups: Sequence[NodeGroup] = (),
) -> None:
    """Raise PreflightError if the cluster can never schedule the learner and all rollout actors.

    `cluster` is `ray.cluster_resources()`, `nodes` is `ray.nodes()`, `node_groups` is
    `autoscaler_node_groups()`: on an autoscaling cluster the GPU node may not exist yet
    when the job starts, so node types the autoscaler can add count as capacity.
    """
    cap = _capacity(cfg, cluster, nodes, node_groups)
    lr, ro = cfg.learner, cfg.rollout
    if lr.num_gpus > cap.max_node_gpus:
        raise PreflightError(
            f"learner.num_gpus is {lr.num_gpus:g} but the largest node of this cluster has "
            f"{cap.max_node_gpus:g} GPU(s){cap.note}; the learner needs all its GPUs on one node. "
            + (f"Set learner.num_gpus to at most {cap.max_node_gpus:g}" if cap.max_node_gpus else "Set learner.num_gpus to 0 (train on CPU)")
            + f", or add a node with {lr.num_gpus:g} GPU(s)."
        )
    if not cap.learner_fits_one_node:
        raise PreflightError(
            f"no node of this cluster{cap.note} has both learner.num_gpus={lr.num_gpus:g} GPU(s) and "
            f"learner.num_cpus={lr.num_cpus:g} CPU(s) free for the learner. Lower learner.num_cpus, "
            "or add a GPU node with more CPUs."
        )
    if ro.actor_num_cpus > cap.max_node_cpus:
        raise PreflightError(
            f"rollout.actor_num_cpus is {ro.actor_num_cpus:g} but the largest node of this cluster has "
            f"{cap.max_node_cpus:g} CPU(s){cap.note}, so no rollout actor can be placed. Lower "
            "rollout.actor_num_cpus, or add larger nodes."
        )
    check_placement(cfg, nodes, node_groups)
    ev = cfg.eval
    eval_cpus = ev.num_evaluators * ev.num_cpus
    wanted = lr.num_cpus + ro.num_actors * ro.actor_num_cpus + eval_cpus
    if wanted > cap.total_cpus:
        per_actor = ro.actor_num_cpus or 1.0
        fit = max(0, int((cap.total_cpus - lr.num_cpus - eval_cpus) / per_actor))
        evals = f" + eval.num_evaluators {ev.num_evaluators} x eval.num_cpus {ev.num_cpus:g}" if eval_cpus else ""
        raise PreflightError(
            f"the run asks for {wanted:g} CPUs (learner.num_cpus {lr.num_cpus:g} + rollout.num_actors "
            f"{ro.num_actors} x rollout.actor_num_cpus {ro.actor_num_cpus:g}{evals}) but the cluster has "
            f"{_fmt(cap.total_cpus)}{cap.note}. Lower rollout.num_actors (at most {fit} fit) or "
            f"rollout.actor_num_cpus{', or eval.num_evaluators' if evals else ''}, or add nodes."
        )


def check_placement(cfg: Config, nodes: Sequence[Mapping], node_groups: Sequence[NodeGroup] = ()) -> None:
    """Raise PreflightError if a custom resource a role asks for (learner.resources,
    rollout.resources, eval.resources) is offered by no node, or by too few to place them all:
    Ray would hold those actors forever."""
    roles = (("learner", 1, cfg.learner.resources), ("rollout", cfg.rollout.num_actors, cfg.rollout.resources),
             ("eval", cfg.eval.num_evaluators, cfg.eval.resources))
    alive = alive_nodes(nodes)
    for section, count, resources in roles:
        for name, amount in resources.items():
            if count == 0:
                continue
            largest = max([_res(n, name) for n in alive] + [float(g.resources.get(name, 0.0)) for g in node_groups if g.max_count != 0], default=0.0)
            total = sum(_res(n, name) for n in alive) + sum(
                (math.inf if g.max_count < 0 else g.max_count) * float(g.resources.get(name, 0.0)) for g in node_groups if g.resources.get(name)
            )
            what = f"{section}.resources asks for {name}={amount:g}"
            if largest < amount:
                raise PreflightError(
                    f"{what} but no node of this cluster offers that much {name} ({largest:g} at most); start the nodes meant "
                    f"for it with `ray start --resources='{{\"{name}\": N}}'` (docs/cluster.md, \"Placement\"), or drop {section}.resources."
                )
            if total < count * amount:
                raise PreflightError(
                    f"{what} for each of {count} but the cluster offers {_fmt(total)} {name} in all; offer more of it, or lower {section}.resources.{name}."
                )


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: assume it resolves to a reachable address


def check_redis_for_cluster(redis_url: str, nodes: Sequence[Mapping], node_groups: Sequence[NodeGroup] = ()) -> None:
    """Raise PreflightError if nodes other than the driver's cannot reach the run's Redis.

    `redis_url` is the configured URL (redis.url, else REDIS_URL), empty when the run would
    start an embedded Redis. A cluster counts as multi-node when more than one node is alive
    or its autoscaler may add nodes.
    """
    could_run = sum(math.inf if g.max_count < 0 else g.max_count for g in node_groups)
    multi_node = len(alive_nodes(nodes)) > 1 or could_run > 1
    if not multi_node:
        return
    fix = "Set REDIS_URL (or redis.url, or --redis-url) to a Redis every node can reach; see docs/cluster.md."
    if not redis_url:
        raise PreflightError(
            "a multi-node run needs a Redis every node can reach, but no redis.url or REDIS_URL is set, so "
            f"this run would start an embedded Redis on loopback of the driver's node. {fix}"
        )
    parts = urlsplit(redis_url)
    if parts.scheme == "unix":
        raise PreflightError(f"Redis URL {redact(redis_url)} is a Unix socket, which other nodes cannot reach. {fix}")
    if parts.hostname and _is_loopback(parts.hostname):
        raise PreflightError(
            f"Redis URL {redact(redis_url)} points at loopback ({parts.hostname}), which on other nodes is "
            f"not this Redis. {fix}"
        )


Snapshot = tuple[Mapping[str, float], list[Mapping], tuple[NodeGroup, ...]]
"""(ray.cluster_resources(), alive ray.nodes(), autoscaler_node_groups()) at one moment."""


def resource_bundles(cfg: Config) -> list[dict[str, float]]:
    """What the run will ask Ray for: the learner's bundle, then one per rollout actor, then one per evaluator."""
    learner = {"CPU": cfg.learner.num_cpus, "GPU": cfg.learner.num_gpus, **cfg.learner.resources}
    actor = {"CPU": cfg.rollout.actor_num_cpus, **cfg.rollout.resources}
    evaluator = {k: v for k, v in {"CPU": cfg.eval.num_cpus, **cfg.eval.resources}.items() if v > 0}
    evaluators = [dict(evaluator) for _ in range(cfg.eval.num_evaluators) if evaluator]
    return [{k: v for k, v in learner.items() if v > 0}] + [dict(actor) for _ in range(cfg.rollout.num_actors)] + evaluators


def wait_for_resources(
    cfg: Config,
    snapshot: Callable[[], Snapshot],
    wait_s: float,
    poll_s: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """check_resources, retried for up to wait_s while an autoscaler adds nodes.

    Ray 2.60's own autoscalers (`ray up`, KubeRay) do not publish their node types to the
    GCS, so autoscaler_node_groups() is usually empty there and a GPU node with
    min_workers 0 does not exist when the job starts. wait_s > 0 gives the autoscaler
    time; wait_s = 0 fails at once (a fixed-size cluster cannot grow).
    """
    deadline = clock() + wait_s
    while True:
        cluster, nodes, groups = snapshot()
        try:
            check_resources(cfg, cluster, nodes, groups)
            return
        except PreflightError as exc:
            remaining = deadline - clock()
            if remaining <= 0:
                if wait_s > 0:
                    raise PreflightError(f"{exc} (waited {wait_s:g}s for the autoscaler to add nodes)") from None
                raise
        sleep(min(poll_s, remaining))


def check_joined_cluster(cfg: Config, redis_url: str, wait_s: float = 0.0) -> None:
    """Run every check against the cluster this process joined with `ray.init(address=...)`.

    `redis_url` is the configured one (`resolve_url(cfg.redis.url)`), empty for an embedded
    Redis. With wait_s > 0 the run's resources are requested from the autoscaler (which only
    scales on demand) and the check is retried until they appear or wait_s runs out.
    """
    import ray  # local import: the checks above must not need Ray
    from ray.autoscaler.sdk import request_resources

    def snapshot() -> Snapshot:
        return ray.cluster_resources(), alive_nodes(ray.nodes()), autoscaler_node_groups()

    if wait_s > 0:
        request_resources(bundles=resource_bundles(cfg))
    try:
        wait_for_resources(cfg, snapshot, wait_s)
    finally:
        if wait_s > 0:
            request_resources(bundles=[])  # the actors' own demand keeps the nodes from here on
    _, nodes, groups = snapshot()
    check_redis_for_cluster(redis_url, nodes, groups)
