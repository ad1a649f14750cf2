"""S4D's scan with a step per sample (ssmforecast.math.scan.diagonal_scan): the fused C++ loop and the
reference path against a numpy complex128 loop, autograd's numerical gradients and each other."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import needs_fused

from ssmforecast.math import _fused, scan
from ssmforecast.math.discretize import METHODS
from ssmforecast.math.scan import DIAGONAL_METHODS, diagonal_scan

NAMES = ("u", "delta", "Lambda", "B", "C", "D", "x0")


def _args(batch=2, H=3, L=40, n=4, seed=3, dtype=torch.float64, im_scale=5.0):
    """Random inputs: Δ_k spread over two decades (irregular samples), Re Λ < 0, oscillating modes."""
    g = torch.Generator().manual_seed(seed)
    cplx = torch.complex128 if dtype == torch.float64 else torch.complex64
    u = torch.randn(batch, H, L, generator=g, dtype=dtype)
    delta = torch.exp(torch.empty(batch, H, L, dtype=dtype).uniform_(-4.0, 0.5, generator=g))
    Lambda = torch.complex(-torch.rand(H, n, generator=g, dtype=dtype) - 0.05, im_scale * torch.randn(H, n, generator=g, dtype=dtype))
    B = torch.randn(H, n, generator=g, dtype=cplx)
    C = torch.randn(H, n, generator=g, dtype=cplx)
    D = torch.randn(H, generator=g, dtype=dtype)
    x0 = torch.randn(batch, H, n, generator=g, dtype=cplx)
    return [u, delta, Lambda, B, C, D, x0]


def _phi12(z):
    """φ₁(z) = (e^z − 1)/z and φ₂(z) = (e^z − 1 − z)/z² in complex128: the closed forms where |z| ≥ ½,
    else the Taylor series Σ z^j/(j+1)! and Σ z^j/(j+2)! to j = 24 (exact at and near z = 0)."""
    small = np.abs(z) < 0.5
    safe = np.where(small, 1.0, z)
    s1, s2 = np.zeros_like(z), np.zeros_like(z)
    for j in range(24, -1, -1):  # Horner
        s1, s2 = s1 * z + 1 / math.factorial(j + 1), s2 * z + 1 / math.factorial(j + 2)
    closed1, closed2 = (np.exp(safe) - 1) / safe, (np.exp(safe) - 1 - safe) / safe**2
    return np.where(small, s1, closed1), np.where(small, s2, closed2)


def _numpy_loop(u, delta, Lambda, B, C, D, x0, method, u_before=None):
    """x_k = Ā_k x_{k−1} + B̄_k u_k, y_k = 2 Re Σ C x_k + D u_k in complex128, Ā_k, B̄_k from the
    closed forms (ZOH: e^{ΔΛ}, Δ φ₁(ΔΛ) B; GBT(α): (1 + (1−α)ΔΛ)/(1 − αΔΛ), ΔB/(1 − αΔΛ)); the
    first-order hold adds B̄⁰ u_{k−1} with B̄¹ = Δ φ₂ B, B̄⁰ = Δ (φ₁ − φ₂) B, φ₁ = (e^z − 1)/z,
    φ₂ = (e^z − 1 − z)/z² (both by :func:`_phi12`, so Λ = 0 and tiny Λ are exact), u_{−1} = u_before or u_0."""
    u, delta = u.numpy(), delta.numpy()
    lam, b, c = (t.numpy().astype(np.complex128) for t in (Lambda, B, C))
    x = np.zeros(lam.shape, np.complex128)[None].repeat(u.shape[0], 0) if x0 is None else x0.numpy().astype(np.complex128)
    y = np.empty(u.shape)
    u_prev = u[..., 0] if u_before is None else u_before.numpy()
    for k in range(u.shape[-1]):
        d = delta[..., k, None]
        z = d * lam  # (batch, H, n)
        phi1, phi2 = _phi12(z)
        if method == "foh":
            x = np.exp(z) * x + d * (phi1 - phi2) * b * u_prev[..., None] + d * phi2 * b * u[..., k, None]
        else:
            alpha = METHODS[method]
            if alpha is None:
                dA, dB = np.exp(z), d * phi1 * b
            else:
                dA, dB = (1 + (1 - alpha) * z) / (1 - alpha * z), d * b / (1 - alpha * z)
            x = dA * x + dB * u[..., k, None]
        y[..., k] = 2 * (c * x).sum(-1).real + (0 if D is None else D.numpy() * u[..., k])
        u_prev = u[..., k]
    return y, x


@pytest.mark.parametrize("inner", ["fused", "reference"])
@pytest.mark.parametrize("method", DIAGONAL_METHODS)
def test_values_equal_the_numpy_loop(inner, method):
    if inner == "fused":
        needs_fused()
    args = _args(L=50)
    u_before = torch.randn(2, 3, dtype=torch.float64) if method == "foh" else None
    y, x_last = diagonal_scan(*args, method=method, u_before=u_before, inner=inner, block_size=None if inner == "reference" else 7)
    y_np, x_np = _numpy_loop(*args, method, u_before)
    np.testing.assert_allclose(y.numpy(), y_np, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(x_last.numpy(), x_np, rtol=1e-11, atol=1e-11)
    assert x_last.dtype == torch.complex128 and y.dtype == torch.float64


@pytest.mark.parametrize("with_optional", [True, False])
@pytest.mark.parametrize("block_size", [1, 7, None])
@pytest.mark.parametrize("method", DIAGONAL_METHODS)
def test_fused_gradients_equal_autograd_through_the_reference(method, block_size, with_optional):
    """All gradients of the hand-written adjoint (float64) against autograd through discretize_diag
    (foh_diag) + ssm_scan, for a loss reading y and x_L (an incoming ∂x_L); under the first-order
    hold with and without u_before (its gradient, or the u_{−1} = u_0 term in ∂u_0)."""
    needs_fused()
    args = _args(L=45)
    if method == "foh":
        args.append(torch.randn(2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4)))
    if not with_optional:
        args[5:] = [None] * len(args[5:])
    g = torch.Generator().manual_seed(9)
    gy = torch.randn(args[0].shape, generator=g, dtype=torch.float64)
    gx = torch.randn(args[2].shape, generator=g, dtype=torch.complex128)
    grads = {}
    for inner in ("fused", "reference"):
        leaves = [None if t is None else t.clone().requires_grad_() for t in args]
        y, x_last = diagonal_scan(*leaves[:7], u_before=None if len(leaves) < 8 else leaves[7], method=method, inner=inner, block_size=block_size if inner == "fused" else None)
        ((y * gy).sum() + (x_last * gx.conj()).real.sum()).backward()
        grads[inner] = [y.detach(), x_last.detach()] + [None if t is None else t.grad for t in leaves]
    for name, a, b in zip(("y", "x_last") + NAMES + ("u_before",), grads["fused"], grads["reference"]):
        if b is None:
            assert a is None, name
            continue
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10, msg=name)


@pytest.mark.parametrize("method", ["zoh", "bilinear", "foh"])
def test_fused_gradcheck(method):
    """The adjoint against finite differences (torch.autograd.gradcheck, complex inputs by their
    real and imaginary parts), independent of the reference path."""
    needs_fused()
    args = [t.requires_grad_() for t in _args(batch=2, H=2, L=11, n=3)]
    fn = lambda *a: diagonal_scan(*a, method=method, inner="fused", block_size=4)  # noqa: E731
    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_fused_float32_exp_expm1_sin_cos_are_within_rounding_of_float64():
    """One step with Δ = 1 reads the C++ float32 functions directly: from x0 = 1, u = 0, x_L = Ā =
    e^Λ (exp, sin and cos); from x0 = 0, u = 1, B = 1, x_L = B̄ = (e^Λ − 1)/Λ (expm1 and cos − 1:
    relative precision also for |Λ| ≪ 1). Re Λ ∈ [−87, 0], Im Λ up to ±10⁴: within 4e-7 (torch's
    own float32 complex exp: 1.4e-7 here)."""
    needs_fused()
    g = torch.Generator().manual_seed(0)
    m = 50_000
    re = -torch.cat([87 * torch.rand(m // 2, generator=g), 10 ** torch.empty(m // 2).uniform_(-7, 0, generator=g)])
    im = torch.cat([1e4 * (2 * torch.rand(m // 2, generator=g) - 1), 10 ** torch.empty(m // 2).uniform_(-7, 0, generator=g)])
    Lambda = torch.complex(re, im)[None]  # (1, m), float32 values
    one, zero = torch.ones(1, 1, 1), torch.zeros(1, 1, 1)
    ones, zeros = torch.ones_like(Lambda), torch.zeros_like(Lambda)
    _, dA = diagonal_scan(zero, one, Lambda, zeros, zeros, x0=ones[None], inner="fused")
    _, dB = diagonal_scan(one, one, Lambda, ones, zeros, inner="fused")
    z = Lambda.to(torch.complex128)[0]
    ref_A, ref_B = torch.exp(z), torch.expm1(z) / z  # torch's complex128 expm1 keeps small |z| exact
    assert ((dA[0, 0].to(torch.complex128) - ref_A).abs() / ref_A.abs()).max() < 4e-7
    assert ((dB[0, 0].to(torch.complex128) - ref_B).abs() / ref_B.abs()).max() < 4e-7


def test_fused_float32_long_sequence_matches_float64():
    needs_fused()
    args64 = _args(batch=2, H=4, L=3000, n=8)
    y64, x64 = diagonal_scan(*args64, inner="fused")
    y32, x32 = diagonal_scan(*(t.float() if not t.is_complex() else t.to(torch.complex64) for t in args64), inner="fused")
    assert ((y32.double() - y64).abs().max() / y64.abs().max()).item() < 2e-5
    assert ((x32.to(torch.complex128) - x64).abs().max() / x64.abs().max()).item() < 2e-5


def test_fused_reads_transposed_inputs_and_leaves_them_unchanged():
    """(batch, L, H) buffers seen as (batch, H, L) are read through their strides; an expanded incoming
    gradient (y.sum()) works; the caller's tensors are not modified."""
    needs_fused()
    args = _args(batch=2, H=5, L=30)
    args[0], args[1] = (t.transpose(1, 2).contiguous().transpose(1, 2) for t in args[:2])
    assert not args[0].is_contiguous()
    before = [t.clone() for t in args]
    leaves = [t.clone().requires_grad_() for t in args]
    ref = [t.clone().requires_grad_() for t in args]
    grads = torch.autograd.grad(diagonal_scan(*leaves, inner="fused")[0].sum(), leaves)
    ref_grads = torch.autograd.grad(diagonal_scan(*ref, inner="reference")[0].sum(), ref)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    for t, b in zip(args, before):
        assert torch.equal(t, b)


