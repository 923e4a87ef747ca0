import math
from collections import Counter

import numpy as np
import pytest

from league.sampling import (
    PFSP_WEIGHTINGS,
    SAMPLERS,
    OpponentChoice,
    PoolEntry,
    choose_opponent,
    initial_quality,
    pfsp_probs,
    pfsp_weight,
    quality_probs,
    sample_openai_five,
    uniform_probs,
    update_quality,
)

LN2 = math.log(2.0)


def approx_table(expected):
    return pytest.approx(expected, abs=1e-12)


# --- probability tables -------------------------------------------------------


def test_quality_probs_golden():
    # exp(0) : exp(ln2) : exp(ln4) = 1 : 2 : 4
    assert quality_probs({"a": 0.0, "b": LN2, "c": 2 * LN2}) == approx_table({"a": 1 / 7, "b": 2 / 7, "c": 4 / 7})
    assert quality_probs({"a": -3.0, "b": -3.0}) == approx_table({"a": 0.5, "b": 0.5})
    assert quality_probs({}) == {}


def test_quality_probs_is_numerically_stable():
    # Naive exp would overflow (1000) or underflow to 0/0 (-1000).
    assert quality_probs({"a": 1000.0, "b": 1000.0 + LN2}) == approx_table({"a": 1 / 3, "b": 2 / 3})
    assert quality_probs({"a": -1000.0, "b": -1000.0 - LN2}) == approx_table({"a": 2 / 3, "b": 1 / 3})


def test_quality_probs_rejects_nan():
    with pytest.raises(ValueError, match="finite"):
        quality_probs({"a": float("nan")})


def test_pfsp_weight_table():
    assert set(PFSP_WEIGHTINGS) == {"hard", "var", "linear"}
    assert pfsp_weight(0.25, "hard") == pytest.approx(0.5625)
    assert pfsp_weight(0.25, "var") == pytest.approx(0.1875)
    assert pfsp_weight(0.25, "linear") == pytest.approx(0.75)
    with pytest.raises(ValueError, match="hard"):
        pfsp_weight(0.5, "squared")
    with pytest.raises(ValueError, match="win_rate"):
        pfsp_weight(1.5, "hard")


def test_pfsp_probs_golden():
    win_rates = {"a": 0.5, "b": 0.75, "c": 1.0}
    # hard: 0.25, 0.0625, 0 -> 0.8, 0.2, 0
    assert pfsp_probs(win_rates) == approx_table({"a": 0.8, "b": 0.2, "c": 0.0})
    # var: 0.25, 0.1875, 0 -> 4/7, 3/7, 0
    assert pfsp_probs(win_rates, "var") == approx_table({"a": 4 / 7, "b": 3 / 7, "c": 0.0})
    # linear: 0.5, 0.25, 0 -> 2/3, 1/3, 0
    assert pfsp_probs(win_rates, "linear") == approx_table({"a": 2 / 3, "b": 1 / 3, "c": 0.0})


def test_pfsp_all_zero_weights_fall_back_to_uniform():
    assert pfsp_probs({"a": 1.0, "b": 1.0}, "hard") == approx_table({"a": 0.5, "b": 0.5})
    assert pfsp_probs({"a": 0.0, "b": 1.0, "c": 1.0}, "var") == approx_table({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})
    assert pfsp_probs({}) == {}


def test_uniform_probs():
    assert uniform_probs(["x", "y", "z", "w"]) == {"x": 0.25, "y": 0.25, "z": 0.25, "w": 0.25}
    assert uniform_probs([]) == {}
    with pytest.raises(ValueError, match="unique"):
        uniform_probs(["x", "x"])


# --- quality scores -------------------------------------------------------------


def test_update_quality_golden():
    q = {"a": 0.0, "b": 0.0}
    new = update_quality(q, "a", prob=0.5)
    # 0 - 0.01 / (2 * 0.5)
    assert new == approx_table({"a": -0.01, "b": 0.0})
    assert q == {"a": 0.0, "b": 0.0}, "input must not be mutated"

    q = {"a": 1.0, "b": 0.5, "c": -0.25, "d": 0.0}
    # 0.5 - 0.1 / (4 * 0.2) = 0.375
    assert update_quality(q, "b", prob=0.2, eta=0.1) == approx_table({"a": 1.0, "b": 0.375, "c": -0.25, "d": 0.0})


def test_update_quality_uses_sampling_probability_from_table():
    q = {"a": 0.0, "b": LN2}  # p = 1/3, 2/3
    p = quality_probs(q)
    new = update_quality(q, "a", p["a"])
    assert new["a"] == pytest.approx(-0.01 / (2 * (1 / 3)))  # -0.015
    assert new["a"] == pytest.approx(-0.015)


