"""Input validation shared by the math core: every check raises ``ValueError`` naming the problem."""

from __future__ import annotations

from collections.abc import Iterable

import torch


def check_finite(name: str, x: torch.Tensor) -> None:
    """Raise if ``x`` holds NaN or ±inf."""
    if not torch.is_tensor(x):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if bool(torch.isfinite(x.detach().sum())):  # one reduction: a finite sum has finite entries
        return
    if not bool(torch.isfinite(x).all()):  # the sum may overflow with finite entries
        what = "NaN" if bool(torch.isnan(x).any()) else "inf"
        raise ValueError(f"{name} contains {what} values")


def check_step(dt: torch.Tensor, name: str = "dt") -> None:
    """Raise unless every step size Δ is finite and strictly positive."""
    check_finite(name, dt)
    if dt.is_complex():
        raise ValueError(f"{name} must be real, got dtype {dt.dtype}")
    if not bool((dt > 0).all()):
        raise ValueError(f"{name} must be strictly positive; smallest value is {dt.min().item()!r}")


def check_choice(name: str, value: str, choices: Iterable[str]) -> None:
    """Raise unless ``value`` is one of ``choices``, listing the valid ones."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; valid choices are {', '.join(map(repr, choices))}")


def check_square(name: str, A: torch.Tensor) -> int:
    """Raise unless ``A`` has shape (..., N, N); return N."""
    if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
        raise ValueError(f"{name} must have shape (..., N, N), got {tuple(A.shape)}")
    return A.shape[-1]


def check_last_dim(name: str, x: torch.Tensor, n: int, what: str = "N") -> None:
    """Raise unless the last axis of ``x`` has length ``n``."""
    if x.ndim < 1 or x.shape[-1] != n:
        raise ValueError(f"{name} must have last dimension {what}={n}, got shape {tuple(x.shape)}")


def check_broadcast(**tensors: torch.Tensor) -> torch.Size:
    """Raise unless the named tensors broadcast together; return the broadcast shape."""
    try:
        return torch.broadcast_shapes(*(t.shape for t in tensors.values()))
    except RuntimeError:
        shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in tensors.items())
        raise ValueError(f"shapes do not broadcast: {shapes}") from None
