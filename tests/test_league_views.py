"""Views of a league of thousands: the player selection (league/views.py), `selfplay league` and the
dashboard's /api/state document read from a real redis-server holding 1,200 snapshots, and the
latest policy's strength against each reference (league/strength.py) from games through the real
league manager into Redis and out to the document."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cluster.run.cli import main
from cluster.stores.keys import RunKeys
from cluster.stores.league_store import LeagueStore
from cluster.ui.dashboard_data import MAX_CURVES, MAX_PAYOFF, MAX_POINTS, DashboardData, dashboard_state, thin
from league.config import LeagueConfig
from league.league import LeagueState, Player, snapshot_id
from league.manager import LeagueManager
from league.records import LEARNER_ID, RANDOM_ID, GameResult
from league.strength import StrengthTracker, score_interval
from league.views import Selection, default_curves, select_players

SNAPSHOTS = 1200
REFERENCE = "tactical"


def elo_of(v: int) -> float:
    """A made-up but unambiguous Elo: rises with the version, with a dip so the top is not the newest."""
    return 1000.0 * v / SNAPSHOTS - (400.0 if v >= SNAPSHOTS - 20 else 0.0)


def big_league(store: LeagueStore, n: int = SNAPSHOTS, history_points: int = 3) -> LeagueState:
    """A league of n snapshots saved in Redis, every player with an Elo history and the payoff of
    each snapshot against its predecessor, random and the learner (built directly, in seconds)."""
    state = LeagueState.new((RANDOM_ID,), (REFERENCE,))
    for v in range(n):
        p = state.add_snapshot(v)
        p.elo, p.elo_stderr = elo_of(v), 20.0 + v % 7
    state.players[LEARNER_ID].elo, state.players[LEARNER_ID].elo_stderr = 950.0, 18.0
    state.players[REFERENCE].elo, state.players[REFERENCE].elo_stderr = 500.0, 12.0
    rng = np.random.default_rng(0)
    for v in range(n):
        me = snapshot_id(v)
        for other in (RANDOM_ID, LEARNER_ID, *([snapshot_id(v - 1)] if v else [])):
            state.payoff.update(me, other, float(rng.choice([0.0, 0.5, 1.0])))
    store.save(state)
    for k in range(history_points):
        store.record_ratings(list(state.players.values()), learner_version=k, t=1000.0 + k)
    return state


@pytest.fixture
def league(redis_client):
    store = LeagueStore(redis_client, RunKeys("views", "big"))
    store.set_meta({"run_id": "big", "game": "connect_four_v3", "running": True})
    return store, big_league(store)


# ---- the selection, pure ---------------------------------------------------------------------


def _players() -> list[Player]:
    out = [Player(LEARNER_ID, "learner", 40, elo=300.0), Player(RANDOM_ID, "reference", -1, elo=0.0),
           Player("tactical", "reference", -1, elo=500.0)]
    out += [Player(snapshot_id(v), "snapshot", v, elo=10.0 * v) for v in range(40)]
    return out


def test_default_selection_is_latest_references_top_and_newest():
    shown = select_players(_players(), Selection(top=3, newest=2))
    ids = [p.id for p in shown.players]
    # Top 3 by Elo: tactical (500), v000039 (390), v000038 (380); newest 2 are v000039, v000038.
    assert ids == ["tactical", "v000039", "v000038", LEARNER_ID, RANDOM_ID]
    assert (shown.matched, shown.total) == (43, 43)
    assert default_curves(shown.players, _players(), top=1) == [LEARNER_ID, RANDOM_ID, "tactical", "v000039"]
    narrowed = select_players(_players(), Selection(filter="v00001"))
    assert default_curves(narrowed.players, _players()) == [LEARNER_ID, RANDOM_ID, "tactical", "v000019", "v000018", "v000017"]


def test_filter_narrows_everything_and_all_shows_every_match():
    shown = select_players(_players(), Selection(top=2, newest=1, filter="V00001"))
    assert [p.id for p in shown.players] == ["v000019", "v000018"]  # top 2 are also the newest
    assert shown.matched == 10
    every = select_players(_players(), Selection(filter="v00001", all=True))
    assert [p.id for p in every.players] == [snapshot_id(v) for v in range(19, 9, -1)]
    with pytest.raises(ValueError, match="0 or more"):
        Selection(top=-1)


def test_score_interval_golden_values():
    assert score_interval(0, 0, 0) == (0.5, 0.0, 1.0)
    score, lo, hi = score_interval(15, 2, 3)  # 16/20 = 0.8: Wilson (z=1.96) [0.584, 0.919]
    assert score == pytest.approx(0.8)
    assert (lo, hi) == (pytest.approx(0.5840, abs=1e-4), pytest.approx(0.9193, abs=1e-4))
    assert score_interval(10, 0, 0)[1:] == (pytest.approx(0.7225, abs=1e-4), 1.0)


def test_thin_keeps_the_ends_and_the_limit():
    series = list(range(1000))
    out = thin(series, 250)
    assert len(out) == 250 and out[0] == 0 and out[-1] == 999 and out == sorted(out)
    assert thin(series[:10], 250) == series[:10]


# ---- selfplay league on a real Redis ---------------------------------------------------------


def test_selfplay_league_prints_a_bounded_table_with_standard_errors(league, redis_server, capsys):
    store, state = league
    base = ["league", "--redis-url", redis_server.url, "--prefix", "views", "--run", "big"]
    assert main([*base, "--top", "20", "--newest", "5"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith(f"28 of {SNAPSHOTS + 3} players: latest, the references, the top 20 by Elo and the newest 5")
    rows = [line.split() for line in out[3:]]
    assert len(rows) == 28  # latest, random, tactical, the top 20, the newest 5 (none of the top 20: they dip)
    ids = [r[0] for r in rows]
    best = sorted(state.players.values(), key=lambda p: (-p.elo, p.id))
    assert ids[:20] == [p.id for p in best[:20]]  # the top 20 by Elo, in order
    assert {snapshot_id(v) for v in range(SNAPSHOTS - 5, SNAPSHOTS)} <= set(ids)
    assert {LEARNER_ID, RANDOM_ID, REFERENCE} <= set(ids)
    elos = [float(r[3]) for r in rows]
    assert elos == sorted(elos, reverse=True)
    p = state.players[ids[0]]
    assert rows[0][3:6] == [f"{p.elo:.0f}", "±", f"{p.elo_stderr:.0f}"]

    assert main([*base, "--filter", "v0011", "--all"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith(f"100 of {SNAPSHOTS + 3} players: every player matching 'v0011'")
    assert {line.split()[0] for line in out[3:]} == {snapshot_id(v) for v in range(1100, 1200)}

    assert main([*base, "--top", "-2"]) == 2
    assert "0 or more" in capsys.readouterr().err


# ---- the dashboard document on a real Redis ----------------------------------------------------


def test_dashboard_document_stays_small_for_a_big_league(league):
    store, state = league
    doc = dashboard_state(store)
    body = json.dumps(doc, allow_nan=False)
    assert len(body) < 60_000, len(body)
    assert doc["league"] == {"players": SNAPSHOTS + 3, "matched": SNAPSHOTS + 3, "shown": 18, "truncated": False}
    ids = [p["id"] for p in doc["players"]]
    assert doc["payoff"]["players"] == ids
    assert doc["selection"]["curves"] == default_curves([state.players[i] for i in ids], state.players.values())
    assert set(doc["elo_history"]) == set(doc["selection"]["curves"])
    assert doc["elo_history"][LEARNER_ID] == [[1000.0 + k, k, 950.0, 18.0] for k in range(3)]
    # The payoff cells are the stored pairs', read pair by pair.
    i, j = ids.index(snapshot_id(SNAPSHOTS - 1)), ids.index(snapshot_id(SNAPSHOTS - 2))
    saved = store.load().payoff
    assert doc["payoff"]["win_rate"][i][j] == pytest.approx(saved.win_rate(snapshot_id(SNAPSHOTS - 1), snapshot_id(SNAPSHOTS - 2)))
    assert doc["payoff"]["win_rate"][i][i] is None

    everyone = dashboard_state(store, {"all": "1", "curves": ",".join(snapshot_id(v) for v in range(40))})
    assert len(json.dumps(everyone)) < 300_000
    assert everyone["league"]["shown"] == 200 and everyone["league"]["truncated"]
    assert len(everyone["payoff"]["players"]) == MAX_PAYOFF
    assert list(everyone["elo_history"]) == [snapshot_id(v) for v in range(MAX_CURVES)]

    picked = dashboard_state(store, {"filter": "v00050", "top": "3", "newest": "0", "payoff": "latest,random,nobody", "curves": ""})
    assert [p["id"] for p in picked["players"]] == ["v000509", "v000508", "v000507"]
    assert picked["payoff"]["players"] == [LEARNER_ID, RANDOM_ID] and picked["elo_history"] == {}
    with pytest.raises(ValueError, match="top='many' must be a whole number"):
        dashboard_state(store, {"top": "many"})


def test_dashboard_data_reads_only_what_changed(league):
    store, state = league
    data = DashboardData(store)
    data()
    state.players[snapshot_id(3)].elo = 5000.0
    state.changed.add(snapshot_id(3))
    store.save(state)
    got = store.changes_since(data.league("")._epoch, data.league("")._revision)
    assert [p.id for p in got[3]] == [snapshot_id(3)]  # what the next poll reads
    assert data()["players"][0]["id"] == snapshot_id(3)


def test_long_histories_are_thinned_in_the_document(redis_client):
    store = LeagueStore(redis_client, RunKeys("views", "long"), max_history=2000)
    state = LeagueState.new((RANDOM_ID,))
    store.save(state)
    for k in range(600):
        store.record_ratings([state.players[LEARNER_ID]], k, t=float(k))
    doc = dashboard_state(store)
    series = doc["elo_history"][LEARNER_ID]
    assert len(series) == MAX_POINTS and series[0][0] == 0.0 and series[-1][0] == 599.0


# ---- strength over time: evaluator games -> manager -> Redis -> document -------------------------


class _NoSnapshots:
    def latest_version(self) -> int:
        return -1

    def snapshot_from_published(self, player_id: str, version: int) -> None:
        raise AssertionError("no snapshot is due")


def eval_games(round_index: int, version: int, reference: str, scores: list[float]) -> list[GameResult]:
    out = []
    for k, s in enumerate(scores):  # seats alternate, as an evaluator plays them
        players, versions, sc = (LEARNER_ID, reference), (version, -1), (s, 1.0 - s)
        if k % 2:
            players, versions, sc = players[::-1], versions[::-1], sc[::-1]
        out.append(GameResult(f"r{round_index}-{reference}-{k}", players, versions, sc, 9, "eval", 1.0, 0.0))
    return out


def test_strength_series_from_rating_games(redis_client):
    store = LeagueStore(redis_client, RunKeys("views", "strength"))
    state = LeagueState.new((RANDOM_ID,), (REFERENCE,))
    state.last_snapshot_version = 0  # no snapshot is due: this test is about the games
    store.save(state)
    manager = LeagueManager(store, _NoSnapshots(), LeagueConfig(), state)
    store.push_games(eval_games(0, 3, RANDOM_ID, [1.0] * 8 + [0.5, 0.0]) + eval_games(0, 3, REFERENCE, [0.0] * 9 + [1.0]))
    # Not the latest's rating games: a training game and a snapshot's rating game count nowhere.
    store.push_games([GameResult("t1", (LEARNER_ID, RANDOM_ID), (3, -1), (1.0, 0.0), 9, "train", 1.0, 0.0)])
    manager.step(3, env_steps=5000)
    manager.step(3, env_steps=6000)  # no new games: no new point
    store.push_games(eval_games(1, 7, RANDOM_ID, [1.0] * 10))
    manager.step(7, env_steps=9000)
    history = store.strength_history([RANDOM_ID, REFERENCE, "nobody"])
    assert set(history) == {RANDOM_ID, REFERENCE}
    assert [p[1:] for p in history[RANDOM_ID]] == [[5000, 3, 8, 1, 1], [9000, 7, 10, 0, 0]]
    assert [p[1:] for p in history[REFERENCE]] == [[5000, 3, 1, 0, 9]]

    doc = dashboard_state(store)
    t, env_steps, version, w, d, l, score, lo, hi = doc["strength"][RANDOM_ID][0]
    assert (env_steps, version, w, d, l) == (5000, 3, 8, 1, 1)
    assert (score, lo, hi) == pytest.approx(score_interval(8, 1, 1))
    assert doc["strength"][REFERENCE][0][6] == pytest.approx(0.1)


def test_strength_tracker_ignores_unknown_players():
    state = LeagueState.new((RANDOM_ID,))
    tracker = StrengthTracker()
    tracker.add(GameResult("g", (LEARNER_ID, "gone"), (1, -1), (1.0, 0.0), 9, "eval", 1.0, 0.0), state)
    tracker.add(GameResult("h", (RANDOM_ID, LEARNER_ID), (-1, 2), (1.0, 0.0), 9, "eval", 1.0, 0.0), state)
    points = tracker.take()
    assert list(points) == [RANDOM_ID] and (points[RANDOM_ID].version, points[RANDOM_ID].losses) == (2, 1)
    assert tracker.take() == {}
