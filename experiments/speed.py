"""Process-wide speed settings for training processes (docs/performance.md).

glibc's malloc serves every allocation of 32 MiB or more (and, once its dynamic threshold has
moved, many smaller ones) with a fresh ``mmap`` and returns it with ``munmap`` when freed. A
training step allocates and frees the same large activation tensors every step, so each of them
costs page faults on first touch, every step: memory-bound CNN layers (DyClotNet's) spend most
of their time there. :func:`tune_allocator` makes malloc keep and reuse that memory instead.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from itertools import chain

import torch
from torch import nn

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt parameters, <malloc.h>
TRIM_THRESHOLD = 2**31 - 1  # (int max, 2 GiB) practically never give freed heap memory back to the OS
ENV_SWITCH = "DYCLOT_TUNE_ALLOCATOR"  # "0" disables the tuning (for side-by-side benchmarks)
_applied: bool | None = None


def tune_allocator() -> bool:
    """Stop glibc malloc from mmapping large blocks and from trimming the heap; True if applied.

    Idempotent and process-wide; a no-op returning False where glibc is absent (macOS, Windows,
    musl) or when ``$DYCLOT_TUNE_ALLOCATOR`` is ``0``. Trade-off: memory freed by the process
    stays in its heap (RSS does not shrink back after a peak); it is reused by later allocations.
    """
    global _applied
    if _applied is None:
        _applied = os.environ.get(ENV_SWITCH, "1") != "0" and _mallopt()
    return _applied


def _mallopt() -> bool:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    if not hasattr(libc, "gnu_get_libc_version"):  # mallopt exists elsewhere with other meanings
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))  # 1 on success


def to_memory_format(model: nn.Module, memory_format: torch.memory_format) -> nn.Module:
    """Put the model's 4-D parameters and buffers (conv weights) in ``memory_format``, in place.

    ``nn.Module.to(memory_format=torch.channels_last)`` converts 5-D tensors too and fails on them
    ("required rank 4 tensor to use channels_last format"); DynamicConv keeps its K kernels in one
    5-D weight. Tensors of other ranks are left as they are; values never change.
    """
    with torch.no_grad():
        for tensor in chain(model.parameters(), model.buffers()):
            if tensor.dim() == 4:
                tensor.data = tensor.data.contiguous(memory_format=memory_format)
    return model
