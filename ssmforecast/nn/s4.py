"""S4 and S4D layers: H independent SSMs of state size N over the channels, with a parallel
(convolutional) view for training and a recurrent ``step`` for streaming.

Data flow of both layers, (batch, L, H) in and out::

    u ──► SSM per channel: y = K̄ * u + D u ──► GELU ──► Linear(H, 2H) ──► GLU ──► out
          (kernel from the parameters, FFT convolution; or, with an irregular dt, the
           time-varying recurrence of the math core)

The SSM parameters are stored as S4 stores them: N/2 complex modes, each standing for a conjugate
pair (so the channel's state is real of size N), Re Λ kept negative as −exp(·), and a learned log Δ
per channel. The kernel is a function of the parameters only (no input), as in S4's
``SSMKernel``; :meth:`SSMConvLayer.kernel` exposes it. With grad disabled, ``forward`` reuses the
kernel of the same (L, step) until a parameter changes.

Time steps: ``dt`` (batch, L) is the time since the previous observation in the model's unit. It
scales the learned step, Δ_k = dt_k · Δ. With ``dt`` absent or the same everywhere, Δ is constant
and the convolution applies; otherwise S4D runs the diagonal scan of the math core and S4 its
per-step Woodbury recurrence.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..math.discretize import METHODS, discretize_diag, dplr_gbt, dplr_gbt_step, zoh
from ..math.conv import fft_conv
from ..math.hippo import DIAGONAL_INITS, diagonal_init, dplr_legs
from ..math.kernels import dplr_kernel, krylov_kernel, vandermonde_kernel
from ..math.scan import ssm_scan
from ._base import SequenceLayer, check_sequence_input, check_step_input, register_ssm_param


def _conj_expand(x: torch.Tensor) -> torch.Tensor:
    """(..., n) modes → (..., 2n): the modes followed by their conjugates (the full real system)."""
    return torch.cat([x, x.conj()], dim=-1)


def _constant_step(dt: torch.Tensor | None) -> float | None:
    """dt's value if it is the same everywhere (1.0 for None), else None."""
    if dt is None:
        return 1.0
    first = dt.reshape(-1)[0]
    return float(first) if bool((dt == first).all()) else None


