"""Residual blocks and the ``Backbone`` stack: (batch, L, d_input) → (batch, L, d_output or d_model).

::

    u ─► encoder Linear(d_input, H) ─► [ResidualBlock] × n_layers ─► LayerNorm ─► head Linear(H, d_output)

    ResidualBlock:  x ─► x + Dropout(layer(hold(LayerNorm(x)), dt))    (pre-norm)
                      ─► x + Dropout(FF(LayerNorm(x)))                  (optional feed-forward, GLU)

``hold`` is how the sequence layer reads its input over the gap before a token: "constant" (zero-
order hold, the identity) or "linear", the interval mean ½ (v_{k−1} + v_k) of the straight line
between consecutive tokens (v_0 for the first), which ``step`` reproduces by keeping v_{k−1}.

Every piece is position-wise except the sequence layers, so the stack keeps their contract
(:class:`~ssmforecast.nn._base.SequenceLayer`): causal, ``dt``-aware, and with a recurrent ``step``.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from torch import nn

from ._base import SequenceLayer, check_sequence_input, check_step_input, serial_step
from .mamba import MambaLayer
from .s4 import S4DLayer, S4Layer

#: Sequence layers a Backbone can stack, by name.
LAYERS: dict[str, type[SequenceLayer]] = {"s4": S4Layer, "s4d": S4DLayer, "mamba": MambaLayer}
#: How a block's sequence layer reads its input over the gap before each token (``hold``).
HOLDS = ("constant", "linear")


# Linear hold (docs/time.md): under ZOH the layer integrates, over the gap before token k, the
# straight line from v_{k−1} to v_k through its mean ½ (v_{k−1} + v_k) (the midpoint rule)
def interval_means(v: torch.Tensor) -> torch.Tensor:
    """v (batch, L, H) → ½ (v_{k−1} + v_k) along the sequence, v_0 for the first token (batch, L, H)."""
    return torch.cat([v[:, :1], 0.5 * (v[:, 1:] + v[:, :-1])], dim=1)

# Backbone → its torch.compile'd step (Backbone.compile_step); kept out of the module so that
# copying or pickling a Backbone never meets a compiled function
_COMPILED_STEPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


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
    hold : {"constant", "linear"}, default "constant"
        What the layer reads at token k: the normalised input v_k itself, or the interval mean
        ½ (v_{k−1} + v_k) (see the module docstring). With "linear" the recurrent state is the
        pair (layer state, v_{k−1} or None before the first token).
    """

    def __init__(self, layer: SequenceLayer, dropout: float = 0.0, ff_expand: int | None = None, hold: str = "constant"):
        super().__init__()
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
        if ff_expand is not None and (not isinstance(ff_expand, int) or ff_expand < 1):
            raise ValueError(f"ff_expand must be a positive int or None, got {ff_expand!r}")
        if hold not in HOLDS:
            raise ValueError(f"hold must be one of {', '.join(map(repr, HOLDS))}, got {hold!r}")
        self.hold = hold
        self.d_model = layer.d_model
        self.layer = layer
        self.norm = nn.LayerNorm(self.d_model)
        self.dropout = nn.Dropout(dropout)
        self.ff = None if ff_expand is None else FeedForward(self.d_model, ff_expand)
        self.ff_norm = None if ff_expand is None else nn.LayerNorm(self.d_model)

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        """Dropout on a residual branch; not called where it is the identity (streaming cost)."""
        return self.dropout(x) if self.training and self.dropout.p > 0 else x

    def _feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.ff is None else x + self._drop(self.ff(self.ff_norm(x)))

    def forward(self, u: torch.Tensor, dt: torch.Tensor | None = None) -> torch.Tensor:
        """u (batch, L, H), dt (batch, L) or None → (batch, L, H)."""
        v = self.norm(u)  # (batch, L, H)
        x = u + self._drop(self.layer(interval_means(v) if self._linear else v, dt))  # (batch, L, H)
        return self._feed_forward(x)

    @property
    def _linear(self) -> bool:
        return getattr(self, "hold", "constant") == "linear"  # blocks pickled before ``hold``: constant

    def allocate_state(self, batch: int):
        state = self.layer.allocate_state(batch)
        return (state, None) if self._linear else state

    def step(self, u: torch.Tensor, state, dt: torch.Tensor | None = None):
        """u (batch, H), dt (batch,) or None → (y (batch, H), state)."""
        check_step_input(u, dt, self.d_model)
        return serial_step(self._step, u, state, dt)

    def _step(self, u: torch.Tensor, state, dt: torch.Tensor | None = None):
        """``step`` after the input checks: the layer's own ``_step`` skips them too."""
        norm = self.norm
        v = F.layer_norm(u, norm.normalized_shape, norm.weight, norm.bias, norm.eps)  # (batch, H)
        if not self._linear:
            y, state = self.layer._step(v, state, dt)  # (batch, H)
            return self._feed_forward(u + self._drop(y)), state  # (batch, H)
        layer_state, prev = state
        y, layer_state = self.layer._step(v if prev is None else 0.5 * (prev + v), layer_state, dt)  # (batch, H)
        return self._feed_forward(u + self._drop(y)), (layer_state, v)  # (batch, H)


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
    hold : {"constant", "linear"}, default "constant"
        How every block's layer reads its input over the gap before a token (:class:`ResidualBlock`).

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
        hold: str = "constant",
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
            ResidualBlock(LAYERS[layer](d_model, **kwargs), dropout=dropout, ff_expand=ff_expand, hold=hold)
            for _ in range(n_layers)
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
        """u (batch, d_input), dt (batch,) or None → (y (batch, d_output), state).

        u and dt are checked once here, not again in every block (``_step``); with a constant step
        each layer reads matrices precomputed once per parameter version (see the layers'
        ``_cached``), and a small batch runs on one intra-op thread (:func:`serial_step`).
        """
        check_step_input(u, dt, self.d_input)
        return serial_step(self._step, u, state, dt)

    def compile_step(self, enabled: bool = True, **options) -> Backbone:
        """Opt in to a compiled ``step`` (``torch.compile``; the eager step stays the default).

        The whole stack of one step becomes one graph on the memoised constant-step matrices of
        the layers (S4 and S4D in real arithmetic), which inductor fuses into a few kernels around
        the matrix products: on a 2-core CPU about 3× faster than the eager step for Mamba. The
        first call compiles (tens of seconds); a new batch size, dtype, device or grad mode
        compiles again. Used for ``dt=None`` with grad disabled and no active dropout; otherwise,
        and for S4 with ``discretization="zoh"`` or blocks with ``hold="linear"``, ``step`` runs eagerly. A copy of the Backbone
        is not compiled.

        Parameters
        ----------
        enabled : bool, default True
            False returns to the eager step.
        **options
            Passed to ``torch.compile`` (e.g. ``backend="eager"`` to check the graph quickly).
            Without any, a model on the CPU compiles with :data:`CPU_STEP_INDUCTOR_OPTIONS`.

        Returns
        -------
        self

        Writes to self: nothing on the module; the compiled function is kept in a weak table.
        """
        if not enabled or not all(block.layer._real_step_supported() and not block._linear for block in self.blocks):
            _COMPILED_STEPS.pop(self, None)
            return self
        fns = tuple(type(block.layer)._real_step for block in self.blocks)
        eps = tuple((block.norm.eps, None if block.ff is None else block.ff_norm.eps) for block in self.blocks)
        body = _stack_step(fns, eps, self.norm.eps)
        dropouts = tuple(m for m in self.modules() if isinstance(m, nn.Dropout))
        defaults = {"dynamic": False, "fullgraph": True}
        if not options and self.norm.weight.device.type == "cpu":
            defaults["options"] = dict(CPU_STEP_INDUCTOR_OPTIONS)
        _COMPILED_STEPS[self] = (torch.compile(body, **(defaults | options)), dropouts)
        return self

    def _compiled_step(self, step, u: torch.Tensor, state: list):
        """The compiled ``step`` on the blocks' current inputs; state in and out as ``step``'s."""
        blocks, states = [], []
        for block, s in zip(self.blocks, state):
            layer, ff = block.layer, None
            if block.ff is not None:
                ff = ((block.ff_norm.weight, block.ff_norm.bias), _wb(block.ff.up), _wb(block.ff.down))
            blocks.append(((block.norm.weight, block.norm.bias), layer._real_inputs(), ff))
            states.append(layer._real_state(layer._check_state(s, u.shape[0])))
        head = None if isinstance(self.head, nn.Identity) else _wb(self.head)
        y, new = step(u, states, _wb(self.encoder), blocks, (self.norm.weight, self.norm.bias), head)
        return y, [block.layer._from_real_state(s) for block, s in zip(self.blocks, new)]

    def _step(self, u: torch.Tensor, state: list, dt: torch.Tensor | None = None):
        """``step`` after the input checks: encoder, the blocks' ``_step``, norm and head (or the
        compiled step of ``compile_step``)."""
        compiled = _COMPILED_STEPS.get(self) if _COMPILED_STEPS else None
        if compiled is not None and dt is None and not torch.is_grad_enabled():
            step, dropouts = compiled
            if not (self.training and any(m.p > 0 for m in dropouts)):  # the compiled graph has no dropout
                return self._compiled_step(step, u, state)
        x = self.encoder(u)  # (batch, H)
        new_state = []
        for block, s in zip(self.blocks, state):
            x, s = block._step(x, s, dt)  # (batch, H)
            new_state.append(s)
        return self.head(self.norm(x)), new_state  # (batch, d_output)


