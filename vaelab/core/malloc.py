"""Keep freed memory in the process on CPU (glibc ``mallopt``): no page faults for the same tensors every step.

A training step or a log-likelihood chunk on the CPU allocates and frees the same large tensors again and
again (activations, weight casts, a chunk of decoded images: 0.2-3 MB each). glibc's malloc returns freed
memory at the top of its heap to the kernel once more than ``M_TRIM_THRESHOLD`` is free there, and serves
blocks above ``M_MMAP_THRESHOLD`` by ``mmap``/``munmap``; both thresholds start small (128 KiB) and adapt.
Either way the next step touches fresh pages, and every 4 KiB page costs a page fault (2-4 us in a virtual
machine): measured on the project's 2-core machine, 500-1,300 faults per training step of the pendulum
and HEBAE MLP models (2-8 % of the step) and 10-35 % of the importance-sampled log-likelihood's time.

``keep_freed_memory()`` raises the two thresholds once per process (heap blocks up to 32 MiB, up to
256 MiB kept free at the heap's top), so that memory freed by one step is reused by the next. Peak memory is
unchanged; what changes is that the process keeps (up to 256 MiB of) freed memory for reuse instead of
handing it back at once. ``vaelab.fit`` (on CPU) and ``importance_log_likelihood`` (on CPU) call it.
It does nothing where the C library is not glibc, when ``VAELAB_KEEP_FREED_MEMORY=0``, or when the
environment already sets ``MALLOC_TRIM_THRESHOLD_`` or ``MALLOC_MMAP_THRESHOLD_`` (an explicit choice).
Results are bit-identical with and without it.
"""
from __future__ import annotations

import ctypes
import os
import platform

__all__ = ["keep_freed_memory", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
MMAP_THRESHOLD = 32 << 20   # blocks below 32 MiB come from the heap (glibc's own upper bound for the dynamic one)
TRIM_THRESHOLD = 256 << 20  # up to 256 MiB free at the heap's top stay with the process

_state: bool | None = None  # None: not tried yet; else whether the thresholds were set


def keep_freed_memory() -> bool:
    """Raise glibc's trim and mmap thresholds once per process; True when they are (now or before) raised."""
    global _state
    if _state is not None:
        return _state
    _state = False
    if os.environ.get("VAELAB_KEEP_FREED_MEMORY", "1").strip().lower() in ("0", "false", "no", "off"):
        return _state
    if "MALLOC_TRIM_THRESHOLD_" in os.environ or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return _state
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return _state
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        ok = libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
    except (OSError, AttributeError):
        return _state
    _state = ok
    return _state
