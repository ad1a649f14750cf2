"""Discretization of a continuous SSM x'(t) = A x(t) + B u(t) with a step Δ that may differ per step.

The discrete system is x_k = Ā_k x_{k−1} + B̄_k u_k, where u_k is the input *held over the step*
(t_{k−1}, t_k] of length Δ_k = t_k − t_{k−1}. Three forms of A are supported:

- dense A (..., N, N) (:func:`zoh`, :func:`gbt`),
- diagonal A = diag(Λ) with Λ (..., N), real or complex (:func:`zoh_diag`, :func:`gbt_diag`),
- diagonal plus low rank A = diag(Λ) − Pᵀ Q̄ with P, Q (..., r, N) (:func:`dplr_gbt`,
  :func:`dplr_gbt_step`), inverted with the Woodbury identity in O(N r) per step.

Δ broadcasts against the batch shape of A: a step ``dt`` of shape (...) with A (..., N, N) gives
Ā (..., N, N). For a step per time point, give A a time axis: ``A[..., None, :, :]`` with
``dt`` (..., L) gives Ā (..., L, N, N); for the diagonal forms ``Lambda[..., None, :]``.

Methods (:data:`METHODS`): ``"zoh"`` (zero-order hold, exact for piecewise-constant input) and the
generalized bilinear transform GBT(α) (Zhang, Liu & Chen 2007), Ā = (I − αΔA)⁻¹(I + (1−α)ΔA),
B̄ = (I − αΔA)⁻¹ΔB, with ``"euler"`` (α = 0, forward Euler), ``"backward_euler"`` (α = 1) and
``"bilinear"`` (α = ½, Tustin; the discretization of S4). For diagonal A, :func:`foh_diag` adds the
first-order hold, exact for an input linear between samples: x_k = Ā x_{k−1} + B̄₀ u_{k−1} + B̄₁ u_k.
"""

from __future__ import annotations

import math

import torch

from ._checks import check_broadcast, check_choice, check_finite, check_last_dim, check_square, check_step

#: GBT(α) parameter of each named method; ``"zoh"`` is not a GBT and maps to ``None``.
METHODS: dict[str, float | None] = {"zoh": None, "bilinear": 0.5, "euler": 0.0, "backward_euler": 1.0}


def _as_step(dt, like: torch.Tensor) -> torch.Tensor:
    """Δ as a real tensor on ``like``'s device with ``like``'s (real) precision, validated; a complex Δ
    (tensor, array or Python complex) is rejected before the cast, which would drop its imaginary part."""
    real = like.real.dtype if like.is_complex() else like.dtype
    given = dt if torch.is_tensor(dt) else torch.as_tensor(dt)  # the caller's dtype, complex included
    if given.is_complex():
        raise ValueError(f"dt must be real, got dtype {given.dtype}")
    dt = torch.as_tensor(dt, dtype=real, device=like.device)
    check_step(dt)
    return dt


def _check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"GBT alpha must lie in [0, 1], got {alpha!r}")
    return alpha


def method_alpha(method: str) -> float | None:
    """GBT(α) of a named method, ``None`` for ZOH; ValueError for an unknown name."""
    check_choice("discretization method", method, METHODS)
    return METHODS[method]


# ---------------------------------------------------------------------------------------------
# Dense A
# ---------------------------------------------------------------------------------------------


