"""`selfplay play` in the terminal: a person's lines on standard input (junk, out of range, illegal,
legal) against a saved policy, to a result; in-process through actors/human.py and the CLI, and
once through a subprocess of the installed `selfplay` entry point.

The person's moves come from a scripted player (minimax for tic-tac-toe, lookahead for connect
four) planned in-process against the same greedy policy, so each test knows the game's result
before the real command plays it."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from actors.games import GameError, load_game
from actors.human import GRID_BOARDS, HumanMatch, board_for, play_in_terminal
from actors.scripted import references_for
from cluster.run.cli import main
from learner.arch import ModelConfig
from learner.export import load_policy, policy_meta, save_policy
from learner.model import InferencePolicy, state_dict_numpy

REPO = Path(__file__).resolve().parents[1]
HUMAN_BOT = {"tictactoe_v3": "minimax", "connect_four_v3": "lookahead"}


def write_policy(path: Path, game: str, model: ModelConfig = ModelConfig(hidden_sizes=(16,)), seed: int = 0) -> Path:
    torch.manual_seed(seed)
    _, spec = load_game(game)
    policy = InferencePolicy(spec.obs_shape, spec.num_actions, model)
    save_policy(path, state_dict_numpy(policy.net), 5, policy_meta(game, model, spec.obs_shape, spec.num_actions))
    return path


def planned_game(policy_file: Path, game: str, seat: int) -> tuple[list[str], str, list[int]]:
    """The lines a scripted person types against the greedy policy, the result, and the moves."""
    make_slot, board = board_for(game)
    match = HumanMatch(make_slot, load_policy(policy_file), seat)
    bot, rng, lines = references_for(game)[HUMAN_BOT[game]], np.random.default_rng(1), []
    while not match.over:
        if match.humans_turn:
            action = bot(match.slot.raw_obs, match.slot.mask, rng)
            lines.append(str(action + 1))
            match.human_move(action)
        else:
            match.policy_move()
    return lines, match.outcome(), match.moves


def with_mistakes(lines: list[str]) -> list[str]:
    """Junk and an out-of-range number before the first move; the first move repeated (its cell or
    column is then taken in tic-tac-toe, still legal in connect four) is left out on purpose."""
    return ["hello", "", "0", "99", *lines]


def reader(lines: list[str], prompts: list[str]):
    feed = iter(lines)

    def read(prompt: str) -> str:
        prompts.append(prompt)
        try:
            return next(feed)
        except StopIteration:
            raise EOFError from None

    return read


@pytest.mark.parametrize("game", sorted(GRID_BOARDS))
def test_the_drawn_board_is_the_environments_position(game):
    """The grid rebuilt from the move list equals what the environment shows the mover, every move
    of 30 random games (PettingZoo's environments, not the native one)."""
    make_slot, _ = load_game(game, native=False)
    board, rng = GRID_BOARDS[game], np.random.default_rng(0)
    for g in range(30):
        slot, moves = make_slot(), []
        slot.reset(seed=g)
        while not slot.over:
            grid = board.grid(moves)
            np.testing.assert_array_equal(grid == 1 + slot.seat, slot.raw_obs[..., 0].astype(bool))
            np.testing.assert_array_equal(grid == 2 - slot.seat, slot.raw_obs[..., 1].astype(bool))
            moves.append(int(rng.choice(np.flatnonzero(slot.mask))))
            slot.step(moves[-1])


@pytest.mark.parametrize("game", sorted(GRID_BOARDS))
@pytest.mark.parametrize("seat", [0, 1])
def test_a_whole_game_in_process_with_mistakes_along_the_way(game, seat, tmp_path):
    policy_file = write_policy(tmp_path / "p.msgpack", game)
    lines, outcome, moves = planned_game(policy_file, game, seat)
    if game == "tictactoe_v3":
        assert outcome in ("win", "draw")  # minimax never loses
        lines = lines[:1] + [lines[0]] + lines[1:]  # the same cell again: now taken
    make_slot, board = board_for(game)
    match = HumanMatch(make_slot, load_policy(policy_file), seat)
    out: list[str] = []
    prompts: list[str] = []
    assert play_in_terminal(match, board, reader(with_mistakes(lines), prompts), out.append) == outcome
    assert match.moves == moves
    text = "\n".join(out)
    unit = "cell" if game == "tictactoe_v3" else "column"
    n = board.num_actions
    assert f"'hello' is not a number: type a {unit} number from 1 to {n}" in text
    assert f"'' is not a number" in text
    assert f"0 is not a {unit} of this board: type a number from 1 to {n}" in text
    assert f"99 is not a {unit} of this board" in text
    if game == "tictactoe_v3":
        assert f"cell {lines[0]} is taken: choose another (free: " in text
    assert out[0].startswith(f"you are {'XO'[seat]} and move {('first', 'second')[seat]}")
    # The board after every move: one drawing at the start and one per move.
    assert sum(chunk.count("\n") >= board.rows - 1 for chunk in out) == 1 + len(moves)
    assert out[-1] == {"win": "you win", "loss": "you lose", "draw": "draw"}[outcome]
    assert all(p == board.prompt(np.ones(n, bool)) for p in prompts)


def test_end_of_input_abandons_the_game(tmp_path):
    policy_file = write_policy(tmp_path / "p.msgpack", "connect_four_v3")
    make_slot, board = board_for("connect_four_v3")
    match = HumanMatch(make_slot, load_policy(policy_file), 0)
    out: list[str] = []
    assert play_in_terminal(match, board, reader(["4", "junk"], []), out.append) is None
    assert out[-1] == "\nend of input: game abandoned" and len(match.moves) == 2


def test_a_policy_of_another_game_is_refused(tmp_path):
    policy_file = write_policy(tmp_path / "p.msgpack", "tictactoe_v3")
    make_slot, _ = board_for("connect_four_v3")
    with pytest.raises(GameError, match="was not trained on connect_four_v3; pass the game it was trained on"):
        HumanMatch(make_slot, load_policy(policy_file), 0)


def test_cli_play_to_the_end_and_on_end_of_input(tmp_path, monkeypatch, capsys):
    policy_file = write_policy(tmp_path / "p.msgpack", "tictactoe_v3")
    lines, outcome, _ = planned_game(policy_file, "tictactoe_v3", 1)
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(with_mistakes(lines)) + "\n"))
    assert main(["play", str(policy_file), "--second"]) == 0
    out = capsys.readouterr().out
    assert "you are O and move second" in out and "policy plays cell" in out
    assert out.rstrip().endswith({"win": "you win", "draw": "draw"}[outcome])

    monkeypatch.setattr(sys, "stdin", io.StringIO("5\n"))
    assert main(["play", str(policy_file)]) == 0
    assert capsys.readouterr().out.rstrip().endswith("end of input: game abandoned")


