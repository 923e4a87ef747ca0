"""The policy/value networks shared by learner and actors, and masked-distribution helpers.

`PolicyNet` builds the architecture a ModelConfig (learner/arch.py) names: every kind takes the
flattened observation and the legal-action mask and returns (masked logits, value), so rollouts,
the learner, snapshots and policy files never need to know which kind they hold. Box action spaces
get the Gaussian head instead (learner/distributions.py): (mean, value), the mask empty and unused.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from learner.arch import CATEGORICAL, GAUSSIAN, ModelConfig, as_model_config, board_symmetries
from learner.distributions import gaussian_log_prob, sample_gaussian

# Illegal actions get this logit. Finite (not -inf) so that entropy's p*log(p) stays 0*finite = 0
# instead of 0*-inf = NaN; exp(-1e9) underflows to exactly 0, so they are never sampled.
MASKED_LOGIT = -1e9


class PolicyNet(nn.Module):
    """The network of one ModelConfig: `obs_shape` is the game's observation shape (an int is
    taken as a flat vector of that size), the network's input is that observation flattened.
    `head` gaussian (a Box action space, `num_actions` its size) adds the learned `log_std`."""

    def __init__(self, obs_shape, num_actions: int, model: ModelConfig | tuple = ModelConfig(), head: str = CATEGORICAL) -> None:
        super().__init__()
        model = as_model_config(model)
        shape = (int(obs_shape),) if isinstance(obs_shape, (int, np.integer)) else tuple(int(d) for d in obs_shape)
        model.check(shape, num_actions, head)
        self.head = head
        self.model_cfg = model
        self.obs_shape = shape
        self.obs_dim = math.prod(shape)
        self.num_actions = num_actions
        group = [(list(range(self.obs_dim)), list(range(num_actions)))]
        group += board_symmetries(model.symmetry, shape, num_actions)
        # Gather indices, not parameters: non-persistent buffers keep state_dict() the same.
        self.register_buffer("_sym_obs", torch.tensor([g[0] for g in group], dtype=torch.long), persistent=False)
        self.register_buffer("_sym_act", torch.tensor([g[1] for g in group], dtype=torch.long), persistent=False)
        if model.kind == "mlp":
            # Separate MLPs for the categorical policy and the value (as CleanRL's PPO): a shared
            # trunk let the value loss pull the policy's features around and learned markedly
            # slower here. Attribute names are those of weights saved before model kinds existed.
            hidden = tuple(int(h) for h in model.hidden_sizes)
            self.pi = _mlp(self.obs_dim, hidden, num_actions, out_gain=0.01)  # near-uniform first policy
            self.v = _mlp(self.obs_dim, hidden, 1, out_gain=1.0)
        else:
            self.conv = _ConvNet(shape, num_actions, model)
        # The Gaussian's state-independent log std (CleanRL's ppo_continuous_action: one per action
        # component, starting at 0); None on categorical nets, so their parameters stay as they were.
        self.register_parameter("log_std", nn.Parameter(torch.zeros(num_actions)) if head == GAUSSIAN else None)

    def _body(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.model_cfg.kind == "mlp":
            return self.pi(obs), self.v(obs).squeeze(-1)
        return self.conv(obs)

    def forward(self, obs: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (masked logits, value). `obs` is float [B, obs_dim]; `mask` is bool [B, A], True = legal.
        A Gaussian net returns (mean [B, A], value) and ignores its mask (Box games have none: [B, 0])."""
        g = self._sym_obs.shape[0]
        if g == 1:
            raw, value = self._body(obs)
        else:
            # Every orientation in one batched pass; each one's logits are read back in the
            # original board's action order, then averaged: an exactly symmetric policy and value.
            b = obs.shape[0]
            raw_g, value_g = self._body(obs[:, self._sym_obs].transpose(0, 1).reshape(g * b, -1))
            raw_g = raw_g.reshape(g, b, -1)
            idx = self._sym_act[:, None, :].expand(g, b, -1)
            raw = raw_g.gather(2, idx).mean(0)
            value = value_g.reshape(g, b).mean(0)
        if self.log_std is not None:
            return raw, value
        logits = torch.where(mask, raw, torch.full_like(raw, MASKED_LOGIT))
        return logits, value


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.c2 = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.c2.weight)  # each block starts as the identity: deep stacks train from step one
        nn.init.zeros_(self.c2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.c2(torch.relu(self.c1(x))))


