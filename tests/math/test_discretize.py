"""Discretization against independent float64 references: scipy's expm and ODE solver, numpy solves."""

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
import torch

from ssmforecast.math.discretize import (
    METHODS,
    discretize,
    discretize_diag,
    dplr_gbt,
    dplr_gbt_step,
    foh_diag,
    gbt,
    gbt_diag,
    zoh,
    zoh_diag,
)

f64 = torch.float64
c128 = torch.complex128


def _stable(N, rng, complex_=False):
    """A random matrix with spectrum in the left half-plane."""
    M = rng.standard_normal((N, N)) / np.sqrt(N)
    if complex_:
        M = M + 1j * rng.standard_normal((N, N)) / np.sqrt(N)
    return M - (np.abs(np.linalg.eigvals(M)).max() + 0.5) * np.eye(N)


# ----------------------------------------------------------------------------------------------- ZOH


def test_zoh_dense_matches_closed_form():
    rng = np.random.default_rng(0)
    A, B, dt = _stable(6, rng), rng.standard_normal(6), 0.37
    dA, dB = zoh(torch.tensor(A), torch.tensor(B), dt)
    E = scipy.linalg.expm(dt * A)
    np.testing.assert_allclose(dA.numpy(), E, atol=1e-13)
    np.testing.assert_allclose(dB.numpy(), np.linalg.solve(A, (E - np.eye(6)) @ B), atol=1e-13)


def test_zoh_dense_singular_A():
    # A = [[0, 1], [0, 0]] (double integrator): Ā = [[1, Δ], [0, 1]], B̄ = [Δ b₀ + Δ²/2 b₁, Δ b₁]
    A = torch.tensor([[0.0, 1.0], [0.0, 0.0]], dtype=f64)
    B = torch.tensor([0.3, -2.0], dtype=f64)
    dt = 0.7
    dA, dB = zoh(A, B, dt)
    np.testing.assert_allclose(dA.numpy(), [[1, dt], [0, 1]], atol=1e-15)
    np.testing.assert_allclose(dB.numpy(), [dt * 0.3 + dt**2 / 2 * -2.0, dt * -2.0], atol=1e-15)


def test_dense_zoh_and_gbt_of_a_real_A_with_a_complex_B_keep_the_imaginary_part():
    """A real, B complex: the system is complex. ZOH built its augmented matrix in A's real dtype (Im B
    dropped), GBT's solve refused the mixed dtypes; both now work in complex128, against scipy's expm
    of the augmented matrix Δ [[A, B], [0, 0]] and numpy's solve."""
    rng = np.random.default_rng(7)
    A, B, dt = _stable(4, rng), rng.standard_normal(4) + 1j * rng.standard_normal(4), 0.43
    dA, dB = zoh(torch.tensor(A), torch.tensor(B), dt)
    M = np.zeros((5, 5), complex)
    M[:4, :4], M[:4, 4] = A, B
    E = scipy.linalg.expm(dt * M)
    assert dA.dtype == dB.dtype == c128
    np.testing.assert_allclose(dA.numpy(), E[:4, :4], atol=1e-13)
    np.testing.assert_allclose(dB.numpy(), E[:4, 4], atol=1e-13)
    I = np.eye(4)
    for alpha in (0.0, 0.5, 1.0):
        dA, dB = gbt(torch.tensor(A), torch.tensor(B), dt, alpha)
        assert dA.dtype == dB.dtype == c128
        np.testing.assert_allclose(dA.numpy(), np.linalg.solve(I - alpha * dt * A, I + (1 - alpha) * dt * A), atol=1e-14)
        np.testing.assert_allclose(dB.numpy(), np.linalg.solve(I - alpha * dt * A, dt * B), atol=1e-14)


