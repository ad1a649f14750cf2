"""The fused CPU selective scan and Mamba step of ``_fused_scan.cpp``: built on first use, called through ctypes.

torch's own extension builder (:func:`torch.utils.cpp_extension.load`) compiles the C++ file with the
system's compiler into its cache (``~/.cache/torch_extensions``, or ``TORCH_EXTENSIONS_DIR``), a few
seconds once per machine and version (the folder's name carries a hash of the source, the flags
and the CPU's features),
guarded by its lock file against concurrent builds. The library has no Python bindings: ctypes calls release the GIL for the
whole call, so Python threads run batch parts side by side on all cores.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import warnings
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("_fused_scan.cpp")
#: -march=native: built on the machine that runs it (vectorised over the state axis N);
#: -fopenmp-simd: the ``omp simd`` loop pragmas only, no OpenMP runtime.
FLAGS = ("-O3", "-march=native", "-fopenmp-simd", "-fno-trapping-math")
#: Set to "0" to keep the fused scan off (``inner="auto"`` then runs the block loop on the CPU).
ENV_SWITCH = "SSMFORECAST_FUSED_SCAN"

_SUFFIXES = {torch.float32: "f32", torch.float64: "f64"}  # entry points ssm_<name>_<suffix>
#: The dtypes the library is built for.
DTYPES = tuple(_SUFFIXES)


def _cpu_flags() -> str:
    """What ``-march=native`` compiles for: the CPU's feature flags (Linux), else the machine type."""
    try:
        with open("/proc/cpuinfo") as info:
            return next((line for line in info if line.startswith("flags")), platform.machine())
    except OSError:
        return platform.machine()


def _build_name() -> str:
    """The extension's name, with a hash of the source, the flags and the CPU's features: each
    version builds into a folder of its own, so a process never loads a library built from another
    version's source (the C signatures change with it), also when two versions run side by side,
    nor one built for another CPU (a home directory shared by several machines)."""
    key = SOURCE.read_bytes() + " ".join(FLAGS).encode() + _cpu_flags().encode()
    return f"ssmforecast_fused_scan_{hashlib.sha256(key).hexdigest()[:12]}"


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled library, or None (with one warning) where it cannot be built: no C++ compiler,
    no ninja, a torch without the extension builder."""
    try:
        from torch.utils.cpp_extension import load

        path = load(name=_build_name(), sources=[str(SOURCE)], extra_cflags=list(FLAGS), is_python_module=False)
        lib = ctypes.CDLL(path)
    except Exception as exc:  # noqa: BLE001 (any build or load failure means: use the block loop)
        warnings.warn(
            f"the fused CPU selective scan could not be built ({type(exc).__name__}: {str(exc)[:300]}); "
            "selective_scan runs its block loop instead",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    for suffix in _SUFFIXES.values():
        getattr(lib, f"ssm_scan_forward_{suffix}").argtypes = [i64] * 5 + [ptr] * 13
        getattr(lib, f"ssm_scan_backward_{suffix}").argtypes = [i64] * 5 + [ptr] * 21
        getattr(lib, f"ssm_mamba_step_{suffix}").argtypes = [i64] * 6 + [ptr] * 19
        getattr(lib, f"ssm_diag_forward_{suffix}").argtypes = [i64] * 6 + [ctypes.c_double] + [ptr] * 14
        getattr(lib, f"ssm_diag_backward_{suffix}").argtypes = [i64] * 6 + [ctypes.c_double] + [ptr] * 23
        for kind in ("scan_forward", "scan_backward", "diag_forward", "diag_backward", "mamba_step"):
            getattr(lib, f"ssm_{kind}_{suffix}").restype = None
    return lib


def enabled() -> bool:
    """Whether ``inner="auto"`` may use the fused scan (not switched off by ``SSMFORECAST_FUSED_SCAN=0``)."""
    return os.environ.get(ENV_SWITCH, "1") != "0"


def available(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether ``inner="auto"`` runs the fused code for tensors of this device and dtype: a CPU,
    float32 / float64, not switched off, and a library that builds (built here on the first ask)."""
    return device.type == "cpu" and dtype in DTYPES and enabled() and library() is not None


def _function(name: str, dtype: torch.dtype):
    """The library's entry point ``ssm_<name>_<f32|f64>`` for this dtype."""
    return getattr(library(), f"ssm_{name}_{_SUFFIXES[dtype]}")


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _strides(t: torch.Tensor) -> ctypes.Array:
    """The strides of a (batch, H, L) tensor, in elements, as the C array the library reads."""
    return (ctypes.c_int64 * 3)(*t.stride())


def forward(u, delta, A, B, C, D, x0, block, y, x_last, entering) -> None:
    """One batch part of the forward (see _fused_scan.cpp): u, Δ, y (b, H, L) with any strides; A,
    B, C, D, x0 and the outputs x_L, entering contiguous. Writes y (with D u), x_L and the entering
    states in place."""
    batch, H, L = u.shape
    fn = _function("scan_forward", u.dtype)
    fn(
        batch, H, L, A.shape[1], block, _ptr(u), _strides(u), _ptr(delta), _strides(delta),
        *map(_ptr, (A, B, C, D, x0, y)), _strides(y), _ptr(x_last), _ptr(entering),
    )  # fmt: skip