def test_cli_ctrl_c_ends_the_game_cleanly(tmp_path, monkeypatch, capsys):
    policy_file = write_policy(tmp_path / "p.msgpack", "connect_four_v3")

    def interrupted(prompt: str) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr("builtins.input", interrupted)
    assert main(["play", str(policy_file), "--first"]) == 130
    captured = capsys.readouterr()
    assert captured.out.rstrip().endswith("interrupted: game abandoned") and captured.err == ""


def test_cli_play_a_league_player(tmp_path, redis_server, redis_client, monkeypatch, capsys):
    from cluster.stores.keys import RunKeys
    from cluster.stores.league_store import LeagueStore
    from cluster.stores.param_store import ParamStore

    policy = load_policy(write_policy(tmp_path / "p.msgpack", "connect_four_v3"))
    keys = RunKeys("selfplay", "playrun")
    ParamStore(redis_client, keys).write_snapshot("v000005", 5, state_dict_numpy(policy.net))
    LeagueStore(redis_client, keys).set_meta(
        {"run_id": "playrun", "game": "connect_four_v3",
         "config": {"game": {"name": "connect_four_v3", "kwargs": {}}, "model": {"hidden_sizes": [16]}}}
    )
    monkeypatch.setattr(sys, "stdin", io.StringIO("4\n"))
    assert main(["play", "v000005", "--redis-url", redis_server.url]) == 0
    assert "policy plays column" in capsys.readouterr().out
    assert main(["play", "latest", "--redis-url", redis_server.url]) == 2
    assert "run 'playrun' has no published weights yet" in capsys.readouterr().err


