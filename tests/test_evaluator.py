"""The evaluator loop (actors/evaluator.py) in-process against a real Redis: the parameter store
it reads weights from, the league document it picks snapshots from, the game queue it reports to,
and the league manager that turns its games into ratings."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from actors.evaluator import Evaluator, initial_league
from actors.games import load_game
from actors.scripted import references_for
from cluster.config import load_config
from cluster.stores.league_store import LeagueReader, LeagueStore
from cluster.stores.league_store import RedisResultSink
from cluster.stores.param_store import ParamStore
from league.manager import LeagueManager
from league.records import LEARNER_ID, RANDOM_ID
from learner.model import PolicyNet, state_dict_numpy

GAMES = 6


def take_games(store: LeagueStore):
    """Pop the queued games and acknowledge them (LeagueStore.save does, as the league manager's
    step would), so the next pop sees only newer games."""
    games = store.pop_games()
    store.save(store.load())
    return games


@pytest.fixture
def setup(redis_client, run_keys):
    cfg = load_config(
        None, ["model.hidden_sizes=[16]", f"eval.games_per_pair={GAMES}", "eval.snapshots_per_round=1", "run.seed=3"]
    )
    make_slot, spec = load_game(cfg.game.name)
    params = ParamStore(redis_client, run_keys, keep_versions=4)
    store = LeagueStore(redis_client, run_keys)

    def weights(seed: int):
        torch.manual_seed(seed)
        return state_dict_numpy(PolicyNet(spec.obs_dim, spec.num_actions, (16,)))

    params.publish(2, weights(0))
    params.snapshot_from_published("v000002", 2)
    params.publish(5, weights(1))
    state = initial_league(cfg, references_for(cfg.game.name))
    state.add_snapshot(2)
    store.save(state)

    def evaluator(evaluator_id: int = 0, config=cfg) -> Evaluator:
        return Evaluator(
            evaluator_id, config, make_slot, spec, params, LeagueReader(store, refresh_s=0.0), RedisResultSink(store),
            references_for(config.game.name),
        )

    return cfg, params, store, evaluator, weights


def test_a_round_rates_latest_and_a_snapshot_against_every_reference(setup):
    cfg, params, store, evaluator, _ = setup
    report = evaluator().round()
    assert report.rated == (LEARNER_ID, "v000002") and report.latest_version == 5
    games = take_games(store)
    assert report.games == len(games) == 2 * 2 * GAMES
    assert {g.kind for g in games} == {"eval"} and len({g.game_id for g in games}) == len(games)
    pairs = Counter(tuple(sorted(g.players)) for g in games)
    assert pairs == {(LEARNER_ID, RANDOM_ID): GAMES, (LEARNER_ID, "minimax"): GAMES, (RANDOM_ID, "v000002"): GAMES,
                     ("minimax", "v000002"): GAMES}
    versions = {p: v for g in games for p, v in zip(g.players, g.versions)}
    assert versions == {LEARNER_ID: 5, "v000002": 2, RANDOM_ID: -1, "minimax": -1}
    # Seats alternate: each rated policy moves first in half of its games against each reference.
    first = Counter((g.players[0], g.players[1]) for g in games if g.players[0] in (LEARNER_ID, "v000002"))
    assert set(first.values()) == {GAMES // 2}
    # Minimax never loses, so every game it played is a draw or a win for it.
    assert all(g.scores[g.players.index("minimax")] >= 0.5 for g in games if "minimax" in g.players)

    # The league manager turns them into rating evidence: only pairs with a reference, nothing else.
    state = store.load()
    store.push_games(games)
    manager = LeagueManager(store, params, cfg.league, state)
    manager.step(5)
    assert set(manager.state.results) == {f"{LEARNER_ID}\tminimax", f"{LEARNER_ID}\t{RANDOM_ID}", "minimax\tv000002", f"{RANDOM_ID}\tv000002"}
    assert manager.state.players["minimax"].elo > manager.state.players[RANDOM_ID].elo == 0.0
    assert store.load().payoff.games(LEARNER_ID, "minimax") > 0  # saved with the league document


def test_rounds_are_reproducible_from_the_seed_and_differ_per_evaluator(setup):
    _, _, store, evaluator, _ = setup

    def outcomes(evaluator_id: int):
        evaluator(evaluator_id).round()
        return [(g.players, g.scores, g.length) for g in take_games(store)]

    a, b, c = outcomes(0), outcomes(0), outcomes(1)
    assert a == b
    assert a != c


def test_new_weights_are_picked_up_and_a_missing_snapshot_is_counted(setup):
    cfg, params, store, evaluator, weights = setup
    state = store.load()
    state.add_snapshot(4)  # listed in the league, but its weights were never written
    state.players["v000004"].elo_stderr = None  # never rated: the "uncertain" pick takes it first
    store.save(state)
    ev = evaluator()
    report = ev.round()
    assert report.rated == (LEARNER_ID,) and ev.stats.missing_snapshots == 1
    params.publish(6, weights(2))
    assert ev.round().latest_version == 6
    assert {g.versions[g.players.index(LEARNER_ID)] for g in take_games(store)} == {5, 6}


def test_run_paces_rounds_and_stops_when_told(setup):
    cfg, _, store, evaluator, _ = setup
    ev = evaluator(config=load_config(None, ["model.hidden_sizes=[16]", "eval.games_per_pair=2", "eval.interval_s=30"]))
    waits: list[float] = []

    def wait(seconds: float) -> bool:  # stands in for threading.Event.wait: True = asked to stop
        waits.append(seconds)
        return len(waits) == 3

    stats = ev.run(should_stop=lambda: False, wait=wait)
    assert stats.rounds == 3 and len(waits) == 3
    assert all(25.0 < w <= 30.0 for w in waits)  # the interval counts from the round's start
    assert stats.games == len(take_games(store)) == 3 * 2 * 2 * 2
