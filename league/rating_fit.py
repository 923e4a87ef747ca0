"""Batch Elo fit: ratings consistent with all head-to-head results, with error bars.

An incremental k-factor update would depend on game order and say nothing about
uncertainty. This fit uses every result at once: a Bradley-Terry model in Elo units,
P(a beats b) = 1 / (1 + 10^(-(Ra - Rb)/400)), draws as half-wins (``expected_score``).
Anchors (e.g. {"random": 0.0}) fix the scale. A weak Gaussian prior keeps the
estimate finite when a player has only wins (the MLE would be +infinity) and when
a player is connected to no anchor. The MAP estimate is found with Newton's method;
the standard error is the square root of the diagonal of the inverse Hessian of
the negative log-posterior (the Laplace approximation).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

ELO_SCALE = 400.0  # Elo points for 10:1 odds

# d/dR of the logit: P = sigmoid(C * (Ra - Rb)) with C = ln(10) / 400.
_C = math.log(10.0) / ELO_SCALE
_MAX_ITERS = 100
_TOL_ELO = 1e-9


def expected_score(r_a: float, r_b: float) -> float:
    """P(a beats b) under the model this fit assumes, with draws counting as half a win."""
    return 1.0 / (1.0 + 10.0 ** ((r_b - r_a) / ELO_SCALE))


@dataclass(frozen=True)
class RatingEstimate:
    """Fitted Elo, its standard error (Elo points), and the games it rests on."""

    elo: float
    stderr: float
    games: float


def _validate(results: Iterable[tuple[str, str, float, float]]) -> list[tuple[str, str, float, float]]:
    checked = []
    for row in results:
        if len(row) != 4:
            raise ValueError(f"each result must be (player_a, player_b, score_a_total, games); got {row!r}")
        a, b, s, n = row
        if a == b:
            raise ValueError(f"result {row!r} pits a player against itself; drop it")
        if not (math.isfinite(s) and math.isfinite(n)) or n < 0 or not 0.0 <= s <= n:
            raise ValueError(f"result {row!r} needs 0 <= score_a_total <= games (wins + draws/2 over games)")
        if n > 0:
            checked.append((a, b, float(s), float(n)))
    return checked


class _Problem:
    """Aggregated results as index arrays; ``ratings`` maps a free vector to all players."""

    def __init__(self, rows, free: list[str], anchors: Mapping[str, float], mu: float, prior_sd: float):
        pos = {pid: i for i, pid in enumerate(free)}
        self.n_free = len(free)
        self.mu, self.prior_var = mu, prior_sd**2
        # Anchors get index -1 and contribute their fixed rating through `fixed`.
        self.ia = np.array([pos.get(a, -1) for a, _, _, _ in rows], dtype=int)
        self.ib = np.array([pos.get(b, -1) for _, b, _, _ in rows], dtype=int)
        self.fixed_a = np.array([anchors.get(a, 0.0) for a, _, _, _ in rows], dtype=float)
        self.fixed_b = np.array([anchors.get(b, 0.0) for _, b, _, _ in rows], dtype=float)
        self.s = np.array([r[2] for r in rows], dtype=float)
        self.n = np.array([r[3] for r in rows], dtype=float)

    def _diff(self, r: np.ndarray) -> np.ndarray:
        ext = np.append(r, 0.0)  # index -1 reads this 0.0; anchors add their fixed rating
        ra = np.where(self.ia >= 0, ext[self.ia], self.fixed_a)
        rb = np.where(self.ib >= 0, ext[self.ib], self.fixed_b)
        return _C * (ra - rb)

    def log_post(self, r: np.ndarray) -> float:
        x = self._diff(r)
        # log sigmoid(x) = -logaddexp(0, -x), stable for large |x|.
        ll = -(self.s * np.logaddexp(0.0, -x) + (self.n - self.s) * np.logaddexp(0.0, x)).sum()
        return float(ll - ((r - self.mu) ** 2).sum() / (2.0 * self.prior_var))

    def grad_and_info(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gradient of the log-posterior and its negated Hessian (positive definite)."""
        x = self._diff(r)
        p = 1.0 / (1.0 + np.exp(-x))
        g_row = _C * (self.s - self.n * p)
        w_row = _C**2 * self.n * p * (1.0 - p)
        size = self.n_free + 1  # the extra slot collects anchor terms, then is dropped
        ia = np.where(self.ia >= 0, self.ia, self.n_free)
        ib = np.where(self.ib >= 0, self.ib, self.n_free)
        grad = np.zeros(size)
        np.add.at(grad, ia, g_row)
        np.add.at(grad, ib, -g_row)
        info = np.zeros((size, size))
        np.add.at(info, (ia, ia), w_row)
        np.add.at(info, (ib, ib), w_row)
        np.add.at(info, (ia, ib), -w_row)
        np.add.at(info, (ib, ia), -w_row)
        grad = grad[:-1] - (r - self.mu) / self.prior_var
        info = info[:-1, :-1] + np.eye(self.n_free) / self.prior_var
        return grad, info


def _newton(problem: _Problem) -> tuple[np.ndarray, np.ndarray]:
    """Maximise the (strictly concave) log-posterior; return (ratings, inverse info)."""
    r = np.full(problem.n_free, problem.mu)
    for _ in range(_MAX_ITERS):
        grad, info = problem.grad_and_info(r)
        step = np.linalg.solve(info, grad)
        # Step halving guards the first iterations, where lopsided results can overshoot.
        current, t = problem.log_post(r), 1.0
        while problem.log_post(r + t * step) < current and t > 1e-8:
            t *= 0.5
        r = r + t * step
        if np.max(np.abs(t * step), initial=0.0) < _TOL_ELO:
            break
    _, info = problem.grad_and_info(r)
    return r, np.linalg.inv(info)


def fit_elo(
    results: Iterable[tuple[str, str, float, float]],
    anchors: Mapping[str, float],
    prior_sd: float = 400.0,
) -> dict[str, RatingEstimate]:
    """MAP Elo ratings for every player in ``results`` and ``anchors``.

    Each result is (player_a, player_b, score_a_total, games) with
    score_a_total = wins + draws/2 of a over ``games`` (fractional, e.g. decayed,
    counts are fine). Anchors keep their given rating with stderr 0. Every other
    player gets a Gaussian prior N(mean of anchors or 0, prior_sd^2); it barely
    moves well-measured players but keeps all-wins and anchor-less players finite
    (the latter get a large stderr, which is the honest answer).
    """
    if not (prior_sd > 0.0 and math.isfinite(prior_sd)):
        raise ValueError(f"prior_sd must be positive and finite (Elo points); got {prior_sd!r}")
    for pid, value in anchors.items():
        if not math.isfinite(value):
            raise ValueError(f"anchor {pid!r} needs a finite rating; got {value!r}")
    rows = _validate(results)

    games: dict[str, float] = {pid: 0.0 for pid in anchors}
    for a, b, _, n in rows:
        games[a] = games.get(a, 0.0) + n
        games[b] = games.get(b, 0.0) + n
    free = [pid for pid in games if pid not in anchors]
    mu = float(np.mean(list(anchors.values()))) if anchors else 0.0

    out = {pid: RatingEstimate(float(value), 0.0, games[pid]) for pid, value in anchors.items()}
    if free:
        ratings, cov = _newton(_Problem(rows, free, anchors, mu, prior_sd))
        for i, pid in enumerate(free):
            out[pid] = RatingEstimate(float(ratings[i]), float(math.sqrt(cov[i, i])), games[pid])
    return out
