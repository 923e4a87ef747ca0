import math

import numpy as np
import pytest

from league.rating_fit import ELO_SCALE, RatingEstimate, expected_score, fit_elo

C = math.log(10) / 400
HUGE = 1e7  # prior so weak the MAP equals the MLE to ~1e-9 Elo


def mle_elo(p):
    return 400 * math.log10(p / (1 - p))


def fisher_se(n, p):
    return 1 / math.sqrt(n * p * (1 - p) * C**2)


def test_expected_score_golden():
    assert expected_score(1500, 1500) == 0.5
    # 400 points ahead means 10:1 odds.
    assert expected_score(1900, 1500) == pytest.approx(10 / 11, abs=1e-12)
    assert expected_score(1500, 1900) == pytest.approx(1 / 11, abs=1e-12)
    # 200 points: 1 / (1 + 10^-0.5)
    assert expected_score(1700, 1500) == pytest.approx(0.7597469266479578, abs=1e-12)
    assert ELO_SCALE == 400.0


def test_expected_scores_sum_to_one():
    for ra, rb in [(0, 0), (1234.5, 987.0), (-300, 450)]:
        assert expected_score(ra, rb) + expected_score(rb, ra) == pytest.approx(1.0)


def test_single_player_vs_anchor_golden():
    fit = fit_elo([("A", "random", 76.0, 100.0)], {"random": 0.0}, prior_sd=HUGE)
    assert fit["random"] == RatingEstimate(0.0, 0.0, 100.0)
    # 400 * log10(0.76 / 0.24) = 200.24...
    assert fit["A"].elo == pytest.approx(mle_elo(0.76), abs=1e-6)
    assert fit["A"].elo == pytest.approx(200.2402, abs=1e-3)
    # 1 / sqrt(100 * .76 * .24 * (ln10/400)^2) = 40.675...
    assert fit["A"].stderr == pytest.approx(fisher_se(100, 0.76), rel=1e-6)
    assert fit["A"].stderr == pytest.approx(40.675, abs=1e-2)
    assert fit["A"].games == 100.0


def test_seat_order_and_anchor_value_do_not_matter():
    a = fit_elo([("A", "ref", 76.0, 100.0)], {"ref": 1000.0}, prior_sd=HUGE)
    b = fit_elo([("ref", "A", 24.0, 100.0)], {"ref": 1000.0}, prior_sd=HUGE)
    assert a["A"].elo == pytest.approx(1000 + mle_elo(0.76), abs=1e-6)
    assert b["A"].elo == pytest.approx(a["A"].elo, abs=1e-6)
    assert b["A"].stderr == pytest.approx(a["A"].stderr, rel=1e-9)


def test_draws_count_as_half_wins():
    # 52 wins + 48 draws + 0 losses over 100 games scores 52 + 48/2 = 76, like 76 wins.
    fit = fit_elo([("A", "random", 52 + 48 / 2, 100.0)], {"random": 0.0}, prior_sd=HUGE)
    assert fit["A"].elo == pytest.approx(mle_elo(0.76), abs=1e-6)


def test_three_player_chain_golden():
    results = [("A", "Z", 76.0, 100.0), ("B", "A", 60.0, 100.0)]
    fit = fit_elo(results, {"Z": 0.0}, prior_sd=HUGE)
    ra, rb = mle_elo(0.76), mle_elo(0.76) + mle_elo(0.60)
    assert fit["A"].elo == pytest.approx(ra, abs=1e-6)
    assert fit["B"].elo == pytest.approx(rb, abs=1e-6)
    # On a tree the edge estimates are independent: variances add along the path.
    se1, se2 = fisher_se(100, 0.76), fisher_se(100, 0.60)
    assert fit["A"].stderr == pytest.approx(se1, rel=1e-6)
    assert fit["B"].stderr == pytest.approx(math.hypot(se1, se2), rel=1e-6)
    assert fit["A"].games == 200.0 and fit["B"].games == 100.0


def test_fitted_scores_match_observed_totals():
    # A cyclic, inconsistent league: the MLE cannot fit each pair, but at the optimum
    # each player's expected total score equals its observed total (moment matching).
    results = [
        ("A", "R", 30.0, 40.0),
        ("B", "R", 35.0, 40.0),
        ("A", "B", 12.0, 30.0),
        ("C", "A", 20.0, 25.0),
        ("C", "B", 8.0, 25.0),
        ("C", "R", 18.5, 20.0),
    ]
    fit = fit_elo(results, {"R": 0.0}, prior_sd=HUGE)
    elo = {pid: est.elo for pid, est in fit.items()}
    for player in "ABC":
        observed = expected = 0.0
        for a, b, s, n in results:
            if a == player:
                observed += s
                expected += n * expected_score(elo[a], elo[b])
            elif b == player:
                observed += n - s
                expected += n * expected_score(elo[b], elo[a])
        assert expected == pytest.approx(observed, abs=1e-6)


def test_recovers_true_ratings_from_consistent_data():
    true = {"R": 0.0, "A": 150.0, "B": 420.0, "C": -80.0}
    pairs = [("A", "R"), ("B", "R"), ("C", "R"), ("A", "B"), ("B", "C"), ("A", "C")]
    n = 1000.0
    results = [(a, b, n * expected_score(true[a], true[b]), n) for a, b in pairs]
    fit = fit_elo(results, {"R": 0.0}, prior_sd=HUGE)
    for pid, r in true.items():
        assert fit[pid].elo == pytest.approx(r, abs=1e-5)


def test_prior_keeps_all_wins_finite():
    results = [("A", "random", 10.0, 10.0)]
    fits = {sd: fit_elo(results, {"random": 0.0}, prior_sd=sd)["A"] for sd in (100.0, 400.0, 1600.0)}
    for sd, est in fits.items():
        assert math.isfinite(est.elo) and math.isfinite(est.stderr) and est.elo > 0
        # Stationarity of the log-posterior: C * n * (1 - p) = R / sd^2.
        p = expected_score(est.elo, 0.0)
        assert C * 10 * (1 - p) == pytest.approx(est.elo / sd**2, rel=1e-6)
    # A weaker prior lets the all-wins player drift further up.
    assert fits[100.0].elo < fits[400.0].elo < fits[1600.0].elo


def test_prior_sd_400_all_wins_golden():
    # Solve C*10*(1-p(R)) = R/400^2 by bisection, independently of the fitter.
    lo, hi = 0.0, 5000.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if C * 10 * (1 - expected_score(mid, 0.0)) > mid / 400**2:
            lo = mid
        else:
            hi = mid
    est = fit_elo([("A", "random", 10.0, 10.0)], {"random": 0.0})["A"]
    assert est.elo == pytest.approx(lo, abs=1e-6)
    p = expected_score(lo, 0.0)
    assert est.stderr == pytest.approx(1 / math.sqrt(10 * p * (1 - p) * C**2 + 1 / 400**2), rel=1e-6)


def test_disconnected_players_get_finite_but_wide_estimates():
    results = [("A", "R", 60.0, 100.0), ("X", "Y", 70.0, 100.0)]
    fit = fit_elo(results, {"R": 0.0})
    assert fit["X"].elo > fit["Y"].elo
    # Their mean is pinned only by the prior (sd 400): each stderr >= 400/sqrt(2).
    assert fit["X"].stderr > 280 and fit["Y"].stderr > 280
    assert fit["A"].stderr < 80
    # The prior centres the pair on the anchor mean.
    assert (fit["X"].elo + fit["Y"].elo) / 2 == pytest.approx(0.0, abs=1e-6)


def test_prior_mean_is_anchor_mean():
    fit = fit_elo([("X", "Y", 5.0, 10.0)], {"r1": 100.0, "r2": 300.0})
    assert fit["X"].elo == pytest.approx(200.0, abs=1e-9)
    assert fit["r1"] == RatingEstimate(100.0, 0.0, 0.0)


def test_no_anchors_centres_on_zero():
    fit = fit_elo([("X", "Y", 5.0, 10.0)], {})
    assert fit["X"].elo == pytest.approx(0.0, abs=1e-9)
    assert fit["Y"].elo == pytest.approx(0.0, abs=1e-9)


def test_only_anchors_and_empty():
    assert fit_elo([], {"random": 0.0}) == {"random": RatingEstimate(0.0, 0.0, 0.0)}
    assert fit_elo([], {}) == {}


def test_fractional_games_and_zero_game_rows():
    fit = fit_elo([("A", "R", 0.76 * 12.5, 12.5), ("A", "R", 0.0, 0.0)], {"R": 0.0}, prior_sd=HUGE)
    assert fit["A"].elo == pytest.approx(mle_elo(0.76), abs=1e-6)
    assert fit["A"].games == 12.5


def test_large_league_runs_quickly():
    rng = np.random.default_rng(0)
    ids = [f"p{i}" for i in range(60)]
    true = dict(zip(ids, rng.normal(0, 300, size=len(ids))))
    true["p0"] = 0.0
    results = []
    for i in range(len(ids)):
        for j in range(i + 1, min(i + 6, len(ids))):
            a, b = ids[i], ids[j]
            results.append((a, b, float(rng.binomial(200, expected_score(true[a], true[b]))), 200.0))
    fit = fit_elo(results, {"p0": 0.0})
    errors = [(fit[p].elo - true[p]) / fit[p].stderr for p in ids[1:]]
    # z-scores of a sound fit: most within 3 sd.
    assert np.mean(np.abs(errors) < 3) > 0.9


@pytest.mark.parametrize(
    "row, match",
    [
        (("A", "A", 1.0, 2.0), "itself"),
        (("A", "B", 3.0, 2.0), "score_a_total"),
        (("A", "B", -1.0, 2.0), "score_a_total"),
        (("A", "B", 1.0), "each result"),
    ],
)
def test_bad_results_raise(row, match):
    with pytest.raises(ValueError, match=match):
        fit_elo([row], {})


def test_bad_prior_and_anchor_raise():
    with pytest.raises(ValueError, match="prior_sd"):
        fit_elo([], {}, prior_sd=0.0)
    with pytest.raises(ValueError, match="anchor"):
        fit_elo([], {"r": float("nan")})
