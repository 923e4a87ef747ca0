"""Continuous actions: the diagonal Gaussian's maths against hand-computed values, Box games in the
game adapter, continuous segments on the wire and in the learner, and an in-process rollout + learner
run on a scripted Box game (tests/continuous_games.py) whose return must visibly improve."""

from __future__ import annotations

import math

import msgpack
import numpy as np
import pytest
import torch

from actors.action_spaces import UniformBox
from actors.evaluate import Agent, play_match
from actors.evaluator import Evaluator
from actors.games import GameError, load_game
from actors.rollout import RolloutWorker
from actors.scripted import references_for
from cluster.config import Config, ConfigError, check_model_fits
from cluster.run.cli import main
from league.records import LEARNER_ID, RANDOM_ID
from learner.arch import GAUSSIAN, ModelConfig
from learner.checkpoint import Checkpoint, CheckpointError, check_compatible, model_spec
from learner.config import LearnerConfig, PPOConfig
from learner.distributions import gaussian_entropy, gaussian_log_prob, sample_gaussian
from learner.export import load_policy, policy_meta, save_policy
from learner.learner import Learner
from learner.model import InferencePolicy, PolicyNet
from learner.onnx_export import ExportError, check_exportable
from learner.ppo import ppo_loss
from learner.segment import Segment
from learner.wire import PayloadError, decode_segments, encode_segments, pack_array
from tests.continuous_games import TARGETS, payoff
from tests.needs import needs

TARGET = "tests.continuous_games:target"
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@pytest.fixture(scope="module")
def target_game():
    return load_game(TARGET)


# --- the maths ---------------------------------------------------------------------------


def test_gaussian_log_prob_and_entropy_match_hand_computation():
    mean = torch.tensor([[0.5, -1.0], [0.0, 0.0]])
    log_std = torch.tensor([0.0, math.log(2.0)])
    actions = torch.tensor([[1.0, 0.0], [-3.0, 4.0]])
    # Row 0: z = (0.5, 0.5) -> each component -z^2/2 - log std - log(2 pi)/2.
    row0 = (-0.125 - 0.0 - HALF_LOG_2PI) + (-0.125 - math.log(2.0) - HALF_LOG_2PI)
    # Row 1: z = (-3, 2).
    row1 = (-4.5 - HALF_LOG_2PI) + (-2.0 - math.log(2.0) - HALF_LOG_2PI)
    got = gaussian_log_prob(mean, log_std, actions)
    assert got.tolist() == pytest.approx([row0, row1], abs=1e-6)
    # Per component 1/2 + log(2 pi)/2 + log std; the sum over components.
    assert float(gaussian_entropy(log_std)) == pytest.approx(1.0 + 2 * HALF_LOG_2PI + math.log(2.0), abs=1e-6)
    normal = torch.distributions.Normal(mean, log_std.exp())  # and torch's own, as a second witness
    assert torch.allclose(got, normal.log_prob(actions).sum(-1), atol=1e-6)
    assert float(gaussian_entropy(log_std)) == pytest.approx(float(normal.entropy()[0].sum()), abs=1e-6)


def test_ppo_loss_of_a_gaussian_matches_hand_computation():
    mean, log_std = torch.tensor([[0.5, -1.0]]), torch.tensor([0.0, math.log(2.0)])
    action = torch.tensor([[1.0, 0.0]])
    logp = -0.25 - math.log(2.0) - 2 * HALF_LOG_2PI
    entropy = 1.0 + 2 * HALF_LOG_2PI + math.log(2.0)
    old_logp = torch.tensor([logp - 0.1])  # ratio e^0.1 = 1.105: inside the clip
    parts = ppo_loss(mean, torch.tensor([0.3]), action, old_logp, torch.tensor([2.0]), torch.tensor([1.0]),
                     clip=0.2, vf_coef=0.5, ent_coef=0.01, log_std=log_std)
    policy = -2.0 * math.exp(0.1)
    value = 0.5 * (0.3 - 1.0) ** 2
    assert float(parts.policy) == pytest.approx(policy, abs=1e-5)
    assert float(parts.entropy) == pytest.approx(entropy, abs=1e-6)
    assert float(parts.total) == pytest.approx(policy + 0.5 * value - 0.01 * entropy, abs=1e-5)