class SSMConvLayer(SequenceLayer):
    """Shared body of :class:`S4DLayer` and :class:`S4Layer`: parameters Δ, C, D, the output
    projection, input checks, autocast handling. Subclasses supply ``kernel``, ``_scan`` and the
    recurrent ``_step_ssm``.

    Parameters
    ----------
    d_model : int
        Channels (H).
    d_state : int
        Real state size per channel (N), even: N/2 complex modes, each a conjugate pair.
    discretization : str
        "zoh" or "bilinear" (also "euler", "backward_euler").
    dt_min, dt_max : float
        The learned step Δ of each channel starts log-uniform in [dt_min, dt_max].
    lr : float or None
        Learning-rate hint for the SSM parameters (Λ, Δ, B, P); they never get weight decay.
    dropout : float
        Dropout after the activation.
    """

    def __init__(self, d_model, d_state, discretization, dt_min, dt_max, lr, dropout):
        super().__init__()
        if not isinstance(d_model, int) or d_model < 1:
            raise ValueError(f"d_model must be a positive int, got {d_model!r}")
        if not isinstance(d_state, int) or d_state < 2 or d_state % 2:
            raise ValueError(f"d_state must be an even int >= 2 (N/2 conjugate pairs), got {d_state!r}")
        if discretization not in METHODS:
            raise ValueError(f"unknown discretization {discretization!r}; valid choices are {', '.join(map(repr, METHODS))}")
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"need 0 < dt_min <= dt_max, got dt_min={dt_min!r}, dt_max={dt_max!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
        self.d_model, self.d_state, self.discretization = d_model, d_state, discretization
        H, n = d_model, d_state // 2
        # log Δ ~ U[log dt_min, log dt_max] per channel (S4 §C.1)
        log_dt = torch.rand(H) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)  # (H,)
        register_ssm_param(self, "log_dt", log_dt, lr=lr)
        # C ~ N(0, ½) complex, stored as (re, im) pairs
        self.C = nn.Parameter(torch.view_as_real(torch.randn(H, n, dtype=torch.cfloat) * 0.5**0.5))  # (H, n, 2)
        self.D = nn.Parameter(torch.randn(H))  # (H,)
        self.activation = nn.GELU()
        self.dropout = nn.Dropout(dropout)
        self.output_linear = nn.Linear(H, 2 * H)  # followed by GLU

    # -- parameters as complex tensors ---------------------------------------------------------

    def _step_size(self) -> torch.Tensor:
        return torch.exp(self.log_dt)  # (H,)

    def _C(self) -> torch.Tensor:
        return torch.view_as_complex(self.C)  # (H, n)

    def _cached(self, name: str, build, args: tuple = ()):
        """``build()`` memoised per ``name`` (one entry each) while grad is disabled, until ``args``
        or a parameter or buffer changes.

        A parameter changes when it is updated in place (an optimizer step or ``load_state_dict``
        bumps ``Tensor._version``), replaced or moved (``.to``, ``.data = …``: storage, dtype or
        device differ). With grad enabled ``build()`` is called and nothing is stored, so no
        autograd graph is kept. The recurrent view reuses the discretized matrices of a constant
        step, so a streaming ``step`` costs a few small products instead of a discretization; an
        inference ``forward`` reuses the kernel K̄ of its (L, step).

        Writes to self: ``_step_cache[name] = (key, value)``.
        """
        if torch.is_grad_enabled():  # never hold on to an autograd graph
            return build()
        tensors = [*self.parameters(), *self.buffers()]
        key = (args, tuple((p.data_ptr(), p._version, p.dtype, p.device, p.shape) for p in tensors))
        cache = self.__dict__.setdefault("_step_cache", {})
        if name not in cache or cache[name][0] != key:
            cache[name] = (key, build())
        return cache[name][1]

    # -- views -----------------------------------------------------------------------------------

    def kernel(self, L: int, scale: float = 1.0) -> torch.Tensor:  # pragma: no cover - abstract
        """K̄ (H, L) of the SSM with step Δ·scale."""
        raise NotImplementedError

    def _output(self, y: torch.Tensor) -> torch.Tensor:
        """GELU → dropout → Linear(H, 2H) → GLU, position-wise; (..., H) → (..., H)."""
        return F.glu(self.output_linear(self.dropout(self.activation(y))), dim=-1)

    def forward(self, u: torch.Tensor, dt: torch.Tensor | None = None) -> torch.Tensor:
        """u (batch, L, H), dt (batch, L) or None → y (batch, L, H).

        With grad disabled and a regular step, K̄ is memoised per (L, step) until a parameter
        changes (see ``_cached``). Writes to self: ``_step_cache["kernel"]`` (grad disabled only).
        """
        check_sequence_input(u, dt, self.d_model)
        dtype = u.dtype
        with torch.autocast(device_type=u.device.type, enabled=False):
            x = u.transpose(1, 2)  # (batch, H, L)
            if x.dtype in (torch.float16, torch.bfloat16):
                x = x.float()  # kernels, FFTs and scans accumulate in float32
            scale = _constant_step(dt)
            if scale is not None:  # K̄ depends on the parameters only: reused at inference
                L = x.shape[-1]
                K = self._cached("kernel", lambda: self.kernel(L, scale), (L, scale))  # (H, L)
                y = fft_conv(x, K.to(x.dtype), self.D.to(x.dtype))  # (batch, H, L)
            else:
                y = self._scan(x, dt.to(x.dtype))  # (batch, H, L)
        return self._output(y.transpose(1, 2).to(dtype))  # (batch, L, H)

    def step(self, u: torch.Tensor, state: torch.Tensor, dt: torch.Tensor | None = None):
        """u (batch, H), state (batch, H, ·), dt (batch,) or None → (y (batch, H), state)."""
        check_step_input(u, dt, self.d_model)
        y, state = self._step_ssm(u, state, dt)
        return self._output(y), state


