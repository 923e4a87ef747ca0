"""Elo ratings for a league of thousands: the fit of rating_fit.py, sparse, warm-started, incremental.

rating_fit.fit_elo solves the whole problem from scratch with a dense Hessian: exact, and the
reference this class is tested against, but its cost grows with the cube of the number of players
(3.8 s at 1,000 snapshots). A league's evidence is sparse (a snapshot plays the references, the
learner and a few predecessors), and between two fits only a few players get new games. So:

- the results live in flat arrays (one row per pair of players), updated in place as games arrive;
- the fit is Newton's method on the same log-posterior with a sparse Hessian (scipy's sparse LU),
  warm-started from the previous ratings, so a fit after a few new games takes one or two steps;
- standard errors (sqrt of the diagonal of the inverse Hessian) need one solve per player, so each
  fit refreshes those of the players whose evidence changed and a rotating slice of the others
  (all of them when the league is small): a rating that no new game touched moves only through its
  neighbours, and its error bar follows within a few fits.

Same model, prior and anchors as fit_elo: P(a beats b) = 1 / (1 + 10^(-(Ra - Rb)/400)), draws as
half-wins, a N(mean of anchors, prior_sd^2) prior on every free player.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.linalg import splu

from league.rating_fit import ELO_SCALE

_C = math.log(10.0) / ELO_SCALE
_TOL_ELO = 1e-6
_MAX_ITERS = 100
REPORT_SIGMAS = 0.1
REPORT_MIN_ELO = 0.5
"""fit() reports a player when its Elo or stderr has moved by max(REPORT_MIN_ELO, REPORT_SIGMAS * stderr)
since it was last reported. Every rating is coupled to every other through shared opponents, so a
new game nudges all of them a little; reporting only moves that matter keeps a fit's writes (and
every reader's refresh) proportional to the players whose evidence really changed."""
SOLVE_ALL_BELOW = 512
"""Leagues with fewer free players than this get every standard error refreshed on every fit."""
STDERR_SLICE = 128
"""Otherwise: the players with new evidence plus this many others (rotating) per fit."""