def test_sampling_uses_the_callers_generator_and_greedy_is_the_mean():
    policy = InferencePolicy(2, 3, (8,), head=GAUSSIAN)
    with torch.no_grad():
        policy.net.log_std.fill_(-1.0)
    obs, none = np.eye(2, dtype=np.float32), np.zeros((2, 0), bool)
    torch_state = torch.get_rng_state()
    a1, logp1, _ = policy.act(obs, none, np.random.default_rng(5))
    a2, logp2, _ = policy.act(obs, none, np.random.default_rng(5))
    assert torch.equal(torch_state, torch.get_rng_state())  # torch's global RNG untouched
    assert a1.dtype == np.float32 and a1.shape == (2, 3) and np.array_equal(a1, a2) and np.array_equal(logp1, logp2)
    greedy, logp_g, _ = policy.act(obs, none, np.random.default_rng(5), greedy=True)
    with torch.no_grad():
        mean, _ = policy.net(torch.from_numpy(obs), torch.from_numpy(none))
    assert np.array_equal(greedy, mean.numpy())
    assert logp_g == pytest.approx([3 * (1.0 - HALF_LOG_2PI)] * 2, abs=1e-5)  # at the mean: -log std - log(2 pi)/2 each
    expected = mean.numpy() + math.exp(-1.0) * np.random.default_rng(5).standard_normal((2, 3), dtype=np.float32)
    np.testing.assert_allclose(a1, expected, atol=1e-6)
    np.testing.assert_allclose(sample_gaussian(mean.numpy(), np.full(3, -1.0, np.float32), np.random.default_rng(5)), a1, atol=1e-7)


# --- the game adapter -------------------------------------------------------------------


def test_a_box_game_is_loaded_without_a_mask_and_gets_clipped_actions(target_game):
    make_slot, spec = target_game
    assert (spec.num_actions, spec.head, spec.continuous) == (2, GAUSSIAN, True)
    assert spec.action_low == (-2.0, -2.0) and spec.action_high == (2.0, 2.0)
    slot = make_slot()
    slot.reset(seed=0)
    assert slot.mask.shape == (0,) and slot.obs.tolist() == [1.0, 0.0]
    rewards = slot.step(np.array([3.0, -0.4], np.float32))  # beyond the Box: the game gets (2, -0.4)
    assert slot.env.received[-1].tolist() == pytest.approx([2.0, -0.4])
    assert rewards[0] == pytest.approx(payoff("east", np.array([2.0, -0.4])))
    with pytest.raises(GameError, match="not a finite vector of 2"):
        slot.step(np.array([np.nan, 0.0]))
    slot.step(TARGETS["west"])
    assert slot.over and slot.scores() == (0.0, 1.0)


def test_the_random_reference_of_a_box_game_is_uniform_within_its_bounds(target_game):
    _, spec = target_game
    random = references_for(spec.name, spec)["random"]
    moves = np.stack([random(None, np.zeros(0, bool), np.random.default_rng(i)) for i in range(400)])
    assert moves.dtype == np.float32 and moves.shape == (400, 2)
    assert -2.0 <= moves.min() < -1.8 and 1.8 < moves.max() <= 2.0 and abs(moves.mean()) < 0.2
    unbounded = UniformBox((0.0, -np.inf), (1.0, np.inf))(None, None, np.random.default_rng(0))
    assert 0.0 <= unbounded[0] <= 1.0 and np.isfinite(unbounded[1])


def test_discrete_games_keep_their_spec():
    _, spec = load_game("tictactoe_v3")
    assert (spec.action_low, spec.action_high, spec.continuous, spec.head) == ((), (), False, "categorical")


@pytest.mark.parametrize("what,west", [("discrete", (2, ())), ("shape", (3, (-2.0,) * 3)), ("bounds", (2, (-3.0,) * 2))])
def test_sides_with_different_action_spaces_are_roles(what, west):
    """Sides that act differently cannot share a policy: each is a role with its own (actors/roles.py)."""
    _, spec = load_game("tests.continuous_games:uneven", {"what": what})
    east, other = spec.roles
    assert (east.num_actions, east.action_low) == (2, (-2.0, -2.0)) and (other.num_actions, other.action_low) == west


def test_an_unsupported_action_space_is_refused():
    with pytest.raises(GameError, match="MultiDiscrete action space; only Discrete and Box"):
        load_game("tests.continuous_games:uneven", {"what": "multidiscrete"})


