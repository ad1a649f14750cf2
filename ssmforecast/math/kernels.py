"""Convolution kernels of a discrete SSM: K̄ = (C̄B̄, C̄ĀB̄, …, C̄Ā^{L−1}B̄)  (S4 §2.4, eq. (5)).

With x_{−1} = 0, the recurrence x_k = Ā x_{k−1} + B̄ u_k, y_k = C x_k is the causal convolution
y = K̄ * u. Three ways to compute K̄, each checked against the one before it in the tests:

- :func:`power_kernel`: the definition, by repeated multiplication with Ā (any dense Ā; O(L N²)).
- :func:`krylov_kernel`: the same for a dense Ā in ⌈log₂ L⌉ doubling steps.
- :func:`vandermonde_kernel`: diagonal Ā (S4D): K̄_l = Σ_n C_n B̄_n Ā_n^l, a Vandermonde product.
- :func:`dplr_kernel`: diagonal plus low rank A = Λ − PᵀQ̄ under GBT(α) (S4's bilinear for α = ½):
  the truncated generating function at the L-th roots of unity, a Cauchy product per term of the
  Woodbury identity, then an inverse FFT (S4 Algorithm 1).

Kernels of complex systems are complex. ``conj_pairs=True`` declares that each given mode n stands
for itself and its complex conjugate (a real system of twice the state size, as S4 and S4D store
it); the kernel is then real, K̄_l = 2 Re Σ_n C_n B̄_n Ā_n^l.
"""

from __future__ import annotations

import functools
import math
import numbers

import torch

from ._checks import check_broadcast, check_finite, check_last_dim, check_square
from .discretize import _as_step, _check_dplr, dplr_gbt, method_alpha


def _check_length(L: int) -> int:
    """L as an int; any integer type (``numpy.int64`` too), not a bool."""
    if isinstance(L, bool) or not isinstance(L, numbers.Integral) or L < 1:
        raise ValueError(f"kernel length L must be a positive int, got {L!r}")
    return int(L)


# Definition (S4 eq. (5)): K̄_l = C Ā^l B̄, l = 0, …, L−1
def power_kernel(dA: torch.Tensor, dB: torch.Tensor, C: torch.Tensor, L: int) -> torch.Tensor:
    """Naive kernel K̄_l = C Ā^l B̄; Ā (..., N, N), B̄ (..., N), C (..., N) → K̄ (..., L).

    The reference for the fast kernels: L matrix-vector products, no structure assumed.
    """
    L = _check_length(L)
    N = check_square("dA", dA)
    check_last_dim("dB", dB, N)
    check_last_dim("C", C, N)
    check_broadcast(dA=dA[..., 0], dB=dB, C=C)
    v = dB  # (..., N)   Ā^l B̄
    K = []
    for _ in range(L):
        K.append((C * v).sum(-1))  # (...,)
        v = (dA @ v[..., None])[..., 0]  # (..., N)
    return torch.stack(K, dim=-1)  # (..., L)


# Krylov doubling (S4 Appendix B.2, "naive" Krylov by squaring): [B̄, ĀB̄, …, Ā^{2m−1}B̄] = [V_m, Ā^m V_m]
def krylov_kernel(dA: torch.Tensor, dB: torch.Tensor, C: torch.Tensor, L: int) -> torch.Tensor:
    """Dense kernel K̄_l = C Ā^l B̄ by doubling the Krylov block; Ā (..., N, N), B̄, C (..., N) → K̄ (..., L).

    ⌈log₂ L⌉ products, O(N² L + N³ log L) work instead of :func:`power_kernel`'s L sequential
    steps: the fast path for a dense Ā (e.g. a DPLR matrix under ZOH, which has no Cauchy form).
    """
    L = _check_length(L)
    N = check_square("dA", dA)
    check_last_dim("dB", dB, N)
    check_last_dim("C", C, N)
    check_broadcast(dA=dA[..., 0], dB=dB, C=C)
    V = dB[..., :, None]  # (..., N, 1)       columns Ā^l B̄, l < m
    M = dA  # (..., N, N)                      Ā^m
    while V.shape[-1] < L:
        V = torch.cat(torch.broadcast_tensors(V, M @ V), dim=-1)  # (..., N, 2m)
        M = M @ M  # (..., N, N)
    return (C[..., None, :] @ V[..., :L])[..., 0, :]  # (..., L)


