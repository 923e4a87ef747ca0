"""Scripted players against the real PettingZoo environments."""

import numpy as np
import pytest
from pettingzoo.classic import connect_four_v3, tictactoe_v3

from actors.scripted import (
    GENERIC_REFERENCES,
    REFERENCES,
    connect_four_immediate_wins,
    connect_four_lookahead,
    connect_four_tactical,
    random_legal,
    references_for,
    tictactoe_minimax,
)


def play(env, policies, rng, seed=0):
    """Play one game; policies[i] moves for seat i. Returns total reward per seat.

    Every move is checked against the mask: the classic envs' illegal-move wrapper
    would otherwise end the game quietly with a penalty.
    """
    env.reset(seed=seed)
    seats = {agent: i for i, agent in enumerate(env.agents)}
    totals = [0.0, 0.0]
    for agent in env.agent_iter():
        obs, reward, term, trunc, _ = env.last()
        totals[seats[agent]] += reward
        if term or trunc:
            env.step(None)
            continue
        action = policies[seats[agent]](obs["observation"], obs["action_mask"], rng)
        assert isinstance(action, int)
        assert obs["action_mask"][action] == 1, f"illegal move {action}"
        env.step(action)
    return totals


def replay(env, moves):
    """Reset and play a fixed move list; return the mover's observation and mask."""
    env.reset(seed=0)
    for move in moves:
        env.step(move)
    obs = env.observe(env.agent_selection)
    return obs["observation"], obs["action_mask"]


# --- tic-tac-toe -----------------------------------------------------------------


@pytest.mark.parametrize("minimax_seat", [0, 1])
def test_minimax_never_loses_to_random(minimax_seat):
    env, rng = tictactoe_v3.env(), np.random.default_rng(minimax_seat)
    policies = [random_legal, random_legal]
    policies[minimax_seat] = tictactoe_minimax
    outcomes = [play(env, policies, rng, seed=i)[minimax_seat] for i in range(200)]
    assert min(outcomes) >= 0.0
    assert outcomes.count(1.0) > 100  # and it wins most games, not just draws


def test_minimax_draws_against_itself():
    env, rng = tictactoe_v3.env(), np.random.default_rng(0)
    for i in range(40):
        assert play(env, [tictactoe_minimax, tictactoe_minimax], rng, seed=i) == [0.0, 0.0]


def test_minimax_takes_win_and_blocks():
    env, rng = tictactoe_v3.env(), np.random.default_rng(0)
    # X: 0, 1 (top row); O: 4, 8. X to move: 2 wins.
    obs, mask = replay(env, [0, 4, 1, 8])
    for _ in range(10):
        assert tictactoe_minimax(obs, mask, rng) == 2
    env.step(2)
    assert env.terminations[env.agents[0]] and env.rewards[env.agents[0]] == 1
    # X: 0, 1; O: 4. O must block at 2.
    obs, mask = replay(env, [0, 4, 1])
    for _ in range(10):
        assert tictactoe_minimax(obs, mask, rng) == 2


def test_minimax_breaks_ties_randomly():
    env, rng = tictactoe_v3.env(), np.random.default_rng(0)
    obs, mask = replay(env, [])
    first_moves = {tictactoe_minimax(obs, mask, rng) for _ in range(200)}
    assert len(first_moves) > 1  # every opening draws, so every cell is optimal


# --- connect four ----------------------------------------------------------------

# Seat 0 builds 0,1,2 on the bottom row; seat 1 stacks column 6 (two high).
HORIZONTAL_THREAT = [0, 6, 1, 6, 2]
# Seat 0: diagonal c0h0, c1h1, c2h2 with c3 three high, so c3 lands at h3.
DIAGONAL_SETUP = [0, 1, 1, 2, 3, 2, 2, 3, 6, 3]


def test_tactical_takes_horizontal_win():
    env, rng = connect_four_v3.env(), np.random.default_rng(0)
    obs, mask = replay(env, HORIZONTAL_THREAT + [5])
    for _ in range(10):
        assert connect_four_tactical(obs, mask, rng) == 3
    env.step(3)
    assert env.rewards[env.agents[0]] == 1 and env.terminations[env.agents[0]]


def test_tactical_takes_diagonal_win():
    env, rng = connect_four_v3.env(), np.random.default_rng(0)
    obs, mask = replay(env, DIAGONAL_SETUP)
    assert obs[2, 3].sum() == 0 and obs[3, 3].sum() == 1  # c3 is three high
    for _ in range(10):
        assert connect_four_tactical(obs, mask, rng) == 3
    env.step(3)
    assert env.rewards[env.agents[0]] == 1


def test_tactical_blocks_horizontal_threat():
    env, rng = connect_four_v3.env(), np.random.default_rng(0)
    obs, mask = replay(env, HORIZONTAL_THREAT)  # seat 1 to move, seat 0 threatens col 3
    for _ in range(10):
        assert connect_four_tactical(obs, mask, rng) == 3


def test_tactical_blocks_vertical_threat():
    env, rng = connect_four_v3.env(), np.random.default_rng(0)
    obs, mask = replay(env, [0, 1, 0, 1, 0])  # seat 0 has three in column 0
    for _ in range(10):
        assert connect_four_tactical(obs, mask, rng) == 0


