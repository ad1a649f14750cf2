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


# y = K̄ * u + D u, causal: y_k = Σ_{l=0}^{k} K̄_l u_{k−l} + D u_k, by FFT with zero padding to ≥ L + L_K − 1
def fft_conv(u: torch.Tensor, K: torch.Tensor, D: torch.Tensor | None = None) -> torch.Tensor:
    """Causal convolution y = K̄ * u + D u; u (..., H, L), K̄ (..., H, L_K), D (H,) → y (..., H, L).

    Both signals are zero-padded to a fast FFT length ≥ L + L_K − 1, so the product of their
    spectra is the linear (not circular) convolution; the first L outputs are kept. A kernel
    shorter than the input (L_K < L) means K̄_l = 0 for l ≥ L_K.
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
    y = torch.fft.irfft(torch.fft.rfft(u, n=n) * torch.fft.rfft(K, n=n), n=n)[..., :L]  # (..., H, L)
    if D is not None:
        if D.ndim != 1 or D.shape[0] not in (1, u.shape[-2] if u.ndim >= 2 else 1):
            raise ValueError(f"D must have shape (H,) matching u's channel axis, got {tuple(D.shape)} for u {tuple(u.shape)}")
        y = y + D[:, None] * u  # (..., H, L)
    return y
