"""Where a learner update's time goes: seconds per phase, summed over updates.

The learner calls `phase(name)` around each of its phases (data preparation, forward, backward,
optimizer step, metrics); without a timer attached that is a shared no-op context, so a training
run pays nothing for it. On CUDA each boundary synchronizes the device: kernels run
asynchronously, and without the synchronization the time of the forward pass would land in
whichever later phase first waits for it. Timing therefore slows a GPU update a little;
benchmarks/learner_speed.py reports the phases from separate, timed-only updates for that reason.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager, nullcontext
from typing import ContextManager, Iterator

import torch

PHASES = ("prepare", "forward", "backward", "step", "metrics")
"""The learner's phases, in order. prepare: taking the batch, GAE, building the tensors and moving
them to the device; forward: the network and the PPO loss; backward: gradients and their norm
clip; step: the optimizer; metrics: reading the update's losses back to the host."""

_NOTHING = nullcontext()


class PhaseTimer:
    """Seconds spent in each named phase since the timer was made (or reset)."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if self.cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if self.cuda:
                torch.cuda.synchronize()
            self.seconds[name] += time.perf_counter() - t0

    def reset(self) -> None:
        self.seconds.clear()


def phase(timer: PhaseTimer | None, name: str) -> ContextManager[None]:
    """`timer(name)`, or a no-op context when no timer is attached."""
    return _NOTHING if timer is None else timer(name)
