"""Hostile input at the run's boundaries: game results and league records read from Redis, and
trajectory segments the learner receives. Each bad record is counted, set aside or dropped, never
fatal; against a real redis-server."""

from __future__ import annotations

import math

import msgpack
import pytest

from cluster.stores.league_store import BAD_GAMES_KEPT, LeagueReader, LeagueStore
from cluster.stores.param_store import ParamStore
from cluster.stores.payloads import MAX_ID_CHARS, decode_bad_game, decode_game, encode_game
from league.config import LeagueConfig
from league.league import LeagueState
from league.manager import LeagueManager
from league.records import LEARNER_ID, RANDOM_ID, GameResult
from learner.wire import PayloadError


def _game(i: int) -> GameResult:
    return GameResult(f"g{i}", (LEARNER_ID, RANDOM_ID), (i, -1), (1.0, 0.0), 5, "train", 1.0, 1000.0 + i)


def _raw_game(**change) -> bytes:
    """A game payload with fields changed after GameResult's checks: what a hostile writer can push."""
    body = {**_game(7).to_dict(), **change}
    return msgpack.packb({"schema": "game", "v": 1, **body}, use_bin_type=True)


POISON = {
    "opponent_prob above 1": {"opponent_prob": 5.0},
    "opponent_prob 0": {"opponent_prob": 0.0},
    "opponent_prob NaN": {"opponent_prob": math.nan},
    "finished_at inf": {"finished_at": math.inf},
    "score NaN": {"scores": [math.nan, 0.0]},
    "seats disagree": {"versions": [1, -1, 3]},
    "too many seats": {"players": ["p"] * 65, "versions": [0] * 65, "scores": [0.5] * 65},
    "id too long": {"game_id": "g" * (MAX_ID_CHARS + 1)},
    "empty player id": {"players": ["", RANDOM_ID]},
    "player id with a newline": {"players": [LEARNER_ID, "random\nFAKE LOG LINE"]},
    "id not a string": {"game_id": 12},
    "unknown kind": {"kind": "bogus"},
    "negative length": {"length": -3},
    "version below -1": {"versions": [-7, -1]},
}


@pytest.mark.parametrize("change", POISON.values(), ids=list(POISON))
def test_every_field_of_a_game_result_is_checked(change):
    with pytest.raises(PayloadError, match=r"^game"):
        decode_game(_raw_game(**change))


def test_a_poison_game_result_is_set_aside_and_the_league_goes_on(redis_client, run_keys):
    """Before: opponent_prob 5.0 raised in quality_after_win inside LeagueManager.step, the claim
    was never acknowledged, and every --resume claimed the same game and crashed again."""
    store = LeagueStore(redis_client, run_keys)
    state = LeagueState.new()
    manager = LeagueManager(store, ParamStore(redis_client, run_keys), LeagueConfig(), state)
    store.push_games([_game(0)])
    redis_client.rpush(run_keys.games, *(_raw_game(**c) for c in POISON.values()))
    store.push_games([_game(1)])

    manager.step(1)  # no exception: the good games are applied, the bad ones set aside

    assert manager.bad_games == len(POISON) and manager.duplicate_games == 0
    assert state.games_total == 2 and state.players[LEARNER_ID].wins == 2
    kept = [decode_bad_game(x) for x in redis_client.lrange(run_keys.games_bad, 0, -1)]
    assert len(kept) == len(POISON) and kept[-1][0] == _raw_game(**POISON["opponent_prob above 1"])
    assert "opponent_prob 5.0 must be a probability in (0, 1]" in kept[-1][1]
    # The claim was acknowledged with the state: a resumed driver claims nothing again.
    assert LeagueStore(redis_client, run_keys).pop_games() == []
    assert LeagueStore(redis_client, run_keys).load().games_total == 2


