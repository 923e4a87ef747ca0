"""League scale benchmark: what a game, a rating fit and an actor's refresh cost as the league grows.

    python benchmarks/league_scale.py                       # 100, 1,000 and 10,000 snapshots
    python benchmarks/league_scale.py --sizes 100 1000 --games 4000

For each size N it builds a league of N snapshots with the evidence a real run leaves (each snapshot
rated in ~28 games against random, a scripted reference, the learner and its 5 predecessors, and
played by the learner in training games), stores it in a real redis-server (embedded), and then
measures, with the run's own classes:

  manager games/s   LeagueManager.step over a stream of reported games (80% learner self-play, 20%
                    against past opponents drawn by the openai_five PoolIndex, 1 in 10 a rating
                    game), in steps of ~1 s of a run's games, saves included, the fit excluded
  fit ms            the warm-started rating fit after such a step (its own cadence in a run)
  refresh ms        a rollout actor's LeagueReader catching up after one such step
  draw us           one opponent draw from the actor's pool index
  exploiter draw    one league exploiter's PFSP-hard draw (actors/seating.py), and the table it
                    builds once per league revision the actor reads
  redis MB          the league's keys in Redis (players, changes, results, payoff)

The ratios to the smallest league are printed last: per-game and per-refresh costs should stay
within 2x from 100 to 10,000 snapshots.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cluster.stores.connection import connect  # noqa: E402
from cluster.stores.embedded_redis import EmbeddedRedis  # noqa: E402
from cluster.stores.keys import RunKeys  # noqa: E402
from cluster.stores.league_store import LeagueReader, LeagueStore  # noqa: E402
from league.config import LeagueConfig  # noqa: E402
from actors.seating import pfsp_hard_draw  # noqa: E402
from league.league import LeagueState, snapshot_id  # noqa: E402
from league.manager import LeagueManager  # noqa: E402
from league.records import LEARNER_ID, RANDOM_ID, GameResult  # noqa: E402

EXPLOITER_ID = "league_exploiter/latest"

REFERENCE = "tactical"
GAMES_PER_STEP = 200  # ~1 s of a connect four run's games on 2 cores


class _Params:
    """Snapshots are not due in this benchmark (the league is built up front)."""

    def latest_version(self) -> int:
        return -1

    def snapshot_from_published(self, player_id: str, version: int) -> None:
        raise AssertionError("no snapshot is due")


def build_league(n: int, rng: np.random.Generator) -> LeagueState:
    state = LeagueState.new((RANDOM_ID,), (REFERENCE,))
    strength = {RANDOM_ID: 0.0, REFERENCE: 600.0}
    for v in range(n):
        state.add_snapshot(v)
        strength[snapshot_id(v)] = 1200.0 * v / max(n - 1, 1)
    strength[LEARNER_ID] = 1230.0
    state.last_snapshot_version = n - 1

    def rate(a: str, b: str, games: int) -> None:
        p = 1.0 / (1.0 + 10.0 ** ((strength[b] - strength[a]) / 400.0))
        wins = int(rng.binomial(games, p))
        state.elo.add(a, b, float(wins), float(games))
        for k in range(games):
            state.payoff.update(a, b, 1.0 if k < wins else 0.0)

    for v in range(n):
        me = snapshot_id(v)
        rate(me, RANDOM_ID, 8)
        rate(me, REFERENCE, 8)
        rate(LEARNER_ID, me, 2)
        for back in range(1, 6):
            if v >= back:
                rate(me, snapshot_id(v - back), 2)
    for p in state.players.values():
        if p.id != LEARNER_ID:
            p.payoff_win_rate = state.payoff.win_rate(LEARNER_ID, p.id)
    state.refit()
    return state


def game_stream(state: LeagueState, rng: np.random.Generator, count: int, start: int) -> list[GameResult]:
    from league.pool import PoolIndex

    pool = PoolIndex("openai_five")
    for p in state.players.values():
        if p.in_pool:
            pool.upsert(p.id, p.pool_entry())
    out, version = [], state.last_snapshot_version + 1
    for k in range(start, start + count):
        if k % 10 == 0:
            players, kind, prob = (LEARNER_ID, REFERENCE if k % 20 else RANDOM_ID), "eval", 1.0
        else:
            choice = pool.choose(LEARNER_ID, rng, latest_prob=0.8)
            players, kind, prob = (LEARNER_ID, choice.player_id), "train", choice.prob
        score = float(rng.choice([1.0, 0.5, 0.0], p=[0.6, 0.1, 0.3]))
        out.append(GameResult(f"g{k}", players, (version, version if players[1] == LEARNER_ID else -1), (score, 1.0 - score), 20, kind, prob, 0.0))
    return out


def redis_bytes(client, keys: RunKeys) -> int:
    names = [keys.league_meta, keys.league_players, keys.league_changes, keys.league_results, keys.league_payoff]
    return sum(client.memory_usage(k) or 0 for k in names)


def measure(n: int, games: int, client, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    keys = RunKeys("bench", f"scale-{n}")
    store = LeagueStore(client, keys)
    t0 = time.perf_counter()
    state = build_league(n, rng)
    store.save(state)
    built_s = time.perf_counter() - t0
    manager = LeagueManager(store, _Params(), LeagueConfig(rating_every_s=float("inf")), state)
    manager._fitted_at = time.monotonic()  # the fit is measured on its own below
    reader = LeagueReader(store, refresh_s=0.0, sampler="openai_five")
    reader.state()
    step_s, fit_s, refresh_s, read = 0.0, [], [], 0
    for start in range(0, games, GAMES_PER_STEP):
        store.push_games(game_stream(state, rng, GAMES_PER_STEP, start))
        t = time.perf_counter()
        manager.step(state.learner_version)
        step_s += time.perf_counter() - t
        t = time.perf_counter()
        state.refit()
        fit_s.append(time.perf_counter() - t)
        store.save(state)
        before = reader.players_read
        t = time.perf_counter()
        view = reader.state()
        refresh_s.append(time.perf_counter() - t)
        read += reader.players_read - before
    draws = 20_000
    t = time.perf_counter()
    for _ in range(draws):
        view.choose(LEARNER_ID, rng, 0.0)
    draw_s = (time.perf_counter() - t) / draws
    # A league exploiter's PFSP-hard draw (actors/seating.py): its table is built once per league
    # revision the actor reads (timed apart), then each draw is a binary search.
    t = time.perf_counter()
    pfsp_hard_draw(view, EXPLOITER_ID, rng)
    table_s = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(draws):
        pfsp_hard_draw(view, EXPLOITER_ID, rng)
    exploiter_draw_s = (time.perf_counter() - t) / draws
    steps = len(refresh_s)
    return {
        "snapshots": n,
        "build_s": built_s,
        "games_per_s": games / step_s,
        "fit_ms": 1000 * float(np.median(fit_s)),
        "refresh_ms": 1000 * float(np.median(refresh_s)),
        "players_per_refresh": read / steps,
        "draw_us": 1e6 * draw_s,
        "exploiter_table_ms": 1000 * table_s,
        "exploiter_draw_us": 1e6 * exploiter_draw_s,
        "redis_mb": redis_bytes(client, keys) / 1e6,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--games", type=int, default=4000, help="reported games per size (in steps of 200)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp) / "redis") as redis_server:
        client = connect(redis_server.url)
        for n in args.sizes:
            row = measure(n, args.games, client, args.seed)
            rows.append(row)
            print(
                f"{n:>6} snapshots: built in {row['build_s']:.1f} s; manager {row['games_per_s']:,.0f} games/s; "
                f"fit {row['fit_ms']:.1f} ms; refresh {row['refresh_ms']:.2f} ms ({row['players_per_refresh']:.0f} players); "
                f"draw {row['draw_us']:.1f} us; league exploiter's table {row['exploiter_table_ms']:.1f} ms (per league revision), "
                f"draw {row['exploiter_draw_us']:.1f} us; redis {row['redis_mb']:.2f} MB",
                flush=True,
            )
    base = rows[0]
    print("\n| snapshots | manager games/s | rating fit | actor refresh | opponent draw | Redis (league keys) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['snapshots']:,} | {r['games_per_s']:,.0f} | {r['fit_ms']:.1f} ms | {r['refresh_ms']:.2f} ms | {r['draw_us']:.1f} us | {r['redis_mb']:.2f} MB |")
    print()
    for r in rows[1:]:
        print(
            f"{r['snapshots']:,} vs {base['snapshots']:,} snapshots: per-game cost x{base['games_per_s'] / r['games_per_s']:.2f}, "
            f"per-refresh x{r['refresh_ms'] / base['refresh_ms']:.2f}, per-draw x{r['draw_us'] / base['draw_us']:.2f}, "
            f"per league-exploiter draw x{r['exploiter_draw_us'] / base['exploiter_draw_us']:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
