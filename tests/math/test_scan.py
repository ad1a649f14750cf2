"""Tests of ssmforecast.math.scan against independent float64 references (numpy brute force)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from conftest import needs_fused
from hypothesis import strategies as st

from ssmforecast.math.scan import linear_recurrence, linear_recurrence_seq, ssm_scan

CHUNK_SIZES = (2, 4, 16, 64)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _eigs(H: int, N: int, complex_: bool, g: torch.Generator, dtype=torch.float64) -> torch.Tensor:
    """λ (H, N) with real parts in −[0.01, 6] (so Δλ reaches −60 for Δ = 10); imaginary in [−10, 10]."""
    re_ = -torch.exp(torch.empty(H, N, dtype=dtype).uniform_(np.log(0.01), np.log(6.0), generator=g))
    if not complex_:
        return re_
    im = torch.empty(H, N, dtype=dtype).uniform_(-10.0, 10.0, generator=g)
    return torch.complex(re_, im)


def _steps(shape: tuple[int, ...], g: torch.Generator, dtype=torch.float64) -> torch.Tensor:
    """Δ of the given shape, log-uniform in [1e-3, 10]."""
    return torch.exp(torch.empty(shape, dtype=dtype).uniform_(np.log(1e-3), np.log(10.0), generator=g))


def _decay(batch: int, H: int, L: int, N: int, complex_: bool, g: torch.Generator, dtype=torch.float64):
    """a = exp(Δ λ) with Δ (batch, H, L) varying per step and channel → a (batch, H, L, N)."""
    lam = _eigs(H, N, complex_, g, dtype)  # (H, N)
    dt = _steps((batch, H, L), g, dtype)  # (batch, H, L)
    return torch.exp(dt[..., None] * lam[:, None, :])  # (batch, H, L, N)


def _randn(shape, complex_: bool, g: torch.Generator, dtype=torch.float64) -> torch.Tensor:
    x = torch.randn(shape, dtype=dtype, generator=g)
    if complex_:
        x = torch.complex(x, torch.randn(shape, dtype=dtype, generator=g))
    return x


def _max_rel(x: torch.Tensor, ref: torch.Tensor) -> float:
    """max |x − ref| / max(1, max |ref|)."""
    scale = max(1.0, ref.abs().max().item())
    return (x.to(ref.dtype) - ref).abs().max().item() / scale


# ---------------------------------------------------------------------------------------------
# Independent numpy references
# ---------------------------------------------------------------------------------------------


def brute_force_states(a: np.ndarray, b: np.ndarray, x0: np.ndarray) -> np.ndarray:
    """x_k = Σ_{j≤k} (Π_{j<i≤k} a_i) b_j + (Π_{i≤k} a_i) x0 with explicit products."""
    a, b = np.broadcast_arrays(a, b)
    L = a.shape[-2]
    shape = np.broadcast_shapes(a.shape, x0[..., None, :].shape)
    x = np.zeros(shape, dtype=np.result_type(a, b, x0))
    for k in range(L):
        acc = np.prod(a[..., : k + 1, :], axis=-2) * x0
        for j in range(k + 1):
            acc = acc + np.prod(a[..., j + 1 : k + 1, :], axis=-2) * b[..., j, :]
        x[..., k, :] = acc
    return x


def numpy_ssm(u, dA, dB, C, D, x0, conj_pairs: bool):
    """Step-by-step loop of x_k = Ā_k x_{k−1} + B̄_k u_k, y_k = (2)Re Σ C_k x_k + D u_k."""
    L = u.shape[-1]
    x = x0
    ys = []
    for k in range(L):
        x = dA[..., k, :] * x + dB[..., k, :] * u[..., k, None]
        yk = np.sum(C[..., min(k, C.shape[-2] - 1), :] * x, axis=-1)
        ys.append((2.0 if conj_pairs else 1.0) * np.real(yk) + D * u[..., k])
    return np.stack(ys, axis=-1), x


# ---------------------------------------------------------------------------------------------
# linear_recurrence
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
@pytest.mark.parametrize("L", [1, 5, 16, 17, 100, 1000, 4096])
def test_chunked_matches_sequential(L, complex_):
    g = _gen(L + 7 * complex_)
    batch, H, N = 2, 3, 4
    a = _decay(batch, H, L, N, complex_, g)  # includes steps with Δλ ≈ −60
    b = _randn((batch, H, L, N), complex_, g)
    x0 = _randn((batch, H, N), complex_, g)
    for with_x0 in (None, x0):
        ref = linear_recurrence_seq(a, b, with_x0)
        assert ref.shape == (batch, H, L, N)
        assert torch.isfinite(ref).all()
        for T in CHUNK_SIZES:
            x = linear_recurrence(a, b, with_x0, chunk_size=T)
            assert x.shape == ref.shape and x.dtype == ref.dtype
            assert _max_rel(x, ref) < 1e-10, (L, T)


@pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
@pytest.mark.parametrize("L", [1, 2, 7, 12])
def test_brute_force_reference(L, complex_):
    g = _gen(100 + L)
    H, N = 3, 2
    a = _decay(2, H, L, N, complex_, g)
    b = _randn((2, H, L, N), complex_, g)
    x0 = _randn((2, H, N), complex_, g)
    ref = brute_force_states(a.numpy(), b.numpy(), x0.numpy())
    assert _max_rel(linear_recurrence_seq(a, b, x0), torch.from_numpy(ref)) < 1e-12
    for T in (2, 3, 4):
        assert _max_rel(linear_recurrence(a, b, x0, chunk_size=T), torch.from_numpy(ref)) < 1e-12
    zero = brute_force_states(a.numpy(), b.numpy(), np.zeros_like(x0.numpy()))
    assert _max_rel(linear_recurrence(a, b, chunk_size=2), torch.from_numpy(zero)) < 1e-12


@pytest.mark.parametrize("fn", ["chunked", "sequential"])
def test_broadcasting(fn):
    g = _gen(3)
    batch, H, L, N = 3, 2, 37, 4
    if fn == "chunked":
        rec = lambda a, b, x0=None: linear_recurrence(a, b, x0, chunk_size=4)  # noqa: E731
    else:
        rec = linear_recurrence_seq
    a = _decay(1, H, L, N, True, g)  # (1, H, L, N): shared across the batch
    b = _randn((batch, H, L, N), True, g)
    x0 = _randn((batch, 1, N), True, g)
    ref = brute_force_states(a.numpy(), b.numpy(), x0.numpy())
    assert _max_rel(rec(a, b, x0), torch.from_numpy(ref)) < 1e-12
    # a real, b complex: promoted to complex; x0 enlarging the batch
    a_re = a.real.abs()
    b1 = b[:1]  # (1, H, L, N)
    x0b = _randn((batch, H, N), True, g)
    ref = brute_force_states(a_re.numpy(), b1.numpy(), x0b.numpy())
    x = rec(a_re, b1, x0b)
    assert x.shape == (batch, H, L, N) and x.dtype == torch.complex128
    assert _max_rel(x, torch.from_numpy(ref)) < 1e-12
    # time-invariant a: L axis of length 1
    a_ti = a[:, :, :1, :]  # (1, H, 1, N)
    ref = brute_force_states(np.broadcast_to(a_ti.numpy(), (1, H, L, N)), b.numpy(), x0.numpy())
    assert _max_rel(rec(a_ti, b, x0), torch.from_numpy(ref)) < 1e-12


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_strong_decay_no_overflow(dtype):
    """Steps with Δλ ≈ −60 and exactly zero a: products underflow to 0, nothing overflows."""
    g = _gen(11)
    batch, H, L, N = 2, 3, 513, 4
    lam = torch.full((H, N), -6.0, dtype=torch.float64)  # Δλ = −60 at Δ = 10
    dt = torch.full((batch, H, L), 10.0, dtype=torch.float64)
    dt[..., ::3] = _steps((batch, H, (L + 2) // 3), g)
    a = torch.exp(dt[..., None] * lam[:, None, :])  # (batch, H, L, N), down to e^{−60}
    a[0, 0, 100:110] = 0.0
    b = _randn((batch, H, L, N), False, g)
    ref = linear_recurrence_seq(a, b)
    for T in CHUNK_SIZES:
        x = linear_recurrence(a.to(dtype), b.to(dtype), chunk_size=T)
        assert torch.isfinite(x).all()
        assert _max_rel(x, ref) < (1e-5 if dtype == torch.float32 else 1e-12)


def test_float32_long_sequence():
    g = _gen(5)
    batch, H, L, N = 2, 4, 4096, 8
    a = _decay(batch, H, L, N, True, g)
    b = _randn((batch, H, L, N), True, g)
    x0 = _randn((batch, H, N), True, g)
    ref = linear_recurrence_seq(a, b, x0)  # complex128
    x = linear_recurrence(a.to(torch.complex64), b.to(torch.complex64), x0.to(torch.complex64))
    assert x.dtype == torch.complex64
    assert (x.to(ref.dtype) - ref).abs().max() / ref.abs().max() < 1e-4
    x = linear_recurrence(a.real.abs().float(), b.real.float(), x0.real.float())
    ref = linear_recurrence_seq(a.real.abs(), b.real, x0.real)
    assert (x.double() - ref).abs().max() / ref.abs().max() < 1e-4


# ---------------------------------------------------------------------------------------------
# Autograd
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
@pytest.mark.parametrize("fn", ["chunked", "sequential"])
def test_gradcheck_linear_recurrence(fn, dtype):
    g = _gen(17)
    complex_ = dtype.is_complex
    a = _decay(1, 3, 7, 2, complex_, g).requires_grad_()  # (1, 3, 7, 2): broadcast against b
    b = _randn((2, 3, 7, 2), complex_, g).requires_grad_()
    x0 = _randn((2, 3, 2), complex_, g).requires_grad_()
    if fn == "chunked":  # L = 7, T = 2: 4 chunks → 2 carries → sequential: two chunked levels
        f = lambda a, b, x0: linear_recurrence(a, b, x0, chunk_size=2)  # noqa: E731
    else:
        f = linear_recurrence_seq
    assert torch.autograd.gradcheck(f, (a, b, x0))


@pytest.mark.parametrize("method", ["chunked", "sequential"])
def test_gradcheck_ssm_scan(method):
    g = _gen(19)
    H, L, N = 2, 7, 2
    u = torch.randn(2, H, L, dtype=torch.float64, generator=g).requires_grad_()
    dA = _decay(2, H, L, N, True, g).requires_grad_()
    dB = _randn((2, H, L, N), True, g).requires_grad_()
    C = _randn((H, 1, N), True, g).requires_grad_()
    D = torch.randn(H, dtype=torch.float64, generator=g).requires_grad_()
    x0 = _randn((2, H, N), True, g).requires_grad_()

    def f(u, dA, dB, C, D, x0):
        return ssm_scan(u, dA, dB, C, D, x0, method=method, chunk_size=2, conj_pairs=True)

    assert torch.autograd.gradcheck(f, (u, dA, dB, C, D, x0))


@pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
def test_chunked_gradients_match_sequential(complex_):
    g = _gen(23)
    batch, H, L, N = 2, 3, 300, 4
    a = _decay(1, H, L, N, complex_, g)
    b = _randn((batch, H, L, N), complex_, g)
    x0 = _randn((batch, H, N), complex_, g)
    w = _randn((batch, H, L, N), complex_, g)

    def grads(fn):
        leaves = [t.clone().requires_grad_() for t in (a, b, x0)]
        x = fn(*leaves)
        loss = (x * w).sum()
        (loss.real if complex_ else loss).backward()
        return [t.grad for t in leaves]

    ref = grads(linear_recurrence_seq)
    for T in (2, 16, 64):
        for gc, gs in zip(grads(lambda a, b, x0: linear_recurrence(a, b, x0, chunk_size=T)), ref):
            assert _max_rel(gc, gs) < 1e-10


def test_gradient_with_underflowing_products_float32():
    """float32, Δλ = −60 at consecutive steps: chunk products underflow; gradients stay finite and agree."""
    g = _gen(29)
    H, L, N = 2, 64, 3
    a = torch.full((1, H, L, N), float(np.exp(-60.0)))
    a[..., 1::4, :] = 0.9
    b = torch.randn(1, H, L, N, generator=g)

    def grad_a(fn):
        leaf = a.clone().requires_grad_()
        fn(leaf, b).sum().backward()
        return leaf.grad

    ref = grad_a(linear_recurrence_seq)
    got = grad_a(lambda a, b: linear_recurrence(a, b, chunk_size=4))
    assert torch.isfinite(got).all()
    assert (got - ref).abs().max() <= 1e-5 * ref.abs().max()


# ---------------------------------------------------------------------------------------------
# ssm_scan
# ---------------------------------------------------------------------------------------------


def _ssm_inputs(complex_: bool, seed: int, batch=2, H=3, L=23, N=4):
    g = _gen(seed)
    u = torch.randn(batch, H, L, dtype=torch.float64, generator=g)
    dA = _decay(batch, H, L, N, complex_, g)
    dB = _randn((batch, H, L, N), complex_, g)
    C = _randn((batch, H, L, N), complex_, g)
    D = torch.randn(H, dtype=torch.float64, generator=g)
    x0 = _randn((batch, H, N), complex_, g)
    return u, dA, dB, C, D, x0


@pytest.mark.parametrize("method", ["chunked", "sequential"])
@pytest.mark.parametrize(
    "complex_,conj_pairs", [(False, False), (True, False), (True, True)], ids=["real", "complex", "conj_pairs"]
)
def test_ssm_scan_matches_numpy_loop(method, complex_, conj_pairs):
    u, dA, dB, C, D, x0 = _ssm_inputs(complex_, 31)
    for C_ in (C, C[0, :, :1, :]):  # time-varying C (..., H, L, N) and time-invariant C (H, 1, N)
        y, x_last = ssm_scan(u, dA, dB, C_, D, x0, method=method, chunk_size=4, conj_pairs=conj_pairs)
        y_ref, x_ref = numpy_ssm(*(t.numpy() for t in (u, dA, dB, C_, D, x0)), conj_pairs)
        assert not y.is_complex() and y.shape == u.shape
        assert x_last.shape == x0.shape
        assert _max_rel(y, torch.from_numpy(y_ref)) < 1e-12
        assert _max_rel(x_last, torch.from_numpy(x_ref)) < 1e-12
    # no D, no x0
    y, _ = ssm_scan(u, dA, dB, C, method=method, chunk_size=4, conj_pairs=conj_pairs)
    y_ref, _ = numpy_ssm(*(t.numpy() for t in (u, dA, dB, C)), 0.0, np.zeros(x0.shape), conj_pairs)
    assert _max_rel(y, torch.from_numpy(y_ref)) < 1e-12


@pytest.mark.parametrize("method", ["chunked", "sequential"])
def test_conj_pairs_equals_full_system(method):
    u, dA, dB, C, D, x0 = _ssm_inputs(True, 37)
    y_half, x_half = ssm_scan(u, dA, dB, C, D, x0, method=method, conj_pairs=True)
    full = [torch.cat([t, t.conj()], dim=-1) for t in (dA, dB, C, x0)]
    y_full, x_full = ssm_scan(u, *full[:3], D, full[3], method=method, conj_pairs=False)
    assert _max_rel(y_half, y_full) < 1e-12
    assert _max_rel(x_half, x_full[..., :4]) < 1e-12


@pytest.mark.parametrize("method", ["chunked", "sequential"])
def test_streaming_split(method):
    u, dA, dB, C, D, x0 = _ssm_inputs(True, 41, L=101)
    y, x_last = ssm_scan(u, dA, dB, C, D, x0, method=method, chunk_size=4, conj_pairs=True)
    k = 38
    opts = dict(method=method, chunk_size=4, conj_pairs=True)
    y1, x1 = ssm_scan(u[..., :k], dA[..., :k, :], dB[..., :k, :], C[..., :k, :], D, x0, **opts)
    y2, x2 = ssm_scan(u[..., k:], dA[..., k:, :], dB[..., k:, :], C[..., k:, :], D, x1, **opts)
    assert _max_rel(torch.cat([y1, y2], dim=-1), y) < 1e-12
    assert _max_rel(x2, x_last) < 1e-12


@pytest.mark.parametrize("method", ["chunked", "sequential"])
def test_first_order_hold_input_term_matches_numpy_loop_and_streams(method):
    """With dB_prev: x_k = Ā_k x_{k−1} + B̄_k u_k + B̄⁰_k u_{k−1}, u_{−1} = u_0 (or u_before); a
    stream split in two with u_before = the last input of the first part equals one call."""
    u, dA, dB, C, D, x0 = _ssm_inputs(True, 59, L=41)
    dB0 = _randn(dB.shape, True, _gen(60))
    y, x_last = ssm_scan(u, dA, dB, C, D, x0, method=method, chunk_size=4, conj_pairs=True, dB_prev=dB0)
    n = [t.numpy() for t in (u, dA, dB, C, D, x0, dB0)]
    x, ys = n[5], []
    for k in range(u.shape[-1]):
        prev = n[0][..., max(k - 1, 0)]
        x = n[1][..., k, :] * x + n[2][..., k, :] * n[0][..., k, None] + n[6][..., k, :] * prev[..., None]
        ys.append(2 * np.real(np.sum(n[3][..., k, :] * x, axis=-1)) + n[4] * n[0][..., k])
    assert _max_rel(y, torch.from_numpy(np.stack(ys, axis=-1))) < 1e-12
    assert _max_rel(x_last, torch.from_numpy(x)) < 1e-12
    k, opts = 17, dict(method=method, chunk_size=4, conj_pairs=True)
    y1, x1 = ssm_scan(u[..., :k], dA[..., :k, :], dB[..., :k, :], C[..., :k, :], D, x0, dB_prev=dB0[..., :k, :], **opts)
    y2, x2 = ssm_scan(
        u[..., k:], dA[..., k:, :], dB[..., k:, :], C[..., k:, :], D, x1, dB_prev=dB0[..., k:, :], u_before=u[..., k - 1], **opts
    )
    assert _max_rel(torch.cat([y1, y2], dim=-1), y) < 1e-12 and _max_rel(x2, x_last) < 1e-12
    with pytest.raises(ValueError, match="u_before is read only with dB_prev"):
        ssm_scan(u, dA, dB, C, u_before=u[..., 0])
    with pytest.raises(ValueError, match=re.escape("dB_prev (2, 3, 40, 4)")):
        ssm_scan(u, dA, dB, C, dB_prev=dB0[..., 1:, :])
    bad = dB0.clone()
    bad[0, 0, 3, 1] = float("nan")
    with pytest.raises(ValueError, match="dB_prev contains NaN"):
        ssm_scan(u, dA, dB, C, dB_prev=bad)


def test_ssm_scan_methods_agree_float32():
    u, dA, dB, C, D, x0 = _ssm_inputs(True, 43, batch=2, H=4, L=4096, N=8)
    y_ref, x_ref = ssm_scan(u, dA, dB, C, D, x0, method="sequential", conj_pairs=True)
    lo = [t.to(torch.complex64) if t.is_complex() else t.float() for t in (u, dA, dB, C, D, x0)]
    y, x_last = ssm_scan(*lo, conj_pairs=True)
    assert y.dtype == torch.float32 and x_last.dtype == torch.complex64
    assert (y.double() - y_ref).abs().max() / y_ref.abs().max() < 1e-4


# ---------------------------------------------------------------------------------------------
# Validation and purity
# ---------------------------------------------------------------------------------------------


def test_errors_linear_recurrence():
    a = torch.rand(2, 3, 5, 4)
    b = torch.randn(2, 3, 6, 4)
    for fn in (linear_recurrence, linear_recurrence_seq):
        with pytest.raises(ValueError, match=re.escape("a (2, 3, 5, 4), b (2, 3, 6, 4)")):
            fn(a, b)
        with pytest.raises(ValueError, match="time axis .* is empty"):
            fn(torch.rand(3, 0, 4), torch.rand(3, 0, 4))
        bad = torch.randn(2, 3, 5, 4)
        bad[0, 1, 2, 3] = float("nan")
        with pytest.raises(ValueError, match="b contains NaN"):
            fn(a, bad)
        with pytest.raises(ValueError, match="a contains inf"):
            fn(a.clone().fill_(float("inf")), bad.nan_to_num())
        with pytest.raises(ValueError, match=re.escape("x0[..., None, :] (1, 5)")):
            fn(a, a, torch.zeros(5))
        with pytest.raises(ValueError, match="floating point or complex"):
            fn(torch.ones(3, 4, dtype=torch.int64), torch.ones(3, 4))
    for T in (1, 0, -3):
        with pytest.raises(ValueError, match="chunk_size must be >= 2"):
            linear_recurrence(a, a, chunk_size=T)
    with pytest.raises(ValueError, match="chunk_size must be an int"):
        linear_recurrence(a, a, chunk_size=2.5)


def test_errors_ssm_scan():
    u, dA, dB, C, D, x0 = _ssm_inputs(True, 47, L=9)
    with pytest.raises(ValueError, match=r"unknown method 'parallel'; valid choices are 'auto', 'chunked', 'sequential'"):
        ssm_scan(u, dA, dB, C, method="parallel")
    with pytest.raises(ValueError, match="chunk_size must be >= 2"):
        ssm_scan(u, dA, dB, C, chunk_size=1)
    with pytest.raises(ValueError, match=re.escape("u[..., None] (2, 3, 8, 1), dA (2, 3, 9, 4)")):
        ssm_scan(u[..., :8], dA, dB, C)
    with pytest.raises(ValueError, match=re.escape("C (2, 3, 9, 5)")):
        ssm_scan(u, dA, dB, torch.cat([C, C[..., :1]], dim=-1))
    with pytest.raises(ValueError, match="time axes disagree: u has L=1"):
        ssm_scan(u[..., :1], dA, dB, C)
    with pytest.raises(ValueError, match="empty time axis"):
        ssm_scan(u[..., :0], dA[..., :0, :], dB[..., :0, :], C[..., :0, :])
    with pytest.raises(ValueError, match=re.escape("D[..., None, None] (4, 1, 1)")):
        ssm_scan(u, dA, dB, C, torch.ones(4, dtype=torch.float64))
    with pytest.raises(ValueError, match=re.escape("x0[..., None, :] (2, 3, 1, 3)")):
        ssm_scan(u, dA, dB, C, D, x0[..., :3])
    bad = u.clone()
    bad[1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="u contains NaN"):
        ssm_scan(bad, dA, dB, C)
    with pytest.raises(ValueError, match="u must be real"):
        ssm_scan(u.to(torch.complex128), dA, dB, C)
    with pytest.raises(ValueError, match="conj_pairs=True needs a complex state"):
        ssm_scan(u, dA.real, dB.real, C.real, conj_pairs=True)


def test_inputs_not_modified():
    u, dA, dB, C, D, x0 = _ssm_inputs(True, 53, L=30)
    args = (u, dA, dB, C, D, x0)
    saved = [t.clone() for t in args]
    for method in ("chunked", "sequential"):
        ssm_scan(*args, method=method, chunk_size=4, conj_pairs=True)
    a, b = dA[:1], dB
    linear_recurrence(a, b, x0, chunk_size=4)  # L = 30: padded to 32
    linear_recurrence_seq(a, b, x0)
    for t, s in zip(args, saved):
        assert torch.equal(t, s)


def test_auto_method_picks_by_shape_and_agrees():
    """"auto" = sequential for short sequences and large CPU states, chunked otherwise; same result."""
    from ssmforecast.math.scan import AUTO_SEQUENTIAL_MIN_STATE, _auto_method

    cpu = torch.device("cpu")
    assert _auto_method(16, 20, 16, cpu) == "sequential"  # L ≤ 2T
    assert _auto_method(256, 4096, 16, cpu) == "chunked"
    assert _auto_method(AUTO_SEQUENTIAL_MIN_STATE, 4096, 16, cpu) == "sequential"
    assert _auto_method(AUTO_SEQUENTIAL_MIN_STATE, 4096, 16, torch.device("meta")) == "chunked"
    g = torch.Generator().manual_seed(0)
    for batch in (1, 64):  # state per step 1·4·16 = 64 (chunked) and 64·4·16 = 4096 (sequential)
        u = torch.randn(batch, 4, 300, generator=g, dtype=torch.float64)
        dA = torch.rand(1, 4, 300, 16, generator=g, dtype=torch.float64)
        dB = torch.randn(1, 4, 300, 16, generator=g, dtype=torch.float64)
        C = torch.randn(1, 4, 1, 16, generator=g, dtype=torch.float64)
        y_auto, x_auto = ssm_scan(u, dA, dB, C)
        y_seq, x_seq = ssm_scan(u, dA, dB, C, method="sequential")
        torch.testing.assert_close(y_auto, y_seq, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(x_auto, x_seq, rtol=1e-12, atol=1e-12)


def _selective_args(batch=2, H=3, L=40, N=4, seed=3, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(batch, H, L, generator=g, dtype=dtype)
    delta = torch.rand(batch, H, L, generator=g, dtype=dtype) + 0.05
    A = -torch.rand(H, N, generator=g, dtype=dtype) - 0.1
    B = torch.randn(batch, L, N, generator=g, dtype=dtype)
    C = torch.randn(batch, L, N, generator=g, dtype=dtype)
    D = torch.randn(H, generator=g, dtype=dtype)
    x0 = torch.randn(batch, H, N, generator=g, dtype=dtype)
    return u, delta, A, B, C, D, x0


def test_selective_scan_seq_equals_materialised_ssm_scan():
    """The reference loop forms Ā = exp(ΔA), B̄u = ΔuB step by step; ssm_scan gets them materialised."""
    from ssmforecast.math.scan import selective_scan_seq

    u, delta, A, B, C, D, x0 = _selective_args()
    y, x_last = selective_scan_seq(u, delta, A, B, C, D, x0)
    dA = torch.exp(delta[..., None] * A[:, None, :])  # (batch, H, L, N)
    dB = delta[..., None] * B[:, None]  # (batch, H, L, N)
    y_ref, x_ref = ssm_scan(u, dA, dB, C[:, None], D, x0, method="sequential")
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(x_last, x_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("inner", ["fused", "loop", "chunked", "associative"])
@pytest.mark.parametrize("block_size", [7, 40, None])
@pytest.mark.parametrize("with_optional", [True, False])
def test_selective_scan_values_and_gradients_equal_the_reference_loop(inner, block_size, with_optional):
    """Blocked forward and hand-written backward = autograd through the plain loop (float64)."""
    from ssmforecast.math.scan import selective_scan, selective_scan_seq

    if inner == "associative":  # a torch before associative_scan: the ValueError is tested below
        pytest.importorskip("torch._higher_order_ops.associative_scan", reason="this torch has no associative_scan")
    if inner == "fused":
        needs_fused()

    u, delta, A, B, C, D, x0 = _selective_args(L=41)
    if not with_optional:
        D = x0 = None
    args = [t if t is None else t.clone().requires_grad_() for t in (u, delta, A, B, C, D, x0)]
    ref_args = [t if t is None else t.detach().clone().requires_grad_() for t in args]
    y, x_last = selective_scan(*args, block_size=block_size, inner=inner)
    y_ref, x_ref = selective_scan_seq(*ref_args)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(x_last, x_ref, rtol=1e-12, atol=1e-12)
    g = torch.Generator().manual_seed(5)
    gy, gx = torch.randn(y.shape, generator=g, dtype=y.dtype), torch.randn(x_last.shape, generator=g, dtype=y.dtype)
    ((y * gy).sum() + (x_last * gx).sum()).backward()
    ((y_ref * gy).sum() + (x_ref * gx).sum()).backward()
    for name, t, r in zip(("u", "delta", "A", "B", "C", "D", "x0"), args, ref_args):
        if t is not None:
            torch.testing.assert_close(t.grad, r.grad, rtol=1e-10, atol=1e-10, msg=f"gradient of {name}")


@pytest.mark.parametrize(("numel", "expected"), [(2 * 3 * 4 * 6, 6), (1, 4)])
def test_selective_scan_default_cpu_block_holds_block_numel_values_and_at_least_min_block_steps(monkeypatch, numel, expected):
    """T = BLOCK_NUMEL // (batch·H·N) on the CPU, floored at MIN_BLOCK; several default blocks still
    give the reference loop's values and gradients."""
    import ssmforecast.math.scan as scan

    monkeypatch.setattr(scan, "BLOCK_NUMEL", numel)
    seen = []
    apply = scan._SelectiveScan.apply
    monkeypatch.setattr(scan._SelectiveScan, "apply", lambda *a: seen.append(a[-2]) or apply(*a))
    u, delta, A, B, C, D, x0 = _selective_args(batch=2, H=3, L=41, N=4)
    args = [t.clone().requires_grad_() for t in (u, delta, A, B, C, D, x0)]
    ref_args = [t.detach().clone().requires_grad_() for t in args]
    y, x_last = scan.selective_scan(*args, inner="loop")
    assert seen == [expected] and scan.MIN_BLOCK == 4
    y_ref, x_ref = scan.selective_scan_seq(*ref_args)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(x_last, x_ref, rtol=1e-12, atol=1e-12)
    (y.sum() + x_last.sum()).backward()
    (y_ref.sum() + x_ref.sum()).backward()
    for t, r in zip(args, ref_args):
        torch.testing.assert_close(t.grad, r.grad, rtol=1e-10, atol=1e-10)


