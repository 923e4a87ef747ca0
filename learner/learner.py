"""The PPO learner as a plain Python object: feed it segments, call update(), read its weights.

Ray and Redis are not visible here (see cluster/remote/learner_service.py for the adapter). One update() is one
learner iteration: it consumes `batch_size` fresh samples, runs `epochs` passes of minibatches and
increments `version`. The version stamps the weights the learner publishes, and the actors stamp
it back on every sample, so staleness = version now - version that acted.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from learner.arch import ModelConfig
from learner.config import LearnerConfig, PPOConfig
from learner.model import PolicyNet, load_numpy_state, state_dict_numpy
from learner.phases import PhaseTimer, phase
from learner.ppo import explained_variance, gae_segments, linear_schedule, minibatch_slices, ppo_loss
from learner.recurrent import SequenceBatch, check_recurrent_segment
from learner.segment import Segment


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


@dataclass
class LearnerStats:
    """Counters since the learner started; rates are derived by whoever reads them."""

    samples_in: int = 0
    samples_used: int = 0
    samples_consumed: int = 0  # samples x epochs actually fed to the optimiser
    dropped_stale: int = 0
    nonfinite_skipped: int = 0
    started: float = field(default_factory=time.monotonic)


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
        torch.set_num_threads(learner_cfg.torch_threads)
        torch.manual_seed(seed)
        self.cfg = ppo_cfg
        self.device = pick_device(learner_cfg.device)
        self.spec = spec
        self.obs_dim = int(np.prod(spec.obs_shape))
        self.model = PolicyNet(spec.obs_shape, spec.num_actions, model_cfg, spec.head).to(self.device)
        gaussian = self.model.log_std is not None
        # What a segment of this game holds per step: Box games have no mask and a float vector action.
        self._mask_width, self._action_dims = (0, (spec.num_actions,)) if gaussian else (spec.num_actions, ())
        self.opt = torch.optim.Adam(self.model.parameters(), lr=ppo_cfg.lr, betas=(0.9, 0.999), eps=1e-5)
        self.version = 0
        self.stats = LearnerStats()
        # Pending segments, in arrival order (the order update() takes them in), by arrival number.
        # A min-heap of (policy version, arrival number) finds the stale ones without a scan: a
        # segment dropped from the heap leaves its arrival number behind in the queue, skipped there.
        self._pending: dict[int, Segment] = {}
        self._arrivals: deque[int] = deque()
        self._by_version: list[tuple[int, int]] = []
        self._arrived = 0
        self._pending_samples = 0
        self._consecutive_nonfinite = 0
        self._rng = np.random.default_rng(seed)
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
            self._pending[self._arrived] = s
            self._arrivals.append(self._arrived)
            heapq.heappush(self._by_version, (s.policy_version, self._arrived))
            self._arrived += 1
            self._pending_samples += len(s)
            self.stats.samples_in += len(s)
        self._drop_stale()

    def _drop_stale(self) -> None:
        """Drop whole segments whose oldest sample is over the lag limit (GAE needs them whole).
        O(1) when nothing is stale; each segment is dropped or taken once, at O(log n)."""
        oldest_allowed = self.version - self.cfg.max_policy_lag
        heap = self._by_version
        while heap and heap[0][0] < oldest_allowed:
            _, arrival = heapq.heappop(heap)
            s = self._pending.pop(arrival, None)
            if s is not None:  # None: update() took it already
                self.stats.dropped_stale += len(s)
                self._pending_samples -= len(s)
        while self._arrivals and self._arrivals[0] not in self._pending:
            self._arrivals.popleft()  # dropped ones at the front: keeps the queue as short as the data
        if not self._pending:
            heap.clear()  # what is left only names segments update() took

    def ready(self) -> bool:
        # Drop what went stale since the last add() first: after an update bumps the version, a
        # count that still included those samples would promise update() a batch it cannot take.
        self._drop_stale()
        return self._pending_samples >= self.cfg.batch_size

    @property
    def pending_samples(self) -> int:
        return self._pending_samples

    # --- the update ------------------------------------------------------------------------
    def _take_batch(self) -> list[Segment]:
        self._drop_stale()
        batch, n = [], 0
        while self._arrivals and n < self.cfg.batch_size:
            s = self._pending.pop(self._arrivals.popleft(), None)
            if s is None:
                continue  # dropped as stale after it arrived
            batch.append(s)
            n += len(s)
            self._pending_samples -= len(s)
        return batch

    def update(self) -> dict[str, float]:
        """One learner iteration on the oldest pending samples. Call only when ready()."""
        t = self.timer
        with phase(t, "prepare"):
            batch = self._take_batch()
            if not batch:
                raise RuntimeError("update() called without pending samples")
            c = self.cfg
            adv_np, ret_np = gae_segments(
                [s.rewards for s in batch], [s.values for s in batch], [s.dones for s in batch],
                [s.bootstrap_value for s in batch], c.gamma, c.gae_lambda,
            )
            lags = np.concatenate([self.version - s.versions for s in batch])
            cat = lambda name: np.concatenate([getattr(s, name) for s in batch])  # noqa: E731
            dev = self.device
            obs = torch.from_numpy(cat("obs")).to(dev)
            masks = torch.from_numpy(cat("masks")).to(dev)
            actions = torch.from_numpy(cat("actions")).to(dev)
            old_logp = torch.from_numpy(cat("logp")).to(dev)
            val_np = cat("values")
            adv_all = torch.from_numpy(adv_np).to(dev)
            ret_all = torch.from_numpy(ret_np).to(dev)
            n = len(adv_np)
            lr = linear_schedule(c.lr, c.lr_end_factor, self.version, c.schedule_versions)
            ent_coef = linear_schedule(c.ent_coef, c.ent_end_factor, self.version, c.schedule_versions)
            for group in self.opt.param_groups:
                group["lr"] = lr
            # Recurrent models: minibatches of whole segments, unrolled from their shipped states.
            seq = SequenceBatch(batch, dev) if self.model.recurrent else None
            pieces = minibatch_slices(n, c.minibatch_size) if seq is None else seq.pieces(n, c.minibatch_size)
        sums: dict[str, float] = {}
        steps = skipped = 0
        kl_stopped = False
        for _ in range(c.epochs):
            if kl_stopped:
                break
            with phase(t, "prepare"):
                order = torch.from_numpy(self._rng.permutation(n if seq is None else seq.num_segments)).to(dev)
            for piece in pieces:
                with phase(t, "forward"):
                    if seq is None:
                        idx = order[piece]
                    else:
                        idx, logits, values = seq.forward(self.model, order[piece])
                    adv = adv_all[idx]
                    if c.normalize_advantages and len(idx) > 1:
                        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                    if seq is None:
                        logits, values = self.model(obs[idx], masks[idx])
                    parts = ppo_loss(
                        logits, values, actions[idx], old_logp[idx], adv, ret_all[idx], c.clip, c.vf_coef, ent_coef, self.model.log_std
                    )
                    if not torch.isfinite(parts.total):
                        skipped += 1
                        continue
                with phase(t, "backward"):
                    self.opt.zero_grad(set_to_none=True)
                    parts.total.backward()
                    grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.max_grad_norm)
                    if not torch.isfinite(grad_norm):
                        skipped += 1
                        self.opt.zero_grad(set_to_none=True)
                        continue
                with phase(t, "step"):
                    self.opt.step()
                steps += 1
                with phase(t, "metrics"):
                    for k in ("total", "policy", "value", "entropy", "approx_kl", "clip_frac"):
                        sums[k] = sums.get(k, 0.0) + float(getattr(parts, k).detach())
                    if c.target_kl > 0 and float(parts.approx_kl) > 1.5 * c.target_kl:
                        kl_stopped = True  # this batch has moved the policy far enough from the one that acted
                        break
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
        self.stats.samples_used += n
        self.stats.samples_consumed += steps * n // len(pieces)
        metrics = {f"losses/{k}": v / max(steps, 1) for k, v in sums.items()}
        metrics.update(
            {
                "losses/lr": lr,
                "losses/ent_coef": ent_coef,
                "losses/kl_stop": float(kl_stopped),
                "losses/explained_variance": explained_variance(val_np, ret_np),
                "losses/grad_steps": float(steps),
                "losses/nonfinite_skipped": float(skipped),
                "system/staleness_min": float(lags.min()),
                "system/staleness_mean": float(lags.mean()),
                "system/staleness_max": float(lags.max()),
                "system/dropped_stale": float(self.stats.dropped_stale),
                "system/sample_reuse": self.sample_reuse(),
                "system/learner_version": float(self.version),
                "system/batch_samples": float(n),
            }
        )
        return metrics

    def sample_reuse(self) -> float:
        """ANCHORS' definition: samples consumed by the optimiser / samples produced by rollouts."""
        return self.stats.samples_consumed / max(self.stats.samples_in, 1)

    # --- weights ---------------------------------------------------------------------------
    def weights(self) -> dict[str, np.ndarray]:
        return state_dict_numpy(self.model)

    def load_weights(self, tensors: dict[str, np.ndarray]) -> None:
        load_numpy_state(self.model, tensors)

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
            "optimizer": _to_cpu(self.opt.state_dict()),
            "rng": {"torch": torch.get_rng_state(), "cuda": cuda, "numpy": self._rng.bit_generator.state},
            "stats": {k: getattr(self.stats, k) for k in self._COUNTERS},
            "consecutive_nonfinite": self._consecutive_nonfinite,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a state_dict(); weights of another shape are refused naming the mismatch."""
        load_numpy_state(self.model, {k: v.numpy() for k, v in state["model"].items()})
        self.opt.load_state_dict(state["optimizer"])  # moves optimizer state to the parameters' device
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"]["cuda"] and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self._rng.bit_generator.state = state["rng"]["numpy"]
        for k in self._COUNTERS:
            setattr(self.stats, k, int(state["stats"][k]))
        self._consecutive_nonfinite = int(state.get("consecutive_nonfinite", 0))
        self.version = int(state["version"])


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj
