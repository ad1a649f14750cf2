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


def _brute_vandermonde(dA, dB, C, L):
    """K̄_l = Σ_n C_n B̄_n Ā_n^l in complex128, by numpy powers."""
    dA, dB, C = (np.asarray(t, complex) for t in (dA, dB, C))
    return np.array([(C * dB * dA**l).sum(-1) for l in range(L)]).T


def test_vandermonde_real_nonnegative_dA_with_complex_B_or_C_keeps_the_imaginary_part():
    """A real Ā ≥ 0 keeps real powers; the complex C B̄ was then cast to that real dtype (Im dropped,
    with only a warning). Against the brute-force sum in complex128, for each block size."""
    dA = torch.tensor([0.9, 0.5], dtype=f64)
    dB = torch.tensor([1.0, 2.0], dtype=f64)
    C = torch.tensor([1 + 1j, 2 - 3j], dtype=c128)
    K = vandermonde_kernel(dA, dB, C, 5)
    np.testing.assert_allclose(K.numpy()[:2], [5 - 5j, 2.9 - 2.1j], rtol=1e-14)  # C·B̄ summed, then Ā-weighted
    g = torch.Generator().manual_seed(8)
    dA = torch.cat([torch.rand(2, 5, generator=g, dtype=f64), torch.zeros(2, 1, dtype=f64)], -1)  # Ā ∈ [0, 1)
    dB_r, C_r = (torch.randn(2, 6, generator=g, dtype=f64) for _ in range(2))
    dB_c, C_c = (torch.randn(2, 6, generator=g, dtype=c128) for _ in range(2))
    L = 30
    for dB, C in ((dB_r, C_c), (dB_c, C_r), (dB_c, C_c)):
        want = _brute_vandermonde(dA.numpy(), dB.numpy(), C.numpy(), L)  # (2, L)
        for block in (1, 4, None):
            K = vandermonde_kernel(dA, dB, C, L, block=block)
            assert K.dtype == c128
            np.testing.assert_allclose(K.numpy(), want, rtol=1e-12, atol=1e-14)
            K2 = vandermonde_kernel(dA, dB, C, L, block=block, conj_pairs=True)
            np.testing.assert_allclose(K2.numpy(), 2 * want.real, rtol=1e-12, atol=1e-14)


def test_vandermonde_length_and_block_arguments():
    """L of any integer type (numpy.int64 was refused) gives the same kernel; a block < 1 or not an
    int is refused by name (it divided by zero, or failed inside torch.arange)."""
    dA = torch.tensor([0.9, -0.4, 0.2], dtype=f64)
    dB = torch.tensor([1.0, 0.5, -2.0], dtype=f64)
    C = torch.tensor([0.3, 1.0, 0.7], dtype=f64)
    want = vandermonde_kernel(dA, dB, C, 8)
    torch.testing.assert_close(vandermonde_kernel(dA, dB, C, np.int64(8)), want, rtol=0, atol=0)
    torch.testing.assert_close(vandermonde_kernel(dA, dB, C, 8, block=np.int64(3)), vandermonde_kernel(dA, dB, C, 8, block=3))
    torch.testing.assert_close(power_kernel(torch.diag(dA), dB, C, np.int32(8)), want.real, rtol=1e-14, atol=1e-14)
    for bad in (0, -2, 2.5, True):
        with pytest.raises(ValueError, match=f"block must be a positive int or None, got {bad!r}"):
            vandermonde_kernel(dA, dB, C, 8, block=bad)
    for bad in (0, 8.0, True, np.float64(8)):
        with pytest.raises(ValueError, match="kernel length L must be a positive int"):
            vandermonde_kernel(dA, dB, C, bad)


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


def cauchy_reference(v, w, alpha, beta=None, *, conj_pairs=False, chunk_size=None):
    """The plain formula k_j = Σ_n v_n / (α_j − β_j w_n) with the whole (M, N) matrix, for autograd to
    differentiate: the reference for cauchy's chunked forward and hand-written backward."""
    single = v.ndim == w.ndim
    if single:
        v = v[..., None, :]  # (..., 1, N)
    if beta is None:
        beta = torch.ones_like(alpha)
    R = 1 / (alpha[..., None, :, None] - beta[..., None, :, None] * w[..., None, None, :])  # (..., 1, M, N)
    k = (v[..., :, None, :] * R).sum(-1)  # (..., K, M)
    if conj_pairs:
        R = 1 / (alpha[..., None, :, None] - beta[..., None, :, None] * w.conj()[..., None, None, :])
        k = k + (v.conj()[..., :, None, :] * R).sum(-1)
    return k[..., 0, :] if single else k


def _cauchy_inputs(shapes, dtype, seed=0):
    """v, w, α, β of the given shapes, with α_j − β_j w_n well away from 0."""
    g = torch.Generator().manual_seed(seed)
    v, w, a, b = (torch.randn(sh, generator=g, dtype=dtype) for sh in shapes)
    return v, w, a + 4, 0.3 * b


