"""Learning curve of an in-process run: how often the greedy policy loses to the random player (and,
for tic-tac-toe, to minimax).

    python benchmarks/learning_curve.py --config configs/tictactoe_learn.yaml --every 100
    python benchmarks/learning_curve.py --config configs/tictactoe_learn.yaml --set league.sampler=self_play

Trains with cluster/run/inline.py (same worker, learner, real Redis parameter store and league as a
distributed run, deterministic given the seed) and every `--every` learner versions prints the
greedy policy's loss rates against the uniformly random player, per seat. For tic-tac-toe the rates
are exact, against random and against minimax (the whole game tree is enumerated, so there is no
sampling noise); for other games they come from `--games` sampled games.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def exact_losses(make_slot, policy) -> dict[str, tuple[float, float]]:
    """Exact loss probability of the greedy policy, (moving first, moving second), against the
    uniformly random player and against minimax (uniform among its best moves)."""
    from actors.evaluate import best_moves, exact_outcomes, uniform_moves
    from actors.scripted import tictactoe_move_values

    out = {}
    for name, moves in (("random", uniform_moves), ("minimax", best_moves(tictactoe_move_values))):
        out[name] = tuple(exact_outcomes(make_slot, policy, moves, seat)[2] for seat in (0, 1))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/tictactoe_learn.yaml")
    ap.add_argument("--set", action="append", default=[], help="section.key=value override (repeatable)")
    ap.add_argument("--every", type=int, default=100, help="evaluate every N learner versions")
    ap.add_argument("--games", type=int, default=400, help="sampled games per evaluation (games other than tic-tac-toe)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from actors.evaluate import Agent, play_match
    from actors.games import load_game
    from actors.scripted import random_legal
    from cluster.config import load_config
    from cluster.run.inline import run_inline
    from cluster.stores.embedded_redis import EmbeddedRedis
    from learner.model import InferencePolicy

    cfg = load_config(args.config, args.set)
    make_slot, spec = load_game(cfg.game.name, cfg.game.kwargs, cfg.game.native, cfg.game.sides, cfg.game.roles)
    exact = cfg.game.name == "tictactoe_v3"
    t0 = time.monotonic()

    def evaluate(learner, final: bool = False) -> None:
        if learner.version % args.every and not final:
            return
        policy = InferencePolicy(spec.obs_shape, spec.num_actions, cfg.model, learner.version)
        policy.load(learner.weights(), learner.version)
        if exact:
            r = exact_losses(make_slot, policy)
            loss = sum(r["random"]) / 2
            detail = (
                f"loss as first {100 * r['random'][0]:5.2f}%  as second {100 * r['random'][1]:5.2f}%  (exact); "
                f"vs minimax: loss as first {100 * r['minimax'][0]:5.2f}%  as second {100 * r['minimax'][1]:5.2f}%"
            )
        else:
            m = play_match(make_slot, Agent(policy=policy, greedy=True), Agent(scripted=random_legal), args.games, seed=12345)
            loss = m.losses / m.games
            detail = f"W {m.wins} D {m.draws} L {m.losses} of {m.games}"
        print(f"v{learner.version:>5}  {time.monotonic() - t0:6.0f}s  loss vs random {100 * loss:5.2f}%  {detail}", flush=True)

    print(f"{cfg.game.name}: sampler {cfg.league.sampler}, {cfg.run.total_env_steps:,} env steps, seed {cfg.run.seed}", flush=True)
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp) / "redis") as redis_server:
        learner, _, steps = run_inline(cfg, redis_server.url, "learning-curve", log=lambda s: None, on_update=evaluate)
        if learner.version % args.every:
            evaluate(learner, final=True)  # the policy the run ends with, whatever --every
    print(f"done: v{learner.version}, {steps:,} env steps, {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
