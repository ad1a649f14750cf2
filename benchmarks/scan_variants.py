"""Selective scan on a GPU by inner mode and block size, beside mambapy's pscan (forward + backward).

Which inner recurrence (``"chunked"``, ``"associative"``) and which block of T steps
:func:`ssmforecast.math.scan.selective_scan` should use on an accelerator: each (inner, T) is timed
on the shapes of ``benchmarks/selective_scan.py`` (batch 8, d_inner 64, d_state 16, float32), with
the first call (compilation, for the associative scan) reported apart, then mambapy's ``pscan``.
T = default is the block the library picks. One line per case, medians of 7 calls after 2 warm-ups,
peak memory from the CUDA allocator.

    python benchmarks/scan_variants.py [--device cuda]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from selective_scan import BATCH, D_INNER, scan_inputs  # noqa: E402

from ssmforecast.math.scan import selective_scan  # noqa: E402

LENGTHS = (1024, 4096, 16384)
BLOCKS = (None, 1024, 4096, 16384)


def _inputs(L: int, device: str) -> list[torch.Tensor]:
    """selective_scan.py's inputs in this library's layout: x, Δ (batch, H, L), A, B, C, D, all requiring grad."""
    x, delta, A, B, C, D = scan_inputs(L, device)
    return [t.requires_grad_(True) for t in (x.transpose(1, 2), delta.transpose(1, 2), A, B, C, D)]


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _median_ms(fn, device: str, repeats: int = 7) -> float:
    for _ in range(2):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def _peak_mib(device: str) -> float:
    return torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else float("nan")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda")
    device = parser.parse_args(argv).device
    try:
        from mambapy.mamba import MambaBlock
    except ImportError:
        MambaBlock = None
    for L in LENGTHS:
        ts = _inputs(L, device)
        g = torch.randn(BATCH, D_INNER, L, device=device)
        for inner in ("chunked", "associative"):
            for T in BLOCKS:
                if T is not None and T > L:
                    continue
                fn = lambda: torch.autograd.grad((selective_scan(*ts, block_size=T, inner=inner)[0] * g).sum(), ts)  # noqa: B023, E731
                start = time.perf_counter()
                fn()
                _sync(device)
                first = time.perf_counter() - start
                if device == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                ms = _median_ms(fn, device)
                print(f"L={L} inner={inner} T={T or 'default'}: {ms:.2f} ms (first call {first:.1f} s) peak {_peak_mib(device):.0f} MiB", flush=True)
        if MambaBlock is not None:  # mambapy's layout: (batch, L, d_inner)
            x, delta = ts[0].transpose(1, 2), ts[1].transpose(1, 2)
            fn = lambda: torch.autograd.grad((MambaBlock.selective_scan(None, x, delta, ts[2], ts[3], ts[4], ts[5]) * g.transpose(1, 2)).sum(), ts)  # noqa: B023, E731
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            print(f"L={L} mambapy pscan: {_median_ms(fn, device):.2f} ms peak {_peak_mib(device):.0f} MiB", flush=True)


if __name__ == "__main__":
    main()