def test_update_quality_errors():
    with pytest.raises(ValueError, match="not in the quality table"):
        update_quality({"a": 0.0}, "zz", 1.0)
    with pytest.raises(ValueError, match="prob"):
        update_quality({"a": 0.0}, "a", 0.0)
    with pytest.raises(ValueError, match="eta"):
        update_quality({"a": 0.0}, "a", 1.0, eta=-1)


def test_initial_quality():
    assert initial_quality({}) == 0.0
    assert initial_quality({"a": -0.5, "b": -0.1}) == -0.1


# --- drawing ------------------------------------------------------------------


def test_openai_five_empty_pool_is_latest():
    rng = np.random.default_rng(0)
    for _ in range(20):
        assert sample_openai_five("v9", {}, rng) == OpponentChoice("v9", 1.0, True)
    # The latest listed in its own pool is not a past opponent.
    assert sample_openai_five("v9", {"v9": 0.0}, rng, latest_prob=0.0) == OpponentChoice("v9", 1.0, True)


def test_openai_five_all_past_reports_pool_probability():
    rng = np.random.default_rng(1)
    q = {"a": 0.0, "b": LN2}
    for _ in range(50):
        choice = sample_openai_five("latest", q, rng, latest_prob=0.0)
        assert not choice.is_latest
        assert choice.prob == pytest.approx({"a": 1 / 3, "b": 2 / 3}[choice.player_id])


def test_openai_five_frequencies_fixed_seed():
    rng = np.random.default_rng(12345)
    q = {"a": 0.0, "b": LN2}
    n = 20_000
    counts = Counter(sample_openai_five("latest", q, rng).player_id for _ in range(n))
    # Expected 0.8 / 0.2*1/3 / 0.2*2/3; binomial sd <= 0.003, tolerance ~7 sd.
    assert counts["latest"] / n == pytest.approx(0.8, abs=0.02)
    assert counts["a"] / n == pytest.approx(0.2 / 3, abs=0.02)
    assert counts["b"] / n == pytest.approx(0.4 / 3, abs=0.02)


def test_choose_opponent_pfsp_frequencies_fixed_seed():
    rng = np.random.default_rng(7)
    pool = {"a": PoolEntry(0.0, 0.5), "b": PoolEntry(0.0, 0.75), "c": PoolEntry(0.0, 1.0)}
    n = 20_000
    choices = [choose_opponent("pfsp_hard", "latest", pool, rng) for _ in range(n)]
    counts = Counter(c.player_id for c in choices)
    assert counts["a"] / n == pytest.approx(0.8, abs=0.02)
    assert counts["b"] / n == pytest.approx(0.2, abs=0.02)
    assert counts["c"] == 0  # zero weight: never drawn
    assert all(c.prob == pytest.approx({"a": 0.8, "b": 0.2}[c.player_id]) for c in choices)


def test_choose_opponent_uniform_frequencies_fixed_seed():
    rng = np.random.default_rng(3)
    pool = {pid: PoolEntry(0.0, 0.5) for pid in ["a", "b", "c", "d"]}
    n = 20_000
    choices = [choose_opponent("uniform", "latest", pool, rng) for _ in range(n)]
    counts = Counter(c.player_id for c in choices)
    assert set(counts) == {"a", "b", "c", "d"}
    for pid in "abcd":
        assert counts[pid] / n == pytest.approx(0.25, abs=0.02)
    assert all(c.prob == 0.25 and not c.is_latest for c in choices)


def test_choose_opponent_self_play_is_always_latest():
    rng = np.random.default_rng(0)
    pool = {"a": PoolEntry(5.0, 0.0)}
    for _ in range(20):
        assert choose_opponent("self_play", "L", pool, rng) == OpponentChoice("L", 1.0, True)


@pytest.mark.parametrize("sampler", ["uniform", "pfsp_hard", "pfsp_var", "openai_five"])
def test_choose_opponent_empty_pool_is_latest(sampler):
    rng = np.random.default_rng(0)
    assert choose_opponent(sampler, "L", {}, rng) == OpponentChoice("L", 1.0, True)
    assert choose_opponent(sampler, "L", {"L": PoolEntry(0.0, 0.5)}, rng) == OpponentChoice("L", 1.0, True)


def test_choose_opponent_pfsp_var_uses_var_weighting():
    rng = np.random.default_rng(0)
    # var gives zero weight to 0.0 and 1.0: only "mid" can be drawn.
    pool = {"lose": PoolEntry(0.0, 0.0), "mid": PoolEntry(0.0, 0.5), "win": PoolEntry(0.0, 1.0)}
    for _ in range(50):
        assert choose_opponent("pfsp_var", "L", pool, rng) == OpponentChoice("mid", 1.0, False)


