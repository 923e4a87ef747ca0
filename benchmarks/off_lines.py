"""Strength off a policy's own lines (connect four): does it take a win in one, and block a loss in
one, as often in positions its games never reach as in its own?

    python benchmarks/off_lines.py --policy runs/RUN/final_policy.pt
    python benchmarks/off_lines.py --policy runs/RUN/final_policy.pt --positions 4000 --seed 1

A policy can beat a depth-4 search from the empty board and still miss a win in one elsewhere: that
policy is narrow. Two sets of positions, each a mix of game lengths:

- own lines: positions of games the policy plays against itself, sampling its moves as in training;
- off lines: positions after 4 to 30 uniformly random moves (odd structures no sensible game reaches).

In each, two tactical tests with one right answer set: "win" positions, where the player to move
can complete four (any winning column counts), and "block" positions, where it cannot but the
opponent threatens exactly one winning column (playing it is the only move that does not lose at
once). The policy plays its greedy move. Prints, per set and test, how many positions and the share
played right, with its 95% interval; the last line is `off lines: win X, block Y; own lines: win
X, block Y`. benchmarks/strength.py prints the same line for the final policy of a connect four run.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _tactics(raw_obs: np.ndarray, mask: np.ndarray) -> tuple[str, set[int]] | None:
    """("win", the winning columns) or ("block", {the one column to block}) or None (neither test)."""
    from actors.scripted import _winning_columns

    legal = np.flatnonzero(mask)
    mine, theirs = raw_obs[..., 0].astype(bool), raw_obs[..., 1].astype(bool)
    wins = _winning_columns(mine, mine | theirs, legal)
    if wins:
        return "win", set(wins)
    threats = _winning_columns(theirs, mine | theirs, legal)
    if len(threats) == 1:
        return "block", set(threats)
    return None


def _own_line_positions(make_slot, policy, n_games: int, rng: np.random.Generator):
    """(network input, mask, raw observation) of every position of n_games sampled self-play
    games, played side by side (one batched forward pass per move)."""
    out = []
    slots = [make_slot() for _ in range(n_games)]
    for slot in slots:
        slot.reset(seed=int(rng.integers(2**31)))
    live = slots
    while live:
        for slot in live:
            out.append((slot.obs.copy(), slot.mask.copy(), slot.raw_obs.copy()))
        actions, _, _ = policy.act(np.stack([s.obs for s in live]), np.stack([s.mask for s in live]), rng)
        for slot, a in zip(live, actions):
            slot.step(int(a))
        live = [s for s in live if not s.over]
    return out


def _off_line_positions(make_slot, n: int, rng: np.random.Generator, lo: int = 4, hi: int = 30):
    out = []
    while len(out) < n:
        slot = make_slot()
        slot.reset(seed=int(rng.integers(2**31)))
        for _ in range(int(rng.integers(lo, hi + 1))):
            slot.step(int(rng.choice(np.flatnonzero(slot.mask))))
            if slot.over:
                break
        if not slot.over:
            out.append((slot.obs.copy(), slot.mask.copy(), slot.raw_obs.copy()))
    return out


def _interval(right: int, n: int) -> tuple[float, float]:
    """Wilson 95% interval of right / n."""
    if n == 0:
        return 0.0, 1.0
    z, p = 1.96, right / n
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, mid - half), min(1.0, mid + half)


def _score(policy, positions, rng) -> dict[str, dict]:
    tests = [(p, _tactics(p[2], p[1])) for p in positions]
    out = {}
    for name in ("win", "block"):
        chosen = [p for p, t in tests if t is not None and t[0] == name]
        answers = [t[1] for _, t in tests if t is not None and t[0] == name]
        if not chosen:
            out[name] = {"n": 0, "right": 0, "share": float("nan"), "ci": [0.0, 1.0]}
            continue
        actions, _, _ = policy.act(np.stack([p[0] for p in chosen]), np.stack([p[1] for p in chosen]), rng, greedy=True)
        right = sum(int(a) in ans for a, ans in zip(actions, answers))
        out[name] = {"n": len(chosen), "right": right, "share": right / len(chosen), "ci": list(_interval(right, len(chosen)))}
    return out


def off_line_tactics(make_slot, policy, positions: int = 3000, seed: int = 0) -> dict[str, dict[str, dict]]:
    """{"own": {"win": ..., "block": ...}, "off": {...}}: each {n, right, share, ci}. Own-line
    positions come from self-play games until there are about `positions` of them."""
    rng = np.random.default_rng(seed)
    own = _own_line_positions(make_slot, policy, max(1, positions // 30), rng)
    off = _off_line_positions(make_slot, positions, rng)
    return {"own": _score(policy, own, rng), "off": _score(policy, off, rng)}


def summary_line(result: dict[str, dict[str, dict]]) -> str:
    f = {k: {t: result[k][t]["share"] for t in ("win", "block")} for k in ("own", "off")}
    return (f"off lines: win {f['off']['win']:.3f}, block {f['off']['block']:.3f}; "
            f"own lines: win {f['own']['win']:.3f}, block {f['own']['block']:.3f}")


def print_table(result: dict[str, dict[str, dict]]) -> None:
    print(f"{'positions':>10} {'test':>6} {'n':>6} {'played right':>13} {'95% interval':>15}")
    for key, label in (("own", "own lines"), ("off", "off lines")):
        for test in ("win", "block"):
            r = result[key][test]
            print(f"{label:>10} {test:>6} {r['n']:6d} {r['share']:13.3f}   [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]")
    print(summary_line(result))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", required=True, help="a policy file (a run's final_policy.pt, or `selfplay export`'s)")
    ap.add_argument("--positions", type=int, default=3000, help="positions per set (default 3000)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from actors.games import load_game
    from learner.export import load_policy

    policy = load_policy(args.policy)
    game = policy.meta.get("game", "")
    if game != "connect_four_v3":
        print(f"error: {args.policy} plays {game or 'an unnamed game'}; this benchmark tests connect_four_v3 policies", file=sys.stderr)
        return 2
    make_slot, _ = load_game(game)
    print_table(off_line_tactics(make_slot, policy, args.positions, args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
