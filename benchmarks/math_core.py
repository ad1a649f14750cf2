"""Wall-time (and peak-memory) benchmark of the math core, on CPU in float32.

What is measured (median wall time of one call over R repeats, after warm-up calls):

1. S4D kernel: :func:`~ssmforecast.math.discretize.zoh_diag` + :func:`~ssmforecast.math.kernels.vandermonde_kernel`
   (``conj_pairs=True``), S4D-Lin modes, H = 64 channels, N = 64 modes, per-channel Δ.
2. S4 kernel: :func:`~ssmforecast.math.kernels.dplr_kernel` (bilinear, ``conj_pairs=True``) of DPLR-LegS
   of state size 2·64 halved to its 64 modes with Im Λ > 0, H = 64, per-channel Δ; once with
   ``C_is_truncated=True`` (Cauchy + Woodbury + iFFT only) and once including C̃ = C(I − Ā^L).
3. FFT convolution: :func:`~ssmforecast.math.conv.fft_conv` of u (8, 64, L) with K̄ (64, L).

   Each of 1–3 also forward + backward: gradients of (out·g).sum() (g fixed) w.r.t. every input
   (Λ, B, C, Δ, and P for S4; u and K̄ for the convolution), as in training.
4. Scans x_k = a_k ⊙ x_{k−1} + b_k on (8, 64, L, 16), a = exp(Δλ) with λ < 0 per (channel, state) and
   Δ per (batch, channel, step): :func:`~ssmforecast.math.scan.linear_recurrence` (chunked, T = 16)
   against :func:`~ssmforecast.math.scan.linear_recurrence_seq` (Python loop), forward only and
   forward + backward (gradients of (x·g).sum() w.r.t. a and b, g fixed).
5. S4D with a step per sample: :func:`~ssmforecast.math.scan.diagonal_scan` (ZOH) of u (8, 64, L),
   Δ (8, 64, L) and S4D-Lin's 32 modes (the layer's default d_state 64), forward + backward
   (gradients w.r.t. u, Δ, Λ, B, C): the fused C++ scan against the reference (``discretize_diag``
   over the whole sequence + :func:`~ssmforecast.math.scan.ssm_scan` under autograd).

Δ is log-uniform in [1e-3, 1e-1] everywhere; every case seeds torch itself, so its inputs do not
depend on which other cases run. Each case runs in a forked child (fresh heap): a warm-up call at
L = 64 (lazily loaded code), a first call at L (the warm-up of the repeats, and the call whose peak
memory is read), then R timed repeats; fast calls are looped so that one repeat lasts at least
``MIN_REPEAT_S``, and the time reported is per call. To keep the default run within a few minutes
on 2 cores, slow calls get fewer repeats and a case is not run at a larger L once a call took over
``SKIP_AFTER_S`` (see the constants; the table header states the rule). The growth exponent of a row
is log(t / t_prev) / log(L / L_prev) against the previous L of the same case (1 = linear in L).

Peak memory is the growth of the resident set (VmHWM − VmRSS, Linux ``/proc``) during the first call
at L: inputs excluded, the output and every temporary (autograd graph included) counted. Where fork
or ``/proc/self/clear_refs`` is unavailable the cases run in this process and the column reads "n/a".

Run (from the repository root; ``make bench`` runs the default)::

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/math_core.py [--quick] [--repeats R] [--cases PATTERN ...] [--out FILE.md]

``--quick`` uses R = 3 and drops the largest L of each family. ``--cases`` keeps only the cases whose
"family: variant" contains one of the patterns (case-insensitive), e.g. ``--cases "fwd+bwd"`` or
``--cases "S4 kernel" "FFT conv"``. The only output is one Markdown
table with a short header (command, torch version, thread count) and footnotes; ``--out`` also
writes it to a file.
"""

from __future__ import annotations

import argparse
import gc
import math
import multiprocessing
import platform
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

