"""Moving a learner batch to its device and its weights back, with as few copies and waits as possible.

On a CPU learner the batch's arrays become tensors without a copy beyond their concatenation. On a
GPU learner each field is concatenated straight into a page-locked (pinned) host buffer, kept and
reused from update to update, from which the copy to the GPU runs asynchronously (non_blocking): the
host goes on to queue the update's kernels while the data is in flight. Reusing a buffer is safe
because every update ends by reading its metrics back, which waits for everything queued before
it, the copies out of the buffers included.

Weights go the other way once per publish: every tensor of the state dict flattened into one
buffer on the device and brought to the host in one transfer, instead of one transfer (and one
synchronization) per tensor.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class BatchStager:
    """Concatenates a batch's per-segment arrays into device tensors, through reused pinned buffers on CUDA."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.pinned = device.type == "cuda"
        self._buffers: dict[str, torch.Tensor] = {}

    def __call__(self, name: str, arrays: list[np.ndarray]) -> torch.Tensor:
        """The arrays concatenated along their first axis, as a tensor on the device."""
        if not self.pinned:
            return torch.from_numpy(np.concatenate(arrays))  # a fresh array: segments' own may be read-only
        rows = sum(len(a) for a in arrays)
        first = arrays[0]
        buf = self._buffers.get(name)
        if buf is None or buf.shape[0] < rows or buf.shape[1:] != first.shape[1:] or buf.numpy().dtype != first.dtype:
            # Room for a few more rows than now: a batch of whole segments overshoots batch_size by
            # up to a segment, and the next batch's overshoot should not force a new buffer.
            shape = (max(rows, int(rows * 1.25)), *first.shape[1:])
            buf = torch.from_numpy(np.empty(shape, first.dtype)).pin_memory()
            self._buffers[name] = buf
        host = buf[:rows]
        np.concatenate(arrays, out=host.numpy())
        return host.to(self.device, non_blocking=True)


def host_weights(model: nn.Module) -> dict[str, np.ndarray]:
    """The model's state dict as fresh numpy arrays (never views of the live parameters, which the
    next update changes), brought to the host in one copy per dtype."""
    state = {k: v.detach() for k, v in model.state_dict().items()}
    out: dict[str, np.ndarray] = {}
    for dtype in dict.fromkeys(v.dtype for v in state.values()):
        names = [k for k, v in state.items() if v.dtype == dtype]
        with torch.no_grad():
            flat = torch.cat([state[k].reshape(-1) for k in names]).cpu().numpy()
        at = 0
        for k in names:
            size = state[k].numel()
            out[k] = flat[at : at + size].reshape(tuple(state[k].shape))
            at += size
    return {k: out[k] for k in state}  # the state dict's order


def to_cpu(obj):
    """Tensors anywhere in a nest of dicts, lists and tuples, as detached CPU copies (a checkpoint's form)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj
