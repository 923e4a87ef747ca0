"""`selfplay evaluate / export / play / replay --role`: a policy of one role of a game with roles
(actors/roles.py), from a policy file or from a run in a real Redis (tests/conftest.py).

Games: tests/team_games.py:chase (parallel; hunters against a runner) and tests/role_games.py:hide
(turn-based; a mouse and a cat), both scripted. Policies have random weights with one action's
logit raised far above the rest, so each always plays a known move and the figures are exact."""

from __future__ import annotations

import re

import numpy as np
import pytest

from actors.games import load_game
from actors.replay import Replay
from actors.roles import role_player
from cluster.run.cli import main
from cluster.stores.keys import RunKeys
from cluster.stores.league_store import LeagueStore
from cluster.stores.param_store import ParamStore
from cluster.stores.replay_store import ReplayStore
from learner.arch import ModelConfig
from learner.export import load_policy, policy_meta, save_policy
from learner.model import InferencePolicy, state_dict_numpy

CHASE = "tests.team_games:chase"  # hunters (3 actions; action/2 a step) and a runner (2 actions; its action a step), 3 steps
HIDE = "tests.role_games:hide"  # a mouse hides in hole 0/1, then a cat looks in hole 0/1/2; 2 rounds
MODEL = ModelConfig(hidden_sizes=(16,))


@pytest.fixture(autouse=True)
def no_redis_env(monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)


def always(game: str, role: str, action: int) -> dict[str, np.ndarray]:
    """Weights of `role`'s network that always play `action`."""
    rspec = load_game(game)[1].role(role)
    tensors = state_dict_numpy(InferencePolicy(rspec.obs_shape, rspec.num_actions, MODEL).net)
    tensors["pi.2.bias"] = np.where(np.arange(rspec.num_actions) == action, 50.0, 0.0).astype(np.float32)
    return tensors


def role_file(path, game: str, role: str, action: int, record_role: bool = True):
    rspec = load_game(game)[1].role(role)
    meta = policy_meta(game, MODEL, rspec.obs_shape, rspec.num_actions, rspec.head, role if record_role else "")
    save_policy(path, always(game, role, action), 5, meta)
    return str(path)


def role_run(client, game: str, latest: dict[str, int], snapshots: dict[str, int] = {}) -> None:
    """A run of `game` in Redis as a roles run leaves it: meta with its roles, each role's latest
    weights (always playing latest[role]) and snapshots (role/v000003, always playing snapshots[role])."""
    keys = RunKeys("selfplay", "roles-run")
    for role, action in latest.items():
        params = ParamStore(client, keys.for_role(role))
        params.publish(7, always(game, role, action))
        if role in snapshots:
            params.write_snapshot(role_player(role, "v000003"), 3, always(game, role, snapshots[role]))
    LeagueStore(client, keys).set_meta({
        "run_id": "roles-run", "game": game, "roles": list(latest),
        "config": {"game": {"name": game, "kwargs": {}}, "model": MODEL.to_dict() | {"hidden_sizes": list(MODEL.hidden_sizes)}},
    })


def returns(out: str) -> dict[str, float]:
    line = next(x for x in out.splitlines() if x.startswith("mean return per game:"))
    return {k: float(v) for k, v in re.findall(r"(\w+) (-?[\d.]+)", line.split(":", 1)[1])}


# --- evaluate -----------------------------------------------------------------------------------


def test_evaluate_a_role_policy_file_against_the_other_roles_random_player(tmp_path, capsys):
    greedy_hunter = role_file(tmp_path / "h2.msgpack", CHASE, "hunter", 2)
    assert main(["evaluate", greedy_hunter, "--game", CHASE, "--games", "40"]) == 0
    out = capsys.readouterr().out
    assert f"(role hunter) vs runner random on {CHASE}, 40 games" in out
    got = returns(out)
    assert got["hunter"] == 3.0  # 3 steps of action 2, paid 1 each
    assert 1.0 < got["runner"] < 2.0  # random 0/1 moves: 1.5 expected
    w, d, l = map(int, re.search(r"hunter: W (\d+)  D (\d+)  L (\d+)", out).groups())
    assert l == 0 and w + d == 40 and d < 15  # a draw only when the runner plays 1 thrice (1 in 8)
    assert "95% CI [" in out

    idle_hunter = role_file(tmp_path / "h0.msgpack", CHASE, "hunter", 0)
    assert main(["evaluate", idle_hunter, "--game", CHASE, "--games", "40"]) == 0
    out = capsys.readouterr().out
    assert returns(out)["hunter"] == 0.0 and "hunter: W 0 " in out


def test_evaluate_against_a_policy_file_of_the_other_role(tmp_path, capsys):
    hunter = role_file(tmp_path / "h.msgpack", CHASE, "hunter", 2)
    runner = role_file(tmp_path / "r.msgpack", CHASE, "runner", 1)
    assert main(["evaluate", hunter, "--game", CHASE, "--games", "10", "--opponent", runner]) == 0
    out = capsys.readouterr().out
    assert returns(out) == {"hunter": 3.0, "runner": 3.0} and "hunter: W 0  D 10  L 0" in out
    assert main(["evaluate", hunter, "--game", CHASE, "--opponent", hunter]) == 2
    assert "plays role hunter, the evaluated policy's own" in capsys.readouterr().err


def test_role_errors_name_the_roles_or_the_fix(tmp_path, capsys):
    unnamed = role_file(tmp_path / "u.msgpack", CHASE, "hunter", 2, record_role=False)
    assert main(["evaluate", unnamed, "--game", CHASE]) == 2
    err = capsys.readouterr().err
    assert "has roles hunter, runner" in err and "--role ROLE" in err
    assert main(["evaluate", unnamed, "--game", CHASE, "--role", "hunter", "--games", "2"]) == 0
    capsys.readouterr()

    runner = role_file(tmp_path / "r.msgpack", CHASE, "runner", 1)
    assert main(["evaluate", runner, "--game", CHASE, "--role", "hunter"]) == 2
    assert "plays role 'runner'" in capsys.readouterr().err
    assert main(["evaluate", runner, "--game", CHASE, "--role", "prey"]) == 2
    assert "no role 'prey'; its roles are hunter, runner" in capsys.readouterr().err

    _, ttt = load_game("tictactoe_v3")
    plain = tmp_path / "t.msgpack"
    save_policy(plain, state_dict_numpy(InferencePolicy(ttt.obs_shape, 9, MODEL).net), 1, policy_meta("tictactoe_v3", MODEL, ttt.obs_shape, 9))
    assert "role" not in load_policy(plain).meta  # a role-less file is written, and read, as before
    for command in (["evaluate"], ["play"], ["export", "--out", str(tmp_path / "t.onnx")]):
        assert main([*command, str(plain), "--role", "hunter"]) == 2
        assert "'tictactoe_v3' has no roles" in capsys.readouterr().err


def test_evaluate_a_roles_runs_latest_and_snapshots(redis_server, redis_client, capsys):
    role_run(redis_client, CHASE, {"hunter": 1, "runner": 1}, snapshots={"hunter": 0})
    run = ["--redis-url", redis_server.url, "--game", CHASE, "--games", "6"]
    assert main(["evaluate", "latest", "--role", "runner", *run]) == 0
    assert returns(capsys.readouterr().out)["runner"] == 3.0
    assert main(["evaluate", "latest", "--role", "hunter", *run]) == 0
    assert returns(capsys.readouterr().out)["hunter"] == 1.5  # action 1: half a point a step
    for snapshot in ("v000003", "hunter/v000003"):
        assert main(["evaluate", snapshot, "--role", "hunter", *run]) == 0
        assert returns(capsys.readouterr().out)["hunter"] == 0.0

    assert main(["evaluate", "latest", *run]) == 2
    assert "has roles hunter, runner" in capsys.readouterr().err
    assert main(["evaluate", "runner/v000003", "--role", "hunter", *run]) == 2
    assert "is not one of role 'hunter'" in capsys.readouterr().err
    assert main(["evaluate", "v000003", "--role", "runner", *run]) == 2
    assert "no snapshot 'runner/v000003'" in capsys.readouterr().err


# --- export -------------------------------------------------------------------------------------


def test_export_a_roles_latest_to_onnx_with_the_roles_shapes(redis_server, redis_client, tmp_path, capsys):
    import onnx
    import onnxruntime as ort

    role_run(redis_client, CHASE, {"hunter": 2, "runner": 1})
    out = tmp_path / "runner.onnx"
    assert main(["export", "latest", "--role", "runner", "--game", CHASE, "--redis-url", redis_server.url, "--out", str(out), "--positions", "32"]) == 0
    assert "(role runner, obs shape (4,))" in capsys.readouterr().out
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert props["role"] == "runner" and props["obs_shape"] == "4" and props["num_actions"] == "2"
    probs, _ = ort.InferenceSession(str(out)).run(None, {"obs": np.zeros((1, 4), np.float32), "mask": np.ones((1, 2), bool)})
    assert probs[0, 1] > 0.999

    saved = tmp_path / "runner.msgpack"
    assert main(["export", "latest", "--role", "runner", "--game", CHASE, "--redis-url", redis_server.url, "--format", "policy", "--out", str(saved)]) == 0
    assert "role runner, version 7, obs shape (4,), 2 actions" in capsys.readouterr().out
    assert load_policy(saved).meta["role"] == "runner" and load_policy(saved).meta["obs_shape"] == [4]
    assert main(["evaluate", str(saved), "--game", CHASE, "--games", "4"]) == 0  # the file says its role: no --role
    assert returns(capsys.readouterr().out)["runner"] == 3.0

    hunter_file = role_file(tmp_path / "h.msgpack", CHASE, "hunter", 2)
    assert main(["export", hunter_file, "--game", CHASE, "--out", str(tmp_path / "h.onnx"), "--positions", "32"]) == 0
    assert "(role hunter, obs shape (3,))" in capsys.readouterr().out
    assert load_policy(hunter_file).meta["role"] == "hunter"