def test_the_games_set_aside_are_bounded(redis_client, run_keys, monkeypatch):
    monkeypatch.setattr("cluster.stores.league_store.BAD_GAMES_KEPT", 3)
    store = LeagueStore(redis_client, run_keys)
    redis_client.rpush(run_keys.games, *(_raw_game(opponent_prob=2.0 + i) for i in range(5)))
    assert store.pop_games() == [] and store.bad_games == 5
    kept = [decode_bad_game(x)[1] for x in redis_client.lrange(run_keys.games_bad, 0, -1)]
    assert len(kept) == 3 and "6.0" in kept[0]  # the newest first
    assert BAD_GAMES_KEPT == 1000


def test_a_game_that_raises_inside_the_league_is_isolated(redis_client, run_keys, monkeypatch):
    """What the store's checks might still miss: a result that raises while it is applied is set
    aside and counted, and the games after it are applied."""
    store = LeagueStore(redis_client, run_keys)
    state = LeagueState.new()
    manager = LeagueManager(store, ParamStore(redis_client, run_keys), LeagueConfig(), state)
    bad = object.__new__(GameResult)  # a record that skipped its own checks
    for k, v in {**_game(5).__dict__, "game_id": "bad", "opponent_prob": -1.0}.items():
        object.__setattr__(bad, k, v)
    monkeypatch.setattr(store, "pop_games", lambda max_n=0: [_game(0), bad, _game(1)])
    manager.step(1)
    assert manager.bad_games == 1 and state.players[LEARNER_ID].wins >= 2
    assert "the league could not apply it: ValueError" in decode_bad_game(redis_client.lindex(run_keys.games_bad, 0))[1]


def test_a_bad_player_record_is_skipped_by_readers_and_named_to_the_manager(redis_client, run_keys):
    from cluster.stores.league_store import PLAYER_SCHEMA, PLAYER_V
    from cluster.stores.payloads import encode_doc

    store = LeagueStore(redis_client, run_keys)
    store.save(LeagueState.new())
    good = LeagueReader(store, refresh_s=0.0).state()
    body = {**good.players[RANDOM_ID].__dict__, "id": "evil", "kind": "bogus", "elo": math.nan}
    redis_client.hset(run_keys.league_players, "evil", encode_doc(PLAYER_SCHEMA, PLAYER_V, body))
    reader_store = LeagueStore(redis_client, run_keys)
    assert {p.id for p in reader_store.players()} == set(good.players)  # an actor's read goes on
    assert reader_store.bad_players == 1
    with pytest.raises(PayloadError, match=r"test:run-1:league:players: league player 'evil'.kind: 'bogus'"):
        store.load()


def test_a_game_result_out_of_range_is_refused_where_it_is_made():
    with pytest.raises(ValueError, match="opponent_prob"):
        GameResult("g", (LEARNER_ID, RANDOM_ID), (1, -1), (1.0, 0.0), 5, "train", 0.0, 0.0)
    assert decode_game(encode_game(_game(3))) == _game(3)


def test_torch_floor_excludes_versions_whose_weights_only_can_be_bypassed():
    """CVE-2025-32434: torch.load(weights_only=True) before 2.6 can run code."""
    import pathlib
    import re

    text = (pathlib.Path(__file__).parents[1] / "pyproject.toml").read_text()
    floor, ceiling = re.search(r'"torch>=([\d.]+),<([\d.]+)"', text).groups()
    assert tuple(map(int, floor.split("."))) >= (2, 6)
    assert tuple(map(int, ceiling.split("."))) > (2, 13)  # the CI's pinned 2.13.0 stays inside


def test_a_player_record_written_before_a_field_existed_still_reads(redis_client, run_keys):
    from cluster.stores.league_store import PLAYER_SCHEMA, PLAYER_V
    from cluster.stores.payloads import encode_doc

    store = LeagueStore(redis_client, run_keys)
    store.save(LeagueState.new())
    old = {"id": "v000003", "kind": "snapshot", "version": 3, "elo": 12.5}  # no payoff_win_rate, counts...
    redis_client.hset(run_keys.league_players, "v000003", encode_doc(PLAYER_SCHEMA, PLAYER_V, old))
    p = store.load().players["v000003"]
    assert (p.version, p.elo, p.payoff_win_rate, p.games) == (3, 12.5, 0.5, 0)
