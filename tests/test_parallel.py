"""Parallel-API games in the rollout loop (actors/parallel_games.py): every live agent decides in
the same tick, and a game cut by a time limit bootstraps its last decisions from V(final observation)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from actors.games import load_game
from actors.parallel_games import ParallelSlot
from actors.rollout import RolloutWorker
from actors.scripted import random_legal
from cluster.config import Config
from league.records import LEARNER_ID, RANDOM_ID
from learner.model import InferencePolicy, PolicyNet, state_dict_numpy
from tests.test_rollout import HIDDEN, FakeLeague, FakeParams, ListResults, ListSink

GAMMA = 0.9


def _worker(time_limit: bool, envs: int = 2, steps: int = 3, kind: str = "mlp"):
    make_slot, spec = load_game("tests.team_games:countdown", {"steps": steps, "time_limit": time_limit})
    cfg = (
        Config()
        .replace("game", name="tests.team_games:countdown", kwargs={"steps": steps, "time_limit": time_limit})
        .replace("rollout", envs_per_actor=envs, segment_length=steps, weight_poll_s=0.0)
        .replace("model", hidden_sizes=HIDDEN, kind=kind, lstm_size=8)
        .replace("ppo", gamma=GAMMA)
    )
    params = FakeParams(spec.obs_dim, spec.num_actions)
    if kind == "mlp":
        params.publish(0, seed=7)
        params.served[0]["v.2.bias"] = np.array([0.75], np.float32)  # V(0-observation) is not 0, so the bootstrap shows
    else:
        params.served[0], params.version = state_dict_numpy(PolicyNet(spec.obs_shape, spec.num_actions, cfg.model)), 0
    sink, results = ListSink(), ListResults()
    worker = RolloutWorker(0, cfg, make_slot, spec, params, FakeLeague(None, "uniform"), sink, results, {RANDOM_ID: random_legal})
    return worker, params, sink, results


class CountingPolicy(InferencePolicy):
    """Counts batched forward passes and the decisions in each."""

    def __init__(self, inner: InferencePolicy) -> None:
        self.__dict__.update(inner.__dict__)
        self.batches: list[int] = []

    def act(self, obs, mask, rng, greedy=False):
        self.batches.append(len(obs))
        return super().act(obs, mask, rng, greedy)


def test_every_live_agent_of_every_slot_decides_in_one_tick_with_one_forward_pass():
    worker, _, sink, results = _worker(time_limit=True, envs=3, steps=4)
    worker.start()
    assert all(isinstance(s, ParallelSlot) for s in worker.slots)
    worker.latest = counting = CountingPolicy(worker.latest)
    for _ in range(4):
        worker.tick()
    # Before a league exists every seat is the learner's: 3 slots x 2 agents in one batch per tick.
    assert counting.batches == [6, 6, 6, 6]
    assert worker.stats.env_steps == 24
    assert len(results.games) == 3 and all(g.length == 8 and g.players == (LEARNER_ID, LEARNER_ID) for g in results.games)
    # One segment per agent per slot, its rewards those of its own actions (1 for action 1).
    segs = sink.segments
    assert len(segs) == 6 and all(len(s) == 4 for s in segs)


@pytest.mark.parametrize("time_limit", [True, False])
def test_a_time_limit_bootstraps_the_last_decision_and_an_ending_does_not(time_limit):
    worker, params, sink, _ = _worker(time_limit=time_limit, envs=1, steps=3)
    worker.start()
    for _ in range(3):
        worker.tick()
    segs = sink.segments
    assert len(segs) == 2
    net = InferencePolicy(2, 2, worker.cfg.model)
    net.load(params.served[0], 0)
    for seg in segs:
        assert seg.dones.tolist() == [False, False, True]
        own = seg.actions.astype(np.float32)  # each agent is paid its action, nothing else
        np.testing.assert_allclose(seg.rewards[:-1], own[:-1])
        index = float(seg.obs[0, 1])
        final = np.array([[0.0, index]], np.float32)  # no steps left, the agent's index
        extra = GAMMA * float(net.value(final)[0]) if time_limit else 0.0
        assert abs(extra) > 1e-4 or not time_limit  # the value is not zero, so the check can fail
        np.testing.assert_allclose(seg.rewards[-1], own[-1] + extra, rtol=1e-5, atol=1e-6)


def test_a_recurrent_policy_bootstraps_from_what_the_seat_remembers():
    worker, params, sink, _ = _worker(time_limit=True, envs=1, steps=3, kind="lstm")
    worker.start()
    for _ in range(3):
        worker.tick()
    net = PolicyNet(2, 2, worker.cfg.model)
    net.load_state_dict({k: torch.tensor(v) for k, v in params.served[0].items()})
    for seg in sink.segments:
        # The seat's own history from a zero state, then V(final observation) from where it ended.
        state = (torch.zeros(1, 8), torch.zeros(1, 8))
        mask = torch.ones(1, 2, dtype=torch.bool)
        with torch.no_grad():
            for row in seg.obs:
                _, _, state = net.step(torch.from_numpy(row[None]), mask, state)
            final = torch.tensor([[0.0, float(seg.obs[0, 1])]])
            v_final = float(net.step(final, mask, state)[1][0])
            v_fresh = float(net.step(final, mask, (torch.zeros(1, 8), torch.zeros(1, 8)))[1][0])
        assert abs(v_final - v_fresh) > 1e-6  # the history matters, so the check can tell them apart
        np.testing.assert_allclose(seg.rewards[-1], float(seg.actions[-1]) + GAMMA * v_final, rtol=1e-5, atol=1e-6)


def test_a_continuous_parallel_game_steps_every_agent_at_once_with_vector_actions():
    """mpe2 simple_spread with Box actions: three agents, each its own side, all deciding in one tick."""
    kwargs = {"continuous_actions": True, "N": 3, "max_cycles": 4}
    make_slot, spec = load_game("simple_spread_v3", kwargs)
    cfg = (
        Config()
        .replace("game", name="simple_spread_v3", kwargs=kwargs)
        .replace("rollout", envs_per_actor=2, segment_length=4, weight_poll_s=0.0)
        .replace("model", hidden_sizes=HIDDEN)
    )
    params = FakeParams(spec.obs_dim, spec.num_actions)
    params.served[0] = state_dict_numpy(PolicyNet(spec.obs_shape, spec.num_actions, cfg.model, spec.head))
    params.version = 0
    sink, results = ListSink(), ListResults()
    worker = RolloutWorker(0, cfg, make_slot, spec, params, FakeLeague(None, "uniform"), sink, results, {})
    worker.start()
    worker.latest = counting = CountingPolicy(worker.latest)
    for _ in range(4):
        worker.tick()
    assert counting.batches == [6, 6, 6, 6]
    assert len(results.games) == 2 and all(g.length == 12 for g in results.games)
    segs = sink.segments
    assert len(segs) == 6
    for seg in segs:
        assert seg.actions.dtype == np.float32 and seg.actions.shape == (4, spec.num_actions) and seg.masks.shape == (4, 0)
        assert seg.dones.tolist() == [False, False, False, True]
