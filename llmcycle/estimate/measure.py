"""Measuring what training really uses, to hold the estimator to account (CPU, Linux/glibc).

- ``rss_bytes`` / ``peak_rss_bytes``: the process's resident set now and at its peak.
- ``malloc_in_use_fn``: glibc's bytes in use (heap chunks + mmapped chunks, ``mallinfo2``): what
  live tensors occupy, without the freed memory glibc keeps resident.
- ``peak_in_use(in_use)``: a torch dispatch mode that records the peak of ``in_use()`` after
  every aten op run inside it.

Nothing here imports torch until ``peak_in_use`` is called.
"""

from __future__ import annotations

import ctypes
import os
import resource
from typing import Any, Callable


def rss_bytes() -> int:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def malloc_in_use_fn() -> Callable[[], int] | None:
    """A function returning glibc's bytes in use (heap chunks + mmapped chunks), or None off glibc."""
    try:
        fn = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2

    def in_use() -> int:
        info = fn()
        return int(info.uordblks + info.hblkhd)

    return in_use


def peak_in_use(in_use: Callable[[], int]) -> Any:
    """A ``TorchDispatchMode``; ``with tracker: ...`` then ``tracker.peak`` is the highest ``in_use()``
    seen after any aten op inside the block."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class PeakInUse(TorchDispatchMode):
        peak = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            self.peak = max(self.peak, in_use())
            return out

    return PeakInUse()


_PEAK: dict[tuple[str, str, int], float] = {}


def matmul_peak_flops(device: str = "cpu", dtype: str = "fp32", size: int = 1024, repeats: int = 10) -> float:
    """This machine's measured dense matmul rate in FLOP/s: the best of ``repeats`` timed ``size x size``
    matmuls (after a warm-up), at the current torch thread count, in ``dtype`` (fp32 or bf16). The denominator
    of model FLOPs utilisation (MFU) when no vendor peak is given; measured once per process and setting."""
    import time

    import torch

    key = (device, dtype, torch.get_num_threads())
    if key in _PEAK:
        return _PEAK[key]
    dt = torch.bfloat16 if dtype == "bf16" else torch.float16 if dtype == "fp16" else torch.float32
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device=device, dtype=dt)
    b = torch.randn(size, size, generator=gen).to(device=device, dtype=dt)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    a @ b
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - start)
    _PEAK[key] = 2 * size**3 / best
    return _PEAK[key]