# --- play ---------------------------------------------------------------------------------------


def typed(monkeypatch, lines: list[str]) -> None:
    feed = iter(lines)
    monkeypatch.setattr("builtins.input", lambda prompt="": next(feed))


def test_play_a_role_against_a_runs_latest_of_the_other(redis_server, redis_client, monkeypatch, capsys):
    role_run(redis_client, HIDE, {"mouse": 0, "cat": 0})  # the cat always looks in hole 0
    typed(monkeypatch, ["1", "1"])  # the mouse (you) hides in hole 1 twice
    assert main(["play", "latest", "--role", "mouse", "--game", HIDE, "--redis-url", redis_server.url]) == 0
    out = capsys.readouterr().out
    assert "you play mouse_0 (role mouse); mouse: latest, cat: latest" in out
    assert "round 2: the cat looked in hole 0: missed" in out and out.rstrip().endswith("you win")

    typed(monkeypatch, ["0", "0"])  # the cat (you) looks in hole 0; the mouse (latest) hides there
    assert main(["play", "latest", "--role", "cat", "--game", HIDE, "--redis-url", redis_server.url]) == 0
    assert capsys.readouterr().out.rstrip().endswith("you win")

    assert main(["play", "latest", "--game", HIDE, "--redis-url", redis_server.url]) == 2
    assert "you play one of them: pass --role ROLE" in capsys.readouterr().err


def test_play_a_role_against_random_players_or_a_policy_file(tmp_path, monkeypatch, capsys):
    typed(monkeypatch, ["2", "2"])  # the cat (you) looks in hole 2, which does not exist
    assert main(["play", "random", "--role", "cat", "--game", HIDE]) == 0
    out = capsys.readouterr().out
    assert "mouse: random" in out and out.rstrip().endswith("you lose")

    mouse = role_file(tmp_path / "m.msgpack", HIDE, "mouse", 1)
    typed(monkeypatch, ["1", "1"])
    assert main(["play", mouse, "--role", "cat", "--game", HIDE]) == 0
    out = capsys.readouterr().out
    assert f"mouse: {mouse}" in out and out.rstrip().endswith("you win")


def test_a_parallel_game_with_roles_cannot_be_played_by_hand(capsys):
    assert main(["play", "random", "--role", "hunter", "--game", CHASE]) == 2
    err = capsys.readouterr().err
    assert "cannot be played by hand: it is a parallel game with roles" in err and "turn by turn" in err


# --- replay -------------------------------------------------------------------------------------


def test_replay_a_roles_player_and_list_by_role(redis_server, redis_client, capsys):
    keys = RunKeys("selfplay", "roles-run")
    LeagueStore(redis_client, keys).set_meta({"run_id": "roles-run", "game": HIDE, "roles": ["mouse", "cat"]})
    # The mouse (seat 0) hides in 1, the cat looks in 0, twice: the mouse wins.
    mouse_game = Replay(HIDE, "e-1", (role_player("mouse", "latest"), role_player("cat", "random")), (7, -1), 0, (1.0, 0.0), (1, 0, 1, 0), 0, 0.0)
    cat_game = Replay(HIDE, "e-2", (role_player("mouse", "random"), role_player("cat", "latest")), (-1, 7), 1, (0.0, 1.0), (0, 0, 1, 1), 0, 0.0)
    ReplayStore(redis_client, keys).keep([mouse_game, cat_game], 4)
    run = ["--redis-url", redis_server.url, "--game", HIDE]

    assert main(["replay", "--list", "--role", "cat", *run]) == 0
    out = capsys.readouterr().out
    assert "--player cat/latest" in out and "mouse/latest" not in out
    assert main(["replay", "--role", "mouse", "--player", "latest", *run]) == 0
    out = capsys.readouterr().out
    assert "kept of mouse/latest against cat/random" in out and out.count("missed") >= 2
    assert main(["replay", "--player", "cat/latest", *run]) == 0  # the full id needs no --role
    assert "found" in capsys.readouterr().out