def test_zoh_diag_equals_dense_including_zero_and_tiny_eigenvalues():
    rng = np.random.default_rng(1)
    lam = np.array([-1 + 2j, -0.1 - 5j, 0.0, 1e-13 + 0j, -3e-9 + 1e-9j, -40.0])
    B = rng.standard_normal(6) + 1j * rng.standard_normal(6)
    dt = torch.tensor([0.01, 0.5, 3.0], dtype=f64)
    dA, dB = zoh_diag(torch.tensor(lam)[None], torch.tensor(B), dt)  # (3, 6)
    for i, d in enumerate(dt.tolist()):
        E = scipy.linalg.expm(d * np.diag(lam))
        # B̄ = ∫₀^Δ e^{sΛ} ds B from the augmented exponential, computed by scipy
        M = np.zeros((7, 7), complex)
        M[:6, :6], M[:6, 6] = np.diag(lam), B
        np.testing.assert_allclose(dA[i].numpy(), np.diag(E), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(dB[i].numpy(), scipy.linalg.expm(d * M)[:6, 6], rtol=1e-12, atol=1e-15)


def _phi1_prime(z):
    """φ₁'(z) = (e^z (z − 1) + 1)/z² in complex128: the series Σ_j (j+1) z^j/(j+2)! to j = 29 where
    |z| < ½, else the closed form."""
    z = np.asarray(z, complex)
    series = np.zeros_like(z)
    for j in range(29, -1, -1):  # Horner
        series = series * z + (j + 1) / math.factorial(j + 2)
    safe = np.where(np.abs(z) < 0.5, 1.0, z)
    return np.where(np.abs(z) < 0.5, series, (np.exp(safe) * (safe - 1) + 1) / safe**2)


def test_zoh_diag_gradient_is_exact_at_zero_and_small_modes():
    """∂B̄/∂Λ = Δ² φ₁'(ΔΛ). Autograd of expm1(z)/z loses a factor 1/|z| of the precision (all of it in
    float32 for |z|² below 1e-38: gradients 0 or 1e9 too large) and the guard for z = 0 gave a zero
    gradient there; φ₁ is its Taylor series for |z| < 0.1. Against the float64 series / closed form
    of φ₁', and gradcheck (finite differences) with Λ = 0 among the modes."""
    lam = np.array([0, -1e-30, -1e-8 + 1e-8j, -1e-3 + 5e-4j, -0.05 + 0.02j, -0.099 + 0.01j, -0.3 + 0.1j, -2 + 3j])
    want = _phi1_prime(lam)
    for cplx, tol in ((torch.complex64, 2e-6), (c128, 1e-14)):
        L = torch.tensor(lam, dtype=cplx, requires_grad=True)
        _, dB = zoh_diag(L, torch.ones(len(lam), dtype=cplx), 1.0)  # B̄ = φ₁(Λ)
        (g,) = torch.autograd.grad(dB.real.sum(), L)  # torch's convention: conj(dB̄/dΛ) for Re B̄
        np.testing.assert_allclose(g.to(c128).numpy(), want.conj(), rtol=tol, atol=0)
    lam_t = torch.tensor([0, 1e-9, -0.05 + 0.02j, -3 + 4j], dtype=c128, requires_grad=True)
    dt = torch.tensor([0.5, 1.0], dtype=f64, requires_grad=True)
    B = torch.tensor([1.0, 0.5j, -1.0, 2.0], dtype=c128)
    assert torch.autograd.gradcheck(lambda l, d: zoh_diag(l[None], B, d), (lam_t, dt))


def test_zoh_is_exact_for_piecewise_constant_input_at_irregular_steps():
    """x_k from Ā_k, B̄_k with Poisson-random Δ_k equals an adaptive ODE solve of x' = Ax + Bu."""
    rng = np.random.default_rng(2)
    N, L = 4, 40
    A, B = _stable(N, rng), rng.standard_normal(N)
    dts = rng.exponential(0.3, L) + 1e-3
    u = rng.standard_normal(L)
    dA, dB = zoh(torch.tensor(A), torch.tensor(B), torch.tensor(dts))
    x, xs = np.zeros(N), []
    for k in range(L):
        x = dA[k].numpy() @ x + dB[k].numpy() * u[k]
        xs.append(x)
    ref, xr = [], np.zeros(N)
    for k in range(L):
        sol = scipy.integrate.solve_ivp(
            lambda t, z, uk=u[k]: A @ z + B * uk, (0, dts[k]), xr, method="DOP853", rtol=1e-13, atol=1e-14
        )
        xr = sol.y[:, -1]
        ref.append(xr)
    np.testing.assert_allclose(np.array(xs), np.array(ref), atol=1e-10)


# ------------------------------------------------------------------------------- first-order hold


def test_foh_diag_matches_the_augmented_exponential_including_zero_tiny_and_fast_modes():
    """x' = λx + b u, u' = w, w' = 0 over one step: exp(Δ M) of the 3 × 3 augmented matrix maps
    (x_{k−1}, u_{k−1}, (u_k − u_{k−1})/Δ) to x_k, so B̄₁ = E[0, 2]/Δ and B̄₀ = E[0, 1] − E[0, 2]/Δ."""
    rng = np.random.default_rng(6)
    lam = np.array([-1 + 2j, -0.1 - 5j, 0.0, 1e-13 + 0j, -3e-9 + 1e-9j, -40.0, -0.5 + 30j, -0.04 + 0.05j])
    B = rng.standard_normal(8) + 1j * rng.standard_normal(8)
    dt = torch.tensor([1e-3, 0.5, 3.0], dtype=f64)
    dA, dB0, dB1 = foh_diag(torch.tensor(lam)[None], torch.tensor(B), dt)  # (3, 8)
    for i, d in enumerate(dt.tolist()):
        for n, (l, b) in enumerate(zip(lam, B)):
            E = scipy.linalg.expm(d * np.array([[l, b, 0], [0, 0, 1], [0, 0, 0]], complex))
            np.testing.assert_allclose(dA[i, n].item(), E[0, 0], rtol=1e-13, atol=1e-15)
            np.testing.assert_allclose(dB1[i, n].item(), E[0, 2] / d, rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(dB0[i, n].item(), E[0, 1] - E[0, 2] / d, rtol=1e-12, atol=1e-15)
    # the two weights add up to ZOH's B̄; a slow mode splits them evenly (trapezoid)
    torch.testing.assert_close(dB0 + dB1, zoh_diag(torch.tensor(lam)[None], torch.tensor(B), dt)[1], rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(dB0[:, 2], dB1[:, 2], rtol=1e-15, atol=0)
    # float32 keeps its precision where |ΔΛ| is small (the Taylor branch) and around the switch at 0.1
    z = torch.tensor([1e-6, 1e-3, 0.0999, 0.1001, -0.05 + 0.08j, 2.0], dtype=c128)
    ref = foh_diag(z, torch.ones_like(z), 1.0)
    got = foh_diag(z.to(torch.complex64), torch.ones(6, dtype=torch.complex64), 1.0)
    for g, r in zip(got, ref):
        assert ((g.to(c128) - r).abs() / r.abs()).max() < 1e-6


def test_foh_diag_gradients_are_finite_and_correct_at_zero_and_small_modes():
    """The Taylor branch and the closed form meet at |ΔΛ| = 0.1; Λ = 0 must not give 0/0 in the
    backward of the branch not taken."""
    lam = torch.tensor([0, 1e-9, -0.05 + 0.02j, -3 + 4j], dtype=c128, requires_grad=True)
    dt = torch.tensor([0.5, 1.0], dtype=f64, requires_grad=True)
    B = torch.tensor([1.0, 0.5j, -1.0, 2.0], dtype=c128)
    assert torch.autograd.gradcheck(lambda l, d: foh_diag(l[None], B, d), (lam, dt))


def test_foh_is_exact_for_piecewise_linear_input_at_irregular_steps():
    """A diagonal system driven by the straight lines between samples u_k at Poisson-random times:
    the first-order-hold recurrence equals an adaptive ODE solve at every sample time."""
    rng = np.random.default_rng(7)
    lam = np.array([-0.3 + 2j, -1.5 + 0j, -0.05 - 0.7j])
    B = rng.standard_normal(3) + 1j * rng.standard_normal(3)
    L = 40
    dts = rng.exponential(0.4, L) + 1e-3
    u = rng.standard_normal(L + 1)  # u_{−1}, u_0, …: the line before the first step ends at u_0
    dA, dB0, dB1 = (t.numpy() for t in foh_diag(torch.tensor(lam)[None], torch.tensor(B), torch.tensor(dts)))  # (L, 3)
    x, xs = np.zeros(3, complex), []
    for k in range(L):
        x = dA[k] * x + dB0[k] * u[k] + dB1[k] * u[k + 1]  # (3,)
        xs.append(x)
    ref, xr = [], np.zeros(6)
    for k in range(L):
        def rhs(s, z, k=k):
            line = u[k] + s / dts[k] * (u[k + 1] - u[k])
            dx = lam * (z[:3] + 1j * z[3:]) + B * line
            return np.concatenate([dx.real, dx.imag])

        xr = scipy.integrate.solve_ivp(rhs, (0, dts[k]), xr, method="DOP853", rtol=1e-13, atol=1e-14).y[:, -1]
        ref.append(xr[:3] + 1j * xr[3:])
    np.testing.assert_allclose(np.array(xs), np.array(ref), atol=1e-10)


# ----------------------------------------------------------------------------------------------- GBT


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 1.0])
def test_gbt_dense_and_diag_match_numpy(alpha):
    rng = np.random.default_rng(3)
    A, B, dt = _stable(5, rng, complex_=True), rng.standard_normal(5) + 0j, 0.21
    dA, dB = gbt(torch.tensor(A), torch.tensor(B), dt, alpha)
    I = np.eye(5)
    np.testing.assert_allclose(dA.numpy(), np.linalg.solve(I - alpha * dt * A, I + (1 - alpha) * dt * A), atol=1e-14)
    np.testing.assert_allclose(dB.numpy(), np.linalg.solve(I - alpha * dt * A, dt * B), atol=1e-14)
    lam = np.diag(A)
    dAd, dBd = gbt_diag(torch.tensor(lam), torch.tensor(B), dt, alpha)
    dAD, dBD = gbt(torch.tensor(np.diag(lam)), torch.tensor(B), dt, alpha)
    np.testing.assert_allclose(dAd.numpy(), np.diag(dAD.numpy()), atol=1e-14)
    np.testing.assert_allclose(dBd.numpy(), dBD.numpy(), atol=1e-14)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_gbt_broadcasts_the_batch_shape_for_every_alpha(alpha):
    """Forward Euler (α = 0) returned I + ΔA unbroadcast (A (3, 3) with Δ (4,) gave Ā (3, 3)); every α
    and ZOH give Ā (4, 3, 3), B̄ (4, 3): Δ's axis, and B's batch axis, as the batch of the result."""
    A = torch.tensor([[-1.0, 0.3, 0.0], [0.0, -2.0, 0.5], [0.1, 0.0, -0.5]], dtype=f64)
    B = torch.tensor([1.0, -0.5, 2.0], dtype=f64)
    dt = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=f64)
    I = np.eye(3)
    for A_, B_, dt_ in ((A, B, dt), (A, B.expand(4, 3), 0.25)):
        dA, dB = gbt(A_, B_, dt_, alpha)
        assert dA.shape == (4, 3, 3) and dB.shape == (4, 3)
        assert zoh(A_, B_, dt_)[0].shape == dA.shape
        for k, d in enumerate(torch.as_tensor(dt_, dtype=f64).expand(4).tolist()):
            back = I - alpha * d * A.numpy()
            np.testing.assert_allclose(dA[k].numpy(), np.linalg.solve(back, I + (1 - alpha) * d * A.numpy()), atol=1e-15)
            np.testing.assert_allclose(dB[k].numpy(), np.linalg.solve(back, d * B.numpy()), atol=1e-15)