def test_selective_scan_block_loop_runs_on_one_thread_and_restores_the_count(monkeypatch):
    """On the CPU the forward's and the backward's block loops see one intra-op thread; the
    caller's count is back afterwards."""
    import ssmforecast.math.scan as scan

    seen = []
    recur = scan._recur_
    monkeypatch.setattr(scan, "_recur_", lambda *a, **k: (seen.append(torch.get_num_threads()), recur(*a, **k))[1])
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        args = [t.clone().requires_grad_() for t in _selective_args(L=9)]
        y, _ = scan.selective_scan(*args, block_size=4, inner="loop")
        y.sum().backward()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    assert seen == [1] * 6  # three blocks, forward and backward's recomputation


def test_selective_scan_batch_parts():
    """On a CPU: threads, one per intra-op thread, at most one per series and one per
    PARALLEL_STEP_NUMEL values of a step; parts, at least one per thread and enough to keep a
    part's step within PART_STEP_NUMEL values (at most one per series); elsewhere one of each."""
    import ssmforecast.math.scan as scan

    threads = torch.get_num_threads()
    big, most = scan.PARALLEL_STEP_NUMEL, scan.PART_STEP_NUMEL
    cpu = torch.device("cpu")
    assert most >= 2 * big
    try:
        torch.set_num_threads(2)
        assert scan._batch_parts(5, 2 * big, cpu) == ([(0, 2), (2, 5)], 2)
        assert scan._batch_parts(1, 2 * big, cpu) == ([(0, 1)], 1)
        assert scan._batch_parts(5, 2 * big - 1, cpu) == ([(0, 5)], 1)
        assert scan._batch_parts(5, 2 * big, torch.device("cuda")) == ([(0, 5)], 1)
        assert scan._batch_parts(8, 4 * most, cpu) == ([(0, 2), (2, 4), (4, 6), (6, 8)], 2)  # in cache
        assert scan._batch_parts(3, 4 * most, cpu) == ([(0, 1), (1, 2), (2, 3)], 2)  # one series each at most
        torch.set_num_threads(3)
        assert scan._batch_parts(6, 3 * big, cpu) == ([(0, 2), (2, 4), (4, 6)], 3)
        torch.set_num_threads(1)
        assert scan._batch_parts(5, 2 * big, cpu) == ([(0, 5)], 1)
        assert scan._batch_parts(4, 2 * most, cpu) == ([(0, 2), (2, 4)], 1)  # parts in turn on one thread
    finally:
        torch.set_num_threads(threads)