def test_an_mpe2_game_with_continuous_actions_loads_and_steps():
    make_slot, spec = load_game("simple_spread_v3", {"continuous_actions": True, "N": 2, "max_cycles": 3})
    assert spec.head == GAUSSIAN and spec.num_actions == 5 and spec.action_low == (0.0,) * 5
    slot = make_slot()
    slot.reset(seed=1)
    rng = np.random.default_rng(0)
    while not slot.over:
        slot.step(rng.normal(0.0, 2.0, 5))  # far outside [0, 1]: clipped, never refused by the game
    assert slot.length == 6


# --- refusals --------------------------------------------------------------------------


def test_conv_symmetry_and_random_openings_are_refused_for_box_games(target_game):
    _, spec = target_game
    for model in (ModelConfig(kind="conv"), ModelConfig(symmetry="mirror")):
        with pytest.raises(ValueError, match="Box action space"):
            PolicyNet(spec.obs_shape, spec.num_actions, model, head=GAUSSIAN)
        with pytest.raises(ConfigError, match="model.kind mlp and model.symmetry none"):
            check_model_fits(Config().replace("model", kind=model.kind, symmetry=model.symmetry), spec)
    with pytest.raises(ConfigError, match="opening_random_moves needs a Discrete"):
        check_model_fits(Config().replace("rollout", opening_random_moves=2), spec)
    check_model_fits(Config(), spec)  # the default MLP fits


def test_gaussian_policy_files_record_their_head_and_checkpoints_of_another_head_are_refused(target_game, tmp_path):
    _, spec = target_game
    policy = InferencePolicy(spec.obs_shape, spec.num_actions, (8,), head=GAUSSIAN)
    with torch.no_grad():
        policy.net.log_std.fill_(-0.5)
    meta = policy_meta(spec.name, ModelConfig(hidden_sizes=(8,)), spec.obs_shape, spec.num_actions, spec.head)
    save_policy(tmp_path / "p.msgpack", {k: v.numpy() for k, v in policy.net.state_dict().items()}, 3, meta)
    loaded = load_policy(tmp_path / "p.msgpack")
    assert loaded.meta["head"] == GAUSSIAN and float(loaded.net.log_std.detach()[0]) == -0.5
    obs = np.eye(2, dtype=np.float32)
    assert np.array_equal(loaded.act(obs, np.zeros((2, 0), bool), None, greedy=True)[0],
                          policy.act(obs, np.zeros((2, 0), bool), None, greedy=True)[0])
    ckpt = Checkpoint(3, {}, model_spec(spec.name, spec.obs_shape, spec.num_actions, (8,), GAUSSIAN), {}, {})
    check_compatible(ckpt, model_spec(spec.name, spec.obs_shape, spec.num_actions, (8,), GAUSSIAN))
    with pytest.raises(CheckpointError, match="policy head: checkpoint gaussian, game categorical"):
        check_compatible(ckpt, model_spec(spec.name, spec.obs_shape, spec.num_actions, (8,)))
    with pytest.raises(ExportError, match="diagonal Gaussian"):
        check_exportable(loaded)


def test_onnx_export_of_a_gaussian_policy_is_refused_with_a_message(target_game, tmp_path, capsys):
    needs("onnx", reason="ONNX export needs onnx: pip install -e '.[test]'")
    _, spec = target_game
    policy = InferencePolicy(spec.obs_shape, spec.num_actions, (8,), head=GAUSSIAN)
    meta = policy_meta(spec.name, ModelConfig(hidden_sizes=(8,)), spec.obs_shape, spec.num_actions, spec.head)
    save_policy(tmp_path / "p.msgpack", {k: v.numpy() for k, v in policy.net.state_dict().items()}, 3, meta)
    assert main(["export", str(tmp_path / "p.msgpack"), "--format", "onnx", "--out", str(tmp_path / "p.onnx")]) == 2
    assert "ONNX export covers Discrete-action (categorical) policies only" in capsys.readouterr().err
    assert not (tmp_path / "p.onnx").exists()


# --- segments: validation and the wire -------------------------------------------------------


