"""League rules for rating games: which games feed the Elo fit, the payoff table, the reference players.

Plain data, no Redis: LeagueState is unit-testable on its own (its Redis round trip is in
tests/test_evaluator.py).
"""

from __future__ import annotations

import pytest

from actors.evaluate import MatchResult
from actors.evaluator import eval_reference_ids, initial_league, match_games, pick_snapshots
from actors.scripted import references_for
from cluster.config import load_config
from cluster.stores.payloads import decode_doc, encode_doc
from league.config import LeagueConfig
from league.league import LeagueState, Player
from league.records import LEARNER_ID, RANDOM_ID, GameResult

_n = 0


def game(a: str, b: str, score_a: float, kind: str, versions=(0, -1)) -> GameResult:
    global _n
    _n += 1
    return GameResult(f"g{_n}", (a, b), versions, (score_a, 1.0 - score_a), 9, kind, 1.0, 0.0)


def test_training_games_feed_ratings_only_when_configured():
    for rate, expect_train_rows in ((False, 0.0), (True, 3.0)):
        cfg = LeagueConfig(rate_training_games=rate)
        state = LeagueState.new((RANDOM_ID,))
        for _ in range(3):
            state.record(game(LEARNER_ID, RANDOM_ID, 1.0, "train"), cfg)
        assert state.results.get(f"{LEARNER_ID}\t{RANDOM_ID}", [0.0, 0.0])[1] == expect_train_rows
        state.record(game(RANDOM_ID, LEARNER_ID, 0.0, "eval"), cfg)  # learner in seat 1 wins
        assert state.results[f"{LEARNER_ID}\t{RANDOM_ID}"] == [expect_train_rows + 1.0, expect_train_rows + 1.0]
        # Training games still count everywhere else: totals, W/D/L, the payoff table.
        assert state.games_total == 4 and state.players[LEARNER_ID].wins == 4
        assert state.payoff.games(LEARNER_ID, RANDOM_ID) == pytest.approx(1 + 0.99 + 0.99**2 + 0.99**3)
        assert state.payoff.win_rate(LEARNER_ID, RANDOM_ID) == 1.0


def test_only_rating_games_move_ratings_by_default():
    cfg = LeagueConfig()
    state = LeagueState.new((RANDOM_ID,))
    for _ in range(50):
        state.record(game(LEARNER_ID, RANDOM_ID, 1.0, "train"), cfg)
    state.refit()
    assert state.players[LEARNER_ID].elo == 0.0 and state.players[LEARNER_ID].elo_stderr is None
    for i in range(20):
        state.record(game(LEARNER_ID, RANDOM_ID, 1.0 if i % 4 else 0.0, "eval"), cfg)
    state.refit()
    assert state.players[LEARNER_ID].elo > 100 and state.players[RANDOM_ID].elo == 0.0


def test_mirror_games_stay_out_of_the_payoff():
    state = LeagueState.new((RANDOM_ID,))
    state.record(game(LEARNER_ID, LEARNER_ID, 1.0, "train", (3, 3)), LeagueConfig())
    assert state.payoff.players() == [] and state.games_total == 1


def test_scripted_references_are_rated_and_evaluation_only():
    cfg = load_config(None, ["game.name=tictactoe_v3"])
    state = initial_league(cfg, references_for("tictactoe_v3"))
    assert set(state.players) == {LEARNER_ID, RANDOM_ID, "minimax"}
    assert state.players[RANDOM_ID].pinned and not state.players["minimax"].pinned
    assert set(state.past_pool()) == {RANDOM_ID}  # training never draws an evaluation-only reference
    for i in range(30):
        state.record(game("minimax", RANDOM_ID, 1.0, "eval"), cfg.league)
        state.record(game(LEARNER_ID, RANDOM_ID, 1.0 if i % 3 else 0.5, "eval"), cfg.league)
        state.record(game(LEARNER_ID, "minimax", 0.5 if i % 5 == 0 else 0.0, "eval"), cfg.league)
    state.refit()
    elo = {pid: p.elo for pid, p in state.players.items()}
    assert elo[RANDOM_ID] == 0.0
    assert elo["minimax"] > elo[LEARNER_ID] > 100.0


def test_league_without_evaluators_has_only_random_as_reference():
    cfg = load_config(None, ["eval.num_evaluators=0"])
    assert set(initial_league(cfg, references_for(cfg.game.name)).players) == {LEARNER_ID, RANDOM_ID}


