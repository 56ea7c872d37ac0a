"""glibc's malloc told to keep the memory a training step frees.

What it changes: two malloc parameters of the process that imports the
plugin, through glibc's `mallopt`: M_TRIM_THRESHOLD (hand the top of the heap
back to the kernel only beyond 2 GiB) and M_TOP_PAD (grow the heap 1 GiB at a time).
The process keeps its peak heap for its lifetime instead of returning it
between steps.

Why: torch 2.13's CPU allocator has no cache of its own: every tensor is a
malloc and a free. A training step allocates and frees the same large
activations again and again, and by default glibc returns the freed top of
the heap to the kernel and takes it back on the next step, where every
fresh page is a page fault. Measured (`scripts/bench_allocators.py`,
README "Benchmarks"): 10x fewer minor faults and a faster step at
bit-identical losses. M_MMAP_THRESHOLD is left alone: set above glibc's
32 MiB cap it is accepted and then serves every large block by mmap, the
opposite of the intent (27k instead of 3.6k faults per step of a 5,000-way
output layer).

Where not: outside glibc (no `mallopt`), when the user chose the allocator
(any MALLOC_*_ variable or GLIBC_TUNABLES set, or another allocator in
LD_PRELOAD), or with FAIRSEQ_OT_MALLOC=glibc (glibc's defaults, e.g. to
measure against them). Child processes that import the plugin (fairseq's
data-loader workers, torchrun's ranks) apply it themselves.

No longer needed when: torch caches CPU blocks itself (not in 2.13), or
these become glibc's defaults."""

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
# mallopt takes a C int: 2 GiB - 1 is the largest trim threshold it can set
SETTINGS = {M_TRIM_THRESHOLD: 2**31 - 1, M_TOP_PAD: 2**30}
OPT_OUT = "FAIRSEQ_OT_MALLOC"
USER_CHOICES = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_THRESHOLD_",
                "MALLOC_MMAP_MAX_", "MALLOC_ARENA_MAX", "GLIBC_TUNABLES")
applied = False  # whether install() changed the settings in this process


def user_chose_allocator(environ=os.environ):
    """Whether the environment asks for glibc's defaults or sets the allocator."""
    return (environ.get(OPT_OUT) == "glibc" or any(name in environ for name in USER_CHOICES)
            or "malloc" in environ.get("LD_PRELOAD", ""))


def install() -> None:
    """Apply SETTINGS with mallopt unless the user chose otherwise. Idempotent."""
    global applied
    if applied or user_chose_allocator():
        return
    libc_name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(libc_name) if libc_name else None
    if libc is None or not hasattr(libc, "mallopt") or not hasattr(libc, "gnu_get_libc_version"):
        return  # not glibc
    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    applied = all(libc.mallopt(option, value) == 1 for option, value in SETTINGS.items())