class S4DLayer(SSMConvLayer):
    """S4D: diagonal SSM per channel (Gu et al. 2022, "On the Parameterization and Initialization of
    Diagonal State Space Models"); kernel by Vandermonde product, ZOH by default.

    Parameters
    ----------
    d_model : int
        Channels (H).
    d_state : int, default 64
        Real state size per channel (N), even.
    init : {"lin", "inv", "legs", "real"}, default "lin"
        Diagonal initialisation of Λ (S4D-Lin, S4D-Inv, S4D-LegS, S4D-Real).
    discretization : {"zoh", "bilinear", "euler", "backward_euler"}, default "zoh"
    dt_min, dt_max : float, default 1e-3, 1e-1
    lr : float or None
        Learning-rate hint for Λ, Δ and B.
    dropout : float, default 0.0
    """

    def __init__(self, d_model, d_state=64, *, init="lin", discretization="zoh", dt_min=1e-3, dt_max=1e-1, lr=None, dropout=0.0):
        super().__init__(d_model, d_state, discretization, dt_min, dt_max, lr, dropout)
        if init not in DIAGONAL_INITS:
            raise ValueError(f"unknown init {init!r}; valid choices are {', '.join(map(repr, DIAGONAL_INITS))}")
        self.init = init
        H, n = d_model, d_state // 2
        Lambda, B = diagonal_init(init, n, dtype=torch.float32)  # (n,), (n,)
        Lambda, B = Lambda.to(torch.cfloat), B.to(torch.cfloat)
        # Re Λ = −exp(log_neg_re) stays negative whatever the optimizer does
        register_ssm_param(self, "log_neg_re", torch.log(-Lambda.real).repeat(H, 1), lr=lr)  # (H, n)
        register_ssm_param(self, "im", Lambda.imag.repeat(H, 1), lr=lr)  # (H, n)
        register_ssm_param(self, "B", torch.view_as_real(B.repeat(H, 1)).contiguous(), lr=lr)  # (H, n, 2)

    def _Lambda(self) -> torch.Tensor:
        return torch.complex(-torch.exp(self.log_neg_re), self.im)  # (H, n)

    def kernel(self, L: int, scale: float = 1.0) -> torch.Tensor:
        """K̄_l = 2 Re Σ_n C_n B̄_n Ā_n^l with Δ = scale · exp(log_dt); → (H, L)."""
        dA, dB = discretize_diag(self._Lambda(), torch.view_as_complex(self.B), scale * self._step_size(), self.discretization)
        return vandermonde_kernel(dA, dB, self._C(), L, conj_pairs=True)  # (H, L)

    def _scan(self, x: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
        """Irregular steps: x (batch, H, L), dt (batch, L) → y (batch, H, L) by the diagonal scan."""
        delta = dt[:, None, :] * self._step_size().to(dt.dtype)[None, :, None]  # (batch, H, L)
        Lambda = self._Lambda()[None, :, None, :]  # (1, H, 1, n)
        B = torch.view_as_complex(self.B)[None, :, None, :]  # (1, H, 1, n)
        dA, dB = discretize_diag(Lambda, B, delta, self.discretization)  # (batch, H, L, n)
        y, _ = ssm_scan(x, dA, dB, self._C()[None, :, None, :].expand_as(dA), self.D.to(x.dtype), conj_pairs=True)
        return y  # (batch, H, L)

    def allocate_state(self, batch: int) -> torch.Tensor:
        """Zero state (batch, H, N/2), complex."""
        return torch.zeros(batch, self.d_model, self.d_state // 2, dtype=self._Lambda().dtype, device=self.log_dt.device)

    def _discretized(self, delta: torch.Tensor):
        """Ā, B̄ (…, H, n) for steps delta (…, H)."""
        return discretize_diag(self._Lambda(), torch.view_as_complex(self.B), delta, self.discretization)

    def _step_ssm(self, u, state, dt):
        if dt is None:  # constant step: Ā, B̄ computed once until the parameters change
            dA, dB = self._cached("dAB", lambda: self._discretized(self._step_size()))  # (H, n)
        else:
            dA, dB = self._discretized(self._step_size()[None] * dt[:, None].to(self.log_dt.dtype))  # (batch, H, n)
        state = dA * state + dB * u[..., None]  # (batch, H, n)
        y = 2 * (self._C() * state).sum(-1).real + self.D * u  # (batch, H)
        return y, state


class S4Layer(SSMConvLayer):
    """S4: DPLR SSM per channel, A = Λ − P P* initialised from HiPPO-LegS (Gu et al. 2022, "Efficiently
    Modeling Long Sequences with Structured State Spaces"); kernel by Cauchy + Woodbury (bilinear).

    With ``discretization="zoh"`` the kernel comes from the dense matrix exponential and Krylov
    doubling (O(N² L) per channel instead of O(N L)): exact for piecewise-constant inputs, slower.

    Parameters
    ----------
    d_model : int
        Channels (H).
    d_state : int, default 64
        Real state size per channel (N), even.
    discretization : {"bilinear", "zoh", "euler", "backward_euler"}, default "bilinear"
    dt_min, dt_max : float, default 1e-3, 1e-1
    lr : float or None
        Learning-rate hint for Λ, Δ, P and B.
    dropout : float, default 0.0
    """

    def __init__(self, d_model, d_state=64, *, discretization="bilinear", dt_min=1e-3, dt_max=1e-1, lr=None, dropout=0.0):
        super().__init__(d_model, d_state, discretization, dt_min, dt_max, lr, dropout)
        H, n = d_model, d_state // 2
        Lambda, P, B, _ = dplr_legs(d_state)  # float64: (N,), (1, N), (N,)
        Lambda, P, B = (x[..., :n].to(torch.cfloat) for x in (Lambda, P, B))  # one mode of each pair
        register_ssm_param(self, "log_neg_re", torch.log(-Lambda.real).repeat(H, 1), lr=lr)  # (H, n)
        register_ssm_param(self, "im", Lambda.imag.repeat(H, 1), lr=lr)  # (H, n)
        register_ssm_param(self, "P", torch.view_as_real(P.repeat(H, 1, 1)).contiguous(), lr=lr)  # (H, 1, n, 2)
        register_ssm_param(self, "B", torch.view_as_real(B.repeat(H, 1)).contiguous(), lr=lr)  # (H, n, 2)

    def _params(self):
        """Λ (H, n), P (H, 1, n), B (H, n), C (H, n), all complex."""
        Lambda = torch.complex(-torch.exp(self.log_neg_re), self.im)
        return Lambda, torch.view_as_complex(self.P), torch.view_as_complex(self.B), self._C()

    def _dense_full(self):
        """The full real system in the mode basis: A (H, N, N) = diag(Λ) − Pᵀ P̄, B (H, N), C (H, N)."""
        Lambda, P, B, C = self._params()
        Pf = _conj_expand(P)  # (H, 1, N)
        A = torch.diag_embed(_conj_expand(Lambda)) - Pf.transpose(-1, -2) @ Pf.conj()  # (H, N, N)
        return A, _conj_expand(B), _conj_expand(C)

    def kernel(self, L: int, scale: float = 1.0) -> torch.Tensor:
        """K̄ (H, L) with Δ = scale · exp(log_dt): Cauchy + Woodbury under GBT, Krylov under ZOH."""
        step = scale * self._step_size()  # (H,)
        if self.discretization == "zoh":
            A, B, C = self._dense_full()
            dA, dB = zoh(A, B, step)  # (H, N, N), (H, N)
            return krylov_kernel(dA, dB, C, L).real  # (H, L)
        Lambda, P, B, C = self._params()
        return dplr_kernel(Lambda, P, P, B, C, step, L, method=self.discretization, conj_pairs=True)  # (H, L)

    def allocate_state(self, batch: int) -> torch.Tensor:
        """Zero state (batch, H, N) in the full mode basis (the low-rank term couples a mode and its conjugate)."""
        return torch.zeros(batch, self.d_model, self.d_state, dtype=self._params()[0].dtype, device=self.log_dt.device)

    def _full_system(self):
        """Λ, P, B, C of all N modes (each pair expanded), memoised: (H, N), (H, 1, N), (H, N), (H, N)."""
        return self._cached("full", lambda: tuple(_conj_expand(x) for x in self._params()))

    def _dense_step(self):
        """Ā (H, N, N), B̄ (H, N) of the constant step Δ = exp(log_dt), memoised."""

        def build():
            step = self._step_size()  # (H,)
            if self.discretization == "zoh":
                A, B, _ = self._dense_full()
                return zoh(A, B, step)
            Lf, Pf, Bf, _ = self._full_system()
            return dplr_gbt(Lf, Pf, Pf, Bf, step, METHODS[self.discretization])

        return self._cached("dense", build)

    def _step_ssm(self, u, state, dt, system=None, dense=None):
        """One step; ``system`` (the expanded Λ, P, B, C) and ``dense`` (A, B of the full system,
        ZOH only) may be passed in by a caller that loops, so they are built once per sequence."""
        Lf, Pf, Bf, Cf = self._full_system() if system is None else system
        if dt is None:  # constant step: one dense (N × N) product per channel
            dA, dB = self._dense_step()  # (H, N, N), (H, N)
            state = torch.einsum("hij,bhj->bhi", dA, state) + dB * u[..., None]  # (batch, H, N); einsum: 4x matmul's speed here
        else:
            delta = self._step_size()[None] * dt[:, None].to(self.log_dt.dtype)  # (batch, H)
            if self.discretization == "zoh":
                A, B = self._dense_full()[:2] if dense is None else dense
                dA, dB = zoh(A, B, delta)  # (batch, H, N, N), (batch, H, N)
                state = (dA @ state[..., None])[..., 0] + dB * u[..., None]  # (batch, H, N)
            else:
                # Woodbury step: (I − αΔA)⁻¹[(I + (1−α)ΔA)x + ΔBu], O(N) per channel
                state = dplr_gbt_step(state, u, Lf, Pf, Pf, Bf, delta, METHODS[self.discretization])  # (batch, H, N)
        y = (Cf * state).sum(-1).real + self.D * u  # (batch, H)
        return y, state

    def _scan(self, x: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
        """Irregular steps: the recurrent view step by step (S4's per-step Woodbury form); → (batch, H, L)."""
        state = self.allocate_state(x.shape[0]).to(torch.promote_types(x.dtype, torch.complex64))
        # the expanded system is built once per sequence, not at each of the L steps (under autograd
        # the step cache is off)
        system = tuple(_conj_expand(p) for p in self._params())
        dense = self._dense_full()[:2] if self.discretization == "zoh" else None
        ys = []
        for k in range(x.shape[-1]):
            y, state = self._step_ssm(x[..., k], state, dt[:, k], system, dense)  # (batch, H)
            ys.append(y)
        return torch.stack(ys, dim=-1)  # (batch, H, L)
