"""The rollout and learner hot paths, before and after, measured in one run.

    python benchmarks/hot_paths.py            # GAE, the stale check, the opponent cache
    python benchmarks/hot_paths.py --ray      # also the cost of a call to the learner (starts a local Ray)

The "before" implementations live only here, copied from the code they replaced, so both sides
run on the same data in the same process:
- GAE: a Python loop per sample, segment by segment, vs learner/ppo.py's gae_segments (one loop
  over time steps for the whole batch).
- Stale check: a rescan of every pending segment on each add() vs the learner's version heap.
- Opponent cache: an LRU of rollout.opponent_cache policies vs actors/opponents.py. The league is
  simulated: 300 snapshots, 64 game slots, openai_five (20% past-opponent games), games of a
  uniformly random 7..42 moves (connect four's range), each slot's opponent moving every other
  tick. The lookups are those RolloutWorker makes: one per game start, one per distinct opponent
  to move each tick, one per player at a game's end. A miss costs what it costs in an actor, with
  the connect four model (configs/connect_four.yaml): decoding the snapshot's weights (msgpack,
  from memory: a real Redis GET adds its round trip) and loading them into a network, built new
  (before) or reused (after). Forward passes are not run: they cost the same on both sides.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import OrderedDict, deque
from typing import Callable

import numpy as np
import torch

from actors.opponents import OpponentCache
from cluster.config import load_config
from league.sampling import PoolEntry, choose_opponent
from learner.pending import PendingSegments
from learner.model import InferencePolicy, PolicyNet, state_dict_numpy
from learner.ppo import gae_segments
from learner.segment import Segment
from learner.wire import decode_weights, encode_weights

LEARNER = "latest"


def timed(fn: Callable[[], object], repeat: int = 5) -> float:
    """Median seconds of fn() over `repeat` runs (the machine is shared: the median resists noise)."""
    fn()  # warm-up: first-call costs are not what a learner pays every iteration
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


# --- GAE ---------------------------------------------------------------------------------------


def gae_before(rewards, values, dones, bootstrap_value, gamma, lam):
    """learner/ppo.py's gae() before: one Python iteration per sample."""
    T = len(rewards)
    adv = np.zeros(T, dtype=np.float32)
    last = 0.0
    next_value = float(bootstrap_value)
    for t in reversed(range(T)):
        nonterminal = 0.0 if dones[t] else 1.0
        delta = rewards[t] + gamma * next_value * nonterminal - values[t]
        last = delta + gamma * lam * nonterminal * last
        adv[t] = last
        next_value = values[t]
    return adv, (adv + values).astype(np.float32)


def bench_gae(batch_samples: int, segment_length: int = 32) -> None:
    rng = np.random.default_rng(0)
    n = batch_samples // segment_length
    rewards = [rng.choice([0.0, 0.0, 0.0, 1.0, -1.0], segment_length).astype(np.float32) for _ in range(n)]
    values = [rng.uniform(-1, 1, segment_length).astype(np.float32) for _ in range(n)]
    dones = [rng.random(segment_length) < 1 / 20 for _ in range(n)]
    boots = [float(b) for b in rng.uniform(-1, 1, n)]
    rewards[-1], values[-1], dones[-1] = rewards[-1][:7], values[-1][:7], dones[-1][:7]  # one flushed, short

    def before():
        out = [gae_before(r, v, d, b, 0.9, 0.95) for r, v, d, b in zip(rewards, values, dones, boots)]
        return np.concatenate([a for a, _ in out]), np.concatenate([r for _, r in out])

    def after():
        return gae_segments(rewards, values, dones, boots, 0.9, 0.95)

    (a0, r0), (a1, r1) = before(), after()
    err = max(float(np.abs(a0 - a1).max()), float(np.abs(r0 - r1).max()))
    t0, t1 = timed(before), timed(after)
    print(f"  {n} segments x {segment_length} ({sum(len(r) for r in rewards)} samples): "
          f"before {t0 * 1e3:7.2f} ms   after {t1 * 1e3:6.2f} ms   x{t0 / t1:5.1f}   (max |difference| {err:.1e})")


# --- stale check -------------------------------------------------------------------------------


class PendingBefore:
    """The learner's pending segments before learner/pending.py: a deque rescanned on every add()."""

    def __init__(self) -> None:
        self._queue: deque[Segment] = deque()
        self.samples = 0

    def add(self, segment: Segment) -> None:
        self._queue.append(segment)
        self.samples += len(segment)

    def drop_older_than(self, oldest_allowed: int) -> int:
        keep: deque[Segment] = deque()
        dropped = 0
        for s in self._queue:
            if s.policy_version < oldest_allowed:
                dropped += len(s)
            else:
                keep.append(s)
        self._queue = keep
        self.samples -= dropped
        return dropped


