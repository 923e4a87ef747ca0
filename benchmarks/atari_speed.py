"""Frames a second of an Atari game as PettingZoo builds it and as this system steps it (actors/atari.py).

    python benchmarks/atari_speed.py                       # volleyball pong, 4 players, RAM
    python benchmarks/atari_speed.py --game quadrapong_v4 --frames 20000

One process, random actions, the same seed for both; prints frames a second of each and their ratio.
PettingZoo's `parallel_env()` is its parallel env converted to AEC, wrapped and converted back;
this system steps the parallel env underneath (agent indicator and frame skip off, so both do the
same work frame for frame: tests/test_atari.py checks they agree).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def frames_per_second(env, frames: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    n = env.action_space(env.possible_agents[0]).n
    start = time.perf_counter()
    for _ in range(frames):
        if not env.agents:
            env.reset()
        env.step({a: int(rng.integers(n)) for a in env.agents})
    return frames / (time.perf_counter() - start)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--game", default="volleyball_pong_v3")
    ap.add_argument("--frames", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import importlib

    from actors.atari import ale_roms
    from actors.game_names import resolve_game

    own = importlib.import_module(f"pettingzoo.atari.{args.game}").parallel_env(obs_type="ram", auto_rom_install_path=ale_roms(args.game))
    ours = resolve_game(args.game)(obs_type="ram", agent_indicator=False)
    a = frames_per_second(own, args.frames, args.seed)
    b = frames_per_second(ours, args.frames, args.seed)
    print(f"{args.game}, {args.frames:,} frames of random play from RAM, one process")
    print(f"  PettingZoo's parallel_env: {a:8,.0f} frames/s")
    print(f"  stepped directly:          {b:8,.0f} frames/s   ({b / a:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
