"""The three views of an SSM agree: continuous (exact matrix exponential, float64, scipy), recurrent
(step by step / scan) and convolutional (kernel * u by FFT), for S4D (diagonal) and S4 (DPLR LegS)."""

import numpy as np
import pytest
import scipy.linalg
import torch

from ssmforecast.math.conv import fft_conv
from ssmforecast.math.discretize import dplr_gbt_step, zoh_diag
from ssmforecast.math.hippo import dplr_legs, legs, s4d_legs, s4d_lin
from ssmforecast.math.kernels import dplr_kernel, vandermonde_kernel
from ssmforecast.math.scan import ssm_scan

f64, c128 = torch.float64, torch.complex128


def _rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.abs(a - b).max() / np.abs(b).max()


def _real_form(lam, B, C):
    """Conjugate-pair diagonal system (λ, B, C; y = 2 Re C x) → real (A, B, C) of twice the size.

    State (Re x_n, Im x_n): x' = λx + Bu gives the block [[a, −b], [b, a]]; y = 2(Re C · Re x − Im C · Im x).
    """
    n = len(lam)
    A = np.zeros((2 * n, 2 * n))
    Br, Cr = np.zeros(2 * n), np.zeros(2 * n)
    for i, (l, b, c) in enumerate(zip(lam, B, C)):
        A[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = [[l.real, -l.imag], [l.imag, l.real]]
        Br[2 * i : 2 * i + 2] = [b.real, b.imag]
        Cr[2 * i : 2 * i + 2] = [2 * c.real, -2 * c.imag]
    return A, Br, Cr


def _continuous(A, B, C, D, u, dts):
    """Exact solution of x' = Ax + Bu, y = Cx + Du with u held over each step (t_{k−1}, t_k], x(0) = 0:
    x(t_k) = e^{AΔ_k} x(t_{k−1}) + ∫₀^{Δ_k} e^{As} ds B u_k, both blocks of one augmented expm (scipy)."""
    N = len(B)
    M = np.zeros((N + 1, N + 1))
    M[:N, :N], M[:N, N] = A, B
    x, y, cache = np.zeros(N), np.empty(len(u)), {}
    for k, (uk, d) in enumerate(zip(u, dts)):
        if d not in cache:
            cache[d] = scipy.linalg.expm(d * M)
        E = cache[d]
        x = E[:N, :N] @ x + E[:N, N] * uk
        y[k] = C @ x + D * uk
    return y


def _smooth_random_input(L, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(L)
    return np.sin(2 * np.pi * t / 97) + 0.5 * np.sin(2 * np.pi * t / 13 + 1) + 0.3 * rng.standard_normal(L)


@pytest.mark.parametrize("init", [s4d_lin, s4d_legs])
def test_s4d_three_views_agree(init):
    """S4D, ZOH, 32 conjugate pairs (state 64), L = 4096: continuous == recurrent == convolutional."""
    L, n_modes = 4096, 32
    lam, B = init(n_modes)  # (32,), (32,)
    rng = np.random.default_rng(0)
    C = torch.tensor(rng.standard_normal(n_modes) + 1j * rng.standard_normal(n_modes)) / np.sqrt(n_modes)
    D, dt = 0.7, 0.05
    u = _smooth_random_input(L, 1)

    A_r, B_r, C_r = _real_form(lam.numpy(), B.numpy().astype(complex), C.numpy())
    y_cont = _continuous(A_r, B_r, C_r, D, u, np.full(L, dt))

    dA, dB = zoh_diag(lam, B, dt)  # (32,)
    ut = torch.tensor(u)[None, None]  # (1, 1, L)
    Dt = torch.tensor([D], dtype=f64)
    y_rec, _ = ssm_scan(ut, dA[None, None, :], dB[None, None, :], C[None, None, :], Dt, method="sequential", conj_pairs=True)
    y_par, _ = ssm_scan(ut, dA[None, None, :], dB[None, None, :], C[None, None, :], Dt, conj_pairs=True)
    K = vandermonde_kernel(dA, dB, C, L, conj_pairs=True)  # (L,)
    y_conv = fft_conv(ut, K[None], Dt)

    assert _rel(y_rec[0, 0], y_cont) < 1e-10
    assert _rel(y_par[0, 0], y_cont) < 1e-10
    assert _rel(y_conv[0, 0], y_cont) < 1e-10


def test_s4d_irregular_steps_recurrent_equals_continuous():
    """Poisson-random Δ_k: the scan over per-step ZOH equals the exact solution at every observation."""
    L, n_modes = 500, 16
    lam, B = s4d_lin(n_modes)
    rng = np.random.default_rng(2)
    C = torch.tensor(rng.standard_normal(n_modes) + 1j * rng.standard_normal(n_modes))
    dts = rng.exponential(0.2, L) + 1e-3
    u = rng.standard_normal(L)
    A_r, B_r, C_r = _real_form(lam.numpy(), B.numpy().astype(complex), C.numpy())
    y_cont = _continuous(A_r, B_r, C_r, 0.0, u, dts)
    dA, dB = zoh_diag(lam[None, :], B, torch.tensor(dts))  # (L, 16): Δ per step
    for method in ("sequential", "chunked"):
        y, _ = ssm_scan(torch.tensor(u)[None], dA[None], dB[None], C[None, None], method=method, conj_pairs=True)
        assert _rel(y[0], y_cont) < 1e-10


def _legs_system(N, seed):
    A, B = legs(N)
    rng = np.random.default_rng(seed)
    C = rng.standard_normal(N) / np.sqrt(N)
    return A.numpy(), B.numpy(), C


def test_s4_dplr_views_agree_bilinear():
    """S4 (LegS, N = 64, bilinear), L = 4096: dense bilinear recurrence on the original real A ==
    O(N) Woodbury steps in the diagonal basis == Cauchy + Woodbury kernel, full and conjugate-half."""
    N, L, dt, D = 64, 4096, 0.01, 0.3
    A, B, C = _legs_system(N, 3)
    u = _smooth_random_input(L, 4)

    # reference: the bilinear recurrence on the dense real LegS matrix, numpy float64
    I = np.eye(N)
    dA = np.linalg.solve(I - dt / 2 * A, I + dt / 2 * A)
    dB = np.linalg.solve(I - dt / 2 * A, dt * B)
    x, y_ref = np.zeros(N), np.empty(L)
    for k in range(L):
        x = dA @ x + dB * u[k]
        y_ref[k] = C @ x + D * u[k]

    lam, P, Bt, V = dplr_legs(N)
    Ct = torch.tensor(C).to(c128) @ V  # (N,)  y = C x = C V x̃
    # recurrent view: Woodbury step, O(N) per step
    xt, y_rec = torch.zeros(N, dtype=c128), np.empty(L)
    ut = torch.tensor(u)
    for k in range(L):
        xt = dplr_gbt_step(xt, ut[k], lam, P, P, Bt, dt)
        y_rec[k] = (Ct @ xt).real.item() + D * u[k]
    assert _rel(y_rec, y_ref) < 1e-10

    # convolutional view, all N modes (complex kernel, real up to rounding)
    K = dplr_kernel(lam, P, P, Bt, Ct, dt, L)  # (L,)
    assert K.imag.abs().max() < 1e-10 * K.abs().max()
    y_conv = fft_conv(ut[None, None], K.real[None], torch.tensor([D], dtype=f64))
    assert _rel(y_conv[0, 0], y_ref) < 1e-10

    # convolutional view, one mode of each conjugate pair (as S4 stores it)
    h = N // 2
    assert torch.allclose(lam[h:], lam[:h].conj().flip(0))
    K_half = dplr_kernel(lam[:h], P[:, :h], P[:, :h], Bt[:h], Ct[:h], dt, L, conj_pairs=True)
    assert _rel(K_half, K.real) < 1e-10


def test_s4_zoh_continuous_equals_recurrent_and_bilinear_converges():
    """Dense LegS with ZOH reproduces the exact solution; bilinear approaches it at order Δ²."""
    N, T = 16, 2.0
    A, B, C = _legs_system(N, 5)
    errs = []
    for n_steps in (200, 400):
        dt = T / n_steps
        t = (np.arange(1, n_steps + 1) - 0.5) * dt
        u = np.sin(2 * t)  # midpoint values, the consistent sampling for a second-order method
        # the exact solution for the *smooth* input, via the augmented autonomous system
        M = np.zeros((N + 2, N + 2))
        M[:N, :N], M[:N, N] = A, B
        M[N, N + 1], M[N + 1, N] = 2.0, -2.0
        z0 = np.zeros(N + 2)
        z0[N + 1] = 1.0
        y_exact = C @ (scipy.linalg.expm(T * M) @ z0)[:N]
        lam, P, Bt, V = dplr_legs(N)
        Ct = torch.tensor(C).to(c128) @ V
        K = dplr_kernel(lam, P, P, Bt, Ct, dt, n_steps).real
        y = fft_conv(torch.tensor(u)[None, None], K[None])[0, 0, -1].item()
        errs.append(abs(y - y_exact))
    assert 3.6 < errs[0] / errs[1] < 4.4


def test_float32_views_agree_with_float64_reference():
    """float32 kernels and scans stay within 1e-4 (relative) of float64 at L = 4096, N = 64."""
    L = 4096
    u = _smooth_random_input(L, 6)
    # S4D (Vandermonde kernel and chunked scan)
    lam, B = s4d_lin(32)
    rng = np.random.default_rng(7)
    C = torch.tensor(rng.standard_normal(32) + 1j * rng.standard_normal(32)) / np.sqrt(32)
    dA, dB = zoh_diag(lam, B, 0.05)
    y64 = fft_conv(torch.tensor(u)[None, None], vandermonde_kernel(dA, dB, C, L, conj_pairs=True)[None])[0, 0].numpy()
    lam32, B32, C32 = lam.to(torch.complex64), B.to(torch.complex64), C.to(torch.complex64)
    dA32, dB32 = zoh_diag(lam32, B32, 0.05)
    u32 = torch.tensor(u, dtype=torch.float32)[None, None]
    K32 = vandermonde_kernel(dA32, dB32, C32, L, conj_pairs=True)
    assert K32.dtype == torch.float32
    assert _rel(fft_conv(u32, K32[None])[0, 0].numpy(), y64) < 1e-4
    y32, _ = ssm_scan(u32, dA32[None, None], dB32[None, None], C32[None, None], conj_pairs=True)
    assert _rel(y32[0, 0].numpy(), y64) < 1e-4
    # S4 (Cauchy + Woodbury kernel), N = 64 as 32 conjugate pairs
    N = 64
    lamL, P, Bt, V = dplr_legs(N)
    C = torch.tensor(_legs_system(N, 8)[2]).to(c128) @ V
    h = N // 2
    args64 = (lamL[:h], P[:, :h], P[:, :h], Bt[:h], C[:h])
    y64 = fft_conv(torch.tensor(u)[None, None], dplr_kernel(*args64, 0.01, L, conj_pairs=True)[None])[0, 0].numpy()
    args32 = tuple(a.to(torch.complex64) for a in args64)
    K32 = dplr_kernel(*args32, 0.01, L, conj_pairs=True)
    assert K32.dtype == torch.float32
    assert _rel(fft_conv(u32, K32[None])[0, 0].numpy(), y64) < 1e-4
