"""Strength over wall time: train with `selfplay train`'s own code, then score what it trained.

    python benchmarks/strength.py --config configs/connect_four.yaml --minutes 5
    python benchmarks/strength.py --config configs/tictactoe_smoke.yaml --minutes 3 --every 20
    python benchmarks/strength.py --config configs/connect_four.yaml --minutes 5 --set league.sampler=uniform
    python benchmarks/strength.py --config configs/tictactoe_smoke.yaml --seeds 5

The run is a real one (private local Ray, rollout actors, learner, evaluators, league) with
`run.max_seconds = minutes x 60`. While it trains, a thread copies the latest published weights out
of the run's Redis every `--every` seconds together with the run's env-step count: a Redis GET, so
the copies cost training nothing measurable. Only after training has stopped is each copy played,
greedily, `--games` games against every reference player of the game (random, and tactical for
connect four, minimax for tic-tac-toe), seats alternating, so scoring never competes with training
for the machine's cores. Prints the table (score = (W + D/2) / games, with its 95% interval) and
writes `strength.json` and, where matplotlib is installed (`pip install matplotlib`),
`strength.png` into the run directory (`--out`, default a new directory under runs/).

Without `--minutes` a run keeps its config's own budget (run.total_env_steps, run.max_seconds).
For tic-tac-toe the final policy's exact loss probability from each seat against random and minimax
is printed too (benchmarks/strength_parts.py says exactly what it is); for connect four, how often
the final policy takes a win in one and blocks a loss in one on its own lines and off them
(benchmarks/off_lines.py). `--seeds K` trains K runs
one after the other, run.seed = the config's run.seed + k, each in `<out>/seed<S>`, scores each
final policy and prints one line per seed, then per reference the mean, the worst seed and the
spread (best - worst); `strength.json` keeps every seed's figures and that summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.off_lines import print_table, summary_line  # noqa: E402 - needs the path above


def _copy_weights(url: str, cfg, run_id: str, every_s: float, stop: threading.Event, out: list) -> None:
    """Every every_s: (seconds since start, env steps, version, weights) of the newest published weights."""
    from cluster.stores.league_store import run_stores

    params, store = run_stores(cfg, url, run_id)
    t0 = time.monotonic()
    next_at = 0.0
    while not stop.wait(max(0.0, next_at - (time.monotonic() - t0))):
        next_at += every_s
        try:
            got = params.fetch()
            health = store.health() or {}
        except Exception:  # noqa: BLE001 - Redis not up yet or shutting down: try at the next tick
            continue
        if got is not None and (not out or out[-1][2] != got[0]):
            out.append((time.monotonic() - t0, int(health.get("env_steps", 0)), got[0], got[1]))


def _score_all(cfg, copies: list, games: int, seed: int, greedy: bool = True) -> list[dict]:
    from actors.evaluate import Agent, play_match
    from actors.games import load_game
    from actors.scripted import references_for
    from learner.model import InferencePolicy

    make_slot, spec = load_game(cfg.game.name, cfg.game.kwargs, cfg.game.native, cfg.game.sides, cfg.game.roles)
    refs = references_for(cfg.game.name)
    rows = []
    for seconds, steps, version, weights in copies:
        policy = InferencePolicy(spec.obs_shape, spec.num_actions, cfg.model, version)
        policy.load(weights, version)
        row = {"seconds": round(seconds, 1), "env_steps": steps, "version": version}
        for name, fn in refs.items():
            r = play_match(make_slot, Agent(policy=policy, greedy=greedy), Agent(scripted=fn), games, seed=seed)
            lo, hi = r.confidence_interval()
            row[name] = {"score": r.score, "ci": [lo, hi], "wins": r.wins, "draws": r.draws, "losses": r.losses}
        rows.append(row)
    return rows


def _play(args) -> str:
    return "sampled" if args.sample else "greedy"


def _print_table(rows: list[dict], refs: list[str]) -> None:
    head = f"{'seconds':>8} {'env steps':>11} {'version':>8} " + " ".join(f"{'vs ' + r:>24}" for r in refs)
    print(head)
    for row in rows:
        cells = []
        for r in refs:
            x = row[r]
            cells.append(f"{x['score']:6.3f} [{x['ci'][0]:.2f},{x['ci'][1]:.2f}] L{x['losses']:>3}")
        print(f"{row['seconds']:8.0f} {row['env_steps']:11,} {row['version']:8d} " + " ".join(f"{c:>24}" for c in cells))


def _plot(rows: list[dict], refs: list[str], path: Path, title: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, xkey, xlabel in ((axes[0], "seconds", "wall time (s)"), (axes[1], "env_steps", "env steps")):
        for r in refs:
            xs = [row[xkey] for row in rows]
            ys = [row[r]["score"] for row in rows]
            lo = [row[r]["ci"][0] for row in rows]
            hi = [row[r]["ci"][1] for row in rows]
            ax.plot(xs, ys, marker="o", label=f"vs {r}")
            ax.fill_between(xs, lo, hi, alpha=0.2)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("score (W + D/2 per game)")
    axes[0].set_ylim(0, 1.02)
    axes[1].legend(loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _train(cfg, out: Path, every_s: float) -> tuple[list, float, object]:
    """One real run (selfplay train's own code) into `out`, with its own embedded Redis; returns the
    weight copies taken every `every_s` seconds (the final weights last), the wall time and the
    run's TrainResult."""
    from cluster.run.trainer import run_training
    from cluster.stores.embedded_redis import EmbeddedRedis
    from cluster.stores.league_store import run_stores

    run_id = out.name
    copies: list = []
    stop = threading.Event()
    with EmbeddedRedis(out / "redis") as redis:
        cfg = cfg.replace("redis", url=redis.url)
        thread = threading.Thread(target=_copy_weights, args=(redis.url, cfg, run_id, every_s, stop, copies), daemon=True)
        thread.start()
        t0 = time.monotonic()
        result = run_training(cfg, out, log=lambda line: print(line, flush=True))
        wall = time.monotonic() - t0
        stop.set()
        thread.join()
        params, _ = run_stores(cfg, redis.url, run_id)
        final = params.fetch()
        if final is not None and (not copies or copies[-1][2] != final[0]):
            copies.append((wall, result.env_steps, final[0], final[1]))
    if not copies:
        raise SystemExit(f"the run in {out} published no weights: nothing to score")
    return copies, wall, result


def _exact(cfg, copy) -> dict[str, list[float]] | None:
    """Exact loss probabilities (strength_parts.exact_tictactoe) of a copy's greedy policy; None
    for games other than tic-tac-toe."""
    from actors.games import load_game
    from benchmarks.strength_parts import EXACT_GAME, exact_losses, exact_tictactoe
    from learner.model import InferencePolicy

    if cfg.game.name != EXACT_GAME:
        return None
    make_slot, spec = load_game(cfg.game.name, cfg.game.kwargs, cfg.game.native, cfg.game.sides, cfg.game.roles)
    policy = InferencePolicy(spec.obs_shape, spec.num_actions, cfg.model, copy[2])
    policy.load(copy[3], copy[2])
    return exact_losses(exact_tictactoe(make_slot, policy))


def _tactics(cfg, copy) -> dict | None:
    """Connect four: the final policy's wins and blocks in one, on its own lines and off them
    (benchmarks/off_lines.py); None for other games."""
    from actors.games import load_game
    from benchmarks.off_lines import off_line_tactics
    from learner.model import InferencePolicy

    if cfg.game.name != "connect_four_v3":
        return None
    make_slot, spec = load_game(cfg.game.name, cfg.game.kwargs, cfg.game.native, cfg.game.sides, cfg.game.roles)
    policy = InferencePolicy(spec.obs_shape, spec.num_actions, cfg.model, copy[2])
    policy.load(copy[3], copy[2])
    return off_line_tactics(make_slot, policy)


def _print_exact(exact: dict[str, list[float]]) -> None:
    for ref, (first, second) in exact.items():
        print(f"exact P(loss) vs {ref}: moving first {100 * first:.3g}%, moving second {100 * second:.3g}%")


def _over_seeds(cfg, args, out: Path) -> int:
    """--seeds K: K runs (run.seed = base + k), each final policy scored; per-seed lines and summary."""
    from actors.scripted import references_for
    from benchmarks.strength_parts import print_seed_table, seed_summary

    refs = list(references_for(cfg.game.name))
    base = cfg.run.seed
    seeds: list[dict] = []
    for k in range(args.seeds):
        seed = base + k
        run_cfg = cfg.replace("run", seed=seed)
        copies, wall, result = _train(run_cfg, out / f"seed{seed}", args.every)
        final = copies[-1]
        row = _score_all(run_cfg, [final], args.games, args.seed, not args.sample)[0]
        seeds.append({"seed": seed, "wall_s": round(wall, 1), "env_steps": result.env_steps, "version": final[2],
                      "score": {r: row[r] for r in refs}, "exact": _exact(run_cfg, final), "tactics": _tactics(run_cfg, final)})
        print(f"\nseed {seed}: {wall:.0f} s, {result.env_steps:,} env steps, learner v{result.learner_version}", flush=True)
        print_seed_table(seeds[-1:], refs, summary=False)
        if seeds[-1]["tactics"] is not None:
            print(summary_line(seeds[-1]["tactics"]), flush=True)
        # Saved after every seed: a later seed that fails (a Ray start timing out on a loaded
        # machine) leaves the finished seeds' figures on disk.
        (out / "strength.json").write_text(json.dumps(
            {"config": args.config, "overrides": args.set, "minutes": args.minutes, "seeds": seeds, "summary": seed_summary(seeds, refs)}, indent=1))
    print(f"\n{cfg.game.name}, {args.config} {' '.join(args.set)}: {args.seeds} seeds ({base}..{base + args.seeds - 1}), "
          f"final policies, {args.games} {_play(args)} games per reference, seats alternating")
    print_seed_table(seeds, refs)
    tactics = [x["tactics"] for x in seeds if x["tactics"] is not None]
    if tactics:
        worst = {k: {t: min(x[k][t]["share"] for x in tactics) for t in ("win", "block")} for k in ("own", "off")}
        print(f"worst seed, off lines: win {worst['off']['win']:.3f}, block {worst['off']['block']:.3f}; "
              f"own lines: win {worst['own']['win']:.3f}, block {worst['own']['block']:.3f}")
    print(f"written: {out / 'strength.json'}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--minutes", type=float, default=0.0, help="training wall time (run.max_seconds); default: the config's own budget")
    ap.add_argument("--seeds", type=int, default=1, help="train this many runs, run.seed = the config's + 0..K-1, and summarise over them")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="config override (repeatable)")
    ap.add_argument("--every", type=float, default=30.0, help="seconds between weight copies")
    ap.add_argument("--games", type=int, default=200, help="games per copy and reference")
    ap.add_argument("--sample", action="store_true",
                    help="the trained policy samples its moves, as in training, instead of playing its most likely one: "
                         "for games where a still-uncertain policy played greedily is one fixed action (Atari)")
    ap.add_argument("--out", default="", help="run directory (default runs/strength-<time>)")
    ap.add_argument("--seed", type=int, default=12345, help="seed of the scoring games")
    args = ap.parse_args()

    from cluster.config import load_config

    out = Path(args.out or f"runs/strength-{time.strftime('%Y%m%d-%H%M%S')}")
    if out.exists():
        raise SystemExit(f"{out} exists; choose another --out")
    budget = [f"run.max_seconds={args.minutes * 60}", "run.total_env_steps=1000000000000"] if args.minutes else []
    cfg = load_config(args.config, [*args.set, *budget])
    if args.seeds < 1:
        raise SystemExit(f"--seeds must be at least 1; got {args.seeds}")
    if args.seeds > 1:
        return _over_seeds(cfg, args, out)
    copies, wall, result = _train(cfg, out, args.every)
    from actors.scripted import references_for

    refs = list(references_for(cfg.game.name))
    print(f"\nscoring {len(copies)} copies x {len(refs)} references x {args.games} {_play(args)} games ...", flush=True)
    rows = _score_all(cfg, copies, args.games, args.seed, not args.sample)
    print(f"\n{cfg.game.name}, {args.config} {' '.join(args.set)}: {wall:.0f} s, {result.env_steps:,} env steps, "
          f"{result.summary['env_steps_per_s']:.0f} env steps/s, learner v{result.learner_version}")
    _print_table(rows, refs)
    exact = _exact(cfg, copies[-1])
    if exact is not None:
        _print_exact(exact)
    tactics = _tactics(cfg, copies[-1])
    if tactics is not None:
        print_table(tactics)
    (out / "strength.json").write_text(json.dumps(
        {"config": args.config, "overrides": args.set, "minutes": args.minutes, "rows": rows, "exact_loss": exact, "tactics": tactics}, indent=1))
    if _plot(rows, refs, out / "strength.png", f"{cfg.game.name}: {Path(args.config).name} {' '.join(args.set)}"):
        print(f"plot: {out / 'strength.png'}")
    else:
        print("no plot: pip install matplotlib")
    return 0


if __name__ == "__main__":
    sys.exit(main())