class _ConvNet(nn.Module):
    """A residual convolutional trunk over board planes (as AlphaZero's, without batch norm: PPO's
    small, shifting minibatches and the actors' single-position inference make its statistics a
    liability), shared by a policy head (1x1 convolution to model.policy_planes planes, one linear
    layer) and a value head (1x1 convolution to model.value_planes planes, an MLP of
    model.hidden_sizes). The trunk is shared because a board's tactical features (threats, lines)
    serve both heads; without batch norm there is no running statistic for the value loss to disturb."""

    def __init__(self, obs_shape: tuple[int, ...], num_actions: int, model: ModelConfig) -> None:
        super().__init__()
        h, w, c = obs_shape
        self.hwc = (h, w, c)
        ch = int(model.channels)
        self.stem = nn.Conv2d(c, ch, 3, padding=1)
        self.blocks = nn.Sequential(*(_Residual(ch) for _ in range(model.blocks)))
        self.pi_conv = nn.Conv2d(ch, model.policy_planes, 1)
        self.pi_out = nn.Linear(model.policy_planes * h * w, num_actions)
        nn.init.orthogonal_(self.pi_out.weight, 0.01)  # near-uniform first policy
        nn.init.zeros_(self.pi_out.bias)
        self.v_conv = nn.Conv2d(ch, model.value_planes, 1)
        self.v_mlp = _mlp(model.value_planes * h * w, tuple(int(x) for x in model.hidden_sizes), 1, out_gain=1.0)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w, c = self.hwc
        x = obs.reshape(-1, h, w, c).permute(0, 3, 1, 2)  # PettingZoo boards are channels-last
        x = self.blocks(torch.relu(self.stem(x)))
        logits = self.pi_out(torch.relu(self.pi_conv(x)).flatten(1))
        value = self.v_mlp(torch.relu(self.v_conv(x)).flatten(1)).squeeze(-1)
        return logits, value


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
                "the game or the model section differs from the run that wrote them"
            )
    model.load_state_dict({k: torch.tensor(v) for k, v in tensors.items()})


class InferencePolicy:
    """A frozen copy of the network for acting: numpy in, numpy out, sampling from a numpy RNG.

    Sampling uses the Gumbel-max trick with the caller's Generator so rollouts are reproducible from
    (seed, actor, env) without touching torch's global RNG.
    """

    def __init__(
        self, obs_shape, num_actions: int, model: ModelConfig | tuple = ModelConfig(), version: int = -1, head: str = CATEGORICAL
    ) -> None:
        self.net = PolicyNet(obs_shape, num_actions, model, head)
        self.net.eval()
        self.version = version

    def load(self, tensors: dict[str, np.ndarray], version: int) -> None:
        load_numpy_state(self.net, tensors)
        self.version = version

    @torch.no_grad()
    def act(self, obs: np.ndarray, mask: np.ndarray, rng: np.random.Generator, greedy: bool = False):
        """Batched action selection. Returns (actions int64 [B], logp float32 [B], values float32 [B]);
        a Gaussian policy's actions are float32 [B, A] (see _act_gaussian)."""
        if self.net.log_std is not None:
            return self._act_gaussian(obs, mask, rng, greedy)
        logits, values = self.net(torch.from_numpy(obs), torch.from_numpy(mask))
        logp_all = masked_log_probs(logits).numpy()
        if greedy:
            actions = np.where(mask, logp_all, -np.inf).argmax(-1)
        else:
            gumbel = rng.gumbel(size=logp_all.shape).astype(np.float32)
            actions = np.where(mask, logp_all + gumbel, -np.inf).argmax(-1)
        logp = logp_all[np.arange(len(actions)), actions]
        return actions.astype(np.int64), logp.astype(np.float32), values.numpy().astype(np.float32)

    def _act_gaussian(self, obs: np.ndarray, mask: np.ndarray, rng: np.random.Generator, greedy: bool):
        """Sample N(mean, std) with `rng` (greedy: the mean). The actions are returned unclipped, and
        their log-probs are those of the unclipped samples: the game slot clips what the game
        receives to its Box, while the learner trains on what was sampled (CleanRL's convention;
        clipping first would put mass on the bounds that the density does not describe)."""
        mean_t, values = self.net(torch.from_numpy(obs), torch.from_numpy(mask))
        mean = mean_t.numpy()
        log_std = self.net.log_std.detach()
        actions = mean.copy() if greedy else sample_gaussian(mean, log_std.numpy(), rng)
        logp = gaussian_log_prob(mean_t, log_std, torch.from_numpy(actions)).numpy()
        return actions.astype(np.float32), logp.astype(np.float32), values.numpy().astype(np.float32)