def test_named_methods():
    A = torch.tensor([[-1.0, 0.5], [0.0, -2.0]], dtype=f64)
    B = torch.tensor([1.0, 1.0], dtype=f64)
    for name, alpha in METHODS.items():
        got = discretize(A, B, 0.1, name)
        want = zoh(A, B, 0.1) if alpha is None else gbt(A, B, 0.1, alpha)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, rtol=0, atol=0)
        got = discretize_diag(torch.diagonal(A), B, 0.1, name)
        want = zoh_diag(torch.diagonal(A), B, 0.1) if alpha is None else gbt_diag(torch.diagonal(A), B, 0.1, alpha)
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, rtol=0, atol=0)


def _smooth_input_error(method, n_steps):
    """|x(T) − x_L| for u(t) = sin(3t) + cos(1.3t) on [0, T], x(0) = 0, with Δ = T / n_steps.

    The exact x(T) comes from the autonomous system z = (x, s, c), s' = 3c, c' = −3s (u = s + c'):
    a single float64 matrix exponential. Each method samples u where it is consistent: forward
    Euler at the left end of the step, backward Euler at the right end, bilinear and ZOH at the
    midpoint.
    """
    rng = np.random.default_rng(4)
    N, T = 3, 2.0
    A, B = _stable(N, rng), rng.standard_normal(N)
    M = np.zeros((N + 4, N + 4))
    M[:N, :N] = A
    M[:N, N] = B  # u contains sin(3t) = s
    M[:N, N + 2] = B  # and cos(1.3t) = c₂
    M[N, N + 1], M[N + 1, N] = 3.0, -3.0  # s' = 3 c₁, c₁' = −3 s
    M[N + 2, N + 3], M[N + 3, N + 2] = -1.3, 1.3  # c₂' = −1.3 s₂, s₂' = 1.3 c₂
    z0 = np.zeros(N + 4)
    z0[N + 1], z0[N + 2] = 1.0, 1.0  # s(0)=0, c₁(0)=1, c₂(0)=1, s₂(0)=0
    x_exact = (scipy.linalg.expm(T * M) @ z0)[:N]
    dt = T / n_steps
    dA, dB = discretize(torch.tensor(A), torch.tensor(B), dt, method)
    dA, dB = dA.numpy(), dB.numpy()
    shift = {"euler": 1.0, "backward_euler": 0.0, "bilinear": 0.5, "zoh": 0.5}[method]
    t = (np.arange(1, n_steps + 1) - shift) * dt
    u = np.sin(3 * t) + np.cos(1.3 * t)
    x = np.zeros(N)
    for k in range(n_steps):
        x = dA @ x + dB * u[k]
    return np.abs(x - x_exact).max()


