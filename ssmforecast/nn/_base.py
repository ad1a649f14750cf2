"""The contract every sequence layer of :mod:`ssmforecast.nn` keeps, and the optimizer-hint helper."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..math._threads import one_intra_op_thread


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

    ``_step(u, state, dt)`` is ``step`` without the checks of u and dt, for a caller that has made
    them once for a whole stack (:meth:`Backbone.step <ssmforecast.nn.Backbone.step>`); by default
    it calls ``step``.
    """

    d_model: int

    def allocate_state(self, batch: int):  # pragma: no cover - interface
        raise NotImplementedError

    def step(self, u: torch.Tensor, state, dt: torch.Tensor | None = None):  # pragma: no cover - interface
        raise NotImplementedError

    def _step(self, u: torch.Tensor, state, dt: torch.Tensor | None = None):
        """``step`` with u (batch, H) and dt (batch,) or None already checked by the caller."""
        return self.step(u, state, dt)

    def _real_step_supported(self) -> bool:
        """Whether the layer has the compiled form of its ``dt=None`` step used by
        ``Backbone.compile_step``: ``_real_inputs()`` (the memoised constants, real tensors),
        ``_real_step(u, real_state, inputs)`` (a pure function, static) and ``_real_state`` /
        ``_from_real_state`` (the state as real tensors and back)."""
        return False

    def _cache_tensors(self) -> list:
        """The tensors the values of ``_cached`` may depend on: the parameters and buffers of the
        layer and of its direct submodules (read from their dicts: a step pays for this lookup)."""
        tensors = []
        for module in (self, *self._modules.values()):
            if module is not None:
                tensors += module._parameters.values()
                tensors += module._buffers.values()
        return tensors

    def _cached(self, name: str, build, args: tuple = ()):
        """``build()`` memoised per ``name`` (one entry each) while grad is disabled, until ``args``
        or a tensor of ``_cache_tensors()`` changes.

        A tensor counts as changed when an in-place op on the tensor itself bumps its
        ``Tensor._version`` (an optimizer step, ``load_state_dict``, ``p.mul_(…)`` under no_grad)
        or when it is replaced by one of another storage (a new Parameter); ``.to``, ``.float()``
        and the like clear the cache (``_apply``). Not seen: writes through ``p.data``
        (``p.data.add_(…)``, ``p.data.copy_(…)``, an EMA of the weights written that way) bump
        no version, and ``p.data = t`` may reuse a freed storage's address; after such an edit
        call :meth:`clear_cache`. (A checksum of the values in the key would see them, but one
        ``torch._foreach_norm`` of the layer's tensors costs 13–18 µs per lookup on the CPU at
        H = N = 64: 1% of an S4 forward at L = 1,024, but 25–50% of a streaming ``step``, which
        reads the same memo.) With grad enabled
        ``build()`` is called and nothing is stored, so no autograd graph is kept. The recurrent
        view reuses what a constant step precomputes (the discretized matrices), so a streaming
        ``step`` costs a few small products instead of a discretization; an inference ``forward``
        of S4/S4D reuses the kernel K̄ of its (L, step).

        Writes to self: ``_step_cache[name] = (key, args, value)``.
        """
        if torch.is_grad_enabled():  # never hold on to an autograd graph
            return build()
        key = [(p.data_ptr(), p._version) for p in self._cache_tensors() if p is not None]
        cache = self.__dict__.setdefault("_step_cache", {})
        entry = cache.get(name)
        if entry is None or entry[0] != key or entry[1] != args:
            entry = cache[name] = (key, args, build())
        return entry[2]

    def clear_cache(self) -> SequenceLayer:
        """Forget the memoised kernels and step matrices (``_cached``) of this layer and of every
        layer inside it (a Backbone's blocks and their layers), so that the next ``forward`` or
        ``step`` rebuilds them from the parameters as they are.

        Needed only after an edit the memo cannot see: a write through ``.data``
        (``p.data.add_(…)``, ``p.data.copy_(…)``, ``p.data = t``). Optimizer steps, in-place ops
        on the parameters themselves and ``load_state_dict`` are seen without it. Returns self.

        Writes to self and its submodules: ``_step_cache`` (removed).
        """
        for module in self.modules():
            module.__dict__.pop("_step_cache", None)
        return self

    def _apply(self, fn, *args, **kwargs):
        """``nn.Module._apply`` (behind ``.to``, ``.float()``, ``.cuda()``, …), clearing ``_cached``'s
        values first. Writes to self: ``_step_cache`` (removed)."""
        self.__dict__.pop("_step_cache", None)
        return super()._apply(fn, *args, **kwargs)


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
    if dt.numel() == 0:
        return
    lo, hi = torch.aminmax(dt)  # one pass; a NaN propagates to both and fails the test
    if not (float(lo) > 0 and float(hi) < math.inf):
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


#: A ``step`` of at most this many series runs on one intra-op thread (see :func:`serial_step`).
SERIAL_STEP_BATCH = 16


def serial_step(step, u: torch.Tensor, state, dt: torch.Tensor | None):
    """``step(u, state, dt)`` on one intra-op thread when u's batch is at most ``SERIAL_STEP_BATCH``.

    The ops of a small step are tiny (a (1, 128) matrix–vector product, a GELU over 128 values):
    splitting one over two threads saves nothing and costs a wake-up per parallel region
    (:func:`~ssmforecast.math._threads.one_intra_op_thread`), as scikit-learn's KMeans limits its
    BLAS threads.
    """
    with one_intra_op_thread(u.shape[0] <= SERIAL_STEP_BATCH):
        return step(u, state, dt)


def autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type``; always True on torch < 2.4, which cannot say per
    device (a caller then enters its ``autocast(enabled=False)`` region anyway)."""
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4: no device argument
        return True