def test_choose_opponent_openai_five_uses_qualities():
    rng = np.random.default_rng(0)
    pool = {"a": PoolEntry(0.0, 0.5), "b": PoolEntry(LN2, 0.5)}
    c = choose_opponent("openai_five", "L", pool, rng, latest_prob=0.0)
    assert c.prob == pytest.approx({"a": 1 / 3, "b": 2 / 3}[c.player_id])


def test_sampling_is_independent_of_mapping_order():
    pool1 = {"a": PoolEntry(0.0, 0.2), "b": PoolEntry(0.0, 0.6), "c": PoolEntry(0.0, 0.9)}
    pool2 = dict(reversed(list(pool1.items())))
    r1, r2 = np.random.default_rng(99), np.random.default_rng(99)
    assert [choose_opponent("pfsp_hard", "L", pool1, r1) for _ in range(100)] == [
        choose_opponent("pfsp_hard", "L", pool2, r2) for _ in range(100)
    ]


def test_unknown_sampler_names_valid_ones():
    with pytest.raises(ValueError) as err:
        choose_opponent("pfsp", "L", {}, np.random.default_rng(0))
    for name in SAMPLERS:
        assert name in str(err.value)


def test_bad_latest_prob():
    with pytest.raises(ValueError, match="latest_prob"):
        sample_openai_five("L", {"a": 0.0}, np.random.default_rng(0), latest_prob=1.5)


# --- the PFSP lock-out (issue 24, item 3) -------------------------------------


def _league_after_one_win(prior_games: float):
    from league.config import LeagueConfig
    from league.league import LeagueState
    from league.records import LEARNER_ID, RANDOM_ID, GameResult

    cfg = LeagueConfig(pfsp_prior_games=prior_games)
    state = LeagueState.new((RANDOM_ID,))
    state.add_snapshot(10)
    state.add_snapshot(20)
    beaten = state.snapshot_id(10)
    state.record(GameResult("g1", (LEARNER_ID, beaten), (25, 10), (1.0, 0.0), 9, "train", 1.0, 0.0), cfg)
    return state, beaten, LEARNER_ID


@pytest.mark.parametrize("sampler", ["alphastar", "pfsp_hard"])
def test_a_snapshot_beaten_once_keeps_a_positive_probability(sampler):
    """One win read raw is x = 1: PFSP-hard's weight 0, out of verification, never drawn again. The
    prior (league.pfsp_prior_games = 4) reads it as x = 0.6; the sum-tree pool agrees with the table."""
    from league.pool import PoolIndex

    state, beaten, latest = _league_after_one_win(4.0)
    pool = state.past_pool()
    assert pool[beaten].win_rate == pytest.approx(0.6)
    # Weights (1 - x)^2: beaten .16, the other snapshot and random .25 each (never played).
    assert pfsp_probs({k: e.win_rate for k, e in pool.items()}) == approx_table({beaten: 0.16 / 0.66, **{k: 0.25 / 0.66 for k in pool if k != beaten}})
    index = PoolIndex(sampler)
    for pid, entry in pool.items():
        index.upsert(pid, entry)
    assert index.prob("pfsp", beaten) == pytest.approx(0.16 / 0.66)
    if sampler == "alphastar":
        assert index.prob("verification", beaten) == pytest.approx(0.16 / 0.66)  # 0.6 < 0.7: still verified
    rng = np.random.default_rng(0)
    drawn = Counter(choose_opponent(sampler, latest, pool, rng).player_id for _ in range(4000))
    assert drawn[beaten] > 0
    rng = np.random.default_rng(1)
    drawn_index = Counter(index.choose(latest, rng).player_id for _ in range(4000))
    assert drawn_index[beaten] > 0


def test_without_the_prior_one_win_locks_a_snapshot_out():
    """The bug the prior fixes, kept visible: with k = 0 the beaten snapshot has probability 0."""
    from league.pool import PoolIndex

    state, beaten, latest = _league_after_one_win(0.0)
    pool = state.past_pool()
    assert pool[beaten].win_rate == 1.0
    index = PoolIndex("alphastar")
    for pid, entry in pool.items():
        index.upsert(pid, entry)
    assert index.prob("pfsp", beaten) == 0.0 and index.prob("verification", beaten) == 0.0
    rng = np.random.default_rng(0)
    assert all(choose_opponent("alphastar", latest, pool, rng).player_id != beaten for _ in range(2000))


def test_pfsp_prior_games_must_not_be_negative():
    from league.config import LeagueConfig

    with pytest.raises(ValueError, match="pfsp_prior_games must be >= 0"):
        LeagueConfig(pfsp_prior_games=-1.0)