#: Inductor options of ``compile_step`` on the CPU: a C++ wrapper instead of the Python one that
#: calls the generated kernels, and no size/stride asserts on the inputs (dynamo's guards already
#: check them, as the graph is compiled for static shapes). About 10% less time per step (4-layer
#: d_model 128 S4 and Mamba stacks, batch 1; docs/nn.md).
CPU_STEP_INDUCTOR_OPTIONS = {"cpp_wrapper": True, "size_asserts": False}


def _wb(linear: nn.Linear):
    return linear.weight, linear.bias


# The compiled twin of Backbone._step (same math on the layers' _real_step): encoder → blocks
# x + layer(LayerNorm(x)) [+ FF] → LayerNorm → head
def _stack_step(fns, eps, out_eps):
    """The pure function ``Backbone.compile_step`` compiles, for blocks with layer steps ``fns``
    and LayerNorm epsilons ``eps`` ((block, feed-forward or None) per block) and ``out_eps``."""

    def step(u, states, encoder, blocks, norm, head):
        """u (batch, d_input), the blocks' real states, (weight, bias) pairs → (y, states)."""
        x = F.linear(u, *encoder)  # (batch, H)
        new = []
        for fn, (e, ff_e), (ln, inputs, ff), s in zip(fns, eps, blocks, states):
            y, s = fn(F.layer_norm(x, x.shape[-1:], *ln, e), s, inputs)  # (batch, H)
            x = x + y
            if ff is not None:
                ff_ln, up, down = ff
                x = x + F.linear(F.glu(F.linear(F.layer_norm(x, x.shape[-1:], *ff_ln, ff_e), *up), dim=-1), *down)
            new.append(s)
        x = F.layer_norm(x, x.shape[-1:], *norm, out_eps)  # (batch, H)
        return (x if head is None else F.linear(x, *head)), new

    return step
