"""Issue 22, item 2: a game named in Redis (a run's metadata, a replay) or in a policy file is data,
and is imported only when it is built in or the user named it (--game, --config). Each test has a
module:function that writes a marker file when called (tests/marker_game.py): it must not run."""

from __future__ import annotations

import pytest

from actors.games import GameError, check_trusted_game, load_game
from actors.replay import Replay
from cluster.run.cli import main
from cluster.stores.keys import RunKeys
from cluster.stores.league_store import LeagueStore
from cluster.stores.param_store import ParamStore
from cluster.stores.replay_store import ReplayStore
from learner.arch import ModelConfig
from learner.export import policy_meta, save_policy
from learner.model import InferencePolicy, state_dict_numpy

HOSTILE = "tests.marker_game:make"  # a game with roles (hunter, runner)
HOSTILE_PLAIN = "tests.marker_game:make_plain"  # a game without roles


@pytest.fixture
def marker(tmp_path, monkeypatch):
    path = tmp_path / "marker"
    monkeypatch.setenv("SELFPLAY_TEST_MARKER", str(path))
    monkeypatch.delenv("REDIS_URL", raising=False)
    return path


def hostile_run(client, game: str = HOSTILE) -> None:
    """A run whose metadata names `game`, with weights (the hunter role's, for HOSTILE), so that a
    reader that trusts it goes on."""
    keys = RunKeys("selfplay", "hostile")
    net = InferencePolicy((3,), 3, ModelConfig(hidden_sizes=(8,))).net
    ParamStore(client, keys.for_role("hunter" if game == HOSTILE else "")).publish(1, state_dict_numpy(net))
    LeagueStore(client, keys).set_meta({
        "run_id": "hostile", "game": game, **({"roles": ["hunter", "runner"]} if game == HOSTILE else {}),
        "config": {"game": {"name": game, "kwargs": {}}, "model": {"hidden_sizes": [8]}},
    })


@pytest.mark.parametrize("command", ["evaluate", "export", "play"])
def test_a_game_named_by_a_runs_metadata_is_not_imported(command, marker, redis_server, redis_client, tmp_path, capsys):
    hostile_run(redis_client, HOSTILE_PLAIN)
    extra = ["--out", str(tmp_path / "p.onnx")] if command == "export" else []
    assert main([command, "latest", "--redis-url", redis_server.url, *extra]) == 2
    err = capsys.readouterr().err
    assert f"game {HOSTILE_PLAIN!r} is not a built-in game" in err and f"--game {HOSTILE_PLAIN}" in err
    assert not marker.exists()


@pytest.mark.parametrize("command", ["evaluate", "export", "play"])
def test_nor_with_a_role(command, marker, redis_server, redis_client, tmp_path, capsys):
    hostile_run(redis_client)
    extra = ["--out", str(tmp_path / "p.onnx")] if command == "export" else []
    assert main([command, "latest", "--role", "hunter", "--redis-url", redis_server.url, *extra]) == 2
    assert f"game {HOSTILE!r} is not a built-in game" in capsys.readouterr().err
    assert not marker.exists()


def test_naming_the_game_yourself_trusts_it(marker, redis_server, redis_client, capsys):
    hostile_run(redis_client)
    assert main(["evaluate", "latest", "--role", "hunter", "--game", HOSTILE, "--games", "2", "--redis-url", redis_server.url]) == 0
    assert marker.exists()  # the user named it: imported and called
    assert "(role hunter) vs runner random" in capsys.readouterr().out


def test_a_config_file_naming_the_game_trusts_it(marker, redis_server, redis_client, tmp_path, capsys):
    hostile_run(redis_client)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"game:\n  name: {HOSTILE}\n")
    assert main(["evaluate", "latest", "--role", "hunter", "--config", str(cfg), "--games", "2", "--redis-url", redis_server.url]) == 0
    assert marker.exists()


def test_a_game_named_by_a_policy_file_is_not_imported(marker, tmp_path, capsys):
    path = tmp_path / "p.msgpack"
    net = InferencePolicy((3,), 3, ModelConfig(hidden_sizes=(8,))).net
    save_policy(path, state_dict_numpy(net), 1, policy_meta(HOSTILE_PLAIN, ModelConfig(hidden_sizes=(8,)), (3,), 3))
    for command in (["evaluate"], ["play"], ["export", "--out", str(tmp_path / "p.onnx")]):
        assert main([*command, str(path)]) == 2
        assert f"game {HOSTILE_PLAIN!r} is not a built-in game" in capsys.readouterr().err
    assert not marker.exists()


def test_a_game_named_by_a_replay_is_not_imported(marker, redis_server, redis_client, capsys):
    keys = RunKeys("selfplay", "hostile")
    LeagueStore(redis_client, keys).set_meta({"run_id": "hostile", "game": "tictactoe_v3"})
    replay = Replay(HOSTILE_PLAIN, "g-1", ("latest", "random"), (1, -1), 0, (1.0, 0.0), (0, 1), 0, 0.0)
    ReplayStore(redis_client, keys).keep([replay], 4)
    assert main(["replay", "--redis-url", redis_server.url]) == 2
    assert f"game {HOSTILE_PLAIN!r} is not a built-in game" in capsys.readouterr().err
    assert not marker.exists()


def test_builtin_names_pass_and_module_paths_need_trust():
    check_trusted_game("connect_four_v3", ())
    check_trusted_game("simple_tag_v3", ())
    check_trusted_game("tictactoe_v3:raw_env", ())
    check_trusted_game("mypkg.game:env", ("mypkg.game:env",))
    for name in ("mypkg.game:env", "os:system", "tictactoe_v3:__loader__", "pettingzoo.classic.tictactoe_v3"):
        with pytest.raises(GameError, match="not a built-in game"):
            check_trusted_game(name, ())
    with pytest.raises(GameError, match="not a built-in game"):
        load_game(HOSTILE, trusted=())
    assert load_game("tictactoe_v3", trusted=())[1].num_actions == 9
