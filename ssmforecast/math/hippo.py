"""HiPPO transition matrices, their normal-plus-low-rank (NPLR / DPLR) forms, and diagonal (S4D) inits.

Convention: the continuous SSM is x'(t) = A x(t) + B u(t); every ``A`` returned here already carries
its minus sign (LegS, LegT and LagT are stable, eigenvalues in the open left half plane).

Everything is built in float64 and cast to ``dtype`` at the end (complex outputs use the matching
complex dtype: float32 -> complex64, float64 -> complex128).
"""

from __future__ import annotations

import math
import numbers

import torch

from ._checks import check_choice

__all__ = [
    "legs",
    "legt",
    "lagt",
    "transition",
    "nplr_legs",
    "dplr_legs",
    "s4d_legs",
    "s4d_lin",
    "s4d_inv",
    "s4d_real",
    "diagonal_init",
]

MEASURES = ("legs", "legt", "lagt")
DIAGONAL_INITS = ("legs", "lin", "inv", "real")
_COMPLEX_OF = {torch.float32: torch.complex64, torch.float64: torch.complex128}
_F64 = torch.float64
_C128 = torch.complex128
_Four = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _check_size(N: int) -> int:
    """Raise unless the state size N is a positive int; return it as int."""
    if isinstance(N, bool) or not isinstance(N, numbers.Integral):
        raise ValueError(f"N must be a positive int, got {N!r} of type {type(N).__name__}")
    if N < 1:
        raise ValueError(f"N must be a positive int, got {N}")
    return int(N)