# S4D (Gu et al. 2022, §3.2): K̄ = (C ⊙ B̄) · V_L(Ā), V_L(Ā)_{n,l} = Ā_n^l = exp(l log Ā_n).
# Blocked: with l = c·j + i (0 ≤ i < c), K̄_{cj+i} = Σ_n [C_n B̄_n Ā_n^{cj}] · Ā_n^i, a batched matrix product
# of (L/c, N) by (N, c): the N × L Vandermonde matrix is never formed.
def vandermonde_kernel(
    dA: torch.Tensor,
    dB: torch.Tensor,
    C: torch.Tensor,
    L: int,
    *,
    conj_pairs: bool = False,
    block: int | None = None,
) -> torch.Tensor:
    """Diagonal kernel K̄_l = Σ_n C_n B̄_n Ā_n^l; Ā, B̄, C (..., N) → K̄ (..., L).

    Powers are exp(l · log Ā_n), exact in the exponent; written as l = c·j + i they need
    N·(L/c + c) complex exponentials (c = ``block``, default ⌈√L⌉) and one complex matrix product,
    with memory O(N · (L/c + c)) per batch element. With ``conj_pairs`` the kernel is 2 Re(·).
    """
    L = _check_length(L)
    if dA.ndim < 1:
        raise ValueError(f"dA must have shape (..., N), got {tuple(dA.shape)}")
    N = dA.shape[-1]
    check_last_dim("dB", dB, N)
    check_last_dim("C", C, N)
    check_broadcast(dA=dA, dB=dB, C=C)
    if block is not None and (isinstance(block, bool) or not isinstance(block, numbers.Integral) or block < 1):
        raise ValueError(f"block must be a positive int or None, got {block!r}")
    if dA.is_complex() or bool((dA < 0).any()):
        dA = dA.to(torch.promote_types(dA.dtype, torch.complex64))  # log of a negative real is complex
    log_dA = torch.log(dA)  # (..., N)
    # Ā_n = 0 (a mode that dies in one step): log = −∞ would give 0 · ∞ at l = 0; any very negative
    # real part gives the right powers (1, 0, 0, …).
    floor = torch.finfo(log_dA.real.dtype).min / (4 * L)
    log_dA = torch.where(log_dA.real < floor, torch.full_like(log_dA, floor), log_dA)
    c = int(block) if block is not None else max(1, math.isqrt(L - 1) + 1)
    n_blocks = -(-L // c)
    real = log_dA.real.dtype
    i = torch.arange(c, device=dA.device, dtype=real)  # (c,)
    j = torch.arange(n_blocks, device=dA.device, dtype=real) * c  # (L/c,)
    inner = torch.exp(log_dA[..., :, None] * i)  # (..., N, c)          Ā_n^i
    outer = torch.exp(log_dA[..., None, :] * j[:, None])  # (..., L/c, N)  Ā_n^{cj}
    CB = C * dB  # (..., N)
    # one dtype for the product: complex if any of Ā, B̄, C is (a real Ā ≥ 0 keeps real powers)
    dtype = torch.promote_types(CB.dtype, outer.dtype)
    CB, inner, outer = CB.to(dtype), inner.to(dtype), outer.to(dtype)
    K = ((CB[..., None, :] * outer) @ inner).flatten(-2)[..., :L]  # (..., L)
    return 2 * K.real if conj_pairs else K


# Default Cauchy block: ``cauchy`` takes as many nodes per chunk as keep one (batch, chunk, N) block of
# the Cauchy matrix within this many entries (8 MiB in complex64, 16 MiB in complex128). On a 2-core
# CPU, forward + backward of S4's kernel (H = 64, 2N = 128 modes, L = 16384) took about the same CPU
# time with 2^19 to 2^21 entries and 1.3-1.7x more with 2^16 or 2^17 (more, smaller products).
_CAUCHY_BLOCK_ENTRIES = 2**20


# Cauchy product in homogeneous form (S4 §3.3, Algorithm 1 step 2): k_j = Σ_n v_n / (α_j − β_j w_n)
def cauchy(
    v: torch.Tensor,
    w: torch.Tensor,
    alpha: torch.Tensor,
    beta: torch.Tensor | None = None,
    *,
    conj_pairs: bool = False,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Cauchy matrix-vector products k_j = Σ_n v_n / (α_j − β_j w_n); v (..., [K,] N), w (..., N), α, β (..., M) → k (..., [K,] M).

    β = 1 gives the usual Cauchy kernel Σ_n v_n / (z_j − w_n). Several vectors v (axis K) share one
    Cauchy matrix R_jn = 1/(α_j − β_j w_n), formed ``chunk_size`` nodes at a time and applied as a
    matrix product; the backward forms it again chunk by chunk instead of keeping it, so forward
    and backward together need memory O(K·N + K·M + N·chunk_size) per batch element, never O(N·M).
    The default ``chunk_size`` keeps one (batch, chunk, N) block (2N with ``conj_pairs``) within
    2^20 entries (8 MiB in complex64). With ``conj_pairs`` every mode is summed with its conjugate, adding
    Σ_n v̄_n / (α_j − β_j w̄_n) (the modes w, w̄ share one block of 2N columns). Inputs are promoted
    to one dtype; batch axes broadcast, and each gradient is summed back to its input's shape.
    """
    single = v.ndim == w.ndim
    if single:
        v = v[..., None, :]  # (..., 1, N)
    if beta is None:
        beta = torch.ones_like(alpha)
    N, M = w.shape[-1], alpha.shape[-1]
    check_last_dim("v", v, N)
    check_last_dim("beta", beta, M, "M")
    check_broadcast(v=v[..., 0, 0], w=w[..., 0], alpha=alpha[..., 0], beta=beta[..., 0])
    block = torch.broadcast_shapes(w.shape[:-1], alpha.shape[:-1], beta.shape[:-1])  # batch axes of R
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
    dtype = functools.reduce(torch.promote_types, (x.dtype for x in (v, w, alpha, beta)))
    v, w, alpha, beta = (x.to(dtype) for x in (v, w, alpha, beta))
    if conj_pairs:  # Σ_n v_n R_jn + Σ_n v̄_n R'_jn is one Cauchy product over the 2N modes (w, w̄)
        v = torch.cat([v, v.conj()], dim=-1)  # (..., K, 2N)
        w = torch.cat([w, w.conj()], dim=-1)  # (..., 2N)
    if chunk_size is None:
        chunk_size = max(1, _CAUCHY_BLOCK_ENTRIES // (math.prod(block) * w.shape[-1]))
    k = _Cauchy.apply(v, w, alpha, beta, chunk_size)  # (..., K, M)
    return k[..., 0, :] if single else k


# One block of the Cauchy matrix: R_jn = 1/(α_j − β_j w_n)
def _cauchy_matrix(w: torch.Tensor, a: torch.Tensor, b: torch.Tensor, buf: torch.Tensor | None) -> torch.Tensor:
    """R_jn = 1/(α_j − β_j w_n); w (..., N), α, β (..., m) → R (..., m, N), in ``buf`` (..., ≥ m, N) if given."""
    out = None if buf is None else buf[..., : a.shape[-1], :]  # (..., m, N)
    return torch.addcmul(a[..., :, None], b[..., :, None], w[..., None, :], value=-1, out=out).reciprocal_()


# Workspace of the chunked Cauchy product: one block (..., chunk, N), memory O(N · chunk) per batch element
def _block_buffer(w: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor, chunk: int) -> torch.Tensor | None:
    """One (..., chunk, N) block reused by every chunk: a fixed footprint and no allocation per chunk.

    Blocks allocated and freed chunk after chunk grew the resident set to the size of the whole
    (..., M, N) matrix in a measurement (glibc's malloc did not hand the freed blocks back). None
    under grad mode (a backward with ``create_graph``), where ``out=`` is not differentiable.
    """
    if torch.is_grad_enabled():
        return None
    batch = torch.broadcast_shapes(w.shape[:-1], alpha.shape[:-1], beta.shape[:-1])
    return w.new_empty(*batch, min(chunk, alpha.shape[-1]), w.shape[-1])  # (..., chunk, N)


# k_j = Σ_n v_n R_jn and its vector-Jacobian product, R_jn = 1/(α_j − β_j w_n):
#   ∂k_j/∂v_n = R_jn,  ∂k_j/∂w_n = v_n β_j R_jn²,  ∂k_j/∂α_j = −Σ_n v_n R_jn²,  ∂k_j/∂β_j = Σ_n v_n w_n R_jn²
# k is holomorphic in every input, so in PyTorch's convention (cotangent g = ∂ℒ/∂k̄) the gradient of z is
# conj(Σ_j ḡ_j ∂k_j/∂z). Both passes form R one chunk of nodes at a time; only v, w, α, β are saved.
class _Cauchy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v, w, alpha, beta, chunk: int):
        """v (..., K, N), w (..., N), α, β (..., M) of one dtype → k (..., K, M)."""
        ctx.save_for_backward(v, w, alpha, beta)
        ctx.chunk = chunk
        vT = v.transpose(-1, -2)  # (..., N, K)
        buf = _block_buffer(w, alpha, beta, chunk)  # (..., chunk, N)
        k = [
            _cauchy_matrix(w, alpha[..., j : j + chunk], beta[..., j : j + chunk], buf) @ vT  # (..., m, K)
            for j in range(0, alpha.shape[-1], chunk)
        ]
        return torch.cat(k, dim=-2).transpose(-1, -2)  # (..., K, M)

    @staticmethod
    def backward(ctx, g):
        """g (..., K, M) → gradients of v, w, α, β, each of its input's shape (None where not needed)."""
        v, w, alpha, beta = ctx.saved_tensors
        need_v, need_w, need_a, need_b = ctx.needs_input_grad[:4]
        K, chunk = v.shape[-2], ctx.chunk
        gc = g.conj()  # (..., K, M)   ḡ
        # for ∂α and ∂β, R² is applied to the vectors v (∂α) and v ⊙ w (∂β)
        V = [x for x, need in ((v, need_a), (v * w[..., None, :], need_b)) if need]
        VT = torch.cat(V, dim=-2).transpose(-1, -2) if V else None  # (..., N, K or 2K)
        buf = _block_buffer(w, alpha, beta, chunk)  # (..., chunk, N)
        buf2 = None if buf is None or not (need_w or V) else torch.empty_like(buf)  # (..., chunk, N)
        gv = gw = 0  # Σ_j ḡ_kj R_jn, Σ_j ḡ_kj β_j R_jn²: (..., K, N)
        ga, gb = [], []  # per chunk: (..., m)
        for j in range(0, alpha.shape[-1], chunk):
            a, b = alpha[..., j : j + chunk], beta[..., j : j + chunk]  # (..., m)
            gc_m = gc[..., j : j + chunk]  # (..., K, m)
            R = _cauchy_matrix(w, a, b, buf)  # (..., m, N)
            if need_v:
                gv = gv + gc_m @ R  # (..., K, N)
            if not (need_w or V):
                continue
            R2 = torch.mul(R, R, out=None if buf2 is None else buf2[..., : R.shape[-2], :])  # (..., m, N)   R_jn²
            if need_w:
                gw = gw + (gc_m * b[..., None, :]) @ R2  # (..., K, N)
            if V:
                gU = gc_m.transpose(-1, -2)[..., None, :] * (R2 @ VT).unflatten(-1, (-1, K))  # (..., m, 1 or 2, K)
            if need_a:  # ∂α_j = conj(−Σ_k ḡ_kj Σ_n v_kn R_jn²)
                ga.append(-gU[..., 0, :].sum(-1).conj().sum_to_size(*alpha.shape[:-1], a.shape[-1]))  # (..., m)
            if need_b:  # ∂β_j = conj(Σ_k ḡ_kj Σ_n v_kn w_n R_jn²)
                gb.append(gU[..., -1, :].sum(-1).conj().sum_to_size(*beta.shape[:-1], b.shape[-1]))  # (..., m)
        grad_v = gv.conj().sum_to_size(v.shape) if need_v else None  # (..., K, N)
        grad_w = (v * gw).sum(-2).conj().sum_to_size(w.shape) if need_w else None  # (..., N)
        grad_a = torch.cat(ga, dim=-1) if need_a else None  # (..., M)
        grad_b = torch.cat(gb, dim=-1) if need_b else None  # (..., M)
        return grad_v, grad_w, grad_a, grad_b, None


def _conj_expand(x: torch.Tensor) -> torch.Tensor:
    """(..., N) modes → (..., 2N): each mode followed by the block of conjugates."""
    return torch.cat([x, x.conj()], dim=-1)


# S4 Appendix C.3: C̃ = C (I − Ā^L), so that Σ_{l<L} C Ā^l B̄ ω^l = C̃ (I − Ā ω)⁻¹ B̄ when ω^L = 1
def dplr_truncated_C(
    Lambda: torch.Tensor,
    P: torch.Tensor,
    Q: torch.Tensor,
    C: torch.Tensor,
    dt,
    L: int,
    *,
    method: str = "bilinear",
    conj_pairs: bool = False,
) -> torch.Tensor:
    """C̃ = C (I − Ā^L) of a DPLR SSM; Λ, C (..., N), P, Q (..., r, N), Δ (...) → C̃ (..., N).

    Ā is the GBT discretization of A = diag(Λ) − PᵀQ̄ (:func:`~ssmforecast.math.discretize.dplr_gbt`),
    raised to the L-th power by repeated squaring. The low-rank term couples a mode to its
    conjugate, so with ``conj_pairs`` the system is expanded to all 2N modes for this step and the
    first N entries of C̃ are returned (the others are their conjugates).
    """
    L = _check_length(L)
    alpha = _gbt_alpha(method)
    N = Lambda.shape[-1]
    if conj_pairs:
        Lambda, P, Q, C = (_conj_expand(x) for x in (Lambda, P, Q, C))
    dA, _ = dplr_gbt(Lambda, P, Q, torch.zeros_like(Lambda), dt, alpha)  # (..., N', N')
    dA_L = torch.linalg.matrix_power(dA, L)  # (..., N', N')
    C_tilde = C - (C[..., None, :] @ dA_L)[..., 0, :]  # (..., N')
    return C_tilde[..., :N]


def _gbt_alpha(method: str) -> float:
    alpha = method_alpha(method)
    if alpha is None:
        raise ValueError(
            "the DPLR kernel needs a GBT discretization ('bilinear', 'euler' or 'backward_euler'); "
            "ZOH of a DPLR matrix has no Cauchy form"
        )
    return alpha


# S4 Algorithm 1 (generalized from α = ½ to GBT(α)):
#   K̂(ω_j) = C̃ (α_j I − β_j A)⁻¹ B,  α_j = (1 − ω_j)/Δ,  β_j = α + (1 − α) ω_j,  ω_j = exp(−2πi j/L)
#   Woodbury with R = diag(1/(α_j − β_j Λ)):
#   K̂ = k(C̃, B) − β k(C̃, P) [I_r + β k(Q̄, P)]⁻¹ k(Q̄, B),   k(a, b) = Σ_n a_n b_n / (α_j − β_j Λ_n)
#   K̄ = IFFT(K̂)
def dplr_kernel(
    Lambda: torch.Tensor,
    P: torch.Tensor,
    Q: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    dt,
    L: int,
    *,
    method: str = "bilinear",
    conj_pairs: bool = False,
    C_is_truncated: bool = False,
) -> torch.Tensor:
    """DPLR kernel by Cauchy + Woodbury at the roots of unity; Λ, B, C (..., N), P, Q (..., r, N), Δ (...) → K̄ (..., L).

    A = diag(Λ) − PᵀQ̄ is discretized by GBT(α) (``method``: S4 uses "bilinear"). The generating
    function of the kernel truncated to L terms is C̃(I − Āω)⁻¹B̄ at ω^L = 1, which the GBT turns
    into C̃(α_j I − β_j A)⁻¹B: a resolvent of A, hence Cauchy products after Woodbury. Writing
    α_j, β_j in homogeneous form keeps the node ω = −1 finite (the bilinear transform maps it to ∞).

    Parameters
    ----------
    Lambda, B, C : Tensor of shape (..., N)
    P, Q : Tensor of shape (..., r, N)
    dt : Tensor or float, broadcastable to the batch shape
    L : int
        Kernel length.
    method : {"bilinear", "euler", "backward_euler"}
    conj_pairs : bool
        Each mode stands for a conjugate pair (real kernel, computed from the L//2 + 1 nodes of a
        real FFT).
    C_is_truncated : bool
        C is already C̃ = C(I − Ā^L) (as when C̃ is the learned parameter); skips that step.

    Returns
    -------
    K : Tensor of shape (..., L), real if ``conj_pairs`` else complex
    """
    L = _check_length(L)
    alpha = _gbt_alpha(method)
    _check_dplr(Lambda, P, Q, B)
    check_last_dim("C", C, Lambda.shape[-1])
    check_finite("C", C)
    dt = _as_step(dt, Lambda)
    check_broadcast(Lambda=Lambda[..., 0], P=P[..., 0, 0], B=B[..., 0], C=C[..., 0], dt=dt)
    if not C_is_truncated:
        C = dplr_truncated_C(Lambda, P, Q, C, dt, L, method=method, conj_pairs=conj_pairs)
    M = L // 2 + 1 if conj_pairs else L  # nodes needed: a real kernel has a Hermitian spectrum
    cdtype = torch.promote_types(Lambda.dtype, torch.complex64)
    j = torch.arange(M, device=Lambda.device, dtype=dt.dtype)  # (M,)
    omega = torch.polar(torch.ones_like(j), -2 * math.pi * j / L)  # (M,)
    a = (1 - omega) / dt[..., None]  # (..., M)
    b = (alpha + (1 - alpha) * omega).expand_as(a)  # (..., M)

    # the 1 + 2r + r² Cauchy sums share one Cauchy matrix: k(x y)_j = Σ_n x_n y_n / (α_j − β_j Λ_n)
    r = P.shape[-2]
    Qc = Q.conj()  # (..., r, N)
    parts = [
        (C * B)[..., None, :],  # (..., 1, N)    C̃ B
        C[..., None, :] * P,  # (..., r, N)      C̃ P_m
        Qc * B[..., None, :],  # (..., r, N)     Q̄_i B
        (Qc[..., :, None, :] * P[..., None, :, :]).flatten(-3, -2),  # (..., r², N)  Q̄_i P_m
    ]
    batch = torch.broadcast_shapes(*(x.shape[:-2] for x in parts))
    v = torch.cat([x.expand(*batch, *x.shape[-2:]) for x in parts], dim=-2).to(cdtype)  # (..., 1 + 2r + r², N)
    k = cauchy(v, Lambda.to(cdtype), a, b, conj_pairs=conj_pairs)  # (..., 1 + 2r + r², M)
    k = k.movedim(-1, -2)  # (..., M, 1 + 2r + r²)
    k_CB = k[..., 0]  # (..., M)
    k_CP = k[..., 1 : 1 + r]  # (..., M, r)
    k_QB = k[..., 1 + r : 1 + 2 * r]  # (..., M, r)
    k_QP = k[..., 1 + 2 * r :].unflatten(-1, (r, r))  # (..., M, r, r): [i, m] = k(Q̄_i P_m)
    eye = torch.eye(r, dtype=cdtype, device=Lambda.device)
    corr = torch.linalg.solve(eye + b[..., None, None] * k_QP, k_QB[..., None])[..., 0]  # (..., M, r)
    K_hat = k_CB - b * (k_CP * corr).sum(-1)  # (..., M)
    if conj_pairs:
        return torch.fft.irfft(K_hat, n=L)  # (..., L) real
    return torch.fft.ifft(K_hat, n=L)  # (..., L) complex
