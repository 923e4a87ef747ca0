"""Recurrent policies (model.kind lstm): the network, the actors' per-seat state, the segments'
initial state on the wire, the learner's unroll and everything that loads weights (learning to
remember: tests/test_recall.py). Real parts throughout: the rollout loop on real tic-tac-toe, the
real Learner, the real wire format."""

from __future__ import annotations

import dataclasses

import msgpack
import numpy as np
import pytest
import torch

from actors.evaluate import Agent, exact_outcomes, play_match, uniform_moves
from actors.games import load_game
from actors.human import HumanMatch
from actors.memory import SeatMemory
from actors.rollout import RolloutWorker
from actors.scripted import random_legal
from cluster.config import Config, ConfigError, load_config
from league.league import LeagueState, snapshot_id
from league.records import RANDOM_ID
from learner.arch import ModelConfig, model_from_meta
from learner.export import load_policy, policy_meta, save_policy
from learner.learner import Learner
from learner.model import InferencePolicy, PolicyNet, masked_log_probs, state_dict_numpy
from learner.onnx_export import ExportError, export_onnx
from learner.recurrent import SequenceBatch
from learner.segment import Segment
from learner.wire import PayloadError, decode_segments, encode_segments
from tests.test_rollout import FakeLeague, ListResults, ListSink

LSTM = ModelConfig(kind="lstm", hidden_sizes=(16,), lstm_size=8)


@pytest.fixture(scope="module")
def tictactoe():
    return load_game("tictactoe_v3")


def sharp_weights(spec, seed: int, model: ModelConfig = LSTM) -> dict[str, np.ndarray]:
    """An LSTM far from uniform, whose log-probs depend strongly on its state (so a wrong state shows)."""
    torch.manual_seed(seed)
    net = PolicyNet(spec.obs_shape, spec.num_actions, model)
    with torch.no_grad():
        net.lstm_net.pi_out.weight.mul_(300.0)
        net.lstm_net.lstm.weight_hh_l0.mul_(3.0)
    return state_dict_numpy(net)


class Params:
    """The parameter store as the rollout sees it: fixed latest weights, and snapshots by id."""

    def __init__(self, weights: dict[str, np.ndarray], version: int = 0) -> None:
        self.weights, self.version = weights, version
        self.snapshots: dict[str, tuple[int, dict[str, np.ndarray]]] = {}

    def poll(self, known_version: int):
        return None if known_version >= self.version else (self.version, self.weights)

    def fetch_snapshot(self, player_id: str):
        return self.snapshots[player_id]


def lstm_worker(tictactoe, weights, envs=4, segment_length=4, league=None, sampler="uniform", latest_prob=0.8):
    make_slot, spec = tictactoe
    cfg = (
        Config()
        .replace("rollout", envs_per_actor=envs, segment_length=segment_length, weight_poll_s=0.0)
        .replace("model", **dataclasses.asdict(LSTM))
        .replace("league", sampler=sampler, latest_prob=latest_prob)
    )
    params, sink = Params(weights), ListSink()
    worker = RolloutWorker(0, cfg, make_slot, spec, params, FakeLeague(league, sampler), sink, ListResults(), {RANDOM_ID: random_legal})
    return worker, params, sink


def recomputed_logp(model: PolicyNet, segments: list[Segment], zero_states=False, no_resets=False) -> np.ndarray:
    """The learner's unroll of `segments` (learner/recurrent.py), log-probs of the taken actions in sample order."""
    if zero_states:
        segments = [dataclasses.replace(s, initial_state=np.zeros_like(s.initial_state)) for s in segments]
    seq = SequenceBatch(segments, torch.device("cpu"))
    if no_resets:
        seq.starts.zero_()
    with torch.no_grad():
        idx, logits, _ = seq.forward(model, torch.arange(seq.num_segments))
    actions = torch.from_numpy(np.concatenate([s.actions for s in segments]))[idx]
    out = np.empty(len(idx), np.float32)
    out[idx.numpy()] = masked_log_probs(logits).gather(-1, actions[:, None]).squeeze(-1).numpy()
    return out


