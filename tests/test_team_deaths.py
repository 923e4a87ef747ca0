"""Team games where agents die (actors/teams.py, actors/rollout.py): an agent that leaves the game
ends its last decision there, and its teammates' team mean counts only the live seats."""

from __future__ import annotations

import numpy as np

from actors.games import load_game
from actors.rollout import RolloutWorker
from actors.scripted import random_legal
from actors.teams import team_rewards
from cluster.config import Config
from league.records import RANDOM_ID
from tests.test_rollout import HIDDEN, FakeLeague, FakeParams, ListResults, ListSink

SKIRMISH = "tests.team_games:skirmish"


def test_dead_seats_do_not_dilute_the_team_mean():
    side_of = np.array([0, 0, 1, 1])
    r = np.array([1.0, 0.0, 1.0, 1.0])
    np.testing.assert_allclose(team_rewards(r, side_of, 2, 1.0, False), [0.5, 0.5, 1.0, 1.0])
    live = np.array([True, False, True, True])
    np.testing.assert_allclose(team_rewards(r, side_of, 2, 1.0, False, live=live)[[0, 2, 3]], [1.0, 1.0, 1.0])
    # zero-sum: the enemy mean is the enemy's live seats' mean too
    np.testing.assert_allclose(team_rewards(r, side_of, 2, 1.0, True, live=live)[[0, 2, 3]], [0.0, 0.0, 0.0])


def test_a_dead_agent_stops_collecting_team_rewards_and_its_teammate_gets_the_live_mean():
    """Skirmish, 4 steps, red_1 dies on step 2. Team spirit 1: every red agent learns from the red
    mean. red_1's two decisions end (done) at its death and hold steps 1 and 2's team means only;
    red_0's steps 3 and 4 pay its own reward (it is the only live red agent), not half of it."""
    make_slot, spec = load_game(SKIRMISH)
    cfg = (
        Config()
        .replace("game", team_spirit=1.0)
        .replace("rollout", envs_per_actor=1, segment_length=2, weight_poll_s=0.0)
        .replace("model", hidden_sizes=HIDDEN)
    )
    params = FakeParams(spec.obs_dim, spec.num_actions)
    params.publish(0, seed=100)
    sink, results = ListSink(), ListResults()
    worker = RolloutWorker(0, cfg, make_slot, spec, params, FakeLeague(None, "uniform"), sink, results, {RANDOM_ID: random_legal})
    worker.start()
    while not results.games:
        worker.tick()

    def lane(index: int, blue: int) -> list:
        return [s for s in sink.segments if s.obs[0, 1] == index and s.obs[0, 2] == blue]

    red0, red1 = lane(0, 0), lane(1, 0)
    assert [len(s) for s in red0] == [2, 2] and [len(s) for s in red1] == [2]
    a0 = np.concatenate([s.actions for s in red0]).astype(float)
    a1 = red1[0].actions.astype(float)
    assert red1[0].dones.tolist() == [False, True]  # its last decision ends at its death
    np.testing.assert_allclose(red1[0].rewards, (a0[:2] + a1) / 2)  # nothing after it died
    np.testing.assert_allclose(np.concatenate([s.rewards for s in red0]), [*((a0[:2] + a1) / 2), *a0[2:]])


def test_a_turn_based_game_ends_a_dead_agents_lane_too():
    """Fallen (AEC): red_1 moves once (step 2) and dies. Its decision holds that step's red mean only;
    red_0's later decisions get its own rewards, red_1 no longer in the mean."""
    make_slot, spec = load_game("tests.team_games:fallen")
    cfg = (
        Config()
        .replace("game", team_spirit=1.0)
        .replace("rollout", envs_per_actor=1, segment_length=1, weight_poll_s=0.0)
        .replace("model", hidden_sizes=HIDDEN)
        .replace("run", seed=2)
    )
    params = FakeParams(spec.obs_dim, spec.num_actions)
    params.publish(0, seed=100)
    sink, results = ListSink(), ListResults()
    worker = RolloutWorker(0, cfg, make_slot, spec, params, FakeLeague(None, "uniform"), sink, results, {RANDOM_ID: random_legal})
    worker.start()
    while not results.games:
        worker.tick()
    red0 = [s for s in sink.segments if s.obs[0, 1] == 0 and s.obs[0, 2] == 0]
    red1 = [s for s in sink.segments if s.obs[0, 1] == 1 and s.obs[0, 2] == 0]
    assert len(red0) == 3 and len(red1) == 1 and red1[0].dones.tolist() == [True]
    a0 = [float(s.actions[0]) for s in red0]
    a1 = float(red1[0].actions[0])
    assert a0[1] > 0 and a0[2] > 0  # seeds chosen so that red_0 earns after red_1's death
    np.testing.assert_allclose(red1[0].rewards, [a1 / 2])
    np.testing.assert_allclose([float(s.rewards[0]) for s in red0], [(a0[0] + a1) / 2, a0[1], a0[2]])
