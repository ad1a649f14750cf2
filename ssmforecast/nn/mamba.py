"""Mamba: the selective state space layer (Gu & Dao 2023, "Mamba: linear-time sequence modeling with
selective state spaces", §3.4 and Fig. 3), with irregular time steps.

Data flow of :class:`MambaLayer` (E = ``expand``, H_in = d_inner = E · d_model, N = d_state,
R = dt_rank, K = d_conv)::

    u (batch, L, d_model)
    ├─ in_proj ─────────────────────────────────────────── (batch, L, 2 H_in) → x, z (batch, L, H_in)
    │  x ─ causal depthwise conv1d (kernel K) ─ SiLU ─────── x (batch, L, H_in)
    │  x ─ x_proj ──────────────────────────────────────── δ (batch, L, R), B, C (batch, L, N)
    │  δ ─ dt_proj ─ softplus ─ · dt ───────────────────── Δ (batch, L, H_in)
    │  Ā = exp(Δ A), B̄ u = Δ B u   (A = −exp(A_log), (H_in, N))
    │  selective scan x_k = Ā_k ⊙ x_{k−1} + B̄_k u_k,  y_k = C_k · x_k + D u_k ── y (batch, L, H_in)
    │  z ─ SiLU ──────────────────────────────────────────── gate (batch, L, H_in)
    └─ y · gate ─ out_proj ──────────────────────────────── (batch, L, d_model)

B, C and Δ are functions of the input: this is the *selection mechanism* (§3.2, Algorithm 2) that
lets the layer ignore or remember a token depending on its content, which a linear time-invariant
SSM (S4, S4D) cannot do.

Time steps. ``dt`` (batch, L) is the time since the previous observation in the model's unit
(1.0 for a regular series); the step of the SSM becomes Δ_k = dt_k · softplus(dt_proj(δ_k)), so an
observation after a long gap decays the state as exp(dt_k · softplus(·) · A) — the continuous-time
reading of Mamba's ZOH discretization of A. ``dt=None`` means all ones and gives exactly the same
output as ``dt = ones``.

Names. ``dt`` is the observation interval given by the caller; ``delta`` is the SSM step Δ (called
``dt`` in Mamba's code), to keep the two apart. ``batch`` is never abbreviated to B.

Two views with the same math: :meth:`MambaLayer.forward` runs the whole sequence through
:func:`ssmforecast.math.scan.selective_scan` (blocked scan with a hand-written backward); :meth:`MambaLayer.step` advances one
observation at constant cost from ``(conv_state, ssm_state)``, the conv from a rolling buffer of the
last K − 1 inputs. Running ``step`` from :meth:`MambaLayer.allocate_state` over a sequence equals
``forward``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..math import _fused
from ..math.scan import METHODS, selective_scan, selective_scan_seq, ssm_scan
from ._base import (
    SequenceLayer,
    autocast_enabled,
    check_sequence_input,
    check_step_input,
    register_ssm_param,
    serial_step,
)

__all__ = ["MambaLayer"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _check_positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def _check_positive_float(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _scan_dtype(dtype: torch.dtype) -> torch.dtype:
    """The scan never runs in half precision (float16/bfloat16 under autocast): float32 then."""
    return torch.float32 if dtype in _LOW_PRECISION else dtype


class MambaLayer(SequenceLayer):
    """Selective SSM layer of Mamba (Gu & Dao 2023, Fig. 3) with optional irregular time steps.

    Parameters
    ----------
    d_model : int
        Number of channels H of the input and output.
    d_state : int, default 16
        State size N per inner channel.
    d_conv : int, default 4
        Kernel size K of the causal depthwise convolution.
    expand : int, default 2
        Expansion factor E; the inner width is ``d_inner = expand * d_model``.
    dt_rank : int or "auto", default "auto"
        Rank R of the Δ projection; "auto" is ``ceil(d_model / 16)``.
    dt_min, dt_max : float, default 1e-3, 1e-1
        Range of the initial Δ = softplus(dt_proj bias), sampled log-uniformly per inner channel.
    dt_init_floor : float, default 1e-4
        Lower bound of the initial Δ.
    bias : bool, default False
        Bias in ``in_proj`` and ``out_proj``.
    conv_bias : bool, default True
        Bias in the depthwise convolution.
    scan_chunk_size : int, default 16
        Chunk length T >= 2 of the chunked scan.
    scan_method : {"auto", "chunked", "sequential"}, default "auto"
        "auto": :func:`~ssmforecast.math.scan.selective_scan`, blocked with a hand-written
        backward (memory O(L), not O(L · N · d_inner); the fast path: on the CPU its fused C++
        scan where a compiler is found, else its block loop); "chunked":
        :func:`~ssmforecast.math.scan.ssm_scan` on the materialised Ā, B̄u under autograd;
        "sequential": :func:`~ssmforecast.math.scan.selective_scan_seq`, the plain loop under
        autograd (reference). All three give the same values.

    Attributes
    ----------
    d_model, d_inner, d_state, d_conv, dt_rank : int
        Sizes H, E·H, N, K, R.
    in_proj : nn.Linear
        d_model → 2·d_inner (x and the gate z).
    conv1d : nn.Conv1d
        Depthwise, kernel K, left padding K − 1 (causal after truncation to L).
    x_proj : nn.Linear
        d_inner → R + 2N (δ, B, C), no bias.
    dt_proj : nn.Linear
        R → d_inner, Mamba's Δ initialization.
    A_log : nn.Parameter of shape (d_inner, N)
        A = −exp(A_log), initialized to S4D-Real A_n = −(n + 1); registered with
        :func:`register_ssm_param` (no weight decay).
    D : nn.Parameter of shape (d_inner,)
        Skip connection, initialized to ones; no weight decay.
    out_proj : nn.Linear
        d_inner → d_model.

    Raises
    ------
    ValueError
        If an argument is out of range (the message names it).
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | str = "auto",
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        dt_init_floor: float = 1e-4,
        bias: bool = False,
        conv_bias: bool = True,
        scan_chunk_size: int = 16,
        scan_method: str = "auto",
    ) -> None:
        super().__init__()
        self.d_model = _check_positive_int("d_model", d_model)
        self.d_state = _check_positive_int("d_state", d_state)
        self.d_conv = _check_positive_int("d_conv", d_conv)
        self.expand = _check_positive_int("expand", expand)
        if dt_rank == "auto":
            dt_rank = math.ceil(d_model / 16)
        elif isinstance(dt_rank, str):
            raise ValueError(f"dt_rank must be a positive int or 'auto', got {dt_rank!r}")
        self.dt_rank = _check_positive_int("dt_rank", dt_rank)
        dt_min = _check_positive_float("dt_min", dt_min)
        dt_max = _check_positive_float("dt_max", dt_max)
        if dt_min > dt_max:
            raise ValueError(f"dt_min must be <= dt_max, got dt_min={dt_min!r} > dt_max={dt_max!r}")
        dt_init_floor = _check_positive_float("dt_init_floor", dt_init_floor)
        for name, flag in (("bias", bias), ("conv_bias", conv_bias)):
            if not isinstance(flag, bool):
                raise ValueError(f"{name} must be a bool, got {flag!r}")
        self.scan_chunk_size = _check_positive_int("scan_chunk_size", scan_chunk_size, minimum=2)
        if scan_method not in METHODS:
            raise ValueError(f"unknown scan_method {scan_method!r}; valid choices are {', '.join(map(repr, METHODS))}")
        self.scan_method = scan_method
        self.d_inner = self.expand * self.d_model
        H_in, N, R = self.d_inner, self.d_state, self.dt_rank

        self.in_proj = nn.Linear(self.d_model, 2 * H_in, bias=bias)
        self.conv1d = nn.Conv1d(
            H_in, H_in, kernel_size=self.d_conv, groups=H_in, padding=self.d_conv - 1, bias=conv_bias
        )  # weight (H_in, 1, K)
        self.x_proj = nn.Linear(H_in, R + 2 * N, bias=False)
        self.dt_proj = nn.Linear(R, H_in, bias=True)
        self._init_dt_proj(dt_min, dt_max, dt_init_floor)
        # S4D-Real: A_n = −(n + 1), the same for every inner channel
        A = torch.arange(1, N + 1, dtype=torch.float32).repeat(H_in, 1)  # (H_in, N)
        register_ssm_param(self, "A_log", torch.log(A))  # (H_in, N)
        register_ssm_param(self, "D", torch.ones(H_in))  # (H_in,)
        self.out_proj = nn.Linear(H_in, self.d_model, bias=bias)

    # Mamba's Δ initialization (Gu & Dao 2023 §3.6; the reference mamba_simple.py):
    # Δ₀ ~ LogUniform[dt_min, dt_max], floored; bias = softplus⁻¹(Δ₀) = Δ₀ + log(1 − exp(−Δ₀))
    @torch.no_grad()
    def _init_dt_proj(self, dt_min: float, dt_max: float, dt_init_floor: float) -> None:
        """Δ₀ ~ LogUniform[dt_min, dt_max] ∨ floor; dt_proj.weight ~ U(±R^−½), bias = softplus⁻¹(Δ₀) (d_inner,).

        Writes to self: ``dt_proj.weight``, ``dt_proj.bias``.
        """
        std = self.dt_rank**-0.5
        nn.init.uniform_(self.dt_proj.weight, -std, std)  # (H_in, R)
        log_dt = torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)  # (H_in,)
        dt0 = torch.exp(log_dt).clamp(min=dt_init_floor)  # (H_in,)
        self.dt_proj.bias.copy_(dt0 + torch.log(-torch.expm1(-dt0)))  # (H_in,)

    # Selection (Gu & Dao 2023 Alg. 2): B = s_B(x), C = s_C(x), Δ = softplus(Parameter + s_Δ(x));
    # here Δ_k = dt_k · softplus(dt_proj(δ_k)) with the observation interval dt_k
    def _selection(
        self, x: torch.Tensor, dt: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (..., d_inner), dt (...) or None → Δ (..., d_inner), B (..., N), C (..., N)."""
        x_dbl = self.x_proj(x)  # (..., R + 2N)
        # (..., R), (..., N), (..., N)
        delta, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.softplus(self.dt_proj(delta))  # (..., H_in)
        if dt is not None:
            delta = delta * dt.to(delta.dtype).unsqueeze(-1)  # (..., H_in)
        return delta, B, C

    def forward(self, u: torch.Tensor, dt: torch.Tensor | None = None) -> torch.Tensor:
        """u (batch, L, d_model), dt (batch, L) or None → y (batch, L, d_model).

        Parameters
        ----------
        u : Tensor of shape (batch, L, d_model)
            Input sequence (not modified).
        dt : Tensor of shape (batch, L), optional
            Positive finite time since the previous observation; ``None`` means all ones.

        Returns
        -------
        y : Tensor of shape (batch, L, d_model)

        Raises
        ------
        ValueError
            If u or dt has the wrong shape, or dt is not finite and strictly positive.
        """
        check_sequence_input(u, dt, self.d_model)
        L = u.shape[1]
        x, z = self.in_proj(u).chunk(2, dim=-1)  # (batch, L, H_in) each
        # causal depthwise conv: left padding K − 1, keep the first L outputs
        x = self.conv1d(x.transpose(1, 2))[..., :L]  # (batch, H_in, L)
        x = F.silu(x).transpose(1, 2)  # (batch, L, H_in)
        delta, B, C = self._selection(x, dt)  # (batch, L, H_in), (batch, L, N), (batch, L, N)
        y = self._scan(x, delta, B, C)  # (batch, L, H_in)
        y = y * F.silu(z)  # (batch, L, H_in)
        return self.out_proj(y)  # (batch, L, d_model)

    # ZOH of A (Gu & Dao 2023 eq. 4) and Euler of B, as Mamba's implementation:
    # Ā_k = exp(Δ_k A), B̄_k u_k = Δ_k B_k u_k; then x_k = Ā_k ⊙ x_{k−1} + B̄_k u_k, y_k = Σ_n C_{k,n} x_{k,n} + D u_k (selective scan, Alg. 2)
    def _scan(self, x: torch.Tensor, delta: torch.Tensor, B: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
        """x, Δ (batch, L, d_inner), B, C (batch, L, N) → y (batch, L, d_inner), in float32 or wider."""
        dtype = _scan_dtype(x.dtype)
        with torch.autocast(device_type=x.device.type, enabled=False):
            A = -torch.exp(self.A_log.to(dtype))  # (H_in, N)
            u = x.to(dtype).transpose(1, 2)  # (batch, H_in, L)
            delta_t = delta.to(dtype).transpose(1, 2)  # (batch, H_in, L)
            B, C = B.to(dtype), C.to(dtype)  # (batch, L, N)
            D = self.D.to(dtype)
            if self.scan_method == "auto":  # blocked, hand-written backward: no (batch, H_in, L, N) tensor
                y, _ = selective_scan(u, delta_t, A, B, C, D)  # (batch, H_in, L)
            elif self.scan_method == "sequential":  # reference loop under autograd
                y, _ = selective_scan_seq(u, delta_t, A, B, C, D)  # (batch, H_in, L)
            else:
                dA = torch.exp(delta_t.unsqueeze(-1) * A.unsqueeze(1))  # (batch, H_in, L, N)
                dB = delta_t.unsqueeze(-1) * B.unsqueeze(1)  # (batch, H_in, L, N)
                y, _ = ssm_scan(u, dA, dB, C.unsqueeze(1), D, method="chunked", chunk_size=self.scan_chunk_size)
        return y.transpose(1, 2).to(x.dtype)  # (batch, L, H_in)

    def allocate_state(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """batch → (conv_state (batch, d_inner, d_conv − 1), ssm_state (batch, d_inner, N)), zeros.

        ``conv_state`` holds the last K − 1 conv inputs (oldest first); ``ssm_state`` is x_{k−1}.
        Both are on the parameters' device and dtype (the SSM state at least float32).
        """
        _check_positive_int("batch", batch)
        w = self.in_proj.weight
        conv_state = w.new_zeros(batch, self.d_inner, self.d_conv - 1)  # (batch, H_in, K − 1)
        ssm_state = torch.zeros(
            batch, self.d_inner, self.d_state, device=w.device, dtype=_scan_dtype(w.dtype)
        )  # (batch, H_in, N)
        return conv_state, ssm_state

    def _check_state(self, state, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Shape checks only (no values read), cheap enough for every step."""
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise ValueError("state must be the pair (conv_state, ssm_state) returned by allocate_state or step")
        conv_state, ssm_state = state
        if not (torch.is_tensor(conv_state) and torch.is_tensor(ssm_state)):
            raise ValueError("state must be the pair (conv_state, ssm_state) returned by allocate_state or step")
        expected = ((batch, self.d_inner, self.d_conv - 1), (batch, self.d_inner, self.d_state))
        if conv_state.shape != expected[0] or ssm_state.shape != expected[1]:
            for name, s, shape in zip(("conv_state", "ssm_state"), state, expected):
                if tuple(s.shape) != shape:
                    raise ValueError(f"{name} must have shape {shape}, got {tuple(s.shape)}")
        return conv_state, ssm_state

    # Recurrent view (Gu & Dao 2023 eq. 2a-2b with Ā_k = exp(Δ_k A), B̄_k = Δ_k B_k): one observation,
    # constant cost; the conv reads its rolling buffer of the last K − 1 inputs
    def step(
        self, u: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], dt: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """u (batch, d_model), (conv_state, ssm_state), dt (batch,) or None → y (batch, d_model), new state.

        Parameters
        ----------
        u : Tensor of shape (batch, d_model)
            One observation (not modified).
        state : tuple of Tensors
            ``(conv_state (batch, d_inner, d_conv − 1), ssm_state (batch, d_inner, N))`` from
            :meth:`allocate_state` or a previous ``step`` (not modified).
        dt : Tensor of shape (batch,), optional
            Positive finite time since the previous observation; ``None`` means ones.

        Returns
        -------
        y : Tensor of shape (batch, d_model)
        state : tuple of Tensors
            The new ``(conv_state, ssm_state)``.

        Raises
        ------
        ValueError
            If u, dt or the state has the wrong shape, or dt is not finite and strictly positive.
        """
        check_step_input(u, dt, self.d_model)
        return serial_step(self._step, u, state, dt)

    def _step_constants(self):
        """What a step reads, memoised per parameter version: A = −exp(A_log) (d_inner, N) and
        D (d_inner,) in the scan dtype; the conv's weight (d_inner, K) and bias (d_inner,) or None;
        the transposed weights Wᵀ and biases of in_proj, x_proj, dt_proj and out_proj. Wᵀ is a
        contiguous copy where it is memoised (grad disabled): a (1, 128) · (128, 512) product took
        12 µs on it, 16 µs on the view; with grad enabled nothing is kept, so views, not copies."""
        dtype = _scan_dtype(self.A_log.dtype)
        A = -torch.exp(self.A_log.to(dtype))  # (H_in, N)
        memoised = not torch.is_grad_enabled()
        modules = (self.in_proj, self.x_proj, self.dt_proj, self.out_proj)
        linear = tuple((m.weight.t().contiguous() if memoised else m.weight.t(), m.bias) for m in modules)
        return A, self.D.to(dtype), self.conv1d.weight[:, 0], self.conv1d.bias, linear  # (H_in, N), (H_in,), (H_in, K)

    def _step(
        self, u: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], dt: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``step`` after the checks of u and dt (the state is still checked): on the memoised
        constants, the fused C++ step where it applies (:func:`_fused_step_applies`), else ``_step_body``."""
        conv_state, ssm_state = self._check_state(state, u.shape[0])
        constants = self._cached("step", self._step_constants)
        if _fused_step_applies(u, conv_state, ssm_state):  # the whole layer in one C++ call
            plan = self._fused_plan(constants)
            if plan[0] == u.dtype:  # weights, A and D in the input's dtype
                return _fused.mamba_step(u, conv_state, ssm_state, None if dt is None else dt.to(u.dtype), plan)
        return _step_body(u, conv_state, ssm_state, dt, constants)

    def _fused_plan(self, constants) -> tuple:
        """The fused step's arguments for these (memoised) constants, kept beside them in the step memo.
        Writes to self: ``_step_cache["fused_step"] = (constants, plan)``."""
        cache = self.__dict__.setdefault("_step_cache", {})
        entry = cache.get("fused_step")
        if entry is None or entry[0] is not constants:
            entry = cache["fused_step"] = (constants, _fused.mamba_step_plan(constants))
        return entry[1]

    # -- the compiled step (Backbone.compile_step): the same _step_body, in one graph -------------

    def _real_step_supported(self) -> bool:
        return True

    def _real_inputs(self):
        """What ``_real_step`` reads besides u and the state (all real tensors)."""
        return self._cached("step", self._step_constants)

    @staticmethod
    def _real_step(u, state, inputs):
        """``_step`` without checks or autocast, for torch.compile: u (batch, d_model) → (y, state)."""
        y, (conv_state, ssm_state) = _step_body(u, *state, None, inputs, autocast=False)
        return y, (conv_state.contiguous(), ssm_state)  # as _real_state gives it

    def _real_state(self, state):
        """(conv_state, ssm_state), contiguous (steady strides for the compiled graph)."""
        return tuple(s.contiguous() for s in state)

    def _from_real_state(self, state):
        return state


# The recurrent view of forward, one observation: in_proj → conv over the last K inputs → SiLU →
# selection (Alg. 2) → SSM step (_ssm_step) → gate SiLU(z) → out_proj
def _step_body(u, conv_state, ssm_state, dt, constants, autocast: bool = True):
    """u (batch, d_model), conv_state (batch, d_inner, K − 1), ssm_state (batch, d_inner, N), dt
    (batch,) or None, the constants of ``MambaLayer._step_constants`` → (y (batch, d_model), state)."""
    A, D, conv_w, conv_b, (in_proj, x_proj, dt_proj, out_proj) = constants
    (H_in, N), R = A.shape, dt_proj[0].shape[0]
    xz = _linear(u, *in_proj)  # (batch, 2 H_in)
    x, z = xz[:, :H_in], xz[:, H_in:]  # (batch, H_in) each
    if conv_state.dtype != x.dtype:
        conv_state = conv_state.to(x.dtype)
    window = torch.cat([conv_state, x[..., None]], dim=-1)  # (batch, H_in, K)
    x = (window * conv_w).sum(dim=-1)  # (batch, H_in)
    x = F.silu(x if conv_b is None else x + conv_b)  # (batch, H_in)
    # selection, as MambaLayer._selection: (δ, B, C) = x_proj(x), Δ = softplus(dt_proj(δ)) · dt
    x_dbl = _linear(x, *x_proj)  # (batch, R + 2N)
    delta = F.softplus(_linear(x_dbl[:, :R], *dt_proj))  # (batch, H_in)
    if dt is not None:
        delta = delta * dt.to(delta.dtype)[:, None]  # (batch, H_in)
    B, C = x_dbl[:, None, R : R + N], x_dbl[:, None, R + N :]  # (batch, 1, N) each
    if autocast and autocast_enabled(x.device.type):  # the SSM stays in float32 or wider
        with torch.autocast(device_type=x.device.type, enabled=False):
            y, h = _ssm_step(x, delta, B, C, ssm_state, A, D)
    else:
        y, h = _ssm_step(x, delta, B, C, ssm_state, A, D)
    y = y * F.silu(z)  # (batch, H_in)
    new_state = (window[..., 1:], h if h.dtype == ssm_state.dtype else h.to(ssm_state.dtype))
    return _linear(y, *out_proj), new_state  # (batch, d_model)


def _fused_step_applies(u, conv_state, ssm_state) -> bool:
    """The fused C++ step runs inference on the CPU in one dtype (float32 or float64; the weights'
    are checked by the caller): no autograd, no autocast, and the fused library available there
    (built, and not switched off by ``SSMFORECAST_FUSED_SCAN=0``)."""
    return (
        not torch.is_grad_enabled()
        and u.dtype == conv_state.dtype == ssm_state.dtype
        and not autocast_enabled("cpu")
        and _fused.available(u.device, u.dtype)
    )


# y = x Wᵀ + b, as nn.Linear, with Wᵀ taken once per parameter version
def _linear(x: torch.Tensor, weight_t: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """F.linear with a pre-transposed weight: x (batch, in) → x Wᵀ + b (batch, out)."""
    return torch.mm(x, weight_t) if bias is None else torch.addmm(bias, x, weight_t)


# x_k = exp(Δ_k A) ⊙ x_{k−1} + Δ_k B_k u_k,  y_k = C_k · x_k + D u_k  (Gu & Dao 2023 eq. 2a-2b, 4)
def _ssm_step(x, delta, B, C, ssm_state, A, D):
    """x, Δ (batch, d_inner), B, C (batch, 1, N), state (batch, d_inner, N), A (d_inner, N) and D
    (d_inner,) in the scan dtype → y (batch, d_inner) in x's dtype, h (batch, d_inner, N) in A's."""
    dtype, x_dtype = A.dtype, x.dtype
    # half precision under autocast (x_proj's B and C, even where the conv gave a float32 x): the SSM runs in float32
    x, delta, B, C, ssm_state = (t if t.dtype == dtype else t.to(dtype) for t in (x, delta, B, C, ssm_state))
    delta3 = delta[..., None]  # (batch, H_in, 1)
    dBu = (delta3 * x[..., None]) * B  # (batch, H_in, N)
    h = torch.addcmul(dBu, torch.exp(delta3 * A), ssm_state)  # (batch, H_in, N)
    y = torch.addcmul(torch.bmm(h, C.transpose(1, 2))[..., 0], D, x)  # (batch, H_in)    one bmm, not a product and a sum
    return (y if x_dtype == dtype else y.to(x_dtype)), h