def _recording_recur(monkeypatch, scan, seen, fail_in_pool=False):
    import threading

    recur = scan._recur_

    def recording(*args, **kwargs):
        name = threading.current_thread().name
        if fail_in_pool and name.startswith("ssmforecast-scan"):
            raise RuntimeError("failure in a pool thread")
        seen.append((name, torch.get_num_threads()))
        return recur(*args, **kwargs)

    monkeypatch.setattr(scan, "_recur_", recording)


def test_selective_scan_batch_split_over_threads_equals_the_reference_loop(monkeypatch):
    """With two intra-op threads a big scan runs its batch as two parts side by side, each on one
    thread: values and every gradient still equal autograd through the plain loop (float64), the
    same call gives the same bits twice, and the caller's thread count is back afterwards."""
    import ssmforecast.math.scan as scan

    monkeypatch.setattr(scan, "PARALLEL_STEP_NUMEL", 1)
    seen = []
    _recording_recur(monkeypatch, scan, seen)
    u, delta, A, B, C, D, x0 = _selective_args(batch=3, L=41)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        runs = []
        for _ in range(2):
            args = [t.clone().requires_grad_() for t in (u, delta, A, B, C, D, x0)]
            y, x_last = scan.selective_scan(*args, block_size=8, inner="loop")
            g = torch.Generator().manual_seed(5)
            gy, gx = torch.randn(y.shape, generator=g, dtype=y.dtype), torch.randn(x_last.shape, generator=g, dtype=y.dtype)
            ((y * gy).sum() + (x_last * gx).sum()).backward()
            assert torch.get_num_threads() == 2
            runs.append([y, x_last] + [t.grad for t in args])
    finally:
        torch.set_num_threads(threads)
    names = {name for name, _ in seen}
    assert len(names) == 2 and any(n.startswith("ssmforecast-scan") for n in names)  # the caller and a pool thread
    assert {count for _, count in seen} == {1} and len(seen) == 2 * 2 * 2 * 6  # 2 calls × 2 parts × (fwd, bwd) × 6 blocks
    ref_args = [t.clone().requires_grad_() for t in (u, delta, A, B, C, D, x0)]
    y_ref, x_ref = scan.selective_scan_seq(*ref_args)
    ((y_ref * gy).sum() + (x_ref * gx).sum()).backward()
    expected = [y_ref, x_ref] + [t.grad for t in ref_args]
    for name, got, again, ref in zip(("y", "x_last", "u", "delta", "A", "B", "C", "D", "x0"), runs[0], runs[1], expected):
        torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10, msg=f"{name} against the reference loop")
        assert torch.equal(got, again), f"{name} differs between two identical calls"


