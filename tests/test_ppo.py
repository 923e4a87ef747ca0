"""PPO maths (learner/ppo.py, learner/model.py) against hand-computed values, and the Learner."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from actors.games import GameSpec
from learner.arch import ModelConfig
from learner.config import LearnerConfig, PPOConfig
from learner.learner import Learner
from learner.model import MASKED_LOGIT, InferencePolicy, PolicyNet, masked_entropy, masked_log_probs
from learner.ppo import gae, gae_segments, ppo_loss
from learner.segment import Segment


# --- GAE ---------------------------------------------------------------------------------


def test_gae_matches_hand_computation_with_done_in_the_middle_and_bootstrap():
    # gamma = 0.9, lam = 0.8, so gamma * lam = 0.72. The game ends after step 1.
    rewards = np.array([1.0, 0.0, 2.0, 0.5], np.float32)
    values = np.array([0.5, 1.0, 0.2, 0.4], np.float32)
    dones = np.array([False, True, False, False])
    # By hand, backwards:
    #   t=3: delta = 0.5 + 0.9 * 1.5 (bootstrap) - 0.4 = 1.45           A3 = 1.45
    #   t=2: delta = 2.0 + 0.9 * 0.4 - 0.2           = 2.16           A2 = 2.16 + 0.72 * 1.45 = 3.204
    #   t=1: done: delta = 0.0 - 1.0                 = -1.0           A1 = -1.0 (nothing flows back)
    #   t=0: delta = 1.0 + 0.9 * 1.0 - 0.5           = 1.4            A0 = 1.4 + 0.72 * -1.0 = 0.68
    adv, ret = gae(rewards, values, dones, bootstrap_value=1.5, gamma=0.9, lam=0.8)
    np.testing.assert_allclose(adv, [0.68, -1.0, 3.204, 1.45], atol=1e-5)
    np.testing.assert_allclose(ret, [1.18, 0.0, 3.404, 1.85], atol=1e-5)
    assert adv.dtype == np.float32 and ret.dtype == np.float32


def test_gae_ignores_bootstrap_after_a_terminal_last_step():
    adv, ret = gae(np.array([1.0], np.float32), np.array([0.3], np.float32), np.array([True]), 100.0, 0.9, 0.8)
    np.testing.assert_allclose(adv, [0.7], atol=1e-6)
    np.testing.assert_allclose(ret, [1.0], atol=1e-6)


def test_gae_with_lambda_one_is_discounted_return_minus_value():
    rewards = np.array([0.0, 0.0, 1.0], np.float32)
    values = np.array([0.1, 0.2, 0.3], np.float32)
    adv, ret = gae(rewards, values, np.array([False, False, False]), 2.0, gamma=0.5, lam=1.0)
    # returns = r0 + .5 r1 + .25 r2 + .125 * 2 etc.
    np.testing.assert_allclose(ret, [0.25 + 0.25, 0.5 + 0.5, 1.0 + 1.0], atol=1e-6)
    np.testing.assert_allclose(adv, ret - values, atol=1e-6)


def _gae_reference(rewards, values, dones, bootstrap_value, gamma, lam):
    """The straightforward loop, one step at a time: the definition the vectorised gae() must match."""
    adv = np.zeros(len(rewards), np.float64)
    last, next_value = 0.0, float(bootstrap_value)
    for t in reversed(range(len(rewards))):
        nonterminal = 0.0 if dones[t] else 1.0
        delta = float(rewards[t]) + gamma * next_value * nonterminal - float(values[t])
        last = delta + gamma * lam * nonterminal * last
        adv[t] = last
        next_value = float(values[t])
    return adv, adv + values


def test_gae_of_a_batch_is_each_rows_gae():
    rng = np.random.default_rng(0)
    rewards = rng.choice([0.0, 0.0, 0.0, 1.0, -1.0, 0.5], size=(6, 32)).astype(np.float32)
    values = rng.uniform(-1, 1, size=(6, 32)).astype(np.float32)
    dones = rng.random((6, 32)) < 0.15
    dones[1, -1] = True  # a segment ending in a game end: its bootstrap must be ignored
    dones[2, :] = True  # every decision ends a game (nothing flows back at all)
    boot = rng.uniform(-1, 1, size=6)
    boot[1] = 50.0
    adv, ret = gae(rewards, values, dones, boot, gamma=0.97, lam=0.9)
    assert adv.shape == (6, 32) and adv.dtype == np.float32 and ret.dtype == np.float32
    for i in range(6):
        ref_adv, ref_ret = _gae_reference(rewards[i], values[i], dones[i], boot[i], 0.97, 0.9)
        np.testing.assert_allclose(adv[i], ref_adv, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ret[i], ref_ret, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ret[2], rewards[2], atol=1e-6)  # all-terminal: the return is the reward


def test_gae_of_segments_of_different_lengths_matches_the_loop_segment_by_segment():
    """Short (flushed) segments are padded inside gae_segments; the padding must not leak into
    them, and every segment must still meet its own bootstrap value."""
    # Golden values for the first two by hand (gamma 0.9, lam 0.8, as the test above):
    #   [1.0, 0.0, 2.0, 0.5] / done after step 1 / bootstrap 1.5 -> A = [0.68, -1.0, 3.204, 1.45]
    #   [0.5] / values [0.4] / not done / bootstrap 1.5        -> A = 0.5 + 0.9 * 1.5 - 0.4 = 1.45
    rewards = [np.array([1.0, 0.0, 2.0, 0.5], np.float32), np.array([0.5], np.float32)]
    values = [np.array([0.5, 1.0, 0.2, 0.4], np.float32), np.array([0.4], np.float32)]
    dones = [np.array([False, True, False, False]), np.array([False])]
    boots = [1.5, 1.5]
    rng = np.random.default_rng(1)
    for n in (32, 7, 32, 1, 13):
        rewards.append(rng.choice([0.0, 1.0, -1.0], size=n).astype(np.float32))
        values.append(rng.uniform(-1, 1, size=n).astype(np.float32))
        d = rng.random(n) < 0.2
        d[-1] = n == 7  # one short segment ends in a done (as flushed ones do), the others bootstrap
        dones.append(d)
        boots.append(float(rng.uniform(-1, 1)))
    adv, ret = gae_segments(rewards, values, dones, boots, gamma=0.9, lam=0.8)
    assert adv.shape == ret.shape == (sum(len(r) for r in rewards),)
    np.testing.assert_allclose(adv[:5], [0.68, -1.0, 3.204, 1.45, 1.45], atol=1e-5)
    at = 0
    for r, v, d, b in zip(rewards, values, dones, boots):
        ref_adv, ref_ret = _gae_reference(r, v, d, b, 0.9, 0.8)
        np.testing.assert_allclose(adv[at : at + len(r)], ref_adv, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ret[at : at + len(r)], ref_ret, rtol=1e-5, atol=1e-6)
        at += len(r)


# --- PPO loss ----------------------------------------------------------------------------


def _log_softmax(xs: list[float]) -> list[float]:
    lse = math.log(sum(math.exp(x) for x in xs))
    return [x - lse for x in xs]


def test_ppo_loss_matches_hand_computation():
    # Sample 0: all three actions legal. Sample 1: action 1 illegal (masked logit).
    logits = torch.tensor([[1.0, 2.0, 0.0], [0.5, MASKED_LOGIT, -0.5]])
    values = torch.tensor([0.5, 0.5])
    actions = torch.tensor([1, 2])
    old_logp = torch.tensor([-0.5, -1.0])
    adv = torch.tensor([1.0, -2.0])
    returns = torch.tensor([1.0, 0.0])
    clip, vf_coef, ent_coef = 0.2, 0.5, 0.01

    lp0 = _log_softmax([1.0, 2.0, 0.0])
    lp1_legal = _log_softmax([0.5, -0.5])  # the illegal action does not exist for the distribution
    logp = [lp0[1], lp1_legal[1]]
    ratio = [math.exp(logp[0] - -0.5), math.exp(logp[1] - -1.0)]
    assert 0.8 < ratio[0] < 1.2 and ratio[1] < 0.8  # sample 1 is clipped: the case under test
    surrogate = [
        max(-1.0 * ratio[0], -1.0 * min(max(ratio[0], 0.8), 1.2)),
        max(2.0 * ratio[1], 2.0 * min(max(ratio[1], 0.8), 1.2)),
    ]
    assert surrogate[1] == pytest.approx(1.6)  # pessimistic: the clipped term wins
    policy = (surrogate[0] + surrogate[1]) / 2
    value = 0.5 * ((0.5 - 1.0) ** 2 + (0.5 - 0.0) ** 2) / 2
    ent0 = -sum(math.exp(x) * x for x in lp0)
    ent1 = -sum(math.exp(x) * x for x in lp1_legal)
    entropy = (ent0 + ent1) / 2
    kl = sum((r - 1) - math.log(r) for r in ratio) / 2

    parts = ppo_loss(logits, values, actions, old_logp, adv, returns, clip, vf_coef, ent_coef)
    assert float(parts.policy) == pytest.approx(policy, abs=1e-5)
    assert float(parts.value) == pytest.approx(value, abs=1e-6)
    assert float(parts.entropy) == pytest.approx(entropy, abs=1e-5)
    assert float(parts.approx_kl) == pytest.approx(kl, abs=1e-5)
    assert float(parts.clip_frac) == pytest.approx(0.5)
    assert float(parts.total) == pytest.approx(policy + vf_coef * value - ent_coef * entropy, abs=1e-5)


def test_ppo_loss_gradient_is_zero_for_a_sample_clipped_on_the_pessimistic_side():
    logits = torch.tensor([[0.0, 0.0]], requires_grad=True)
    # ratio = 0.5 / exp(-2) ~ 3.7 > 1.2 with a positive advantage: no incentive to push further.
    parts = ppo_loss(logits, torch.zeros(1), torch.tensor([0]), torch.tensor([-2.0]), torch.tensor([1.0]),
                     torch.zeros(1), clip=0.2, vf_coef=0.0, ent_coef=0.0)
    parts.total.backward()
    assert parts.policy.item() == pytest.approx(-1.2)
    assert torch.count_nonzero(logits.grad) == 0


# --- masking -----------------------------------------------------------------------------


def _net_and_batch(seed: int = 0):
    torch.manual_seed(seed)
    net = PolicyNet(4, 5, (8,))
    with torch.no_grad():  # make the policy head far from uniform so masking errors would show
        net.pi[-1].weight.mul_(300.0)
    obs = torch.randn(3, 4)
    mask = torch.tensor(
        [[True, False, True, False, True], [False, False, False, True, False], [True, True, True, True, True]]
    )
    return net, obs, mask


def test_masked_actions_get_probability_exactly_zero_and_legal_log_probs_are_renormalised():
    net, obs, mask = _net_and_batch()
    with torch.no_grad():
        logits, _ = net(obs, mask)
    logp = masked_log_probs(logits)
    probs = logp.exp()
    assert torch.all(probs[~mask] == 0.0)
    with torch.no_grad():
        raw = net.pi(obs).numpy().astype(np.float64)
    for b in range(3):
        legal = np.flatnonzero(mask[b].numpy())
        expected = raw[b, legal] - np.log(np.exp(raw[b, legal] - raw[b, legal].max()).sum()) - raw[b, legal].max()
        np.testing.assert_allclose(logp[b, legal].numpy(), expected, atol=1e-4)
        assert probs[b, legal].sum().item() == pytest.approx(1.0, abs=1e-6)


def test_masked_entropy_is_finite_and_zero_for_a_single_legal_action():
    net, obs, mask = _net_and_batch()
    logits, _ = net(obs, mask)
    ent = masked_entropy(logits)
    assert torch.all(torch.isfinite(ent))
    assert ent[1].item() == pytest.approx(0.0, abs=1e-6)  # only action 3 is legal
    uniform = masked_entropy(torch.where(mask, torch.zeros(3, 5), torch.full((3, 5), MASKED_LOGIT)))
    np.testing.assert_allclose(uniform.numpy(), [math.log(3), 0.0, math.log(5)], atol=1e-6)
    # The gradient through masked logits must be finite too (0 * log 0 would be NaN).
    masked_entropy(net(obs, mask)[0]).sum().backward()
    assert net.pi[-1].weight.grad is not None
    assert all(torch.all(torch.isfinite(p.grad)) for p in net.parameters() if p.grad is not None)


def test_inference_policy_never_samples_illegal_actions_and_reports_their_log_prob():
    pol = InferencePolicy(4, 5, (8,), version=3)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(200, 4)).astype(np.float32)
    mask = rng.random((200, 5)) < 0.4
    mask[np.arange(200), rng.integers(0, 5, 200)] = True  # at least one legal action per row
    actions, logp, values = pol.act(obs, mask, rng)
    assert mask[np.arange(200), actions].all()
    logits, v = pol.net(torch.from_numpy(obs), torch.from_numpy(mask))
    expected = torch.log_softmax(logits, -1).detach().numpy()[np.arange(200), actions]
    np.testing.assert_allclose(logp, expected, atol=1e-6)
    np.testing.assert_allclose(values, v.detach().numpy(), atol=1e-6)


# --- the Learner -------------------------------------------------------------------------

SPEC = GameSpec("bandit", ("a", "b"), (2,), 3)


def _segment(versions, rewards=None, actions=None, logp=None, dones=None, seg_id=0) -> Segment:
    t = len(versions)
    return Segment(
        actor_id=0,
        segment_id=seg_id,
        obs=np.ones((t, 2), np.float32),
        masks=np.ones((t, 3), bool),
        actions=np.asarray(actions if actions is not None else [0] * t, np.int64),
        logp=np.asarray(logp if logp is not None else [math.log(1 / 3)] * t, np.float32),
        values=np.zeros(t, np.float32),
        rewards=np.asarray(rewards if rewards is not None else [0.0] * t, np.float32),
        dones=np.asarray(dones if dones is not None else [True] * t, bool),
        versions=np.asarray(versions, np.int64),
        bootstrap_value=0.0,
    )


def _learner(**ppo) -> Learner:
    cfg = PPOConfig(**{"batch_size": 5, "minibatch_size": 5, "epochs": 3, "max_policy_lag": 4, **ppo})
    return Learner(SPEC, ModelConfig(hidden_sizes=(16,)), cfg, LearnerConfig(device="cpu"), seed=0)


def test_learner_drops_segments_over_the_policy_lag_and_counts_their_samples():
    learner = _learner()
    learner.version = 10
    learner.add([_segment([6, 6]), _segment([5, 7, 9]), _segment([10])])  # lags 4 (ok), 5 (stale), 0
    assert learner.stats.dropped_stale == 3
    assert learner.pending_samples == 3
    assert learner.stats.samples_in == 6
    # Segments that were fresh on arrival go stale if the learner moves on before using them.
    learner.version = 11
    learner.add([_segment([11, 11])])
    assert learner.stats.dropped_stale == 5 and learner.pending_samples == 3


def test_pending_segments_keep_arrival_order_across_drops_and_take_whole_segments():
    from learner.pending import PendingSegments

    pending = PendingSegments()
    a, b, c, d = _segment([3, 3]), _segment([1]), _segment([4, 4, 4]), _segment([2, 5])
    for s in (a, b, c, d):  # arrival order a b c d; by version b, d, a, c
        pending.add(s)
    assert pending.drop_older_than(2) == 1 and pending.segments() == [a, c, d]  # b: its oldest sample is v1
    assert pending.drop_older_than(2) == 0 and pending.samples == 7
    assert pending.take(3) == [a, c] and pending.samples == 2  # whole segments, oldest arrival first
    # The heap still names a and c, taken: dropping past them counts only what was still pending.
    assert pending.drop_older_than(10) == 2 and len(pending) == 0 and pending.samples == 0
    assert pending.take(5) == [] and pending.segments() == []


def test_learner_update_reports_staleness_version_and_sample_reuse():
    learner = _learner(batch_size=5, minibatch_size=5, epochs=3)
    learner.version = 10
    learner.add([_segment([10, 9, 8]), _segment([7, 7])])
    assert learner.ready()
    m = learner.update()
    assert learner.version == 11 and m["system/learner_version"] == 11.0
    # lags: 0, 1, 2, 3, 3
    assert m["system/staleness_min"] == 0.0
    assert m["system/staleness_mean"] == pytest.approx(1.8)
    assert m["system/staleness_max"] == 3.0
    assert m["system/batch_samples"] == 5.0
    assert m["losses/grad_steps"] == 3.0  # 3 epochs x 1 minibatch
    assert m["system/sample_reuse"] == pytest.approx(15 / 5)  # 5 samples x 3 epochs / 5 produced
    # A stale segment still counts as produced: reuse = consumed / produced, not / used.
    learner.add([_segment([1, 1, 1, 1, 1])])
    assert learner.stats.dropped_stale == 5
    assert learner.sample_reuse() == pytest.approx(15 / 10)
    assert not learner.ready()


def test_learner_learns_a_one_state_bandit():
    """Action 2 always pays 1, the others 0: a few PPO iterations must make it the likely choice."""
    learner = _learner(batch_size=128, minibatch_size=64, epochs=4, lr=3e-3, ent_coef=0.0)
    policy = InferencePolicy(2, 3, (16,))
    rng = np.random.default_rng(0)
    obs = np.ones((128, 2), np.float32)
    masks = np.ones((128, 3), bool)

    def prob_of_2() -> float:
        policy.load(learner.weights(), learner.version)
        with torch.no_grad():
            logits, _ = policy.net(torch.from_numpy(obs[:1]), torch.from_numpy(masks[:1]))
        return float(torch.softmax(logits, -1)[0, 2])

    start = prob_of_2()
    value_losses = []
    for _ in range(15):
        policy.load(learner.weights(), learner.version)
        actions, logp, values = policy.act(obs, masks, rng)
        rewards = (actions == 2).astype(np.float32)
        seg = Segment(0, 0, obs, masks, actions, logp, values, rewards, np.ones(128, bool),
                      np.full(128, learner.version, np.int64), 0.0)
        learner.add([seg])
        value_losses.append(learner.update()["losses/value"])
    assert 0.2 < start < 0.45  # near-uniform initial policy
    assert prob_of_2() > 0.8
    assert value_losses[-1] < value_losses[0]


def test_learner_refuses_segments_of_another_game_shape():
    learner = _learner()
    bad = Segment(0, 0, np.ones((1, 5), np.float32), np.ones((1, 3), bool), np.zeros(1, np.int64),
                  np.zeros(1, np.float32), np.zeros(1, np.float32), np.zeros(1, np.float32), np.ones(1, bool),
                  np.zeros(1, np.int64), 0.0)
    with pytest.raises(ValueError, match="do not fit"):
        learner.add([bad])
    assert learner.pending_samples == 0


def test_ready_does_not_count_samples_that_went_stale_since_they_arrived():
    """After an update bumps the version, samples that arrived fresh may be past the lag limit:
    ready() must not promise update() a batch that update() would then drop (it used to raise)."""
    learner = _learner(batch_size=5, minibatch_size=5, max_policy_lag=1)
    learner.add([_segment([0, 0, 0, 0, 0])])
    assert learner.ready()
    learner.version = 2  # as if two updates ran on other data meanwhile
    assert not learner.ready()
    assert learner.stats.dropped_stale == 5 and learner.pending_samples == 0


def test_stale_segments_are_dropped_wherever_they_wait_and_the_rest_keep_their_arrival_order():
    learner = _learner(batch_size=100, max_policy_lag=3)
    learner.version = 7
    # Arrival order is not version order (several actors, segments spanning versions).
    learner.add([_segment([5, 6], seg_id=1), _segment([4, 4], seg_id=2), _segment([7], seg_id=3), _segment([3, 7], seg_id=4)])
    assert learner.stats.dropped_stale == 2 and learner.pending_samples == 5  # [3, 7]: lag 4 > 3
    learner.version = 8  # [4, 4] is now one version too old
    learner.add([_segment([6, 8], seg_id=5)])
    assert learner.stats.dropped_stale == 4 and learner.pending_samples == 5
    assert [s.segment_id for s in learner._take_batch()] == [1, 3, 5]
    assert learner.pending_samples == 0
    learner.version = 100  # everything still referenced only by the bookkeeping is long stale: no double count
    learner.add([_segment([100], seg_id=6)])
    assert learner.stats.dropped_stale == 4 and learner.pending_samples == 1


def test_the_stale_check_does_not_rescan_pending_segments(monkeypatch):
    """With 1,000 segments waiting, checking for stale ones must not look at each of them again:
    a segment's version is read once, when it arrives."""
    learner = _learner(batch_size=10**6, max_policy_lag=5)
    learner.version = 10
    learner.add([_segment([10, 10], seg_id=i) for i in range(1000)])
    reads = []
    real = Segment.policy_version
    monkeypatch.setattr(Segment, "policy_version", property(lambda s: reads.append(1) or real.fget(s)))
    for _ in range(50):
        learner.add([_segment([10])])
        assert not learner.ready()
    assert len(reads) == 50  # one per new segment, none for the 1,000 waiting
    learner.version = 16
    assert not learner.ready() and learner.pending_samples == 0 and learner.stats.dropped_stale == 2050