def test_eval_references_always_include_the_anchor():
    refs = references_for("connect_four_v3")
    assert eval_reference_ids(load_config(None, ["game.name=connect_four_v3"]), refs) == (RANDOM_ID, "tactical", "lookahead")
    only = load_config(None, ["game.name=connect_four_v3", "eval.references=[tactical]"])
    assert eval_reference_ids(only, refs) == (RANDOM_ID, "tactical")


def test_unknown_eval_reference_is_a_config_error():
    from cluster.config import ConfigError

    with pytest.raises(ConfigError, match="minimax.*connect_four_v3.*random, tactical, lookahead"):
        load_config(None, ["game.name=connect_four_v3", "eval.references=[minimax]"])


def test_league_document_keeps_the_payoff_and_reads_old_documents():
    cfg = LeagueConfig(payoff_decay=0.9)
    state = LeagueState.new((RANDOM_ID,), ("minimax",), payoff_decay=cfg.payoff_decay)
    state.record(game(LEARNER_ID, RANDOM_ID, 1.0, "train"), cfg)
    state.record(game("minimax", LEARNER_ID, 0.5, "eval"), cfg)
    doc = decode_doc(encode_doc("league_state", 1, state.to_dict()), "league_state", 1)
    back = LeagueState.from_dict(doc)
    assert back.payoff.to_dict() == state.payoff.to_dict()
    assert back.payoff.decay == 0.9 and back.payoff.record(LEARNER_ID, RANDOM_ID) == pytest.approx((1.0, 0, 0, 1.0))  # per-pair decay: the minimax game leaves it
    assert back.players["minimax"].training_opponent is False
    old = dict(doc)
    del old["payoff"]  # a document written before the payoff was part of the league
    for p in old["players"]:
        del p["training_opponent"]
    legacy = LeagueState.from_dict(old)
    assert legacy.payoff.players() == [] and legacy.players[RANDOM_ID].training_opponent


def _snap(pid: str, version: int, stderr: float | None) -> Player:
    return Player(pid, "snapshot", version, elo_stderr=stderr)


def test_pick_snapshots_uncertain_and_newest():
    state = LeagueState.new()
    for p in (_snap("v1", 1, 30.0), _snap("v2", 2, 80.0), _snap("v3", 3, None), _snap("v4", 4, 80.0)):
        state.players[p.id] = p
    assert pick_snapshots(state, 3, "uncertain") == ["v3", "v4", "v2"]  # unrated, then widest error, newest on ties
    assert pick_snapshots(state, 2, "newest") == ["v4", "v3"]
    assert pick_snapshots(state, 0, "newest") == [] and pick_snapshots(None, 2, "newest") == []
    with pytest.raises(ValueError, match="newest"):
        pick_snapshots(state, 1, "oldest")


def test_match_games_put_players_in_the_seats_they_had():
    match = MatchResult(1, 1, 1, ((0, 1.0, 5, (1.0, 0.0)), (1, 0.5, 9, (0.5, 0.5)), (0, 0.0, 6, (0.0, 1.0))))
    games = match_games("p", "v000010", 10, RANDOM_ID, match, 1.0)
    assert [g.players for g in games] == [("v000010", RANDOM_ID), (RANDOM_ID, "v000010"), ("v000010", RANDOM_ID)]
    assert [g.versions for g in games] == [(10, -1), (-1, 10), (10, -1)]
    assert [g.scores for g in games] == [(1.0, 0.0), (0.5, 0.5), (0.0, 1.0)]
    assert [g.length for g in games] == [5, 9, 6]
    assert {g.kind for g in games} == {"eval"} and len({g.game_id for g in games}) == 3


def test_match_games_of_four_sides_seat_the_reference_in_the_other_three():
    match = MatchResult(1, 0, 0, ((2, 1.0, 7, (0.5, 0.0, 1.0, 0.5)),))
    (g,) = match_games("p", LEARNER_ID, 3, RANDOM_ID, match, 1.0)
    assert g.players == (RANDOM_ID, RANDOM_ID, LEARNER_ID, RANDOM_ID) and g.versions == (-1, -1, 3, -1)
    assert g.scores == (0.5, 0.0, 1.0, 0.5)


