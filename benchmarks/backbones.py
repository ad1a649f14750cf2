"""Wall-time, peak-memory and step-latency benchmark of the three backbones, on CPU in float32.

The models are :class:`ssmforecast.nn.Backbone` with d_input = 1, d_model = 128, n_layers = 4 and
the default layer settings: ``layer="s4"`` (DPLR-LegS, d_state 64, bilinear), ``"s4d"`` (S4D-Lin,
d_state 64, ZOH) and ``"mamba"`` (d_state 16, expand 2, chunked scan); no feed-forward, no dropout,
no output head. What is measured:

1. Forward (under ``torch.no_grad``) and forward + backward (``torch.autograd.grad`` of
   ``output.square().mean()`` w.r.t. all parameters) of a batch of 32 series of length
   L ∈ {336, 1024, 4096} with ``dt=None``: median wall time of one call over R repeats, and peak
   memory of the call.
2. Streaming latency: ``Backbone.step`` on batch 1 under ``torch.inference_mode``, the time of each
   single step (one new observation through all 4 blocks), median over 1,000 consecutive steps of a
   stream, measured after 1,000 prior steps and after 100,000 prior steps (10,000 with ``--quick``);
   the prior steps are actually run, from ``allocate_state``, on a seeded N(0, 1) input stream. The
   two streams (states) are advanced to their histories first, then timed in one window, their steps
   alternating, so that both medians see the same machine (a shared CPU's load drifts within a
   minute). The ratio of the two medians should be ≈ 1 (step cost independent of history).
3. The parameter count of each backbone.

Every case seeds torch itself (model, then input), so it does not depend on which other cases run.
Forward cases use :mod:`math_core`'s measurement (forked child per case for a fresh heap, a warm-up
call at L = 64, a first call at L whose peak memory is read as VmHWM − VmRSS from Linux ``/proc``,
then R timed repeats, with fewer repeats for slow calls: see the table header). A larger L is
skipped, not run, when its time or memory extrapolated linearly in L from the previous L of the same
case would exceed ``SKIP_TIME_S`` per call or ``SKIP_MEM_GIB`` (the machine has 24 GB shared with
other processes). The step measurements also run in a forked child, one per backbone.

Run (from the repository root)::

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/backbones.py [--quick] [--repeats R] [--only {forward,step}]
        [--prior-steps N] [--compile-step] [--out FILE.md]

``--quick`` uses R = 3, drops L = 4096 and takes 10,000 prior steps instead of 100,000;
``--prior-steps N`` overrides the long-history point; ``--only step`` runs only the step latencies
(and parameter counts), ``--only forward`` only the forward cases; ``--compile-step`` times the step
after the opt-in :meth:`Backbone.compile_step <ssmforecast.nn.Backbone.compile_step>` (its first
call, the compile, is reported in the footnotes) instead of the default eager step. The only output is one Markdown table with a
short header (command, torch version, thread count) and footnotes; ``--out`` also writes it to a
file. The default run is dominated by the 3 × 101,000 single steps (see the footnotes for timings).
"""

from __future__ import annotations

import argparse
import math
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

# benchmark the checkout this script lives in, installed or not; reuse math_core's measurement
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from math_core import (  # noqa: E402
    DTYPE,
    SEED,
    Case,
    _fmt_ms,
    mem_footnote,
    report_header,
    run_case,
    sync,
    use_device,
)

from ssmforecast.nn import Backbone  # noqa: E402

D_INPUT = 1
D_MODEL = 128
N_LAYERS = 4
BATCH = 32
LENGTHS = (336, 1024, 4096)
BACKBONES = (("S4", "s4"), ("S4D", "s4d"), ("Mamba", "mamba"))
STEP_WINDOW = 1_000  # steps timed at each history point
SHORT_PRIOR = 1_000
LONG_PRIOR = 100_000
LONG_PRIOR_QUICK = 10_000
# run-time / memory guard for the forward cases (linear extrapolation from the previous L)
SKIP_TIME_S = 60.0
SKIP_MEM_GIB = 12.0
FORWARD_TIMEOUT_S = 600.0
STEP_TIMEOUT_S = 7_200.0


def build_model(layer: str) -> Backbone:
    """The benchmarked backbone, seeded (same weights in every case)."""
    torch.manual_seed(SEED)
    return Backbone(D_INPUT, D_MODEL, N_LAYERS, layer=layer).to(DTYPE)


# ---------------------------------------------------------------------------------------------
# Forward / forward + backward cases (math_core.Case: setup(L) → the call to time)
# ---------------------------------------------------------------------------------------------


def _forward_setup(layer: str, backward: bool):
    def setup(L: int):
        model = build_model(layer)
        u = torch.randn(BATCH, L, D_INPUT, dtype=DTYPE)  # (batch, L, d_input), after the model's draws
        if not backward:

            def call():
                with torch.no_grad():
                    return model(u)  # (batch, L, d_model)

            return call
        params = [p for p in model.parameters() if p.requires_grad]
        return lambda: torch.autograd.grad(model(u).square().mean(), params)

    return setup


