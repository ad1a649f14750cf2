"""FFT causal convolution against numpy's direct convolution."""

import numpy as np
import pytest
import torch

from ssmforecast.math.conv import _fft_length, fft_conv


@pytest.mark.parametrize("L,L_K", [(1, 1), (7, 7), (100, 100), (257, 30), (1000, 1000)])
def test_fft_conv_equals_direct_causal_convolution(L, L_K):
    rng = np.random.default_rng(L)
    u = rng.standard_normal((2, 3, L))
    K = rng.standard_normal((3, L_K))
    D = rng.standard_normal(3)
    y = fft_conv(torch.tensor(u), torch.tensor(K), torch.tensor(D)).numpy()
    for b in range(2):
        for h in range(3):
            ref = np.convolve(u[b, h], K[h])[:L] + D[h] * u[b, h]
            np.testing.assert_allclose(y[b, h], ref, rtol=1e-10, atol=1e-10)


def test_no_circular_wrap_around():
    """An impulse at the last step must not leak into earlier outputs."""
    L = 64
    u = torch.zeros(1, 1, L, dtype=torch.float64)
    u[..., -1] = 1.0
    K = torch.ones(1, L, dtype=torch.float64)
    y = fft_conv(u, K)
    assert y[..., :-1].abs().max() < 1e-12
    assert abs(y[..., -1].item() - 1.0) < 1e-12


def test_per_sample_kernels_and_float32():
    rng = np.random.default_rng(1)
    u = rng.standard_normal((4, 2, 50)).astype(np.float32)
    K = rng.standard_normal((4, 2, 50)).astype(np.float32)
    y = fft_conv(torch.tensor(u), torch.tensor(K))
    assert y.dtype == torch.float32
    ref = np.array([[np.convolve(u[b, h].astype(float), K[b, h].astype(float))[:50] for h in range(2)] for b in range(4)])
    assert np.abs(y.numpy() - ref).max() / np.abs(ref).max() < 1e-5


def test_fft_length_is_smooth_and_long_enough():
    for n in range(1, 3000, 7):
        m = _fft_length(n)
        assert m >= n
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        assert r == 1


def test_errors():
    u = torch.zeros(2, 3, 10)
    with pytest.raises(ValueError, match="real u and K"):
        fft_conv(u, torch.zeros(3, 10, dtype=torch.complex64))
    with pytest.raises(ValueError, match="do not broadcast"):
        fft_conv(u, torch.zeros(4, 10))
    with pytest.raises(ValueError, match="u contains NaN"):
        fft_conv(torch.full((1, 3, 10), float("nan")), torch.zeros(3, 10))
    with pytest.raises(ValueError, match=r"D must have shape \(H,\)"):
        fft_conv(u, torch.zeros(3, 10), torch.zeros(5))


@pytest.mark.parametrize(
    "u_shape, K_shape",
    [((2, 3, 17), (3, 17)), ((2, 3, 17), (3, 9)), ((2, 3, 9), (3, 17)), ((2, 3, 12), (2, 3, 12)), ((3, 12), (1, 12))],
)
def test_gradients_equal_the_direct_convolution(u_shape, K_shape):
    """Hand-written backward (correlations by FFT) = autograd through the direct causal sum, float64."""
    g = torch.Generator().manual_seed(0)
    u = torch.randn(u_shape, generator=g, dtype=torch.float64, requires_grad=True)
    K = torch.randn(K_shape, generator=g, dtype=torch.float64, requires_grad=True)
    L, L_K = u.shape[-1], K.shape[-1]
    # y_k = Σ_{l ≤ min(k, L_K − 1)} K_l u_{k−l}, term by term
    y_ref = torch.stack(
        [sum(K[..., l] * u[..., k - l] for l in range(min(k, L_K - 1) + 1)) for k in range(L)], dim=-1
    )
    y = fft_conv(u, K)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    gy = torch.randn(y.shape, generator=g, dtype=torch.float64)
    gu, gK = torch.autograd.grad((y * gy).sum(), (u, K))
    gu_ref, gK_ref = torch.autograd.grad((y_ref * gy).sum(), (u, K))
    torch.testing.assert_close(gu, gu_ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gK, gK_ref, rtol=1e-10, atol=1e-10)
    assert torch.autograd.gradcheck(lambda a, b: fft_conv(a, b), (u, K))
