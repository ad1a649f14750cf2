"""Linear recurrences with a per-step diagonal transition: x_k = a_k ⊙ x_{k−1} + b_k.

This is the time-varying path of the library: S4D with an irregular step Δ_k (Ā_k = exp(Δ_k Λ))
and Mamba's selective scan (Ā_k, B̄_k, C_k functions of the input). The time axis is dim −2 and
the state axis dim −1; tensors may be real or complex (complex for S4D modes).

- :func:`linear_recurrence_seq`: the sequential reference, a Python loop over the L steps.
- :func:`linear_recurrence`: the same result from a chunked two-level scan applied recursively,
  O(L) work and O(T · log_T L) sequential steps for a chunk size T.
- :func:`ssm_scan`: the discrete SSM x_k = Ā_k ⊙ x_{k−1} + B̄_k u_k, y_k = Σ_n C_{k,n} x_{k,n} + D u_k.

All three broadcast their inputs (e.g. Ā of shape (1, H, L, N) against B̄ (batch, H, L, N)),
support autograd, and never modify their arguments in place.
"""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor

import torch

from . import _fused
from ._checks import check_broadcast, check_choice, check_finite, check_step
from ._threads import one_intra_op_thread
from .discretize import METHODS as DISCRETIZE_METHODS
from .discretize import discretize_diag, foh_diag, method_alpha

#: Values of ``method`` accepted by :func:`ssm_scan`.
METHODS: tuple[str, ...] = ("auto", "chunked", "sequential")

#: "auto" picks the sequential loop on the CPU when one time step already holds this many state
#: entries: each loop step is then a large vectorised operation and the chunked scan, which reads
#: the data twice, is slower (benchmarks/math_core.py: 0.3–0.7× at batch·H·N = 8192).
AUTO_SEQUENTIAL_MIN_STATE = 4096


def _auto_method(state_numel: int, L: int, T: int, device: torch.device) -> str:
    """The faster recurrence for this shape: chunked on accelerators and for small states on the CPU."""
    if L <= 2 * T:
        return "sequential"
    if device.type != "cpu":
        return "chunked"
    return "sequential" if state_numel >= AUTO_SEQUENTIAL_MIN_STATE else "chunked"


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def _check_chunk_size(chunk_size: int) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
        raise ValueError(f"chunk_size must be an int >= 2, got {chunk_size!r}")
    if chunk_size < 2:
        raise ValueError(f"chunk_size must be >= 2, got {chunk_size}")
    return chunk_size


def _check_float(name: str, x: torch.Tensor) -> None:
    if not (x.is_floating_point() or x.is_complex()):
        raise ValueError(f"{name} must be a floating point or complex tensor, got dtype {x.dtype}")


