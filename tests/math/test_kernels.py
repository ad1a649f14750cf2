"""Kernels: naive powers against numpy, Vandermonde and Cauchy + Woodbury against the naive powers."""

import numpy as np
import pytest
import torch

from ssmforecast.math.discretize import METHODS, dplr_gbt, gbt, zoh_diag
from ssmforecast.math.kernels import (
    cauchy,
    dplr_kernel,
    dplr_truncated_C,
    krylov_kernel,
    power_kernel,
    vandermonde_kernel,
)

f64, c128 = torch.float64, torch.complex128


def _conj(x):
    return torch.cat([x, x.conj()], dim=-1)


def _random_dplr(N, rank, H=None, seed=0):
    """A stable random DPLR system (Λ, P, Q, B, C) with small low-rank part."""
    g = torch.Generator().manual_seed(seed)
    shape = (N,) if H is None else (H, N)
    Lam = torch.complex(-torch.rand(shape, generator=g, dtype=f64) - 0.2, 4 * torch.randn(shape, generator=g, dtype=f64))
    P = 0.3 * torch.randn(*shape[:-1], rank, N, generator=g, dtype=c128)
    Q = 0.3 * torch.randn(*shape[:-1], rank, N, generator=g, dtype=c128)
    B = torch.randn(shape, generator=g, dtype=c128)
    C = torch.randn(shape, generator=g, dtype=c128)
    return Lam, P, Q, B, C


def _rel(a, b):
    return (a - b).abs().max().item() / b.abs().max().item()