def test_placements_enter_ratings_and_payoff_pairwise():
    """A four-seat game is its six head-to-head results; pairs of one player with itself say nothing."""
    cfg = LeagueConfig()
    state = LeagueState.new((RANDOM_ID,))
    g = GameResult("g", ("a", "latest", "random", "b"), (-1, 3, -1, -1), (1 / 3, 1.0, 0.0, 2 / 3), 10, "eval", 1.0, 0.0)
    assert g.pairs() == [(0, 1, 0.0), (0, 2, 1.0), (0, 3, 0.0), (1, 2, 1.0), (1, 3, 1.0), (2, 3, 0.0)]
    with pytest.raises(ValueError, match="placements"):
        GameResult("g", ("a", "b", "c"), (0, 0, 0), (1.0, 1.0, 0.0), 1, "eval", 1.0, 0.0)
    for _ in range(30):  # the learner first, random last, every time: random, latest, random, random
        state.record(GameResult("g", (RANDOM_ID, LEARNER_ID, RANDOM_ID, RANDOM_ID), (-1, 3, -1, -1), (0.5, 1.0, 0.5, 0.0), 9, "eval", 1.0, 0.0), cfg)
    latest = state.players[LEARNER_ID]
    assert latest.games == 30 and latest.wins == 30 and state.players[RANDOM_ID].games == 90
    assert latest.vs_random == [90, 0, 0]  # three pairs a game, random never credited against itself
    assert state.payoff.win_rate(LEARNER_ID, RANDOM_ID) > 0.9
    state.refit()
    assert state.players[LEARNER_ID].elo > 300  # 90 wins and no loss against the anchor


def test_pfsp_sees_the_learners_recent_win_rate_from_the_decayed_payoff():
    cfg = LeagueConfig(payoff_decay=0.9)
    state = LeagueState.new((RANDOM_ID,), payoff_decay=cfg.payoff_decay)
    assert state.past_pool()[RANDOM_ID].win_rate == 0.5  # no games yet: AlphaStar's prior
    for _ in range(200):  # long ago the learner lost every game...
        state.record(game(LEARNER_ID, RANDOM_ID, 0.0, "train"), cfg)
    for _ in range(60):  # ...now it wins them all
        state.record(game(RANDOM_ID, LEARNER_ID, 0.0, "train"), cfg)
    # Lifetime counts would say 60/260 = 0.23; the decayed payoff follows the present.
    assert state.players[RANDOM_ID].learner_win_rate() == pytest.approx(60 / 260)
    # Raw, W / G = 1 - 0.9**60; PFSP reads it shrunk by league.pfsp_prior_games (k) pseudo-games.
    k, games = cfg.pfsp_prior_games, (1 - 0.9**260) / 0.1
    assert state.past_pool()[RANDOM_ID].win_rate == pytest.approx(((1 - 0.9**60) * games + k / 2) / (games + k), rel=1e-6)
    assert state.payoff.win_rate(LEARNER_ID, RANDOM_ID) == pytest.approx(1 - 0.9**60, rel=1e-6)


def test_game_payloads_of_two_and_four_seats_round_trip():
    from cluster.stores.payloads import decode_game, encode_game

    two = GameResult("g2", (LEARNER_ID, RANDOM_ID), (4, -1), (1.0, 0.0), 9, "train", 0.5, 1.0)
    four = GameResult("g4", ("a", "b", "c", "d"), (1, 2, 3, 4), (0.0, 1.0, 0.5, 0.5), 9, "eval", 1.0, 1.0)
    assert decode_game(encode_game(two)) == two and decode_game(encode_game(four)) == four


def test_the_console_shows_the_newest_rated_snapshot_while_latest_has_no_rating_of_its_own():
    """Rating games that outlast the time between snapshots count for the snapshot of their version;
    the console then shows that snapshot's Elo, not latest's unrated 0."""
    cfg = LeagueConfig()
    state = LeagueState.new((RANDOM_ID,))
    assert state.shown_rating() == (LEARNER_ID, 0.0)  # nothing rated yet
    for v in (0, 10, 20):
        state.add_snapshot(v)
    for i in range(12):  # games that started at v15: they count for v000010
        state.record(game(LEARNER_ID, RANDOM_ID, 1.0 if i % 4 else 0.0, "eval", (15, -1)), cfg)
    state.refit()
    assert state.players[LEARNER_ID].elo_stderr is None
    pid, elo = state.shown_rating()
    assert pid == state.snapshot_id(10) and elo == state.players[pid].elo > 100
    for i in range(12):  # games at the newest version: latest is rated and shown
        state.record(game(LEARNER_ID, RANDOM_ID, 1.0 if i % 3 else 0.0, "eval", (25, -1)), cfg)
    state.refit()
    assert state.shown_rating() == (LEARNER_ID, state.players[LEARNER_ID].elo) and state.players[LEARNER_ID].elo > 0
