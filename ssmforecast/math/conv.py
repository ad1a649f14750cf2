"""Causal convolution of an input with an SSM kernel by FFT (the convolutional view, S4 §2.4)."""

from __future__ import annotations

import torch

from ._checks import check_broadcast, check_finite


def _fft_length(n: int) -> int:
    """Smallest 2^a 3^b 5^c ≥ n: lengths whose FFT is fast (pocketfft/cuFFT factor 2, 3, 5 well)."""
    best = 1 << max(n - 1, 0).bit_length()
    f5 = 1
    while f5 < best:
        f35 = f5
        while f35 < best:
            f = f35
            while f < n:
                f *= 2
            best = min(best, f)
            f35 *= 3
        f5 *= 5
    return best


def _sum_to(x: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Sum a broadcast gradient back to an input's ``shape`` (leading axes, then size-1 axes)."""
    x = x.sum(dim=tuple(range(x.ndim - len(shape)))) if x.ndim > len(shape) else x
    dims = tuple(i for i, (a, b) in enumerate(zip(x.shape, shape)) if b == 1 and a != 1)
    return x.sum(dim=dims, keepdim=True) if dims else x


# Convolution theorem with a hand-written backward: the adjoint of a causal convolution is the
# correlation with the same kernel, ∂/∂u_j = Σ_{k≥j} ȳ_k K̄_{k−j} and ∂/∂K̄_l = Σ_k ȳ_k u_{k−l},
# both again products of spectra (conj(K̂) ȳ̂ and conj(û) ȳ̂); the padding n ≥ L + L_K − 1 keeps
# the circular correlation from wrapping into the kept entries.
class _FFTConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, K, n):
        L, L_K = u.shape[-1], K.shape[-1]
        u_f, K_f = torch.fft.rfft(u, n=n), torch.fft.rfft(K, n=n)  # (..., H, n/2+1)
        ctx.save_for_backward(u_f, K_f)
        ctx.shapes = (u.shape, K.shape, L, L_K, n)
        return torch.fft.irfft(u_f * K_f, n=n)[..., :L]  # (..., H, L)

    @staticmethod
    def backward(ctx, gy):
        u_f, K_f = ctx.saved_tensors
        u_shape, K_shape, L, L_K, n = ctx.shapes
        g_f = torch.fft.rfft(gy, n=n)  # (..., H, n/2+1)
        gu = gK = None
        if ctx.needs_input_grad[0]:
            gu = _sum_to(torch.fft.irfft(g_f * K_f.conj(), n=n)[..., :L], u_shape)  # (..., H, L)
        if ctx.needs_input_grad[1]:  # the sum over broadcast axes taken on the spectra: one small iFFT
            gK = torch.fft.irfft(_sum_to(g_f * u_f.conj(), K_shape[:-1] + (g_f.shape[-1],)), n=n)[..., :L_K]  # (..., H, L_K)
        return gu, gK, None


# y = K̄ * u + D u, causal: y_k = Σ_{l=0}^{k} K̄_l u_{k−l} + D u_k, by FFT with zero padding to ≥ L + L_K − 1
def fft_conv(u: torch.Tensor, K: torch.Tensor, D: torch.Tensor | None = None) -> torch.Tensor:
    """Causal convolution y = K̄ * u + D u; u (..., H, L), K̄ (..., H, L_K), D (H,) → y (..., H, L).

    Both signals are zero-padded to a fast FFT length ≥ L + L_K − 1, so the product of their
    spectra is the linear (not circular) convolution; the first L outputs are kept. A kernel
    shorter than the input (L_K < L) means K̄_l = 0 for l ≥ L_K. The backward is written by
    hand (correlations, again by real FFTs); second derivatives are not supported.
    """
    if u.is_complex() or K.is_complex():
        raise ValueError("fft_conv needs real u and K (take 2·Re or Re of a complex kernel first)")
    if u.ndim < 1 or K.ndim < 1:
        raise ValueError(f"u and K need a time axis, got shapes {tuple(u.shape)} and {tuple(K.shape)}")
    check_finite("u", u)
    check_finite("K", K)
    check_broadcast(u=u[..., 0], K=K[..., 0])
    L, L_K = u.shape[-1], K.shape[-1]
    n = _fft_length(L + L_K - 1)
    # ŷ = û K̂ at n ≥ L + L_K − 1 points (linear, not circular, convolution), backward by hand:
    # three real FFTs each way instead of autograd's complex FFTs of padded tensors
    y = _FFTConv.apply(u, K, n)  # (..., H, L)
    if D is not None:
        if D.ndim != 1 or D.shape[0] not in (1, u.shape[-2] if u.ndim >= 2 else 1):
            raise ValueError(f"D must have shape (H,) matching u's channel axis, got {tuple(D.shape)} for u {tuple(u.shape)}")
        y = y + D[:, None] * u  # (..., H, L)
    return y