# --- the architecture ----------------------------------------------------------------------


def test_lstm_config_is_checked_and_travels_with_the_weights():
    with pytest.raises(ValueError, match="symmetry"):
        ModelConfig(kind="lstm", symmetry="mirror").check()
    with pytest.raises(ValueError, match="lstm_size"):
        ModelConfig(kind="lstm", lstm_size=0).check()
    with pytest.raises(ConfigError, match="lstm"):
        load_config(None, ["model.kind=lstm", "model.symmetry=dihedral", "game.name=tictactoe_v3"])
    cfg = load_config(None, ["model.kind=lstm", "model.lstm_size=24", "model.hidden_sizes=[32]"])
    assert model_from_meta({"model": cfg.model.to_dict()}) == cfg.model
    assert "lstm_size" in cfg.model.fields_in_use() and "lstm_size" not in ModelConfig().fields_in_use()
    with pytest.raises(TypeError, match="recurrent"):
        InferencePolicy(5, 2, LSTM).act(np.zeros((1, 5), np.float32), np.ones((1, 2), bool), np.random.default_rng(0))


def test_unroll_zeroes_the_state_where_a_game_starts_and_matches_step_by_step():
    torch.manual_seed(0)
    net = PolicyNet(6, 3, LSTM)
    obs, mask = torch.randn(5, 2, 6), torch.ones(5, 2, 3, dtype=torch.bool)
    starts = torch.zeros(5, 2, dtype=torch.bool)
    starts[3, 0] = True  # column 0: a new game at t = 3
    h0 = (torch.randn(2, 8), torch.randn(2, 8))
    with torch.no_grad():
        logits, values, _ = net.unroll(obs, mask, starts, h0)
        state, by_step = h0, []
        for t in range(5):
            if t == 3:
                state = (state[0] * torch.tensor([[0.0], [1.0]]), state[1] * torch.tensor([[0.0], [1.0]]))
            lg, _, state = net.step(obs[t], mask[t], state)
            by_step.append(lg)
        fresh, _, _ = net.step(obs[3, :1], mask[3, :1], (torch.zeros(1, 8), torch.zeros(1, 8)))
    torch.testing.assert_close(logits, torch.stack(by_step), atol=1e-6, rtol=0)
    torch.testing.assert_close(logits[3, 0], fresh[0], atol=1e-6, rtol=0)  # as if from a fresh game
    assert not torch.allclose(logits[3, 1], net.step(obs[3, 1:], mask[3, 1:], (torch.zeros(1, 8),) * 2)[0][0])


# --- actors ------------------------------------------------------------------------------


def test_segment_cut_mid_game_learner_recomputes_the_actors_log_probs(tictactoe):
    """The issue's test: segments cut every 4 decisions, mid-game, some with a game end inside; after
    the wire, the learner's unroll from each segment's shipped state gives the actors' log-probs."""
    _, spec = tictactoe
    weights = sharp_weights(spec, seed=3)
    worker, _, sink = lstm_worker(tictactoe, weights, envs=6, segment_length=4)
    worker.run(lambda: False, max_ticks=80)
    segments = decode_segments(encode_segments(sink.segments))
    mid_game = [s for s in segments if np.abs(s.initial_state).sum() > 0]
    assert len(segments) >= 20 and len(mid_game) >= 5
    assert sum(bool(s.dones[:-1].any()) for s in segments) >= 5  # a game ends inside the segment
    assert sum(s.dones[:-1].any() for s in mid_game) >= 2  # ... of one that started mid-game

    learner_cfg = Config().replace("ppo", batch_size=10**6, minibatch_size=10**6, epochs=1)
    learner = Learner(spec, LSTM, learner_cfg.ppo, learner_cfg.learner)
    learner.load_weights(weights)
    actors_logp = np.concatenate([s.logp for s in segments])
    np.testing.assert_allclose(recomputed_logp(learner.model, segments), actors_logp, atol=1e-5, rtol=0)
    # Controls: the test can tell a wrong state from a right one.
    assert np.abs(recomputed_logp(learner.model, segments, zero_states=True) - actors_logp).max() > 1e-2
    assert np.abs(recomputed_logp(learner.model, segments, no_resets=True) - actors_logp).max() > 1e-2

    # Through update(): one minibatch of all segments, one epoch: the ratio was exactly 1.
    learner.add(segments)
    m = learner.update()
    assert m["losses/grad_steps"] == 1.0
    assert abs(m["losses/approx_kl"]) < 1e-9 and m["losses/clip_frac"] == 0.0


