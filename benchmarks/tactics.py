"""Where a connect four policy loses to the tactical bot: its one-move mistakes, counted.

    python benchmarks/tactics.py runs/<run>/final_policy.msgpack
    python benchmarks/tactics.py runs/<run>/checkpoints/ckpt-v00000300.pt --opponent lookahead --games 400

Plays the policy greedily against a scripted reference (seats alternating, seeded) and counts, over
the policy's moves: wins it had and did not take (`missed_win`), immediate wins of the opponent it
had to block and did not (`missed_block`, counted only when it had no win of its own), and moves
after which the opponent can win at once where it could not before (`gave_win`: playing under the
opponent's winning cell, or letting a new line open). `tactical` wins only through such moves (it
wins when it can, else blocks, else plays at random), so these counts say why a policy loses to it.
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

    import numpy as np
    import torch

    from actors.native_games import ConnectFourSlot
    from actors.scripted import connect_four_immediate_wins, references_for
    from learner.export import load_policy

    torch.set_num_threads(1)
    policy = load_policy(args.policy)
    opponent = references_for("connect_four_v3")[args.opponent]
    rng = np.random.default_rng(args.seed)
    counts = dict.fromkeys(("games", "won", "drawn", "lost", "moves", "missed_win", "missed_block", "gave_win"), 0)
    for game in range(args.games):
        slot, seat = ConnectFourSlot(), game % 2
        slot.reset()
        while not slot.over:
            if slot.seat != seat:
                slot.step(opponent(slot.raw_obs, slot.mask, rng))
                continue
            wins, threats = connect_four_immediate_wins(slot.raw_obs, slot.mask)
            action = int(policy.act(slot.obs[None], slot.mask[None], rng, greedy=True)[0][0])
            counts["moves"] += 1
            counts["missed_win"] += bool(wins) and action not in wins
            counts["missed_block"] += not wins and bool(threats) and action not in threats
            slot.step(action)
            if not slot.over:
                counts["gave_win"] += not threats and bool(connect_four_immediate_wins(slot.raw_obs, slot.mask)[0])
        score = slot.scores()[seat]
        counts["games"] += 1
        counts["won" if score == 1 else "lost" if score == 0 else "drawn"] += 1
    print(f"{args.policy} vs {args.opponent}, {args.games} greedy games, seats alternating")
    print("  ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