def build_forward_cases(quick: bool) -> list[Case]:
    lengths = LENGTHS[:-1] if quick else LENGTHS
    return [
        Case(name, mode, L, _forward_setup(layer, backward=mode == "fwd+bwd"))
        for name, layer in BACKBONES
        for mode in ("forward", "fwd+bwd")
        for L in lengths
    ]


def run_forward(cases: list[Case], repeats: int) -> list[dict]:
    """Measure in order; skip an L whose linear extrapolation from the previous L is too slow or too big."""
    results = []
    prev: dict[tuple[str, str], tuple[int, float, float | None]] = {}  # key → (L, time or estimate, MiB)
    for case in cases:
        key = (case.family, case.variant)
        if key in prev:
            L0, t0, m0 = prev[key]
            t_est = t0 * case.L / L0
            m_est = None if m0 is None else m0 * case.L / L0
            reason = None
            if t_est > SKIP_TIME_S:
                reason = f"est. {t_est:.0f} s/call > {SKIP_TIME_S:g} s"
            elif m_est is not None and m_est / 1024 > SKIP_MEM_GIB:
                reason = f"est. {m_est / 1024:.1f} GiB > {SKIP_MEM_GIB:g} GiB"
            if reason is not None:
                results.append({"skipped": reason})
                prev[key] = (case.L, t_est, m_est)
                continue
        result = run_case(case, repeats, timeout=FORWARD_TIMEOUT_S)
        results.append(result)
        if "time" in result:
            prev[key] = (case.L, result["time"], result["mem"])
        else:  # failed: do not try a larger L
            prev[key] = (case.L, math.inf, None)
    return results


# ---------------------------------------------------------------------------------------------
# Step latency and parameter count (one forked child per backbone)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepCase:
    name: str
    layer: str
    long_prior: int
    compiled: bool = False


def _time_streams(model: Backbone, stream: torch.Tensor, starts: tuple[int, ...], n: int, states: list):
    """Advance one stream per state by n steps, stream i through stream[starts[i] … starts[i]+n−1],
    their steps alternating, timing each; → (median seconds per stream, states)."""
    times = [[] for _ in starts]
    for j in range(n):
        for i, start in enumerate(starts):
            t0 = time.perf_counter()
            _, states[i] = model.step(stream[start + j], states[i])  # (1, d_model)
            sync()
            times[i].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times], states


