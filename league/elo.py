"""Incremental Elo: the cheap online rating the league updates after every game.

The batch, uncertainty-aware fit lives in ``league.rating_fit``; this module is the
k-factor update used for live dashboards, where one game at a time arrives.
"""

from __future__ import annotations

ELO_SCALE = 400.0

_VALID_SCORES = (0.0, 0.5, 1.0)


def expected_score(r_a: float, r_b: float) -> float:
    """P(a beats b) under Elo, with draws counting as half a win."""
    return 1.0 / (1.0 + 10.0 ** ((r_b - r_a) / ELO_SCALE))


def elo_update(
    r_a: float,
    r_b: float,
    score_a: float,
    k: float = 32.0,
    pinned_a: bool = False,
    pinned_b: bool = False,
) -> tuple[float, float]:
    """Return the new (r_a, r_b) after one game in which a scored ``score_a``.

    A pinned player (a reference such as "random" anchored at a fixed rating) never
    moves, so the scale of the whole league stays tied to it; the other player still
    moves by the usual amount, which means the update is not zero-sum then.
    """
    if score_a not in _VALID_SCORES:
        raise ValueError(f"score_a must be one of {_VALID_SCORES} (loss, draw, win); got {score_a!r}")
    if k < 0:
        raise ValueError(f"k must be non-negative; got {k!r}")
    delta = k * (score_a - expected_score(r_a, r_b))
    new_a = r_a if pinned_a else r_a + delta
    new_b = r_b if pinned_b else r_b - delta
    return new_a, new_b
