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
        getattr(lib, f"ssm_conv_silu_step_{suffix}").argtypes = [i64] * 3 + [ptr, i64] + [ptr] * 5
        getattr(lib, f"ssm_selective_step_{suffix}").argtypes = [i64] * 3 + [ptr] * 5 + [i64] + [ptr] * 4 + [i64, ptr, ptr]
        getattr(lib, f"ssm_diag_forward_{suffix}").argtypes = [i64] * 6 + [ctypes.c_double] + [ptr] * 14
        getattr(lib, f"ssm_diag_backward_{suffix}").argtypes = [i64] * 6 + [ctypes.c_double] + [ptr] * 23
        for kind in ("scan_forward", "scan_backward", "diag_forward", "diag_backward", "conv_silu_step", "selective_step"):
            getattr(lib, f"ssm_{kind}_{suffix}").restype = None
    return lib


def enabled() -> bool:
    """Whether ``inner="auto"`` may use the fused scan (not switched off by ``SSMFORECAST_FUSED_SCAN=0``)."""
    return os.environ.get(ENV_SWITCH, "1") != "0"


def available(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether ``inner="auto"`` runs the fused code for tensors of this device and dtype: a CPU,
    float32 / float64, not switched off, and a library that builds (built here on the first ask)."""
    return device.type == "cpu" and dtype in DTYPES and enabled() and library() is not None


def supports(*tensors: torch.Tensor) -> bool:
    """The fused scan runs float32 and float64 CPU tensors."""
    return all(t.device.type == "cpu" and t.dtype in DTYPES for t in tensors)


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


def _rows(t: torch.Tensor) -> torch.Tensor:
    """t (batch, n) with unit stride along n (a view into a wider output stays a view)."""
    return t if t.stride(-1) == 1 else t.contiguous()


def conv_silu_step(x, conv_state, w, bias):
    """Mamba's causal depthwise conv for one new input, then SiLU: x (batch, H) (rows may be a view
    into in_proj's output), conv_state (batch, H, K − 1), w (H, K), bias (H,) or None → (x' (batch,
    H), new conv_state (batch, H, K − 1)); new tensors, the arguments are not modified."""
    x = _rows(x)
    conv_state, w = conv_state.contiguous(), w.contiguous()
    bias = None if bias is None else bias.contiguous()
    batch, H = x.shape
    K = w.shape[1]
    out, new_state = x.new_empty(batch, H), x.new_empty(batch, H, K - 1)
    fn = _function("conv_silu_step", x.dtype)
    fn(batch, H, K, _ptr(x), x.stride(0), *map(_ptr, (conv_state, w, bias, out, new_state)))
    return out, new_state


def selective_step(x, delta_raw, dt, B, C, state, A, D, z):
    """One selective SSM step and Mamba's gate: Δ = softplus(δ) · dt, h = exp(ΔA) ⊙ h + Δ x B,
    y = (C · h + D x) · silu(z). x, δ (batch, H), dt (batch,) or None, B, C (batch, N) (rows may be
    views into x_proj's output, one row stride), state (batch, H, N), A (H, N), D (H,), z (batch, H)
    → (y (batch, H), new state (batch, H, N)); new tensors, the arguments are not modified."""
    x, delta_raw, z = x.contiguous(), delta_raw.contiguous(), _rows(z)
    B, C = _rows(B), _rows(C)
    if B.stride(0) != C.stride(0):
        B, C = B.contiguous(), C.contiguous()
    state, A, D = state.contiguous(), A.contiguous(), D.contiguous()
    dt = None if dt is None else dt.contiguous()
    batch, H = x.shape
    N = A.shape[1]
    y, new_state = x.new_empty(batch, H), x.new_empty(batch, H, N)
    fn = _function("selective_step", x.dtype)
    fn(batch, H, N, *map(_ptr, (x, delta_raw, dt, B, C)), B.stride(0), *map(_ptr, (state, A, D, z)), z.stride(0), _ptr(y), _ptr(new_state))
    return y, new_state