# benchmark the checkout this script lives in, installed or not
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ssmforecast.math.conv import fft_conv  # noqa: E402
from ssmforecast.math.discretize import zoh_diag  # noqa: E402
from ssmforecast.math.hippo import dplr_legs, s4d_lin  # noqa: E402
from ssmforecast.math.kernels import dplr_kernel, vandermonde_kernel  # noqa: E402
from ssmforecast.math.scan import diagonal_scan, linear_recurrence, linear_recurrence_seq  # noqa: E402

DTYPE = torch.float32
CDTYPE = torch.complex64
SEED = 0
H = 64  # channels
N_MODES = 64  # complex modes (conjugate pairs) of the S4D / S4 kernels
BATCH = 8
N_SCAN = 16  # state size of the scans
CHUNK = 16  # chunk length T of linear_recurrence
DT_MIN, DT_MAX = 1e-3, 1e-1
KERNEL_LENGTHS = (1024, 4096, 16384)
SCAN_LENGTHS = (256, 1024, 4096)
WARMUP_L = 64  # length of the warm-up call before a memory measurement
MIN_REPEAT_S = 0.05  # a timed repeat loops a fast call until it lasts at least this long
# run-time budget (the default run should stay within a few minutes on 2 cores):
SLOW_CALL_S = 1.5  # calls slower than this get at most SLOW_REPEATS repeats
SLOW_REPEATS = 3
SINGLE_CALL_S = 10.0  # calls slower than this are timed once (that call is the reported time)
SKIP_AFTER_S = 20.0  # a larger L is skipped when the previous L of the same case took longer
CASE_TIMEOUT_S = 600.0
DEVICE = "cpu"  # set by --device (use_device); on "cuda" every case runs in this process


def use_device(name: str) -> None:
    """Run every case on ``name`` ("cpu" or "cuda"): tensors are created there (torch's default
    device), calls are timed up to a ``torch.cuda.synchronize()``, and on CUDA the memory column is
    the growth of ``torch.cuda.max_memory_allocated`` during the first call at L."""
    global DEVICE
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU is available")
    DEVICE = name
    # Not on the CPU, which is torch's default anyway: set_default_device installs a Python
    # TorchFunctionMode that intercepts every torch call, which made the eager streaming step
    # ~2× slower (S4, 4 layers: 1.8 against 0.7–1.0 ms) and taxed every per-step scan loop.
    torch.set_default_device(None if name == "cpu" else name)


def sync() -> None:
    """Wait for the device's queued work (a no-op on the CPU), so that a host clock reads its end."""
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def device_label() -> str:
    return "CPU" if DEVICE == "cpu" else f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"


def mem_footnote(what: str) -> str:
    """The footnote that says what the peak-memory column counts."""
    if DEVICE == "cuda":
        return (
            "Peak mem = growth of torch.cuda.max_memory_allocated during the first call at L (all cases in one "
            f"process), after a warm-up call at L = {WARMUP_L}: {what} counted."
        )
    return (
        "Peak mem = growth of the resident set (VmHWM − VmRSS) during the first call at L, in a forked "
        f"child per case, after a warm-up call at L = {WARMUP_L}: {what} counted."
    )


# ---------------------------------------------------------------------------------------------
# Cases: each builds its (seeded) inputs for a length L and returns the call to time
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    family: str
    variant: str
    L: int
    setup: Callable[[int], Callable[[], object]]


def _log_uniform_dt(*shape: int) -> torch.Tensor:
    """Δ log-uniform in [DT_MIN, DT_MAX]; → shape."""
    lo, hi = math.log(DT_MIN), math.log(DT_MAX)
    return torch.exp(lo + (hi - lo) * torch.rand(*shape, dtype=DTYPE))


def _with_backward(fn: Callable[..., torch.Tensor], inputs: tuple[torch.Tensor, ...], out_shape) -> Callable[[], object]:
    """The call fn(*inputs) → out, or with a backward: gradients of (out·g).sum() w.r.t. every input."""
    if out_shape is None:
        return lambda: fn(*inputs)
    g = torch.randn(*out_shape, dtype=DTYPE)  # fixed output cotangent
    for x in inputs:
        x.requires_grad_(True)
    return lambda: torch.autograd.grad((fn(*inputs) * g).sum(), inputs)


