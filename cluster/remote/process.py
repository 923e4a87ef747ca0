"""What a Ray actor's process sets and learns about itself: torch's thread count, and whether Ray restarted it."""

from __future__ import annotations

import os
import warnings

import ray


def set_torch_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def restart_salt() -> int | None:
    """None in an actor's first incarnation, a fresh random number once Ray has restarted it."""
    with warnings.catch_warnings():
        # Ray 2.60's own implementation reads a deprecated property of its runtime context.
        warnings.simplefilter("ignore", DeprecationWarning)
        restarted = ray.get_runtime_context().was_current_actor_reconstructed
    if not restarted:
        return None
    return int.from_bytes(os.urandom(4), "little")
