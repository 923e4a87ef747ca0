import math

import pytest

from league.elo import ELO_SCALE, elo_update, expected_score


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


def test_equal_players_win():
    assert elo_update(1500, 1500, 1.0) == (1516.0, 1484.0)


def test_equal_players_draw_and_loss():
    assert elo_update(1500, 1500, 0.5) == (1500.0, 1500.0)
    assert elo_update(1500, 1500, 0.0) == (1484.0, 1516.0)


def test_asymmetric_golden():
    # Favourite (+400, expected 10/11) wins: gains 32 * (1 - 10/11) = 32/11.
    a, b = elo_update(1900, 1500, 1.0)
    assert a == pytest.approx(1900 + 32 / 11, abs=1e-9)
    assert b == pytest.approx(1500 - 32 / 11, abs=1e-9)
    # Underdog (expected 1/11) wins with k=16: gains 16 * 10/11.
    a, b = elo_update(1500, 1900, 1.0, k=16)
    assert a == pytest.approx(1500 + 160 / 11, abs=1e-9)
    assert b == pytest.approx(1900 - 160 / 11, abs=1e-9)
    # Favourite at +200 draws: loses 32 * (0.5 - 0.75974692664795...) = -8.3119...
    a, b = elo_update(1700, 1500, 0.5)
    assert a == pytest.approx(1700 - 8.311901652734650, abs=1e-9)
    assert b == pytest.approx(1500 + 8.311901652734650, abs=1e-9)


def test_pinned_players_never_move():
    assert elo_update(1500, 0, 1.0, pinned_b=True) == pytest.approx((1500 + 32 * (1 - expected_score(1500, 0)), 0.0))
    a, b = elo_update(0, 1500, 1.0, pinned_a=True)
    assert a == 0.0 and b < 1500
    assert elo_update(100, 200, 0.0, pinned_a=True, pinned_b=True) == (100, 200)


def test_update_is_zero_sum_when_unpinned():
    a, b = elo_update(1234.0, 1111.0, 0.0, k=24)
    assert a + b == pytest.approx(1234.0 + 1111.0)
    assert not math.isclose(a, 1234.0)


@pytest.mark.parametrize("bad", [2.0, -1.0, 0.25])
def test_bad_score_raises(bad):
    with pytest.raises(ValueError, match="score_a"):
        elo_update(1500, 1500, bad)


def test_negative_k_raises():
    with pytest.raises(ValueError, match="k must"):
        elo_update(1500, 1500, 1.0, k=-1)
