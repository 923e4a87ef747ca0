"""Replays: rating games kept by a real evaluator in a real Redis, drawn move by move, bounded per
pair, corrupt records refused, and `selfplay replay` on a real (in-process) run's Redis.

The drawn boards are checked against PettingZoo's own environment (not this project's native
connect four, nor GridBoard's grid): each replay's moves are played through it again and its board
state is written out by the test in the terminal's format."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from actors.evaluate import Agent, play_match
from actors.evaluator import Evaluator, initial_league
from actors.games import load_game
from actors.replay import Replay, ReplayError, format_replay, replay_frames
from actors.scripted import references_for
from cluster.config import config_from_dict, load_config
from cluster.run.cli import main
from cluster.run.inline import run_inline
from cluster.stores.connection import connect
from cluster.stores.keys import RunKeys
from cluster.stores.league_store import LeagueReader, LeagueStore, RedisResultSink
from cluster.stores.param_store import ParamStore
from cluster.stores.payloads import encode_game
from cluster.stores.replay_store import ReplayStore
from league.records import GameResult
from learner.model import PolicyNet, state_dict_numpy
from learner.wire import PayloadError, pack_payload

GAMES = 6
CONFIGS = {
    "tictactoe_v3": ["game.name=tictactoe_v3"],
    "connect_four_v3": ["game.name=connect_four_v3", "eval.references=[tactical]"],
}


def make_evaluator(redis_client, run_keys, game: str = "tictactoe_v3", keep: int = 4, games: int = GAMES):
    """A real evaluator on a real Redis with `latest` (v5) and one snapshot (v000002) to rate."""
    cfg = load_config(None, [*CONFIGS[game], "model.hidden_sizes=[16]", f"eval.games_per_pair={games}",
                             "eval.snapshots_per_round=1", f"eval.replays_per_pair={keep}", "run.seed=3"])
    make_slot, spec = load_game(game)
    params, store = ParamStore(redis_client, run_keys, keep_versions=4), LeagueStore(redis_client, run_keys)
    for version, seed in ((2, 0), (5, 1)):
        torch.manual_seed(seed)
        params.publish(version, state_dict_numpy(PolicyNet(spec.obs_dim, spec.num_actions, (16,))))
        if version == 2:
            params.snapshot_from_published("v000002", 2)
    state = initial_league(cfg, references_for(game))
    state.add_snapshot(2)
    store.save(state)
    replays = ReplayStore(redis_client, run_keys)
    ev = Evaluator(0, cfg, make_slot, spec, params, LeagueReader(store, refresh_s=0.0), RedisResultSink(store),
                   references_for(game), replays)
    return ev, store, replays


# ---- what the environment itself says ------------------------------------------------------------


def env_positions(game: str, moves) -> tuple[list[np.ndarray], tuple[float, float]]:
    """PettingZoo's own board (0 empty, 1 the first player's, 2 the second's) at the start and after
    every move, and the scores it ends with."""
    make_slot, _ = load_game(game, native=False)
    slot = make_slot()
    slot.reset(seed=0)
    rows, cols = (3, 3) if game == "tictactoe_v3" else (6, 7)

    def board() -> np.ndarray:
        env = slot.env.unwrapped
        return np.array(env.board.squares if game == "tictactoe_v3" else env.board).reshape(rows, cols)

    out = [board()]
    for a in moves:
        slot.step(a)
        out.append(board())
    assert slot.over
    return out, tuple(slot.scores())


def drawn(game: str, grid: np.ndarray) -> str:
    """The terminal's drawing of a position, written out here from the board."""
    if game == "connect_four_v3":
        return "\n".join([" 1 2 3 4 5 6 7"] + [" " + " ".join(".XO"[v] for v in row) for row in grid])
    cells = [[".XO"[v] if v else str(3 * r + c + 1) for c, v in enumerate(row)] for r, row in enumerate(grid)]
    return "\n--+---+--\n".join(" | ".join(row) for row in cells)