@pytest.mark.parametrize("threads", [1, 2])
def test_selective_scan_more_parts_than_threads_equal_the_reference_loop(monkeypatch, threads):
    """Parts of one series each (PART_STEP_NUMEL = 1), three of them on one or two threads: values
    and gradients equal the float64 loop, so the parts come back in order."""
    import ssmforecast.math.scan as scan

    monkeypatch.setattr(scan, "PARALLEL_STEP_NUMEL", 1)
    monkeypatch.setattr(scan, "PART_STEP_NUMEL", 1)
    u, delta, A, B, C, D, x0 = _selective_args(batch=3, L=23)
    args = [t.clone().requires_grad_() for t in (u, delta, A, B, C, D, x0)]
    ref_args = [t.clone().requires_grad_() for t in (u, delta, A, B, C, D, x0)]
    count = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        y, x_last = scan.selective_scan(*args, block_size=5, inner="loop")
        g = torch.Generator().manual_seed(7)
        gy, gx = torch.randn(y.shape, generator=g, dtype=y.dtype), torch.randn(x_last.shape, generator=g, dtype=y.dtype)
        ((y * gy).sum() + (x_last * gx).sum()).backward()
        assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(count)
    y_ref, x_ref = scan.selective_scan_seq(*ref_args)
    ((y_ref * gy).sum() + (x_ref * gx).sum()).backward()
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(x_last, x_ref, rtol=1e-12, atol=1e-12)
    for name, t, r in zip(("u", "delta", "A", "B", "C", "D", "x0"), args, ref_args):
        torch.testing.assert_close(t.grad, r.grad, rtol=1e-10, atol=1e-10, msg=f"gradient of {name}")