def backward(u, delta, A, B, C, D, entering, gy, gx_last, block, gu, gdelta, gA, gB, gC, gD, gx0) -> None:
    """One batch part of the adjoint: u, Δ, ȳ, ∂u, ∂Δ (b, H, L) with any strides, the rest
    contiguous. Writes ∂u (with D ȳ), ∂Δ, the part's per-series ∂A (b, H, N) and ∂D (b, H) (when
    D is given), ∂B, ∂C and ∂x0 in place."""
    batch, H, L = u.shape
    fn = _function("scan_backward", u.dtype)
    fn(
        batch, H, L, A.shape[1], block, _ptr(u), _strides(u), _ptr(delta), _strides(delta),
        *map(_ptr, (A, B, C, D, entering, gy)), _strides(gy), _ptr(gx_last), _ptr(gu), _strides(gu),
        _ptr(gdelta), _strides(gdelta), *map(_ptr, (gA, gB, gC, gD, gx0)),
    )  # fmt: skip


#: The discretizations of the fused diagonal scan, by the code its C++ entry points take.
DIAG_KINDS = {"zoh": 0, "gbt": 1, "foh": 2}


def diag_forward(u, delta, Lambda, B, C, D, x0, u_before, kind, alpha, block, y, x_last, entering) -> None:
    """One batch part of S4D's scan with a step per sample (see _fused_scan.cpp): u, Δ, y (b, H, L)
    with any strides; Λ, B, C (H, n, 2) and x0, x_L (b, H, n, 2) as real views of complex tensors,
    D (H,), u_before (b, H) (first-order hold), the entering states (b, H, blocks, 2, n); ``kind``
    a key of DIAG_KINDS, ``alpha`` GBT's α. Writes y (with D u), x_L and the entering states in place."""
    batch, H, L = u.shape
    fn = _function("diag_forward", u.dtype)
    fn(
        batch, H, L, Lambda.shape[1], block, DIAG_KINDS[kind], alpha,
        _ptr(u), _strides(u), _ptr(delta), _strides(delta), *map(_ptr, (Lambda, B, C, D, x0, u_before, y)), _strides(y),
        _ptr(x_last), _ptr(entering),
    )  # fmt: skip


def diag_backward(u, delta, Lambda, B, C, D, u_before, entering, gy, gx_last, kind, alpha, block, grads) -> None:
    """One batch part of its adjoint: u, Δ, ȳ (b, H, L) with any strides; the rest contiguous,
    complex ones as real views. ``grads`` = (∂u, ∂Δ (b, H, L), any strides; the per-series ∂Λ, ∂B,
    ∂C (b, H, n, 2); ∂D (b, H) or None; ∂x0 (b, H, n, 2); ∂u_before (b, H) or None), written in place
    (∂u with D ȳ; without u_before the first-order hold's u_{−1} = u_0 term goes to ∂u_0)."""
    batch, H, L = u.shape
    gu, gdelta, gLambda, gB, gC, gD, gx0, gu_before = grads
    fn = _function("diag_backward", u.dtype)
    fn(
        batch, H, L, Lambda.shape[1], block, DIAG_KINDS[kind], alpha,
        _ptr(u), _strides(u), _ptr(delta), _strides(delta), *map(_ptr, (Lambda, B, C, D, u_before, entering, gy)),
        _strides(gy), _ptr(gx_last), _ptr(gu), _strides(gu), _ptr(gdelta), _strides(gdelta),
        *map(_ptr, (gLambda, gB, gC, gD, gx0, gu_before)),
    )  # fmt: skip


def mamba_step_plan(constants) -> tuple:
    """What every streaming step of one Mamba layer passes to the C++ step and that changes only
    with its parameters, from ``MambaLayer._step_constants``: (dtype, d_model, d_inner, d_conv, N,
    dt_rank, the weights' pointers, the contiguous tensors they point into)."""
    A, D, conv_w, conv_b, linear = constants
    (in_w, in_b), (x_w, x_b), (dt_w, dt_b), (out_w, out_b) = linear
    tensors = [None if t is None else t.contiguous() for t in (in_w, in_b, conv_w, conv_b, x_w, x_b, dt_w, dt_b, out_w, out_b, A, D)]
    (H, N), K, R = A.shape, conv_w.shape[1], dt_w.shape[0]
    return A.dtype, in_w.shape[0], H, K, N, R, tuple(map(_ptr, tensors)), tensors


def mamba_step(u, conv_state, ssm_state, dt, plan):
    """One streaming step of a whole Mamba layer (in_proj, conv + SiLU, x_proj, dt_proj, the
    selective SSM step and gate, out_proj) in one call: u (batch, d_model), conv_state (batch, H,
    K − 1), ssm_state (batch, H, N), dt (batch,) or None, all in the plan's dtype, ``plan`` from
    :func:`mamba_step_plan` → (y (batch, d_model), (new conv_state, new ssm_state)); new tensors,
    the arguments are not modified."""
    dtype, d_model, H, K, N, R, weights, _ = plan
    u, conv_state, ssm_state = u.contiguous(), conv_state.contiguous(), ssm_state.contiguous()
    dt = None if dt is None else dt.contiguous()
    batch = u.shape[0]
    out, new_conv, new_ssm = u.new_empty(batch, d_model), u.new_empty(batch, H, K - 1), u.new_empty(batch, H, N)
    fn = _function("mamba_step", dtype)
    fn(batch, d_model, H, K, N, R, _ptr(u), *weights, _ptr(dt), *map(_ptr, (conv_state, ssm_state, out, new_conv, new_ssm)))
    return out, (new_conv, new_ssm)