def test_state_is_zero_at_every_game_start_and_carried_otherwise(tictactoe):
    _, spec = tictactoe
    worker, _, sink = lstm_worker(tictactoe, sharp_weights(spec, seed=4), envs=4, segment_length=3)
    worker.start()
    restarts = 0
    for _ in range(60):
        worker.tick()
        for i, slot in enumerate(worker.slots):
            if slot.length == 0:  # slot i's game ended in this tick and a new one was seated
                restarts += 1
                assert worker._memory.state(i, 0) is None and worker._memory.state(i, 1) is None
            else:  # mid-game: the seats that moved so far hold their states
                assert worker._memory.state(i, 1 - slot.seat) is not None
    assert restarts >= 10
    # A segment opening on an empty board (the first move of a game) starts from zeros, exactly.
    openings = [s for s in sink.segments if not s.obs[0].any()]
    assert openings and all(not s.initial_state.any() for s in openings)
    assert any(s.initial_state.any() for s in sink.segments)


def test_memory_forgets_a_game_at_its_start_and_keeps_seats_apart():
    torch.manual_seed(1)
    policy = InferencePolicy(4, 2, LSTM, version=0)
    memory, rng = SeatMemory(), np.random.default_rng(0)
    obs, mask = np.eye(4, dtype=np.float32)[:2], np.ones((2, 2), bool)
    _, _, _, before = memory.act(policy, obs, mask, rng, [(0, 0), (0, 1)])
    assert not before.any()
    a, b = memory.state(0, 0), memory.state(0, 1)
    assert a.shape == (2, 8) and not np.allclose(a, b)  # two seats, two histories
    _, _, _, before = memory.act(policy, obs[:1], mask[:1], rng, [(0, 0)])
    np.testing.assert_array_equal(before[0], a)  # carried to that seat's next decision
    memory.new_game(0)
    assert memory.state(0, 0) is None and memory.state(0, 1) is None


def test_an_lstm_opponent_keeps_a_state_per_slot_and_seat(tictactoe):
    """The same snapshot seated in several slots remembers each game on its own: its state in every
    slot is what its own observations there, replayed from zeros, give."""
    _, spec = tictactoe
    league = LeagueState.new(reference_ids=())
    league.add_snapshot(7)
    worker, params, _ = lstm_worker(tictactoe, sharp_weights(spec, seed=5), envs=6, league=league, latest_prob=0.0)
    params.snapshots[snapshot_id(7)] = (7, sharp_weights(spec, seed=6))
    seen: dict[tuple[int, int], list[np.ndarray]] = {}
    real_act, real_new_game = worker._memory.act, worker._memory.new_game

    def recording_act(policy, obs, masks, rng, keys, greedy=False):
        keys = list(keys)
        if policy is not worker.latest:
            for k, o in zip(keys, obs):
                seen.setdefault(k, []).append(o.copy())
        return real_act(policy, obs, masks, rng, keys, greedy)

    def recording_new_game(game):
        for k in [k for k in seen if k[0] == game]:
            del seen[k]
        real_new_game(game)

    worker._memory.act, worker._memory.new_game = recording_act, recording_new_game
    worker.start()
    for _ in range(2):
        worker.tick()
    snap = worker._opponents[snapshot_id(7)]
    seated = [(i, s.players.index(snapshot_id(7))) for i, s in enumerate(worker.seatings)]
    states = {}
    for i, side in seated:
        key = (i, side)  # tic-tac-toe: one seat per side
        if key not in seen:
            continue
        state = snap.initial_state(1)
        for o in seen[key]:
            _, _, _, state = snap.act_recurrent(o[None], np.ones((1, spec.num_actions), bool), state, np.random.default_rng(0))
        np.testing.assert_allclose(worker._memory.state(*key), state[0], atol=1e-6)
        states[key] = worker._memory.state(*key)
    assert len(states) >= 3
    distinct = {tuple(np.round(s.ravel(), 5)) for s in states.values()}
    assert len(distinct) >= 2  # different histories, different states