def _segment(version: int, t: int = 32) -> Segment:
    return Segment(0, 0, np.zeros((t, 2), np.float32), np.ones((t, 3), bool), np.zeros(t, np.int64), np.zeros(t, np.float32),
                   np.zeros(t, np.float32), np.zeros(t, np.float32), np.zeros(t, bool), np.full(t, version, np.int64), 0.0)


def bench_stale(pending: int = 1000, adds: int = 200) -> None:
    version, lag = 20, 8
    for name, cls in (("before", PendingBefore), ("after", PendingSegments)):
        queue = cls()
        for i in range(pending):
            queue.add(_segment(version - (i % lag)))  # lags 0..7: none stale yet
        new = [_segment(version) for _ in range(adds)]
        t0 = time.perf_counter()
        for s in new:
            # What Learner.add does for each actor call's segments that the learner's drain hands it.
            queue.add(s)
            queue.drop_older_than(version - lag)
        per_add = (time.perf_counter() - t0) / adds
        assert queue.samples == (pending + adds) * 32  # nothing was stale
        print(f"  {name:6s}: add() of one segment with {pending} to {pending + adds} pending: {per_add * 1e6:8.1f} us")


# --- opponent cache ----------------------------------------------------------------------------


class LRUBefore:
    """RolloutWorker._policy's cache before: an LRU of `size` policies, each miss a new network."""

    def __init__(self, fetch, build, size: int) -> None:
        self.fetch, self.build, self.size = fetch, build, size
        self.policies: OrderedDict[str, InferencePolicy] = OrderedDict()
        self.hits = self.misses = self.built = 0

    def get(self, pid: str) -> InferencePolicy:
        if pid in self.policies:
            self.hits += 1
            self.policies.move_to_end(pid)
            return self.policies[pid]
        self.misses += 1
        version, tensors = self.fetch(pid)
        pol = self.build()
        self.built += 1
        pol.load(tensors, version)
        self.policies[pid] = pol
        while len(self.policies) > self.size:
            self.policies.popitem(last=False)
        return pol


class CacheAfter:
    """actors/opponents.py used as RolloutWorker uses it: seat at a game start, look up while it
    plays, release at its end."""

    def __init__(self, fetch, build, size: int) -> None:
        self.cache = OpponentCache(fetch, build, size)

    def start(self, pid: str) -> None:
        self.cache.seat(pid)

    def get(self, pid: str) -> InferencePolicy:
        return self.cache[pid]

    def end(self, pid: str) -> None:
        self.cache.release(pid)


def simulate_league(
    make_cache: Callable, pool: dict[str, PoolEntry], envs: int, game_starts: int, seed: int = 0
) -> tuple[float, int, int, int, int]:
    """(seconds in the cache, lookups, misses, past-opponent games, networks built) over game_starts games."""
    rng = np.random.default_rng(seed)
    cache, clock = make_cache(), 0.0
    old_style = isinstance(cache, LRUBefore)
    slots: list[list] = []  # [opponent, moves left, learner moves first?]
    lookups = past_games = 0

    def draw() -> str:
        return choose_opponent("openai_five", LEARNER, pool, rng, 0.8).player_id

    def timed_call(fn, *args):
        nonlocal clock
        t0 = time.perf_counter()
        fn(*args)
        clock += time.perf_counter() - t0

    def begin(pid: str) -> list:
        nonlocal lookups, past_games
        if pid != LEARNER:
            lookups += 1
            past_games += 1
            timed_call(cache.get if old_style else cache.start, pid)
        return [pid, int(rng.integers(7, 43)), bool(rng.integers(2)), 0]

    for _ in range(envs):
        slots.append(begin(draw()))
    started = envs
    while started < game_starts:
        to_move = set()
        for s in slots:
            opponent, _, learner_first, moved = s
            if opponent != LEARNER and (moved % 2 == 0) != learner_first:
                to_move.add(opponent)
        for pid in to_move:  # one forward pass per distinct policy to move, as a tick does
            lookups += 1
            timed_call(cache.get, pid)
        for i, s in enumerate(slots):
            s[3] += 1
            if s[3] < s[1]:
                continue
            if s[0] != LEARNER:
                lookups += 1  # the game result's versions
                timed_call(cache.get, s[0])
                if not old_style:
                    timed_call(cache.end, s[0])
            slots[i] = begin(draw())
            started += 1
    c = cache if old_style else cache.cache
    return clock, lookups, c.misses, past_games, c.built


