"""Selective scan (Mamba's x_k = exp(Δ_k A) ⊙ x_{k−1} + Δ_k u_k B_k, y_k = C_k · x_k + D u_k): ours
against mambapy and a plain loop, on CPU in float32, one table.

Implementations (same inputs, same outputs y (batch, L, d_inner)):

- ``ours``: :func:`ssmforecast.math.scan.selective_scan` as it runs by default (``inner="auto"``: on
  the CPU the fused C++ scan, one loop per series and channel with the state in registers, the batch
  split over threads; on CUDA the compiled associative scan per block), hand-written backward;
- ``ours, block loop``: the same with ``inner="loop"``, the pure-PyTorch path (time blocks of tensor
  ops, each step one in-place update), the fallback where the C++ scan cannot be built;
- ``plain loop``: :func:`ssmforecast.math.scan.selective_scan_seq`, one step at a time under autograd;
- ``mambapy pscan``: ``mambapy.mamba.MambaBlock.selective_scan`` (PyPI ``mambapy``, pure PyTorch:
  materialises exp(ΔA) and ΔBu as (batch, L, d_inner, N) and runs its Blelloch ``pscan``);
- ``mambapy seq``: ``MambaBlock.selective_scan_seq`` (its loop over the materialised tensors).

Shapes: batch 8, d_inner 64, d_state 16, L ∈ {256, 1024, 4096, 16384}; Δ log-uniform in
[1e-3, 1e-1], A = −exp(N(0, 1)), u, B, C, D standard normal. "fwd" runs under ``torch.no_grad``,
"fwd+bwd" takes the gradients of (y·g).sum() (g fixed) w.r.t. u, Δ, A, B, C and D. Each case runs in
a forked child (:mod:`math_core`'s measurement: a warm-up call at L = 64, a first call at L whose
peak resident-memory growth is the memory column, then R timed repeats; medians). A larger L is
skipped once the previous L of the same case took over ``SKIP_AFTER_S`` per call, or when its
memory extrapolated linearly would pass ``SKIP_MEM_GIB``.

Run (from the repository root; ``pip install mambapy`` for its rows, else they read "not installed")::

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/selective_scan.py [--quick] [--repeats R] [--device cuda] [--out FILE.md]

``--quick`` drops L = 16384 and uses R = 3.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from math_core import DTYPE, SEED, Case, _fmt_ms, mem_footnote, report_header, run_case, use_device  # noqa: E402

from ssmforecast.math.scan import selective_scan, selective_scan_seq  # noqa: E402

BATCH, D_INNER, D_STATE = 8, 64, 16
LENGTHS = (256, 1024, 4096, 16384)
DT_MIN, DT_MAX = 1e-3, 1e-1
SKIP_AFTER_S = 30.0
SKIP_MEM_GIB = 8.0
IMPLS = ("ours", "ours, block loop", "plain loop", "mambapy pscan", "mambapy seq")


def _mambapy():
    try:
        from mambapy.mamba import MambaBlock
    except ImportError:
        return None
    return MambaBlock


def _impl(name: str) -> Callable[..., torch.Tensor]:
    """name → f(x, Δ, A, B, C, D) with x, Δ (batch, L, d_inner), B, C (batch, L, N) → y (batch, L, d_inner)."""
    if name == "ours":
        return lambda x, d, A, B, C, D: selective_scan(x.transpose(1, 2), d.transpose(1, 2), A, B, C, D)[0].transpose(1, 2)
    if name == "ours, block loop":
        return lambda x, d, A, B, C, D: selective_scan(x.transpose(1, 2), d.transpose(1, 2), A, B, C, D, inner="loop")[0].transpose(1, 2)
    if name == "plain loop":
        return lambda x, d, A, B, C, D: selective_scan_seq(x.transpose(1, 2), d.transpose(1, 2), A, B, C, D)[0].transpose(1, 2)
    block = _mambapy()
    if name == "mambapy pscan":
        return lambda x, d, A, B, C, D: block.selective_scan(None, x, d, A, B, C, D)
    this = SimpleNamespace(config=SimpleNamespace(d_inner=D_INNER, d_state=D_STATE))  # what the method reads
    return lambda x, d, A, B, C, D: block.selective_scan_seq(this, x, d, A, B, C, D)


def scan_inputs(L: int, device: str | None = None) -> tuple[torch.Tensor, ...]:
    """Seeded x, Δ (batch, L, d_inner), A (d_inner, N), B, C (batch, L, N), D (d_inner,); Δ log-uniform in [DT_MIN, DT_MAX]."""
    torch.manual_seed(SEED)
    lo, hi = math.log(DT_MIN), math.log(DT_MAX)
    x = torch.randn(BATCH, L, D_INNER, dtype=DTYPE, device=device)
    delta = torch.exp(lo + (hi - lo) * torch.rand(BATCH, L, D_INNER, dtype=DTYPE, device=device))
    A = -torch.exp(torch.randn(D_INNER, D_STATE, dtype=DTYPE, device=device))
    B = torch.randn(BATCH, L, D_STATE, dtype=DTYPE, device=device)
    C = torch.randn(BATCH, L, D_STATE, dtype=DTYPE, device=device)
    D = torch.randn(D_INNER, dtype=DTYPE, device=device)
    return x, delta, A, B, C, D


def _setup(name: str, backward: bool) -> Callable[[int], Callable[[], object]]:
    def setup(L: int) -> Callable[[], object]:
        inputs = scan_inputs(L)
        fn = _impl(name)
        if not backward:

            def forward():
                with torch.no_grad():
                    return fn(*inputs)

            return forward
        g = torch.randn(BATCH, L, D_INNER, dtype=DTYPE)
        for t in inputs:
            t.requires_grad_(True)
        return lambda: torch.autograd.grad((fn(*inputs) * g).sum(), inputs)

    return setup


def build_cases(quick: bool) -> list[Case]:
    lengths = LENGTHS[:-1] if quick else LENGTHS
    return [
        Case(mode, name, L, _setup(name, mode == "fwd+bwd"))
        for mode in ("fwd", "fwd+bwd")
        for name in IMPLS
        for L in lengths
    ]


def run_all(cases: list[Case], repeats: int) -> list[dict]:
    results, prev = [], {}
    have_mambapy = _mambapy() is not None
    for case in cases:
        key = (case.family, case.variant)
        if case.variant.startswith("mambapy") and not have_mambapy:
            results.append({"error": "not installed"})
            continue
        t_prev, mem_prev, L_prev = prev.get(key, (0.0, 0.0, 1))
        if t_prev > SKIP_AFTER_S or (mem_prev or 0.0) * case.L / L_prev > SKIP_MEM_GIB * 1024:
            results.append({"skipped": True})
            prev[key] = (math.inf, math.inf, case.L)
            continue
        result = run_case(case, repeats)
        results.append(result)
        prev[key] = (result.get("time", math.inf), result.get("mem", 0.0), case.L)
    return results


def render(cases: list[Case], results: list[dict], repeats: int, command: str, total_s: float) -> str:
    times = {(c.family, c.variant, c.L): r["time"] for c, r in zip(cases, results) if "time" in r}
    mems = {(c.family, c.variant, c.L): r.get("mem") for c, r in zip(cases, results) if "time" in r}
    rows, prev = [], {}
    for case, r in zip(cases, results):
        cells = [case.family, case.variant, str(case.L)]
        if "time" not in r:
            status = "skipped" if r.get("skipped") else r.get("error", "failed")
            rows.append(cells + [status, "—", "—", "—", "—"])
            continue
        t, key = r["time"], (case.family, case.variant)
        growth = "—"
        if key in prev:
            L0, t0 = prev[key]
            growth = f"{math.log(t / t0) / math.log(case.L / L0):.2f}"
        prev[key] = (case.L, t)
        t_ours = times.get((case.family, "ours", case.L))
        ratio = "—" if t_ours is None else f"{t / t_ours:.1f}×"
        m, m_ours = r.get("mem"), mems.get((case.family, "ours", case.L))
        mem = "n/a" if m is None else f"{m:.0f}"
        mem_ratio = "—" if m is None or not m_ours else f"{m / m_ours:.1f}×"
        rows.append(cells + [_fmt_ms(t), growth, ratio, mem, mem_ratio])
    header = ["Mode", "Implementation", "L", "Median (ms)", "Growth exp.", "Time / ours", "Peak mem (MiB)", "Mem / ours"]
    skip_rule = f"the previous L took over {SKIP_AFTER_S:g} s per call or its memory, extrapolated, passes {SKIP_MEM_GIB:g} GiB"
    lines = report_header(command, repeats, total_s, skip_rule) + [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---", "---", "---:", "---:", "---:", "---:", "---:", "---:"]) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += [
        "",
        f"Shapes: batch {BATCH}, d_inner {D_INNER}, d_state {D_STATE}; fwd under no_grad, fwd+bwd = gradients of "
        "(y·g).sum() w.r.t. u, Δ, A, B, C, D.  ",
        "Growth exp. = log(t/t_prev) / log(L/L_prev) against the previous L of the same row family; "
        "Time / ours and Mem / ours at equal mode and L.  ",
        mem_footnote("inputs excluded, output and temporaries (autograd graph included)"),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="R = 3, L = 16384 dropped")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per case (default 5, 3 with --quick)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the cases run (default cpu)")
    parser.add_argument("--out", type=Path, default=None, help="also write the report to this Markdown file")
    args = parser.parse_args(argv)
    repeats = args.repeats if args.repeats is not None else (3 if args.quick else 5)
    if repeats < 1:
        parser.error("--repeats must be >= 1")
    use_device(args.device)
    cases = build_cases(args.quick)
    command = shlex.join(["python", "benchmarks/selective_scan.py", *(sys.argv[1:] if argv is None else argv)])
    start = time.perf_counter()
    results = run_all(cases, repeats)
    text = render(cases, results, repeats, command, time.perf_counter() - start)
    print(text, end="")
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
