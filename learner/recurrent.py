"""The learner's side of recurrent policies: minibatches of whole segments, unrolled in time.

A feed-forward policy's samples can be shuffled one by one; a recurrent one's cannot, since each
decision's log-probability depends on the state the seat carried into it. So a batch is kept as
whole segments, padded to the longest and stacked time-major, and every minibatch is a set of
segments unrolled from the state its actor shipped with it (Segment.initial_state, the state before
its first decision), with the state zeroed where a new game starts inside it (the decision after a
done). Before any update this recomputes exactly the log-probabilities the actors sampled with
(tests/test_recurrent.py), which PPO's ratio needs.

The outputs come back flat, in the learner's sample order (segment after segment), so the PPO loss,
GAE and advantage normalisation are the feed-forward ones, unchanged.
"""

from __future__ import annotations

import numpy as np
import torch

from learner.model import PolicyNet
from learner.segment import Segment


def check_recurrent_segment(s: Segment, model: PolicyNet) -> None:
    """ValueError unless the segment carries a state exactly when the model is recurrent, of its size."""
    if not model.recurrent:
        if s.initial_state is not None:
            raise ValueError("a segment with a recurrent state reached a feed-forward learner; is an actor on another model.kind?")
        return
    if s.initial_state is None or s.initial_state.shape != (2, model.state_size):
        got = None if s.initial_state is None else s.initial_state.shape
        raise ValueError(
            f"model.kind lstm needs segments carrying their initial state [2, {model.state_size}]; got {got}: "
            "are actors and learner on the same model section?"
        )


class SequenceBatch:
    """A learner batch of segments, padded to [S, T_max] once, from which minibatches of whole
    segments are unrolled."""

    def __init__(self, batch: list[Segment], device: torch.device) -> None:
        self.lengths = np.array([len(s) for s in batch])
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)[:-1]])
        n_seg, width = len(batch), int(self.lengths.max())
        obs_dim, n_act = batch[0].obs.shape[1], batch[0].masks.shape[1]
        obs = np.zeros((n_seg, width, obs_dim), np.float32)
        masks = np.ones((n_seg, width, n_act), bool)  # padding: all legal, so its logits stay finite
        starts = np.zeros((n_seg, width), bool)
        for i, s in enumerate(batch):
            n = len(s)
            obs[i, :n], masks[i, :n] = s.obs, s.masks
            starts[i, 1:n] = s.dones[: n - 1]  # dones[t]: the game ended at t, a new one starts at t + 1
        self.obs = torch.from_numpy(obs).to(device)
        self.masks = torch.from_numpy(masks).to(device)
        self.starts = torch.from_numpy(starts).to(device)
        self.state = torch.from_numpy(np.stack([s.initial_state for s in batch])).to(device)  # [S, 2, H]
        self.device = device

    @property
    def num_segments(self) -> int:
        return len(self.lengths)

    def pieces(self, num_samples: int, minibatch_size: int) -> list[slice]:
        """Slices of a permutation of the segments: as many minibatches as the feed-forward learner
        would make of num_samples (at most one per segment), sizes differing by at most a segment."""
        k = min(max(1, num_samples // max(minibatch_size, 1)), self.num_segments)
        bounds = [round(i * self.num_segments / k) for i in range(k + 1)]
        return [slice(bounds[i], bounds[i + 1]) for i in range(k)]

    def forward(self, model: PolicyNet, segs: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Unroll the segments `segs` (indices into the batch) from their shipped states. Returns
        (flat sample indices into the batch's concatenated samples, masked logits, values), the
        padding left out, segment after segment in the order of `segs`. Pass host (numpy)
        indices: a GPU tensor would have to be read back first, a wait for the device."""
        seg_np = segs.cpu().numpy() if isinstance(segs, torch.Tensor) else np.asarray(segs)
        segs = self._to_device(seg_np)
        width = int(self.lengths[seg_np].max())
        st = self.state[segs]
        obs = self.obs[segs, :width].transpose(0, 1)
        masks = self.masks[segs, :width].transpose(0, 1)
        starts = self.starts[segs, :width].transpose(0, 1)
        logits, values, _ = model.unroll(obs, masks, starts, (st[:, 0].contiguous(), st[:, 1].contiguous()))
        valid = self._to_device(np.arange(width)[None, :] < self.lengths[seg_np][:, None])  # [B, T]
        idx = np.concatenate([np.arange(self.offsets[i], self.offsets[i] + self.lengths[i]) for i in seg_np])
        return self._to_device(idx), logits.transpose(0, 1)[valid], values.transpose(0, 1)[valid]

    def _to_device(self, a: np.ndarray) -> torch.Tensor:
        """A host array on the device; on CUDA copied asynchronously from pinned memory (a plain
        copy would wait for the GPU to finish everything queued before it)."""
        t = torch.from_numpy(a)
        return t.pin_memory().to(self.device, non_blocking=True) if self.device.type == "cuda" else t