def test_the_selfplay_entry_point_plays_a_game_to_its_end(tmp_path):
    entry = Path(sys.executable).parent / "selfplay"
    assert entry.is_file(), f"no `selfplay` script next to {sys.executable}: pip install -e '.[test]'"
    policy_file = write_policy(tmp_path / "p.msgpack", "connect_four_v3", seed=2)
    lines, outcome, moves = planned_game(policy_file, "connect_four_v3", 0)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [str(entry), "play", str(policy_file), "--first"], input="\n".join(with_mistakes(lines)) + "\n",
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "'hello' is not a number: type a column number from 1 to 7" in proc.stdout
    assert "99 is not a column of this board" in proc.stdout
    assert proc.stdout.count("policy plays column") == len(moves) // 2
    assert proc.stdout.rstrip().endswith({"win": "you win", "loss": "you lose", "draw": "draw"}[outcome])
    assert proc.stderr == ""


def test_a_game_drawn_by_its_environment_as_text(tmp_path, monkeypatch, capsys):
    """Chess has an ansi rendering: its own board, moves as action numbers from the listed legal ones."""
    policy_file = write_policy(tmp_path / "chess.msgpack", "chess_v6", ModelConfig(hidden_sizes=(8,)))
    make_slot, board = board_for("chess_v6")
    legal = np.flatnonzero(_first_mask(make_slot))
    illegal = next(a for a in range(4672) if a not in set(legal))
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"e4\n{illegal}\n{legal[0]}\n"))
    assert main(["play", str(policy_file)]) == 0
    out = capsys.readouterr().out
    assert "r n b q k b n r" in out.lower() or "rnbqkbnr" in out.lower(), out[:500]
    assert "'e4' is not a number: type one of the legal action numbers listed" in out
    assert f"{illegal} is not a legal move now: legal moves are " in out
    assert "policy plays action" in out and out.rstrip().endswith("end of input: game abandoned")


def _first_mask(make_slot) -> np.ndarray:
    slot = make_slot()
    slot.reset(seed=0)
    return slot.mask


def test_you_lose_to_a_policy_that_stacks_one_column(tmp_path, monkeypatch, capsys):
    """A policy whose head prefers column 1 by far wins its fourth move against a person stacking column 7."""
    policy_file = write_policy(tmp_path / "p.msgpack", "connect_four_v3")
    policy = load_policy(policy_file)
    tensors = state_dict_numpy(policy.net)
    head_bias = sorted(k for k in tensors if k.startswith("pi.") and k.endswith(".bias"))[-1]
    tensors[head_bias][0] = 50.0
    save_policy(policy_file, tensors, 5, policy.meta)
    monkeypatch.setattr(sys, "stdin", io.StringIO("7\n7\n7\n7\n"))
    assert main(["play", str(policy_file), "--second"]) == 0
    out = capsys.readouterr().out
    assert out.count("policy plays column 1") == 4 and out.rstrip().endswith("you lose")


def test_a_policy_file_without_its_game_asks_for_one(tmp_path, monkeypatch, capsys):
    policy = load_policy(write_policy(tmp_path / "p.msgpack", "tictactoe_v3"))
    save_policy(tmp_path / "nogame.msgpack", state_dict_numpy(policy.net), 5, {**policy.meta, "game": ""})
    assert main(["play", str(tmp_path / "nogame.msgpack")]) == 2
    assert "does not say which game it plays; pass --game NAME" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(["play", str(tmp_path / "nogame.msgpack"), "--game", "tictactoe_v3"]) == 0