# --- the wire and the learner's intake -----------------------------------------------------


def _segment(state=None, t=3) -> Segment:
    return Segment(
        0, 1, np.zeros((t, 4), np.float32), np.ones((t, 2), bool), np.zeros(t, np.int64), np.zeros(t, np.float32),
        np.zeros(t, np.float32), np.zeros(t, np.float32), np.zeros(t, bool), np.zeros(t, np.int64), 0.0, state,
    )


def test_initial_state_round_trips_on_the_wire_and_corrupt_ones_are_refused():
    state = np.arange(16, dtype=np.float32).reshape(2, 8) / 7
    (back,) = decode_segments(encode_segments([_segment(state)]))
    np.testing.assert_array_equal(back.initial_state, state)
    assert back.initial_state.dtype == np.float32
    # Feed-forward segments travel exactly as before: no field, and None on the way back.
    plain = encode_segments([_segment()])
    assert "initial_state" not in msgpack.unpackb(plain, raw=False)["segments"][0]
    assert decode_segments(plain)[0].initial_state is None

    def tampered(change) -> bytes:
        obj = msgpack.unpackb(encode_segments([_segment(state)]), raw=False)
        change(obj["segments"][0]["initial_state"])
        return msgpack.packb(obj, use_bin_type=True)

    bad = [
        lambda a: a.update(data=a["data"][:-4]),  # truncated
        lambda a: a.update(dtype="float64", data=np.zeros(16).tobytes()),
        lambda a: a.update(shape=[3, 8], data=np.zeros(24, np.float32).tobytes()),
        lambda a: a.update(shape=[16]),
        lambda a: a.update(data=np.full(16, np.nan, np.float32).tobytes()),
        lambda a: a.update(dtype="object"),
    ]
    for change in bad:
        with pytest.raises(PayloadError, match="initial_state"):
            decode_segments(tampered(change))


def test_learner_refuses_segments_without_the_state_its_model_needs(tictactoe):
    _, spec = tictactoe
    cfg = Config()
    lstm = Learner(spec, LSTM, cfg.ppo, cfg.learner)
    obs = np.zeros((3, spec.obs_dim), np.float32)
    seg = dataclasses.replace(_segment(), obs=obs, masks=np.ones((3, spec.num_actions), bool))
    with pytest.raises(ValueError, match="initial state"):
        lstm.add([seg])
    with pytest.raises(ValueError, match="initial state"):
        lstm.add([dataclasses.replace(seg, initial_state=np.zeros((2, 5), np.float32))])
    mlp = Learner(spec, ModelConfig(hidden_sizes=(8,)), cfg.ppo, cfg.learner)
    with pytest.raises(ValueError, match="feed-forward"):
        mlp.add([dataclasses.replace(seg, initial_state=np.zeros((2, 8), np.float32))])


# --- everything that loads weights -------------------------------------------------------