def _s4d_setup(backward: bool) -> Callable[[int], Callable[[], object]]:
    def setup(L: int) -> Callable[[], object]:
        torch.manual_seed(SEED)
        Lambda, B = s4d_lin(N_MODES, dtype=DTYPE)  # (N,), (N,) complex
        Lambda = Lambda.expand(H, N_MODES).clone()  # (H, N)
        B = B.expand(H, N_MODES).clone()  # (H, N)
        C = torch.randn(H, N_MODES, dtype=CDTYPE)  # (H, N)
        dt = _log_uniform_dt(H)  # (H,)

        def call(Lambda, B, C, dt):
            dA, dB = zoh_diag(Lambda, B, dt)  # (H, N), (H, N)
            return vandermonde_kernel(dA, dB, C, L, conj_pairs=True)  # (H, L)

        return _with_backward(call, (Lambda, B, C, dt), (H, L) if backward else None)

    return setup


def _s4_setup(C_is_truncated: bool, backward: bool = False) -> Callable[[int], Callable[[], object]]:
    def setup(L: int) -> Callable[[], object]:
        torch.manual_seed(SEED)
        Lambda, P, B, _ = dplr_legs(2 * N_MODES, dtype=DTYPE)  # (2N,), (1, 2N), (2N,)
        # the first N modes have Im Λ > 0; the other N are their conjugates (conj_pairs=True)
        Lambda = Lambda[:N_MODES].expand(H, N_MODES).clone()  # (H, N)
        P = P[:, :N_MODES].expand(H, 1, N_MODES).clone()  # (H, 1, N)
        B = B[:N_MODES].expand(H, N_MODES).clone()  # (H, N)
        C = torch.randn(H, N_MODES, dtype=CDTYPE)  # (H, N)
        dt = _log_uniform_dt(H)  # (H,)

        def call(Lambda, P, B, C, dt):  # A = diag(Λ) − Pᵀ conj(P): Q = P for LegS
            return dplr_kernel(
                Lambda, P, P, B, C, dt, L, method="bilinear", conj_pairs=True, C_is_truncated=C_is_truncated
            )  # (H, L)

        return _with_backward(call, (Lambda, P, B, C, dt), (H, L) if backward else None)

    return setup


def _conv_setup(backward: bool) -> Callable[[int], Callable[[], object]]:
    def setup(L: int) -> Callable[[], object]:
        torch.manual_seed(SEED)
        u = torch.randn(BATCH, H, L, dtype=DTYPE)  # (B, H, L)
        K = torch.randn(H, L, dtype=DTYPE) / math.sqrt(L)  # (H, L)
        return _with_backward(fft_conv, (u, K), (BATCH, H, L) if backward else None)

    return setup


def _scan_setup(sequential: bool, backward: bool) -> Callable[[int], Callable[[], object]]:
    scan = linear_recurrence_seq if sequential else (lambda a, b: linear_recurrence(a, b, chunk_size=CHUNK))

    def setup(L: int) -> Callable[[], object]:
        torch.manual_seed(SEED)
        lam = -torch.exp(torch.randn(H, 1, N_SCAN, dtype=DTYPE))  # (H, 1, N) negative
        dt = _log_uniform_dt(BATCH, H, L, 1)  # (B, H, L, 1)
        a = torch.exp(dt * lam)  # (B, H, L, N) in (0, 1)
        b = torch.randn(BATCH, H, L, N_SCAN, dtype=DTYPE)  # (B, H, L, N)
        if not backward:
            return lambda: scan(a, b)
        g = torch.randn(BATCH, H, L, N_SCAN, dtype=DTYPE)  # (B, H, L, N)
        a.requires_grad_(True)
        b.requires_grad_(True)
        return lambda: torch.autograd.grad((scan(a, b) * g).sum(), (a, b))

    return setup


