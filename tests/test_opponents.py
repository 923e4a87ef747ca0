"""The rollout actors' past-opponent cache (actors/opponents.py), with real networks and an in-memory store."""

from __future__ import annotations

import numpy as np
import pytest

from actors.opponents import OpponentCache
from learner.model import InferencePolicy, PolicyNet, state_dict_numpy

SHAPE = (2, 3, (4,))  # obs size, actions, hidden sizes: a tiny real network


class Store:
    """Snapshots v0..v{n-1}; snapshot k's weights are all k, so a network shows whose it holds."""

    def __init__(self, n: int) -> None:
        template = state_dict_numpy(PolicyNet(*SHAPE))
        self.weights = {f"v{k}": (k, {name: np.full_like(a, k) for name, a in template.items()}) for k in range(n)}
        self.fetches: list[str] = []

    def fetch(self, player_id: str):
        self.fetches.append(player_id)
        return self.weights[player_id]  # KeyError when missing, like the parameter store


def _cache(store: Store, idle_limit: int) -> OpponentCache:
    return OpponentCache(store.fetch, lambda: InferencePolicy(*SHAPE), idle_limit)


def _holds(policy: InferencePolicy, k: int) -> bool:
    return policy.version == k and all(np.all(t.detach().numpy() == k) for t in policy.net.state_dict().values())


def test_seated_opponents_are_never_evicted_however_small_the_idle_bound():
    store = Store(20)
    cache = _cache(store, idle_limit=1)
    policies = {f"v{k}": cache.seat(f"v{k}") for k in range(12)}  # 12 in play, far more than the bound
    for _ in range(3):  # every tick's lookups: all held, nothing fetched again
        for pid, policy in policies.items():
            assert cache[pid] is policy and _holds(policy, int(pid[1:]))
    assert store.fetches == [f"v{k}" for k in range(12)]
    assert (cache.hits, cache.misses, cache.built, cache.networks) == (0, 12, 12, 12)
    assert cache.seat("v3") is policies["v3"] and cache.hits == 1  # a second slot seats v3
    cache.release("v3")
    assert "v3" in cache and cache.seated["v3"] == 1  # still seated in the other slot


def test_an_evicted_policys_network_is_reloaded_instead_of_a_new_one_built():
    store = Store(10)
    cache = _cache(store, idle_limit=2)
    nets = {pid: cache.seat(pid) for pid in ("v0", "v1", "v2", "v3", "v4")}
    for pid in nets:
        cache.release(pid)
    # Idle: the two released last; the others were dropped as the opponents in play went to none.
    assert [pid in cache for pid in nets] == [False, False, False, True, True]
    assert cache.networks == 2 and cache.built == 5
    assert cache.seat("v5") is nets["v3"] and _holds(nets["v3"], 5)  # the least recently released, reloaded
    assert cache.seat("v4") is nets["v4"] and cache.hits == 1  # an idle one drawn again: no fetch
    assert cache.built == 5 and store.fetches.count("v4") == 1
    cache.seat("v6")  # nothing idle left: only now does the cache grow
    assert cache.built == 6 and cache.misses == 7 and cache.networks == 3


def test_in_steady_play_a_finished_games_network_serves_the_next_game():
    """The worker releases a game's opponent before drawing the next: a miss then never builds."""
    store = Store(50)
    cache = _cache(store, idle_limit=1)
    first = cache.seat("v0")
    for k in range(1, 50):
        cache.release(f"v{k - 1}")
        assert cache.seat(f"v{k}") is first and _holds(first, k)
    assert cache.built == 1 and cache.networks == 1


def test_memory_stays_bounded_by_the_opponents_in_play_plus_the_idle_bound():
    store = Store(300)
    cache = _cache(store, idle_limit=3)
    rng = np.random.default_rng(0)
    slots: list[str | None] = [None] * 16
    for _ in range(3000):
        i = int(rng.integers(len(slots)))
        if slots[i] is not None:
            cache.release(slots[i])
        # A skewed draw, as quality-weighted sampling gives: some opponents come back often.
        slots[i] = f"v{min(int(rng.exponential(20)), 299)}" if rng.random() < 0.5 else None
        if slots[i] is not None:
            held_before, built_before = cache.networks, cache.built
            in_play_before = len({pid for j, pid in enumerate(slots) if pid is not None and j != i})
            cache.seat(slots[i])
            if held_before > in_play_before:  # an idle network was there to take: none built
                assert cache.built == built_before
        in_play = {pid for pid in slots if pid is not None}
        assert cache.networks <= len(in_play) + 3
        assert all(_holds(cache[pid], int(pid[1:])) for pid in in_play)
        assert cache.seated == {pid: slots.count(pid) for pid in in_play}
    assert cache.hits > 0 and len(store.fetches) == cache.misses


def test_a_snapshot_missing_from_the_store_changes_nothing():
    store = Store(2)
    cache = _cache(store, idle_limit=1)
    idle = cache.seat("v0")
    cache.release("v0")
    with pytest.raises(KeyError):
        cache.seat("v9")
    assert (cache.hits, cache.misses, cache.networks) == (0, 1, 1)
    assert cache.seat("v1") is idle  # the idle network was not spent on the failed fetch
    with pytest.raises(KeyError):
        cache.release("v0")  # not seated: released more often than seated is a bug, not ignored
    with pytest.raises(ValueError, match="opponent_cache"):
        _cache(store, idle_limit=0)
