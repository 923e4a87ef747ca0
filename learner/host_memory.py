"""Keep the memory torch frees inside the process, instead of handing it back to the kernel at every free.

glibc's malloc serves a large allocation (above its mmap threshold: 128 KiB at first, raised as
large blocks are freed) with fresh pages from the kernel and returns them when the block is freed;
and it gives the top of its heap back once more than the trim threshold is free there. A training
step allocates and frees the same activations every time (connect four's conv trunk: 512 x 32 x 6 x
7 floats, 2.7 MB, per layer), so each step paid for them again in page faults: 4,600 minor faults
per forward and backward pass of a 512-sample minibatch, 13% of its CPU time
(benchmarks/learner_speed.py measures the update). With a fixed mmap threshold of 32 MiB and a
trim threshold of 512 MiB those blocks come from the heap and are reused. The process keeps, at
most, the memory it needed at its peak. Only glibc has these knobs; elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import platform

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20
"""Allocations below this come from the heap (glibc's largest allowed value on 64-bit)."""
TRIM_THRESHOLD = 512 << 20
"""Free memory at the heap's top kept before any is returned to the kernel."""

_done = False


def retain_freed_memory() -> bool:
    """Set the process's malloc thresholds (once per process); False where libc is not glibc."""
    global _done
    if _done:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    # mallopt returns 1 on success, 0 when it refuses a value (none of these on 64-bit glibc).
    _done = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done
