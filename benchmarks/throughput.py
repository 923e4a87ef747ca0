"""Throughput benchmark: a fixed-length distributed training run, compared with plain game stepping.

    python benchmarks/throughput.py --config configs/tictactoe_smoke.yaml --steps 200000

Prints end-to-end env steps/s, learner samples/s, weight publish-to-pickup latency, staleness, and
the speed of the same game stepped with random legal moves in one plain process (and the ratio).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def raw_steps_per_s(game: str, seconds: float = 10.0) -> float:
    """Random legal moves through the same adapter, one process, no learning: the ceiling."""
    from actors.games import load_game

    make_slot, _ = load_game(game)
    slot, rng, n = make_slot(), np.random.default_rng(0), 0
    slot.reset(seed=0)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        slot.step(int(rng.choice(np.flatnonzero(slot.mask))))
        n += 1
        if slot.over:
            slot.reset(seed=n)
    return n / (time.perf_counter() - t0)


def watch_pickup(url: str, run_id: str, prefix: str, stop: threading.Event, out: list[float]) -> None:
    """Publish-to-pickup latency as an actor sees it: time from a version's publish (stamped in
    its weights' meta by the learner) to the moment a 0.2 s poller would fetch it."""
    from cluster.stores.connection import connect
    from cluster.stores.keys import RunKeys
    from cluster.stores.param_store import ParamStore
    from learner.wire import decode_weights

    store = ParamStore(connect(url), RunKeys(prefix, run_id))
    known = -1
    while not stop.is_set():
        v = store.latest_version()
        if v > known:
            raw = store.r.get(store.keys.weights(v))
            if raw is not None:
                _, _, meta = decode_weights(raw)
                if "published_at" in meta:
                    out.append(time.time() - meta["published_at"])
                known = v
        time.sleep(0.2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/tictactoe_smoke.yaml")
    ap.add_argument("--steps", type=int, default=200_000)
    ap.add_argument("--set", action="append", default=[])
    args = ap.parse_args()

    from cluster.config import load_config
    from cluster.run.trainer import run_training
    from cluster.stores.embedded_redis import EmbeddedRedis

    run_dir = Path(tempfile.mkdtemp(prefix="bench-"))
    with EmbeddedRedis(run_dir / "redis") as redis_server:
        cfg = load_config(args.config, [*args.set, f"run.total_env_steps={args.steps}", f"redis.url={redis_server.url}", "run.eval_games=20"])
        latencies: list[float] = []
        stop = threading.Event()
        watcher = threading.Thread(target=watch_pickup, args=(redis_server.url, run_dir.name, cfg.redis.key_prefix, stop, latencies), daemon=True)
        watcher.start()
        lines: list[str] = []
        t0 = time.perf_counter()
        result = run_training(cfg, run_dir, log=lambda s: (lines.append(s), print(s, file=sys.stderr)))
        wall = time.perf_counter() - t0
        stop.set()
    raw = raw_steps_per_s(cfg.game.name)
    summary = result.summary
    e2e = summary["env_steps_per_s"]
    print(f"game                         {cfg.game.name}")
    print(f"actors x envs                {cfg.rollout.num_actors} x {cfg.rollout.envs_per_actor}")
    print(f"env steps                    {result.env_steps}")
    print(f"wall time (incl. start-up)   {wall:.1f} s")
    print(f"end-to-end env steps/s       {e2e:.0f}")
    print(f"learner samples/s            {summary['learner_samples_per_s']:.0f}")
    print(f"learner versions             {result.learner_version}")
    print(f"staleness mean / max         {summary['staleness_mean']:.2f} / {summary['staleness_max']:.0f}")
    print(f"sample reuse                 {summary['sample_reuse']:.2f}  (ppo.epochs={cfg.ppo.epochs})")
    if latencies:
        print(f"publish->pickup latency      median {1000 * statistics.median(latencies):.0f} ms, max {1000 * max(latencies):.0f} ms (0.2 s polling)")
    print(f"plain random stepping        {raw:.0f} steps/s (1 process, no inference)")
    print(f"end-to-end / plain           {e2e / raw:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
