"""One intra-op thread for a stretch of small tensor calls (the selective scan's block loop, a
streaming step)."""

from __future__ import annotations

import contextlib

import torch


@contextlib.contextmanager
def one_intra_op_thread(enabled: bool = True):
    """``torch.set_num_threads(1)`` inside the block, the previous count restored after (about 1 µs).

    Small tensor calls split over two threads save nothing, yet every parallel region (MKL's GEMM,
    oneDNN's GELU, a TensorIterator loop) wakes the other thread and waits for it: ~10 µs each on
    an idle CPU, up to a scheduler time slice when other processes hold the cores, and with
    ``OMP_WAIT_POLICY=PASSIVE`` a sleep and a wake-up every time. Nothing is changed when not
    ``enabled`` or when torch already runs one thread. torch's thread count is process-wide: torch
    calls of another Python thread meanwhile also get one.
    """
    threads = torch.get_num_threads()
    if not enabled or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