def _diagonal_scan_setup(inner: str) -> Callable[[int], Callable[[], object]]:
    def setup(L: int) -> Callable[[], object]:
        torch.manual_seed(SEED)
        Lambda, B = s4d_lin(N_MODES // 2, dtype=DTYPE)  # (n,), (n,) complex
        Lambda, B = Lambda.expand(H, -1).clone(), B.expand(H, -1).clone()  # (H, n)
        C = torch.randn(H, N_MODES // 2, dtype=CDTYPE)  # (H, n)
        u = torch.randn(BATCH, H, L, dtype=DTYPE)  # (B, H, L)
        delta = _log_uniform_dt(BATCH, H, L)  # (B, H, L): a step per sample
        call = lambda *args: diagonal_scan(*args, inner=inner)[0]  # noqa: E731  (B, H, L)
        return _with_backward(call, (u, delta, Lambda, B, C), (BATCH, H, L))

    return setup


def build_cases(quick: bool, patterns: list[str] | None = None) -> list[Case]:
    """The cases in run order; with ``patterns``, only those whose "family: variant" contains one
    of them (case-insensitive)."""
    kernel_L = KERNEL_LENGTHS[:-1] if quick else KERNEL_LENGTHS
    scan_L = SCAN_LENGTHS[:-1] if quick else SCAN_LENGTHS
    series = [
        ("S4D kernel", "zoh_diag + vandermonde", kernel_L, _s4d_setup(backward=False)),
        ("S4D kernel", "zoh_diag + vandermonde, fwd+bwd", kernel_L, _s4d_setup(backward=True)),
        ("S4 kernel", "dplr, C̃ given", kernel_L, _s4_setup(C_is_truncated=True)),
        ("S4 kernel", "dplr, C̃ given, fwd+bwd", kernel_L, _s4_setup(C_is_truncated=True, backward=True)),
        ("S4 kernel", "dplr + C̃ = C(I−Ā^L)", kernel_L, _s4_setup(C_is_truncated=False)),
        ("S4 kernel", "dplr + C̃ = C(I−Ā^L), fwd+bwd", kernel_L, _s4_setup(C_is_truncated=False, backward=True)),
        ("FFT conv", "fft_conv", kernel_L, _conv_setup(backward=False)),
        ("FFT conv", "fft_conv, fwd+bwd", kernel_L, _conv_setup(backward=True)),
        ("Scan", "fwd, chunked", scan_L, _scan_setup(sequential=False, backward=False)),
        ("Scan", "fwd, sequential", scan_L, _scan_setup(sequential=True, backward=False)),
        ("Scan", "fwd+bwd, chunked", scan_L, _scan_setup(sequential=False, backward=True)),
        ("Scan", "fwd+bwd, sequential", scan_L, _scan_setup(sequential=True, backward=True)),
        ("S4D irregular scan", "diagonal_scan fused, fwd+bwd", scan_L, _diagonal_scan_setup("fused")),
        ("S4D irregular scan", "diagonal_scan reference, fwd+bwd", scan_L, _diagonal_scan_setup("reference")),
    ]
    if patterns is not None:
        wanted = [p.lower() for p in patterns]
        series = [s for s in series if any(p in f"{s[0]}: {s[1]}".lower() for p in wanted)]
    return [Case(family, variant, L, setup) for family, variant, lengths, setup in series for L in lengths]


# ---------------------------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------------------------


def _proc_status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _start_peak() -> int | None:
    """Reset VmHWM to the current VmRSS (Linux) and return VmRSS in KiB; None where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _proc_status_kib("VmRSS")
    except (OSError, KeyError, ValueError):
        return None


def _measure(case: Case, repeats: int, memory: bool) -> dict:
    """Time one case: warm-up at L = WARMUP_L, a first call at L (the peak-memory call), then repeats.

    The first call at L is the warm-up of the timed repeats. Calls slower than SLOW_CALL_S get at
    most SLOW_REPEATS repeats; calls slower than SINGLE_CALL_S get none, and the first call is the
    time reported.
    """
    case.setup(WARMUP_L)()  # load lazily initialised code paths
    fn = case.setup(case.L)
    gc.collect()
    sync()
    if DEVICE == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 1024 if memory else None  # KiB
    else:
        base = _start_peak() if memory else None
    t0 = time.perf_counter()
    out = fn()
    sync()
    t_first = time.perf_counter() - t0
    if base is None:
        mem = None
    elif DEVICE == "cuda":
        mem = (torch.cuda.max_memory_allocated() / 1024 - base) / 1024  # MiB
    else:
        mem = (_proc_status_kib("VmHWM") - base) / 1024  # MiB
    del out
    if t_first > SINGLE_CALL_S:
        return {"time": t_first, "repeats": 1, "mem": mem, "single": True}
    if t_first > SLOW_CALL_S:
        repeats = min(repeats, SLOW_REPEATS)
    inner = max(1, math.ceil(MIN_REPEAT_S / max(t_first, 1e-9)))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        sync()
        times.append((time.perf_counter() - t0) / inner)
    return {"time": statistics.median(times), "repeats": repeats, "mem": mem, "single": False}


def _child(case: Case, repeats: int, conn, measure: Callable[..., dict] = _measure) -> None:
    try:
        conn.send(measure(case, repeats, memory=True))
    except Exception as exc:  # noqa: BLE001 - reported as a failed row
        conn.send({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        conn.close()


def report_header(command: str, repeats: int, total_s: float, skip_rule: str) -> list[str]:
    """The lines above a benchmark table: command, versions, threads, repeats and the time budget."""
    return [
        f"Command: `{command}`  ",
        f"torch {torch.__version__}, torch.get_num_threads() = {torch.get_num_threads()}, "
        f"Python {platform.python_version()} ({platform.machine()}); {device_label()}, float32; seed {SEED}; "
        f"median of R = {repeats} repeats; total run {total_s:.0f} s.  ",
        f"Run-time budget: calls slower than {SLOW_CALL_S:g} s get at most {SLOW_REPEATS} repeats (*); "
        f"calls slower than {SINGLE_CALL_S:g} s are timed once, without a warm-up call at that L (1†); "
        f"an L is skipped when {skip_rule}.",
        "",
    ]


def run_case(
    case: Case, repeats: int, measure: Callable[..., dict] = _measure, timeout: float = CASE_TIMEOUT_S
) -> dict:
    """Measure a case in a forked child (fresh heap, so the peak-memory reading is its own);
    in this process, without memory, where fork is unavailable.

    ``measure(case, repeats, memory=...)`` returns the result dict (default :func:`_measure`);
    a child that has not answered after ``timeout`` seconds is killed.
    """
    if DEVICE != "cpu":  # CUDA does not survive a fork: measure here, memory from the allocator
        return measure(case, repeats, memory=True)
    if not sys.platform.startswith("linux"):
        return measure(case, repeats, memory=False)
    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(case, repeats, send, measure))
    proc.start()
    send.close()
    try:
        result = recv.recv() if recv.poll(timeout) else {"error": f"timeout after {timeout:g} s"}
    except EOFError:
        result = {"error": "child process died"}
    proc.join(5.0)
    if proc.is_alive():
        proc.kill()
        proc.join()
    return result


def run_all(cases: list[Case], repeats: int) -> list[dict]:
    """Measure the cases in order; skip an L whose previous L (same case) took over SKIP_AFTER_S per call."""
    results = []
    prev_time: dict[tuple[str, str], float] = {}
    for case in cases:
        key = (case.family, case.variant)
        if prev_time.get(key, 0.0) > SKIP_AFTER_S:
            results.append({"skipped": True})
            prev_time[key] = math.inf
            continue
        result = run_case(case, repeats)
        results.append(result)
        prev_time[key] = result.get("time", math.inf)
    return results


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def _fmt_ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.3g}" if ms < 1000 else f"{ms:,.0f}"


def render(cases: list[Case], results: list[dict], repeats: int, command: str, total_s: float) -> str:
    """The Markdown report: header lines, one table, footnotes."""
    times = {(c.family, c.variant, c.L): r["time"] for c, r in zip(cases, results) if "time" in r}
    rows = []
    prev: dict[tuple[str, str], tuple[int, float]] = {}
    for case, r in zip(cases, results):
        key = (case.family, case.variant)
        cells = [case.family, case.variant, str(case.L)]
        if "time" not in r:
            status = "skipped" if r.get("skipped") else f"failed ({r.get('error', '?')})"
            rows.append(cells + [status, "—", "—", "—", "0"])
            prev.pop(key, None)
            continue
        t = r["time"]
        growth = "—"
        if key in prev:
            L0, t0 = prev[key]
            growth = f"{math.log(t / t0) / math.log(case.L / L0):.2f}"
        prev[key] = (case.L, t)
        ratio = "—"
        if case.family == "Scan" and case.variant.endswith("sequential"):
            t_chunked = times.get((case.family, case.variant.replace("sequential", "chunked"), case.L))
            if t_chunked is not None:
                ratio = f"{t / t_chunked:.1f}×"
        mem = "n/a" if r["mem"] is None else f"{r['mem']:.1f}"
        reps = "1†" if r["single"] else f"{r['repeats']}" + ("*" if r["repeats"] < repeats else "")
        rows.append(cells + [_fmt_ms(t), growth, ratio, mem, reps])

    header = ["Family", "Case", "L", "Median (ms)", "Growth exp.", "Seq/chunked", "Peak mem (MiB)", "Repeats"]
    lines = report_header(
        command, repeats, total_s, f"the previous L of the same case took over {SKIP_AFTER_S:g} s per call"
    ) + [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---", "---", "---:", "---:", "---:", "---:", "---:", "---:"]) + "|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += [
        "",
        f"Shapes: S4D/S4 kernels H = {H}, N = {N_MODES} conjugate-pair modes, per-channel Δ; FFT conv "
        f"u ({BATCH}, {H}, L), K̄ ({H}, L); scans a, b ({BATCH}, {H}, L, {N_SCAN}), chunk T = {CHUNK}; "
        f"S4D irregular scan u, Δ ({BATCH}, {H}, L), {N_MODES // 2} S4D-Lin modes, ZOH; "
        "fwd+bwd = gradients of (out·g).sum(), g fixed, w.r.t. every input (scans: a and b).  ",
        "Growth exp. = log(t/t_prev) / log(L/L_prev) against the previous L of the same case. "
        "Seq/chunked = t(linear_recurrence_seq) / t(linear_recurrence) at equal L and mode.  ",
        mem_footnote("inputs excluded, output and temporaries (autograd graph included)"),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="R = 3 and the largest L of each family dropped")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per case (default 5, 3 with --quick)")
    parser.add_argument(
        "--cases",
        nargs="+",
        default=None,
        metavar="PATTERN",
        help='run only the cases whose "family: variant" contains one of these (case-insensitive)',
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the cases run (default cpu)")
    parser.add_argument("--out", type=Path, default=None, help="also write the report to this Markdown file")
    args = parser.parse_args(argv)
    repeats = args.repeats if args.repeats is not None else (3 if args.quick else 5)
    if repeats < 1:
        parser.error("--repeats must be >= 1")
    use_device(args.device)
    cases = build_cases(args.quick, args.cases)
    if not cases:
        parser.error(f"--cases {' '.join(args.cases)} matches no case")
    command = shlex.join(["python", "benchmarks/math_core.py", *(sys.argv[1:] if argv is None else argv)])

    start = time.perf_counter()
    results = run_all(cases, repeats)
    text = render(cases, results, repeats, command, time.perf_counter() - start)
    print(text, end="")
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
