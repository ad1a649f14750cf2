"""Tests for ssmforecast.math.hippo against independent numpy/scipy references.

References used:
- closed forms of the HiPPO matrices written out with explicit loops (and N = 3 LegS by hand);
- HiPPO memory semantics: the ODEs are integrated with scipy's DOP853 and compared with projection
  coefficients computed by Gauss–Legendre / Gauss–Laguerre quadrature;
- numpy eigen-solvers for the spectra.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from numpy.polynomial import laguerre as nplag
from numpy.polynomial import legendre as npleg
from scipy.integrate import solve_ivp

from ssmforecast.math import hippo

ODE_KW = dict(method="DOP853", rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------------------------
# independent references
# ----------------------------------------------------------------------------------------------


def ref_legs(N):
    A = np.zeros((N, N))
    B = np.zeros(N)
    for n in range(N):
        B[n] = math.sqrt(2 * n + 1)
        for k in range(N):
            if n > k:
                A[n, k] = -math.sqrt(2 * n + 1) * math.sqrt(2 * k + 1)
            elif n == k:
                A[n, k] = -(n + 1)
    return A, B


def ref_legt(N, theta):
    A = np.zeros((N, N))
    B = np.zeros(N)
    for n in range(N):
        B[n] = math.sqrt(2 * n + 1) / theta
        for k in range(N):
            s = 1.0 if k <= n else (-1.0) ** (n - k)
            A[n, k] = -math.sqrt(2 * n + 1) * math.sqrt(2 * k + 1) * s / theta
    return A, B


def ref_lagt(N, beta):
    A = np.zeros((N, N))
    for n in range(N):
        for k in range(n + 1):
            A[n, k] = -1.0
    return A, np.full(N, float(beta))


def _legendre_basis(z, N):
    """√(2n+1) P_n(z) for z in [−1, 1]: (len(z), N)."""
    return npleg.legvander(z, N - 1) * np.sqrt(2 * np.arange(N) + 1)


def legs_coeffs(f, t, N, nq=60):
    """c_n(t) = (1/t) ∫_0^t f(x) √(2n+1) P_n(2x/t − 1) dx by Gauss–Legendre."""
    z, w = npleg.leggauss(nq)
    x = t * (z + 1) / 2
    return 0.5 * (w * f(x)) @ _legendre_basis(z, N)


def legs_reconstruct(c, t, x):
    return _legendre_basis(2 * x / t - 1, len(c)) @ c


def legt_coeffs(f, t, theta, N, nq=60):
    """c_n(t) = (1/θ) ∫_{t−θ}^t f(x) √(2n+1) P_n(2(x−t)/θ + 1) dx by Gauss–Legendre."""
    z, w = npleg.leggauss(nq)
    x = t + theta * (z - 1) / 2
    return 0.5 * (w * f(x)) @ _legendre_basis(z, N)


def legt_reconstruct(c, t, theta, x):
    return _legendre_basis(2 * (x - t) / theta + 1, len(c)) @ c


def lagt_coeffs(f, t, N, nq=40):
    """c_n(t) = ∫_0^∞ f(t − s) L_n(s) e^{−s} ds by Gauss–Laguerre."""
    s, w = nplag.laggauss(nq)
    return (w * f(t - s)) @ nplag.lagvander(s, N - 1)


def run_legs(A, B, f, N, t0, t1):
    c0 = legs_coeffs(f, t0, N)
    sol = solve_ivp(lambda t, c: (A @ c + B * f(t)) / t, (t0, t1), c0, **ODE_KW)
    assert sol.success
    return sol.y[:, -1]


def run_lti(A, B, f, c0, t0, t1):
    sol = solve_ivp(lambda t, c: A @ c + B * f(t), (t0, t1), c0, **ODE_KW)
    assert sol.success
    return sol.y[:, -1]


def np_(x):
    return x.detach().cpu().numpy()


# ----------------------------------------------------------------------------------------------
# closed forms
# ----------------------------------------------------------------------------------------------


def test_legs_n3_by_hand():
    A, B = hippo.legs(3)
    s3, s5, s15 = math.sqrt(3), math.sqrt(5), math.sqrt(15)
    A_hand = np.array([[-1.0, 0.0, 0.0], [-s3, -2.0, 0.0], [-s5, -s15, -3.0]])
    np.testing.assert_allclose(np_(A), A_hand, rtol=0, atol=1e-15)
    np.testing.assert_allclose(np_(B), [1.0, s3, s5], rtol=0, atol=1e-15)


@pytest.mark.parametrize("N", [1, 5])
def test_legs_closed_form(N):
    A, B = hippo.legs(N)
    A_ref, B_ref = ref_legs(N)
    assert A.shape == (N, N) and B.shape == (N,)
    assert A.dtype == B.dtype == torch.float64
    np.testing.assert_allclose(np_(A), A_ref, rtol=1e-15, atol=0)
    np.testing.assert_allclose(np_(B), B_ref, rtol=1e-15, atol=0)


@pytest.mark.parametrize("theta", [1.0, 2.5])
def test_legt_closed_form(theta):
    A, B = hippo.legt(5, theta=theta)
    A_ref, B_ref = ref_legt(5, theta)
    assert A.shape == (5, 5) and B.shape == (5,)
    np.testing.assert_allclose(np_(A), A_ref, rtol=1e-15, atol=0)
    np.testing.assert_allclose(np_(B), B_ref, rtol=1e-15, atol=0)


@pytest.mark.parametrize("beta", [1.0, 0.7])
def test_lagt_closed_form(beta):
    A, B = hippo.lagt(5, beta=beta)
    A_ref, B_ref = ref_lagt(5, beta)
    np.testing.assert_array_equal(np_(A), A_ref)
    np.testing.assert_array_equal(np_(B), B_ref)


def test_transition_dispatch():
    for measure, ref in [("legs", ref_legs(4)), ("legt", ref_legt(4, 3.0)), ("lagt", ref_lagt(4, 2.0))]:
        A, B = hippo.transition(measure, 4, theta=3.0, beta=2.0)
        np.testing.assert_allclose(np_(A), ref[0], rtol=1e-15, atol=0)
        np.testing.assert_allclose(np_(B), ref[1], rtol=1e-15, atol=0)
    with pytest.raises(ValueError, match="'legs', 'legt', 'lagt'"):
        hippo.transition("fourier", 4)


def test_float32_outputs():
    A, B = hippo.legt(6, theta=2.0, dtype=torch.float32)
    assert A.dtype == B.dtype == torch.float32
    np.testing.assert_allclose(np_(A), ref_legt(6, 2.0)[0], rtol=1e-6)
    Lam, P, B, V = hippo.nplr_legs(6, dtype=torch.float32)
    assert (Lam.dtype, P.dtype, B.dtype, V.dtype) == (torch.complex64, torch.float32, torch.float32, torch.complex64)
    Lam64 = hippo.nplr_legs(6)[0]
    np.testing.assert_allclose(np_(Lam), np_(Lam64), rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# NPLR / DPLR
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("N", [4, 16, 64, 256])
def test_nplr_legs_reconstructs_a(N):
    Lam, P, B, V = (np_(t) for t in hippo.nplr_legs(N))
    A_ref, B_ref = ref_legs(N)
    assert Lam.shape == (N,) and P.shape == (1, N) and B.shape == (N,) and V.shape == (N, N)
    assert np.iscomplexobj(Lam) and np.iscomplexobj(V) and not np.iscomplexobj(P) and not np.iscomplexobj(B)
    A_rec = (V * Lam) @ V.conj().T - P.T @ P
    assert np.abs(A_rec - A_ref).max() < 1e-10
    assert np.abs(V.conj().T @ V - np.eye(N)).max() < 1e-10
    assert np.abs(Lam.real + 0.5).max() < 1e-10
    np.testing.assert_allclose(B, B_ref, rtol=1e-15)
    np.testing.assert_allclose(P[0], np.sqrt(np.arange(N) + 0.5), rtol=1e-15)


@pytest.mark.parametrize("N", [5, 6])
def test_nplr_legs_ordering_and_pairs(N):
    Lam, _, B, V = (np_(t) for t in hippo.nplr_legs(N))
    assert np.all(np.diff(Lam.imag) < 0)  # imaginary part strictly descending
    assert np.all(Lam.imag[: N // 2] > 0)
    np.testing.assert_array_equal(Lam[::-1], Lam.conj())
    np.testing.assert_array_equal(V[:, ::-1], V.conj())
    # spectrum of the normal part against numpy: eigenvalues of A + Pᵀ P (a normal matrix)
    A_ref, _ = ref_legs(N)
    P_ref = np.sqrt(np.arange(N) + 0.5)
    ev = np.linalg.eigvals(A_ref + np.outer(P_ref, P_ref))
    np.testing.assert_allclose(np.sort(ev.imag)[::-1], Lam.imag, atol=1e-12)


@pytest.mark.parametrize("N", [4, 8])
def test_dplr_eigenvalues_match_legs(N):
    # Only small N: A_legs is so non-normal that eigenvalues of any matrix similar to it are
    # ill-conditioned (already ~1e-5 off at N = 16, O(1) at N = 32 in float64).
    Lam, Pt, _, _ = (np_(t) for t in hippo.dplr_legs(N))
    M = np.diag(Lam) - Pt.T @ Pt.conj()
    ev = np.sort_complex(np.linalg.eigvals(M))
    ev_A = np.sort_complex(np.linalg.eigvals(ref_legs(N)[0]))
    np.testing.assert_allclose(ev, ev_A, atol=1e-8)
    np.testing.assert_allclose(ev, -np.arange(N, 0, -1), atol=1e-8)  # triangular A: eigenvalues −1..−N


def test_eig_trap_vs_unitary_v():
    N = 64
    A_ref, _ = ref_legs(N)
    _, U = np.linalg.eig(A_ref)
    assert np.linalg.cond(U) > 1e10  # measured ~1.5e20: the eigenbasis of A is useless
    V = np_(hippo.nplr_legs(N)[3])
    assert abs(np.linalg.cond(V) - 1.0) < 1e-10


@pytest.mark.parametrize("N", [4, 16, 64, 256])
def test_dplr_legs(N):
    Lam, Pt, Bt, V = (np_(t) for t in hippo.dplr_legs(N))
    A_ref, B_ref = ref_legs(N)
    assert Pt.shape == (1, N) and Bt.shape == (N,) and np.iscomplexobj(Pt) and np.iscomplexobj(Bt)
    A_rec = V @ (np.diag(Lam) - Pt.T @ Pt.conj()) @ V.conj().T
    assert np.abs(A_rec - A_ref).max() < 1e-10
    assert np.abs(V @ Bt - B_ref).max() < 1e-10
    # phase convention: B̃ real positive, hence P̃ = B̃ / √2
    assert np.abs(Bt.imag).max() < 1e-10 and np.all(Bt.real > 0)
    assert np.abs(Pt[0] - Bt / math.sqrt(2)).max() < 1e-10


# ----------------------------------------------------------------------------------------------
# HiPPO memory: online function approximation
# ----------------------------------------------------------------------------------------------


def test_legs_memory_polynomial():
    N, t0, t1 = 8, 1.0, 5.0
    f = np.polynomial.Legendre(np.random.default_rng(0).standard_normal(7), domain=[0, t1])  # degree 6
    A, B = (np_(t) for t in hippo.legs(N))
    c = run_legs(A, B, f, N, t0, t1)
    c_exact = legs_coeffs(f, t1, N)
    assert np.abs(c - c_exact).max() < 1e-8 * np.abs(c_exact).max()
    x = np.linspace(0.0, t1, 201)  # the whole history
    fx = f(x)
    assert np.abs(legs_reconstruct(c, t1, x) - fx).max() < 1e-7 * np.abs(fx).max()


@pytest.mark.parametrize("wrong", ["B_ones", "diag_minus_n", "upper_triangular"])
def test_legs_memory_rejects_wrong_matrix(wrong):
    N, t0, t1 = 8, 1.0, 5.0
    f = np.polynomial.Legendre(np.random.default_rng(0).standard_normal(7), domain=[0, t1])
    A, B = ref_legs(N)
    if wrong == "B_ones":
        B = np.ones(N)
    elif wrong == "diag_minus_n":
        A = A + np.eye(N)
    else:
        A = A.T
    c = run_legs(A, B, f, N, t0, t1)
    x = np.linspace(0.0, t1, 201)
    assert np.abs(legs_reconstruct(c, t1, x) - f(x)).max() > 0.1 * np.abs(f(x)).max()  # observed > 0.7


def test_legs_memory_non_polynomial_converges():
    t0, t1 = 1.0, 5.0
    x = np.linspace(0.0, t1, 201)
    errs = {}
    for N in (4, 12):
        A, B = (np_(t) for t in hippo.legs(N))
        c = run_legs(A, B, lambda s: np.sin(3 * s), N, t0, t1)
        errs[N] = np.abs(legs_reconstruct(c, t1, x) - np.sin(3 * x)).max()
    assert errs[4] > 0.5  # observed 1.21
    assert errs[12] < errs[4] / 10  # observed 0.032 (factor ~37)


def test_legt_memory_polynomial():
    N, theta, t0, t1 = 8, 2.0, 3.0, 6.0
    f = np.polynomial.Legendre(np.random.default_rng(1).standard_normal(7), domain=[t0 - theta, t1])
    A, B = (np_(t) for t in hippo.legt(N, theta=theta))
    c = run_lti(A, B, f, legt_coeffs(f, t0, theta, N), t0, t1)
    c_exact = legt_coeffs(f, t1, theta, N)
    assert np.abs(c - c_exact).max() < 1e-8 * np.abs(c_exact).max()
    x = np.linspace(t1 - theta, t1, 101)
    fx = f(x)
    assert np.abs(legt_reconstruct(c, t1, theta, x) - fx).max() < 1e-7 * np.abs(fx).max()


@pytest.mark.parametrize("wrong", ["theta_1_matrix", "no_alternating_sign"])
def test_legt_memory_rejects_wrong_matrix(wrong):
    N, theta, t0, t1 = 8, 2.0, 3.0, 6.0
    f = np.polynomial.Legendre(np.random.default_rng(1).standard_normal(7), domain=[t0 - theta, t1])
    if wrong == "theta_1_matrix":
        A, B = ref_legt(N, 1.0)
    else:
        r = np.sqrt(2 * np.arange(N) + 1)
        A, B = -np.outer(r, r) / theta, r / theta
    c = run_lti(A, B, f, legt_coeffs(f, t0, theta, N), t0, t1)
    x = np.linspace(t1 - theta, t1, 101)
    assert np.abs(legt_reconstruct(c, t1, theta, x) - f(x)).max() > 0.1 * np.abs(f(x)).max()  # observed > 0.3


def test_legt_memory_non_polynomial_converges():
    theta, t0, t1 = 2.0, 3.0, 6.0
    x = np.linspace(t1 - theta, t1, 101)
    errs = {}
    for N in (4, 12):
        A, B = (np_(t) for t in hippo.legt(N, theta=theta))
        g = lambda s: np.sin(3 * s)  # noqa: E731
        c = run_lti(A, B, g, legt_coeffs(g, t0, theta, N), t0, t1)
        errs[N] = np.abs(legt_reconstruct(c, t1, theta, x) - np.sin(3 * x)).max()
    assert errs[4] > 0.1  # observed 0.52
    assert errs[12] < errs[4] * 1e-3  # observed 2e-6


def test_lagt_memory_polynomial():
    N, t0, t1 = 8, 0.0, 2.0
    rng = np.random.default_rng(2)
    f = np.polynomial.Polynomial(rng.standard_normal(6) / np.arange(1, 7))  # degree 5 in x
    A, B = (np_(t) for t in hippo.lagt(N))
    c = run_lti(A, B, f, lagt_coeffs(f, t0, N), t0, t1)
    c_exact = lagt_coeffs(f, t1, N)
    assert np.abs(c - c_exact).max() < 1e-8 * np.abs(c_exact).max()
    s = np.linspace(0.0, 5.0, 51)  # reconstruct the recent history f(t1 − s) = Σ c_n L_n(s)
    fs = f(t1 - s)
    assert np.abs(nplag.lagvander(s, N - 1) @ c - fs).max() < 1e-7 * np.abs(fs).max()
    # the S4-code variant A = I/2 − tril(1) belongs to a different measure and must fail here
    c_wrong = run_lti(A + 0.5 * np.eye(N), B, f, lagt_coeffs(f, t0, N), t0, t1)
    assert np.abs(c_wrong - c_exact).max() > 0.1 * np.abs(c_exact).max()


# ----------------------------------------------------------------------------------------------
# diagonal (S4D) inits
# ----------------------------------------------------------------------------------------------


def test_s4d_lin_inv_real_closed_forms():
    N = 6
    n = np.arange(N)
    Lam, B = hippo.s4d_lin(N)
    assert Lam.dtype == B.dtype == torch.complex128 and Lam.shape == B.shape == (N,)
    np.testing.assert_allclose(np_(Lam), -0.5 + 1j * np.pi * n, rtol=1e-15)
    np.testing.assert_array_equal(np_(B), np.ones(N))
    Lam, B = hippo.s4d_inv(N)
    M = 2 * N  # real state size
    np.testing.assert_allclose(np_(Lam), -0.5 + 1j * (M / np.pi) * (M / (2 * n + 1) - 1), rtol=1e-15)
    np.testing.assert_array_equal(np_(B), np.ones(N))
    Lam, B = hippo.s4d_real(N)
    assert Lam.dtype == B.dtype == torch.float64
    np.testing.assert_array_equal(np_(Lam), -(n + 1.0))
    np.testing.assert_array_equal(np_(B), np.ones(N))


def test_s4d_legs_is_positive_half_of_legs_spectrum():
    N = 8
    Lam, B = (np_(t) for t in hippo.s4d_legs(N))
    assert Lam.shape == B.shape == (N,)
    # independent: numpy eigen-decomposition of the normal part of LegS(2N)
    A_ref, B_ref = ref_legs(2 * N)
    P_ref = np.sqrt(np.arange(2 * N) + 0.5)
    mu, W = np.linalg.eigh(-1j * (A_ref + np.outer(P_ref, P_ref) + 0.5 * np.eye(2 * N)))
    order = np.argsort(mu)[::-1][:N]
    np.testing.assert_allclose(Lam, -0.5 + 1j * mu[order], atol=1e-12)
    np.testing.assert_allclose(np.abs(B), np.abs(W[:, order].conj().T @ B_ref), rtol=1e-10)
    # and it agrees with the package's own NPLR of size 2N
    Lam2, _, Bt2, _ = (np_(t) for t in hippo.dplr_legs(2 * N))
    np.testing.assert_allclose(Lam, Lam2[:N], atol=1e-15)
    np.testing.assert_allclose(B, Bt2[:N], atol=1e-15)


def test_s4d_inv_tracks_legs_spectrum():
    # S4D-Inv approximates the LegS frequencies when evaluated at the real state size 2N
    N = 32
    legs_imag = np.sort(np_(hippo.s4d_legs(N)[0]).imag)
    inv_imag = np.sort(np_(hippo.s4d_inv(N)[0]).imag)
    assert abs(inv_imag[-1] / legs_imag[-1] - 1) < 0.05  # observed 1.5%
    assert np.abs(np.log(inv_imag / legs_imag)).max() < 0.5
    wrong_top = (N / np.pi) * (N / 1 - 1)  # the formula with N = number of modes
    assert legs_imag[-1] / wrong_top > 3


@pytest.mark.parametrize("name", ["legs", "lin", "inv", "real"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_diagonal_init_dispatch(name, dtype):
    Lam, B = hippo.diagonal_init(name, 5, dtype=dtype)
    ref_Lam, ref_B = getattr(hippo, f"s4d_{name}")(5, dtype=dtype)
    assert Lam.shape == B.shape == (5,)
    expected = dtype if name == "real" else {torch.float32: torch.complex64, torch.float64: torch.complex128}[dtype]
    assert Lam.dtype == B.dtype == expected
    torch.testing.assert_close(Lam, ref_Lam, rtol=0, atol=0)
    torch.testing.assert_close(B, ref_B, rtol=0, atol=0)
    assert bool((Lam.real < 0).all())
    if name == "lin":  # n = 0 is the zero-frequency mode
        assert bool((Lam.imag[1:] > 0).all()) and Lam.imag[0] == 0
    elif name != "real":
        assert bool((Lam.imag > 0).all())


# ----------------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------------


def test_unknown_diagonal_init():
    with pytest.raises(ValueError, match="'legs', 'lin', 'inv', 'real'"):
        hippo.diagonal_init("hippo", 4)


FUNCS_N = [hippo.legs, hippo.legt, hippo.lagt, hippo.nplr_legs, hippo.dplr_legs, hippo.s4d_legs,
           hippo.s4d_lin, hippo.s4d_inv, hippo.s4d_real]


@pytest.mark.parametrize("func", FUNCS_N, ids=lambda f: f.__name__)
@pytest.mark.parametrize("N", [0, -3, 2.0, 2.5, True, "4", None])
def test_bad_size(func, N):
    with pytest.raises(ValueError, match="N must be a positive int"):
        func(N)


@pytest.mark.parametrize("theta", [0.0, -1.0, math.nan, math.inf, "1"])
def test_bad_theta(theta):
    with pytest.raises(ValueError, match="theta"):
        hippo.legt(4, theta=theta)
    for measure in ("legt", "legs"):
        with pytest.raises(ValueError, match="theta"):
            hippo.transition(measure, 4, theta=theta)


@pytest.mark.parametrize("beta", [0.0, -2.0, math.nan])
def test_bad_beta(beta):
    with pytest.raises(ValueError, match="beta"):
        hippo.lagt(4, beta=beta)


@pytest.mark.parametrize("dtype", [torch.int64, torch.complex128, torch.float16])
def test_bad_dtype(dtype):
    with pytest.raises(ValueError, match="dtype"):
        hippo.legs(4, dtype=dtype)
    with pytest.raises(ValueError, match="dtype"):
        hippo.nplr_legs(4, dtype=dtype)