def test_power_kernel_matches_numpy_matrix_powers():
    rng = np.random.default_rng(0)
    dA = rng.standard_normal((2, 4, 4)) / 3
    dB, C = rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    K = power_kernel(torch.tensor(dA), torch.tensor(dB), torch.tensor(C), 9).numpy()
    for h in range(2):
        ref = [C[h] @ np.linalg.matrix_power(dA[h], l) @ dB[h] for l in range(9)]
        np.testing.assert_allclose(K[h], ref, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("L", [1, 2, 3, 64, 1000])
def test_krylov_doubling_equals_power_kernel(L):
    Lam, P, Q, B, C = _random_dplr(6, 1, H=3, seed=7)
    dA, dB = dplr_gbt(Lam, P, Q, B, torch.tensor([0.05, 0.2, 1.0], dtype=f64), 0.5)
    K = krylov_kernel(dA, dB, C, L)
    assert K.shape == (3, L)
    assert _rel(K, power_kernel(dA, dB, C, L)) < 1e-10


@pytest.mark.parametrize("conj_pairs", [False, True])
def test_vandermonde_equals_power_kernel(conj_pairs):
    Lam, _, _, B, C = _random_dplr(16, 1, H=3, seed=1)
    dt = torch.tensor([0.01, 0.1, 1.0], dtype=f64)
    dA, dB = zoh_diag(Lam, B, dt)  # (3, 16)
    L = 1000
    K = vandermonde_kernel(dA, dB, C, L, conj_pairs=conj_pairs)
    if conj_pairs:
        ref = power_kernel(torch.diag_embed(_conj(dA)), _conj(dB), _conj(C), L)
        assert ref.imag.abs().max() < 1e-12 and not K.is_complex()
        ref = ref.real
    else:
        ref = power_kernel(torch.diag_embed(dA), dB, C, L)
    assert _rel(K, ref) < 1e-10


def test_vandermonde_blocks_zero_and_negative_modes():
    # Ā = 0 (a mode that dies in one step) and negative real Ā (forward Euler past stability)
    dA = torch.tensor([0.0, -0.9, 0.5, -0.3], dtype=f64)
    dB = torch.tensor([1.0, 2.0, -1.0, 0.5], dtype=f64)
    C = torch.tensor([0.7, 0.1, 1.0, -2.0], dtype=f64)
    ref = power_kernel(torch.diag(dA), dB, C, 50)
    for block in (1, 7, 50, 4096, None):
        K = vandermonde_kernel(dA, dB, C, 50, block=block)
        assert _rel(K.real, ref) < 1e-12 and K.imag.abs().max() < 1e-12


def test_cauchy_matches_direct_sum():
    rng = np.random.default_rng(2)
    v = rng.standard_normal((3, 5)) + 1j * rng.standard_normal((3, 5))
    w = rng.standard_normal((3, 5)) + 1j * rng.standard_normal((3, 5))
    a = rng.standard_normal(11) + 1j * rng.standard_normal(11)
    b = rng.standard_normal(11) + 1j * rng.standard_normal(11)
    ref = (v[:, None, :] / (a[None, :, None] - b[None, :, None] * w[:, None, :])).sum(-1)
    ref_conj = ref + (v.conj()[:, None, :] / (a[None, :, None] - b[None, :, None] * w.conj()[:, None, :])).sum(-1)
    t = [torch.tensor(x) for x in (v, w, a, b)]
    np.testing.assert_allclose(cauchy(*t, chunk_size=4).numpy(), ref, rtol=1e-13)
    np.testing.assert_allclose(cauchy(*t, conj_pairs=True).numpy(), ref_conj, rtol=1e-13)
    np.testing.assert_allclose(
        cauchy(t[0], t[1], t[2]).numpy(), (v[:, None, :] / (a[None, :, None] - w[:, None, :])).sum(-1), rtol=1e-13
    )


@pytest.mark.parametrize("method", ["bilinear", "euler", "backward_euler"])
@pytest.mark.parametrize("rank", [1, 2])
@pytest.mark.parametrize("L", [1, 2, 63, 64, 1000])
def test_dplr_kernel_equals_power_kernel(method, rank, L):
    Lam, P, Q, B, C = _random_dplr(8, rank, H=2, seed=3)
    dt = torch.tensor([0.05, 0.2], dtype=f64)
    dA, dB = dplr_gbt(Lam, P, Q, B, dt, METHODS[method])
    ref = power_kernel(dA, dB, C, L)
    K = dplr_kernel(Lam, P, Q, B, C, dt, L, method=method)
    assert K.shape == (2, L)
    assert _rel(K, ref) < 1e-8


@pytest.mark.parametrize("L", [63, 64, 1000])
def test_dplr_kernel_conj_pairs_is_the_real_kernel_of_the_full_system(L):
    Lam, P, Q, B, C = _random_dplr(6, 1, H=2, seed=4)
    dt = torch.tensor([0.1, 0.03], dtype=f64)
    dA, dB = dplr_gbt(_conj(Lam), _conj(P), _conj(Q), _conj(B), dt, 0.5)
    ref = power_kernel(dA, dB, _conj(C), L)
    assert ref.imag.abs().max() < 1e-12 * ref.abs().max()
    K = dplr_kernel(Lam, P, Q, B, C, dt, L, conj_pairs=True)
    assert not K.is_complex() and K.shape == (2, L)
    assert _rel(K, ref.real) < 1e-8


def test_dplr_kernel_with_truncated_C_and_the_correction_itself():
    Lam, P, Q, B, C = _random_dplr(5, 1, seed=5)
    dt, L = 0.1, 40
    dA, _ = gbt(torch.diag(Lam) - P.T @ Q.conj(), B, dt, 0.5)
    C_tilde = dplr_truncated_C(Lam, P, Q, C, dt, L)
    np.testing.assert_allclose(
        C_tilde.numpy(), C.numpy() @ (np.eye(5) - np.linalg.matrix_power(dA.numpy(), L)), rtol=1e-12, atol=1e-14
    )
    K1 = dplr_kernel(Lam, P, Q, B, C, dt, L)
    K2 = dplr_kernel(Lam, P, Q, B, C_tilde, dt, L, C_is_truncated=True)
    torch.testing.assert_close(K1, K2, rtol=0, atol=1e-13)


def test_kernel_errors():
    Lam, P, Q, B, C = _random_dplr(4, 1, seed=6)
    with pytest.raises(ValueError, match="kernel length L must be a positive int"):
        dplr_kernel(Lam, P, Q, B, C, 0.1, 0)
    with pytest.raises(ValueError, match="ZOH of a DPLR matrix has no Cauchy form"):
        dplr_kernel(Lam, P, Q, B, C, 0.1, 8, method="zoh")
    with pytest.raises(ValueError, match="unknown discretization method"):
        dplr_kernel(Lam, P, Q, B, C, 0.1, 8, method="tustin")
    with pytest.raises(ValueError, match="C must have last dimension N=4"):
        dplr_kernel(Lam, P, Q, B, C[:3], 0.1, 8)
    with pytest.raises(ValueError, match="dt must be strictly positive"):
        dplr_kernel(Lam, P, Q, B, C, -0.1, 8)
    with pytest.raises(ValueError, match="dB must have last dimension N=4"):
        vandermonde_kernel(Lam, B[:2], C, 8)
    with pytest.raises(ValueError, match="dA must have shape"):
        power_kernel(Lam, B, C, 8)