def expected_text(r: Replay) -> str:
    boards, scores = env_positions(r.game, r.moves)
    assert scores == r.scores
    unit = "cell" if r.game == "tictactoe_v3" else "column"
    seat_text = [f"seat {s} ({'XO'[s]}): {r.players[s]}" + (f" v{r.versions[s]}" if r.versions[s] >= 0 else "") for s in (0, 1)]
    lines = [f"{r.game}, game {r.game_id}", "; ".join(seat_text), "", drawn(r.game, boards[0])]
    for k, a in enumerate(r.moves):
        lines += ["", f"move {k + 1}: {r.players[k % 2]} ({'XO'[k % 2]}) plays {unit} {a + 1}", drawn(r.game, boards[k + 1])]
    result = "draw" if scores[0] == scores[1] else f"{r.players[0 if scores[0] > scores[1] else 1]} wins"
    return "\n".join(lines + ["", f"result: {result} after {len(r.moves)} moves"])


# ---- kept by a real evaluator, drawn as the game drew it -------------------------------------------


@pytest.mark.parametrize("game", sorted(CONFIGS))
def test_an_evaluator_keeps_replays_by_rated_player_and_they_draw_as_the_game_played(redis_client, run_keys, game):
    ev, store, replays = make_evaluator(redis_client, run_keys, game, keep=4)
    ev.round()
    results = {g.game_id: g for g in store.pop_games()}
    refs = ["random", "tactical"] if game == "connect_four_v3" else ["minimax", "random"]
    assert replays.pairs() == [(p, r, 4) for p in ("latest", "v000002") for r in refs]
    for player, ref, _ in replays.pairs():
        kept = replays.games(player, ref)
        for r in kept:
            g = results[r.game_id]  # the same game the league was told about
            assert (r.players, r.versions, r.scores, len(r.moves)) == (g.players, g.versions, g.scores, g.length)
            assert (r.rated, r.reference, r.game) == (player, ref, game)
            assert format_replay(r) == expected_text(r)
        assert {r.versions[r.rated_seat] for r in kept} == {5 if player == "latest" else 2}


def test_a_replay_drawn_in_full():
    r = Replay("tictactoe_v3", "g1", ("latest", "minimax"), (7, -1), 0, (1.0, 0.0), (4, 0, 2, 1, 6), 0, 0.0)
    frames = replay_frames(r)
    assert [f.caption for f in frames] == ["start", "move 1: latest (X) plays cell 5", "move 2: minimax (O) plays cell 1",
                                           "move 3: latest (X) plays cell 3", "move 4: minimax (O) plays cell 2",
                                           "move 5: latest (X) plays cell 7"]
    assert frames[-1].text == "O | O | X\n--+---+--\n4 | X | 6\n--+---+--\nX | 8 | 9"
    assert frames[-1].grid == [[2, 2, 1], [0, 1, 0], [1, 0, 0]]
    assert format_replay(r).splitlines()[:2] == ["tictactoe_v3, game g1", "seat 0 (X): latest v7; seat 1 (O): minimax"]
    assert format_replay(r).endswith("result: latest wins after 5 moves")


# ---- bounded ---------------------------------------------------------------------------------


def test_each_pair_keeps_only_its_newest_games(redis_client, run_keys):
    ev, store, replays = make_evaluator(redis_client, run_keys, keep=4)
    ev.round()
    ev.round()
    newest = [g.game_id for g in store.pop_games() if g.game_id.split("-")[2] == "r1"]
    for player, ref, n in replays.pairs():
        assert n == 4
        ids = [r.game_id for r in replays.games(player, ref)]
        assert ids == [i for i in newest if f"-{player}-{ref}-" in i][-4:]  # the round's last four, oldest first
    assert replays.game("latest", "minimax", -1).game_id == ids_of(replays, "latest", "minimax")[-1]
    assert replays.game("latest", "minimax", 0).game_id == ids_of(replays, "latest", "minimax")[0]
    with pytest.raises(ReplayError, match="there are 4 replays of latest against minimax: the index goes from -4 to 3"):
        replays.game("latest", "minimax", 4)
    # One call with more games than the bound keeps the bound too.
    many = [Replay("tictactoe_v3", f"x{i}", ("latest", "random"), (1, -1), 0, (0.5, 0.5), (), 0, float(i)) for i in range(10)]
    replays.keep(many, per_pair=3)
    assert [r.game_id for r in replays.games("latest", "random")] == ["x7", "x8", "x9"]
    assert redis_client.llen(run_keys.replays("latest", "random")) == 3


