"""The policy/value networks shared by learner and actors, and masked-distribution helpers.

`PolicyNet` builds the architecture a ModelConfig (learner/arch.py) names: every feed-forward kind
takes the flattened observation and the legal-action mask and returns (masked logits, value), so
rollouts, the learner, snapshots and policy files never need to know which kind they hold. The
recurrent kind (lstm) also takes and returns its state: `step` for one decision per seat, `unroll`
for the learner's sequences (learner/recurrent.py); `recurrent` says which of the two a net is.
Box action spaces get the Gaussian head instead (learner/distributions.py): (mean, value), the
mask empty and unused.
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
        self.recurrent = model.kind == "lstm"
        if model.kind == "mlp":
            # Separate MLPs for the categorical policy and the value (as CleanRL's PPO): a shared
            # trunk let the value loss pull the policy's features around and learned markedly
            # slower here. Attribute names are those of weights saved before model kinds existed.
            hidden = tuple(int(h) for h in model.hidden_sizes)
            self.pi = _mlp(self.obs_dim, hidden, num_actions, out_gain=0.01)  # near-uniform first policy
            self.v = _mlp(self.obs_dim, hidden, 1, out_gain=1.0)
        elif self.recurrent:
            self.lstm_net = _LSTMNet(self.obs_dim, num_actions, model)
        else:
            self.conv = _ConvNet(shape, num_actions, model)
        # The Gaussian's state-independent log std (CleanRL's ppo_continuous_action: one per action
        # component, starting at 0); None on categorical nets, so their parameters stay as they were.
        self.register_parameter("log_std", nn.Parameter(torch.zeros(num_actions)) if head == GAUSSIAN else None)

    def _body(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.model_cfg.kind == "mlp":
            return self.pi(obs), self.v(obs).squeeze(-1)
        if self.recurrent:
            raise TypeError(
                "this network is recurrent (model.kind lstm): use InferencePolicy.act_recurrent (or PolicyNet.step / unroll) with its state"
            )
        return self.conv(obs)

    @property
    def state_size(self) -> int:
        """Units of the LSTM (0 for a feed-forward kind); a state is (h, c) of this many each."""
        return int(self.model_cfg.lstm_size) if self.recurrent else 0

    def step(
        self, obs: torch.Tensor, mask: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One decision of B seats: (masked logits [B, A], value [B], next state). `state` is
        (h, c), float [B, lstm_size] each (zeros at a game's start)."""
        raw, value, state = self.lstm_net(obs[None], None, state)
        return torch.where(mask, raw[0], torch.full_like(raw[0], MASKED_LOGIT)), value[0], state

    def unroll(
        self, obs: torch.Tensor, mask: torch.Tensor, starts: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """T decisions of B seats, time-major: obs [T, B, obs_dim], mask [T, B, A]; starts [T, B]
        bool: a new game starts at that decision, so the state is zeroed before it. Returns
        (masked logits [T, B, A], values [T, B], the state after the last decision)."""
        raw, value, state = self.lstm_net(obs, starts, state)
        return torch.where(mask, raw, torch.full_like(raw, MASKED_LOGIT)), value, state

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
        k = int(model.stem_kernel)
        self.stem = nn.Conv2d(c, ch, k, padding=k // 2)
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


class _LSTMNet(nn.Module):
    """An MLP encoder (model.hidden_sizes, tanh), one LSTM layer (model.lstm_size) and linear policy
    and value heads over its output, as OpenAI Five's (whose LSTM sat between its observation
    encoder and its action heads). Policy and value share the encoder and the LSTM: the memory is
    what both need, and two LSTMs would double the state every seat carries."""

    def __init__(self, obs_dim: int, num_actions: int, model: ModelConfig) -> None:
        super().__init__()
        hidden = tuple(int(h) for h in model.hidden_sizes)
        self.encoder = nn.Sequential(*_mlp(obs_dim, hidden[:-1], hidden[-1], out_gain=2**0.5), nn.Tanh())
        self.lstm = nn.LSTM(hidden[-1], int(model.lstm_size))
        for name, p in self.lstm.named_parameters():  # as CleanRL's PPO-LSTM
            if name.startswith("weight"):
                nn.init.orthogonal_(p, 1.0)
            else:
                nn.init.zeros_(p)
        self.pi_out = nn.Linear(int(model.lstm_size), num_actions)
        nn.init.orthogonal_(self.pi_out.weight, 0.01)  # near-uniform first policy
        nn.init.zeros_(self.pi_out.bias)
        self.v_out = nn.Linear(int(model.lstm_size), 1)
        nn.init.orthogonal_(self.v_out.weight, 1.0)
        nn.init.zeros_(self.v_out.bias)

    def forward(self, obs: torch.Tensor, starts: torch.Tensor | None, state: tuple[torch.Tensor, torch.Tensor]):
        """`starts` None: no game starts within these time steps (the actors' single step)."""
        x = self.encoder(obs)  # [T, B, hidden]
        h, c = state[0][None], state[1][None]
        if starts is None:
            out, (h, c) = self.lstm(x, (h, c))
            return self.pi_out(out), self.v_out(out).squeeze(-1), (h[0], c[0])
        # One LSTM call per stretch of time steps with no game start in any column; at a start the
        # columns starting a game have their state zeroed (x 0.0: exact, as the actors' fresh zeros).
        cuts = [0, *(int(t) for t in torch.nonzero(starts[1:].any(-1)).flatten() + 1), len(x)]
        outs = []
        for a, b in zip(cuts[:-1], cuts[1:]):
            if starts[a].any():
                keep = (~starts[a]).to(h.dtype)[None, :, None]
                h, c = h * keep, c * keep
            out, (h, c) = self.lstm(x[a:b], (h, c))
            outs.append(out)
        out = torch.cat(outs) if len(outs) > 1 else outs[0]
        return self.pi_out(out), self.v_out(out).squeeze(-1), (h[0], c[0])


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
    (seed, actor, env) without touching torch's global RNG. Its forward passes run in
    torch.inference_mode (no autograd bookkeeping at all, not even tensor version counters): what
    they compute leaves as numpy and never meets a gradient.
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

    @torch.inference_mode()
    def value(self, obs: np.ndarray, state: np.ndarray | None = None) -> np.ndarray:
        """V(obs) for a batch of network inputs, float32 [B] (the value does not read the mask); a
        recurrent policy's from each seat's `state` float32 [B, 2, lstm_size]."""
        x = torch.from_numpy(np.asarray(obs, np.float32))
        mask = torch.ones((len(obs), self.net.num_actions), dtype=torch.bool)
        if self.net.recurrent:
            values = self.net.step(x, mask, _state_pair(state))[1]
        else:
            values = self.net(x, mask)[1]
        return values.numpy().astype(np.float32)

    @torch.inference_mode()
    def act(self, obs: np.ndarray, mask: np.ndarray, rng: np.random.Generator, greedy: bool = False):
        """Batched action selection. Returns (actions int64 [B], logp float32 [B], values float32 [B]);
        a Gaussian policy's actions are float32 [B, A] (see _act_gaussian)."""
        if self.net.log_std is not None:
            return self._act_gaussian(obs, mask, rng, greedy)
        logits, values = self.net(torch.from_numpy(obs), torch.from_numpy(mask))
        return _pick(logits, values, mask, rng, greedy)

    @property
    def recurrent(self) -> bool:
        return self.net.recurrent

    def initial_state(self, n: int) -> np.ndarray:
        """The state of n seats at a game's start: float32 [n, 2, lstm_size] of zeros (h, then c)."""
        return np.zeros((n, 2, self.net.state_size), np.float32)

    @torch.inference_mode()
    def act_recurrent(self, obs: np.ndarray, mask: np.ndarray, state: np.ndarray, rng: np.random.Generator, greedy: bool = False):
        """act() for a recurrent policy: `state` float32 [B, 2, lstm_size] is each seat's state
        before this decision. Returns (actions, logp, values, the states after it). Samples as act()
        does (the same draws from `rng`)."""
        logits, values, (h, c) = self.net.step(torch.from_numpy(obs), torch.from_numpy(mask), _state_pair(state))
        return (*_pick(logits, values, mask, rng, greedy), torch.stack([h, c], 1).numpy())

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


def _state_pair(state: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Seats' states float32 [B, 2, lstm_size] as the LSTM's (h, c), [B, lstm_size] each."""
    st = torch.from_numpy(np.ascontiguousarray(state, np.float32))
    return st[:, 0].contiguous(), st[:, 1].contiguous()


def _pick(logits: torch.Tensor, values: torch.Tensor, mask: np.ndarray, rng: np.random.Generator, greedy: bool):
    """(actions int64, logp float32, values float32) from masked logits: the most likely legal
    action, or a sample by the Gumbel-max trick with the caller's Generator."""
    logp_all = masked_log_probs(logits).numpy()
    if greedy:
        actions = np.where(mask, logp_all, -np.inf).argmax(-1)
    else:
        gumbel = rng.gumbel(size=logp_all.shape).astype(np.float32)
        actions = np.where(mask, logp_all + gumbel, -np.inf).argmax(-1)
    logp = logp_all[np.arange(len(actions)), actions]
    return actions.astype(np.int64), logp.astype(np.float32), values.numpy().astype(np.float32)
