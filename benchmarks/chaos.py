"""Chaos benchmark: a real run in which something is killed every --every seconds, against an
undisturbed run of the same length.

    python benchmarks/chaos.py --baseline                        # 20 + 20 minutes, connect four
    python benchmarks/chaos.py --local-cluster --baseline        # the same on a 5-node Ray on this machine
    python benchmarks/chaos.py --minutes 3 --every 30 --config configs/tictactoe_smoke.yaml   # a smoke check
    python benchmarks/chaos.py --local-cluster --kinds node --minutes 2 --every 30 --config configs/tictactoe_smoke.yaml

Every --every seconds (the first once every rollout actor has started, none in the last half
period, so the last one's recovery is seen) the next of these (--kinds, all by default) is killed:
  actor       a rollout actor's process (SIGKILL), actor 0, 1, ... in turn; Ray restarts it
  evaluator   an evaluator's process (SIGKILL); the driver starts a replacement
  learner     the learner's process (SIGKILL); the driver starts a new one from the newest checkpoint
  redis       the run's redis-server (started by this script, append-only): stopped, down for
              --redis-down-s, then started again on the same port and data directory
  node        with --local-cluster, a worker node (its raylet and every worker on it), the learner's
              node and the rollout nodes in turn; an identical node joins --node-down-s later.
              Without --local-cluster there is no node to lose but the driver's, and nodes are skipped.
  poison      not a kill: hostile input (benchmarks/chaos_poison.py): two game results out of range
              pushed into the game queue, two malformed segments (an action past the last, a NaN
              reward) sent to the learner; the run must refuse and count them (bad_games,
              corrupt_payloads) and go on
  driver      not a kill: the same run started again (`selfplay train --resume auto`, a process of its
              own) while it runs; it must be refused (the run's lease in Redis) and the run go on

It reports, for each run:
  games lost    every game id whose push Redis acknowledged (each process of the run appends those
                ids to a file of its own, right after the push returns: a Ray worker setup hook
                wraps LeagueStore.push_games) that the league did not record (the driver notes every
                id LeagueState.record counts); also games_total as the league in Redis has it.
                Must be 0. Games a process had finished but not yet pushed when it was killed were
                never reported, and are not counted as lost (nor as reported).
  versions      the published version (ParamStore.latest_version), sampled every 0.5 s from Redis,
                and the driver's progress versions: neither may ever decrease.
  restarts      kills made and recoveries seen, per component.
  poison        bad game results injected and refused, malformed segments sent and dropped, and
                the learner versions made after the first injection (the run went on).
  strength      the run's own final matches: latest (greedy) against the tactical bot (the strongest
                scripted reference of the game when it has no tactical one), score and 95% CI.
Restart budgets (rollout.max_restarts, learner.max_restarts) are raised to 1000: a 20-minute chaos run
kills more often than they allow, and a budget is a policy, not what is measured here.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ray  # noqa: E402

from benchmarks.chaos_parts import KINDS, Chaos, Recorded, VersionSampler, audited_ids, install_audit, strength, table  # noqa: E402
from cluster.config import load_config  # noqa: E402
from cluster.stores.connection import connect  # noqa: E402
from cluster.stores.embedded_redis import EmbeddedRedis  # noqa: E402
from cluster.stores.keys import RunKeys  # noqa: E402
from cluster.stores.league_store import LeagueStore  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=20.0, help="length of each run")
    ap.add_argument("--every", type=float, default=60.0, help="seconds between kills")
    ap.add_argument("--config", default="configs/connect_four.yaml")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (repeatable)")
    ap.add_argument("--baseline", action="store_true", help="then an undisturbed run of the same length")
    ap.add_argument("--local-cluster", action="store_true", help="a multi-node Ray on this machine, so nodes can be lost too")
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"what is killed, in this order, in turn (default {','.join(KINDS)})")
    ap.add_argument("--redis-down-s", type=float, default=5.0, help="how long redis-server stays down")
    ap.add_argument("--node-down-s", type=float, default=0.0, help="how long a lost node stays away (default: --every / 2)")
    ap.add_argument("--out", default="", help="directory for the runs (default: a new temporary one)")
    return ap.parse_args(argv)


def start_ray(cfg, audit_dir: Path, local_cluster: bool):
    """A private Ray (or a local multi-node one) whose every worker runs the game-id audit hook."""
    os.environ["CHAOS_AUDIT_DIR"] = str(audit_dir)  # inherited by raylets and their workers
    # The hook is pickled by reference (benchmarks.chaos_parts.install_audit): workers must be able
    # to import it, from a checkout that is not installed.
    root = str(Path(__file__).resolve().parents[1])
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    env_vars = {"CHAOS_AUDIT_DIR": str(audit_dir), "PYTHONPATH": os.environ["PYTHONPATH"]}
    runtime_env = {"worker_process_setup_hook": install_audit, "env_vars": env_vars}
    if not local_cluster:
        needed = cfg.learner.num_cpus + cfg.rollout.num_actors * cfg.rollout.actor_num_cpus + cfg.eval.num_evaluators * cfg.eval.num_cpus + 1
        ray.init(address="local", num_cpus=max(math.ceil(needed), os.cpu_count() or 1), include_dashboard=False,
                 log_to_driver=False, runtime_env=runtime_env)
        return None
    from cluster.remote.local_cluster import LocalCluster

    c = LocalCluster(head_cpus=max(1, math.ceil(cfg.eval.num_evaluators * cfg.eval.num_cpus)), head_resources={"head_node": 1})
    per_node = math.ceil(cfg.rollout.num_actors / 2)
    for _ in range(2):  # the learner's node and a spare one
        c.add_node(math.ceil(cfg.learner.num_cpus), learner_node=1)
    for _ in range(2):
        c.add_node(math.ceil(per_node * cfg.rollout.actor_num_cpus), rollout_node=per_node)
    c.connect(log_to_driver=False, runtime_env=runtime_env)
    return c


def run_config(args, redis_url: str, run_name: str, local_cluster: bool):
    extra = [
        f"run.max_seconds={args.minutes * 60}", "run.total_env_steps=1000000000000", f"redis.url={redis_url}", f"run.run_id={run_name}",
        "rollout.max_restarts=1000", "learner.max_restarts=1000",
    ]
    if local_cluster:
        extra += ["learner.resources={learner_node: 1}", "rollout.resources={rollout_node: 1}", "eval.resources={head_node: 0.01}"]
    return load_config(args.config, [*args.set, *extra])


def one_run(args, name: str, out: Path, server: EmbeddedRedis, cluster, chaos: bool) -> dict:
    from cluster.run.trainer import run_training

    cfg = run_config(args, server.url, name, cluster is not None)
    recorded = Recorded()
    log_path = out / f"{name}.log"
    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(line)
        with log_path.open("a") as f:
            f.write(line + "\n")
        print(f"[{name}] {line}", flush=True)

    monkey = Chaos(args, cfg, server, cluster, log, enabled=chaos)
    monkey.run_dir = out / name
    sampler = VersionSampler(connect(server.url), RunKeys(cfg.redis.key_prefix, name))
    sampler.start()
    t0 = time.monotonic()
    with recorded.installed():
        result = run_training(cfg, out / name, log=log, observers=[monkey])
    sampler.stop()
    monkey.finish()
    league = LeagueStore(connect(server.url), RunKeys(cfg.redis.key_prefix, name)).load()
    reported = audited_ids(Path(os.environ["CHAOS_AUDIT_DIR"]), name)
    return {
        "name": name, "kinds": args.kinds, "minutes": (time.monotonic() - t0) / 60, "result": result, "monkey": monkey, "lines": lines,
        "reported": reported, "recorded": recorded.ids, "games_total": league.games_total if league else 0,
        "versions": sampler.versions, "progress_versions": monkey.progress_versions, "strength": strength(result),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    args.kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    if not args.kinds or set(args.kinds) - set(KINDS):
        raise SystemExit(f"--kinds: choose among {', '.join(KINDS)}; got {','.join(args.kinds)}")
    args.node_down_s = args.node_down_s or args.every / 2
    out = Path(args.out or tempfile.mkdtemp(prefix="chaos-"))
    out.mkdir(parents=True, exist_ok=True)
    audit_dir = out / "audit"
    audit_dir.mkdir(exist_ok=True)
    cfg = run_config(args, "redis://unused", "probe", args.local_cluster)
    print(f"chaos benchmark: {args.config}, {args.minutes:g} min per run, a kill every {args.every:g} s; runs in {out}", flush=True)
    server = EmbeddedRedis(out / "redis").start()
    cluster = None
    try:
        cluster = start_ray(cfg, audit_dir, args.local_cluster)
        install_audit()  # the driver's own pushes (final matches) too
        runs = [one_run(args, "chaos", out, server, cluster, chaos=True)]
        if args.baseline:
            runs.append(one_run(args, "baseline", out, server, cluster, chaos=False))
    finally:
        if cluster is not None:
            cluster.shutdown()
        elif ray.is_initialized():
            ray.shutdown()
        server.stop()
    text, ok = table(runs, args)
    print(text, flush=True)
    (out / "chaos.md").write_text(text)
    return 0 if ok else 1


if __name__ == "__main__":
    threading.excepthook = lambda a: print(f"chaos: thread failed: {a.exc_type.__name__}: {a.exc_value}", flush=True)
    sys.exit(main())