def _segment(t=3, dim=2, masks=None, actions=None) -> Segment:
    rng = np.random.default_rng(t)
    return Segment(
        1, 2, rng.normal(size=(t, 2)).astype(np.float32), np.zeros((t, 0), bool) if masks is None else masks,
        rng.normal(size=(t, dim)).astype(np.float32) if actions is None else actions, rng.normal(size=t).astype(np.float32),
        np.zeros(t, np.float32), np.ones(t, np.float32), np.ones(t, bool), np.full(t, 4, np.int64), 0.0,
    )


def test_continuous_segments_round_trip_on_the_wire_and_corrupt_ones_are_refused():
    seg = _segment()
    (back,) = decode_segments(encode_segments([seg]))
    for name in ("obs", "masks", "actions", "logp", "versions"):
        a, b = getattr(seg, name), getattr(back, name)
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    bad = {
        "a mask on a continuous segment": (np.ones((3, 2), bool), None),
        "a NaN action": (None, np.array([[0.0, np.nan]] * 3, np.float32)),
        "a float action without components": (None, np.zeros((3, 0), np.float32)),
    }
    for what, (masks, actions) in bad.items():
        with pytest.raises(ValueError, match="continuous actions"):
            _segment(masks=masks, actions=actions)
    # A well-formed payload whose segment has a [3, 2] mask beside its vector actions: refused, not built.
    obj = msgpack.unpackb(encode_segments([seg]), raw=False)
    obj["segments"][0]["masks"] = pack_array(np.ones((3, 2), bool))
    with pytest.raises(PayloadError, match=r"segments\[0\].*continuous actions"):
        decode_segments(msgpack.packb(obj, use_bin_type=True))
    with pytest.raises(PayloadError):
        decode_segments(encode_segments([seg])[:-7])


# --- the learner scores what the actors sampled --------------------------------------------


def _learner(spec, **ppo) -> Learner:
    cfg = PPOConfig(**{"batch_size": 64, "minibatch_size": 64, "epochs": 1, "ent_coef": 0.0, **ppo})
    return Learner(spec, ModelConfig(hidden_sizes=(16,)), cfg, LearnerConfig(device="cpu"), seed=0)


def test_the_learners_log_probs_equal_the_actors_on_the_first_epoch(target_game):
    _, spec = target_game
    learner = _learner(spec)
    with torch.no_grad():  # far from the start, so a mismatch in means or spreads would show
        learner.model.pi[-1].weight.mul_(300.0)
        learner.model.log_std.copy_(torch.tensor([-0.7, 0.4]))
    policy = InferencePolicy(spec.obs_shape, spec.num_actions, (16,), head=GAUSSIAN)
    policy.load(learner.weights(), 0)
    rng = np.random.default_rng(0)
    obs = np.eye(2, dtype=np.float32)[rng.integers(0, 2, 64)]
    none = np.zeros((64, 0), bool)
    actions, logp, values = policy.act(obs, none, rng)
    assert np.abs(actions).max() > 2.0  # unclipped samples beyond the Box are what the learner trains on

    def segment(logp):
        return Segment(0, 0, obs, none, actions, logp, values, rng.normal(size=64).astype(np.float32),
                       np.ones(64, bool), np.zeros(64, np.int64), 0.0)

    before = learner.weights()
    learner.add([segment(logp)])
    m = learner.update()  # one epoch, one minibatch: the loss is taken before any step
    assert abs(m["losses/approx_kl"]) < 1e-6 and m["losses/clip_frac"] == 0.0
    # The same check fails when the actors' log-probs are off: it can tell.
    shifted = _learner(spec)
    shifted.load_weights(before)
    shifted.add([segment(logp + 0.3)])
    m = shifted.update()
    assert m["losses/approx_kl"] > 0.03 and m["losses/clip_frac"] == 1.0


# --- rollouts on a Box game, and learning ----------------------------------------------------


class _Loop:
    """A RolloutWorker wired in memory to a Learner: its weights are what the actors poll."""

    def __init__(self, make_slot, spec, learner: Learner, seed: int = 0) -> None:
        self.learner = learner
        self.games = []
        cfg = (Config().replace("rollout", envs_per_actor=16, segment_length=4, weight_poll_s=0.0)
               .replace("model", hidden_sizes=learner.model.model_cfg.hidden_sizes).replace("run", seed=seed))
        self.worker = RolloutWorker(0, cfg, make_slot, spec, self, self, self, self, references_for(spec.name, spec))

    def poll(self, known):
        return None if self.learner.version <= known else (self.learner.version, self.learner.weights())

    def fetch_snapshot(self, player_id):
        raise KeyError(player_id)

    def state(self):
        return None  # no league: self-play

    def send(self, segments):
        self.learner.add(segments)

    def report(self, results):
        self.games += results

    def batch_reward(self) -> float:
        """Tick until the learner has a batch; the batch's mean reward per decision."""
        if not self.worker.seatings:
            self.worker.start()
        while not self.learner.ready():
            self.worker.tick()
        return float(np.mean(np.concatenate([s.rewards for s in self.learner.pending.segments()])))