class EloFit:
    """Rating evidence (score and games per pair) and the ratings fitted to it."""

    def __init__(self, anchors: Mapping[str, float], prior_sd: float = 400.0) -> None:
        if not (prior_sd > 0.0 and math.isfinite(prior_sd)):
            raise ValueError(f"prior_sd must be positive and finite (Elo points); got {prior_sd!r}")
        self.anchors = {k: float(v) for k, v in anchors.items()}
        self.mu = float(np.mean(list(self.anchors.values()))) if self.anchors else 0.0
        self.prior_var = prior_sd**2
        self._col: dict[str, int] = {}  # free player -> column
        self._ids: list[str] = []
        self._r = np.zeros(0)
        self._se = np.full(0, np.nan)
        self._games = np.zeros(0)
        self._reported = np.zeros((0, 2))  # (Elo, stderr) when last reported; NaN: never
        self._row: dict[tuple[str, str], int] = {}  # (a, b) with a < b -> row
        self._ra = np.zeros(0, dtype=np.int64)  # column of a, or -1 for an anchor
        self._rb = np.zeros(0, dtype=np.int64)
        self._fa = np.zeros(0)  # anchor rating of a (when _ra is -1)
        self._fb = np.zeros(0)
        self._s = np.zeros(0)  # score of a, summed
        self._n = np.zeros(0)  # games
        self._dirty: set[int] = set()  # columns with new evidence since the last fit
        self._pairs_of: dict[str, set[tuple[str, str]]] = {}  # player -> its pairs (for pop_pairs_of)
        self._touched: set[tuple[str, str]] = set()  # pairs changed since take_touched()
        self._cursor = 0

    # --- evidence --------------------------------------------------------------------------
    def add(self, a: str, b: str, score_a: float, games: float = 1.0) -> None:
        """Credit `games` games between a and b in which a scored `score_a` in total."""
        if a == b:
            raise ValueError(f"a result of {a!r} against itself carries no rating information; drop it")
        if a > b:
            a, b, score_a = b, a, games - score_a
        row = self._row.get((a, b))
        if row is None:
            row = self._new_row(a, b)
        self._s[row] += score_a
        self._n[row] += games
        self._pairs_of.setdefault(a, set()).add((a, b))
        self._pairs_of.setdefault(b, set()).add((a, b))
        self._touched.add((a, b))
        for col in (self._ra[row], self._rb[row]):
            if col >= 0:
                self._games[col] += games
                self._dirty.add(int(col))

    def pop_pairs_of(self, player: str) -> list[tuple[str, float, float]]:
        """Remove every result of `player`; return them as (opponent, player's score, games)."""
        out = []
        for a, b in self._pairs_of.pop(player, ()):
            row = self._row[(a, b)]
            if self._n[row] == 0:
                continue
            self._touched.add((a, b))
            s, n = self._s[row], self._n[row]
            out.append((b, s, n) if a == player else (a, n - s, n))
            self._s[row] = self._n[row] = 0.0
            for col in (self._ra[row], self._rb[row]):
                if col >= 0:
                    self._games[col] -= n
                    self._dirty.add(int(col))
        return out

    def take_touched(self) -> dict[tuple[str, str], tuple[float, float]]:
        """The pairs changed since the last call, with their (score of a, games) now; clears them."""
        out = {key: (float(self._s[self._row[key]]), float(self._n[self._row[key]])) for key in self._touched}
        self._touched.clear()
        return out

    def touch_all(self) -> None:
        self._touched.update(self._row)

    def touch(self, pairs) -> None:
        """Mark pairs changed again (a store whose write failed)."""
        self._touched.update(pairs)

    def pairs(self) -> Iterator[tuple[str, str, float, float]]:
        """Every pair with games: (a, b, score of a, games), a < b."""
        for (a, b), row in self._row.items():
            if self._n[row] > 0:
                yield a, b, float(self._s[row]), float(self._n[row])

    def pair(self, a: str, b: str) -> tuple[float, float] | None:
        """(score of a, games) between a and b, or None before any."""
        flip = a > b
        row = self._row.get((b, a) if flip else (a, b))
        if row is None or self._n[row] == 0:
            return None
        s, n = float(self._s[row]), float(self._n[row])
        return (n - s, n) if flip else (s, n)

    def _column(self, pid: str) -> int:
        col = self._col.get(pid)
        if col is None:
            col = self._col[pid] = len(self._ids)
            self._ids.append(pid)
            self._r = np.append(self._r, self.mu)
            self._se = np.append(self._se, np.nan)
            self._games = np.append(self._games, 0.0)
            self._reported = np.vstack([self._reported, [np.nan, np.nan]])
        return col

    def _new_row(self, a: str, b: str) -> int:
        row = self._row[(a, b)] = len(self._row)
        if row >= len(self._s):  # grow by doubling: appends stay amortised O(1)
            size = max(16, 2 * len(self._s))
            for name in ("_ra", "_rb", "_fa", "_fb", "_s", "_n"):
                old = getattr(self, name)
                grown = np.zeros(size, dtype=old.dtype)
                grown[: len(old)] = old
                setattr(self, name, grown)
        for pid, cols, fixed in ((a, self._ra, self._fa), (b, self._rb, self._fb)):
            if pid in self.anchors:
                cols[row], fixed[row] = -1, self.anchors[pid]
            else:
                cols[row], fixed[row] = self._column(pid), 0.0
        return row

    # --- the fit ---------------------------------------------------------------------------
    def fit(self) -> list[str]:
        """Refit; return the players whose Elo or stderr moved enough to report (REPORT_SIGMAS)."""
        m = len(self._row)
        if not self._ids or m == 0:
            return []
        ra, rb, fa, fb, s, n = (x[:m] for x in (self._ra, self._rb, self._fa, self._fb, self._s, self._n))
        k = len(self._ids)
        r = self._r
        for _ in range(_MAX_ITERS):
            grad, lu = self._newton_system(r, ra, rb, fa, fb, s, n)
            step = lu.solve(grad)
            if np.max(np.abs(step), initial=0.0) < _TOL_ELO:
                break  # converged: lu is the Hessian's at r, as the standard errors need
            current, t = self._log_post(r, ra, rb, fa, fb, s, n), 1.0
            while self._log_post(r + t * step, ra, rb, fa, fb, s, n) < current and t > 1e-8:
                t *= 0.5  # step halving: lopsided first steps can overshoot
            r = r + t * step
        self._r = r
        self._refresh_stderr(lu, k)
        se = np.nan_to_num(self._se, nan=0.0)
        tol = np.maximum(REPORT_MIN_ELO, REPORT_SIGMAS * se)
        rep_r, rep_se = self._reported[:, 0], self._reported[:, 1]
        # NaN comparisons are False, hence the "not below": a never-reported value always counts.
        moved = ~(np.abs(r - rep_r) < tol) | (~(np.abs(self._se - rep_se) < tol) & ~np.isnan(self._se))
        moved &= self._games > 0
        self._reported[moved, 0], self._reported[moved, 1] = r[moved], self._se[moved]
        return [self._ids[i] for i in np.flatnonzero(moved)]

    def _refresh_stderr(self, lu, k: int) -> None:
        if k <= SOLVE_ALL_BELOW:
            cols = np.arange(k)
        else:
            rest = (self._cursor + np.arange(STDERR_SLICE)) % k
            self._cursor = int((self._cursor + STDERR_SLICE) % k)
            cols = np.unique(np.concatenate([np.fromiter(self._dirty, dtype=np.int64, count=len(self._dirty)), rest]))
        for chunk in np.array_split(cols, max(1, len(cols) // SOLVE_ALL_BELOW)):  # bounded memory: k x 512 at most
            unit = np.zeros((k, len(chunk)))
            unit[chunk, np.arange(len(chunk))] = 1.0
            diag = lu.solve(unit)[chunk, np.arange(len(chunk))]
            self._se[chunk] = np.sqrt(np.maximum(diag, 0.0))
        self._dirty.clear()

    def _diff(self, r, ra, rb, fa, fb):
        ext = np.append(r, 0.0)  # column -1 reads this 0.0; anchors add their fixed rating
        return _C * ((ext[ra] + fa) - (ext[rb] + fb))

    def _log_post(self, r, ra, rb, fa, fb, s, n) -> float:
        x = self._diff(r, ra, rb, fa, fb)
        ll = -(s * np.logaddexp(0.0, -x) + (n - s) * np.logaddexp(0.0, x)).sum()
        return float(ll - ((r - self.mu) ** 2).sum() / (2.0 * self.prior_var))

    def _newton_system(self, r, ra, rb, fa, fb, s, n):
        """Gradient of the log-posterior and the LU factors of its negated (sparse) Hessian."""
        k = len(r)
        x = self._diff(r, ra, rb, fa, fb)
        p = 1.0 / (1.0 + np.exp(-x))
        g_row = _C * (s - n * p)
        w_row = _C**2 * n * p * (1.0 - p)
        ia, ib = np.where(ra >= 0, ra, k), np.where(rb >= 0, rb, k)  # slot k collects anchor terms
        grad = (np.bincount(ia, g_row, k + 1) - np.bincount(ib, g_row, k + 1))[:k] - (r - self.mu) / self.prior_var
        diag = (np.bincount(ia, w_row, k + 1) + np.bincount(ib, w_row, k + 1))[:k] + 1.0 / self.prior_var
        both = (ra >= 0) & (rb >= 0)
        rows = np.concatenate([np.arange(k), ra[both], rb[both]])
        cols = np.concatenate([np.arange(k), rb[both], ra[both]])
        vals = np.concatenate([diag, -w_row[both], -w_row[both]])
        info = coo_matrix((vals, (rows, cols)), shape=(k, k)).tocsc()
        return grad, splu(info)

    # --- reading ---------------------------------------------------------------------------
    def rating(self, pid: str) -> tuple[float, float | None] | None:
        """(Elo, standard error) of a free player with games; None otherwise (anchors included)."""
        col = self._col.get(pid)
        if col is None or self._games[col] <= 0:
            return None
        se = self._se[col]
        return float(self._r[col]), (None if math.isnan(se) else float(se))

    def rated(self) -> list[str]:
        """Every free player with games."""
        return [pid for i, pid in enumerate(self._ids) if self._games[i] > 0]