@pytest.mark.parametrize("method,order", [("euler", 1), ("backward_euler", 1), ("bilinear", 2), ("zoh", 2)])
def test_order_of_accuracy(method, order):
    """Halving Δ cuts the error ≈2× (Euler) or ≈4× (bilinear; ZOH with midpoint input)."""
    errors = [_smooth_input_error(method, n) for n in (100, 200, 400, 800)]
    slopes = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(np.abs(slopes - order) < 0.1), (method, errors, slopes)


# ---------------------------------------------------------------------------------------------- DPLR


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0, 0.25])
@pytest.mark.parametrize("rank", [1, 2])
def test_dplr_gbt_equals_dense_gbt(alpha, rank):
    g = torch.Generator().manual_seed(5)
    N = 7
    Lam = torch.complex(-torch.rand(N, generator=g, dtype=f64) - 0.1, 3 * torch.randn(N, generator=g, dtype=f64))
    P = torch.randn(rank, N, generator=g, dtype=c128)
    Q = torch.randn(rank, N, generator=g, dtype=c128)
    B = torch.randn(N, generator=g, dtype=c128)
    dt = torch.tensor([[0.05], [0.4], [2.0]], dtype=f64)  # (3, 1): broadcast over a (1,) batch
    A = torch.diag(Lam) - P.T @ Q.conj()
    dA, dB = dplr_gbt(Lam, P, Q, B, dt, alpha)
    assert dA.shape == (3, 1, N, N) and dB.shape == (3, 1, N)
    for i in range(3):
        rA, rB = gbt(A, B, dt[i, 0], alpha)
        torch.testing.assert_close(dA[i, 0], rA, rtol=0, atol=1e-12)
        torch.testing.assert_close(dB[i, 0], rB, rtol=0, atol=1e-12)
    x = torch.randn(3, 1, N, generator=g, dtype=c128)
    u = torch.randn(3, 1, generator=g, dtype=f64)
    step = dplr_gbt_step(x, u, Lam, P, Q, B, dt, alpha)
    want = (dA @ x[..., None])[..., 0] + dB * u[..., None]
    torch.testing.assert_close(step, want, rtol=0, atol=1e-12)