def test_selective_scan_failure_in_a_pool_thread_reaches_the_caller(monkeypatch):
    import ssmforecast.math.scan as scan

    monkeypatch.setattr(scan, "PARALLEL_STEP_NUMEL", 1)
    _recording_recur(monkeypatch, scan, [], fail_in_pool=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(RuntimeError, match="failure in a pool thread"):
            scan.selective_scan(*_selective_args(batch=2, L=9), inner="loop")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


def _split_scan_in_child(queue, inner):
    import ssmforecast.math.scan as scan

    scan.PARALLEL_STEP_NUMEL = scan.FUSED_PARALLEL_NUMEL = 1
    torch.set_num_threads(2)
    y, _ = scan.selective_scan(*_selective_args(batch=2, L=9), inner=inner)
    queue.put(y.sum().item())


@pytest.mark.skipif("fork" not in __import__("multiprocessing").get_all_start_methods(), reason="no fork on this platform")
@pytest.mark.parametrize("inner", ["loop", "fused"])
def test_selective_scan_split_runs_in_a_forked_child(monkeypatch, inner):
    """A child forked after the parent used the scan's thread pool (a joblib or multiprocessing
    worker) gets a pool of its own instead of waiting forever on its parent's threads."""
    import multiprocessing

    import ssmforecast.math.scan as scan

    if inner == "fused":
        needs_fused()
    monkeypatch.setattr(scan, "PARALLEL_STEP_NUMEL", 1)
    monkeypatch.setattr(scan, "FUSED_PARALLEL_NUMEL", 1)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        y, _ = scan.selective_scan(*_selective_args(batch=2, L=9), inner=inner)  # the parent's pool exists now
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        child = context.Process(target=_split_scan_in_child, args=(queue, inner))
        child.start()
        child.join(timeout=60)
        alive = child.is_alive()
        if alive:
            child.kill()
        assert not alive, "the scan in the forked child hung"
        assert queue.get(timeout=5) == pytest.approx(y.sum().item(), rel=1e-12)
    finally:
        torch.set_num_threads(threads)


def test_selective_scan_gradcheck_and_only_y_used():
    from ssmforecast.math.scan import selective_scan

    u, delta, A, B, C, D, x0 = _selective_args(batch=1, H=2, L=9, N=3)
    args = tuple(t.clone().requires_grad_() for t in (u, delta, A, B, C, D, x0))
    assert torch.autograd.gradcheck(lambda *a: selective_scan(*a, block_size=4)[0], args)
    assert torch.autograd.gradcheck(lambda *a: selective_scan(*a, block_size=4)[1], args)


@pytest.mark.parametrize("inner", ["fused", "loop"])
def test_selective_scan_float32_long_sequence_matches_float64(inner):
    """float32 over 3,000 steps and several blocks stays within float32 rounding of float64 (the
    fused scan's own exp included)."""
    from ssmforecast.math.scan import selective_scan

    if inner == "fused":
        needs_fused()
    args64 = _selective_args(batch=2, H=4, L=3000, N=8, seed=11)
    y64, _ = selective_scan(*args64, block_size=256, inner="loop")
    y32, _ = selective_scan(*(t.float() for t in args64), block_size=256, inner=inner)
    assert (y32.double() - y64).abs().max() / y64.abs().max() < 1e-5


def test_selective_scan_errors():
    from ssmforecast.math.scan import selective_scan

    u, delta, A, B, C, D, x0 = _selective_args()
    with pytest.raises(ValueError, match=r"A must have shape \(H, N\)"):
        selective_scan(u, delta, A[:2], B, C)
    with pytest.raises(ValueError, match=r"B must have shape \(batch, L, N\)"):
        selective_scan(u, delta, A, B[:, :3], C)
    with pytest.raises(ValueError, match=r"x0 must have shape"):
        selective_scan(u, delta, A, B, C, D, x0[:1])
    with pytest.raises(ValueError, match="block_size must be an int >= 1"):
        selective_scan(u, delta, A, B, C, block_size=0)
    with pytest.raises(ValueError, match="unknown inner 'fast'"):
        selective_scan(u, delta, A, B, C, inner="fast")
    with pytest.raises(ValueError, match="delta contains NaN"):
        selective_scan(u, delta.clone().fill_(float("nan")), A, B, C)


@pytest.mark.slow
def test_selective_scan_associative_inner_compiled_matches_the_loop():
    """The opt-in associative inner scan under torch.compile (what CUDA runs; compiled here on the
    CPU with inductor, about half a minute): same values and gradients as the loop (float32)."""
    from ssmforecast.math import scan
    from ssmforecast.math.scan import selective_scan

    u, delta, A, B, C, D, x0 = (t if t is None else t.float() for t in _selective_args(L=41))
    from torch._higher_order_ops.associative_scan import associative_scan

    compiled = torch.compile(lambda a, b: associative_scan(scan._compose, (a, b), 0, combine_mode="generic"), dynamic=False)
    eager = scan._associative_prefixes
    args = [t.clone().requires_grad_() for t in (u, delta, A, B, C, D, x0)]
    ref_args = [t.detach().clone().requires_grad_() for t in args]
    try:
        scan._associative_prefixes = lambda a, b: compiled(a.contiguous(), b.contiguous())
        y, x_last = selective_scan(*args, block_size=20, inner="associative")
        (y.sum() + x_last.sum()).backward()
    finally:
        scan._associative_prefixes = eager
    y_ref, x_ref = selective_scan(*ref_args, block_size=20, inner="loop")
    (y_ref.sum() + x_ref.sum()).backward()
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-5)
    for t, r in zip(args, ref_args):
        torch.testing.assert_close(t.grad, r.grad, rtol=1e-4, atol=1e-4)


