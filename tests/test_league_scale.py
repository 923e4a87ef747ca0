"""The league's scalable parts against their reference definitions: the sum-tree pool against
sampling.py's tables, the sparse warm-started Elo fit against rating_fit.fit_elo, and the bounded
duplicate window."""

from __future__ import annotations

import numpy as np
import pytest

from league.config import LeagueConfig
from league.league import LeagueState
from league.manager import RecentIds
from league.pool import LeagueView, PoolIndex, SumTree
from league.rating_fit import fit_elo
from league.ratings import SOLVE_ALL_BELOW, EloFit
from league.records import LEARNER_ID, RANDOM_ID, GameResult
from league.sampling import FORGOTTEN_BELOW, PoolEntry, pfsp_probs, quality_probs, uniform_probs


def _pool(n: int, seed: int = 0) -> dict[str, PoolEntry]:
    rng = np.random.default_rng(seed)
    return {f"v{i:06d}": PoolEntry(quality=float(-rng.exponential(2.0)), win_rate=float(rng.uniform())) for i in range(n)}


# --- the pool index ---------------------------------------------------------------------------


def test_a_sum_tree_finds_each_slot_by_its_cumulative_range_and_grows():
    tree = SumTree(capacity=2)
    for slot, w in enumerate([1.0, 0.0, 2.0, 0.5] * 10):  # 40 slots: grows past 16 and 32
        tree.set(slot, w)
    assert tree.total == pytest.approx(35.0)
    assert tree.find(0.5) == 0 and tree.find(1.0) == 2 and tree.find(2.9) == 2 and tree.find(3.1) == 3
    assert tree.find(34.4) == 38 and tree.find(34.999) == 39
    tree.set(39, 0.0)
    tree.set(38, 0.0)
    assert tree.find(tree.total) == 36  # u at the total (rounding): the last slot with weight, not an empty one


@pytest.mark.parametrize("sampler,table,reference", [
    ("openai_five", "quality", lambda pool: quality_probs({k: e.quality for k, e in pool.items()})),
    ("pfsp_hard", "pfsp", lambda pool: pfsp_probs({k: e.win_rate for k, e in pool.items()}, "hard")),
    ("pfsp_var", "pfsp", lambda pool: pfsp_probs({k: e.win_rate for k, e in pool.items()}, "var")),
    ("alphastar", "verification", lambda pool: pfsp_probs({k: e.win_rate for k, e in pool.items() if e.win_rate < FORGOTTEN_BELOW}, "hard")),
    ("uniform", "uniform", lambda pool: uniform_probs(list(pool))),
])
def test_the_index_draws_from_exactly_the_samplers_tables(sampler, table, reference):
    pool = _pool(300)
    index = PoolIndex(sampler)
    for pid, entry in pool.items():
        index.upsert(pid, entry)
    # A changed player moves only its own path; the table must follow.
    pool["v000007"] = PoolEntry(quality=-9.0, win_rate=0.1)
    index.upsert("v000007", pool["v000007"])
    expected = reference(pool)
    for pid in pool:
        assert index.prob(table, pid) == pytest.approx(expected.get(pid, 0.0), rel=1e-9, abs=1e-15)


def test_drawn_opponents_follow_the_table_and_carry_their_probability():
    pool = {"a": PoolEntry(0.0, 0.5), "b": PoolEntry(-1.0, 0.5), "c": PoolEntry(-30.0, 0.5)}
    index = PoolIndex("openai_five")
    for pid, entry in pool.items():
        index.upsert(pid, entry)
    rng = np.random.default_rng(1)
    draws = [index.choose(LEARNER_ID, rng, latest_prob=0.0) for _ in range(20_000)]
    expected = quality_probs({k: e.quality for k, e in pool.items()})
    for pid in pool:
        share = sum(d.player_id == pid for d in draws) / len(draws)
        assert share == pytest.approx(expected[pid], abs=0.015)
    assert all(d.prob == pytest.approx(expected[d.player_id]) and not d.is_latest for d in draws)
    assert index.choose(LEARNER_ID, rng, latest_prob=1.0).is_latest


def test_qualities_far_below_zero_neither_underflow_nor_overflow():
    index = PoolIndex("openai_five")
    index.upsert("old", PoolEntry(-2000.0, 0.5))  # exp(-2000) is 0.0 in floating point
    index.upsert("older", PoolEntry(-2001.0, 0.5))
    assert index.prob("quality", "old") == pytest.approx(1 / (1 + np.exp(-1.0)))
    index.upsert("new", PoolEntry(0.0, 0.5))  # 2000 above the others: re-centred, not inf
    assert index.prob("quality", "new") == pytest.approx(1.0)


def test_pfsp_falls_back_to_uniform_and_alphastar_verification_to_self_play():
    index = PoolIndex("pfsp_hard")
    for pid in "abc":
        index.upsert(pid, PoolEntry(0.0, 1.0))  # the learner beats everyone: every hard weight is 0
    rng = np.random.default_rng(0)
    assert {index.choose(LEARNER_ID, rng).player_id for _ in range(200)} == set("abc")
    star = PoolIndex("alphastar")
    star.upsert("a", PoolEntry(0.0, 0.95))  # nobody forgotten: verification has no one to play
    assert star.prob("verification", "a") == 0.0
    picks = [star.choose(LEARNER_ID, rng) for _ in range(2000)]
    assert 0.45 < sum(p.is_latest for p in picks) / len(picks) < 0.55  # 35% self-play + 15% verification


