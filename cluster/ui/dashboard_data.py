"""The dashboard's /api/state document, built from a run's Redis (live or finished).

The shape is the contract documented at the top of cluster/ui/web/app.js. Its size is bounded
whatever the league's size: the players shown (league/views.py: latest, the references, the top by
Elo and the newest snapshots, or a filter's matches, at most MAX_ROWS), the payoff heat map over at
most MAX_PAYOFF of them, at most MAX_CURVES Elo curves and the strength series against each
reference, each series at most MAX_POINTS points. The query string chooses:

    top=K  newest=N  filter=TEXT  all=1      which players (league/views.py Selection)
    curves=ID,ID,...                          whose Elo curves (absent: latest, references, the top 3)
    payoff=ID,ID,...                          the heat map's players (absent: the players shown)
    learner=NAME                              whose league (a run with roles has one per role, listed
                                              in the run's metadata; absent: the first)

A run is a set of learners, each with its own league (league/views.py run_learners): a game without
roles has one, named "", on the run's own keys; a game with roles one per role, on the role's keys
(RunKeys.for_role). Run, game, running and health are the run's; everything else is the learner's.

Reading costs per player changed since the last request (the store's revision log), not per player
in the league, apart from the O(N log K) selection over the cached records.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from cluster.stores.league_store import LeagueStore
from cluster.stores.param_store import ParamStore
from cluster.ui.guards import QueryError, query_int
from league.league import REFERENCE, Player
from league.strength import score_interval
from league.views import Selection, UnknownLearner, default_curves, pick_learner, run_learners, select_players

MAX_ROWS = 200
MAX_PAYOFF = 30
MAX_CURVES = 12
MAX_POINTS = 250
MAX_FILTER = 100


def thin(series: list, limit: int = MAX_POINTS) -> list:
    """At most `limit` points, evenly spaced over the series, its first and last kept."""
    n = len(series)
    if n <= limit:
        return series
    step = (n - 1) / (limit - 1)
    return [series[round(i * step)] for i in range(limit)]


def _ids(text: str, limit: int) -> list[str]:
    seen: dict[str, None] = {}
    for pid in text.split(","):
        if pid.strip():
            seen.setdefault(pid.strip(), None)
    return list(seen)[:limit]


def parse_selection(query: Mapping[str, str]) -> Selection:
    """The player selection a query asks for (defaults as Selection's); bad numbers are errors
    that say what is allowed."""
    return Selection(
        top=query_int(query, "top", Selection.top, MAX_ROWS),
        newest=query_int(query, "newest", Selection.newest, MAX_ROWS),
        filter=query.get("filter", "")[:MAX_FILTER],
        all=query.get("all", "") in ("1", "true", "yes"),
    )


def _player_doc(p: Player) -> dict:
    return {
        "id": p.id,
        "kind": p.kind,
        "version": p.version if p.version >= 0 else None,
        "elo": p.elo,
        "elo_stderr": p.elo_stderr,
        "games": p.games,
        "win_rate_vs_random": p.win_rate_vs_random(),
        "vs_main": p.vs_main,  # an exploiter's snapshot: its win rate against the main agent when taken
    }


def _strength_doc(series: list[list]) -> list[list]:
    out = []
    for t, env_steps, version, w, d, l in thin(series):
        score, lo, hi = score_interval(w, d, l)
        out.append([t, env_steps if env_steps >= 0 else None, version, w, d, l, score, lo, hi])
    return out


class LearnerLeague:
    """One learner's league as the dashboard reads it. It keeps every player's record and refreshes
    only those changed since its last call, as a rollout actor's LeagueReader does, so a poll of a
    league of thousands reads a few records."""

    def __init__(self, store: LeagueStore) -> None:
        self.store = store
        self._lock = threading.Lock()  # the server answers requests on several threads
        self._epoch, self._revision = "", -1
        self._players: dict[str, Player] = {}

    def players(self) -> list[Player]:
        with self._lock:
            got = self.store.changes_since(self._epoch, self._revision)
            if got is None:
                role = f" (learner {self.store.keys.role!r})" if self.store.keys.role else ""
                raise LookupError(f"run {self.store.keys.run_id!r}{role} has no league state yet")
            epoch, revision, _, changed, everyone = got
            if everyone:
                self._players = {}
            self._players.update((p.id, p) for p in changed)
            self._epoch, self._revision = epoch, revision
            return list(self._players.values())

    def document(self, query: Mapping[str, str]) -> tuple[dict, dict]:
        """The learner's part of the document (its players, curves, strength and payoff) and its
        league's meta document."""
        sel = parse_selection(query)
        players = self.players()
        shown = select_players(players, sel)
        rows = shown.players[:MAX_ROWS]
        known = {p.id for p in players}
        if "curves" in query:
            curves = [pid for pid in _ids(query["curves"], MAX_CURVES) if pid in known]
        else:
            curves = default_curves(rows, players)[:MAX_CURVES]
        if "payoff" in query:
            in_payoff = [pid for pid in _ids(query["payoff"], MAX_PAYOFF) if pid in known]
        else:
            in_payoff = [p.id for p in rows[:MAX_PAYOFF]]
        league = self.store.league_meta() or {}
        win_rate, games = self.store.payoff_matrix(in_payoff, float(league.get("payoff_min_games", 1e-9)))
        references = sorted(p.id for p in players if p.kind == REFERENCE)
        return {
            "league": {"players": shown.total, "matched": shown.matched, "shown": len(rows), "truncated": len(rows) < len(shown.players)},
            "selection": {"top": sel.top, "newest": sel.newest, "filter": sel.filter, "all": sel.all, "curves": curves, "payoff": in_payoff},
            "players": [_player_doc(p) for p in rows],
            "elo_history": {pid: thin(series) for pid, series in self.store.elo_history(curves).items()},
            "strength": {ref: _strength_doc(series) for ref, series in self.store.strength_history(references).items()},
            # Leduc only: [t, version, latest, mixture, snapshots] (chips per hand a best response wins)
            "exploitability": thin(self.store.exploitability_history()),
            "payoff": {"players": in_payoff, "win_rate": win_rate, "games": [[round(n, 2) for n in row] for row in games]},
        }, league


class DashboardData:
    """The data source of `selfplay dashboard`: call it with the request's query parameters.

    `store` is the run's (its run-level keys); the learners come from the run's metadata, each read
    through its own LearnerLeague, made on first use and kept (a run has a handful of learners)."""

    def __init__(self, store: LeagueStore) -> None:
        self.store = store
        self._leagues: dict[str, LearnerLeague] = {}
        self._lock = threading.Lock()

    def league(self, learner: str) -> LearnerLeague:
        with self._lock:
            if learner not in self._leagues:
                keys = self.store.keys.for_role(learner)
                self._leagues[learner] = LearnerLeague(self.store if keys == self.store.keys else LeagueStore(self.store.r, keys, self.store.max_history))
            return self._leagues[learner]

    def players(self, learner: str = "") -> list[Player]:
        return self.league(learner).players()

    def __call__(self, query: Mapping[str, str] | None = None) -> dict:
        query = query or {}
        meta = self.store.meta() or {}
        learners = run_learners(meta.get("roles"))
        try:
            learner = pick_learner(query.get("learner", ""), learners, self.store.keys.run_id)
        except UnknownLearner as exc:
            raise QueryError(str(exc), status=404, extra={"learners": learners}) from None
        doc, league = self.league(learner).document(query)
        health = self.store.health() or {}
        if learner:  # the league's meta counts the version of whoever it rates; the tile is this learner's own
            version = ParamStore(self.store.r, self.store.keys.for_role(learner)).latest_version()
            learner_version = version if version >= 0 else None
        else:
            learner_version = league.get("learner_version")
        return {
            "run_id": self.store.keys.run_id,
            "game": meta.get("game", ""),
            "updated_at": health.get("updated_at", time.time()),
            "running": bool(meta.get("running", False)),
            "learners": learners,
            "learner": learner,
            **doc,
            "health": {
                "learner_version": learner_version,
                "env_steps": health.get("env_steps", 0),
                "env_steps_per_s": health.get("env_steps_per_s", 0.0),
                "games": league.get("games_total", 0),
                "samples_per_s": health.get("samples_per_s"),
                "staleness": health.get("staleness", {"min": None, "mean": None, "max": None}),
                "sample_reuse": health.get("sample_reuse"),
                "dropped_stale": health.get("dropped_stale", 0),
            },
        }


def dashboard_state(store: LeagueStore, query: Mapping[str, str] | None = None) -> dict:
    """One document, read afresh (tests, one-off reads); the server keeps a DashboardData instead."""
    return DashboardData(store)(query)