def test_selective_scan_associative_inner_needs_torchs_associative_scan(monkeypatch):
    """Where torch has no associative_scan the flag says so (the loop and chunked modes remain)."""
    import sys

    from ssmforecast.math import scan
    from ssmforecast.math.scan import selective_scan

    u, delta, A, B, C, D, x0 = _selective_args(L=9)
    monkeypatch.setitem(sys.modules, "torch._higher_order_ops.associative_scan", None)  # import fails
    scan._has_associative_scan.cache_clear()
    scan._compiled_scan_works.cache_clear()
    try:
        assert scan._auto_inner(torch.device("cuda"), torch.float32) == "chunked"  # "auto" on CUDA falls back
        with pytest.raises(ValueError, match="inner='associative' needs torch's associative_scan"):
            selective_scan(u, delta, A, B, C, D, x0, inner="associative")
    finally:
        scan._has_associative_scan.cache_clear()
        scan._compiled_scan_works.cache_clear()
    y, _ = selective_scan(u, delta, A, B, C, D, x0, inner="chunked")
    assert y.shape == u.shape


def test_selective_scan_auto_inner_by_device():
    """The fused scan on the CPU where it builds (float32 / float64), else the loop; the associative
    scan on CUDA where torch has it, else chunked."""
    from ssmforecast.math import _fused, scan

    has = scan._has_associative_scan()
    fused = "fused" if _fused.library() is not None else "loop"
    assert scan._auto_inner(torch.device("cpu"), torch.float32) == fused
    assert scan._auto_inner(torch.device("cpu"), torch.float64) == fused
    assert scan._auto_inner(torch.device("cpu"), torch.bfloat16) == "loop"
    if not torch.cuda.is_available():
        scan._compiled_scan_works.cache_clear()
        with pytest.warns(RuntimeWarning, match="chunked scan instead"):
            assert scan._auto_inner(torch.device("cuda"), torch.float32) == "chunked"  # the probe cannot run: chunked
        scan._compiled_scan_works.cache_clear()
    else:
        assert scan._auto_inner(torch.device("cuda"), torch.float32) == ("associative" if has else "chunked")
    assert scan._auto_inner(torch.device("mps"), torch.float32) == "chunked"