def _prepare(
    a: torch.Tensor, b: torch.Tensor, x0: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Validate (a, b, x0) and return them in one dtype with a and b expanded along L only."""
    check_finite("a", a)
    check_finite("b", b)
    for name, t in (("a", a), ("b", b)):
        if t.ndim < 2:
            raise ValueError(f"{name} must have shape (..., L, N), got {tuple(t.shape)}")
        _check_float(name, t)
    tensors = {"a": a, "b": b}
    if x0 is not None:
        check_finite("x0", x0)
        if x0.ndim < 1:
            raise ValueError(f"x0 must have shape (..., N), got {tuple(x0.shape)}")
        _check_float("x0", x0)
        tensors["x0[..., None, :]"] = x0.unsqueeze(-2)
    shape = check_broadcast(**tensors)
    if shape[-2] == 0:
        raise ValueError(f"the time axis (dim -2) is empty: a {tuple(a.shape)}, b {tuple(b.shape)}")
    dtype = torch.promote_types(a.dtype, b.dtype)
    if x0 is not None:
        dtype = torch.promote_types(dtype, x0.dtype)
        x0 = x0.to(dtype)
    L = shape[-2]
    a = a.to(dtype).expand(a.shape[:-2] + (L, a.shape[-1]))  # (..., L, N)
    b = b.to(dtype).expand(b.shape[:-2] + (L, b.shape[-1]))  # (..., L, N)
    return a, b, x0


# ---------------------------------------------------------------------------------------------
# Kernels (no validation; a and b share dtype and the length L of dim −2)
# ---------------------------------------------------------------------------------------------


def _state_shape(*tensors: torch.Tensor | None) -> torch.Size:
    """Broadcast shape of the given (..., N) state-like tensors, ``None`` skipped."""
    return torch.broadcast_shapes(*(t.shape for t in tensors if t is not None))


def _seq(a: torch.Tensor, b: torch.Tensor, x0: torch.Tensor | None) -> torch.Tensor:
    # unbind, not a[..., k, :]: one backward node for all steps instead of L full-size gradients
    a_k, b_k = a.unbind(-2), b.unbind(-2)  # L × (..., N)
    shape = _state_shape(a_k[0], b_k[0], x0)  # (..., N)
    if x0 is None:
        x = b_k[0].expand(shape)  # (..., N)
    else:
        x = torch.addcmul(b_k[0], a_k[0], x0).expand(shape)  # (..., N)
    xs = [x]
    for k in range(1, len(a_k)):
        x = torch.addcmul(b_k[k], a_k[k], x)  # (..., N)
        xs.append(x)
    return torch.stack(xs, dim=-2)  # (..., L, N)


def _chunked(a: torch.Tensor, b: torch.Tensor, x0: torch.Tensor | None, T: int) -> torch.Tensor:
    L = a.shape[-2]
    if L <= T:
        return _seq(a, b, x0)
    n_chunks = -(-L // T)
    pad = n_chunks * T - L
    if pad:
        a = torch.cat([a, a.new_ones(a.shape[:-2] + (pad, a.shape[-1]))], dim=-2)  # (..., C·T, N)
        b = torch.cat([b, b.new_zeros(b.shape[:-2] + (pad, b.shape[-1]))], dim=-2)  # (..., C·T, N)
    # strided views, no copies: step t of every chunk at once; unbind keeps backward O(L)
    a_s = a.unflatten(-2, (n_chunks, T)).unbind(-2)  # T × (..., C, N)
    b_s = b.unflatten(-2, (n_chunks, T)).unbind(-2)  # T × (..., C, N)
    # pass 1: end state of each chunk from a zero state, and the chunk's product Π a
    s, prod = b_s[0], a_s[0]  # (..., C, N)
    for t in range(1, T):
        s = torch.addcmul(b_s[t], a_s[t], s)  # (..., C, N)
        prod = prod * a_s[t]  # (..., C, N)
    # carries h_c = (Π_{chunk c} a) ⊙ h_{c−1} + s_c with h_{−1} = x0: a recurrence of length C
    h = _chunked(prod, s, x0, T)  # (..., C, N)
    if x0 is None:
        first = h.new_zeros(h.shape[:-2] + (1, h.shape[-1]))  # (..., 1, N)
    else:
        first = x0.unsqueeze(-2).expand(h.shape[:-2] + (1, h.shape[-1]))  # (..., 1, N)
    carry = torch.cat([first, h[..., :-1, :]], dim=-2)  # (..., C, N), state entering each chunk
    # pass 2: rerun the T steps from the carries; equals local + cumprod(a) ⊙ carry, no cumprod
    s = torch.addcmul(b_s[0], a_s[0], carry)  # (..., C, N)
    states = [s]
    for t in range(1, T):
        s = torch.addcmul(b_s[t], a_s[t], s)  # (..., C, N)
        states.append(s)
    x = torch.stack(states, dim=-2).flatten(-3, -2)  # (..., C·T, N)
    return x[..., :L, :] if pad else x  # (..., L, N)


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


# Sequential reference of the first-order linear recurrence (Blelloch 1990 "Prefix sums and their
# applications" §1.4); the recurrent mode of S4 (Gu et al. 2022 §2.3) / Mamba (Gu & Dao 2023 eq. 2)
def linear_recurrence_seq(a: torch.Tensor, b: torch.Tensor, x0: torch.Tensor | None = None) -> torch.Tensor:
    """x_k = a_k ⊙ x_{k−1} + b_k, x_{−1} = x0; a, b (..., L, N), x0 (..., N) → x (..., L, N).

    Plain Python loop over the L steps (L dependent elementwise operations); the reference for
    :func:`linear_recurrence`.

    Parameters
    ----------
    a : Tensor of shape (..., L, N)
        Per-step diagonal transition, real or complex.
    b : Tensor of shape (..., L, N)
        Per-step input term, broadcastable against ``a`` (including along L and N).
    x0 : Tensor of shape (..., N), optional
        State before the first step; zeros if omitted.

    Returns
    -------
    x : Tensor of shape (..., L, N)
        All states, with the broadcast shape of ``a``, ``b`` and ``x0[..., None, :]`` and their
        promoted dtype.

    Raises
    ------
    ValueError
        If the shapes do not broadcast, L = 0, or an input holds NaN/inf or is not floating point.
    """
    a, b, x0 = _prepare(a, b, x0)
    return _seq(a, b, x0)


# Chunked scan of a linear recurrence (Blelloch 1990 §1.4; Martin & Cundy 2018 "Parallelizing
# linear recurrent neural nets over sequence length"; the chunked form of Mamba-2, Dao & Gu 2024 §6)
def linear_recurrence(
    a: torch.Tensor, b: torch.Tensor, x0: torch.Tensor | None = None, *, chunk_size: int = 16
) -> torch.Tensor:
    """x_k = a_k ⊙ x_{k−1} + b_k, x_{−1} = x0; a, b (..., L, N), x0 (..., N) → x (..., L, N).

    Same result as :func:`linear_recurrence_seq`, computed by a two-level chunked scan. With
    T = ``chunk_size`` and the time axis padded to C·T steps (a with 1, b with 0):

    1. for all C chunks at once (T vectorized steps), the end state s_c of the chunk from a zero
       state and the chunk product P_c = Π_{i ∈ c} a_i (a running product: no division, so a
       strongly decaying a underflows to 0 instead of overflowing);
    2. the carries h_c = P_c ⊙ h_{c−1} + s_c, h_{−1} = x0: a recurrence of length C solved by
       the same procedure (sequentially once C ≤ T);
    3. x inside chunk c by T vectorized steps again, starting from h_{c−1}. This equals
       local states + cumprod(a) ⊙ h_{c−1} but stores neither, and its gradient avoids the
       division by a in the backward of ``torch.cumprod`` (wrong once a product underflows).

    Work (about twice the sequential loop's) and memory are O(L), the sequential depth
    O(T · log_T L).

    Parameters
    ----------
    a : Tensor of shape (..., L, N)
        Per-step diagonal transition, real or complex.
    b : Tensor of shape (..., L, N)
        Per-step input term, broadcastable against ``a`` (including along L and N).
    x0 : Tensor of shape (..., N), optional
        State before the first step; zeros if omitted.
    chunk_size : int, default 16
        Chunk length T >= 2.

    Returns
    -------
    x : Tensor of shape (..., L, N)
        All states, with the broadcast shape of ``a``, ``b`` and ``x0[..., None, :]`` and their
        promoted dtype.

    Raises
    ------
    ValueError
        If the shapes do not broadcast, L = 0, chunk_size < 2, or an input holds NaN/inf or is
        not floating point.
    """
    T = _check_chunk_size(chunk_size)
    a, b, x0 = _prepare(a, b, x0)
    return _chunked(a, b, x0, T)


# Discrete SSM with a per-step diagonal transition: the selective scan of Mamba (Gu & Dao 2023
# §3.3, Alg. 2) and S5's time-varying diagonal recurrence (Smith et al. 2023 §3); conjugate
# pairs as in S4D (Gu et al. 2022 "On the parameterization and initialization of diagonal SSMs" §3)
def ssm_scan(
    u: torch.Tensor,
    dA: torch.Tensor,
    dB: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    x0: torch.Tensor | None = None,
    *,
    method: str = "auto",
    chunk_size: int = 16,
    conj_pairs: bool = False,
    dB_prev: torch.Tensor | None = None,
    u_before: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """x_k = Ā_k ⊙ x_{k−1} + B̄_k u_k, y_k = Σ_n C_{k,n} x_{k,n} + D u_k;
    u (..., H, L), Ā, B̄, C (..., H, L, N) → y (..., H, L), x_last (..., H, N).

    With ``dB_prev`` (first-order hold, :func:`~ssmforecast.math.discretize.foh_diag`) the input
    term is B̄_k u_k + B̄⁰_k u_{k−1}, u_{−1} being ``u_before`` (default u_0).

    For a complex state the output is y = Re(Σ_n C x) or, with ``conj_pairs=True`` (each mode
    standing for itself and its complex conjugate, as in S4D), y = 2 Re(Σ_n C x).
    Streaming: splitting u (and Ā, B̄, C) in time and passing ``x_last`` of the first part as
    ``x0`` of the second gives the same y as one call on the whole.

    Parameters
    ----------
    u : Tensor of shape (..., H, L)
        Real input, one sequence per channel.
    dA : Tensor of shape (..., H, L, N)
        Discrete diagonal transition Ā_k, real or complex.
    dB : Tensor of shape (..., H, L, N)
        Discrete input vector B̄_k.
    C : Tensor of shape (..., H, L, N) or (..., H, 1, N)
        Output vector C_k (L = 1 for a time-invariant C).
    D : Tensor of shape (H,), optional
        Real skip connection (broadcastable to (..., H)).
    x0 : Tensor of shape (..., H, N), optional
        State before the first step; zeros if omitted.
    method : {"auto", "chunked", "sequential"}, default "auto"
        :func:`linear_recurrence` or :func:`linear_recurrence_seq`; "auto" takes the sequential loop
        for short sequences (L ≤ 2T) and, on the CPU, for states of at least
        ``AUTO_SEQUENTIAL_MIN_STATE`` entries per step, the chunked scan otherwise.
    chunk_size : int, default 16
        Chunk length T >= 2 of the chunked scan.
    conj_pairs : bool, default False
        Double the real part (complex state only).
    dB_prev : Tensor of shape (..., H, L, N), optional
        Weight B̄⁰_k of the previous input u_{k−1} (first-order hold).
    u_before : Tensor of shape (..., H), optional
        The input before u_0, read by ``dB_prev`` at the first step; u_0 if omitted. Streaming:
        pass the last input of the previous part.

    Returns
    -------
    y : Tensor of shape (..., H, L)
        Real output.
    x_last : Tensor of shape (..., H, N)
        State after the last step (real or complex), to pass as ``x0`` of the next call.

    Raises
    ------
    ValueError
        If the shapes do not broadcast or disagree in L, L = 0, ``method`` is unknown,
        chunk_size < 2, an input holds NaN/inf, u or D is complex, or ``conj_pairs`` is set for a
        real state.
    """
    check_choice("method", method, METHODS)
    T = _check_chunk_size(chunk_size)
    named = {"u": u, "dA": dA, "dB": dB, "C": C}
    named |= ({} if D is None else {"D": D}) | ({} if x0 is None else {"x0": x0})
    named |= ({} if dB_prev is None else {"dB_prev": dB_prev}) | ({} if u_before is None else {"u_before": u_before})
    if u_before is not None and dB_prev is None:
        raise ValueError("u_before is read only with dB_prev (first-order hold); got u_before without dB_prev")
    for name, t in named.items():
        check_finite(name, t)
        _check_float(name, t)
    if u.ndim < 2:
        raise ValueError(f"u must have shape (..., H, L), got {tuple(u.shape)}")
    for name in ("u", "u_before"):
        if name in named and named[name].is_complex():
            raise ValueError(f"{name} must be real, got dtype {named[name].dtype}")
    if u.shape[-1] == 0:
        raise ValueError(f"u has an empty time axis (dim -1): shape {tuple(u.shape)}")
    for name in ("dA", "dB", "C"):
        if named[name].ndim < 3:
            raise ValueError(f"{name} must have shape (..., H, L, N), got {tuple(named[name].shape)}")
    tensors = {"u[..., None]": u.unsqueeze(-1), "dA": dA, "dB": dB, "C": C}
    if dB_prev is not None:
        if dB_prev.ndim < 3:
            raise ValueError(f"dB_prev must have shape (..., H, L, N), got {tuple(dB_prev.shape)}")
        tensors["dB_prev"] = dB_prev
        if u_before is not None:
            tensors["u_before[..., None, None]"] = u_before[..., None, None]
    if x0 is not None:
        if x0.ndim < 2:
            raise ValueError(f"x0 must have shape (..., H, N), got {tuple(x0.shape)}")
        tensors["x0[..., None, :]"] = x0.unsqueeze(-2)
    if D is not None:
        if D.is_complex():
            raise ValueError(f"D must be real, got dtype {D.dtype}")
        tensors["D[..., None, None]"] = D[..., None, None]
    shape = check_broadcast(**tensors)  # (..., H, L, N)
    L = u.shape[-1]
    if shape[-2] != L:
        shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in tensors.items())
        raise ValueError(f"time axes disagree: u has L={L} but the broadcast L is {shape[-2]} ({shapes})")
    state_dtype = torch.promote_types(torch.promote_types(dA.dtype, dB.dtype), C.dtype)
    if dB_prev is not None:
        state_dtype = torch.promote_types(state_dtype, dB_prev.dtype)
    if x0 is not None:
        state_dtype = torch.promote_types(state_dtype, x0.dtype)
    if conj_pairs and not state_dtype.is_complex:
        raise ValueError(f"conj_pairs=True needs a complex state, but dA, dB, C, x0 promote to {state_dtype}")

    a = dA.expand(dA.shape[:-2] + (L, dA.shape[-1]))  # (..., H, L, N)
    b = dB * u.unsqueeze(-1)  # (..., H, L, N)
    if dB_prev is not None:  # + B̄⁰_k u_{k−1}
        first = u[..., :1] if u_before is None else u_before[..., None].expand(u[..., :1].shape)
        u_prev = torch.cat([first, u[..., :-1]], dim=-1)  # (..., H, L)
        b = torch.addcmul(b, dB_prev, u_prev.unsqueeze(-1))  # (..., H, L, N)
    dtype = torch.promote_types(a.dtype, b.dtype)
    if x0 is not None:
        dtype = torch.promote_types(dtype, x0.dtype)
        x0 = x0.to(dtype)
    a, b = a.to(dtype), b.to(dtype)
    if method == "auto":
        state_numel = torch.broadcast_shapes(a.shape, b.shape).numel() // L  # entries updated per step
        method = _auto_method(state_numel, L, T, a.device)
    x = _chunked(a, b, x0, T) if method == "chunked" else _seq(a, b, x0)  # (..., H, L, N)
    y = (C * x).sum(dim=-1)  # (..., H, L)
    if y.is_complex():
        y = 2.0 * y.real if conj_pairs else y.real  # (..., H, L)
    if D is not None:
        y = torch.addcmul(y, D.unsqueeze(-1), u)  # (..., H, L)
    return y, x[..., -1, :]


#: Entries (batch · T · N · H) of one time block of :func:`selective_scan` on the CPU: each of the
#: five block tensors of its backward holds this many values (1 MiB in float32), whatever the length
#: L, so a block stays in cache across the dozen elementwise passes over it. Blocks of 2²² values
#: (16 MiB) made every pass a trip to memory: forward + backward, one thread, batch 8, H 64, N 16,
#: L 4,096: T = 512 → 802 ms, T = 32 → 571 ms (docs/performance.md, "Selective scan").
BLOCK_NUMEL = 2**18
#: The fewest steps per CPU block: below it the per-block overhead (a dozen tensor calls) dominates.
MIN_BLOCK = 4
#: On CUDA a block holds 2²³ values, at least 16 steps: the scan there is launch-bound, and per-block work is what pays.
#: H100, batch 8, H 64, N 16, L 4,096, fwd+bwd: T = 512 → 12.6 ms, T = 1,024 → 7.8 ms (pscan 8.9 ms).
CUDA_BLOCK_NUMEL = 2**23


def _auto_inner(device: torch.device, dtype: torch.dtype) -> str:
    """On the CPU the fused C++ scan where it builds (float32 / float64), else the block loop; on
    accelerators the compiled "associative" scan where torch has it (H100, L 4,096, fwd+bwd: 7.8 ms
    vs 25.9 ms chunked at the same block), else "chunked"."""
    if device.type == "cpu":
        return "fused" if _fused.available(device, dtype) else "loop"
    return "associative" if device.type == "cuda" and _compiled_scan_works(device.index) else "chunked"


@functools.cache
def _compiled_scan_works(index: int | None) -> bool:
    """Whether the compiled associative scan runs on this CUDA device: one tiny scan, once per
    process. torch.compile needs Triton and a C compiler at run time; where it fails, "auto" warns
    once and keeps the chunked scan instead of failing the caller's training."""
    if not _has_associative_scan():
        return False
    try:
        a = torch.ones(2, 1, device=torch.device("cuda", index))  # (T, ...)
        _compiled_pointwise_scan()(a, a)
    except Exception as exc:  # noqa: BLE001 (any compiler or driver failure means: do not use it)
        warnings.warn(
            f"the compiled associative scan failed on CUDA ({type(exc).__name__}: {str(exc)[:200]}); "
            "selective_scan(inner='auto') uses the chunked scan instead",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
    return True


@functools.cache
def _has_associative_scan() -> bool:
    try:
        from torch._higher_order_ops.associative_scan import associative_scan  # noqa: F401
    except ImportError:
        return False
    return True


def _check_selective(u, delta, A, B, C, D, x0) -> None:
    """Shapes and values of the selective scan's arguments (see :func:`selective_scan`)."""
    for name, t in (("u", u), ("delta", delta), ("A", A), ("B", B), ("C", C)):
        check_finite(name, t)
        if t.is_complex():
            raise ValueError(f"{name} must be real, got dtype {t.dtype}")
    if u.ndim != 3 or delta.shape != u.shape:
        raise ValueError(f"u and delta must have the same shape (batch, H, L), got {tuple(u.shape)} and {tuple(delta.shape)}")
    batch, H, L = u.shape
    if L == 0:
        raise ValueError("u has an empty time axis")
    if A.ndim != 2 or A.shape[0] != H:
        raise ValueError(f"A must have shape (H, N) = ({H}, N), got {tuple(A.shape)}")
    N = A.shape[1]
    for name, t in (("B", B), ("C", C)):
        if t.shape != (batch, L, N):
            raise ValueError(f"{name} must have shape (batch, L, N) = {(batch, L, N)}, got {tuple(t.shape)}")
    if D is not None:
        check_finite("D", D)
        if D.shape != (H,):
            raise ValueError(f"D must have shape (H,) = ({H},), got {tuple(D.shape)}")
    if x0 is not None:
        check_finite("x0", x0)
        if x0.shape != (batch, H, N):
            raise ValueError(f"x0 must have shape (batch, H, N) = {(batch, H, N)}, got {tuple(x0.shape)}")


# Sequential reference of Mamba's selective scan (Gu & Dao 2023 §3.3, Alg. 2), ZOH of A and Euler of B:
#   x_k = exp(Δ_k A) ⊙ x_{k−1} + Δ_k u_k B_k,   y_k = Σ_n C_{k,n} x_{k,n} + D u_k
def selective_scan_seq(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    x0: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Selective scan as a plain loop under autograd; same arguments and result as :func:`selective_scan`.

    Ā_k and B̄_k u_k are formed one step at a time and every step is recorded by autograd
    (L small nodes): the reference the fast path is tested against.
    """
    _check_selective(u, delta, A, B, C, D, x0)
    batch, H, _ = u.shape
    x = u.new_zeros(batch, H, A.shape[1]) if x0 is None else x0  # (batch, H, N)
    steps = zip(
        delta.unbind(-1),  # L × (batch, H)
        (delta * u).unbind(-1),  # L × (batch, H)      Δ_k u_k
        B.unbind(1),  # L × (batch, N)
        C.unbind(1),  # L × (batch, N)
    )
    ys = []
    for d_k, du_k, B_k, C_k in steps:
        x = torch.addcmul(du_k[..., None] * B_k[:, None, :], torch.exp(d_k[..., None] * A), x)  # (batch, H, N)
        ys.append((x * C_k[:, None, :]).sum(-1))  # (batch, H)
    y = torch.stack(ys, dim=-1)  # (batch, H, L)
    if D is not None:
        y = y + D[:, None] * u  # (batch, H, L)
    return y, x


def _block_terms(
    u_t: torch.Tensor, d_t: torch.Tensor, At: torch.Tensor, B_t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Time-major block: u_t, Δ_t (T, batch, H), Aᵀ (N, H), B_t (T, batch, N) → Ā, B̄u (T, batch, N, H).

    Channels H last: every broadcast then repeats a whole contiguous row of H values (vectorised),
    where an N-last layout repeats single values over rows of N = 8 or 16 (on a CPU, 6× slower per
    multiply at N = 8). The results are contiguous, so each step's (batch, N, H) slice is one dense block.
    """
    u_t, d_t, B_t = u_t.contiguous(), d_t.contiguous(), B_t.contiguous()  # outputs follow input strides
    a = torch.mul(d_t[:, :, None, :], At).exp_()  # (T, batch, N, H)    Ā_k = exp(Δ_k A)
    b = (d_t * u_t)[:, :, None, :] * B_t[..., None]  # (T, batch, N, H)    B̄_k u_k = Δ_k u_k B_k
    return a, b


# Composition of the affine steps x ↦ a₁ ⊙ x + b₁, then x ↦ a₂ ⊙ x + b₂: (a₁, b₁) ∘ (a₂, b₂) = (a₂a₁, a₂ ⊙ b₁ + b₂),
# associative, so every prefix (Π a, x from a zero state) is one associative scan (Blelloch 1990)
def _compose(first: tuple, second: tuple) -> tuple:
    (a1, b1), (a2, b2) = first, second
    return a1 * a2, torch.addcmul(b2, a2, b1)


@functools.cache
def _compiled_pointwise_scan():
    """torch.compile of the pointwise associative scan of :func:`_compose` (CUDA), built once."""
    from torch._higher_order_ops.associative_scan import associative_scan

    return torch.compile(lambda a, b: associative_scan(_compose, (a, b), 0, combine_mode="pointwise"), dynamic=False)


def _associative_prefixes(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """a, b (T, ...) → (Π_{i≤t} a_i, x_t from x_{−1} = 0), both (T, ...), by PyTorch's associative
    scan (``torch._higher_order_ops.associative_scan``): ``torch.compile``d on CUDA (one generated
    scan kernel; compiled once per block shape), eager elsewhere (a log-depth sweep: correct, but
    slower than the loop on a CPU)."""
    if not _has_associative_scan():  # older torch: the flag is unavailable, the other inner modes remain
        raise ValueError(
            f"inner='associative' needs torch's associative_scan (torch {torch.__version__} has none); "
            "use inner='chunked' or 'loop'"
        )
    from torch._higher_order_ops.associative_scan import associative_scan
    if a.device.type != "cuda":
        return associative_scan(_compose, (a, b), 0, combine_mode="generic")
    return _compiled_pointwise_scan()(a.contiguous(), b.contiguous())


def _recur_(a: torch.Tensor, b: torch.Tensor, x0: torch.Tensor, inner: str, reverse: bool = False) -> torch.Tensor:
    """x_t = a_t ⊙ x_{t−1} + b_t over dim 0 from x_{−1} = x0, written into ``b`` (a, b (T, ...), x0 (...)).

    ``reverse`` runs t = T−1, …, 0 with x_t = a_t ⊙ x_{t+1} + b_t and x_T = x0. ``inner="loop"``
    is one in-place ``addcmul_`` per step (the CPU path: a step's (batch, N, H) block stays in
    cache); ``"chunked"`` the two-level chunked scan of :func:`linear_recurrence` (accelerators);
    ``"associative"`` PyTorch's associative scan of the affine steps (opt-in, see
    :func:`_associative_prefixes`), x_t = (Π_{i≤t} a_i) ⊙ x0 + (x_t from a zero state).
    """
    flip = (lambda t: t.flip(0)) if reverse else (lambda t: t)
    if inner == "associative":
        prod, x = _associative_prefixes(flip(a), flip(b))  # (T, ...), (T, ...)
        b.copy_(flip(torch.addcmul(x, prod, x0)))
        return b
    if inner == "chunked":
        x = _chunked(flip(a).movedim(0, -2), flip(b).movedim(0, -2), x0, 16)  # (..., T, N)
        b.copy_(flip(x.movedim(-2, 0)))
        return b
    a_t, b_t = a.unbind(0), b.unbind(0)
    order = range(len(b_t) - 1, -1, -1) if reverse else range(len(b_t))
    prev = x0
    for t in order:
        b_t[t].addcmul_(a_t[t], prev)
        prev = b_t[t]
    return b


def _recur_back_(a: torch.Tensor, c: torch.Tensor, carry: torch.Tensor, inner: str) -> torch.Tensor:
    """Adjoint recurrence ḡ_t = c_t + a_{t+1} ⊙ ḡ_{t+1}, ḡ_{T−1} = c_{T−1} + carry, written into ``c``."""
    if inner in ("chunked", "associative"):
        return _recur_(torch.cat([a[1:], torch.ones_like(a[:1])]), c, carry, inner, reverse=True)
    a_t, c_t = a.unbind(0), c.unbind(0)
    c_t[-1].add_(carry)
    for t in range(len(c_t) - 2, -1, -1):
        c_t[t].addcmul_(a_t[t + 1], c_t[t + 1])
    return c


#: On a CPU with several intra-op threads the batch of a selective scan is split into parts that run
#: side by side, each holding at least this many values per step (its series · N · H); see
#: :func:`_map_parts`. Threads hand Python's GIL to each other around every call, which pays only
#: when the calls are big: fwd+bwd, batch 64, N 16, L 120, two parts against one thread:
#: H = 128 (65,536 values per part and step) 192 → 139 ms; H = 64 (32,768) 126 → 125 ms;
#: batch 8, H 64 (4,096) 442 → 585 ms.
PARALLEL_STEP_NUMEL = 2**16
#: On a CPU a part holds at most this many values per step (more parts than threads where needed):
#: at batch 256, H 128, N 16 a part of 128 series made blocks of 4 steps × 1 MiB, out of cache.
PART_STEP_NUMEL = 2**17


_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}


def _pool(workers: int) -> ThreadPoolExecutor:
    """The threads that run the parts of a split scan besides the caller's own: one pool per size
    and process (a forked child, e.g. a joblib worker, has none of its parent's threads)."""
    key = (os.getpid(), workers)
    if key not in _POOLS:
        _POOLS[key] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ssmforecast-scan")
    return _POOLS[key]


def _batch_parts(batch: int, step_numel: int, device: torch.device) -> tuple[list[tuple[int, int]], int]:
    """→ ([(start, stop)] of the batch parts, how many threads run them side by side).

    On a CPU: threads, one per intra-op thread, at most one per series and one per
    PARALLEL_STEP_NUMEL of the ``step_numel`` = batch · N · H values of a step; parts, at least
    one per thread and as many as keep a part's step within PART_STEP_NUMEL values (at most one
    per series), so that its blocks stay in cache. Elsewhere one part on one thread."""
    if device.type != "cpu":
        return [(0, batch)], 1
    threads = max(1, min(torch.get_num_threads(), batch, step_numel // PARALLEL_STEP_NUMEL))
    parts = min(batch, max(threads, -(-step_numel // PART_STEP_NUMEL)))
    bounds = [batch * i // parts for i in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:])), threads


def _one_thread_call(fn, parts: list, grad: bool) -> list:
    """[fn(part) for part in parts] in a pool thread: one intra-op thread (OpenMP's count is per
    thread) and the caller's grad mode (thread-local, like autocast, which the caller has turned off too)."""
    torch.set_num_threads(1)
    with torch.set_grad_enabled(grad), torch.autocast("cpu", enabled=False):
        return [fn(part) for part in parts]


def _map_parts(fn, parts: list, threads: int, cpu: bool) -> list:
    """[fn(part) for part in parts], on a CPU each on one intra-op thread, spread over ``threads``
    threads (part i on thread i mod threads) that run side by side.

    The block loop is a long run of small calls: handing each to a second intra-op thread cost more
    than it saved (batch 8, H 64, N 16, L 4,096, T = 32, fwd+bwd: 375 ms on one thread, 790 ms on
    two), whereas separate series of big enough steps (PARALLEL_STEP_NUMEL) run well on separate
    threads, as torch releases the GIL inside every op. The caller runs the first share, pool
    threads the others; the caller's count is restored once every part has finished. CPU autocast
    is off in every part: the scan runs in its inputs' dtype.
    """
    autocast_off = torch.autocast("cpu", enabled=False) if cpu else contextlib.nullcontext()
    with one_intra_op_thread(cpu), autocast_off:
        if threads == 1:
            return [fn(part) for part in parts]
        shares = [parts[i::threads] for i in range(threads)]
        grad = torch.is_grad_enabled()
        rest = [_pool(threads - 1).submit(_one_thread_call, fn, share, grad) for share in shares[1:]]
        try:
            first = [fn(part) for part in shares[0]]
        finally:
            futures.wait(rest)  # a pool thread's set_num_threads must not land after the restore
    done = [first] + [future.result() for future in rest]
    return [done[i % threads][i // threads] for i in range(len(parts))]  # back in part order


def _scan_forward_part(u, delta, At, B, C, x0, block, inner, y):
    """The blocked forward for one batch part: u, Δ (b, H, L), Aᵀ (N, H), B, C (b, L, N), x0 (b, N, H),
    y (b, H, L) written in place (Σ_n C x, without D) → x_L (b, N, H) and what the backward reads:
    u, Δ time-major (L, b, H) and the state entering each block (blocks, b, N, H)."""
    L = u.shape[-1]
    x = x0
    entering = []  # state entering each block, (b, N, H) each
    u_tm, d_tm = u.permute(2, 0, 1).contiguous(), delta.permute(2, 0, 1).contiguous()  # (L, b, H), once
    for s in range(0, L, block):
        e = min(s + block, L)
        a, xs = _block_terms(u_tm[s:e], d_tm[s:e], At, B[:, s:e].transpose(0, 1))  # (T, b, N, H)
        entering.append(x)
        xs = _recur_(a, xs, x, inner)  # (T, b, N, H)    x_k
        y_t = C[:, s:e].transpose(0, 1).unsqueeze(-2) @ xs  # (T, b, 1, H)    Σ_n C_k x_k
        y[..., s:e] = y_t[:, :, 0].permute(1, 2, 0)  # (b, H, T)
        x = xs[-1].clone()  # (b, N, H), not a view that would keep the block alive
    return x, (u_tm, d_tm, torch.stack(entering))


def _scan_backward_part(saved, At, B, C, gy, carry, block, inner, grads):
    """The adjoint for one batch part, backwards block by block from recomputed states: saved =
    (u, Δ time-major (L, b, H), entering states), B, C (b, L, N), gy (b, H, L), carry = ∂/∂x_L
    (b, N, H); writes ∂u (without D's term), ∂Δ (b, H, L), ∂B, ∂C (b, L, N) into ``grads`` →
    (this part's ∂Aᵀ (N, H), ∂x0 (b, N, H))."""
    u_tm, d_tm, entering = saved
    gu, gdelta, gB, gC = grads
    L = u_tm.shape[0]
    gy_tm = gy.permute(2, 0, 1).contiguous()  # (L, b, H)
    gAt = torch.zeros_like(At)  # (N, H)
    starts = list(range(0, L, block))
    for i in reversed(range(len(starts))):
        s, e = starts[i], min(starts[i] + block, L)
        u_t, d_t, gy_t = u_tm[s:e], d_tm[s:e], gy_tm[s:e]  # (T, b, H)
        B_t, C_t = B[:, s:e].transpose(0, 1), C[:, s:e].transpose(0, 1)  # (T, b, N)
        a, xs = _block_terms(u_t, d_t, At, B_t)  # (T, b, N, H)
        xs = _recur_(a, xs, entering[i], inner)  # (T, b, N, H)    x_k, recomputed
        # Σ_h as a product and a sum over the contiguous H: a batched (N × H)·(H × 1) bmm was 4× slower
        gC[:, s:e] = (xs * gy_t[:, :, None, :]).sum(-1).transpose(0, 1)  # (b, T, N)    Σ_h ȳ_k x_k
        # ḡ_k = C_k ȳ_k + Ā_{k+1} ḡ_{k+1}, backwards in time from the next block's carry
        # written into a time-major block like Ā's: left to itself the product would take gy's
        # (b, H, T) layout, scattering each step's slice (the adjoint loop ran 2× slower)
        g = torch.mul(gy_t[:, :, None, :], C_t[..., None], out=torch.empty_like(a))  # (T, b, N, H)
        g = _recur_back_(a, g, carry, inner)  # (T, b, N, H)
        g_dA = g * a  # (T, b, N, H)    Ā_k ⊙ ḡ_k
        carry = g_dA[0].clone()  # (b, N, H)    Ā_k ḡ_k at the block's first step
        # ∂/∂(Δ_k A) = ḡ_k ⊙ Ā_k ⊙ x_{k−1}, x_{k−1} the previous state (the entering state first)
        g_dA[1:].mul_(xs[:-1])
        g_dA[0].mul_(entering[i])
        del xs
        gB_sum = (B_t.unsqueeze(-2) @ g)[:, :, 0]  # (T, b, H)    Σ_n ḡ_k B_k
        gdelta[..., s:e] = torch.addcmul((g_dA * At).sum(-2), u_t, gB_sum).permute(1, 2, 0)  # (b, H, T)
        gu[..., s:e] = (d_t * gB_sum).permute(1, 2, 0)  # (b, H, T)
        gAt += (g_dA * d_t[:, :, None, :]).sum(dim=(0, 1))  # (N, H)
        gB[:, s:e] = (g * (d_t * u_t)[:, :, None, :]).sum(-1).transpose(0, 1)  # (b, T, N)    Σ_h ḡ_k Δ_k u_k
    return gAt, carry


# Selective scan with a hand-written backward that recomputes the states block by block (the
# recomputation of Gu & Dao 2023 §3.3.2, "hardware-aware algorithm", with time blocks in place of SRAM tiles)
class _SelectiveScan(torch.autograd.Function):
    """Forward: states block by block, only each block's entering state kept. Backward (adjoint):

        ḡ_k = C_k ȳ_k + Ā_{k+1} ⊙ ḡ_{k+1}       (ḡ_L-1 gets the gradient of x_last)
        ∂/∂(ΔA)_k = ḡ_k ⊙ x_{k−1} ⊙ Ā_k,        ∂/∂(B̄u)_k = ḡ_k,         ∂/∂C_k = Σ_h ȳ_k x_k

    then the chain rule through Ā_k = exp(Δ_k A), B̄_k u_k = Δ_k u_k B_k and D u_k. The series of
    the batch are independent: on a CPU with several threads the batch is cut into parts that run
    side by side (:func:`_batch_parts`, :func:`_map_parts`), each part's loop on one thread.
    """

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, x0, block, inner):
        batch, H, L = u.shape
        N = A.shape[1]
        At = A.t().contiguous()  # (N, H): the blocks keep the channels last (see _block_terms)
        x0 = u.new_zeros(batch, N, H) if x0 is None else x0.transpose(1, 2)  # (batch, N, H)
        y = u.new_empty(batch, H, L)  # (batch, H, L)
        parts, threads = _batch_parts(batch, batch * H * N, u.device)

        def part(bounds):
            p = slice(*bounds)
            return _scan_forward_part(u[p], delta[p], At, B[p], C[p], x0[p], block, inner, y[p])

        outs = _map_parts(part, parts, threads, u.device.type == "cpu")
        x = torch.cat([x for x, _ in outs])  # (batch, N, H)
        if D is not None:
            y = torch.addcmul(y, D[:, None], u)  # (batch, H, L)
        ctx.save_for_backward(u, At, B, C, D, *(t for _, saved in outs for t in saved))
        ctx.block, ctx.inner, ctx.parts, ctx.threads = block, inner, parts, threads
        return y, x.transpose(1, 2).contiguous()  # (batch, H, L), (batch, H, N)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy, gx_last):
        u, At, B, C, D, *saved = ctx.saved_tensors
        gy = torch.zeros_like(u) if gy is None else gy  # (batch, H, L)
        carry = torch.zeros(u.shape[0], *At.shape, dtype=u.dtype, device=u.device) if gx_last is None else gx_last.transpose(1, 2)
        gu, gdelta = torch.empty_like(u), torch.empty_like(u)  # (batch, H, L)
        gB, gC = torch.empty_like(B), torch.empty_like(C)  # (batch, L, N)
        grads = (gu, gdelta, gB, gC)

        def part(i):
            p = slice(*ctx.parts[i])
            part_grads = tuple(g[p] for g in grads)
            return _scan_backward_part(saved[3 * i : 3 * i + 3], At, B[p], C[p], gy[p], carry[p].contiguous(), ctx.block, ctx.inner, part_grads)

        outs = _map_parts(part, list(range(len(ctx.parts))), ctx.threads, u.device.type == "cpu")
        gAt = torch.stack([g for g, _ in outs]).sum(0)  # (N, H), the parts in a fixed order
        gD = None
        if D is not None:
            gu = torch.addcmul(gu, D[:, None], gy)  # (batch, H, L)
            gD = (gy * u).sum(dim=(0, 2))  # (H,)
        gx0 = None
        if ctx.needs_input_grad[6]:
            gx0 = torch.cat([c for _, c in outs]).transpose(1, 2)  # (batch, H, N)
        return gu, gdelta, gAt.t(), gB, gC, gD, gx0, None, None


#: Steps per block of the fused CPU scan: its backward recomputes a block's states and Ā into two
#: (T, N) buffers that stay in L1, and the forward keeps one state per block (batch · H · N · L / T values).
FUSED_BLOCK = 64
#: The fused scan splits the batch over threads (each part one C++ call that runs without the GIL)
#: when a call holds at least this many values (batch · H · N · L, ~0.3 ms of work): below it,
#: handing a part to a pool thread costs about what it saves.
FUSED_PARALLEL_NUMEL = 2**18


def _rows(t: torch.Tensor | None, p: slice) -> torch.Tensor | None:
    """Rows p of an optional per-series tensor (a batch part's view), None for None."""
    return None if t is None else t[p]


def _fused_parts(batch: int, numel: int) -> tuple[list[tuple[int, int]], int]:
    """→ ([(start, stop)] of the batch parts, threads): one part per thread, as many threads as
    torch's intra-op count, the series and FUSED_PARALLEL_NUMEL allow."""
    threads = max(1, min(torch.get_num_threads(), batch, numel // FUSED_PARALLEL_NUMEL))
    bounds = [batch * i // threads for i in range(threads + 1)]
    return list(zip(bounds[:-1], bounds[1:])), threads


# The same scan and adjoint as _SelectiveScan, fused into one C++ loop per series and channel
# (_fused_scan.cpp): the state stays in registers, Ā = exp(ΔA) is computed once per step (twice
# with the backward's recomputation) and nothing of size (T, batch, N, H) is written to memory.
class _FusedSelectiveScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, x0, block):
        # u, Δ and y keep their strides: Mamba's Δ arrives time-major, (batch, L, H) transposed
        A, B, C = (t.contiguous() for t in (A, B, C))
        D, x0 = (None if t is None else t.contiguous() for t in (D, x0))
        batch, H, L = u.shape
        N = A.shape[1]
        time_major = u.stride(1) == 1 or delta.stride(1) == 1
        y = u.new_empty(batch, L, H).transpose(1, 2) if time_major else u.new_empty(batch, H, L)  # (batch, H, L)
        x_last = u.new_empty(batch, H, N)
        entering = u.new_empty(batch, H, -(-L // block), N)  # the state entering each block
        parts, threads = _fused_parts(batch, batch * H * N * L)

        def part(bounds):
            p = slice(*bounds)
            _fused.forward(u[p], delta[p], A, B[p], C[p], D, _rows(x0, p), block, y[p], x_last[p], entering[p])

        _map_parts(part, parts, threads, cpu=True)
        ctx.save_for_backward(u, delta, A, B, C, D, entering)
        ctx.block, ctx.parts, ctx.threads = block, parts, threads
        return y, x_last

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy, gx_last):
        u, delta, A, B, C, D, entering = ctx.saved_tensors
        batch = u.shape[0]
        gy = torch.zeros_like(u) if gy is None else gy  # (batch, H, L), any strides
        gx_last = None if gx_last is None else gx_last.contiguous()  # (batch, H, N)
        gu, gdelta = torch.empty_like(u), torch.empty_like(delta)  # (batch, H, L), the inputs' strides
        gB, gC = torch.empty_like(B), torch.empty_like(C)  # (batch, L, N)
        gA, gx0 = u.new_empty(batch, *A.shape), u.new_empty(batch, *A.shape)  # (batch, H, N): ∂A per series
        gD = None if D is None else u.new_empty(batch, A.shape[0])  # (batch, H): ∂D per series

        def part(bounds):
            p = slice(*bounds)
            part_gx_last, part_gD = _rows(gx_last, p), _rows(gD, p)
            outs = (gu[p], gdelta[p], gA[p], gB[p], gC[p], part_gD, gx0[p])
            _fused.backward(u[p], delta[p], A, B[p], C[p], D, entering[p], gy[p], part_gx_last, ctx.block, *outs)

        _map_parts(part, ctx.parts, ctx.threads, cpu=True)
        gD = None if gD is None else gD.sum(0)  # (H,)
        return gu, gdelta, gA.sum(0), gB, gC, gD, gx0 if ctx.needs_input_grad[6] else None, None


#: Ways of running :func:`selective_scan`'s recurrence ("auto": the "fused" C++ scan on the CPU where
#: it builds, else "loop"; the compiled "associative" scan on CUDA where it works, "chunked" elsewhere).
SELECTIVE_INNER: tuple[str, ...] = ("auto", "fused", "loop", "chunked", "associative")


# Mamba's selective scan (Gu & Dao 2023 §3.3, Alg. 2) with ZOH of A and Euler of B:
#   x_k = exp(Δ_k A) ⊙ x_{k−1} + Δ_k u_k B_k,   y_k = Σ_n C_{k,n} x_{k,n} + D u_k
def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    x0: torch.Tensor | None = None,
    *,
    block_size: int | None = None,
    inner: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused selective scan; u, Δ (batch, H, L), A (H, N), B, C (batch, L, N), D (H,) → y (batch, H, L), x_L (batch, H, N).

    The (batch, H, L, N) tensors of Ā, B̄u and the states are never materialised: the time axis is
    cut into blocks of T steps, Ā and B̄u are formed per block, and only the state entering each
    block is stored. The backward is written by hand (the adjoint recurrence, run backwards block by
    block from recomputed states), so training memory is O(batch · H · (L + N · L / T) + batch · L · N)
    plus five (T, batch, N, H) blocks, instead of autograd's O(batch · H · L · N), and autograd records
    one node instead of L. Same values as :func:`selective_scan_seq` (to rounding).

    On a CPU the fused C++ scan runs by default (``inner`` below); the block loop runs on one intra-op thread; with several threads (``torch.get_num_threads()``)
    and at least ``PARALLEL_STEP_NUMEL`` values per part and step, the batch is cut into parts whose
    loops run side by side on their own threads (the series are independent; ∂A sums the parts in a fixed order,
    so a given thread count gives the same bits every time). CPU autocast is off inside the scan.

    Parameters
    ----------
    u, delta : Tensor of shape (batch, H, L)
        Input and positive step Δ per channel and step (real).
    A : Tensor of shape (H, N)
        Diagonal continuous state matrix (real, negative for a stable scan).
    B, C : Tensor of shape (batch, L, N)
        Input-dependent input and output vectors.
    D : Tensor of shape (H,), optional
        Skip connection.
    x0 : Tensor of shape (batch, H, N), optional
        State before the first step; zeros if omitted.
    block_size : int, optional
        Steps per block T; default ``FUSED_BLOCK`` for the fused scan, ``BLOCK_NUMEL // (batch · H · N)``
        for the CPU block loop (at least ``MIN_BLOCK``) and ``CUDA_BLOCK_NUMEL // (batch · H · N)``
        elsewhere (at least 16).
    inner : {"auto", "fused", "loop", "chunked", "associative"}, default "auto"
        How the scan runs. "fused" (the default on the CPU for float32 / float64 where a C++
        compiler is found; ``SSMFORECAST_FUSED_SCAN=0`` keeps "auto" off it): the whole scan and its
        adjoint as one C++ loop per series and channel with the state in registers, built on first
        use (``_fused_scan.cpp``), the batch split over threads without the GIL; blocks of
        ``FUSED_BLOCK`` steps by default. Otherwise the recurrence inside a block: one in-place
        step at a time ("loop", the CPU fallback, where a step's data stays in cache), the chunked scan of :func:`linear_recurrence`
        (accelerators without an associative scan), or PyTorch's higher-order associative scan of
        the affine steps ("associative": ``torch.compile``d on CUDA, where it is the default,
        eager elsewhere; on this project's 2-core CPU it was slower than the loop, a log-depth
        sweep doing T log T work). The first call per block shape on CUDA compiles (≈ 10 s).
        A torch without ``associative_scan`` raises ValueError for it.

    Returns
    -------
    y : Tensor of shape (batch, H, L)
    x_last : Tensor of shape (batch, H, N)
        State after the last step, to pass as ``x0`` of the next call.

    Raises
    ------
    ValueError
        For shapes that disagree, L = 0, complex or non-finite inputs, a block_size < 1, an
        unknown ``inner``, or ``inner="fused"`` off the CPU, in another dtype or where it cannot be built.
    """
    _check_selective(u, delta, A, B, C, D, x0)
    check_choice("inner", inner, SELECTIVE_INNER)
    batch, H, L = u.shape
    if block_size is not None and (isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1):
        raise ValueError(f"block_size must be an int >= 1, got {block_size!r}")
    dtype = torch.promote_types(u.dtype, delta.dtype)
    for t in (A, B, C) + tuple(t for t in (D, x0) if t is not None):
        dtype = torch.promote_types(dtype, t.dtype)
    if inner == "auto":
        inner = _auto_inner(u.device, dtype)
    elif inner == "fused":
        _check_fused(u.device, dtype)
    if block_size is None:
        cpu = u.device.type == "cpu"
        numel, fewest = (BLOCK_NUMEL, MIN_BLOCK) if cpu else (CUDA_BLOCK_NUMEL, 16)
        block_size = FUSED_BLOCK if inner == "fused" else max(fewest, numel // max(1, batch * H * A.shape[1]))
    cast = lambda t: None if t is None else t.to(dtype)  # noqa: E731
    args = [cast(t) for t in (u, delta, A, B, C, D, x0)]
    if inner == "fused":
        return _FusedSelectiveScan.apply(*args, min(block_size, L))
    return _SelectiveScan.apply(*args, min(block_size, L), inner)


def _check_fused(device: torch.device, dtype: torch.dtype) -> None:
    """inner="fused" asked for explicitly: a CPU, float32 or float64, and a library that builds."""
    if device.type != "cpu":
        raise ValueError(f"inner='fused' runs on the CPU only, got tensors on {device}; use inner='auto'")
    if dtype not in _fused.DTYPES:
        raise ValueError(f"inner='fused' runs float32 and float64 only, got {dtype}; use inner='loop'")
    if _fused.library() is None:
        raise ValueError("inner='fused': the C++ scan could not be built here (see the warning); use inner='loop'")


# ---------------------------------------------------------------------------------------------
# S4D with a step per sample
# ---------------------------------------------------------------------------------------------


# The same recurrence as discretize_diag (or foh_diag) + ssm_scan(conj_pairs=True), fused into one
# C++ loop per series and channel (_fused_scan.cpp): Ā_k and B̄_k are formed from Δ_k inside the
# loop (own vectorised exp, expm1 and sin / cos in float32), nothing of size (batch, H, L, n) is
# written, and the adjoint recomputes each block of states from the one entering it.
class _FusedDiagonalScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, Lambda, B, C, D, x0, u_before, kind, alpha, block):
        # view_as_real refuses a conjugate view (x.conj()): its conj bit is resolved into a copy first
        Lr, Br, Cr = (torch.view_as_real(t.resolve_conj()).contiguous() for t in (Lambda, B, C))  # (H, n, 2)
        x0r = None if x0 is None else torch.view_as_real(x0.resolve_conj()).contiguous()  # (batch, H, n, 2)
        D, u_before = (None if t is None else t.contiguous() for t in (D, u_before))  # (H,), (batch, H)
        batch, H, L = u.shape
        n = Lambda.shape[1]
        time_major = u.stride(1) == 1 or delta.stride(1) == 1
        y = u.new_empty(batch, L, H).transpose(1, 2) if time_major else u.new_empty(batch, H, L)  # (batch, H, L)
        x_last = u.new_empty(batch, H, n, 2)
        entering = u.new_empty(batch, H, -(-L // block), 2, n)  # the state entering each block, split
        parts, threads = _fused_parts(batch, batch * H * n * L * 8)  # ~8 real operations per complex mode-step

        def part(bounds):
            p = slice(*bounds)
            _fused.diag_forward(
                u[p], delta[p], Lr, Br, Cr, D, _rows(x0r, p), _rows(u_before, p), kind, alpha, block, y[p], x_last[p], entering[p]
            )

        _map_parts(part, parts, threads, cpu=True)
        ctx.save_for_backward(u, delta, Lr, Br, Cr, D, u_before, entering)
        ctx.kind, ctx.alpha, ctx.block, ctx.parts, ctx.threads = kind, alpha, block, parts, threads
        return y, torch.view_as_complex(x_last)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy, gx_last):
        u, delta, Lr, Br, Cr, D, u_before, entering = ctx.saved_tensors
        batch = u.shape[0]
        gy = torch.zeros_like(u) if gy is None else gy  # (batch, H, L), any strides
        gx_last = None if gx_last is None else torch.view_as_real(gx_last.resolve_conj()).contiguous()
        gu, gdelta = torch.empty_like(u), torch.empty_like(delta)  # (batch, H, L), the inputs' strides
        gLambda, gB, gC, gx0 = (u.new_empty(batch, *Lr.shape) for _ in range(4))  # (batch, H, n, 2): per series
        gD = None if D is None else u.new_empty(batch, Lr.shape[0])  # (batch, H)
        gu_before = None if u_before is None else torch.empty_like(u_before)  # (batch, H)

        def part(bounds):
            p = slice(*bounds)
            grads = (gu[p], gdelta[p], gLambda[p], gB[p], gC[p], _rows(gD, p), gx0[p], _rows(gu_before, p))
            _fused.diag_backward(
                u[p], delta[p], Lr, Br, Cr, D, _rows(u_before, p), entering[p], gy[p], _rows(gx_last, p),
                ctx.kind, ctx.alpha, ctx.block, grads,
            )  # fmt: skip

        _map_parts(part, ctx.parts, ctx.threads, cpu=True)
        complex_sum = lambda t: torch.view_as_complex(t.sum(0))  # noqa: E731  (H, n)
        gD = None if gD is None else gD.sum(0)  # (H,)
        gx0 = torch.view_as_complex(gx0) if ctx.needs_input_grad[6] else None
        return gu, gdelta, complex_sum(gLambda), complex_sum(gB), complex_sum(gC), gD, gx0, gu_before, None, None, None


#: Ways of running :func:`diagonal_scan` ("auto": "fused" on the CPU where the C++ library builds, else "reference").
DIAGONAL_INNER: tuple[str, ...] = ("auto", "fused", "reference")
#: Discretizations of :func:`diagonal_scan`: ZOH, the GBT family and the first-order hold.
DIAGONAL_METHODS: tuple[str, ...] = (*DISCRETIZE_METHODS, "foh")


# S4D with a step per sample (Gu et al. 2022 "On the parameterization and initialization of diagonal
# SSMs" §2–3; the time-varying diagonal recurrence of S5, Smith et al. 2023 §3):
#   x_k = Ā(Δ_k) ⊙ x_{k−1} + B̄(Δ_k) u_k [+ B̄⁰(Δ_k) u_{k−1}, first-order hold],   y_k = 2 Re Σ_n C_n x_{k,n} + D u_k
def diagonal_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    Lambda: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    x0: torch.Tensor | None = None,
    *,
    method: str = "zoh",
    u_before: torch.Tensor | None = None,
    block_size: int | None = None,
    inner: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """S4D's scan with its own step per sample; u, Δ (batch, H, L), Λ, B, C (H, n) → y (batch, H, L), x_L (batch, H, n).

    Each of the n complex modes stands for itself and its conjugate (y takes twice the real part).
    (Ā_k, B̄_k) is the discretization of (Λ, B) by ``method`` with step Δ_k
    (:func:`~ssmforecast.math.discretize.discretize_diag`): ZOH Ā = e^{ΔΛ}, B̄ = (e^{ΔΛ} − 1) Λ⁻¹ B,
    or GBT(α) Ā = (1 + (1−α)ΔΛ)/(1 − αΔΛ), B̄ = ΔB/(1 − αΔΛ); or the first-order hold ("foh",
    :func:`~ssmforecast.math.discretize.foh_diag`: the input the straight line between samples),
    x_k = Ā x_{k−1} + B̄⁰ u_{k−1} + B̄¹ u_k.

    Parameters
    ----------
    u, delta : Tensor of shape (batch, H, L)
        Real input and step Δ_k > 0 per channel and sample (Δ · the time since the previous sample).
    Lambda, B, C : Tensor of shape (H, n)
        Diagonal state matrix (no zero entry for the fused ZOH), input and output vectors; complex
        (real ones are taken as complex).
    D : Tensor of shape (H,), optional
        Real skip connection.
    x0 : Tensor of shape (batch, H, n), optional
        Complex state before the first step; zeros if omitted.
    method : {"zoh", "bilinear", "euler", "backward_euler", "foh"}, default "zoh"
    u_before : Tensor of shape (batch, H), optional
        First-order hold: the input before u_0 (streaming: the previous part's last input); u_0 if omitted.
    block_size : int, optional
        Steps per block of the fused scan (states kept for the backward every T steps); default ``FUSED_BLOCK``.
    inner : {"auto", "fused", "reference"}, default "auto"
        "fused": one C++ loop per series and channel that forms Ā_k, B̄_k on the fly (float32 /
        float64 on the CPU, built on first use like :func:`selective_scan`'s; its float32 exp,
        expm1, sin and cos are within a few ulp of float64's for |Δ_k Im Λ| up to ~10⁴), with a
        hand-written adjoint: memory O(batch · H · (L + n L / T)). "reference":
        ``discretize_diag`` over the whole sequence and :func:`ssm_scan` under autograd, memory
        O(batch · H · L · n). "auto" takes "fused" where it runs (and ``SSMFORECAST_FUSED_SCAN`` is not 0).

    Returns
    -------
    y : Tensor of shape (batch, H, L)
    x_last : Tensor of shape (batch, H, n)
        Complex state after the last step, to pass as ``x0`` of the next call.

    Raises
    ------
    ValueError
        For shapes that disagree, L = 0, non-finite inputs, a Δ that is not strictly positive, a complex u, Δ or D, an unknown
        ``method`` or ``inner``, ``u_before`` without "foh", a block_size < 1, or ``inner="fused"``
        where it cannot run (off the CPU, a library that does not build, a zero in Λ under ZOH / FOH).
    """
    check_choice("inner", inner, DIAGONAL_INNER)
    check_choice("method", method, DIAGONAL_METHODS)
    foh = method == "foh"
    alpha = None if foh else method_alpha(method)
    if u_before is not None and not foh:
        raise ValueError(f"u_before is read only with method='foh' (first-order hold); got method={method!r}")
    _check_diagonal(u, delta, Lambda, B, C, D, x0, u_before)
    if block_size is not None and (isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1):
        raise ValueError(f"block_size must be an int >= 1, got {block_size!r}")
    real = torch.promote_types(u.dtype, delta.dtype)
    for t in (Lambda, B, C, D, x0, u_before):
        if t is not None:
            real = torch.promote_types(real, t.real.dtype if t.is_complex() else t.dtype)
    real = torch.promote_types(real, torch.float32)  # half precision: the scan accumulates in float32
    cplx = torch.complex64 if real == torch.float32 else torch.complex128
    zero = inner != "reference" and alpha is None and bool((Lambda == 0).any())  # the fused ZOH and FOH divide by Λ
    if inner == "fused":
        _check_fused(u.device, real)
        if zero:
            raise ValueError(f"inner='fused' with method={method!r} needs Λ without zero entries; use inner='reference'")
    elif inner == "auto":
        inner = "fused" if not zero and _fused.available(u.device, real) else "reference"
    u, delta = u.to(real), delta.to(real)
    Lambda, B, C = (t.to(cplx) for t in (Lambda, B, C))
    D, u_before = (None if t is None else t.to(real) for t in (D, u_before))
    x0 = None if x0 is None else x0.to(cplx)
    if inner == "fused":
        kind = "foh" if foh else ("zoh" if alpha is None else "gbt")
        block = min(block_size or FUSED_BLOCK, u.shape[-1])
        return _FusedDiagonalScan.apply(u, delta, Lambda, B, C, D, x0, u_before, kind, alpha or 0.0, block)
    if foh:
        dA, dB0, dB1 = foh_diag(Lambda[:, None, :], B[:, None, :], delta)  # (batch, H, L, n)
        return ssm_scan(u, dA, dB1, C[:, None, :], D, x0, conj_pairs=True, dB_prev=dB0, u_before=u_before)
    dA, dB = discretize_diag(Lambda[:, None, :], B[:, None, :], delta, method)  # (batch, H, L, n)
    return ssm_scan(u, dA, dB, C[:, None, :], D, x0, conj_pairs=True)


def _check_diagonal(u, delta, Lambda, B, C, D, x0, u_before) -> None:
    named = {"u": u, "delta": delta, "Lambda": Lambda, "B": B, "C": C} | ({} if D is None else {"D": D})
    named |= ({} if x0 is None else {"x0": x0}) | ({} if u_before is None else {"u_before": u_before})
    for name, t in named.items():
        check_finite(name, t)
        _check_float(name, t)
    for name in ("u", "delta", "D", "u_before"):
        if name in named and named[name].is_complex():
            raise ValueError(f"{name} must be real, got dtype {named[name].dtype}")
    if u.ndim != 3 or u.shape[-1] == 0:
        raise ValueError(f"u must have shape (batch, H, L) with L >= 1, got {tuple(u.shape)}")
    batch, H, _ = u.shape
    if delta.shape != u.shape:
        raise ValueError(f"delta must have u's shape {tuple(u.shape)}, got {tuple(delta.shape)}")
    check_step(delta, "delta")  # as discretize_diag requires of Δ
    if Lambda.ndim != 2 or Lambda.shape[0] != H:
        raise ValueError(f"Lambda must have shape (H, n) = ({H}, n), got {tuple(Lambda.shape)}")
    for name in ("B", "C"):
        if named[name].shape != Lambda.shape:
            raise ValueError(f"{name} must have Lambda's shape {tuple(Lambda.shape)}, got {tuple(named[name].shape)}")
    if D is not None and D.shape != (H,):
        raise ValueError(f"D must have shape (H,) = ({H},), got {tuple(D.shape)}")
    if x0 is not None and x0.shape != (batch, *Lambda.shape):
        raise ValueError(f"x0 must have shape (batch, H, n) = {(batch, *Lambda.shape)}, got {tuple(x0.shape)}")
    if u_before is not None and u_before.shape != (batch, H):
        raise ValueError(f"u_before must have shape (batch, H) = {(batch, H)}, got {tuple(u_before.shape)}")