def test_fused_split_over_threads_gives_the_same_bits_as_one_thread(monkeypatch):
    needs_fused()
    monkeypatch.setattr(scan, "FUSED_PARALLEL_NUMEL", 1)
    calls = []
    original = _fused.diag_forward
    monkeypatch.setattr(_fused, "diag_forward", lambda *a: calls.append(a[0].shape[0]) or original(*a))
    args = _args(batch=3, L=33)
    count, runs = torch.get_num_threads(), {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            calls.clear()
            leaves = [t.clone().requires_grad_() for t in args]
            y, x_last = diagonal_scan(*leaves, inner="fused", block_size=5)
            (y.square().sum() + x_last.abs().sum()).backward()
            runs[threads] = [y, x_last] + [t.grad for t in leaves]
            assert sorted(calls) == ([3] if threads == 1 else [1, 2])
    finally:
        torch.set_num_threads(count)
    for name, a, b in zip(("y", "x_last") + NAMES, runs[1], runs[2]):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("method", ["zoh", "foh"])
def test_streaming_split_equals_one_call(method):
    """x_L of one part is x0 of the next (and its last input the first-order hold's u_before)."""
    needs_fused()
    u, delta, Lambda, B, C, D, x0 = _args(L=40)
    kw = {"method": method, "inner": "fused"}
    y, x_last = diagonal_scan(u, delta, Lambda, B, C, D, x0, **kw)
    y1, x1 = diagonal_scan(u[..., :17], delta[..., :17], Lambda, B, C, D, x0, **kw)
    u_before = u[..., 16] if method == "foh" else None
    y2, x2 = diagonal_scan(u[..., 17:], delta[..., 17:], Lambda, B, C, D, x1, u_before=u_before, **kw)
    torch.testing.assert_close(torch.cat([y1, y2], -1), y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(x2, x_last, rtol=1e-12, atol=1e-12)


def test_errors():
    u, delta, Lambda, B, C, D, x0 = _args(L=9)
    with pytest.raises(ValueError, match="inner"):
        diagonal_scan(u, delta, Lambda, B, C, inner="fast")
    with pytest.raises(ValueError, match="unknown method 'rk4'"):
        diagonal_scan(u, delta, Lambda, B, C, method="rk4")
    with pytest.raises(ValueError, match="u_before is read only with method='foh'"):
        diagonal_scan(u, delta, Lambda, B, C, u_before=u[..., 0])
    with pytest.raises(ValueError, match=r"u_before must have shape \(batch, H\)"):
        diagonal_scan(u, delta, Lambda, B, C, method="foh", u_before=u[0, :, 0])
    with pytest.raises(ValueError, match=r"delta must have u's shape"):
        diagonal_scan(u, delta[..., :5], Lambda, B, C)
    with pytest.raises(ValueError, match=r"Lambda must have shape \(H, n\) = \(3, n\)"):
        diagonal_scan(u, delta, Lambda[:2], B, C)
    with pytest.raises(ValueError, match="C must have Lambda's shape"):
        diagonal_scan(u, delta, Lambda, B, C[:, :2])
    with pytest.raises(ValueError, match=r"x0 must have shape \(batch, H, n\)"):
        diagonal_scan(u, delta, Lambda, B, C, D, x0[:1])
    with pytest.raises(ValueError, match="u must be real"):
        diagonal_scan(u.to(torch.complex128), delta, Lambda, B, C)
    with pytest.raises(ValueError, match="u must have shape"):
        diagonal_scan(u[..., :0], delta[..., :0], Lambda, B, C)
    bad = delta.clone()
    bad[0, 1, 2] = float("nan")
    with pytest.raises(ValueError, match="delta"):
        diagonal_scan(u, bad, Lambda, B, C)
    bad[0, 1, 2] = 0.0
    for inner in ("fused", "reference"):
        with pytest.raises(ValueError, match="delta must be strictly positive"):
            diagonal_scan(u, bad, Lambda, B, C, inner=inner)
    with pytest.raises(ValueError, match="block_size"):
        diagonal_scan(u, delta, Lambda, B, C, block_size=0)


def test_fused_fallbacks(monkeypatch):
    """inner="fused" where it cannot run says why; "auto" then runs the reference path (same values):
    a zero in Λ under ZOH, the switch SSMFORECAST_FUSED_SCAN=0, a library that does not build."""
    args = _args(L=12)
    y_ref, _ = diagonal_scan(*args, inner="reference")
    half = [t.to(torch.bfloat16) for t in args[:2]] + [t.to(torch.complex64) for t in args[2:5]]
    y_half, x_half = diagonal_scan(*half)  # half precision runs in float32
    assert y_half.dtype == torch.float32 and x_half.dtype == torch.complex64
    zero = args[2].clone()
    zero[1, 2] = 0
    with pytest.raises(ValueError, match="without zero entries"):
        diagonal_scan(args[0], args[1], zero, *args[3:], inner="fused")
    np.testing.assert_allclose(diagonal_scan(args[0], args[1], zero, *args[3:])[0].numpy(), _numpy_loop(args[0], args[1], zero, *args[3:], "zoh")[0], rtol=1e-10, atol=1e-10)
    monkeypatch.setenv(_fused.ENV_SWITCH, "0")
    assert not _fused.available(torch.device("cpu"), torch.float64)
    monkeypatch.setattr(scan, "_FusedDiagonalScan", None)  # would fail if called
    torch.testing.assert_close(diagonal_scan(*args)[0], y_ref, rtol=0, atol=0)
    monkeypatch.delenv(_fused.ENV_SWITCH)
    monkeypatch.setattr(_fused, "library", lambda: None)
    torch.testing.assert_close(diagonal_scan(*args)[0], y_ref, rtol=0, atol=0)
    with pytest.raises(ValueError, match="could not be built"):
        diagonal_scan(*args, inner="fused")


@pytest.mark.parametrize("method", ["zoh", "foh"])
def test_fused_tiny_modes_are_finite_and_match_float64(method):
    """Re Λ down to 1e-30 (float32) and 1e-170 (float64): |Λ|² underflows to 0, so Λ⁻¹ = inf and the
    closed form β = (e^z − 1) Λ⁻¹ gave NaN; the fused code takes β = Δ φ₁(z) from its Taylor series for
    |z| < 1e-4, and ∂β/∂Λ = Δ² φ₁'(z) from its series for |z| < 1. Values against the complex128 loop
    (series φ₁, φ₂ near 0), gradients against autograd through the float64 reference path."""
    needs_fused()
    g = torch.Generator().manual_seed(11)
    batch, H, L = 2, 1, 9
    u = torch.randn(batch, H, L, generator=g, dtype=torch.float64)
    delta = torch.rand(batch, H, L, generator=g, dtype=torch.float64) + 0.5
    B = torch.randn(H, 6, generator=g, dtype=torch.complex128)
    C = torch.randn(H, 6, generator=g, dtype=torch.complex128)
    for dtype, tiny in ((torch.float32, (-1e-23, -1e-30)), (torch.float64, (-1e-170, -1e-300))):
        cplx = torch.complex64 if dtype == torch.float32 else torch.complex128
        # tiny real modes, a tiny mode with a small imaginary part, a slow and an ordinary mode
        Lambda = torch.tensor([[tiny[0], tiny[1], complex(tiny[0], 1e-6), -1e-8, -1.0, complex(-0.5, 2.0)]], dtype=torch.complex128)
        args = [u.to(dtype), delta.to(dtype), Lambda.to(cplx), B.to(cplx), C.to(cplx)]
        leaves = [t.clone().requires_grad_() for t in args]
        y, x_last = diagonal_scan(*leaves, method=method, inner="fused")
        assert torch.isfinite(y).all() and torch.isfinite(x_last).all()
        # the loop reads the float32 inputs as float64 (Λ rounded to float32, as the scan sees it)
        y_np, x_np = _numpy_loop(*(t.detach().to(torch.complex128 if t.is_complex() else torch.float64) for t in args), None, None, method)
        tol = 2e-6 if dtype == torch.float32 else 1e-12
        np.testing.assert_allclose(y.detach().double().numpy(), y_np, rtol=tol, atol=tol * np.abs(y_np).max())
        np.testing.assert_allclose(x_last.detach().to(torch.complex128).numpy(), x_np, rtol=tol, atol=tol * np.abs(x_np).max())
        y.square().sum().backward()
        ref = [t.detach().to(torch.complex128 if t.is_complex() else torch.float64).requires_grad_() for t in args]
        diagonal_scan(*ref, method=method, inner="reference")[0].square().sum().backward()
        for name, a, r in zip(NAMES, leaves, ref):
            assert torch.isfinite(a.grad).all(), name
            err = (a.grad.to(r.grad.dtype) - r.grad).abs().max() / r.grad.abs().max()
            assert err < (5e-6 if dtype == torch.float32 else 1e-13), (name, err.item())


@pytest.mark.parametrize("inner", ["fused", "reference"])
def test_conjugate_views_equal_their_resolved_tensors(inner):
    """Λ.conj(), B.conj(), C.conj() and x0.conj() are views with the conj bit set, which view_as_real
    refuses: the fused scan resolves them first (same values and gradients as resolved copies)."""
    if inner == "fused":
        needs_fused()
    u, delta, Lambda, B, C, D, x0 = _args(L=20)
    views = [Lambda.conj(), B.conj(), C.conj()]
    assert all(t.is_conj() for t in views)
    y, x_last = diagonal_scan(u, delta, *views, D, x0.conj(), inner=inner)
    y_ref, x_ref = diagonal_scan(u, delta, *(t.resolve_conj() for t in views), D, x0.conj().resolve_conj(), inner=inner)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=0)
    torch.testing.assert_close(x_last, x_ref, rtol=0, atol=0)
    leaf = Lambda.clone().requires_grad_()
    (grad,) = torch.autograd.grad(diagonal_scan(u, delta, leaf.conj(), B, C, inner=inner)[0].sum(), leaf)
    leaf_ref = Lambda.conj().resolve_conj().requires_grad_()
    (grad_ref,) = torch.autograd.grad(diagonal_scan(u, delta, leaf_ref, B, C, inner=inner)[0].sum(), leaf_ref)
    torch.testing.assert_close(grad, grad_ref.conj(), rtol=1e-12, atol=1e-12)
