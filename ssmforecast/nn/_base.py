"""The contract every sequence layer of :mod:`ssmforecast.nn` keeps, and the optimizer-hint helper."""

from __future__ import annotations

import torch
from torch import nn


class SequenceLayer(nn.Module):
    """A sequence-to-sequence layer with a parallel and a recurrent view.

    Shapes
    ------
    forward(u, dt=None) : u (batch, L, H), dt (batch, L) or None → y (batch, L, H)
        The whole sequence at once (training). ``dt`` is the time since the previous observation
        in the model's time unit (1.0 for a regular series); ``None`` means all ones.
    allocate_state(batch) → state
        The state before the first step (a tensor or a tuple of tensors).
    step(u, state, dt=None) : u (batch, H), dt (batch,) or None → (y (batch, H), state)
        One new observation, at a cost that does not depend on how many steps came before.
        Running ``step`` over a sequence from ``allocate_state`` equals ``forward``.

    Every layer is causal: y_k depends on u_0 … u_k (and dt_0 … dt_k) only.
    """

    d_model: int

    def allocate_state(self, batch: int):  # pragma: no cover - interface
        raise NotImplementedError

    def step(self, u: torch.Tensor, state, dt: torch.Tensor | None = None):  # pragma: no cover - interface
        raise NotImplementedError


def register_ssm_param(
    module: nn.Module, name: str, value: torch.Tensor, *, trainable: bool = True, lr: float | None = None
) -> None:
    """Register an SSM parameter (Λ, log Δ, B, P, A_log, …) with an optimizer hint.

    Trainable values become ``nn.Parameter`` with the attribute ``_optim = {"weight_decay": 0.0}``
    plus ``"lr": lr`` when given: the shared training loop builds its parameter groups from these
    marks (S4's practice: no weight decay and often a smaller learning rate on the SSM). Frozen
    values become buffers.
    """
    if trainable:
        param = nn.Parameter(value)
        param._optim = {"weight_decay": 0.0} | ({} if lr is None else {"lr": lr})
        module.register_parameter(name, param)
    else:
        module.register_buffer(name, value)


def _check_dt(dt: torch.Tensor | None, shape: torch.Size, axes: str) -> None:
    """Raise ValueError unless dt is None or of ``shape``, finite and strictly positive."""
    if dt is None:
        return
    if dt.shape != shape:
        raise ValueError(f"dt must have shape {axes} = {tuple(shape)}, got {tuple(dt.shape)}")
    if not bool(torch.isfinite(dt).all()) or not bool((dt > 0).all()):
        raise ValueError("dt must be finite and strictly positive")


def check_sequence_input(u: torch.Tensor, dt: torch.Tensor | None, d_model: int) -> None:
    """Raise ValueError unless u is (batch, L, d_model) and dt is None or (batch, L), positive and finite."""
    if u.ndim != 3 or u.shape[-1] != d_model:
        raise ValueError(f"input must have shape (batch, L, {d_model}), got {tuple(u.shape)}")
    _check_dt(dt, u.shape[:2], "(batch, L)")


def check_step_input(u: torch.Tensor, dt: torch.Tensor | None, d_model: int) -> None:
    """Raise ValueError unless u is (batch, d_model) and dt is None or (batch,), positive and finite."""
    if u.ndim != 2 or u.shape[-1] != d_model:
        raise ValueError(f"step input must have shape (batch, {d_model}), got {tuple(u.shape)}")
    _check_dt(dt, u.shape[:1], "(batch,)")
