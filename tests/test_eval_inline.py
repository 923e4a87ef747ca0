"""A short real run, in-process (cluster/run/inline.py) with the session's real redis-server: the Elo
the league reports comes from evaluator games, and it says the trained policy beats random.

Bounded in env steps, so the outcome depends on the seed, not on machine load. The config is this
test's own (configs/tictactoe_learn.yaml belongs to the learning test).
"""

from __future__ import annotations

import json

import pytest

from cluster.config import config_from_dict
from cluster.run.inline import run_inline
from cluster.stores.connection import connect
from cluster.stores.keys import RunKeys
from cluster.stores.league_store import LeagueStore
from cluster.ui.dashboard_data import DashboardData, dashboard_state
from league.records import LEARNER_ID, RANDOM_ID

STEPS = 50_000
CONFIG = {
    "game": {"name": "tictactoe_v3"},
    "model": {"hidden_sizes": [64, 64]},
    "ppo": {"lr": 0.002, "batch_size": 512, "minibatch_size": 128, "epochs": 4, "ent_coef": 0.003},
    "rollout": {"num_actors": 1, "envs_per_actor": 32, "segment_length": 16},
    "league": {"sampler": "uniform", "snapshot_every": 10, "rate_training_games": False},
    "eval": {"num_evaluators": 1, "games_per_pair": 40, "snapshots_per_round": 1},
    "redis": {"key_prefix": "evaltest"},
    "run": {"total_env_steps": STEPS, "seed": 1, "log_every_s": 1e9},
}

pytestmark = [pytest.mark.slow, pytest.mark.learning]  # the module's fixture trains for 50k env steps first


@pytest.fixture(scope="module")
def trained(redis_server):
    cfg = config_from_dict(CONFIG)
    client = connect(redis_server.url)
    for key in client.scan_iter("evaltest:*"):  # this module's keys only: other tests flush the database themselves
        client.delete(key)
    learner, manager, steps = run_inline(cfg, redis_server.url, "eval-inline", log=lambda s: None)
    return cfg, learner, manager, steps, LeagueStore(client, RunKeys("evaltest", "eval-inline"))


def test_latest_is_rated_well_above_random_from_rating_games(trained):
    cfg, learner, manager, steps, _ = trained
    assert steps >= STEPS
    state = manager.state
    latest, random = state.players[LEARNER_ID], state.players[RANDOM_ID]
    table = [(p.id, round(p.elo), p.elo_stderr and round(p.elo_stderr), p.games) for p in state.table()]
    assert random.elo == 0.0
    assert latest.version == learner.version and latest.elo_stderr is not None
    assert latest.elo - random.elo > 150, table
    assert latest.elo - 2 * latest.elo_stderr > 0, table  # clear of random by two standard errors
    # The evidence is rating games only: every fitted pair has a reference in it, although the
    # learner played thousands of training games against random and its own snapshots.
    references = {RANDOM_ID, "minimax"}
    assert state.results and all(set(key.split("\t")) & references for key in state.results)
    rated_games = sum(n for _, n in state.results.values())
    assert state.games_total > 10 * rated_games
    # Minimax is evaluation-only, never a training opponent, and never loses.
    minimax = state.players["minimax"]
    assert not minimax.training_opponent and minimax.losses == 0 and minimax.games > 0
    # The fit never rates the policy clearly above a player it never beat (a policy that draws every
    # game against minimax may be rated level with it, not above it by more than the noise).
    assert latest.elo <= minimax.elo + 2 * (latest.elo_stderr**2 + (minimax.elo_stderr or 0.0) ** 2) ** 0.5, table


def test_payoff_follows_training_and_rating_games(trained):
    _, _, manager, _, _ = trained
    payoff = manager.state.payoff
    snapshots = [p.id for p in manager.state.players.values() if p.kind == "snapshot"]
    assert len(snapshots) >= 3
    # Training games (uniform over random and snapshots) and rating games both land in the table.
    assert any(payoff.games(LEARNER_ID, s) > 0 for s in snapshots)
    assert payoff.games(LEARNER_ID, "minimax") > 0
    assert payoff.win_rate(LEARNER_ID, RANDOM_ID) > 0.6
    # Minimax never loses: the learner's record against it holds no win, so its rate is at most an
    # even 0.5 (exactly 0.5 for a policy that draws every game).
    wins, _, _, games = payoff.record(LEARNER_ID, "minimax")
    assert games > 0 and wins == 0.0 and payoff.win_rate(LEARNER_ID, "minimax") <= 0.5


