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

import math

import torch

from ._checks import check_broadcast, check_finite, check_last_dim, check_square
from .discretize import _as_step, _check_dplr, dplr_gbt, method_alpha


def _check_length(L: int) -> int:
    if isinstance(L, bool) or not isinstance(L, int) or L < 1:
        raise ValueError(f"kernel length L must be a positive int, got {L!r}")
    return L


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
    if dA.is_complex() or bool((dA < 0).any()):
        dA = dA.to(torch.promote_types(dA.dtype, torch.complex64))  # log of a negative real is complex
    log_dA = torch.log(dA)  # (..., N)
    # Ā_n = 0 (a mode that dies in one step): log = −∞ would give 0 · ∞ at l = 0; any very negative
    # real part gives the right powers (1, 0, 0, …).
    floor = torch.finfo(log_dA.real.dtype).min / (4 * L)
    log_dA = torch.where(log_dA.real < floor, torch.full_like(log_dA, floor), log_dA)
    c = block if block is not None else max(1, math.isqrt(L - 1) + 1)
    n_blocks = -(-L // c)
    real = log_dA.real.dtype
    i = torch.arange(c, device=dA.device, dtype=real)  # (c,)
    j = torch.arange(n_blocks, device=dA.device, dtype=real) * c  # (L/c,)
    inner = torch.exp(log_dA[..., :, None] * i)  # (..., N, c)          Ā_n^i
    outer = torch.exp(log_dA[..., None, :] * j[:, None])  # (..., L/c, N)  Ā_n^{cj}
    CB = (C * dB).to(outer.dtype)  # (..., N)
    K = ((CB[..., None, :] * outer) @ inner).flatten(-2)[..., :L]  # (..., L)
    return 2 * K.real if conj_pairs else K


# Cauchy product in homogeneous form (S4 §3.3, Algorithm 1 step 2): k_j = Σ_n v_n / (α_j − β_j w_n)
def cauchy(
    v: torch.Tensor,
    w: torch.Tensor,
    alpha: torch.Tensor,
    beta: torch.Tensor | None = None,
    *,
    conj_pairs: bool = False,
    chunk_size: int = 1024,
) -> torch.Tensor:
    """Cauchy matrix-vector products k_j = Σ_n v_n / (α_j − β_j w_n); v (..., [K,] N), w (..., N), α, β (..., M) → k (..., [K,] M).

    β = 1 gives the usual Cauchy kernel Σ_n v_n / (z_j − w_n). Several vectors v (axis K) share one
    Cauchy matrix R_jn = 1/(α_j − β_j w_n), formed ``chunk_size`` nodes at a time (memory
    O(N · chunk_size) per batch element, never O(N · M)) and applied as a matrix product. With
    ``conj_pairs`` every mode is summed with its conjugate, adding Σ_n v̄_n / (α_j − β_j w̄_n).
    """
    single = v.ndim == w.ndim
    if single:
        v = v[..., None, :]  # (..., 1, N)
    if beta is None:
        beta = torch.ones_like(alpha)
    vT = v.transpose(-1, -2)  # (..., N, K)
    k = []
    for start in range(0, alpha.shape[-1], chunk_size):
        a = alpha[..., start : start + chunk_size, None]  # (..., m, 1)
        b = beta[..., start : start + chunk_size, None]  # (..., m, 1)
        r = torch.reciprocal(a - b * w[..., None, :]) @ vT  # (..., m, K)
        if conj_pairs:
            r = r + torch.reciprocal(a - b * w.conj()[..., None, :]) @ vT.conj()  # (..., m, K)
        k.append(r)
    k = torch.cat(k, dim=-2).transpose(-1, -2)  # (..., K, M)
    return k[..., 0, :] if single else k


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
