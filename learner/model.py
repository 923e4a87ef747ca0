"""The policy/value network shared by learner and actors, and masked-distribution helpers."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

# Illegal actions get this logit. Finite (not -inf) so that entropy's p*log(p) stays 0*finite = 0
# instead of 0*-inf = NaN; exp(-1e9) underflows to exactly 0, so they are never sampled.
MASKED_LOGIT = -1e9


class PolicyNet(nn.Module):
    """Separate MLPs for the categorical policy and the value (as CleanRL's PPO): a shared trunk
    let the value loss pull the policy's features around and learned markedly slower here."""

    def __init__(self, obs_dim: int, num_actions: int, hidden_sizes: tuple[int, ...] = (128, 128)) -> None:
        super().__init__()
        self.pi = _mlp(obs_dim, hidden_sizes, num_actions, out_gain=0.01)  # near-uniform first policy
        self.v = _mlp(obs_dim, hidden_sizes, 1, out_gain=1.0)
        self.obs_dim = obs_dim
        self.num_actions = num_actions

    def forward(self, obs: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (masked logits, value). `mask` is bool [B, A]; True = legal."""
        logits = torch.where(mask, self.pi(obs), torch.full_like(mask, MASKED_LOGIT, dtype=torch.float32))
        return logits, self.v(obs).squeeze(-1)


def _mlp(inp: int, hidden: tuple[int, ...], out: int, out_gain: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = inp
    for h in hidden:
        lin = nn.Linear(width, h)
        nn.init.orthogonal_(lin.weight, 2**0.5)
        nn.init.zeros_(lin.bias)
        layers += [lin, nn.Tanh()]
        width = h
    head = nn.Linear(width, out)
    nn.init.orthogonal_(head.weight, out_gain)
    nn.init.zeros_(head.bias)
    return nn.Sequential(*layers, head)


def masked_log_probs(logits: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits, dim=-1)


def masked_entropy(logits: torch.Tensor) -> torch.Tensor:
    logp = masked_log_probs(logits)
    return -(logp.exp() * logp).sum(-1)


def state_dict_numpy(model: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}


def load_numpy_state(model: nn.Module, tensors: dict[str, np.ndarray]) -> None:
    """Load weights, refusing ones of another architecture with a message naming the mismatch."""
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    if missing or extra:
        raise ValueError(f"weights do not fit this model: missing {missing[:3]}, unexpected {extra[:3]}; was the config changed?")
    for k, v in tensors.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ValueError(
                f"weights do not fit this model: {k} has shape {tuple(v.shape)}, model expects {tuple(own[k].shape)}; "
                "the game or model.hidden_sizes differs from the run that wrote them"
            )
    model.load_state_dict({k: torch.tensor(v) for k, v in tensors.items()})


class InferencePolicy:
    """A frozen copy of the network for acting: numpy in, numpy out, sampling from a numpy RNG.

    Sampling uses the Gumbel-max trick with the caller's Generator so rollouts are reproducible from
    (seed, actor, env) without touching torch's global RNG.
    """

    def __init__(self, obs_dim: int, num_actions: int, hidden_sizes: tuple[int, ...], version: int = -1) -> None:
        self.net = PolicyNet(obs_dim, num_actions, hidden_sizes)
        self.net.eval()
        self.version = version

    def load(self, tensors: dict[str, np.ndarray], version: int) -> None:
        load_numpy_state(self.net, tensors)
        self.version = version

    @torch.no_grad()
    def act(self, obs: np.ndarray, mask: np.ndarray, rng: np.random.Generator, greedy: bool = False):
        """Batched action selection. Returns (actions int64 [B], logp float32 [B], values float32 [B])."""
        logits, values = self.net(torch.from_numpy(obs), torch.from_numpy(mask))
        logp_all = masked_log_probs(logits).numpy()
        if greedy:
            actions = np.where(mask, logp_all, -np.inf).argmax(-1)
        else:
            gumbel = rng.gumbel(size=logp_all.shape).astype(np.float32)
            actions = np.where(mask, logp_all + gumbel, -np.inf).argmax(-1)
        logp = logp_all[np.arange(len(actions)), actions]
        return actions.astype(np.int64), logp.astype(np.float32), values.numpy().astype(np.float32)