# ZOH via the augmented exponential (Van Loan 1978): exp(Δ [[A, B], [0, 0]]) = [[Ā, B̄], [0, 1]]
def zoh(A: torch.Tensor, B: torch.Tensor, dt) -> tuple[torch.Tensor, torch.Tensor]:
    """ZOH: Ā = exp(ΔA), B̄ = ∫₀^Δ exp(sA) ds B; A (..., N, N), B (..., N), Δ (...) → Ā (..., N, N), B̄ (..., N).

    Exact for an input held constant over each step. Computed from the matrix exponential of the
    augmented (N+1)×(N+1) matrix, so a singular A needs no special case.

    Parameters
    ----------
    A : Tensor of shape (..., N, N)
    B : Tensor of shape (..., N)
    dt : Tensor or float, broadcastable to the batch shape of A

    Returns
    -------
    dA : Tensor of shape (*batch, N, N)
    dB : Tensor of shape (*batch, N)
    """
    N = check_square("A", A)
    check_last_dim("B", B, N)
    check_finite("A", A)
    check_finite("B", B)
    dtype = torch.result_type(A, B)  # a real A with a complex B: the system is complex
    A, B = A.to(dtype), B.to(dtype)
    dt = _as_step(dt, A)
    batch = check_broadcast(A=A[..., 0, 0], B=B[..., 0], dt=dt)
    M = torch.zeros(*batch, N + 1, N + 1, dtype=dtype, device=A.device)  # (*batch, N+1, N+1)
    M[..., :N, :N] = A
    M[..., :N, N] = B
    E = torch.linalg.matrix_exp(dt[..., None, None] * M)  # (*batch, N+1, N+1)
    return E[..., :N, :N], E[..., :N, N]