def test_rollout_segments_of_a_box_game_carry_the_sampled_vectors(target_game):
    make_slot, spec = target_game
    loop = _Loop(make_slot, spec, _learner(spec))
    loop.batch_reward()
    segs = list(loop.learner.pending.segments())
    assert segs and all(s.actions.dtype == np.float32 and s.actions.shape[1] == 2 and s.masks.shape[1] == 0 for s in segs)
    received = np.concatenate([np.stack(slot.env.received) for slot in loop.worker.slots])
    assert np.abs(received).max() <= 2.0 < np.abs(np.concatenate([s.actions for s in segs])).max()  # clipped for the game only
    east = np.concatenate([s.obs[:, 0] == 1.0 for s in segs])
    acts, rewards = np.concatenate([s.actions for s in segs]), np.concatenate([s.rewards for s in segs])
    clipped = np.clip(acts, -2.0, 2.0)
    expected = [payoff("east" if e else "west", a) for e, a in zip(east, clipped)]
    np.testing.assert_allclose(rewards, expected, atol=1e-5)  # each decision pays its own clipped move
    again = _Loop(make_slot, spec, _learner(spec))
    again.batch_reward()
    assert np.array_equal(np.concatenate([s.actions for s in again.learner.pending.segments()]), acts)  # seeded


def test_self_play_on_a_box_game_learns_to_aim(target_game):
    """A unit Gaussian around 0 earns about -2.5 a move; the learned policy must come near 0."""
    make_slot, spec = target_game
    learner = Learner(spec, ModelConfig(hidden_sizes=(32,)), PPOConfig(batch_size=256, minibatch_size=128, epochs=4, lr=3e-3, ent_coef=0.0),
                      LearnerConfig(device="cpu"), seed=0)
    loop = _Loop(make_slot, spec, learner)
    first = loop.batch_reward()
    rewards = []
    for _ in range(30):
        rewards.append(loop.batch_reward())
        learner.update()
    policy = InferencePolicy(spec.obs_shape, spec.num_actions, (32,), head=GAUSSIAN)
    policy.load(learner.weights(), learner.version)
    means, _, _ = policy.act(np.eye(2, dtype=np.float32), np.zeros((2, 0), bool), None, greedy=True)
    greedy = [payoff("east", np.clip(means[0], -2, 2)), payoff("west", np.clip(means[1], -2, 2))]
    assert first < -2.0 and np.mean(rewards[-3:]) > -0.8, (first, rewards)
    assert min(greedy) > -0.05, greedy
    assert float(learner.model.log_std.detach().max()) < -0.2  # the spread shrank from its start at 0
    match = play_match(make_slot, Agent(policy=policy, greedy=True), Agent(scripted=references_for(spec.name, spec)["random"]), 40)
    assert match.score > 0.9 and {side for side, *_ in match.outcomes} == {0, 1}


def test_an_evaluator_rates_a_gaussian_policy_with_its_mean_and_keeps_no_replays(target_game):
    make_slot, spec = target_game
    learner = _learner(spec)
    loop = _Loop(make_slot, spec, learner)
    kept = []

    class Replays:
        def keep(self, replays, per_pair):
            kept.extend(replays)

    cfg = Config().replace("model", hidden_sizes=(16,)).replace("eval", games_per_pair=6, greedy=True)  # greedy: the mean
    evaluator = Evaluator(0, cfg, make_slot, spec, loop, loop, loop, references_for(spec.name, spec), Replays())
    report = evaluator.round()
    assert report.rated == (LEARNER_ID,) and report.games == len(loop.games) == 6
    assert all(g.kind == "eval" and set(g.players) == {LEARNER_ID, RANDOM_ID} for g in loop.games)
    assert kept == []  # replays hold integer moves: none are kept for Box games