def test_policy_files_matches_and_human_games_play_an_lstm(tictactoe, tmp_path):
    make_slot, spec = tictactoe
    path = tmp_path / "lstm.msgpack"
    save_policy(path, sharp_weights(spec, seed=8), 12, policy_meta("tictactoe_v3", LSTM, spec.obs_shape, spec.num_actions))
    policy = load_policy(path)
    assert policy.recurrent and policy.net.model_cfg == LSTM and policy.version == 12

    result = play_match(make_slot, Agent(policy=policy, greedy=True), Agent(scripted=random_legal), games=20, seed=1)
    assert result.games == 20
    w, d, l = exact_outcomes(make_slot, policy, uniform_moves, seat=0)
    assert abs(w + d + l - 1.0) < 1e-9

    match = HumanMatch(make_slot, policy, human_seat=1)
    while not match.over:
        if match.humans_turn:
            match.human_move(int(np.flatnonzero(match.slot.mask)[0]))
        else:
            match.policy_move()
    assert match.outcome() in ("win", "loss", "draw")
    assert match.memory.state(0, 0) is not None  # the policy (seat 0) carried its state through the game

    with pytest.raises(ExportError, match="lstm"):
        export_onnx(policy, tmp_path / "p.onnx", np.zeros((2, spec.obs_dim), np.float32), np.ones((2, spec.num_actions), bool))


def test_a_matchs_games_are_remembered_apart_and_forgotten_at_their_end(tictactoe):
    """play_match resets an agent's memory of a slot when a new game starts there: the same seeded
    match played twice with one Agent gives the same result as with a fresh one."""
    make_slot, spec = tictactoe
    policy = InferencePolicy(spec.obs_shape, spec.num_actions, LSTM, 0)
    policy.load(sharp_weights(spec, seed=9), 0)
    agent = Agent(policy=policy)
    first = play_match(make_slot, agent, Agent(scripted=random_legal), games=12, seed=3, parallel=4, record=True)
    again = play_match(make_slot, agent, Agent(scripted=random_legal), games=12, seed=3, parallel=4, record=True)
    fresh = play_match(make_slot, Agent(policy=policy), Agent(scripted=random_legal), games=12, seed=3, parallel=4, record=True)
    assert first.played == again.played == fresh.played


def test_teammates_sharing_one_lstm_each_carry_their_own_state():
    """Relay (tests/team_games.py): a side plays two seats with one policy and one forward pass per
    tick; each seat's segments still unroll to the log-probs its own decisions were sampled with."""
    make_slot, spec = load_game("tests.team_games:relay", {"rounds": 3})
    worker, _, sink = lstm_worker((make_slot, spec), sharp_weights(spec, seed=11), envs=4, segment_length=4)
    worker.run(lambda: False, max_ticks=60)
    segments = sink.segments
    assert sum(bool(s.initial_state.any()) for s in segments) >= 4
    net = PolicyNet(spec.obs_shape, spec.num_actions, LSTM)
    net.load_state_dict({k: torch.tensor(v) for k, v in sharp_weights(spec, seed=11).items()})
    actors_logp = np.concatenate([s.logp for s in segments])
    np.testing.assert_allclose(recomputed_logp(net, segments), actors_logp, atol=1e-5, rtol=0)
    assert np.abs(recomputed_logp(net, segments, zero_states=True) - actors_logp).max() > 1e-2


def test_short_flushed_segments_unroll_next_to_full_ones(tictactoe):
    """Against past opponents the learner changes seats between games, and a seat it leaves flushes a
    short segment: padded in the learner's batch, it still gives back its own log-probs."""
    _, spec = tictactoe
    league = LeagueState.new(reference_ids=())
    league.add_snapshot(2)
    weights = sharp_weights(spec, seed=12)
    worker, params, sink = lstm_worker(tictactoe, weights, envs=4, segment_length=6, league=league, latest_prob=0.5)
    params.snapshots[snapshot_id(2)] = (2, sharp_weights(spec, seed=13))
    worker.run(lambda: False, max_ticks=80)
    segments = sink.segments
    assert {len(s) for s in segments} - {6}, "no short segment was flushed"
    net = PolicyNet(spec.obs_shape, spec.num_actions, LSTM)
    net.load_state_dict({k: torch.tensor(v) for k, v in weights.items()})
    np.testing.assert_allclose(recomputed_logp(net, segments), np.concatenate([s.logp for s in segments]), atol=1e-5, rtol=0)