def test_immediate_wins_name_the_movers_wins_and_the_opponents():
    env = connect_four_v3.env()
    obs, mask = replay(env, HORIZONTAL_THREAT)  # seat 1 to move: seat 0 wins at column 3 if it moves there
    assert connect_four_immediate_wins(obs, mask) == ([], [3])
    obs, mask = replay(env, HORIZONTAL_THREAT + [5])  # seat 0 to move: its own win
    assert connect_four_immediate_wins(obs, mask) == ([3], [])
    obs, mask = replay(env, DIAGONAL_SETUP)
    assert 3 in connect_four_immediate_wins(obs, mask)[0]


def test_tactical_prefers_winning_to_blocking():
    env, rng = connect_four_v3.env(), np.random.default_rng(0)
    obs, mask = replay(env, HORIZONTAL_THREAT + [6])  # seat 1 threatens column 6 too
    for _ in range(10):
        assert connect_four_tactical(obs, mask, rng) == 3


def test_tactical_beats_random():
    env, rng = connect_four_v3.env(), np.random.default_rng(0)
    wins = 0
    for i in range(200):
        seat = i % 2
        policies = [random_legal, random_legal]
        policies[seat] = connect_four_tactical
        wins += play(env, policies, rng, seed=i)[seat] == 1.0
    assert wins / 200 > 0.8


def test_lookahead_wins_and_blocks_like_tactical():
    env, rng = connect_four_v3.env(), np.random.default_rng(0)
    obs, mask = replay(env, HORIZONTAL_THREAT + [6])
    assert all(connect_four_lookahead(obs, mask, rng) == 3 for _ in range(10))  # win over block
    env = connect_four_v3.env()
    obs, mask = replay(env, HORIZONTAL_THREAT)
    assert all(connect_four_lookahead(obs, mask, rng) == 3 for _ in range(10))


def test_lookahead_never_plays_under_the_opponents_winning_cell():
    # Seat 1 holds c0, c1, c2 one above the bottom; column 3 is empty, so a piece there (the
    # bottom) would let seat 1 land on c3 one up and win. Seat 0 is to move with no win or block.
    env, rng = connect_four_v3.env(), np.random.default_rng(0)
    obs, mask = replay(env, [0, 1, 2, 0, 6, 1, 6, 2])
    theirs = obs[..., 1].astype(bool)
    assert theirs[4, 0] and theirs[4, 1] and theirs[4, 2] and not (obs[:, 3].any())
    picks = {connect_four_lookahead(obs, mask, rng) for _ in range(50)}
    assert 3 not in picks and picks == {2, 4}  # otherwise central column 3 would be its only choice


def test_lookahead_beats_tactical():
    env, rng = connect_four_v3.env(), np.random.default_rng(0)
    wins = 0
    for i in range(100):
        seat = i % 2
        policies = [connect_four_tactical, connect_four_tactical]
        policies[seat] = connect_four_lookahead
        wins += play(env, policies, rng, seed=i)[seat] == 1.0
    assert wins / 100 > 0.75


def test_tactical_against_itself_stays_legal():
    env, rng = connect_four_v3.env(), np.random.default_rng(1)
    for i in range(20):
        play(env, [connect_four_tactical, connect_four_tactical], rng, seed=i)


# --- random and registry ------------------------------------------------------------


def test_random_legal_is_uniform_over_legal():
    rng = np.random.default_rng(0)
    mask = np.array([0, 1, 0, 1, 1, 0], dtype=np.int8)
    counts = np.bincount([random_legal(np.zeros(1), mask, rng) for _ in range(3000)], minlength=6)
    assert counts[[0, 2, 5]].sum() == 0
    assert np.all(np.abs(counts[[1, 3, 4]] / 3000 - 1 / 3) < 0.05)
    assert random_legal(np.zeros(1), mask.astype(bool), rng) in (1, 3, 4)


@pytest.mark.parametrize("policy", [random_legal, connect_four_tactical, tictactoe_minimax])
def test_empty_mask_raises(policy):
    shape = (3, 3, 2) if policy is tictactoe_minimax else (6, 7, 2)
    with pytest.raises(ValueError, match="no legal action"):
        policy(np.zeros(shape, dtype=np.int8), np.zeros(shape[0] * shape[1] if shape[0] == 3 else 7), np.random.default_rng(0))


def test_wrong_board_shape_raises():
    with pytest.raises(ValueError, match="connect_four_v3"):
        connect_four_tactical(np.zeros((3, 3, 2)), np.ones(9), np.random.default_rng(0))
    with pytest.raises(ValueError, match="tictactoe_v3"):
        tictactoe_minimax(np.zeros((6, 7, 2)), np.ones(7), np.random.default_rng(0))


def test_registry():
    assert references_for("connect_four_v3") == {
        "random": random_legal, "tactical": connect_four_tactical, "lookahead": connect_four_lookahead
    }
    assert references_for("tictactoe_v3") == {"random": random_legal, "minimax": tictactoe_minimax}
    assert references_for("go_v5") == GENERIC_REFERENCES == {"random": random_legal}
    refs = references_for("tictactoe_v3")
    refs.pop("random")
    assert "random" in REFERENCES["tictactoe_v3"]  # callers get a copy
