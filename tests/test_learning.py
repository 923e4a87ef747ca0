"""Learning really happens: a run bounded in steps learns tic-tac-toe, never losing when it moves first.

In-process (cluster/run/inline.py): the same rollout worker, learner, parameter store (real Redis) and
league as a distributed run, taking turns, so on one machine the result depends on the seed and not
on machine load. The policy is judged exactly: the whole game tree against minimax (uniform among its
best moves) and against the uniformly random player is walked, so "never loses" means a loss
probability of 0, not a lucky sample of games.

The bar is what every trajectory measured reaches, not what one seed reaches: torch's float
arithmetic differs between CPUs, so CI's machine follows another trajectory than this one's, and
perfect play from both seats is reached by some trajectories only (moving second, the policy can end
a run on one wrong reply to one opening; docs/results.md, "Tic-tac-toe", gives the spread over seeds with
benchmarks/learning_curve.py). A uniformly random player loses 29% of its games to random moving
first, 58% moving second.
"""

from __future__ import annotations

import pytest

# A few minutes on 2 cores: marked so a quick local loop can skip it with -m 'not learning'.
pytestmark = pytest.mark.learning

from actors.evaluate import best_moves, exact_outcomes, uniform_moves
from actors.games import load_game
from actors.scripted import tictactoe_move_values
from cluster.config import load_config
from cluster.run.inline import run_inline
from league.records import LEARNER_ID, RANDOM_ID
from learner.model import InferencePolicy


def test_tictactoe_policy_never_loses_moving_first_and_rarely_to_random_moving_second(redis_server):
    """What it checks, and what it does not: moving first, loss probability 0 against minimax and
    random; moving second, under 5% against random, and nothing against minimax. Before the config's
    trembling hand (rollout.random_move_prob) some trajectories ended a run losing moving second;
    with it every seed measured ends at 0 from both seats (docs/results.md), but none of them was CI's
    machine, whose float arithmetic follows another trajectory: the full bar waits for that evidence."""
    cfg = load_config("configs/tictactoe_learn.yaml")
    learner, manager, steps = run_inline(cfg, redis_server.url, "learn-ttt", log=lambda s: None)
    assert steps >= cfg.run.total_env_steps
    make_slot, spec = load_game(cfg.game.name)
    policy = InferencePolicy(spec.obs_shape, spec.num_actions, cfg.model, learner.version)
    policy.load(learner.weights(), learner.version)
    opponents = {"minimax": best_moves(tictactoe_move_values), "random": uniform_moves}
    outcomes = {(name, seat): exact_outcomes(make_slot, policy, moves, seat) for name, moves in opponents.items() for seat in (0, 1)}
    losses = {key: round(o[2], 6) for key, o in outcomes.items()}  # (opponent, the policy's seat) -> P(loss)
    # Moving first it never loses, to perfect play or to random; moving second it rarely loses to random.
    assert losses[("minimax", 0)] == 0.0 and losses[("random", 0)] == 0.0, losses
    assert losses[("random", 1)] < 0.05, losses
    # Against random it also wins most games moving first: it does not just play for draws.
    assert outcomes[("random", 0)][0] > 0.8, outcomes
    # The league saw it too: its snapshots are rated clearly above the random player (pinned at 0).
    state = manager.state
    assert state.players[RANDOM_ID].elo == 0.0
    best_snapshot = max(p.elo for p in state.players.values() if p.kind == "snapshot")
    assert best_snapshot > 200, [(p.id, round(p.elo), p.games) for p in state.table()]
    assert state.players[LEARNER_ID].version == learner.version