def test_selective_scan_auto_falls_back_to_chunked_when_compiling_fails(monkeypatch):
    """Where torch.compile cannot build the scan (no Triton, no C compiler), "auto" on CUDA warns
    and keeps the chunked scan instead of failing the caller's training."""
    from ssmforecast.math import scan

    def broken():
        def fail(a, b):
            raise RuntimeError("no C compiler")

        return fail

    monkeypatch.setattr(scan, "_compiled_pointwise_scan", broken)
    monkeypatch.setattr(scan, "_has_associative_scan", lambda: True)
    scan._compiled_scan_works.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="chunked scan instead"):
            assert scan._auto_inner(torch.device("cuda"), torch.float32) == "chunked"
    finally:
        scan._compiled_scan_works.cache_clear()


# ---------------------------------------------------------------------------------------------
# The fused CPU scan (inner="fused", _fused_scan.cpp)
# ---------------------------------------------------------------------------------------------


def test_fused_scan_exp_is_within_float32_rounding_of_float64():
    """One step from x0 = 1 with u = 0 leaves x_L = exp(Δ A): the C++ scan's own float32 exp stays
    within 3e-7 (2.5 ulp) of float64's over [−87, 88]; below −87.3 it gives at most 2^−126 · e^½
    (≈ 2e-38) in place of a subnormal or 0."""
    needs_fused()
    from ssmforecast.math.scan import selective_scan

    def one_step(a: torch.Tensor) -> torch.Tensor:
        N = a.numel()
        ones, zeros = torch.ones(1, 1, 1), torch.zeros(1, 1, N)
        _, x = selective_scan(0 * ones, ones, a[None], zeros, zeros, None, torch.ones(1, 1, N), inner="fused")
        return x[0, 0]

    a = torch.linspace(-87.0, 88.0, 200_001, dtype=torch.float64).float()
    ref = torch.exp(a.double())
    assert ((one_step(a).double() - ref) / ref).abs().max() < 3e-7
    tiny = one_step(torch.tensor([-87.5, -100.0, -1e4]))
    assert (tiny >= 0).all() and (tiny < 2e-38).all()


def test_fused_scan_parts():
    """One part per thread: as many as torch's intra-op threads, the series and
    FUSED_PARALLEL_NUMEL values per call allow."""
    from ssmforecast.math import scan

    big = scan.FUSED_PARALLEL_NUMEL
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert scan._fused_parts(5, 2 * big) == ([(0, 2), (2, 5)], 2)
        assert scan._fused_parts(1, 2 * big) == ([(0, 1)], 1)
        assert scan._fused_parts(5, 2 * big - 1) == ([(0, 5)], 1)
        torch.set_num_threads(3)
        assert scan._fused_parts(7, 100 * big) == ([(0, 2), (2, 4), (4, 7)], 3)
        torch.set_num_threads(1)
        assert scan._fused_parts(5, 100 * big) == ([(0, 5)], 1)
    finally:
        torch.set_num_threads(threads)


