"""Reference players by import path (actors/references.py): checked when the config is, rated like
the built-in ones by a real evaluator against a real Redis, and a wrong move names the player."""

from __future__ import annotations

import numpy as np
import pytest

from actors.evaluator import Evaluator, initial_league
from actors.games import load_game
from actors.references import IllegalReferenceAction, ReferencePathError, load_reference, with_imported
from actors.scripted import references_for
from cluster.config import ConfigError, load_config
from cluster.stores.league_store import LeagueReader, LeagueStore, RedisResultSink
from cluster.stores.param_store import ParamStore
from league.manager import LeagueManager
from league.records import LEARNER_ID, RANDOM_ID
from learner.model import PolicyNet, state_dict_numpy

CENTRE = "tests.my_references:centre_first"


@pytest.mark.parametrize(
    "path,words",
    [
        ("tests.my_references", "package.module:function"),
        ("tests.no_such_module:f", "cannot import module 'tests.no_such_module'"),
        ("tests.my_references:nope", "has no attribute 'nope'"),
        ("tests.my_references:not_a_function", "not a function"),
        ("tests.my references:f", "package.module:function"),
    ],
)
def test_a_wrong_path_is_refused_naming_it(path, words):
    with pytest.raises(ReferencePathError, match="reference") as exc:
        load_reference(path)
    assert words in str(exc.value) and path in str(exc.value)


def test_the_config_check_imports_the_references_it_names():
    cfg = load_config(None, [f"eval.references=[random, '{CENTRE}']"])
    assert cfg.eval.references == (RANDOM_ID, CENTRE)
    with pytest.raises(ConfigError, match="tests.my_references:nope"):
        load_config(None, ["eval.references=['tests.my_references:nope']"])
    with pytest.raises(ConfigError, match="'perfect' is not a reference player of tictactoe_v3.*package.module:function"):
        load_config(None, ["eval.references=[perfect]"])


def test_an_illegal_move_names_the_player_and_the_move():
    fn = load_reference("tests.my_references:always_zero")
    rng = np.random.default_rng(0)
    assert fn(np.zeros((3, 3, 2)), np.ones(9, bool), rng) == 0
    mask = np.ones(9, bool)
    mask[0] = False
    with pytest.raises(IllegalReferenceAction, match=r"'tests.my_references:always_zero' returned action 0.*legal actions: \[1, 2"):
        fn(np.zeros((3, 3, 2)), mask, rng)


def test_an_imported_reference_is_rated_and_charted_like_a_built_in_one(redis_client, run_keys):
    """Its id is the path: an evaluation-only player of the new league, played by the evaluator,
    rated by the league manager, its strength series and Elo curve kept under keys naming it."""
    cfg = load_config(None, ["model.hidden_sizes=[16]", "eval.games_per_pair=6", f"eval.references=[minimax, '{CENTRE}']"])
    make_slot, spec = load_game(cfg.game.name)
    params, store = ParamStore(redis_client, run_keys, keep_versions=4), LeagueStore(redis_client, run_keys)
    params.publish(1, state_dict_numpy(PolicyNet(spec.obs_dim, spec.num_actions, (16,))))
    refs = references_for(cfg.game.name, spec)
    state = initial_league(cfg, refs)
    assert CENTRE in state.players
    store.save(state)
    evaluator = Evaluator(0, cfg, make_slot, spec, params, LeagueReader(store, refresh_s=0.0), RedisResultSink(store), refs)
    assert list(evaluator.references) == [RANDOM_ID, "minimax", CENTRE]
    evaluator.round()
    manager = LeagueManager(store, params, cfg.league, store.load())
    manager.step(1, refit=True)
    reloaded = store.load()
    assert reloaded.players[CENTRE].elo != 0.0 and reloaded.players[CENTRE].kind == state.players[CENTRE].kind
    assert store.strength_history([CENTRE])[CENTRE], "the latest policy's score against it is charted"
    assert redis_client.exists(run_keys.strength(CENTRE))


def test_an_illegal_move_in_a_rating_game_stops_the_round_naming_the_player(redis_client, run_keys):
    cfg = load_config(None, ["model.hidden_sizes=[16]", "eval.games_per_pair=2", "eval.references=['tests.my_references:always_zero']"])
    make_slot, spec = load_game(cfg.game.name)
    params, store = ParamStore(redis_client, run_keys, keep_versions=4), LeagueStore(redis_client, run_keys)
    params.publish(1, state_dict_numpy(PolicyNet(spec.obs_dim, spec.num_actions, (16,))))
    refs = references_for(cfg.game.name, spec)
    store.save(initial_league(cfg, refs))
    evaluator = Evaluator(0, cfg, make_slot, spec, params, LeagueReader(store, refresh_s=0.0), RedisResultSink(store), refs)
    with pytest.raises(IllegalReferenceAction, match="always_zero"):
        evaluator.round()


def test_final_matches_get_imported_references_from_with_imported():
    refs = with_imported(references_for("tictactoe_v3"), ["minimax", CENTRE])
    assert list(refs) == [RANDOM_ID, "minimax", CENTRE] and LEARNER_ID not in refs
