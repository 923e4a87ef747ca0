"""The dashboard's /api/state document, built from a run's Redis (live or finished)."""

from __future__ import annotations

import time

from cluster.league_store import LeagueStore


def dashboard_state(store: LeagueStore) -> dict:
    state = store.load()
    if state is None:
        raise LookupError(f"run {store.keys.run_id!r} has no league state yet")
    meta = store.meta() or {}
    health = store.health() or {}
    table = state.table()
    ids = [p.id for p in table]
    index = {pid: i for i, pid in enumerate(ids)}
    win_rate: list[list[float | None]] = [[None] * len(ids) for _ in ids]
    games: list[list[float]] = [[0.0] * len(ids) for _ in ids]
    for key, (score_a, n) in state.results.items():
        a, b = key.split("\t")
        if a in index and b in index and n > 0:
            i, j = index[a], index[b]
            win_rate[i][j], win_rate[j][i] = score_a / n, 1.0 - score_a / n
            games[i][j] = games[j][i] = n
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
        "elo_history": store.history(),
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