def _measure_steps(case: StepCase, repeats: int, memory: bool) -> dict:
    """Parameter count; median step time after SHORT_PRIOR and after case.long_prior prior steps
    (two streams of the same model, timed in one window).

    ``repeats`` and ``memory`` are unused (the signature of math_core's measure functions).
    """
    model = build_model(case.layer)
    if case.compiled:
        model.compile_step()
    n_params = sum(p.numel() for p in model.parameters())
    total = case.long_prior + STEP_WINDOW
    stream = torch.randn(total, 1, D_INPUT, dtype=DTYPE)  # stream[k]: observation k, (batch 1, d_input)
    t_start = time.perf_counter()
    device = torch.get_default_device()
    torch.set_default_device(None)  # the steps run without use_device's per-call TorchFunctionMode (CUDA)
    try:
        with torch.inference_mode():
            short, long = model.allocate_state(1), model.allocate_state(1)
            _, long = model.step(stream[0], long)  # the compile, with --compile-step
            t_first = time.perf_counter() - t_start
            for k in range(1, case.long_prior):
                _, long = model.step(stream[k], long)
            for k in range(SHORT_PRIOR):
                _, short = model.step(stream[k], short)
            (t_short, t_long), _ = _time_streams(model, stream, (SHORT_PRIOR, case.long_prior), STEP_WINDOW, [short, long])
    finally:
        torch.set_default_device(None if device.type == "cpu" else device)
    wall = time.perf_counter() - t_start
    return {"params": n_params, "short": t_short, "long": t_long, "wall": wall, "first": t_first}


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def render(
    cases: list[Case], results: list[dict], steps: list[dict], repeats: int, long_prior: int, command: str, total_s: float
) -> str:
    """The Markdown report: header lines, one table, footnotes."""
    header = ["Backbone", "Params", "Case", "L / history", "Median (ms)", "Growth exp. / ratio", "Peak mem (MiB)", "Repeats"]
    rows = []
    for (name, layer), step in zip(BACKBONES, steps):
        n_params = step["params"] if "params" in step else sum(p.numel() for p in build_model(layer).parameters())
        params = f"{n_params:,}"
        first = True
        prev: dict[str, tuple[int, float]] = {}
        for case, r in zip(cases, results):
            if case.family != name:
                continue
            cells = [name if first else "", params if first else "", case.variant, f"{case.L:,}"]
            first = False
            if "time" not in r:
                status = f"skipped ({r['skipped']})" if "skipped" in r else f"failed ({r.get('error', '?')})"
                rows.append(cells + [status, "—", "—", "0"])
                prev.pop(case.variant, None)
                continue
            t = r["time"]
            growth = "—"
            if case.variant in prev:
                L0, t0 = prev[case.variant]
                growth = f"{math.log(t / t0) / math.log(case.L / L0):.2f}"
            prev[case.variant] = (case.L, t)
            mem = "n/a" if r["mem"] is None else f"{r['mem']:,.1f}"
            reps = "1†" if r["single"] else f"{r['repeats']}" + ("*" if r["repeats"] < repeats else "")
            rows.append(cells + [_fmt_ms(t), growth, mem, reps])
        step_cells = [name if first else "", params if first else ""]
        step_cells.append("step (batch 1, compiled)" if step.get("compiled") else "step (batch 1)")
        if step.get("skipped"):  # --only forward
            continue
        if "short" not in step:
            rows.append(step_cells + ["—", f"failed ({step.get('error', '?')})", "—", "—", "0"])
            continue
        window = f"{STEP_WINDOW:,} steps"
        rows.append(step_cells + [f"after {SHORT_PRIOR:,}", _fmt_ms(step["short"]), "—", "—", window])
        ratio = f"{step['long'] / step['short']:.2f}×"
        rows.append(["", "", step_cells[2], f"after {long_prior:,}", _fmt_ms(step["long"]), ratio, "—", window])

    step_wall = ", ".join(
        f"{name} {s['wall']:.0f} s" + (f" (first call, the compile: {s['first']:.0f} s)" if s.get("compiled") else "")
        for (name, _), s in zip(BACKBONES, steps)
        if "wall" in s
    )
    lines = report_header(
        command,
        repeats,
        total_s,
        "the linear extrapolation from the previous L of the same case exceeds "
        f"{SKIP_TIME_S:g} s per call or {SKIP_MEM_GIB:g} GiB",
    ) + [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---", "---:", "---", "---:", "---:", "---:", "---:", "---:"]) + "|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += [
        "",
        f"Backbone(d_input={D_INPUT}, d_model={D_MODEL}, n_layers={N_LAYERS}, layer=…) with default layer "
        "settings (S4: d_state 64, bilinear; S4D: d_state 64, ZOH; Mamba: d_state 16, expand 2, scan_method 'auto'); "
        f"forward / fwd+bwd on u ({BATCH}, L, {D_INPUT}), dt=None; fwd+bwd = autograd.grad of "
        "output.square().mean() w.r.t. all parameters.  ",
        "Growth exp. = log(t/t_prev) / log(L/L_prev) against the previous L of the same case (1 = linear). "
        f"Step rows: median time of one `Backbone.step` (batch 1, inference_mode"
        + (", after `Backbone.compile_step()`" if any(s.get("compiled") for s in steps) else "")
        + f") over {STEP_WINDOW:,} "
        "consecutive steps of a stream after the given number of prior steps (all actually run), the two "
        "streams timed in one window, steps alternating; ratio = "
        f"t(after {long_prior:,}) / t(after {SHORT_PRIOR:,}). Wall time of the step runs: {step_wall}.  ",
        mem_footnote("input excluded, output and temporaries (autograd graph and gradients included)"),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"R = 3, L = {LENGTHS[-1]} dropped, {LONG_PRIOR_QUICK:,} prior steps"
    )
    parser.add_argument("--repeats", type=int, default=None, help="repeats per case (default 5, 3 with --quick)")
    parser.add_argument(
        "--prior-steps",
        type=int,
        default=None,
        help=f"long-history point of the step latency (default {LONG_PRIOR:,}, {LONG_PRIOR_QUICK:,} with --quick)",
    )
    parser.add_argument(
        "--only", choices=("forward", "step"), default=None, help="run only the forward cases or only the step latencies"
    )
    parser.add_argument(
        "--compile-step", action="store_true", help="time the step after Backbone.compile_step() (opt-in, torch.compile)"
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the cases run (default cpu)")
    parser.add_argument("--out", type=Path, default=None, help="also write the report to this Markdown file")
    args = parser.parse_args(argv)
    repeats = args.repeats if args.repeats is not None else (3 if args.quick else 5)
    if repeats < 1:
        parser.error("--repeats must be >= 1")
    use_device(args.device)
    long_prior = args.prior_steps if args.prior_steps is not None else (LONG_PRIOR_QUICK if args.quick else LONG_PRIOR)
    if long_prior < SHORT_PRIOR + STEP_WINDOW:
        parser.error(f"--prior-steps must be >= {SHORT_PRIOR + STEP_WINDOW}")
    command = shlex.join(["python", "benchmarks/backbones.py", *(sys.argv[1:] if argv is None else argv)])

    start = time.perf_counter()
    cases = [] if args.only == "step" else build_forward_cases(args.quick)
    results = run_forward(cases, repeats)
    steps = [
        {"skipped": True}
        if args.only == "forward"
        else run_case(
            StepCase(name, layer, long_prior, args.compile_step), repeats, measure=_measure_steps, timeout=STEP_TIMEOUT_S
        )
        for name, layer in BACKBONES
    ]
    for step in steps:
        if "short" in step:
            step["compiled"] = args.compile_step
    text = render(cases, results, steps, repeats, long_prior, command, time.perf_counter() - start)
    print(text, end="")
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