# -------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("bad", [0.0, -0.1, float("nan"), float("inf")])
def test_bad_step_is_rejected(bad):
    A, B = -torch.eye(2, dtype=f64), torch.ones(2, dtype=f64)
    dt = torch.tensor([0.1, bad], dtype=f64)
    for fn in (lambda: zoh(A, B, dt), lambda: zoh_diag(torch.diagonal(A), B, dt), lambda: foh_diag(torch.diagonal(A), B, dt)):
        with pytest.raises(ValueError, match="dt"):
            fn()
    with pytest.raises(ValueError, match="dt"):
        gbt(A, B, dt, 0.5)


def test_complex_step_is_rejected_before_the_cast():
    """A complex Δ was cast to real (its imaginary part dropped with only a warning; a Python complex
    raised a TypeError): every discretization now says that dt must be real."""
    A, B = -torch.eye(2, dtype=f64), torch.ones(2, dtype=c128)
    Lam = torch.diagonal(A).to(c128)
    P = Q = torch.zeros(1, 2, dtype=c128)
    fns = {
        "zoh": lambda d: zoh(A, B, d),
        "gbt": lambda d: gbt(A, B, d, 0.5),
        "zoh_diag": lambda d: zoh_diag(Lam, B, d),
        "gbt_diag": lambda d: gbt_diag(Lam, B, d, 1.0),
        "foh_diag": lambda d: foh_diag(Lam, B, d),
        "dplr_gbt": lambda d: dplr_gbt(Lam, P, Q, B, d),
    }
    for name, fn in fns.items():
        for d in (torch.tensor(0.1 + 0.2j), torch.tensor([0.1, 0.2], dtype=c128), 0.1 + 0.2j, np.complex128(0.1)):
            with pytest.raises(ValueError, match="dt must be real, got dtype torch.complex"):
                fn(d)
        fn(np.float64(0.1))  # real numpy scalars and Python floats stay accepted