def test_dashboard_document_carries_the_payoff(trained):
    _, _, manager, _, store = trained
    doc = json.loads(json.dumps(dashboard_state(store)))  # the HTTP body is JSON: it must survive it
    ids = doc["payoff"]["players"]
    assert ids == [p["id"] for p in doc["players"]]
    n = len(ids)
    assert len(doc["payoff"]["win_rate"]) == n and all(len(row) == n for row in doc["payoff"]["win_rate"])
    i, j = ids.index(LEARNER_ID), ids.index(RANDOM_ID)
    saved = store.load().payoff
    assert doc["payoff"]["win_rate"][i][j] == pytest.approx(saved.win_rate(LEARNER_ID, RANDOM_ID))
    assert doc["payoff"]["win_rate"][j][i] == pytest.approx(1 - saved.win_rate(LEARNER_ID, RANDOM_ID))
    assert doc["payoff"]["games"][i][j] == pytest.approx(saved.games(LEARNER_ID, RANDOM_ID), abs=0.01)
    assert all(doc["payoff"]["win_rate"][k][k] is None for k in range(n))


def test_strength_series_come_from_the_evaluators_rating_games(trained):
    """Every evaluator round's games of latest against each reference became a point in Redis, with
    the env steps the driver had reached; scores rise against random as the policy learns."""
    _, _, manager, steps, store = trained
    history = store.strength_history([RANDOM_ID, "minimax"])
    assert set(history) == {RANDOM_ID, "minimax"}
    for ref, points in history.items():
        assert len(points) >= 3, (ref, points)
        env_steps = [p[1] for p in points]
        assert env_steps == sorted(env_steps) and 0 <= env_steps[0] and env_steps[-1] <= steps
        assert all(sum(p[3:6]) > 0 for p in points)
    counted = sum(sum(p[3:6]) for points in history.values() for p in points)
    latest = manager.state.players[LEARNER_ID]
    assert counted <= manager.state.players[RANDOM_ID].games + manager.state.players["minimax"].games
    first, last = history[RANDOM_ID][0], history[RANDOM_ID][-1]
    assert (last[3] + 0.5 * last[4]) / sum(last[3:6]) > (first[3] + 0.5 * first[4]) / sum(first[3:6]), (first, last, latest.elo)
    doc = dashboard_state(store)
    assert len(doc["strength"][RANDOM_ID]) == len(history[RANDOM_ID])


@pytest.mark.browser
def test_dashboard_page_shows_the_players_of_the_real_run(trained, tmp_path):
    """The page in a real headless Chromium, fed by this run's Redis through dashboard_state."""
    import os

    from cluster.ui.dashboard import serve
    from test_dashboard import SCREENSHOT, assert_no_page_errors, load_page, run_chromium

    _, _, manager, _, store = trained
    server = serve(DashboardData(store), port=0)
    try:
        dom, console = load_page(server.url, tmp_path)
        assert_no_page_errors(dom, console)
        assert dom.one("body").get("data-loaded") == "1"
        rows = {a["data-player"] for t, a in dom.elements if t == "tr" and "data-player" in a}
        players = set(manager.state.players)
        assert len(players) >= 6 and players <= rows  # latest, random, minimax and the snapshots: under 18, all shown
        charted = dashboard_state(store)["selection"]["curves"]
        assert {LEARNER_ID, RANDOM_ID, "minimax"} <= set(charted) and len(charted) == 6  # and the top 3 snapshots
        for pid in charted:  # an Elo curve each, with its uncertainty band where fitted
            classes = [a["class"] for a in dom.find("path", data_player=pid)]
            assert any("elo-line" in c for c in classes), (pid, classes)
        assert any("elo-band" in a["class"] for a in dom.find("path", data_player=LEARNER_ID))
        for ref in (RANDOM_ID, "minimax"):  # the evaluator's games: latest's score against each reference
            classes = [a["class"] for a in dom.find("path", data_player=ref)]
            assert any("strength-line" in c for c in classes) and any("strength-band" in c for c in classes), (ref, classes)
        if os.environ.get("SELFPLAY_UPDATE_SCREENSHOT") == "1":  # docs/dashboard.png comes from this run
            out = tmp_path / "dashboard.png"
            run_chromium(server.url, tmp_path, f"--screenshot={out}", "--window-size=1400,1400", "--hide-scrollbars")
            SCREENSHOT.write_bytes(out.read_bytes())
    finally:
        server.shutdown()
        server.server_close()
