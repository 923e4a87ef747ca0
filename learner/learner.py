"""The PPO learner as a plain Python object: feed it segments, call update(), read its weights.

Ray and Redis are not visible here (see cluster/remote/learner_service.py for the adapter). One update() is one
learner iteration: it consumes `batch_size` fresh samples, runs `epochs` passes of minibatches and
increments `version`. The version stamps the weights the learner publishes, and the actors stamp
it back on every sample, so staleness = version now - version that acted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import ContextManager, Protocol

import numpy as np
import torch

from learner.arch import ModelConfig
from learner.augment import Orientations
from learner.config import AUTOCAST_MODES, LearnerConfig, PPOConfig
from learner.host_memory import retain_freed_memory
from learner.model import PolicyNet, load_numpy_state
from learner.pending import PendingSegments
from learner.phases import PhaseTimer, phase
from learner.ppo import LossParts, discount_at, explained_variance, gae_segments, linear_schedule, minibatch_slices, ppo_loss
from learner.recurrent import SequenceBatch, check_recurrent_segment
from learner.segment import Segment
from learner.staging import BatchStager, host_weights, to_cpu

_LOSSES = ("total", "policy", "value", "entropy", "approx_kl", "clip_frac")
"""The LossParts fields an update reports, averaged over the minibatches whose step was taken."""


class PolicyShape(Protocol):
    """What the learner needs to know of a game: what it sees, how many moves it has (a Box
    game: its action's size) and the policy head its action space needs (actors/games.py's
    GameSpec is one)."""

    @property
    def obs_shape(self) -> tuple[int, ...]: ...
    @property
    def num_actions(self) -> int: ...
    @property
    def head(self) -> str: ...


class NonFiniteLossError(RuntimeError):
    """Too many consecutive updates produced a NaN/inf loss; weights were not published."""


def pick_device(wanted: str) -> torch.device:
    if wanted == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("learner.device is 'cuda' but no CUDA GPU is visible to the learner; set learner.device: cpu")
        return torch.device("cuda")
    if wanted == "auto" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bfloat16 natively (learner.autocast auto): a CUDA card that
    supports it, or a CPU for which oneDNN has bf16 kernels (AVX512-BF16, AMX, Arm's BF16)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)  # Ampere and later
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch built without oneDNN
        return False


def autocast_enabled(mode: str, device: torch.device) -> bool:
    """learner.autocast resolved for this device: whether the network runs in bf16 autocast."""
    return mode == "bf16" or (mode == "auto" and native_bf16(device))


@dataclass
class LearnerStats:
    """Counters since the learner started; rates are derived by whoever reads them."""

    samples_in: int = 0
    samples_used: int = 0
    samples_consumed: int = 0  # samples x epochs actually fed to the optimiser
    dropped_stale: int = 0
    nonfinite_skipped: int = 0
    started: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class _Batch:
    """One update's samples: tensors on the learner's device, and what the metrics need on the host."""

    n: int
    obs: torch.Tensor
    masks: torch.Tensor
    actions: torch.Tensor
    old_logp: torch.Tensor
    adv: torch.Tensor
    ret: torch.Tensor
    val_np: np.ndarray
    ret_np: np.ndarray
    lags: np.ndarray
    seq: SequenceBatch | None
    pieces: list[slice]
    lr: float
    ent_coef: float
    gamma: float


class Learner:
    MAX_CONSECUTIVE_NONFINITE = 3

    def __init__(
        self,
        spec: PolicyShape,
        model_cfg: ModelConfig,
        ppo_cfg: PPOConfig,
        learner_cfg: LearnerConfig,
        seed: int = 0,
    ) -> None:
        if learner_cfg.autocast not in AUTOCAST_MODES:
            raise ValueError(f"learner.autocast {learner_cfg.autocast!r} is unknown; choose one of {', '.join(AUTOCAST_MODES)}")
        torch.set_num_threads(learner_cfg.torch_threads)
        retain_freed_memory()
        torch.manual_seed(seed)
        self.cfg = ppo_cfg
        self.device = pick_device(learner_cfg.device)
        self.spec = spec
        self.obs_dim = int(np.prod(spec.obs_shape))
        self.model = PolicyNet(spec.obs_shape, spec.num_actions, model_cfg, spec.head).to(self.device)
        gaussian = self.model.log_std is not None
        # What a segment of this game holds per step: Box games have no mask and a float vector action.
        self._mask_width, self._action_dims = (0, (spec.num_actions,)) if gaussian else (spec.num_actions, ())
        # Where a non-finite step is caught (_train_step): on the host on CPU, on the device on CUDA.
        self._guard_on_device = self.device.type == "cuda"
        fused = self._guard_on_device  # see _fit_optimizer
        self.opt = torch.optim.Adam(
            self.model.parameters(), lr=ppo_cfg.lr, betas=(0.9, 0.999), eps=1e-5, foreach=not fused, fused=fused
        )
        self._stage = BatchStager(self.device)
        self._bf16 = autocast_enabled(learner_cfg.autocast, self.device)
        self._yes, self._no = torch.tensor(True, device=self.device), torch.tensor(False, device=self.device)
        self.version = 0
        self.stats = LearnerStats()
        self.pending = PendingSegments()  # in arrival order, the order update() takes them in
        self._floor = 0  # samples of versions below this are stale whatever the lag (played before a restart_from)
        self._consecutive_nonfinite = 0
        self._rng = np.random.default_rng(seed)
        self._augment = Orientations.build(ppo_cfg.augment, model_cfg, spec.obs_shape, spec.num_actions, spec.head, self.device)
        self.timer: PhaseTimer | None = None  # attach one to see where update() spends its time

    # --- data in ---------------------------------------------------------------------------
    def add(self, segments: list[Segment]) -> None:
        for s in segments:
            if s.obs.shape[1] != self.obs_dim or s.masks.shape[1] != self._mask_width or s.actions.shape[1:] != self._action_dims:
                raise ValueError(
                    f"segment shapes obs {s.obs.shape[1:]} / mask {s.masks.shape[1:]} / action {s.actions.shape[1:]} do not fit "
                    f"the policy ({self.obs_dim} / {self._mask_width} / {self._action_dims})"
                )
            check_recurrent_segment(s, self.model)
            self.pending.add(s)
            self.stats.samples_in += len(s)
        self._drop_stale()

    def _drop_stale(self) -> None:
        """Drop whole segments whose oldest sample is over the lag limit (learner/pending.py)."""
        self.stats.dropped_stale += self.pending.drop_older_than(max(self.version - self.cfg.max_policy_lag, self._floor))

    def ready(self) -> bool:
        # Drop what went stale since the last add() first: after an update bumps the version, a
        # count that still included those samples would promise update() a batch it cannot take.
        self._drop_stale()
        return self.pending.samples >= self.cfg.batch_size

    @property
    def pending_samples(self) -> int:
        return self.pending.samples

    # --- the update ------------------------------------------------------------------------
    def _take_batch(self) -> list[Segment]:
        self._drop_stale()
        return self.pending.take(self.cfg.batch_size)

    def update(self) -> dict[str, float]:
        """One learner iteration on the oldest pending samples. Call only when ready().

        Nothing is read back from the device until the update's end, one wait on a GPU: the losses
        are summed where they are computed and a non-finite step is skipped there (_train_step).
        The exception is ppo.target_kl > 0, whose stop needs each minibatch's KL on the host."""
        t, c = self.timer, self.cfg
        with phase(t, "prepare"):
            b = self._prepare(self._take_batch())
        # Per minibatch tried: its losses, then 1 if its step was taken. float64, so the sums are
        # those Python floats gave and the step count is exact.
        acc = torch.zeros(len(_LOSSES) + 1, dtype=torch.float64, device=self.device)
        tried = 0
        kl_stopped = False
        for epoch in range(c.epochs):
            if kl_stopped:
                break
            with phase(t, "prepare"):
                order = self._rng.permutation(b.n if b.seq is None else b.seq.num_segments)
                # A buffer per epoch: an earlier epoch's copy may still be queued on the GPU.
                order_dev = self._stage(f"order{epoch}", [order])
                # ppo.augment: every sample's orientation for this epoch (0 = as played).
                turns = None if self._augment is None else self._stage(
                    f"turns{epoch}", [self._rng.integers(len(self._augment), size=b.n)]
                )
            for piece in b.pieces:
                tried += 1
                with phase(t, "forward"):
                    parts = self._loss(b, order_dev[piece] if b.seq is None else order[piece], turns)
                ok = self._train_step(parts)
                with phase(t, "metrics"):
                    row = torch.stack([*(getattr(parts, k).detach().double() for k in _LOSSES), ok.double()])
                    acc += torch.where(ok, row, 0.0)
                    if c.target_kl > 0 and bool(ok) and float(parts.approx_kl) > 1.5 * c.target_kl:
                        kl_stopped = True  # this batch has moved the policy far enough from the one that acted
                        break
        with phase(t, "metrics"):
            *sums, steps = acc.tolist()  # the update's one read from the device
        return self._finish(b, sums, int(steps), tried - int(steps), kl_stopped)

    def _prepare(self, batch: list[Segment]) -> _Batch:
        """GAE on the host, then the batch's tensors on the device (once per update) and this
        version's learning rate and entropy weight."""
        if not batch:
            raise RuntimeError("update() called without pending samples")
        c = self.cfg
        gamma = discount_at(c, self.version)
        adv_np, ret_np = gae_segments(
            [s.rewards for s in batch], [s.values for s in batch], [s.dones for s in batch],
            [s.bootstrap_value for s in batch], gamma, c.gae_lambda,
        )
        tensor = lambda name: self._stage(name, [getattr(s, name) for s in batch])  # noqa: E731
        n = len(adv_np)
        lr = linear_schedule(c.lr, c.lr_end_factor, self.version, c.schedule_versions)
        for group in self.opt.param_groups:
            group["lr"] = lr
        # Recurrent models: minibatches of whole segments, unrolled from their shipped states.
        seq = SequenceBatch(batch, self.device) if self.model.recurrent else None
        return _Batch(
            n=n,
            obs=tensor("obs"),
            masks=tensor("masks"),
            actions=tensor("actions"),
            old_logp=tensor("logp"),
            adv=self._stage("adv", [adv_np]),
            ret=self._stage("ret", [ret_np]),
            val_np=np.concatenate([s.values for s in batch]),
            ret_np=ret_np,
            lags=np.concatenate([self.version - s.versions for s in batch]),
            seq=seq,
            pieces=minibatch_slices(n, c.minibatch_size) if seq is None else seq.pieces(n, c.minibatch_size),
            lr=lr,
            ent_coef=linear_schedule(c.ent_coef, c.ent_end_factor, self.version, c.schedule_versions),
            gamma=gamma,
        )

    def _loss(self, b: _Batch, picked, turns: torch.Tensor | None = None) -> LossParts:
        """The PPO loss of one minibatch: `picked` are sample indices on the device, or for a
        recurrent model segment indices (numpy). `turns` (ppo.augment) holds each sample's
        orientation. The network runs under autocast when learner.autocast asks for it; the loss
        itself is always float32."""
        c = self.cfg
        if b.seq is None:
            idx = picked
        else:
            with self._autocast():
                idx, logits, values = b.seq.forward(self.model, picked)
        adv = b.adv[idx]
        if c.normalize_advantages and len(idx) > 1:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        actions = b.actions[idx]
        if b.seq is None:
            obs, masks = b.obs[idx], b.masks[idx]
            if turns is not None:
                obs, masks, actions = self._augment.turn(obs, masks, actions, turns[idx])
            with self._autocast():
                logits, values = self.model(obs, masks)
        return ppo_loss(
            logits.float(), values.float(), actions, b.old_logp[idx], adv, b.ret[idx], c.clip, c.vf_coef, b.ent_coef,
            self.model.log_std,
        )

    def _train_step(self, parts: LossParts) -> torch.Tensor:
        """Backward, gradient-norm clip and optimizer step; whether the step was taken, as a bool
        tensor on the device. A minibatch whose loss or gradient norm is NaN/inf changes nothing.
        On CPU that is checked on the host, where it costs nothing and spares a NaN loss its
        backward pass; on CUDA on the device, so that the host never waits: fused Adam skips its
        step where `found_inf` is 1 (the mechanism torch.amp.GradScaler drives)."""
        t, guard_on_device = self.timer, self._guard_on_device
        if not guard_on_device and not torch.isfinite(parts.total):
            return self._no
        with phase(t, "backward"):
            self.opt.zero_grad(set_to_none=True)
            parts.total.backward()
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
        if not guard_on_device:
            if not torch.isfinite(norm):
                self.opt.zero_grad(set_to_none=True)
                return self._no
            with phase(t, "step"):
                self.opt.step()
            return self._yes
        ok = torch.isfinite(parts.total) & torch.isfinite(norm)
        with phase(t, "step"):
            self.opt.found_inf = (~ok).float()
            self.opt.step()
        return ok

    def _finish(self, b: _Batch, sums: list[float], steps: int, skipped: int, kl_stopped: bool) -> dict[str, float]:
        """Counters, the version, and the update's metrics."""
        self.stats.nonfinite_skipped += skipped
        if steps == 0:
            self._consecutive_nonfinite += 1
            if self._consecutive_nonfinite >= self.MAX_CONSECUTIVE_NONFINITE:
                raise NonFiniteLossError(
                    f"{self._consecutive_nonfinite} consecutive learner iterations had only NaN/inf losses; "
                    "stopping instead of publishing broken weights. Lower ppo.lr or check the game's rewards."
                )
        else:
            self._consecutive_nonfinite = 0
        self.version += 1
        self.stats.samples_used += b.n
        self.stats.samples_consumed += steps * b.n // len(b.pieces)
        metrics = {f"losses/{k}": v / steps for k, v in zip(_LOSSES, sums)} if steps else {}
        lags = b.lags
        metrics.update(
            {
                "losses/lr": b.lr,
                "losses/ent_coef": b.ent_coef,
                "losses/gamma": b.gamma,
                "losses/kl_stop": float(kl_stopped),
                "losses/explained_variance": explained_variance(b.val_np, b.ret_np),
                "losses/grad_steps": float(steps),
                "losses/nonfinite_skipped": float(skipped),
                "system/staleness_min": float(lags.min()),
                "system/staleness_mean": float(lags.mean()),
                "system/staleness_max": float(lags.max()),
                "system/dropped_stale": float(self.stats.dropped_stale),
                "system/sample_reuse": self.sample_reuse(),
                "system/learner_version": float(self.version),
                "system/batch_samples": float(b.n),
            }
        )
        return metrics

    @property
    def bf16(self) -> bool:
        """Whether the network runs in bf16 autocast (learner.autocast, resolved for this device)."""
        return self._bf16

    def _autocast(self) -> ContextManager[None]:
        """bf16 autocast of the network's forward pass when learner.autocast is bf16 (off: a no-op)."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self._bf16)

    def _fit_optimizer(self) -> None:
        """Adam's kernel for where steps are guarded. CPU: foreach, bit for bit the default
        per-tensor loop, in fewer calls. CUDA: fused, whose `found_inf` lets a non-finite step be
        skipped on the device (_train_step); its step counts then live on the device too."""
        fused = self._guard_on_device
        for group in self.opt.param_groups:
            group["fused"], group["foreach"] = (True, False) if fused else (False, True)
            for p in group["params"]:
                st = self.opt.state.get(p)
                if st and "step" in st:
                    st["step"] = st["step"].to(device=p.device if fused else "cpu", dtype=torch.float32)

    def sample_reuse(self) -> float:
        """ANCHORS' definition: samples consumed by the optimiser / samples produced by rollouts."""
        return self.stats.samples_consumed / max(self.stats.samples_in, 1)

    # --- weights ---------------------------------------------------------------------------
    def weights(self) -> dict[str, np.ndarray]:
        """The weights as fresh host arrays, one copy from the device (learner/staging.py)."""
        return host_weights(self.model)

    def load_weights(self, tensors: dict[str, np.ndarray]) -> None:
        load_numpy_state(self.model, tensors)

    def restart_from(self, tensors: dict[str, np.ndarray], version: int) -> None:
        """Start over from another policy's weights (an exploiter's reset, cluster/run/leagues.py)
        as `version` (past every published one: versions never go back): those weights, a fresh
        optimizer state, and no samples of the old policy, pending or arriving later (dropped as stale)."""
        if version <= self.version:
            raise ValueError(f"a restarted learner goes on past v{self.version}; got v{version}")
        self.version, self._floor = version, version
        self.load_weights(tensors)
        self.opt.state.clear()
        self.pending.clear()

    # --- checkpoints -----------------------------------------------------------------------
    _COUNTERS = ("samples_in", "samples_used", "samples_consumed", "dropped_stale", "nonfinite_skipped")

    def state_dict(self) -> dict:
        """Everything needed to continue training exactly (weights, optimizer, version, RNG states,
        counters), as CPU tensors and plain Python types so it loads with weights_only=True.
        Pending samples are not included: they are transient and actors produce new ones."""
        cuda = torch.cuda.get_rng_state_all() if self.device.type == "cuda" else []
        return {
            "version": self.version,
            "model": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
            "optimizer": to_cpu(self.opt.state_dict()),
            "rng": {"torch": torch.get_rng_state(), "cuda": cuda, "numpy": self._rng.bit_generator.state},
            "stats": {k: getattr(self.stats, k) for k in self._COUNTERS},
            "consecutive_nonfinite": self._consecutive_nonfinite,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a state_dict(); weights of another shape are refused naming the mismatch."""
        load_numpy_state(self.model, {k: v.numpy() for k, v in state["model"].items()})
        self.opt.load_state_dict(state["optimizer"])  # moves optimizer state to the parameters' device
        self._fit_optimizer()  # a checkpoint from another device names that device's Adam kernel
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"]["cuda"] and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self._rng.bit_generator.state = state["rng"]["numpy"]
        for k in self._COUNTERS:
            setattr(self.stats, k, int(state["stats"][k]))
        self._consecutive_nonfinite = int(state.get("consecutive_nonfinite", 0))
        self.version = int(state["version"])