def ids_of(replays: ReplayStore, player: str, ref: str) -> list[str]:
    return [r.game_id for r in replays.games(player, ref)]


def test_no_replays_kept_records_no_moves(redis_client, run_keys):
    ev, store, replays = make_evaluator(redis_client, run_keys, keep=0)
    assert ev.round().games == 4 * GAMES
    assert replays.pairs() == [] and not list(redis_client.scan_iter(run_keys.replays("*", "*")))
    make_slot, _ = load_game("tictactoe_v3")
    rnd = Agent(scripted=references_for("tictactoe_v3")["random"])
    assert play_match(make_slot, rnd, rnd, 4).played == ()
    assert [len(p.moves) for p in play_match(make_slot, rnd, rnd, 4, record=True).played] == [
        o[2] for o in play_match(make_slot, rnd, rnd, 4).outcomes]


# ---- corrupt records -------------------------------------------------------------------------------

GOOD = Replay("tictactoe_v3", "g1", ("latest", "minimax"), (7, -1), 0, (1.0, 0.0), (4, 0, 2, 1, 6), 0, 0.0)


def fields(**changes) -> bytes:
    body = {"game": "tictactoe_v3", "game_id": "g1", "players": ["latest", "minimax"], "versions": [7, -1],
            "rated_seat": 0, "scores": [1.0, 0.0], "moves": [4, 0, 2, 1, 6], "seed": 0, "finished_at": 0.0, **changes}
    return pack_payload("replay", 1, {k: v for k, v in body.items() if v is not ...})


@pytest.mark.parametrize("payload,message", [
    (b"\xc1 not msgpack", "corrupt or truncated msgpack"),
    (pickle.dumps({"moves": [1, 2]}), "corrupt or truncated msgpack|not a map|expected a 'replay' payload"),
    (encode_game(GameResult("g", ("latest", "minimax"), (1, -1), (1.0, 0.0), 3, "eval", 1.0, 0.0)),
     "expected a 'replay' payload, got schema 'game'"),
    (pack_payload("replay", 2, {}), "version 2 is not supported"),
    (fields(moves=...), r"missing fields \['moves'\]"),
    (fields(moves=["4"]), "replay.moves: expected at most 100000 action numbers"),
    (fields(scores=[2.0, -1.0]), "replay.scores: expected win/draw/loss scores"),
    (fields(rated_seat=3), "replay.rated_seat: expected 0 or 1, got 3"),
    (fields(players=["latest", "minimax", "x"]), "replay.players: expected a list of two"),
    (fields(players=["v000009", "minimax"]), "it records v000009 against minimax"),
])
def test_corrupt_records_are_refused_with_a_clear_error(redis_client, run_keys, payload, message):
    replays = ReplayStore(redis_client, run_keys)
    replays.keep([GOOD], per_pair=5)
    redis_client.rpush(run_keys.replays("latest", "minimax"), payload)
    with pytest.raises(PayloadError, match=f"replay 1 of latest against minimax is corrupt: .*({message})"):
        replays.games("latest", "minimax")
    with pytest.raises(PayloadError, match="replay 1 of latest against minimax is corrupt"):
        replays.game("latest", "minimax", -1)
    assert replays.game("latest", "minimax", 0) == GOOD


@pytest.mark.parametrize("changes,message", [
    ({"moves": (4, 4, 2, 1, 6)}, r"move 2 \(cell 5\) is not legal in that position"),
    ({"moves": (4, 0, 2, 1, 6, 3)}, "the game ended after 5 moves, but it lists 6"),
    ({"moves": (4, 0, 2)}, "the game is not over after its 3 moves"),
    ({"scores": (0.0, 1.0)}, r"its moves end in scores \(1.0, 0.0\), but it stores \(0.0, 1.0\)"),
    ({"game": "no_such_game_v0"}, "cannot load its game: unknown game 'no_such_game_v0'"),
])
def test_records_that_do_not_replay_are_refused(changes, message):
    import dataclasses

    with pytest.raises(ReplayError, match=f"replay g1( is corrupt)?: {message}"):
        format_replay(dataclasses.replace(GOOD, **changes))


