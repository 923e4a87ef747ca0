"""Soak benchmark: a long real run, sampled for memory and speed while its league grows.

    python benchmarks/soak.py --minutes 32                     # connect four, a snapshot every version
    python benchmarks/soak.py --minutes 10 --set league.snapshot_every=10

Starts `selfplay train` (the README's connect four config, `league.snapshot_every=1` by default, so
the league grows by one snapshot per learner version: ~2,000 in 30 minutes on 2 cores) with an
embedded Redis in a temporary run directory, and every --every seconds records:

  env steps, learner version, snapshots      from the run's health document and league in Redis
  resident memory (RSS)                      of the driver, the learner, the rollout actors and the
                                             evaluators (the run's own process tree, read from /proc)
  Redis                                      used_memory, split into snapshot weights (kept by design:
                                             every snapshot is a league player) and everything else

and prints, at the end, memory after warm-up against memory at the end (flat means the ratio stays
near 1; snapshot weights grow with the league by design and are shown apart), and the env steps/s
of the run's last minute against its rate 30-90 s in, when the league was small.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cluster.stores.connection import connect  # noqa: E402
from cluster.stores.embedded_redis import live_server_url  # noqa: E402
from cluster.stores.keys import RunKeys  # noqa: E402
from cluster.stores.league_store import LeagueStore  # noqa: E402

ROLES = {"ray::LearnerService": "learner", "ray::RolloutService": "rollout", "ray::EvaluatorService": "evaluator"}


def _tree(root: int) -> list[int]:
    """root and every process below it, from /proc (Ray's workers hang under the driver's raylet)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _cmd(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def memory_by_role(driver: int) -> dict[str, float]:
    out = {"driver": _rss_mb(driver), "learner": 0.0, "rollout": 0.0, "evaluator": 0.0, "redis-server": 0.0}
    for pid in _tree(driver)[1:]:
        cmd = _cmd(pid)
        role = next((r for prefix, r in ROLES.items() if cmd.startswith(prefix)), None)
        if role is None and "redis-server" in cmd:
            role = "redis-server"
        if role:
            out[role] += _rss_mb(pid)
    return out


def redis_split(client, keys: RunKeys) -> tuple[float, float, int]:
    """(used MB, MB of snapshot weights, snapshots): weights per snapshot times their number."""
    used = client.info("memory")["used_memory"] / 1e6
    snaps = list(client.scan_iter(match=keys.snapshot("*"), count=1000))
    per = (client.memory_usage(snaps[0]) or 0) / 1e6 if snaps else 0.0
    return used, per * len(snaps), len(snaps)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/connect_four.yaml")
    ap.add_argument("--minutes", type=float, default=32.0)
    ap.add_argument("--every", type=float, default=15.0, help="seconds between samples")
    ap.add_argument("--warmup", type=float, default=5.0, help="minutes before memory counts as warmed up")
    ap.add_argument("--set", action="append", default=[], help="config overrides (default: league.snapshot_every=1)")
    args = ap.parse_args()
    overrides = args.set or ["league.snapshot_every=1"]
    run_dir = Path(tempfile.mkdtemp(prefix="soak-")) / "run"
    cmd = [sys.executable, "-m", "cluster.run.cli", "train", "--config", args.config, "--run-dir", str(run_dir),
           "--set", f"run.max_seconds={int(args.minutes * 60)}", "--set", "run.total_env_steps=1000000000000"]
    for o in overrides:
        cmd += ["--set", o]
    print("$ " + " ".join(cmd), flush=True)
    log = open(run_dir.parent / "train.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    samples: list[dict] = []
    try:
        url = None
        while url is None and proc.poll() is None:
            time.sleep(1.0)
            url = live_server_url(run_dir / "redis") if (run_dir / "redis").is_dir() else None
        client = connect(url)
        keys = RunKeys("selfplay", run_dir.name)
        store = LeagueStore(client, keys)
        t0 = time.monotonic()
        budget_s = args.minutes * 60 - 10  # past it the run plays its final matches: not training any more
        print(f"{'min':>5} {'env steps':>11} {'ver':>5} {'snaps':>5} {'driver':>7} {'learner':>7} {'rollout':>7} {'eval':>6} "
              f"{'redis':>7} {'r-snaps':>7} {'r-rest':>7}  (MB)", flush=True)
        while proc.poll() is None and time.monotonic() - t0 < budget_s:
            time.sleep(args.every)
            try:
                health = store.health() or {}
                mem = memory_by_role(proc.pid)
                used, snap_mb, snaps = redis_split(client, keys)
            except redis.ConnectionError:
                break  # the run ended (and its embedded Redis with it) between two samples
            s = {"t": time.monotonic() - t0, "env_steps": health.get("env_steps", 0), "version": health.get("learner_version", 0),
                 "snapshots": snaps, **mem, "redis_used": used, "redis_snaps": snap_mb, "redis_rest": used - snap_mb}
            samples.append(s)
            print(f"{s['t'] / 60:5.1f} {s['env_steps']:11,} {s['version']:5} {snaps:5} {mem['driver']:7.0f} {mem['learner']:7.0f} "
                  f"{mem['rollout']:7.0f} {mem['evaluator']:6.0f} {used:7.1f} {snap_mb:7.1f} {used - snap_mb:7.1f}", flush=True)
        print("training time is up: the run plays its final matches (not sampled)", flush=True)
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGINT)
    finally:
        proc.wait()
        log.close()
    report(samples, args.warmup * 60)
    print(f"run log: {run_dir.parent / 'train.log'}")
    return 0


def _at(samples: list[dict], t: float) -> dict:
    return min(samples, key=lambda s: abs(s["t"] - t))


def report(samples: list[dict], warmup_s: float) -> None:
    if len(samples) < 4:
        print("too few samples for a report")
        return
    warm, end = _at(samples, warmup_s), samples[-1]
    print(f"\nmemory after warm-up ({warm['t'] / 60:.1f} min, {warm['snapshots']} snapshots) -> end ({end['t'] / 60:.1f} min, {end['snapshots']} snapshots):")
    for key in ("driver", "learner", "rollout", "evaluator", "redis_rest", "redis_snaps"):
        ratio = end[key] / warm[key] if warm[key] else float("nan")
        print(f"  {key:12} {warm[key]:8.1f} MB -> {end[key]:8.1f} MB   x{ratio:.2f}")
    early_a, early_b = _at(samples, 30), _at(samples, 90)
    last_b = samples[-1]
    last_a = _at(samples, last_b["t"] - 60)
    early = (early_b["env_steps"] - early_a["env_steps"]) / max(early_b["t"] - early_a["t"], 1e-9)
    late = (last_b["env_steps"] - last_a["env_steps"]) / max(last_b["t"] - last_a["t"], 1e-9)
    print(f"env steps/s at {early_a['t']:.0f}-{early_b['t']:.0f} s ({early_a['snapshots']}-{early_b['snapshots']} snapshots): {early:,.0f}")
    print(f"env steps/s over the last minute ({last_a['snapshots']}-{last_b['snapshots']} snapshots): {late:,.0f}  (x{late / max(early, 1e-9):.2f})")


if __name__ == "__main__":
    sys.exit(main())