def test_shape_and_name_errors_name_the_problem():
    A, B = -torch.eye(3, dtype=f64), torch.ones(3, dtype=f64)
    with pytest.raises(ValueError, match=r"A must have shape \(\.\.\., N, N\)"):
        zoh(A[:2], B, 0.1)
    with pytest.raises(ValueError, match="B must have last dimension N=3"):
        zoh(A, B[:2], 0.1)
    with pytest.raises(ValueError, match="B must have last dimension N=3"):
        zoh_diag(torch.diagonal(A), B[:2], 0.1)
    with pytest.raises(ValueError, match="B must have last dimension N=3"):
        foh_diag(torch.diagonal(A), B[:2], 0.1)
    with pytest.raises(ValueError, match="unknown discretization method 'tustin'.*'bilinear'"):
        discretize(A, B, 0.1, "tustin")
    with pytest.raises(ValueError, match="alpha must lie in"):
        gbt(A, B, 0.1, 1.5)
    with pytest.raises(ValueError, match="do not broadcast"):
        zoh_diag(torch.diagonal(A).expand(4, 3), B, torch.ones(5, dtype=f64))
    with pytest.raises(ValueError, match="A contains NaN"):
        zoh(torch.full((3, 3), float("nan"), dtype=f64), B, 0.1)
    Lam = torch.diagonal(A).to(c128)
    with pytest.raises(ValueError, match="same rank"):
        dplr_gbt(Lam, torch.ones(1, 3, dtype=c128), torch.ones(2, 3, dtype=c128), B.to(c128), 0.1)


def test_inputs_are_not_modified():
    g = torch.Generator().manual_seed(6)
    Lam = torch.complex(-torch.rand(4, generator=g, dtype=f64), torch.randn(4, generator=g, dtype=f64))
    P, Q, B = (torch.randn(*s, generator=g, dtype=c128) for s in ((1, 4), (1, 4), (4,)))
    dt = torch.rand(3, 1, generator=g, dtype=f64) + 0.1
    x = torch.randn(4, generator=g, dtype=c128)
    before = [t.clone() for t in (Lam, P, Q, B, dt, x)]
    dplr_gbt(Lam, P, Q, B, dt)
    dplr_gbt_step(x, torch.tensor(1.0, dtype=f64), Lam, P, Q, B, dt[0, 0])
    zoh_diag(Lam, B, dt)
    foh_diag(Lam, B, dt)
    A = torch.diag(Lam)
    zoh(A, B, dt)
    for b, a in zip(before, (Lam, P, Q, B, dt, x)):
        assert torch.equal(a, b)