def test_a_view_indexes_only_training_opponents():
    state = LeagueState.new((RANDOM_ID,), eval_references=("minimax",))
    state.add_snapshot(0)
    view = LeagueView("uniform")
    view.apply(state.players.values(), revision=1, learner_version=0)
    assert set(view.players) == {LEARNER_ID, RANDOM_ID, "minimax", "v000000"}
    assert len(view.pool) == 2 and "minimax" not in view.pool and LEARNER_ID not in view.pool


# --- the Elo fit --------------------------------------------------------------------------------


def _league_rows(n: int, seed: int = 0) -> list[tuple[str, str, float, float]]:
    rng = np.random.default_rng(seed)
    true = {f"v{i:03d}": 15.0 * i for i in range(n)} | {"tactical": 500.0, RANDOM_ID: 0.0, LEARNER_ID: 15.0 * n + 30}
    rows = []

    def play(a, b, games):
        p = 1 / (1 + 10 ** ((true[b] - true[a]) / 400))
        rows.append((a, b, float(rng.binomial(games, p)), float(games)))

    for i in range(n):
        play(f"v{i:03d}", RANDOM_ID, 6)
        play(f"v{i:03d}", "tactical", 6)
        play(LEARNER_ID, f"v{i:03d}", 2)
        for j in range(1, 4):
            if i >= j:
                play(f"v{i:03d}", f"v{i - j:03d}", 2)
    play("tactical", RANDOM_ID, 100)
    return rows


def test_the_sparse_fit_matches_the_dense_reference():
    rows = _league_rows(60)
    fit = EloFit({RANDOM_ID: 0.0})
    for row in rows:
        fit.add(*row)
    fit.fit()
    dense = fit_elo(rows, {RANDOM_ID: 0.0})
    for pid in fit.rated():
        elo, se = fit.rating(pid)
        assert elo == pytest.approx(dense[pid].elo, abs=1e-4) and se == pytest.approx(dense[pid].stderr, abs=1e-4)
    assert fit.rating(RANDOM_ID) is None  # anchors are not fitted


def test_a_warm_fit_after_new_games_equals_a_fit_from_scratch_and_reports_who_moved():
    rows = _league_rows(40, seed=3)
    fit = EloFit({RANDOM_ID: 0.0})
    for row in rows:
        fit.add(*row)
    fit.fit()
    assert fit.fit() == []  # nothing new: nobody moves
    before = {pid: fit.rating(pid) for pid in fit.rated()}
    fit.add(LEARNER_ID, "v039", 0.0, 8.0)  # the learner suddenly loses to its newest snapshot
    moved = fit.fit()
    assert LEARNER_ID in moved and "v039" in moved and len(moved) < len(before) // 2
    for pid, (elo, se) in before.items():  # the unreported moved by less than a tenth of their error
        new_elo, new_se = fit.rating(pid)
        assert pid in moved or (abs(new_elo - elo) < max(0.5, 0.1 * se) and abs(new_se - se) < max(0.5, 0.1 * se))
    dense = fit_elo(list(fit.pairs()), {RANDOM_ID: 0.0})
    assert fit.rating(LEARNER_ID)[0] == pytest.approx(dense[LEARNER_ID].elo, abs=1e-4)


def test_large_leagues_refresh_standard_errors_in_slices_that_cover_everyone():
    n = SOLVE_ALL_BELOW + 100
    fit = EloFit({RANDOM_ID: 0.0})
    for i in range(n):
        fit.add(f"p{i:04d}", RANDOM_ID, 3.0, 4.0)
    for _ in range(1 + n // 128):
        fit.fit()
    dense_se = 1 / np.sqrt((np.log(10) / 400) ** 2 * 4 * 0.75 * 0.25 + 1 / 400**2)  # independent players
    assert all(fit.rating(f"p{i:04d}")[1] == pytest.approx(dense_se, rel=0.05) for i in range(n))


def test_moving_the_learners_results_to_a_snapshot_keeps_the_evidence():
    fit = EloFit({RANDOM_ID: 0.0})
    fit.add(LEARNER_ID, RANDOM_ID, 7.0, 10.0)
    fit.add(LEARNER_ID, "tactical", 2.0, 4.0)
    fit.add("tactical", RANDOM_ID, 30.0, 40.0)
    moved = fit.pop_pairs_of(LEARNER_ID)
    assert sorted(moved) == [(RANDOM_ID, 7.0, 10.0), ("tactical", 2.0, 4.0)]
    assert fit.pair(LEARNER_ID, RANDOM_ID) is None and fit.pair(RANDOM_ID, "tactical") == (10.0, 40.0)
    assert fit.pop_pairs_of(LEARNER_ID) == []


def test_a_league_with_a_thousand_snapshots_credits_games_to_the_right_snapshot():
    state = LeagueState.new()
    for v in range(0, 10_000, 10):
        state.add_snapshot(v)
    assert state.rating_identity(LEARNER_ID, 4_567) == "v004560"
    assert state.rating_identity(LEARNER_ID, 9_990) == LEARNER_ID
    cfg = LeagueConfig()
    state.record(GameResult("g", (LEARNER_ID, RANDOM_ID), (4_567, -1), (1.0, 0.0), 7, "eval", 1.0, 0.0), cfg)
    assert state.results == {f"{RANDOM_ID}\tv004560": [0.0, 1.0]}


# --- duplicates within a window ------------------------------------------------------------


def test_the_duplicate_window_is_bounded_and_forgets_the_oldest_first():
    ids = RecentIds(capacity=3)
    assert [ids.add(x) for x in "abca"] == [True, True, True, False]
    assert ids.add("d") and len(ids) == 3
    assert ids.add("b") is False  # still within the window
    assert ids.add("a")  # a was the oldest when d came: forgotten, so counted again
