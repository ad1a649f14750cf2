"""Residual blocks and the ``Backbone`` stack: (batch, L, d_input) → (batch, L, d_output or d_model).

::

    u ─► encoder Linear(d_input, H) ─► [ResidualBlock] × n_layers ─► LayerNorm ─► head Linear(H, d_output)

    ResidualBlock:  x ─► x + Dropout(layer(LayerNorm(x), dt))          (pre-norm)
                      ─► x + Dropout(FF(LayerNorm(x)))                  (optional feed-forward, GLU)

Every piece is position-wise except the sequence layers, so the stack keeps their contract
(:class:`~ssmforecast.nn._base.SequenceLayer`): causal, ``dt``-aware, and with a recurrent ``step``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._base import SequenceLayer, check_sequence_input, check_step_input
from .mamba import MambaLayer
from .s4 import S4DLayer, S4Layer

#: Sequence layers a Backbone can stack, by name.
LAYERS: dict[str, type[SequenceLayer]] = {"s4": S4Layer, "s4d": S4DLayer, "mamba": MambaLayer}


class FeedForward(nn.Module):
    """Position-wise GLU feed-forward: Linear(H, 2·E·H) → GLU → Linear(E·H, H); (..., H) → (..., H)."""

    def __init__(self, d_model: int, expand: int):
        super().__init__()
        self.up = nn.Linear(d_model, 2 * expand * d_model)
        self.down = nn.Linear(expand * d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.glu(self.up(x), dim=-1))


class ResidualBlock(SequenceLayer):
    """Pre-norm residual block around a sequence layer, with an optional GLU feed-forward.

    Parameters
    ----------
    layer : SequenceLayer
        The sequence layer (S4, S4D, Mamba) of width ``layer.d_model``.
    dropout : float, default 0.0
        Dropout on each residual branch.
    ff_expand : int or None, default None
        Width factor of the feed-forward sub-block; None for none.
    """

    def __init__(self, layer: SequenceLayer, dropout: float = 0.0, ff_expand: int | None = None):
        super().__init__()
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
        if ff_expand is not None and (not isinstance(ff_expand, int) or ff_expand < 1):
            raise ValueError(f"ff_expand must be a positive int or None, got {ff_expand!r}")
        self.d_model = layer.d_model
        self.layer = layer
        self.norm = nn.LayerNorm(self.d_model)
        self.dropout = nn.Dropout(dropout)
        self.ff = None if ff_expand is None else FeedForward(self.d_model, ff_expand)
        self.ff_norm = None if ff_expand is None else nn.LayerNorm(self.d_model)

    def _feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.ff is None else x + self.dropout(self.ff(self.ff_norm(x)))

    def forward(self, u: torch.Tensor, dt: torch.Tensor | None = None) -> torch.Tensor:
        """u (batch, L, H), dt (batch, L) or None → (batch, L, H)."""
        x = u + self.dropout(self.layer(self.norm(u), dt))  # (batch, L, H)
        return self._feed_forward(x)

    def allocate_state(self, batch: int):
        return self.layer.allocate_state(batch)

    def step(self, u: torch.Tensor, state, dt: torch.Tensor | None = None):
        """u (batch, H), dt (batch,) or None → (y (batch, H), state)."""
        y, state = self.layer.step(self.norm(u), state, dt)  # (batch, H)
        return self._feed_forward(u + self.dropout(y)), state


class Backbone(SequenceLayer):
    """A stack of residual SSM blocks between an input encoder and an output head.

    Parameters
    ----------
    d_input : int
        Features per time step of the input.
    d_model : int
        Width of the blocks (H).
    n_layers : int
        Number of residual blocks.
    layer : {"s4", "s4d", "mamba"}, default "s4d"
        The sequence layer of every block.
    d_output : int or None, default None
        Width of the linear output head; None returns the d_model features.
    dropout : float, default 0.0
    ff_expand : int or None, default None
        Feed-forward width factor in each block; None for no feed-forward.
    layer_kwargs : dict or None
        Extra keyword arguments for the layer class (e.g. ``{"d_state": 16}``).

    Shapes: forward(u (batch, L, d_input), dt (batch, L) or None) → (batch, L, d_output or d_model);
    step(u (batch, d_input), state, dt (batch,) or None) → ((batch, d_output or d_model), state).
    """

    def __init__(
        self,
        d_input: int,
        d_model: int,
        n_layers: int,
        *,
        layer: str = "s4d",
        d_output: int | None = None,
        dropout: float = 0.0,
        ff_expand: int | None = None,
        layer_kwargs: dict | None = None,
    ):
        super().__init__()
        if layer not in LAYERS:
            raise ValueError(f"unknown layer {layer!r}; valid choices are {', '.join(map(repr, LAYERS))}")
        for name, value in (("d_input", d_input), ("d_model", d_model), ("n_layers", n_layers)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if d_output is not None and (not isinstance(d_output, int) or d_output < 1):
            raise ValueError(f"d_output must be a positive int or None, got {d_output!r}")
        self.d_input, self.d_model = d_input, d_model
        self.d_output = d_model if d_output is None else d_output
        kwargs = dict(layer_kwargs or {})
        self.encoder = nn.Linear(d_input, d_model)
        self.blocks = nn.ModuleList(
            ResidualBlock(LAYERS[layer](d_model, **kwargs), dropout=dropout, ff_expand=ff_expand) for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Identity() if d_output is None else nn.Linear(d_model, d_output)

    def forward(self, u: torch.Tensor, dt: torch.Tensor | None = None) -> torch.Tensor:
        """u (batch, L, d_input), dt (batch, L) or None → (batch, L, d_output)."""
        check_sequence_input(u, dt, self.d_input)
        x = self.encoder(u)  # (batch, L, H)
        for block in self.blocks:
            x = block(x, dt)  # (batch, L, H)
        return self.head(self.norm(x))  # (batch, L, d_output)

    def allocate_state(self, batch: int) -> list:
        """One state per block."""
        return [block.allocate_state(batch) for block in self.blocks]

    def step(self, u: torch.Tensor, state: list, dt: torch.Tensor | None = None):
        """u (batch, d_input), dt (batch,) or None → (y (batch, d_output), state)."""
        check_step_input(u, dt, self.d_input)
        x = self.encoder(u)  # (batch, H)
        new_state = []
        for block, s in zip(self.blocks, state):
            x, s = block.step(x, s, dt)  # (batch, H)
            new_state.append(s)
        return self.head(self.norm(x)), new_state
