"""Pieces of benchmarks/strength.py that need no training: exact tic-tac-toe losses by walking the
game tree, and the summary of a benchmark over seeds (mean, worst seed, spread per reference).

What "exact loss probability" means here (exact_tictactoe): the greedy policy is deterministic, so
walking the game tree enumerates every line of the opponent with its probability.
- Against the uniformly random player: P(loss) over random's moves, from each seat. Random gives
  every legal move a positive probability, so P(loss) = 0 says that no opponent whatsoever can beat
  the policy from that seat, and P(loss) > 0 that some line does.
- Against minimax (actors/scripted.py's tictactoe_minimax: negamax values that prefer faster wins,
  ties broken uniformly at random): P(loss) over its tie-breaks. Every tie-break has positive
  probability, so P(loss) > 0 exactly when some choice among its equally good moves reaches a loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

EXACT_GAME = "tictactoe_v3"
SEATS = (0, 1)


def exact_tictactoe(make_slot: Callable, policy) -> dict[str, dict[int, tuple[float, float, float]]]:
    """{reference: {seat: (P(win), P(draw), P(loss))}} of the greedy `policy` against random and
    minimax, by actors.evaluate.exact_outcomes (the whole tree: no sampling noise).

    `policy` needs InferencePolicy's `act(obs, mask, rng, greedy=True)` and `recurrent`."""
    from actors.evaluate import best_moves, exact_outcomes, uniform_moves
    from actors.scripted import tictactoe_move_values

    opponents = {"random": uniform_moves, "minimax": best_moves(tictactoe_move_values)}
    return {name: {seat: exact_outcomes(make_slot, policy, moves, seat) for seat in SEATS} for name, moves in opponents.items()}


def exact_losses(exact: dict[str, dict[int, tuple[float, float, float]]]) -> dict[str, list[float]]:
    """{reference: [P(loss) moving first, P(loss) moving second]}, JSON-friendly."""
    return {name: [round(by_seat[seat][2], 9) for seat in SEATS] for name, by_seat in exact.items()}


def summarize(values: Sequence[float], higher_is_better: bool = True) -> dict[str, float]:
    """Mean, worst seed, best seed, spread (best - worst) and sample standard deviation of one
    figure over seeds. `higher_is_better` says which end is the worst (scores: the lowest; loss
    probabilities: the highest)."""
    if not values:
        raise ValueError("summarize needs at least one seed's value")
    xs = [float(v) for v in values]
    mean = sum(xs) / len(xs)
    worst, best = (min(xs), max(xs)) if higher_is_better else (max(xs), min(xs))
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return {"mean": mean, "worst": worst, "best": best, "spread": abs(best - worst), "std": std}


def seed_summary(seeds: list[dict], refs: Sequence[str]) -> dict[str, dict]:
    """Per reference: the score summary over seeds, and for tic-tac-toe the loss probabilities' (by
    seat). `seeds` are strength.py's per-seed records ({"seed", "score": {ref: row}, "exact": ...})."""
    out: dict[str, dict] = {}
    for ref in refs:
        out[ref] = {"score": summarize([s["score"][ref]["score"] for s in seeds])}
        if all(s.get("exact") and ref in s["exact"] for s in seeds):
            for seat in SEATS:
                out[ref][f"exact_loss_seat{seat}"] = summarize([s["exact"][ref][seat] for s in seeds], higher_is_better=False)
    return out


def print_seed_table(seeds: list[dict], refs: Sequence[str], log: Callable[[str], None] = print, summary: bool = True) -> None:
    """One line per seed (score and losses in `games` greedy games per reference, and the exact loss
    probabilities from each seat where known), then the mean, the worst seed and the spread."""
    exact = all(s.get("exact") for s in seeds)
    head = f"{'seed':>6} {'wall s':>7} {'version':>8} " + " ".join(f"{'vs ' + r:>18}" for r in refs)
    if exact:
        head += "  " + " ".join(f"{'P(loss) ' + r + ' 1st/2nd':>28}" for r in refs)
    log(head)
    for s in seeds:
        line = f"{s['seed']:>6} {s['wall_s']:7.0f} {s['version']:8d} " + " ".join(
            f"{s['score'][r]['score']:8.3f} L{s['score'][r]['losses']:>3}/{sum(s['score'][r][k] for k in ('wins', 'draws', 'losses')):<4}" for r in refs
        )
        if exact:
            line += "  " + " ".join(f"{_pct(s['exact'][r][0]):>13} / {_pct(s['exact'][r][1]):<12}" for r in refs)
        log(line)
    if not summary:
        return
    over = seed_summary(seeds, refs)
    for what in ("mean", "worst", "spread"):
        line = f"{what:>6} {'':>7} {'':>8} " + " ".join(f"{over[r]['score'][what]:8.3f}{'':>10}" for r in refs)
        if exact:
            line += "  " + " ".join(
                f"{_pct(over[r]['exact_loss_seat0'][what]):>13} / {_pct(over[r]['exact_loss_seat1'][what]):<12}" for r in refs
            )
        log(line)
    if exact:
        never = sum(all(x == 0.0 for r in refs for x in s["exact"][r]) for s in seeds)
        log(f"seeds that never lose, from either seat, to any reference (exact): {never} of {len(seeds)}")


def _pct(p: float) -> str:
    return "0" if p == 0.0 else f"{100 * p:.3g}%"
