"""PPO maths as pure functions: GAE over segments and the clipped-surrogate loss."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from learner.distributions import gaussian_entropy, gaussian_log_prob
from learner.model import masked_entropy, masked_log_probs

if TYPE_CHECKING:
    from learner.config import PPOConfig


def gae(
    rewards: np.ndarray,
    values: np.ndarray,
    dones: np.ndarray,
    bootstrap_value: float | np.ndarray,
    gamma: float,
    lam: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Generalised advantage estimation over segments of single agents' decisions.

    dones[..., t] = the game ended after decision t, so nothing flows back across it. The value
    after the last decision is `bootstrap_value` (0 if that decision ended a game). Returns
    (advantages, returns) with returns = advantages + values (the value targets), float32.
    Arrays are [T] with a float bootstrap, or [B, T] with a [B] bootstrap: the recursion runs
    over time steps only, every row of the batch at once.
    """
    # float32 throughout, in the order of operations of the per-step loop this replaced, so that
    # training is bit for bit what it was (measured strength and the seeded tests rest on it).
    f32 = np.float32
    rewards = np.asarray(rewards, f32)
    values32 = np.asarray(values, f32)
    nonterminal = (1.0 - np.asarray(dones, np.float64)).astype(f32)
    bootstrap = np.asarray(bootstrap_value, np.float64)
    # gamma * V(next): V(next) is float32 within the segment; after its last step the bootstrap is
    # a Python float, so that product is taken in float64 and rounded once.
    scaled_next = np.empty_like(values32)
    scaled_next[..., :-1] = f32(gamma) * values32[..., 1:]
    scaled_next[..., -1] = (gamma * bootstrap).astype(f32)
    deltas = (rewards + scaled_next * nonterminal) - values32
    carry = f32(gamma * lam) * nonterminal
    adv = np.empty_like(deltas)
    last = np.zeros(deltas.shape[:-1], f32)
    for t in range(deltas.shape[-1] - 1, -1, -1):
        last = deltas[..., t] + carry[..., t] * last
        adv[..., t] = last
    return adv, adv + values32


def gae_segments(
    rewards: list[np.ndarray],
    values: list[np.ndarray],
    dones: list[np.ndarray],
    bootstrap_values: list[float],
    gamma: float,
    lam: float,
) -> tuple[np.ndarray, np.ndarray]:
    """gae() of many segments in one pass; (advantages, returns) of all of them, concatenated.

    Segments may differ in length (a flushed segment is short). Each is right-aligned in a
    [B, T_max] array and padded on the left with done steps: the recursion runs from the end
    backwards, so a segment's last step still meets its own bootstrap, and the padding, which
    comes before the segment's first step, can never flow into it.
    """
    lengths = [len(r) for r in rewards]
    width = max(lengths)
    r = np.zeros((len(lengths), width))
    v = np.zeros((len(lengths), width))
    d = np.ones((len(lengths), width), bool)
    for i, n in enumerate(lengths):
        r[i, width - n :], v[i, width - n :], d[i, width - n :] = rewards[i], values[i], dones[i]
    adv, ret = gae(r, v, d, np.asarray(bootstrap_values, np.float64), gamma, lam)
    keep = np.arange(width)[None, :] >= (width - np.asarray(lengths))[:, None]
    return adv[keep], ret[keep]


@dataclass(frozen=True)
class LossParts:
    total: torch.Tensor
    policy: torch.Tensor
    value: torch.Tensor
    entropy: torch.Tensor
    approx_kl: torch.Tensor
    clip_frac: torch.Tensor


def ppo_loss(
    logits: torch.Tensor,
    values: torch.Tensor,
    actions: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    clip: float,
    vf_coef: float,
    ent_coef: float,
    log_std: torch.Tensor | None = None,
) -> LossParts:
    """Clipped surrogate + value loss - entropy bonus. `logits` are already masked, so the
    log-probabilities are those of the masked distribution the actors sampled from.

    With `log_std` (a Box game's Gaussian policy), `logits` are the Gaussian's means [B, D] and
    `actions` the unclipped samples, float [B, D]; the categorical path is untouched by it."""
    if log_std is None:
        logp_all = masked_log_probs(logits)
        logp = logp_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    else:
        logp = gaussian_log_prob(logits, log_std, actions)
    log_ratio = logp - old_logp
    ratio = log_ratio.exp()
    pg1 = -advantages * ratio
    pg2 = -advantages * ratio.clamp(1.0 - clip, 1.0 + clip)
    policy_loss = torch.max(pg1, pg2).mean()
    value_loss = 0.5 * (values - returns).pow(2).mean()
    entropy = masked_entropy(logits).mean() if log_std is None else gaussian_entropy(log_std)
    with torch.no_grad():
        approx_kl = ((ratio - 1.0) - log_ratio).mean()  # the low-variance k3 estimator
        clip_frac = ((ratio - 1.0).abs() > clip).float().mean()
    total = policy_loss + vf_coef * value_loss - ent_coef * entropy
    return LossParts(total, policy_loss, value_loss, entropy, approx_kl, clip_frac)


def schedule_fraction(step: int, horizon: int) -> float:
    """How far along a schedule of `horizon` steps `step` is: 0 at the start, 1 at the end and after."""
    return min(max(step, 0) / horizon, 1.0)


def linear_schedule(start: float, end_factor: float, step: int, horizon: int) -> float:
    """`start` moving linearly to `start * end_factor` over `horizon` steps, then held; constant if horizon is 0."""
    if horizon <= 0:
        return start
    return start * (1.0 - schedule_fraction(step, horizon) * (1.0 - end_factor))


def discount_at(cfg: PPOConfig, version: int) -> float:
    """The discount of learner version `version`: cfg.gamma, moving linearly to cfg.gamma_end over
    cfg.schedule_versions when gamma_end is set (> 0). An absolute end, not a factor as
    linear_schedule's: gamma's scale is 1 - gamma, which a factor of gamma would not express."""
    if cfg.gamma_end <= 0.0 or cfg.schedule_versions <= 0:
        return cfg.gamma
    return cfg.gamma + schedule_fraction(version, cfg.schedule_versions) * (cfg.gamma_end - cfg.gamma)


def minibatch_slices(n: int, minibatch_size: int) -> list[slice]:
    """Split n samples into n // minibatch_size minibatches (at least one) whose sizes differ by at
    most one. A batch of whole segments overshoots batch_size by up to a segment; cutting it into
    fixed-size pieces would end every epoch on a sliver of a few samples, advantage-normalised on
    its own and still given a full optimiser step."""
    k = max(1, n // max(minibatch_size, 1))
    bounds = [round(i * n / k) for i in range(k + 1)]
    return [slice(bounds[i], bounds[i + 1]) for i in range(k)]


def explained_variance(pred: np.ndarray, target: np.ndarray) -> float:
    var = float(np.var(target))
    return float("nan") if var == 0 else 1.0 - float(np.var(target - pred)) / var
