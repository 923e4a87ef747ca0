"""Where a connect four policy loses to the tactical bot: its one-move mistakes, counted.

    python benchmarks/tactics.py runs/<run>/final_policy.msgpack
    python benchmarks/tactics.py runs/<run>/checkpoints/ckpt-v00000300.pt --opponent lookahead --games 400

Plays the policy greedily against a scripted reference (seats alternating, seeded) and counts, over
the policy's moves: wins it had and did not take (`missed_win`), immediate wins of the opponent it
had to block and did not (`missed_block`, counted only when it had no win of its own), and moves
after which the opponent can win at once where it could not before (`gave_win`: playing under the
opponent's winning cell, or letting a new line open). `tactical` wins only through such moves (it
wins when it can, else blocks, else plays at random), so these counts say why a policy loses to it.

Then the score from each seat, and the games it lost grouped by their first 8 moves (both sides'):
`lookahead` is nearly deterministic (only mirror-image ties are random), so against it a greedy
policy replays a few lines, and its score says how it fares on those lines and nothing more.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("policy", help="a policy file (final_policy.msgpack) or a checkpoint (.pt)")
    ap.add_argument("--opponent", default="tactical", help="scripted reference: tactical, lookahead or random")
    ap.add_argument("--games", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    import torch

    from learner.export import load_policy

    torch.set_num_threads(1)
    counts, seats, lost_openings = tally(load_policy(args.policy), args.opponent, args.games, args.seed)
    print(f"{args.policy} vs {args.opponent}, {args.games} greedy games, seats alternating")
    print("  ".join(f"{k} {v}" for k, v in counts.items()))
    print("  ".join(f"{name}: W {w} D {d} L {l}, score {(w + d / 2) / max(w + d + l, 1):.3f}" for name, (w, d, l) in zip(SEAT_NAMES, seats)))
    common = "; ".join(f"{SEAT_NAMES[seat]} {' '.join(map(str, moves))} x{n}" for (seat, moves), n in lost_openings.most_common(3))
    print(f"lost games by their first {OPENING_MOVES} moves: {len(lost_openings)} distinct" + (f"; most often: {common}" if common else ""))
    return 0


SEAT_NAMES = ("as first", "as second")
OPENING_MOVES = 8


def tally(policy, opponent_name: str, games: int, seed: int):
    """(one-move mistake counts, [W, D, L] per seat, Counter of lost games by (seat, first moves))."""
    from collections import Counter

    import numpy as np

    from actors.native_games import ConnectFourSlot
    from actors.scripted import connect_four_immediate_wins, references_for

    opponent = references_for("connect_four_v3")[opponent_name]
    rng = np.random.default_rng(seed)
    counts = dict.fromkeys(("games", "won", "drawn", "lost", "moves", "missed_win", "missed_block", "gave_win"), 0)
    seats = [[0, 0, 0], [0, 0, 0]]
    lost_openings: Counter = Counter()
    for game in range(games):
        slot, seat, moves = ConnectFourSlot(), game % 2, []
        slot.reset()
        while not slot.over:
            if slot.seat != seat:
                moves.append(opponent(slot.raw_obs, slot.mask, rng))
                slot.step(moves[-1])
                continue
            wins, threats = connect_four_immediate_wins(slot.raw_obs, slot.mask)
            action = int(policy.act(slot.obs[None], slot.mask[None], rng, greedy=True)[0][0])
            counts["moves"] += 1
            counts["missed_win"] += bool(wins) and action not in wins
            counts["missed_block"] += not wins and bool(threats) and action not in threats
            moves.append(action)
            slot.step(action)
            if not slot.over:
                counts["gave_win"] += not threats and bool(connect_four_immediate_wins(slot.raw_obs, slot.mask)[0])
        score = slot.scores()[seat]
        outcome = 0 if score == 1 else 2 if score == 0 else 1  # won, drawn, lost
        seats[seat][outcome] += 1
        if outcome == 2:
            lost_openings[(seat, tuple(int(m) for m in moves[:OPENING_MOVES]))] += 1
    counts.update(games=games, **{k: a + b for k, a, b in zip(("won", "drawn", "lost"), *seats)})
    return counts, seats, lost_openings


if __name__ == "__main__":
    sys.exit(main())