# (v, w, α, β) shapes: a batch shared by all; α, β without batch axes; w without; v single (no K axis)
CAUCHY_SHAPES = {
    "batched": ((2, 3, 5), (2, 5), (2, 7), (2, 7)),
    "nodes broadcast": ((2, 3, 5), (2, 5), (7,), (1, 7)),
    "modes broadcast": ((2, 3, 5), (5,), (2, 7), (7,)),
    "single vector": ((2, 5), (2, 5), (7,), (7,)),
}


@pytest.mark.parametrize("conj_pairs", [False, True])
@pytest.mark.parametrize("shapes", CAUCHY_SHAPES.values(), ids=CAUCHY_SHAPES.keys())
@pytest.mark.parametrize("dtype", [c128, f64])
def test_cauchy_gradcheck(dtype, shapes, conj_pairs):
    """Hand-written chunked backward (3 chunks of M = 7 nodes) against finite differences, every input."""
    inputs = tuple(x.requires_grad_() for x in _cauchy_inputs(shapes, dtype))
    f = lambda *x: cauchy(*x, conj_pairs=conj_pairs, chunk_size=3)  # noqa: E731
    torch.testing.assert_close(f(*inputs), cauchy_reference(*inputs, conj_pairs=conj_pairs), rtol=1e-13, atol=1e-13)
    assert torch.autograd.gradcheck(f, inputs)


@pytest.mark.parametrize("conj_pairs", [False, True])
def test_cauchy_gradients_of_some_inputs_and_mixed_dtypes(conj_pairs):
    """Only the inputs that require grad get one; a real α (promoted to complex) gets a real gradient;
    β = None; and the backward is itself differentiable (gradgradcheck)."""
    v, w, a, _ = _cauchy_inputs(((3, 5), (5,), (2, 7), (7,)), c128, seed=1)
    a = a.real.clone().requires_grad_()  # (2, 7) float64
    w.requires_grad_()
    f = lambda w, a: cauchy(v, w, a, conj_pairs=conj_pairs, chunk_size=2)  # noqa: E731
    assert torch.autograd.gradcheck(f, (w, a))
    assert torch.autograd.gradgradcheck(f, (w, a))
    g = torch.randn(2, 3, 7, dtype=c128)
    gw, ga = torch.autograd.grad((f(w, a) * g).real.sum(), (w, a))
    rw, ra = torch.autograd.grad((cauchy_reference(v, w, a, conj_pairs=conj_pairs) * g).real.sum(), (w, a))
    assert ga.dtype == f64 and ga.shape == a.shape and gw.shape == w.shape
    torch.testing.assert_close(gw, rw, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ga, ra, rtol=1e-12, atol=1e-12)


def test_cauchy_chunking_does_not_change_the_result():
    v, w, a, b = _cauchy_inputs(((4, 3, 6), (4, 6), (4, 50), (4, 50)), c128, seed=2)
    ref = cauchy_reference(v, w, a, b, conj_pairs=True)
    for chunk_size in (1, 7, 50, 64, None):
        torch.testing.assert_close(cauchy(v, w, a, b, conj_pairs=True, chunk_size=chunk_size), ref, rtol=1e-13, atol=1e-13)
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        cauchy(v, w, a, b, chunk_size=0)
    with pytest.raises(ValueError, match="v must have last dimension N=6"):
        cauchy(v[..., :5], w, a, b)
    with pytest.raises(ValueError, match="shapes do not broadcast"):
        cauchy(v, w, a[:3], b[:3])


@pytest.mark.parametrize("conj_pairs", [False, True])
def test_dplr_kernel_gradients_equal_the_dense_cauchy(conj_pairs, monkeypatch):
    """Gradients of the DPLR kernel w.r.t. Λ, P, Q, B, C, Δ through the chunked Cauchy backward equal
    autograd through the plain formula (float64 / complex128, several chunks)."""
    import ssmforecast.math.kernels as kernels

    Lam, P, Q, B, C = _random_dplr(16, 2, H=3, seed=8)
    dt = torch.tensor([0.05, 0.2, 0.7], dtype=f64)
    inputs = tuple(x.clone().requires_grad_() for x in (Lam, P, Q, B, C, dt))
    g = torch.randn(3, 500, dtype=c128)

    def grads(cauchy_fn):
        monkeypatch.setattr(kernels, "cauchy", cauchy_fn)
        K = dplr_kernel(*inputs, 500, conj_pairs=conj_pairs)  # (3, 500)
        return K, torch.autograd.grad((K * g).real.sum(), inputs)

    K, gs = grads(lambda *x, **kw: cauchy(*x, **kw, chunk_size=64))
    K_ref, gs_ref = grads(cauchy_reference)
    assert _rel(K, K_ref) < 1e-12
    for name, g1, g2 in zip(("Lambda", "P", "Q", "B", "C", "dt"), gs, gs_ref):
        assert _rel(g1, g2) < 1e-10, name


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