def test_fused_scan_split_over_threads_gives_the_same_bits_as_one_thread(monkeypatch):
    """Two intra-op threads: the batch runs as two C++ calls side by side (one on a pool thread);
    each series is computed alone and ∂A summed over the batch afterwards, so one and two threads
    give the same bits, and both equal autograd through the float64 loop."""
    import threading

    from ssmforecast.math import _fused, scan

    needs_fused()
    monkeypatch.setattr(scan, "FUSED_PARALLEL_NUMEL", 1)
    seen = []
    for kind in ("forward", "backward"):
        original = getattr(_fused, kind)

        def recording(*a, original=original, kind=kind):
            seen.append((kind, threading.current_thread().name, a[0].shape[0]))
            return original(*a)

        monkeypatch.setattr(_fused, kind, recording)
    u, delta, A, B, C, D, x0 = _selective_args(batch=3, L=41)
    g = torch.Generator().manual_seed(5)
    gy, gx = torch.randn(u.shape, generator=g, dtype=u.dtype), torch.randn(x0.shape, generator=g, dtype=u.dtype)
    count, runs = torch.get_num_threads(), {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            seen.clear()
            args = [t.clone().requires_grad_() for t in (u, delta, A, B, C, D, x0)]
            y, x_last = scan.selective_scan(*args, block_size=8, inner="fused")
            ((y * gy).sum() + (x_last * gx).sum()).backward()
            assert torch.get_num_threads() == threads
            runs[threads] = [y, x_last] + [t.grad for t in args]
            parts = sorted(size for _, _, size in seen)
            assert parts == ([3, 3] if threads == 1 else [1, 1, 2, 2])  # forward and backward, per part
            assert any(name.startswith("ssmforecast-scan") for _, name, _ in seen) == (threads == 2)
    finally:
        torch.set_num_threads(count)
    ref_args = [t.clone().requires_grad_() for t in (u, delta, A, B, C, D, x0)]
    y_ref, x_ref = scan.selective_scan_seq(*ref_args)
    ((y_ref * gy).sum() + (x_ref * gx).sum()).backward()
    expected = [y_ref, x_ref] + [t.grad for t in ref_args]
    for name, one, two, ref in zip(("y", "x_last", "u", "delta", "A", "B", "C", "D", "x0"), runs[1], runs[2], expected):
        assert torch.equal(one, two), f"{name}: one and two threads differ"
        torch.testing.assert_close(one, ref, rtol=1e-10, atol=1e-10, msg=f"{name} against the reference loop")


def test_fused_scan_reads_non_contiguous_inputs_and_leaves_them_unchanged():
    """Transposed views (what a (batch, L, H) caller passes: the C++ loops read and write through
    the strides, no copies) give the reference values and gradients, also for an expanded incoming
    gradient; the caller's tensors are not modified."""
    from ssmforecast.math.scan import selective_scan, selective_scan_seq

    needs_fused()
    u, delta, A, B, C, D, x0 = _selective_args(batch=2, H=5, L=30, N=4)
    views = [u.transpose(1, 2).contiguous().transpose(1, 2), delta.transpose(1, 2).contiguous().transpose(1, 2),
             A.t().contiguous().t(), B, C, D, x0.transpose(1, 2).contiguous().transpose(1, 2)]
    assert not views[0].is_contiguous() and not views[2].is_contiguous()
    before = [t.clone() for t in views]
    args = [t.requires_grad_() for t in views]
    ref_args = [t.detach().clone().requires_grad_() for t in views]
    y, x_last = selective_scan(*args, block_size=7, inner="fused")
    y_ref, x_ref = selective_scan_seq(*ref_args)
    (y.square().sum() + x_last.sum()).backward()
    (y_ref.square().sum() + x_ref.sum()).backward()
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    for t, r, b in zip(args, ref_args, before):
        torch.testing.assert_close(t.grad, r.grad, rtol=1e-10, atol=1e-10)
        assert torch.equal(t.detach(), b)
    # y.sum(): the incoming gradient is an expanded tensor (all strides 0)
    grads = torch.autograd.grad(selective_scan(*args, block_size=7, inner="fused")[0].sum(), args)
    ref_grads = torch.autograd.grad(selective_scan_seq(*ref_args)[0].sum(), ref_args)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-10)


def test_fused_scan_errors_and_fallbacks(monkeypatch):
    """inner="fused" asked for where it cannot run says why; "auto" then runs the block loop, also
    when switched off by SSMFORECAST_FUSED_SCAN=0."""
    from ssmforecast.math import _fused, scan
    from ssmforecast.math.scan import selective_scan

    u, delta, A, B, C, D, x0 = _selective_args(L=9)
    cpu = torch.device("cpu")
    with pytest.raises(ValueError, match="float32 and float64 only, got torch.bfloat16"):
        selective_scan(*(t.to(torch.bfloat16) for t in (u, delta, A, B, C)), inner="fused")
    with pytest.raises(ValueError, match="CPU only"):
        scan._check_fused(torch.device("cuda"), torch.float32)
    monkeypatch.setenv(_fused.ENV_SWITCH, "0")
    assert scan._auto_inner(cpu, torch.float32) == "loop"
    monkeypatch.delenv(_fused.ENV_SWITCH)
    monkeypatch.setattr(_fused, "library", lambda: None)
    assert scan._auto_inner(cpu, torch.float32) == "loop"
    with pytest.raises(ValueError, match="could not be built"):
        selective_scan(u, delta, A, B, C, D, x0, inner="fused")
    y, x_last = selective_scan(u, delta, A, B, C, D, x0)  # "auto": the loop
    y_ref, _ = scan.selective_scan_seq(u, delta, A, B, C, D, x0)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)


def test_fused_scan_build_failure_warns_once(monkeypatch):
    """No compiler (or no ninja): one RuntimeWarning, then None without another warning."""
    import warnings

    import torch.utils.cpp_extension as extension

    from ssmforecast.math import _fused

    def fail(**kwargs):
        raise RuntimeError("Ninja is required to load C++ extensions")

    monkeypatch.setattr(extension, "load", fail)
    _fused.library.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="could not be built .*Ninja is required.*block loop instead"):
            assert _fused.library() is None
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert _fused.library() is None
    finally:
        _fused.library.cache_clear()


def test_fused_build_folder_follows_source_flags_and_cpu(monkeypatch):
    """Each version of the C++ source, flag set and CPU builds into its own folder (a process never
    loads a library built from another version's source or for another CPU); the name is stable."""
    from ssmforecast.math import _fused

    name = _fused._build_name()
    assert name == _fused._build_name() and name.startswith("ssmforecast_fused_scan_")
    monkeypatch.setattr(_fused, "_cpu_flags", lambda: "flags : sse2")
    other_cpu = _fused._build_name()
    monkeypatch.setattr(_fused, "FLAGS", _fused.FLAGS + ("-O2",))
    other_flags = _fused._build_name()
    assert len({name, other_cpu, other_flags}) == 3


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    batch=st.integers(1, 3), H=st.integers(1, 4), L=st.integers(1, 70), N=st.integers(1, 19),
    block=st.integers(1, 80), with_optional=st.booleans(),
)  # fmt: skip
def test_fused_scan_fuzz_equals_the_reference_loop(batch, H, L, N, block, with_optional):
    """Any shape (N not a multiple of the vector width, one step, a block longer than L or of one
    step): the fused scan's values and gradients equal autograd through the float64 loop."""
    from ssmforecast.math.scan import selective_scan, selective_scan_seq

    needs_fused()
    u, delta, A, B, C, D, x0 = _selective_args(batch=batch, H=H, L=L, N=N, seed=batch * 1000 + L)
    if not with_optional:
        D = x0 = None
    args = [t if t is None else t.clone().requires_grad_() for t in (u, delta, A, B, C, D, x0)]
    ref_args = [t if t is None else t.detach().clone().requires_grad_() for t in args]
    y, x_last = selective_scan(*args, block_size=block, inner="fused")
    y_ref, x_ref = selective_scan_seq(*ref_args)
    torch.testing.assert_close(y, y_ref, rtol=1e-11, atol=1e-11)
    torch.testing.assert_close(x_last, x_ref, rtol=1e-11, atol=1e-11)
    (y.sin().sum() + x_last.square().sum()).backward()
    (y_ref.sin().sum() + x_ref.square().sum()).backward()
    for t, r in zip(args, ref_args):
        if t is not None:
            torch.testing.assert_close(t.grad, r.grad, rtol=1e-9, atol=1e-9)