def bench_opponents(snapshots: int, envs: int, game_starts: int, cache_size: int) -> None:
    torch.set_num_threads(1)
    cfg = load_config("configs/connect_four.yaml", [])
    spec_shape, actions = (6, 7, 2), 7
    base = state_dict_numpy(PolicyNet(spec_shape, actions, cfg.model))
    blobs = {  # distinct weights per snapshot, encoded as the parameter store holds them
        f"v{k:06d}": encode_weights({name: a + np.float32(k * 1e-3) for name, a in base.items()}, k) for k in range(snapshots)
    }
    kib = len(next(iter(blobs.values()))) / 1024

    def fetch(pid):
        version, tensors, _ = decode_weights(blobs[pid])
        return version, tensors

    def build():
        return InferencePolicy(spec_shape, actions, cfg.model)

    print(f"  connect four model: {kib:.0f} KiB of weights per snapshot; {snapshots} snapshots, {envs} slots, "
          f"openai_five (20% past opponents), {game_starts} game starts")
    # Qualities: OpenAI Five lowers a snapshot's quality each time the learner beats it. "flat": a
    # league where none has been beaten much (near-uniform draws, the worst case for any cache);
    # "aged": quality falling with age, so the newest ~50 snapshots get most past games.
    profiles = {
        "flat": {f"v{k:06d}": PoolEntry(0.0, 0.5) for k in range(snapshots)},
        "aged": {f"v{k:06d}": PoolEntry(-0.02 * (snapshots - 1 - k), 0.5) for k in range(snapshots)},
    }
    for profile, pool in profiles.items():
        for name, make in (
            (f"before: LRU-{cache_size}", lambda: LRUBefore(fetch, build, cache_size)),
            (f"after: in play + {cache_size} idle", lambda: CacheAfter(fetch, build, cache_size)),
        ):
            secs, lookups, misses, past, built = simulate_league(make, pool, envs, game_starts)
            print(f"  {profile} {name:26s}: misses {misses / lookups:6.1%} of {lookups} lookups, "
                  f"{misses / past:5.2f} fetches per past-opponent game, {secs / game_starts * 1e3:6.2f} ms per game start, "
                  f"{built} networks built")


# --- learner calls (Ray) -----------------------------------------------------------------------


def bench_ray_calls() -> None:
    import ray

    from learner.wire import encode_segments

    @ray.remote(num_cpus=0.5, max_concurrency=8)
    class Sink:
        def submit(self, payload, timeout_s=0.5, source="", produced=0, count=0):
            return True

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    try:
        sink = Sink.remote()
        ray.get(sink.submit.remote(b""))
        rng = np.random.default_rng(0)

        def seg(n=32):  # connect four's shapes: 6x7x2 observations, 7 actions
            return Segment(0, 0, rng.random((n, 84), dtype=np.float32), np.ones((n, 7), bool), np.zeros(n, np.int64),
                           np.zeros(n, np.float32), np.zeros(n, np.float32), np.zeros(n, np.float32), np.zeros(n, bool),
                           np.zeros(n, np.int64), 0.0)

        for per_call in (2, 8, 16):
            payload = encode_segments([seg() for _ in range(per_call)])
            calls = 3000 // per_call
            inflight: list = []
            t0 = time.perf_counter()
            for _ in range(calls):  # as RaySegmentSink: at most 4 calls outstanding
                if len(inflight) >= 4:
                    done, inflight = ray.wait(inflight, num_returns=1)
                    ray.get(done)
                inflight.append(sink.submit.remote(payload, source="a0", produced=0, count=per_call))
            ray.get(inflight)
            dt = time.perf_counter() - t0
            print(f"  {per_call:2d} segments per call ({len(payload) / 1024:4.0f} KiB): {dt / calls * 1e3:5.2f} ms per call, "
                  f"{dt / (calls * per_call) * 1e3:5.3f} ms per segment")
    finally:
        ray.shutdown()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--games", type=int, default=2000, help="game starts simulated per opponent-cache variant")
    ap.add_argument("--ray", action="store_true", help="also measure calls to a Ray actor (starts a local Ray)")
    args = ap.parse_args()
    print("GAE (gamma 0.9, lambda 0.95):")
    for samples in (2048, 16384):
        bench_gae(samples)
    print("Stale check:")
    bench_stale()
    print("Opponent cache (rollout.opponent_cache = 8):")
    bench_opponents(snapshots=300, envs=64, game_starts=args.games, cache_size=8)
    if args.ray:
        print("Calls to the learner (a Ray actor that accepts every payload):")
        bench_ray_calls()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
