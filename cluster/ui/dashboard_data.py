"""The dashboard's /api/state document, built from a run's Redis (live or finished).

The shape is the contract documented at the top of cluster/ui/web/app.js. The payoff heat map shows the
league's decayed payoff table (league/payoff.py): win rate of the row player, None where no games.
"""

from __future__ import annotations

import time

from cluster.stores.league_store import LeagueStore


def elo_points(histories: dict[str, list[list]]) -> list[dict]:
    """Per-player histories as the page's points (one player each), ordered by time."""
    points = [
        {"t": t, "learner_version": version, "ratings": {pid: [elo, se]}}
        for pid, series in histories.items()
        for t, version, elo, se in series
    ]
    return sorted(points, key=lambda p: p["t"])


def dashboard_state(store: LeagueStore) -> dict:
    state = store.load()
    if state is None:
        raise LookupError(f"run {store.keys.run_id!r} has no league state yet")
    meta = store.meta() or {}
    health = store.health() or {}
    table = state.table()
    ids = [p.id for p in table]
    # The AlphaStar payoff (decayed, by player id): how each pair fares now, not over the whole run.
    win_rate, decayed = state.payoff.matrix(ids)
    games = [[round(n, 2) for n in row] for row in decayed]
    return {
        "run_id": store.keys.run_id,
        "game": meta.get("game", ""),
        "updated_at": health.get("updated_at", time.time()),
        "running": bool(meta.get("running", False)),
        "players": [
            {
                "id": p.id,
                "kind": p.kind,
                "version": p.version if p.version >= 0 else None,
                "elo": p.elo,
                "elo_stderr": p.elo_stderr,
                "games": p.games,
                "win_rate_vs_random": p.win_rate_vs_random(),
            }
            for p in table
        ],
        "elo_history": elo_points(store.elo_history(ids)),
        "payoff": {"players": ids, "win_rate": win_rate, "games": games},
        "health": {
            "learner_version": state.learner_version,
            "env_steps": health.get("env_steps", 0),
            "env_steps_per_s": health.get("env_steps_per_s", 0.0),
            "games": state.games_total,
            "samples_per_s": health.get("samples_per_s"),
            "staleness": health.get("staleness", {"min": None, "mean": None, "max": None}),
            "sample_reuse": health.get("sample_reuse"),
            "dropped_stale": health.get("dropped_stale", 0),
        },
    }