# GBT(α) (Zhang et al. 2007; S4 §2.3 for α = ½): Ā = (I − αΔA)⁻¹(I + (1−α)ΔA), B̄ = (I − αΔA)⁻¹ΔB
def gbt(A: torch.Tensor, B: torch.Tensor, dt, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """GBT(α): Ā = (I − αΔA)⁻¹(I + (1−α)ΔA), B̄ = (I − αΔA)⁻¹ΔB; A (..., N, N), B (..., N) → Ā, B̄.

    α = 0 is forward Euler, α = 1 backward Euler, α = ½ the bilinear (Tustin) transform.
    """
    alpha = _check_alpha(alpha)
    N = check_square("A", A)
    check_last_dim("B", B, N)
    check_finite("A", A)
    check_finite("B", B)
    dtype = torch.result_type(A, B)  # a real A with a complex B: the system is complex
    A, B = A.to(dtype), B.to(dtype)
    dt = _as_step(dt, A)
    batch = check_broadcast(A=A[..., 0, 0], B=B[..., 0], dt=dt)
    I = torch.eye(N, dtype=dtype, device=A.device)  # (N, N)
    dtA = dt[..., None, None] * A  # (..., N, N)
    dtB = dt[..., None] * B  # (..., N)
    forward = I + (1 - alpha) * dtA  # (..., N, N)
    if alpha == 0.0:  # the batch shape of A, B and Δ together, as for α > 0 and ZOH
        return forward.expand(*batch, N, N).contiguous(), dtB.expand(*batch, N).contiguous()
    backward = I - alpha * dtA  # (..., N, N)
    rhs = torch.cat(torch.broadcast_tensors(forward, dtB[..., None]), dim=-1)  # (..., N, N+1)
    sol = torch.linalg.solve(backward.expand(rhs.shape[:-1] + (N,)), rhs)  # (..., N, N+1)
    return sol[..., :N], sol[..., N]


def discretize(A: torch.Tensor, B: torch.Tensor, dt, method: str = "zoh") -> tuple[torch.Tensor, torch.Tensor]:
    """Dense (A, B) → (Ā, B̄) by a named method: "zoh", "bilinear", "euler" or "backward_euler"."""
    alpha = method_alpha(method)
    return zoh(A, B, dt) if alpha is None else gbt(A, B, dt, alpha)


# ---------------------------------------------------------------------------------------------
# Diagonal A = diag(Λ)
# ---------------------------------------------------------------------------------------------


# φ₂(z) = (e^z − 1 − z)/z² = Σ_{j≥0} z^j/(j+2)!: where |z| < 0.1 the Taylor polynomial (to z⁴ in single
# precision, z¹⁰ in double: truncation below 10⁻⁹ and 10⁻²⁰ relative), elsewhere the closed form
# (whose cancellation there costs at most a factor ~20 of the precision)
_PHI2_TAYLOR = [1.0 / math.factorial(j + 2) for j in range(11)]
_SMALL_Z = 0.1


def _phi2_taylor(z: torch.Tensor) -> torch.Tensor:
    """The Taylor polynomial of φ₂ at 0 (Horner), accurate to the precision of z where |z| < 0.1."""
    terms = _PHI2_TAYLOR if z.real.dtype == torch.float64 else _PHI2_TAYLOR[:5]
    series = torch.full_like(z, terms[-1])
    for c in reversed(terms[:-1]):
        series = series * z + c
    return series


# φ₁(z) = (e^z − 1)/z = 1 + z φ₂(z): the series where |z| < 0.1, so that the value and its gradient
# φ₁'(z) = Σ_j (j+1) z^j/(j+2)! are exact at z = 0 and free of cancellation near it (autograd of
# expm1(z)/z, e^z/z − (e^z − 1)/z², loses a factor 1/|z| of the precision, and all of it at |z|² → 0)
def _phi1(z: torch.Tensor) -> torch.Tensor:
    """φ₁(z) = (e^z − 1)/z with φ₁(0) = 1, elementwise; value and gradient accurate for small |z|."""
    small = z.abs() < _SMALL_Z
    safe = torch.where(small, torch.ones_like(z), z)  # no 0/0 in the branch not taken (nor in its gradient)
    return torch.where(small, 1 + z * _phi2_taylor(z), torch.expm1(safe) / safe)


def _check_diag(Lambda: torch.Tensor, B: torch.Tensor) -> None:
    if Lambda.ndim < 1:
        raise ValueError(f"Lambda must have shape (..., N), got {tuple(Lambda.shape)}")
    check_last_dim("B", B, Lambda.shape[-1])
    check_finite("Lambda", Lambda)
    check_finite("B", B)


# ZOH for diagonal A (S4D §2, eq. (4)): Ā = exp(ΔΛ), B̄ = Λ⁻¹(exp(ΔΛ) − 1)B = Δ φ₁(ΔΛ) B
def zoh_diag(Lambda: torch.Tensor, B: torch.Tensor, dt) -> tuple[torch.Tensor, torch.Tensor]:
    """ZOH, diagonal: Ā = exp(ΔΛ), B̄ = Δ φ₁(ΔΛ) B; Λ (..., N), B (..., N), Δ (...) → Ā, B̄ (..., N).

    φ₁(z) = (e^z − 1)/z is its Taylor series near z = 0 and ``expm1(z)/z`` elsewhere, so Λ → 0 (and
    Λ = 0) is handled exactly, in the value and in its gradient.
    """
    _check_diag(Lambda, B)
    dt = _as_step(dt, Lambda)
    check_broadcast(Lambda=Lambda[..., 0], B=B[..., 0], dt=dt)
    dtL = dt[..., None] * Lambda  # (..., N)
    return torch.exp(dtL), dt[..., None] * _phi1(dtL) * B


# GBT(α) for diagonal A, elementwise: Ā = (1 + (1−α)ΔΛ)/(1 − αΔΛ), B̄ = ΔB/(1 − αΔΛ)
def gbt_diag(Lambda: torch.Tensor, B: torch.Tensor, dt, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """GBT(α), diagonal: Ā = (1 + (1−α)ΔΛ)/(1 − αΔΛ), B̄ = ΔB/(1 − αΔΛ); Λ, B (..., N), Δ (...) → Ā, B̄ (..., N)."""
    alpha = _check_alpha(alpha)
    _check_diag(Lambda, B)
    dt = _as_step(dt, Lambda)
    check_broadcast(Lambda=Lambda[..., 0], B=B[..., 0], dt=dt)
    dtL = dt[..., None] * Lambda  # (..., N)
    backward = 1 - alpha * dtL  # (..., N)
    return (1 + (1 - alpha) * dtL) / backward, dt[..., None] * B / backward


def _phi1_phi2(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """φ₁(z) = (e^z − 1)/z and φ₂(z) = (e^z − 1 − z)/z², with φ₁(0) = 1 and φ₂(0) = ½, elementwise,
    accurate for small |z| (one ``expm1`` for both)."""
    small = z.abs() < _SMALL_Z
    safe = torch.where(small, torch.ones_like(z), z)  # no 0/0 in the branch not taken (nor in its gradient)
    em1 = torch.expm1(safe)
    series = _phi2_taylor(z)  # (..., N)
    # φ₁ = 1 + z φ₂, free of cancellation where |z| is small
    return torch.where(small, 1 + z * series, em1 / safe), torch.where(small, series, (em1 - safe) / (safe * safe))


# First-order hold for diagonal A: the input is the straight line from u_{k−1} to u_k over the step,
# u(t_{k−1} + s) = u_{k−1} + (s/Δ)(u_k − u_{k−1}), integrated exactly (derivation in docs/time.md):
#   x_k = e^{ΔΛ} x_{k−1} + ∫₀^Δ e^{(Δ−s)Λ} B u(t_{k−1} + s) ds = Ā x_{k−1} + B̄₀ u_{k−1} + B̄₁ u_k,
#   B̄₁ = Δ φ₂(ΔΛ) B,  B̄₀ = Δ (φ₁(ΔΛ) − φ₂(ΔΛ)) B  (so B̄₀ + B̄₁ is ZOH's B̄)
def foh_diag(Lambda: torch.Tensor, B: torch.Tensor, dt) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """First-order hold, diagonal: Λ (..., N), B (..., N), Δ (...) → Ā, B̄₀, B̄₁ (..., N) with
    x_k = Ā x_{k−1} + B̄₀ u_{k−1} + B̄₁ u_k, exact for an input linear between samples.

    B̄₀ weighs the previous sample and B̄₁ the current one; for |ΔΛ| → 0 both tend to Δ/2 · B (the
    trapezoidal rule), for a fast mode (Re ΔΛ → −∞) B̄₁ carries all the weight.
    """
    _check_diag(Lambda, B)
    dt = _as_step(dt, Lambda)
    check_broadcast(Lambda=Lambda[..., 0], B=B[..., 0], dt=dt)
    dtL = dt[..., None] * Lambda  # (..., N)
    dtB = dt[..., None] * B  # (..., N)
    phi1, phi2 = _phi1_phi2(dtL)  # (..., N)
    return torch.exp(dtL), (phi1 - phi2) * dtB, phi2 * dtB


def discretize_diag(Lambda: torch.Tensor, B: torch.Tensor, dt, method: str = "zoh") -> tuple[torch.Tensor, torch.Tensor]:
    """Diagonal (Λ, B) → (Ā, B̄) by a named method: "zoh", "bilinear", "euler" or "backward_euler"."""
    alpha = method_alpha(method)
    return zoh_diag(Lambda, B, dt) if alpha is None else gbt_diag(Lambda, B, dt, alpha)


# ---------------------------------------------------------------------------------------------
# Diagonal plus low rank A = diag(Λ) − Pᵀ Q̄   (S4 §3.2; the rank r is 1 for LegS)
# ---------------------------------------------------------------------------------------------


def _check_dplr(Lambda: torch.Tensor, P: torch.Tensor, Q: torch.Tensor, B: torch.Tensor) -> None:
    _check_diag(Lambda, B)
    N = Lambda.shape[-1]
    for name, F in (("P", P), ("Q", Q)):
        if F.ndim < 2:
            raise ValueError(f"{name} must have shape (..., r, N), got {tuple(F.shape)}")
        check_last_dim(name, F, N)
        check_finite(name, F)
    if P.shape[-2] != Q.shape[-2]:
        raise ValueError(f"P and Q must have the same rank r, got shapes {tuple(P.shape)} and {tuple(Q.shape)}")


def _dplr_apply(Lambda, P, Q, x):
    """A x = Λ ⊙ x − Pᵀ(Q̄ x); Λ (..., N), P, Q (..., r, N), x (..., N) → (..., N)."""
    Qx = (Q.conj() * x[..., None, :]).sum(-1)  # (..., r)
    return Lambda * x - (P * Qx[..., None]).sum(-2)  # (..., N)


# Woodbury (S4 Appendix C.2): (I − αΔA)⁻¹v with A = Λ − PᵀQ̄, D = 1/(αΔ) − Λ:
#   (I − αΔA)⁻¹ = (αΔ)⁻¹ (D + PᵀQ̄)⁻¹,  (D + PᵀQ̄)⁻¹ = D⁻¹ − D⁻¹Pᵀ (I_r + Q̄ D⁻¹ Pᵀ)⁻¹ Q̄ D⁻¹
def _dplr_backward_solve(Lambda, P, Q, dt, alpha, v):
    """z = (I − αΔA)⁻¹ v; Λ (..., N), P, Q (..., r, N), Δ (...), v (..., N) → z (..., N), O(N r²)."""
    scale = alpha * dt[..., None]  # (..., 1)
    Dinv = scale / (1 - scale * Lambda)  # (..., N)   D⁻¹ = 1/(1/(αΔ) − Λ)
    w = Dinv * v  # (..., N)                                 D⁻¹ v
    s = (Q.conj() * w[..., None, :]).sum(-1)  # (..., r)      Q̄ D⁻¹ v
    K = torch.einsum("...in,...jn->...ij", Q.conj(), Dinv[..., None, :] * P)  # (..., r, r)  Q̄ D⁻¹ Pᵀ
    r = P.shape[-2]
    K = K + torch.eye(r, dtype=K.dtype, device=K.device)  # (..., r, r)
    t = torch.linalg.solve(K, s[..., None])[..., 0]  # (..., r)
    z = w - Dinv * (P * t[..., None]).sum(-2)  # (..., N)
    return z / scale  # (..., N)


# GBT(α) step for DPLR A (S4 §3.3 for α = ½): x_k = (I − αΔA)⁻¹[(I + (1−α)ΔA) x_{k−1} + ΔB u_k]
def dplr_gbt_step(
    x: torch.Tensor,
    u: torch.Tensor,
    Lambda: torch.Tensor,
    P: torch.Tensor,
    Q: torch.Tensor,
    B: torch.Tensor,
    dt,
    alpha: float = 0.5,
) -> torch.Tensor:
    """One GBT(α) step of a DPLR SSM in O(N r²): x (..., N), u (...), Λ, B (..., N), P, Q (..., r, N), Δ (...) → x_k (..., N).

    A = diag(Λ) − Pᵀ Q̄ is never formed; (I − αΔA)⁻¹ is applied with the Woodbury identity.
    Δ may change from step to step (irregular sampling).
    """
    alpha = _check_alpha(alpha)
    _check_dplr(Lambda, P, Q, B)
    dt = _as_step(dt, Lambda)
    u = torch.as_tensor(u, device=x.device)
    v = x + (1 - alpha) * dt[..., None] * _dplr_apply(Lambda, P, Q, x) + dt[..., None] * B * u[..., None]  # (..., N)
    if alpha == 0.0:
        return v
    return _dplr_backward_solve(Lambda, P, Q, dt, alpha, v)


def dplr_gbt(
    Lambda: torch.Tensor, P: torch.Tensor, Q: torch.Tensor, B: torch.Tensor, dt, alpha: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """GBT(α) of a DPLR SSM as dense matrices: Λ, B (..., N), P, Q (..., r, N), Δ (...) → Ā (..., N, N), B̄ (..., N).

    The same Woodbury solve as :func:`dplr_gbt_step`, applied to the columns of I + (1−α)ΔA; a
    reference and the input of :func:`ssmforecast.math.kernels.dplr_kernel`'s truncation correction.
    """
    alpha = _check_alpha(alpha)
    _check_dplr(Lambda, P, Q, B)
    dt = _as_step(dt, Lambda)
    N = Lambda.shape[-1]
    I = torch.eye(N, dtype=torch.result_type(Lambda, P), device=Lambda.device)  # (N, N): rows are e_j
    # column j of (I + (1−α)ΔA) is e_j + (1−α)Δ A e_j; computed as a batch of N vectors on axis −2
    cols = I + (1 - alpha) * dt[..., None, None] * _dplr_apply(
        Lambda[..., None, :], P[..., None, :, :], Q[..., None, :, :], I
    )  # (..., N, N): [j, :] = column j
    dB = dt[..., None] * B  # (..., N)
    if alpha != 0.0:
        cols = _dplr_backward_solve(Lambda[..., None, :], P[..., None, :, :], Q[..., None, :, :], dt[..., None], alpha, cols)
        dB = _dplr_backward_solve(Lambda, P, Q, dt, alpha, dB)
    return cols.transpose(-1, -2), dB