def test_the_cli_reports_a_corrupt_record_and_a_missing_pair(redis_client, redis_server, run_keys, capsys):
    LeagueStore(redis_client, run_keys).set_meta({"run_id": run_keys.run_id, "game": "tictactoe_v3"})
    replays = ReplayStore(redis_client, run_keys)
    replays.keep([GOOD], per_pair=5)
    args = ["replay", "--redis-url", redis_server.url, "--prefix", run_keys.prefix]
    redis_client.rpush(run_keys.replays("latest", "minimax"), b"junk")
    assert main(args) == 2
    assert "selfplay: error: replay 1 of latest against minimax is corrupt: replay: corrupt or truncated msgpack" in capsys.readouterr().err
    assert main([*args, "--index", "0"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "tictactoe_v3, game g1"
    assert main([*args, "--player", "v000001"]) == 2
    assert "keeps no replays of 'v000001'; players with replays: latest" in capsys.readouterr().err


# ---- `selfplay replay` on a real run ---------------------------------------------------------------

RUN = {
    "game": {"name": "tictactoe_v3"},
    "model": {"hidden_sizes": [16]},
    "ppo": {"batch_size": 256, "minibatch_size": 128, "epochs": 1},
    "rollout": {"num_actors": 1, "envs_per_actor": 8, "segment_length": 16},
    "league": {"snapshot_every": 10},
    "eval": {"num_evaluators": 1, "games_per_pair": 4, "snapshots_per_round": 1, "replays_per_pair": 3},
    "redis": {"key_prefix": "replaytest"},
    "run": {"total_env_steps": 3500, "seed": 1, "log_every_s": 1e9},
}


def test_selfplay_replay_prints_a_real_runs_games(redis_client, redis_server, capsys):
    cfg = config_from_dict(RUN)
    learner, manager, _ = run_inline(cfg, redis_server.url, "replay-run", log=lambda s: None)
    keys = RunKeys("replaytest", "replay-run")
    # run_inline trains without registering the run; `selfplay train` registers it like this (trainer.py).
    LeagueStore(redis_client, keys).set_meta({"run_id": "replay-run", "game": "tictactoe_v3", "running": False})
    replays = ReplayStore(connect(redis_server.url), keys)
    pairs = replays.pairs()
    snapshots = sorted({p for p, _, _ in pairs} - {"latest"})
    assert snapshots, pairs  # a snapshot was rated too: "how it played then" is kept beside "now"
    base = ["replay", "--redis-url", redis_server.url, "--prefix", "replaytest"]

    assert main([*base, "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0] == "run replay-run: replays kept per (player, reference) pair"
    assert len(listed) == 1 + len(pairs) and all(line.endswith(" 3 games") for line in listed[1:])
    assert main([*base, "--list", "--opponent", "minimax"]) == 0
    listed = capsys.readouterr().out.splitlines()[1:]
    assert [line.split()[1] for line in listed] == ["latest", *snapshots]  # then the snapshots, oldest first

    for player in ("latest", snapshots[0]):
        assert main([*base, "--player", player, "--opponent", "minimax"]) == 0
        out = capsys.readouterr().out
        newest = replays.game(player, "minimax", -1)
        assert out == f"run replay-run: replay 2 of 3 kept of {player} against minimax (0 the oldest)\n{expected_text(newest)}\n"
    assert newest.versions[newest.rated_seat] == int(snapshots[0][1:])
    assert replays.game("latest", "minimax").versions[replays.game("latest", "minimax").rated_seat] == learner.version

    assert main([*base, "--index", "0"]) == 2
    assert "latest has replays against minimax, random: choose one with --opponent" in capsys.readouterr().err
