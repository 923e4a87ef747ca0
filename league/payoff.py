"""AlphaStar-style payoff table: decayed wins/draws/losses per ordered pair.

As in AlphaStar's pseudocode, each game between a and b first multiplies the a-b counts (both
orientations) by ``decay`` and then adds the new result: a pair's table tracks the last ~1/(1-decay)
games *of that pair*. Decaying every pair on every game instead would make rare pairs (rating games
against a scripted bot, old snapshots) vanish within seconds in a league that records hundreds of
games a second. Win rates feed PFSP and the dashboard's heat map.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

_VALID_SCORES = (0.0, 0.5, 1.0)
_W, _D, _L, _G = range(4)
_DICT_KEYS = {"decay", "min_games", "players", "records"}


def shrunk_win_rate(wins: float, draws: float, games: float, prior_games: float) -> float:
    """(W + D/2 + k/2) / (G + k) with k = ``prior_games``: a Beta prior of k pseudo-games, half won.

    The raw rate (W + D/2) / G reads one win against a new snapshot as x = 1, PFSP-hard's weight
    (1 - x)^2 as 0 and verification's x < 0.7 as false: the snapshot is never drawn again, so its
    rate never moves. With k > 0 the rate moves towards the evidence as games come in and never
    reaches 0 or 1; with decay < 1 a pair's decayed count stays below 1 / (1 - decay), which bounds
    it: at decay 0.99 and k = 4 a snapshot beaten in every game keeps x <= 102/104, a PFSP-hard
    weight >= 3.7e-4. k = 0: the raw rate (0.5 before any game)."""
    if prior_games < 0.0:
        raise ValueError(f"prior_games must be >= 0 (0: the raw win rate); got {prior_games!r}")
    if games + prior_games <= 0.0:
        return 0.5
    return (wins + 0.5 * draws + 0.5 * prior_games) / (games + prior_games)


class Payoff:
    """Decayed results for every ordered pair (a, b), stored from a's side.

    Entries are kept for both (a, b) and its mirror (b, a), so lookups never need
    to know which seat a player had.
    """

    def __init__(self, decay: float = 0.99, min_games: float = 1e-9) -> None:
        if not 0.0 < decay <= 1.0:
            raise ValueError(f"decay must be in (0, 1] (1 disables decay); got {decay!r}")
        if min_games <= 0.0:
            raise ValueError(f"min_games must be positive (use a tiny value like 1e-9 to disable); got {min_games!r}")
        self.decay = float(decay)
        self.min_games = float(min_games)
        # Insertion-ordered, so players() lists them in the order they first played.
        self._players: dict[str, None] = {}
        self._records: dict[tuple[str, str], list[float]] = {}
        self._touched: set[tuple[str, str]] = set()  # pairs (a < b) changed since take_touched()

    def update(self, a: str, b: str, score_a: float) -> None:
        """Record one game a vs b in which a scored ``score_a`` (1 win, 0.5 draw, 0 loss)."""
        if score_a not in _VALID_SCORES:
            raise ValueError(f"score_a must be one of {_VALID_SCORES} (loss, draw, win); got {score_a!r}")
        if a == b:
            # A player's win rate against itself is 0.5 by definition; recording it
            # would only double-count and dilute nothing useful.
            raise ValueError(f"cannot record a game of {a!r} against itself; skip self-play games in the payoff")
        for pid in (a, b):
            self._players.setdefault(pid, None)
        self._add(a, b, score_a)
        self._add(b, a, 1.0 - score_a)
        self._touched.add((a, b) if a < b else (b, a))

    def take_touched(self) -> dict[tuple[str, str], list[float]]:
        """The pairs (a < b) changed since the last call, with a's record now; clears them."""
        out = {key: list(self._records[key]) for key in self._touched}
        self._touched.clear()
        return out

    def touch_all(self) -> None:
        self._touched.update((a, b) for a, b in self._records if a < b)

    def touch(self, pairs) -> None:
        """Mark pairs changed again (a store whose write failed)."""
        self._touched.update(pairs)

    def set_pair(self, a: str, b: str, record: Sequence[float]) -> None:
        """Restore a pair from a store: a's (wins, draws, losses, games) against b, and the mirror."""
        if len(record) != 4:
            raise ValueError(f"record {a!r} vs {b!r} must be [wins, draws, losses, games]; got {record!r}")
        w, d, l, g = (float(x) for x in record)
        for pid in (a, b):
            self._players.setdefault(pid, None)
        self._records[(a, b)] = [w, d, l, g]
        self._records[(b, a)] = [l, d, w, g]

    def _add(self, a: str, b: str, score_a: float) -> None:
        rec = self._records.setdefault((a, b), [0.0, 0.0, 0.0, 0.0])
        for i in range(4):
            rec[i] *= self.decay
        rec[{1.0: _W, 0.5: _D, 0.0: _L}[score_a]] += 1.0
        rec[_G] += 1.0

    def games(self, a: str, b: str) -> float:
        """Decayed number of games between a and b."""
        rec = self._records.get((a, b))
        return rec[_G] if rec else 0.0

    def record(self, a: str, b: str) -> tuple[float, float, float, float]:
        """Decayed (wins, draws, losses, games) of a against b."""
        rec = self._records.get((a, b))
        return tuple(rec) if rec else (0.0, 0.0, 0.0, 0.0)  # type: ignore[return-value]

    def win_rate(self, a: str, b: str) -> float:
        """(W + D/2) / G of a against b; 0.5 until ``min_games`` decayed games exist,
        so PFSP treats an unknown opponent as an even match."""
        w, d, _, g = self.record(a, b)
        if g < self.min_games:
            return 0.5
        return (w + 0.5 * d) / g

    def pfsp_win_rate(self, a: str, b: str, prior_games: float) -> float:
        """a's win rate against b as PFSP should weigh it: shrunk towards 0.5 by ``prior_games``
        pseudo-games (see shrunk_win_rate), so one result never reads as a certainty."""
        w, d, _, g = self.record(a, b)
        return shrunk_win_rate(w, d, g, prior_games)

    def players(self) -> list[str]:
        """Every player that has a recorded game, in first-seen order."""
        return list(self._players)

    def matrix(self, ids: Sequence[str]) -> tuple[list[list[float | None]], list[list[float]]]:
        """Row-player win rates and decayed game counts for a heat map.

        A win-rate cell is None on the diagonal and where fewer than ``min_games``
        were played, so a plot can show "no data" rather than a fake 0.5.
        """
        rates: list[list[float | None]] = []
        games: list[list[float]] = []
        for a in ids:
            games.append([self.games(a, b) for b in ids])
            rates.append(
                [None if a == b or self.games(a, b) < self.min_games else self.win_rate(a, b) for b in ids]
            )
        return rates, games

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (str keys, floats, lists) so msgpack/JSON can store it."""
        records: dict[str, dict[str, list[float]]] = {}
        for (a, b), rec in self._records.items():
            records.setdefault(a, {})[b] = [float(x) for x in rec]
        return {
            "decay": self.decay,
            "min_games": self.min_games,
            "players": list(self._players),
            "records": records,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Payoff:
        """Inverse of ``to_dict``."""
        keys = set(data)
        if keys != _DICT_KEYS:
            raise ValueError(f"payoff dict must have exactly the keys {sorted(_DICT_KEYS)}; got {sorted(keys)}")
        payoff = cls(decay=data["decay"], min_games=data["min_games"])
        for pid in data["players"]:
            payoff._players[str(pid)] = None
        for a, row in data["records"].items():
            for b, rec in row.items():
                if len(rec) != 4:
                    raise ValueError(f"record {a!r} vs {b!r} must be [wins, draws, losses, games]; got {rec!r}")
                if a not in payoff._players or b not in payoff._players:
                    raise ValueError(f"record {a!r} vs {b!r} names a player missing from 'players'")
                payoff._records[(str(a), str(b))] = [float(x) for x in rec]
        return payoff
