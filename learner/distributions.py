"""The diagonal Gaussian policy of Box action spaces, as plain functions.

A game whose agents act with a real vector (a gymnasium Box) is played by a diagonal Gaussian, as
CleanRL's ppo_continuous_action: the policy MLP gives the mean, one learned log standard deviation
per action component (state-independent, initially 0) the spread. An action vector's log-probability
is the sum over its components of the Normal log-density, and the entropy the sum of the
components' entropies. The actors sample with the caller's numpy Generator (reproducible rollouts,
torch's global RNG untouched) and score the sample with the same torch function the learner uses.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from learner.arch import CATEGORICAL, GAUSSIAN, HEADS  # noqa: F401 - the heads' names live with the architecture

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """log N(actions; mean, diag(exp(log_std))^2), summed over the last (action) dimension.

    mean and actions are [..., D], log_std [D] (or broadcastable); returns [...]."""
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z * z - log_std - _LOG_SQRT_2PI).sum(-1)


def gaussian_entropy(log_std: torch.Tensor) -> torch.Tensor:
    """Entropy of the diagonal Gaussian: the sum over components of 1/2 + log(2 pi)/2 + log_std.
    It does not depend on the state (the spread does not), so one value serves a whole batch."""
    return (0.5 + _LOG_SQRT_2PI + log_std).sum(-1)


def sample_gaussian(mean: np.ndarray, log_std: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """mean + std * standard normal noise drawn from `rng`: float32 [B, D]."""
    noise = rng.standard_normal(mean.shape, dtype=np.float32)
    return (mean + np.exp(log_std).astype(np.float32) * noise).astype(np.float32)