def _check_positive(name: str, value: float) -> float:
    """Raise unless ``value`` is a finite real number > 0; return it as float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a finite real number > 0, got {value!r}")
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite real number > 0, got {value!r}")
    return value


def _check_dtype(dtype: torch.dtype) -> torch.dtype:
    """Raise unless ``dtype`` is torch.float32 or torch.float64; return its complex counterpart."""
    if dtype not in _COMPLEX_OF:
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    return _COMPLEX_OF[dtype]


def _sqrt_odd(N: int) -> torch.Tensor:
    """r_n = (2n+1)^{1/2} for n = 0..N-1 in float64; → (N,)."""
    return torch.sqrt(2.0 * torch.arange(N, dtype=_F64) + 1.0)  # (N,)


# HiPPO: Gu et al. 2020, Appendix D.3 (LegS); S4: Gu et al. 2022 §2 eq. (2)
def legs(N: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """LegS: A_nk = −√(2n+1)√(2k+1) (n>k), −(n+1) (n=k), 0 (n<k); B_n = √(2n+1); → A (N, N), B (N,).

    HiPPO-LegS (scaled Legendre), the matrix S4 is built on. With the time-varying dynamics
    dc/dt = (1/t) A c + (1/t) B f(t), the state is exactly
    c_n(t) = (1/t) ∫_0^t f(x) g_n(t, x) dx with g_n(t, x) = √(2n+1) P_n(2x/t − 1),
    and f(x) ≈ Σ_n c_n(t) g_n(t, x) on the whole history [0, t] (exact for polynomials of degree < N).

    Parameters
    ----------
    N : int
        State size (number of Legendre coefficients), positive.
    dtype : torch.dtype, optional
        torch.float32 or torch.float64 (default).

    Returns
    -------
    A : torch.Tensor
        (N, N) lower-triangular transition matrix of dtype ``dtype``.
    B : torch.Tensor
        (N,) input vector of dtype ``dtype``.
    """
    N = _check_size(N)
    _check_dtype(dtype)
    r = _sqrt_odd(N)  # (N,)
    A = -torch.tril(r[:, None] * r[None, :], diagonal=-1)  # (N, N)
    A = A - torch.diag(torch.arange(1, N + 1, dtype=_F64))  # (N, N)
    return A.to(dtype), r.to(dtype)


# HiPPO: Gu et al. 2020, Appendix D.1 (LegT)
def legt(N: int, theta: float = 1.0, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """LegT: A_nk = −√(2n+1)√(2k+1)/θ·{1 (k≤n), (−1)^{n−k} (k>n)}; B_n = √(2n+1)/θ; → A (N, N), B (N,).

    HiPPO-LegT (translated Legendre) memorises the sliding window [t − θ, t]: with dc/dt = A c + B f(t),
    c_n(t) = (1/θ) ∫_{t−θ}^t f(x) g_n(t, x) dx with g_n(t, x) = √(2n+1) P_n(2(x − t)/θ + 1), and
    f(x) ≈ Σ_n c_n(t) g_n(t, x) on the window. The ODE uses the reconstruction to evaluate the
    forgotten value f(t − θ), so it is exact for polynomial f of degree < N.

    Parameters
    ----------
    N : int
        State size, positive.
    theta : float, optional
        Window length θ > 0 (default 1.0).
    dtype : torch.dtype, optional
        torch.float32 or torch.float64 (default).

    Returns
    -------
    A : torch.Tensor
        (N, N) dense transition matrix of dtype ``dtype``.
    B : torch.Tensor
        (N,) input vector of dtype ``dtype``.
    """
    N = _check_size(N)
    theta = _check_positive("theta", theta)
    _check_dtype(dtype)
    r = _sqrt_odd(N)  # (N,)
    n = torch.arange(N)
    diff = n[:, None] - n[None, :]  # (N, N)  n − k
    sign = torch.where(diff >= 0, 1.0, 1.0 - 2.0 * (diff % 2)).to(_F64)  # (N, N)  1 or (−1)^{n−k}
    A = -(r[:, None] * sign * r[None, :]) / theta  # (N, N)
    B = r / theta  # (N,)
    return A.to(dtype), B.to(dtype)


# HiPPO: Gu et al. 2020, Appendix D.2 (LagT)
def lagt(N: int, beta: float = 1.0, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """LagT: A_nk = −1 (k≤n), 0 (k>n); B_n = β; → A (N, N), B (N,).

    HiPPO-LagT (translated Laguerre, measure e^{−(t−x)} on (−∞, t]): with dc/dt = A c + B f(t) and
    β = 1 (the paper's choice), c_n(t) = ∫_{−∞}^t f(x) L_n(t − x) e^{−(t−x)} dx exactly, and
    f(x) ≈ Σ_n c_n(t) L_n(t − x). A general β scales B and hence the state by β.

    Parameters
    ----------
    N : int
        State size, positive.
    beta : float, optional
        Input scale β > 0 (default 1.0).
    dtype : torch.dtype, optional
        torch.float32 or torch.float64 (default).

    Returns
    -------
    A : torch.Tensor
        (N, N) lower-triangular transition matrix of dtype ``dtype``.
    B : torch.Tensor
        (N,) input vector of dtype ``dtype``.
    """
    N = _check_size(N)
    beta = _check_positive("beta", beta)
    _check_dtype(dtype)
    A = -torch.tril(torch.ones(N, N, dtype=_F64))  # (N, N)
    B = torch.full((N,), beta, dtype=_F64)  # (N,)
    return A.to(dtype), B.to(dtype)


# HiPPO: Gu et al. 2020, Appendix D (dispatch over D.1 LegT, D.2 LagT, D.3 LegS)
def transition(
    measure: str,
    N: int,
    *,
    theta: float = 1.0,
    beta: float = 1.0,
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """HiPPO (A, B) for ``measure`` ∈ {"legs", "legt", "lagt"}; → A (N, N), B (N,).

    Parameters
    ----------
    measure : str
        "legs" (:func:`legs`), "legt" (:func:`legt`, uses ``theta``) or "lagt" (:func:`lagt`, uses ``beta``).
    N : int
        State size, positive.
    theta : float, optional
        LegT window length θ > 0 (validated always, used only by "legt").
    beta : float, optional
        LagT input scale β > 0 (validated always, used only by "lagt").
    dtype : torch.dtype, optional
        torch.float32 or torch.float64 (default).

    Returns
    -------
    A : torch.Tensor
        (N, N) transition matrix.
    B : torch.Tensor
        (N,) input vector.
    """
    check_choice("measure", measure, MEASURES)
    _check_positive("theta", theta)
    _check_positive("beta", beta)
    if measure == "legs":
        return legs(N, dtype=dtype)
    if measure == "legt":
        return legt(N, theta=theta, dtype=dtype)
    return lagt(N, beta=beta, dtype=dtype)


def _nplr_legs_f64(N: int) -> _Four:
    """float64/complex128 core of :func:`nplr_legs`; → Λ (N,), P (1, N), B (N,), V (N, N)."""
    r = _sqrt_odd(N)  # (N,)
    # A + PᵀP = −½ I + S_skew with S_skew_nk = −½ r_n r_k sign(n − k), written in closed form so the
    # diagonal −½ is exact (no cancellation of −(n+1) against n+½).
    half = 0.5 * r[:, None] * r[None, :]  # (N, N)
    S_skew = torch.triu(half, diagonal=1) - torch.tril(half, diagonal=-1)  # (N, N)
    H = -1j * S_skew.to(_C128)  # (N, N) Hermitian with purely imaginary entries
    mu, W = torch.linalg.eigh(H)  # (N,), (N, N)  ascending μ
    mu, W = mu.flip(0), W.flip(1)  # (N,), (N, N)  descending μ
    B = r  # (N,)
    h = N // 2
    # conj(H) = −H, so conj(v) is an eigenvector for −μ: build the negative half from the positive one
    # so that Λ[N−1−j] = conj(Λ[j]) and V[:, N−1−j] = conj(V[:, j]) hold exactly.
    cols = [W[:, :h]]  # (N, h)
    mus = [mu[:h]]  # (h,)
    if N % 2 == 1:
        cols.append(W[:, h : h + 1])  # (N, 1)  kernel vector of S_skew (real up to phase)
        mus.append(torch.zeros(1, dtype=_F64))  # (1,)
    V = torch.cat(cols, dim=1)  # (N, h or h+1)
    # Fix each column's phase so that (V* B)_j is real and positive (deterministic across LAPACKs).
    proj = V.mH @ B.to(_C128)  # (h or h+1,)
    phase = torch.where(proj.abs() > 0, torch.sgn(proj), torch.ones_like(proj))  # (h or h+1,)
    V = V * phase[None, :]  # (N, h or h+1)  now (V* B)_j = |proj_j|
    if N % 2 == 1:
        mid = V[:, h].real  # (N,)  make the μ = 0 vector exactly real
        V[:, h] = (mid / torch.linalg.vector_norm(mid)).to(_C128)  # (N,)
    V = torch.cat([V, V[:, :h].conj().flip(1)], dim=1)  # (N, N)
    mu = torch.cat(mus + [-mu[:h].flip(0)])  # (N,)
    Lambda = torch.complex(torch.full((N,), -0.5, dtype=_F64), mu)  # (N,)
    P = torch.sqrt(torch.arange(N, dtype=_F64) + 0.5)[None, :]  # (1, N)
    return Lambda, P, B, V


# S4: Gu et al. 2022 §3.3 Theorem 1 and Appendix C.1 (NPLR form of HiPPO-LegS)
def nplr_legs(N: int, dtype: torch.dtype = torch.float64) -> _Four:
    """NPLR LegS: A = V diag(Λ) V* − Pᵀ P, Re Λ = −½, V unitary; → Λ (N,), P (1, N), B (N,), V (N, N).

    With P_n = (n + ½)^{1/2}, A + Pᵀ P = −½ I + S_skew where S_skew is real skew-symmetric. The Hermitian
    matrix −i·S_skew is diagonalised with ``torch.linalg.eigh`` (−i S_skew = V diag(μ) V*), giving
    Λ = −½ + iμ with real part exactly −½ and a unitary V. ``torch.linalg.eig`` of A itself is never
    used: A's eigenvector matrix is numerically singular (condition number ~1e20 at N = 64).

    Ordering: eigenvalues are sorted by imaginary part, descending, and paired so that
    ``Lambda[N-1-j] == conj(Lambda[j])`` and ``V[:, N-1-j] == conj(V[:, j])`` exactly; the first N//2
    have positive imaginary part, and for odd N the middle one is exactly −½ with a real eigenvector.
    Column phases of V are fixed so that V* B is real and positive.

    Parameters
    ----------
    N : int
        State size, positive.
    dtype : torch.dtype, optional
        torch.float32 or torch.float64 (default); computed in float64 and cast.

    Returns
    -------
    Lambda : torch.Tensor
        (N,) complex eigenvalues of the normal part.
    P : torch.Tensor
        (1, N) real low-rank factor (rank axis first, rank 1).
    B : torch.Tensor
        (N,) real LegS input vector (same as :func:`legs`).
    V : torch.Tensor
        (N, N) complex unitary eigenvector matrix.
    """
    N = _check_size(N)
    cdtype = _check_dtype(dtype)
    Lambda, P, B, V = _nplr_legs_f64(N)
    return Lambda.to(cdtype), P.to(dtype), B.to(dtype), V.to(cdtype)


# S4: Gu et al. 2022 §3.3 and Appendix C.1 (DPLR form: NPLR conjugated into the eigenbasis of the normal part)
def dplr_legs(N: int, dtype: torch.dtype = torch.float64) -> _Four:
    """DPLR LegS: V*AV = diag(Λ) − P̃ᵀ conj(P̃), P̃ = V*P, B̃ = V*B; → Λ (N,), P̃ (1, N), B̃ (N,), V (N, N).

    The same decomposition as :func:`nplr_legs`, expressed in the diagonal basis: the SSM (A, B) is
    unitarily equivalent (state x = V x̃) to (diag(Λ) − P̃ᵀ conj(P̃), B̃), where for rank r
    (P̃ᵀ conj(P̃))_nk = Σ_r P̃_rn conj(P̃_rk). All N modes are kept (no conjugate halving); ordering and
    pairing are as in :func:`nplr_legs`, so B̃ is real and positive up to rounding and P̃ = B̃ / √2.

    Parameters
    ----------
    N : int
        State size, positive.
    dtype : torch.dtype, optional
        torch.float32 or torch.float64 (default); outputs use the complex counterpart.

    Returns
    -------
    Lambda : torch.Tensor
        (N,) complex diagonal.
    P_tilde : torch.Tensor
        (1, N) complex low-rank factor V* P (rank axis first).
    B_tilde : torch.Tensor
        (N,) complex input vector V* B.
    V : torch.Tensor
        (N, N) complex unitary basis change, A = V (diag Λ − P̃ᵀ conj P̃) V*.
    """
    N = _check_size(N)
    cdtype = _check_dtype(dtype)
    Lambda, P, B, V = _nplr_legs_f64(N)
    P_tilde = P.to(_C128) @ V.conj()  # (1, N)  row r is (V* P_r)ᵀ
    B_tilde = V.mH @ B.to(_C128)  # (N,)
    return Lambda.to(cdtype), P_tilde.to(cdtype), B_tilde.to(cdtype), V.to(cdtype)


# S4D: Gu et al. 2022 "On the Parameterization and Initialization of Diagonal State Space Models" §4 (S4D-LegS)
def s4d_legs(N: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """S4D-LegS: Λ = the N eigenvalues with Im > 0 of NPLR-LegS(2N), B = (V* B_legs)[:N]; → Λ (N,), B (N,).

    The diagonal part of the DPLR form of HiPPO-LegS of state size 2N. Each mode stands for a conjugate
    pair: the N returned modes describe a real system of state size 2N. Ordered by imaginary part,
    descending (as in :func:`nplr_legs`); B is real and positive (up to rounding) by the phase convention
    there.

    Parameters
    ----------
    N : int
        Number of complex modes (conjugate pairs), positive.
    dtype : torch.dtype, optional
        torch.float32 or torch.float64 (default); outputs use the complex counterpart.

    Returns
    -------
    Lambda : torch.Tensor
        (N,) complex, Re = −½, Im > 0.
    B : torch.Tensor
        (N,) complex.
    """
    N = _check_size(N)
    cdtype = _check_dtype(dtype)
    Lambda, _, B_tilde, _ = dplr_legs(2 * N, dtype=_F64)  # (2N,), _, (2N,), _
    return Lambda[:N].to(cdtype), B_tilde[:N].to(cdtype)


# S4D: Gu et al. 2022 "On the Parameterization and Initialization of Diagonal State Space Models" §4 (S4D-Lin)
def s4d_lin(N: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """S4D-Lin: Λ_n = −½ + iπn, B_n = 1, n = 0..N−1; → Λ (N,), B (N,).

    Each mode stands for a conjugate pair (real state size 2N); the n = 0 mode has zero frequency
    (Λ_0 = −½ is its own conjugate), as in the paper.

    Parameters
    ----------
    N : int
        Number of complex modes (conjugate pairs), positive.
    dtype : torch.dtype, optional
        torch.float32 or torch.float64 (default); outputs use the complex counterpart.

    Returns
    -------
    Lambda : torch.Tensor
        (N,) complex, Im ≥ 0.
    B : torch.Tensor
        (N,) complex ones.
    """
    N = _check_size(N)
    cdtype = _check_dtype(dtype)
    n = torch.arange(N, dtype=_F64)  # (N,)
    Lambda = torch.complex(torch.full((N,), -0.5, dtype=_F64), math.pi * n)  # (N,)
    return Lambda.to(cdtype), torch.ones(N, dtype=cdtype)


# S4D: Gu et al. 2022 "On the Parameterization and Initialization of Diagonal State Space Models" §4 (S4D-Inv)
def s4d_inv(N: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """S4D-Inv: Λ_n = −½ + i(M/π)(M/(2n+1) − 1) with M = 2N the real state size, B_n = 1; → Λ (N,), B (N,).

    The paper writes Λ_n = −½ + i(N/π)(N/(2n+1) − 1) with N the *state size* and n = 0..N/2−1; here N is
    the number of complex modes returned, so the formula is evaluated at state size M = 2N. This is the
    choice that tracks the LegS spectrum (:func:`s4d_legs`); e.g. the top frequency is (2N/π)(2N − 1).
    Each mode stands for a conjugate pair (real state size 2N).

    Parameters
    ----------
    N : int
        Number of complex modes (conjugate pairs), positive.
    dtype : torch.dtype, optional
        torch.float32 or torch.float64 (default); outputs use the complex counterpart.

    Returns
    -------
    Lambda : torch.Tensor
        (N,) complex, Im > 0 and decreasing in n.
    B : torch.Tensor
        (N,) complex ones.
    """
    N = _check_size(N)
    cdtype = _check_dtype(dtype)
    M = 2.0 * N  # real state size
    n = torch.arange(N, dtype=_F64)  # (N,)
    imag = (M / math.pi) * (M / (2.0 * n + 1.0) - 1.0)  # (N,)
    Lambda = torch.complex(torch.full((N,), -0.5, dtype=_F64), imag)  # (N,)
    return Lambda.to(cdtype), torch.ones(N, dtype=cdtype)


# S4D: Gu et al. 2022 "On the Parameterization and Initialization of Diagonal State Space Models" §4 (S4D-Real);
# also the A init of Mamba (Gu & Dao 2023, §3.6)
def s4d_real(N: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """S4D-Real: Λ_n = −(n+1), B_n = 1, n = 0..N−1 (real); → Λ (N,), B (N,).

    Real modes (no conjugate pairs): state size N. These are the eigenvalues of HiPPO-LegS.

    Parameters
    ----------
    N : int
        Number of real modes, positive.
    dtype : torch.dtype, optional
        torch.float32 or torch.float64 (default).

    Returns
    -------
    Lambda : torch.Tensor
        (N,) real, of dtype ``dtype``.
    B : torch.Tensor
        (N,) real ones.
    """
    N = _check_size(N)
    _check_dtype(dtype)
    Lambda = -torch.arange(1, N + 1, dtype=_F64)  # (N,)
    return Lambda.to(dtype), torch.ones(N, dtype=dtype)


# S4D: Gu et al. 2022 "On the Parameterization and Initialization of Diagonal State Space Models" §4 (dispatch)
def diagonal_init(name: str, N: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Diagonal init ``name`` ∈ {"legs", "lin", "inv", "real"}; → Λ (N,), B (N,).

    Parameters
    ----------
    name : str
        "legs" (:func:`s4d_legs`), "lin" (:func:`s4d_lin`), "inv" (:func:`s4d_inv`), "real" (:func:`s4d_real`).
    N : int
        Number of modes, positive (complex inits: each mode stands for a conjugate pair).
    dtype : torch.dtype, optional
        torch.float32 or torch.float64 (default).

    Returns
    -------
    Lambda : torch.Tensor
        (N,) complex (real for "real").
    B : torch.Tensor
        (N,) matching dtype.
    """
    check_choice("diagonal init", name, DIAGONAL_INITS)
    if name == "legs":
        return s4d_legs(N, dtype=dtype)
    if name == "lin":
        return s4d_lin(N, dtype=dtype)
    if name == "inv":
        return s4d_inv(N, dtype=dtype)
    return s4d_real(N, dtype=dtype)
