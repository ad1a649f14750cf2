"""S4 and S4D layers: H independent SSMs of state size N over the channels, with a parallel
(convolutional) view for training and a recurrent ``step`` for streaming.

Data flow of both layers, (batch, L, H) in and out::

    u ──► SSM per channel: y = K̄ * u + D u ──► GELU ──► Linear(H, 2H) ──► GLU ──► out
          (kernel from the parameters, FFT convolution; or, with an irregular dt, the
           time-varying recurrence of the math core)

The SSM parameters are stored as S4 stores them: N/2 complex modes, each standing for a conjugate
pair (so the channel's state is real of size N), Re Λ kept negative as −exp(·), and a learned log Δ
per channel; S4 under a GBT discretization learns C̃ = C(I − Ā^L₀) in place of C, as S4's reference
code does (see :class:`S4Layer`). The kernel is a function of the parameters only (no input), as in S4's
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
from torch.utils.checkpoint import checkpoint

from ..math.discretize import METHODS, discretize_diag, dplr_gbt, dplr_gbt_step, foh_diag, zoh
from ..math.conv import fft_conv
from ..math.hippo import DIAGONAL_INITS, diagonal_init, dplr_legs
from ..math.kernels import dplr_kernel, krylov_kernel, vandermonde_kernel
from ..math import _fused
from ..math.scan import diagonal_scan, ssm_scan
from ._base import SequenceLayer, check_sequence_input, check_step_input, register_ssm_param, serial_step


#: S4D's irregular-step scan runs in time blocks whose discretized (batch, H, T, n) tensors (n = N/2
#: complex modes) hold at most this many values, at least IRREGULAR_MIN_BLOCK steps each.
IRREGULAR_BLOCK_NUMEL = 2**20
IRREGULAR_MIN_BLOCK = 16


def _conj_expand(x: torch.Tensor) -> torch.Tensor:
    """(..., n) modes → (..., 2n): the modes followed by their conjugates (the full real system)."""
    return torch.cat([x, x.conj()], dim=-1)


# GELU(y) = y Φ(y) = ½ y (1 + erf(y / √2))  (Hendrycks & Gimpel 2016), as nn.GELU() computes it
def _gelu_erf(y: torch.Tensor) -> torch.Tensor:
    """(..., H) → (..., H) in four elementwise ops: on a step's few values this is several times
    cheaper than ``F.gelu``, which on the CPU sets up a oneDNN primitive per call."""
    sqrt1_2, half = _gelu_constants(y.dtype, y.device)
    return torch.addcmul(y, y, torch.erf(y * sqrt1_2)).mul_(half)


_GELU_CONSTANTS: dict = {}


def _gelu_constants(dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """1/√2 and ½ as 0-dim tensors of ``dtype`` on ``device``, made once: a Python float operand
    costs a conversion at every op."""
    key = (dtype, device)
    constants = _GELU_CONSTANTS.get(key)
    if constants is None:
        with torch.inference_mode(False):  # usable with grad enabled too
            constants = tuple(torch.tensor(c, dtype=dtype, device=device) for c in (0.5**0.5, 0.5))
        _GELU_CONSTANTS[key] = constants
    return constants


# Re(C · x) = Σ (Re C Re x − Im C Im x): a real dot product with [Re C, −Im C]
def _re_dot(C: torch.Tensor) -> torch.Tensor:
    """C (..., n) complex → [Re C, −Im C] (..., n, 2) real, so that Re(C · x) = Σ [Re C, −Im C] ⊙ [Re x, Im x]."""
    return torch.view_as_real(C.conj().resolve_conj())


# B̄ u_k for a real input: [Re B̄, Im B̄] u_k read as complex
def _input_term(dB: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """B̄ u with B̄ (…, H, n, 2) as real pairs, u (batch, H) real → (batch, H, n) complex, with no
    complex copy of u (a complex × real product would make one)."""
    return torch.view_as_complex(dB * u.reshape(*u.shape, 1, 1))  # (batch, H, n)


# The constant step of both layers in real pairs (re, im), on one mode of each conjugate pair:
# x_k = d ⊙ x_{k−1} − Σ_i U_i (W_i x_{k−1}) + B̄ u_k,  y_k = Re(2C · x_k) + D u_k  (no U, W for S4D)
def _pair_step(u, x, d, dB, C2, D, ranks):
    """u (batch, H), x (batch, H, n, 2), d, B̄ (H, n, 2), [Re 2C, −Im 2C] (H, n, 2), D (H,), ranks
    ((−U_i, 2 W_i as in ``_re_dot``) (H, n, 2) each) → y (batch, H), x_k (batch, H, n, 2).

    The complex products written out in real arithmetic, for torch.compile (the eager
    ``_step_ssm`` computes the same in complex ops, fewer of them)."""
    xr, xi = x.unbind(-1)  # (batch, H, n) each
    dr, di = d.unbind(-1)  # (H, n) each
    u3 = u[..., None]  # (batch, H, 1)
    re = dr * xr - di * xi + dB[..., 0] * u3  # (batch, H, n)
    im = dr * xi + di * xr + dB[..., 1] * u3  # (batch, H, n)
    for negU, W2 in ranks:
        Wx = (W2 * x).sum((-2, -1))[..., None]  # (batch, H, 1): W x, real
        re = re + negU[..., 0] * Wx
        im = im + negU[..., 1] * Wx
    y = (C2[..., 0] * re + C2[..., 1] * im).sum(-1) + D * u  # (batch, H)
    return y, torch.stack([re, im], dim=-1)


def _constant_step(dt: torch.Tensor | None) -> float | None:
    """dt's value if it is the same everywhere (1.0 for None), else None."""
    if dt is None:
        return 1.0
    first = dt.reshape(-1)[0]
    return float(first) if bool((dt == first).all()) else None


# GBT(α) of a DPLR A = diag(Λ) − Pᵀ Q̄ as diagonal plus rank r (S4 §3.3 and App. C.2, the Woodbury
# identity as in dplr_gbt): with E = diag(1 − αΔΛ) and K = I_r + αΔ Q̄ E⁻¹ Pᵀ,
#   Ā = (I − αΔA)⁻¹(I + (1−α)ΔA) = (1/α)(I − αΔA)⁻¹ − ((1−α)/α) I
#     = diag((1 + (1−α)ΔΛ)/(1 − αΔΛ)) − Δ E⁻¹Pᵀ K⁻¹ · Q̄ E⁻¹         (also at α = 0: Ā = I + ΔA)
#   B̄ = (I − αΔA)⁻¹ ΔB = Δ (E⁻¹B − α Δ E⁻¹Pᵀ K⁻¹ · Q̄ E⁻¹ B)
def _dplr_gbt_lowrank(Lambda, P, Q, B, dt, alpha: float):
    """Λ, B (H, N), P, Q (H, r, N), Δ (H,) → d (H, N), U (H, N, r), W (H, r, N), B̄ (H, N): Ā = diag(d) − U W.

    The dense Ā of :func:`~ssmforecast.math.discretize.dplr_gbt` in O(N r²) numbers per channel, so
    a step x ↦ d ⊙ x − U (W x) + B̄ u costs O(N r) instead of O(N²).
    """
    dt = dt.to(Lambda.real.dtype)[:, None]  # (H, 1)
    Einv = 1 / (1 - alpha * dt * Lambda)  # (H, N)
    d = (1 + (1 - alpha) * dt * Lambda) * Einv  # (H, N)
    EP = Einv[:, None, :] * P  # (H, r, N): rows of E⁻¹Pᵀ
    W = Q.conj() * Einv[:, None, :]  # (H, r, N): Q̄ E⁻¹
    r = P.shape[-2]
    K = torch.eye(r, dtype=W.dtype, device=W.device) + alpha * dt[..., None] * (W @ P.transpose(-1, -2))  # (H, r, r)
    U = torch.linalg.solve(K.transpose(-1, -2), dt[..., None] * EP).transpose(-1, -2)  # (H, N, r): Δ E⁻¹Pᵀ K⁻¹
    dB = dt * (Einv * B - alpha * (U @ (W @ B[..., None]))[..., 0])  # (H, N)
    return d, U, W, dB


class SSMConvLayer(SequenceLayer):
    """Shared body of :class:`S4DLayer` and :class:`S4Layer`: parameters Δ, C (which S4 under GBT
    replaces by C̃), D, the output projection, input checks, autocast handling. Subclasses supply ``kernel``, ``_scan`` and the
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

    #: The ``discretization`` values the layer accepts.
    DISCRETIZATIONS: tuple[str, ...] = tuple(METHODS)

    def __init__(self, d_model, d_state, discretization, dt_min, dt_max, lr, dropout):
        super().__init__()
        if not isinstance(d_model, int) or d_model < 1:
            raise ValueError(f"d_model must be a positive int, got {d_model!r}")
        if not isinstance(d_state, int) or d_state < 2 or d_state % 2:
            raise ValueError(f"d_state must be an even int >= 2 (N/2 conjugate pairs), got {d_state!r}")
        if discretization not in self.DISCRETIZATIONS:
            choices = ", ".join(map(repr, self.DISCRETIZATIONS))
            raise ValueError(f"unknown discretization {discretization!r} for {type(self).__name__}; valid choices are {choices}")
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

    # -- views -----------------------------------------------------------------------------------

    def kernel(self, L: int, scale: float = 1.0) -> torch.Tensor:  # pragma: no cover - abstract
        """K̄ (H, L) of the SSM with step Δ·scale."""
        raise NotImplementedError

    def _prepare_kernel(self, L: int, scale: float) -> None:
        """Called by ``forward`` before the kernel of (L, scale) is built or looked up; nothing by
        default (S4 may re-reference its learned C̃ to the length L here)."""

    def _convolve(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        """y = K̄ * x + D x with the (memoised) kernel of step Δ·scale; x (batch, H, L) → (batch, H, L)."""
        L = x.shape[-1]
        K = self._cached("kernel", lambda: self.kernel(L, scale), (L, scale))  # (H, L)
        return fft_conv(x, K.to(x.dtype), self.D.to(x.dtype))  # (batch, H, L)

    def _output(self, y: torch.Tensor) -> torch.Tensor:
        """GELU → dropout → Linear(H, 2H) → GLU, position-wise; (..., H) → (..., H)."""
        y = self.activation(y)  # (..., H)
        if self.training and self.dropout.p > 0:  # an identity otherwise: not called (streaming cost)
            y = self.dropout(y)
        return F.glu(self.output_linear(y), dim=-1)  # (..., H)

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
                self._prepare_kernel(L, scale)  # before the memo's key is read: it may update parameters
                y = self._convolve(x, scale)  # (batch, H, L)
            else:
                y = self._scan(x, dt.to(x.dtype))  # (batch, H, L)
        # contiguous (batch, L, H): GELU's backward on the transposed view ran 13× slower (CPU)
        return self._output(y.transpose(1, 2).contiguous().to(dtype))  # (batch, L, H)

    def step(self, u: torch.Tensor, state: torch.Tensor, dt: torch.Tensor | None = None):
        """u (batch, H), state (batch, H, ·), dt (batch,) or None → (y (batch, H), state)."""
        check_step_input(u, dt, self.d_model)
        return serial_step(self._step, u, state, dt)

    def _check_state(self, state, batch: int):
        """Raise ValueError unless state is a (batch, H, N/2) tensor, as ``allocate_state(batch)``
        gives it; shape checks only (no values read), cheap enough for every step."""
        if not torch.is_tensor(state):
            raise ValueError("state must be the tensor returned by allocate_state or step")
        expected = (batch, self.d_model, self.d_state // 2)
        if state.shape != expected:
            raise ValueError(f"state must have shape (batch, H, N/2) = {expected}, got {tuple(state.shape)}")
        return state

    def _step(self, u: torch.Tensor, state: torch.Tensor, dt: torch.Tensor | None = None):
        """``step`` after the checks of u and dt (the state is still checked): the SSM, then
        ``_output`` with GELU by ``_gelu_erf``."""
        self._check_state(state, u.shape[0])
        y, state = self._step_ssm(u, state, dt)  # (batch, H)
        if self.training and self.dropout.p > 0:
            return self._output(y), state
        lin = self.output_linear
        return F.glu(F.linear(_gelu_erf(y), lin.weight, lin.bias), dim=-1), state  # (batch, H)

    # -- the compiled step (Backbone.compile_step): real pairs, as inductor generates no complex code

    def _real_step_supported(self) -> bool:
        """Whether the constant step has the real-pair form of ``_real_step``."""
        return True

    def _real_inputs(self):
        """What ``_real_step`` reads besides u and the state: the memoised constant-step matrices
        as real pairs (``_pair_plan``) and the output Linear."""
        lin = self.output_linear
        return (*self._pair_plan(), lin.weight, lin.bias)

    @staticmethod
    def _real_step(u, x, inputs):
        """``_step`` with dt=None on real pairs, for torch.compile: u (batch, H), x (batch, H, n, 2)
        → (y (batch, H), x (batch, H, n, 2))."""
        d, dB, C2, D, ranks, W, b = inputs
        y, x = _pair_step(u, x, d, dB, C2, D, ranks)  # (batch, H), (batch, H, n, 2)
        return F.glu(F.linear(F.gelu(y), W, b), dim=-1), x

    def _real_state(self, state: torch.Tensor) -> torch.Tensor:
        """(batch, H, n) complex → (batch, H, n, 2) real, contiguous (steady strides for the compiled graph)."""
        return torch.view_as_real(state).contiguous()

    def _from_real_state(self, x: torch.Tensor) -> torch.Tensor:
        return torch.view_as_complex(x)  # (batch, H, n)


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
    discretization : {"zoh", "foh", "bilinear", "euler", "backward_euler"}, default "zoh"
        "foh", the first-order hold, reads the input as the straight line between consecutive
        samples (exact for such an input; :func:`~ssmforecast.math.discretize.foh_diag`), the
        line before the first sample flat; its recurrent state is then the pair (x, u_{k−1} or
        None before the first step).
    dt_min, dt_max : float, default 1e-3, 1e-1
    lr : float or None
        Learning-rate hint for Λ, Δ and B.
    dropout : float, default 0.0
    """

    DISCRETIZATIONS = (*METHODS, "foh")

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

    @property
    def _foh(self) -> bool:
        return self.discretization == "foh"

    def kernel(self, L: int, scale: float = 1.0) -> torch.Tensor:
        """K̄_l = 2 Re Σ_n C_n B̄_n Ā_n^l with Δ = scale · exp(log_dt); → (H, L).

        Under the first-order hold, the kernel of x_k = Ā x_{k−1} + B̄₀ u_{k−1} + B̄₁ u_k read
        from u alone: K̄_0 = K̄¹_0, K̄_l = K̄¹_l + K̄⁰_{l−1} (see ``_foh_kernels``)."""
        if self._foh:
            return self._foh_kernels(L, scale)[0]
        dA, dB = discretize_diag(self._Lambda(), torch.view_as_complex(self.B), scale * self._step_size(), self.discretization)
        return vandermonde_kernel(dA, dB, self._C(), L, conj_pairs=True)  # (H, L)

    # First-order hold as a convolution: y_k = Σ_j K̄¹_j u_{k−j} + Σ_j K̄⁰_j u_{k−j−1}, K̄ⁱ_j = 2 Re C Ā^j B̄ᵢ,
    # with u_{−1} = u_0, is one kernel on u, K̄_j = K̄¹_j + K̄⁰_{j−1}, plus K̄⁰_k u_0 (the flat line before u_0)
    def _foh_kernels(self, L: int, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        """→ the first-order hold's kernel K̄ (H, L) on u and K̄⁰ (H, L), the weight of u_{−1} = u_0 at each k."""
        dA, dB0, dB1 = foh_diag(self._Lambda(), torch.view_as_complex(self.B), scale * self._step_size())  # (H, n)
        K1, K0 = vandermonde_kernel(dA, torch.stack([dB1, dB0]), self._C(), L, conj_pairs=True)  # (H, L) each
        return torch.cat([K1[:, :1], K1[:, 1:] + K0[:, :-1]], dim=-1), K0

    def _convolve(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        if not self._foh:
            return super()._convolve(x, scale)
        L = x.shape[-1]
        K, K0 = self._cached("kernel", lambda: self._foh_kernels(L, scale), (L, scale))  # (H, L) each
        y = fft_conv(x, K.to(x.dtype), self.D.to(x.dtype))  # (batch, H, L)
        return torch.addcmul(y, K0.to(x.dtype), x[..., :1])  # + K̄⁰_k u_0

    def _scan(self, x: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
        """Irregular steps: x (batch, H, L), dt (batch, L) → y (batch, H, L) by the diagonal scan.

        On the CPU (float32 / float64) the fused C++ scan of :func:`~ssmforecast.math.scan.diagonal_scan`,
        which forms Ā_k, B̄_k inside its loop. Otherwise in time blocks of T steps whose discretized (batch, H, T, n) tensors hold at most
        ``IRREGULAR_BLOCK_NUMEL`` values; under autograd each block is checkpointed (its Ā_k, B̄_k
        and states recomputed in the backward), so memory is O(batch · H · (L + T · n)), not
        O(batch · H · L · n)."""
        batch, H, L = x.shape
        delta = dt[:, None, :] * self._step_size().to(dt.dtype)[None, :, None]  # (batch, H, L)
        if _fused.available(x.device, x.dtype):  # Ā_k, B̄_k formed inside one C++ loop
            Lambda, B, C, D = self._Lambda(), torch.view_as_complex(self.B), self._C(), self.D.to(x.dtype)
            return diagonal_scan(x, delta, Lambda, B, C, D, method=self.discretization)[0]
        T = max(IRREGULAR_MIN_BLOCK, IRREGULAR_BLOCK_NUMEL // (batch * H * self.d_state // 2))
        if L <= T:
            return self._scan_block(x, delta, None, None)[0]
        ys, state, u_before = [], None, None
        for s in range(0, L, T):
            x_b, delta_b = x[..., s : s + T], delta[..., s : s + T]  # (batch, H, ≤T)
            if torch.is_grad_enabled():
                y, state = checkpoint(self._scan_block, x_b, delta_b, state, u_before, use_reentrant=False, preserve_rng_state=False)
            else:
                y, state = self._scan_block(x_b, delta_b, state, u_before)
            ys.append(y)
            u_before = x_b[..., -1]  # (batch, H): the first-order hold's u_{k−1} at the next block's start
        return torch.cat(ys, dim=-1)  # (batch, H, L)

    # x_k = Ā_k ⊙ x_{k−1} + B̄_k u_k (+ B̄⁰_k u_{k−1} under FOH), y_k = 2 Re(C x_k) + D u_k, Ā_k, B̄_k from Δ_k
    def _scan_block(self, x, delta, x0, u_before):
        """x, Δ (batch, H, T), x0 (batch, H, n) or None, u_before (batch, H) or None → (y (batch, H, T), x_T)."""
        Lambda = self._Lambda()[None, :, None, :]  # (1, H, 1, n)
        B = torch.view_as_complex(self.B)[None, :, None, :]  # (1, H, 1, n)
        C, D = self._C()[None, :, None, :], self.D.to(x.dtype)  # (1, H, 1, n), (H,)
        if self._foh:
            dA, dB0, dB1 = foh_diag(Lambda, B, delta)  # (batch, H, T, n)
            return ssm_scan(x, dA, dB1, C.expand_as(dA), D, x0, conj_pairs=True, dB_prev=dB0, u_before=u_before)
        dA, dB = discretize_diag(Lambda, B, delta, self.discretization)  # (batch, H, T, n)
        return ssm_scan(x, dA, dB, C.expand_as(dA), D, x0, conj_pairs=True)

    def allocate_state(self, batch: int):
        """Zero state (batch, H, N/2), complex; under the first-order hold the pair (that, None)."""
        x = torch.zeros(batch, self.d_model, self.d_state // 2, dtype=self._Lambda().dtype, device=self.log_dt.device)
        return (x, None) if self._foh else x

    def _check_state(self, state, batch: int):
        """As ``SSMConvLayer._check_state``; under the first-order hold the pair (x (batch, H, N/2),
        u_{k−1} (batch, H) or None)."""
        if self.discretization != "foh":  # not self._foh nor super(): half the cost of this check
            return SSMConvLayer._check_state(self, state, batch)
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise ValueError("state must be the pair (x, u_prev) returned by allocate_state or step")
        x, prev = state
        SSMConvLayer._check_state(self, x, batch)
        if prev is not None and (not torch.is_tensor(prev) or prev.shape != (batch, self.d_model)):
            got = tuple(prev.shape) if torch.is_tensor(prev) else type(prev).__name__
            raise ValueError(f"u_prev of the state must be None or have shape (batch, H) = {(batch, self.d_model)}, got {got}")
        return state

    def _step_matrices(self, delta: torch.Tensor):
        """What a step reads for steps delta (…, H): Ā (…, H, n), B̄ (…, H, n, 2) and 2C (H, n, 2)
        as real pairs (see ``_input_term``, ``_re_dot``), D (H,). Under the first-order hold B̄ is
        the stack [B̄₀, B̄₁] (2, …, H, n, 2)."""
        Lambda, B = self._Lambda(), torch.view_as_complex(self.B)
        if self._foh:
            dA, dB0, dB1 = foh_diag(Lambda, B, delta)  # (…, H, n)
            dB = torch.stack([dB0, dB1])  # (2, …, H, n)
        else:
            dA, dB = discretize_diag(Lambda, B, delta, self.discretization)  # (…, H, n)
        return dA, torch.view_as_real(dB), _re_dot(2 * self._C()), self.D

    def _real_step_supported(self) -> bool:
        return not self._foh  # the first-order hold's step runs eagerly

    def _pair_plan(self):
        """Ā, B̄, [Re 2C, −Im 2C] (H, n, 2), D (H,) and no low-rank terms: ``_pair_step``'s inputs."""
        dA, dB, C2, D = self._cached("step", lambda: self._step_matrices(self._step_size()))
        return torch.view_as_real(dA), dB, C2, D, ()

    # x_k = Ā x_{k−1} + B̄ u_k (first-order hold: + B̄₀ u_{k−1}, with B̄₁ for B̄),
    # y_k = 2 Re(C x_k) + D u_k  (the conjugate modes add the mirror image)
    def _step_ssm(self, u, state, dt):
        """u (batch, H), state (batch, H, n), dt (batch,) or None → y (batch, H), state (batch, H, n);
        under the first-order hold the state is the pair (x, u_{k−1}).

        With a constant step Ā, B̄ and C are memoised (``_cached``), so a step is five small ops.
        """
        if dt is None:  # constant step: computed once until the parameters change
            dA, dB, C2, D = self._cached("step", lambda: self._step_matrices(self._step_size()))
        else:
            dA, dB, C2, D = self._step_matrices(self._step_size()[None] * dt[:, None].to(self.log_dt.dtype))
        if self._foh:
            x, prev = state
            prev = u if prev is None else prev  # the line before the first sample is flat
            b = torch.addcmul(dB[1] * u[..., None, None], dB[0], prev[..., None, None])  # (batch, H, n, 2)
            x = torch.addcmul(torch.view_as_complex(b), dA, x)  # (batch, H, n)
            state = (x, u)
        else:
            x = state = torch.addcmul(_input_term(dB, u), dA, state)  # (batch, H, n)
        y = (C2 * torch.view_as_real(x)).sum((-2, -1))  # (batch, H): 2 Re(C x_k)
        return torch.addcmul(y, D, u), state  # (batch, H)


#: The length L₀ that S4's learned C̃ = C(I − Ā^L₀) refers to at initialisation; a forward at a
#: longer L re-references it to L (see :class:`S4Layer`). Small enough that short sequences pay
#: little for a kernel of L₀ terms, large enough that I − Ā^L₀ is well conditioned at initialisation
#: (condition number ≤ 60 for HiPPO-LegS, N = 64, Δ ≥ 10⁻³; 2,400 at L₀ = 1).
INITIAL_KERNEL_LENGTH = 64


def _conversion_dtype(device: torch.device) -> torch.dtype:
    """The dtype of the C ↔ C̃ conversions (dense powers and a solve): complex128, or complex64 on
    a device without float64 (MPS)."""
    return torch.complex64 if device.type == "mps" else torch.complex128


# S4 Appendix C.3: C̃_L = C (I − Ā^L), so that Σ_{l<L} C Ā^l B̄ ω^l = C̃ (I − Āω)⁻¹ B̄ when ω^L = 1;
# back: C = C̃_L (I − Ā^L)⁻¹ (Ā is stable, so I − Ā^L is invertible)
def _truncate_C(C: torch.Tensor, dA: torch.Tensor, L: int) -> torch.Tensor:
    """C (H, N), Ā (H, N, N) → C̃ = C (I − Ā^L) (H, N)."""
    return C - (C[..., None, :] @ torch.linalg.matrix_power(dA, L))[..., 0, :]


def _untruncate_C(C_tilde: torch.Tensor, dA: torch.Tensor, L: int) -> torch.Tensor:
    """C̃ (H, N), Ā (H, N, N) → C = C̃ (I − Ā^L)⁻¹ (H, N), by one solve."""
    M = torch.eye(dA.shape[-1], dtype=dA.dtype, device=dA.device) - torch.linalg.matrix_power(dA, L)  # (H, N, N)
    return torch.linalg.solve(M, C_tilde[..., None, :], left=False)[..., 0, :]  # X M = C̃


class S4Layer(SSMConvLayer):
    """S4: DPLR SSM per channel, A = Λ − P P* initialised from HiPPO-LegS (Gu et al. 2022, "Efficiently
    Modeling Long Sequences with Structured State Spaces"); kernel by Cauchy + Woodbury (bilinear).

    Under a GBT discretization (bilinear, Euler, backward Euler) the learned output vector is
    C̃ = C (I − Ā^L₀) (parameter ``C_tilde``), as in S4's reference code: the kernel of L₀ terms is
    then Cauchy + Woodbury + iFFT with no dense matrix power. L₀ (``kernel_length``, saved in the
    state dict) starts at :data:`INITIAL_KERNEL_LENGTH`. A forward with the learned step at a
    shorter L takes the first L terms of the kernel of L₀ terms; at a longer L it needs C̃ for L,
    C̃_L = C (I − Ā^L) with C = C̃ (I − Ā^L₀)⁻¹, the same function:

    * until C̃ is first read with grad enabled (the first training forward or step; in that
      forward, before the read), C̃_L is stored as the parameter and L becomes L₀ (an in-place
      update under no_grad), so that training at L needs no dense power;
    * from then on L₀ is settled (``kernel_length_settled``, saved in the state dict with L₀) and
      forward never writes ``C_tilde``: C̃_L is formed from it out of place (two dense powers and a
      solve, differentiable, memoised with the kernel when grad is disabled). A graph built
      earlier stays valid, the gradients of losses at several lengths add up, and an optimizer's
      state for ``C_tilde`` keeps meaning the same coordinates.

    The SSM's own C, which the recurrent view and the irregular steps read, is C̃ (I − Ā^L₀)⁻¹,
    formed once per parameter version in the step memo. At initialisation C is drawn as for S4D
    (N(0, ½) complex) and converted once.

    With ``discretization="zoh"`` the kernel comes from the dense matrix exponential and Krylov
    doubling (O(N² L) per channel instead of O(N L)): exact for piecewise-constant inputs, slower;
    the learned output vector is C itself (parameter ``C``).

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
        self.kernel_length = INITIAL_KERNEL_LENGTH  # L₀ of C̃ (GBT only)
        self.kernel_length_settled = False  # True once C̃ was read with grad: no re-referencing since
        if discretization != "zoh":  # C drawn by SSMConvLayer (the same draws as before), stored as C̃
            C = torch.view_as_complex(self.C.detach())  # (H, n)
            del self.C
            self.C_tilde = nn.Parameter(torch.empty(H, n, 2))  # (H, n, 2): C̃ as (re, im) pairs
            self._set_C(C)

    # -- parameters ------------------------------------------------------------------------------

    #: Layers pickled before the attribute existed: not settled, as they behaved.
    kernel_length_settled = False

    def get_extra_state(self) -> dict:
        """L₀ and whether it is settled, saved with the parameters (C̃ means nothing without L₀,
        and an optimizer state saved beside a trained C̃ refers to its L₀)."""
        return {"kernel_length": self.kernel_length, "kernel_length_settled": self.kernel_length_settled}

    def set_extra_state(self, state: dict) -> None:
        self.kernel_length = int(state["kernel_length"])
        self.kernel_length_settled = bool(state.get("kernel_length_settled", False))  # older state dicts: not settled

    def _Lambda(self) -> torch.Tensor:
        return torch.complex(-torch.exp(self.log_neg_re), self.im)  # (H, n)

    def _params(self):
        """Λ (H, n), P (H, 1, n), B (H, n), C (H, n), all complex; C is the SSM's own (under GBT
        formed from C̃: a solve, see ``_C``)."""
        return self._Lambda(), torch.view_as_complex(self.P), torch.view_as_complex(self.B), self._C()

    def _dense_gbt(self, step: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Ā (H, N, N) of all N modes (each pair expanded) under the layer's GBT at steps (H,), in ``dtype``."""
        Lf, Pf = (_conj_expand(x).to(dtype) for x in (self._Lambda(), torch.view_as_complex(self.P)))  # (H, N), (H, 1, N)
        dA, _ = dplr_gbt(Lf, Pf, Pf, torch.zeros_like(Lf), step.to(Lf.real.dtype), METHODS[self.discretization])
        return dA

    def _learned_dA(self) -> torch.Tensor:
        """Ā (H, N, N) at the learned step, in the conversion dtype: what C and C̃ convert through."""
        return self._dense_gbt(self._step_size(), _conversion_dtype(self.C_tilde.device))

    def _C_tilde(self) -> torch.Tensor:
        """C̃ (H, n) complex, the parameter as it is. Read with grad enabled, it settles L₀: a graph,
        and later an optimizer state, may now refer to C̃ (not so for a caller's tensor in its place,
        under ``torch.func``). Writes to self: ``kernel_length_settled``."""
        if torch.is_grad_enabled() and isinstance(self.C_tilde, nn.Parameter):
            self.kernel_length_settled = True
        return torch.view_as_complex(self.C_tilde)

    def _C_full(self, dA: torch.Tensor) -> torch.Tensor:
        """C = C̃ (I − Ā^L₀)⁻¹ of all N modes (H, N) for Ā (H, N, N) of the learned step, in Ā's dtype."""
        C_tilde = _conj_expand(self._C_tilde()).to(dA.dtype)  # (H, N)
        return _untruncate_C(C_tilde, dA, self.kernel_length)

    def _C(self) -> torch.Tensor:
        """The SSM's C (H, n): the parameter under ZOH, C̃ (I − Ā^L₀)⁻¹ under GBT (in complex128)."""
        if self.discretization == "zoh":
            return torch.view_as_complex(self.C)
        return self._C_full(self._learned_dA())[:, : self.d_state // 2].to(self._Lambda().dtype)

    def _C_tilde_for(self, L: int, scale: float) -> torch.Tensor:
        """C̃ = C (I − Ā^L) (H, n) of the layer's C at another length L or step Δ·scale, in Λ's complex dtype."""
        dA = self._learned_dA()  # (H, N, N): the learned step, which C̃ refers to
        C = self._C_full(dA)  # (H, N)
        if scale != 1.0:
            dA = self._dense_gbt(scale * self._step_size(), dA.dtype)
        return _truncate_C(C, dA, L)[:, : self.d_state // 2].to(self._Lambda().dtype)

    @torch.no_grad()
    def _set_C(self, C: torch.Tensor, L: int | None = None, dA: torch.Tensor | None = None) -> None:
        """Make C (H, n) complex the SSM's C, stored as C̃ = C (I − Ā^L) for L (default L₀), which
        becomes L₀; ``dA``: ``_learned_dA()`` if the caller has it. Writes to self: ``C_tilde`` (in
        place), ``kernel_length``."""
        L = self.kernel_length if L is None else L
        dA = self._learned_dA() if dA is None else dA  # (H, N, N)
        C_tilde = _truncate_C(_conj_expand(C).to(dA.dtype), dA, L)[:, : self.d_state // 2]  # (H, n)
        self.C_tilde.copy_(torch.view_as_real(C_tilde.to(torch.view_as_complex(self.C_tilde).dtype)))
        self.kernel_length = L

    def _prepare_kernel(self, L: int, scale: float) -> None:
        """A forward at the learned step and a length L > L₀ before L₀ is settled (before C̃ was
        first read with grad enabled, see ``_C_tilde``): C̃ re-referenced to L (the same C, so the
        same function), so that this and later kernels need no dense power. Once settled,
        ``kernel`` forms C̃ for a longer L out of place. Never under ``torch.func`` (C̃ is then not
        this layer's Parameter but the caller's tensor). Writes to self: ``C_tilde`` (in place,
        under no_grad), ``kernel_length``."""
        if self.discretization == "zoh" or not isinstance(self.C_tilde, nn.Parameter):
            return
        if not self.kernel_length_settled and scale == 1.0 and L > self.kernel_length:
            with torch.no_grad():  # nothing recorded reads C̃ yet: no graph or optimizer state refers to it
                dA = self._learned_dA()  # (H, N, N), once for both conversions
                self._set_C(self._C_full(dA)[:, : self.d_state // 2], L, dA)

    def _dense_full(self):
        """The full real system in the mode basis: A (H, N, N) = diag(Λ) − Pᵀ P̄, B (H, N), C (H, N)."""
        Lambda, P, B, C = self._params()
        Pf = _conj_expand(P)  # (H, 1, N)
        A = torch.diag_embed(_conj_expand(Lambda)) - Pf.transpose(-1, -2) @ Pf.conj()  # (H, N, N)
        return A, _conj_expand(B), _conj_expand(C)

    def kernel(self, L: int, scale: float = 1.0) -> torch.Tensor:
        """K̄ (H, L) with Δ = scale · exp(log_dt): Cauchy + Woodbury under GBT, Krylov under ZOH.

        Under GBT, at the learned step (scale 1) and L ≤ L₀ the first L terms of the kernel of L₀
        terms, from C̃ as it is (no dense power); otherwise C̃ = C (I − Ā^L) of the SSM's C at this
        step and length (two dense powers and a solve: what a forward with a constant dt ≠ 1 pays).
        """
        step = scale * self._step_size()  # (H,)
        if self.discretization == "zoh":
            A, B, C = self._dense_full()
            dA, dB = zoh(A, B, step)  # (H, N, N), (H, N)
            return krylov_kernel(dA, dB, C, L).real  # (H, L)
        Lambda, P, B = self._Lambda(), torch.view_as_complex(self.P), torch.view_as_complex(self.B)
        if scale == 1.0 and L <= self.kernel_length:
            C_tilde, n_terms = self._C_tilde(), self.kernel_length
        else:
            C_tilde, n_terms = self._C_tilde_for(L, scale), L
        K = dplr_kernel(Lambda, P, P, B, C_tilde, step, n_terms, method=self.discretization, conj_pairs=True, C_is_truncated=True)
        return K[:, :L]  # (H, L)

    def allocate_state(self, batch: int) -> torch.Tensor:
        """Zero state (batch, H, N/2), complex: one mode of each conjugate pair, as S4D's (the full
        state of all N modes is its conjugate expansion, which a real input keeps exact)."""
        return torch.zeros(batch, self.d_model, self.d_state // 2, dtype=self._Lambda().dtype, device=self.log_dt.device)

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

    def _lowrank_step(self):
        """What a constant GBT step reads, memoised, on one mode of each conjugate pair (n = N/2):
        Ā = diag(d) − U W of all N modes (:func:`_dplr_gbt_lowrank`) restricted to these modes,
        d (H, n) and per rank i (−U_i (H, n, 2), 2 W_i (H, n, 2)); B̄ (H, n, 2), 2C (H, n, 2), D (H,).
        The pairs are real pairs (``_input_term``, ``_re_dot``)."""
        Lf, Pf, Bf, Cf = self._full_system()  # (H, N), (H, 1, N), (H, N), (H, N)
        d, U, W, dB = _dplr_gbt_lowrank(Lf, Pf, Pf, Bf, self._step_size(), METHODS[self.discretization])
        n = self.d_state // 2
        # W of a conjugate mode is the conjugate: W x over all N modes = 2 Re Σ_{m<n} W_m x_m
        ranks = tuple((torch.view_as_real(-U[:, :n, i]), _re_dot(2 * W[:, i, :n])) for i in range(W.shape[1]))
        return d[:, :n], ranks, torch.view_as_real(dB[:, :n]), _re_dot(2 * Cf[:, :n]), self.D

    def _real_step_supported(self) -> bool:
        return self.discretization != "zoh"  # ZOH's constant step is dense (N × N)

    def _pair_plan(self):
        """d, B̄, [Re C, −Im C] (H, n, 2), D (H,) and the low-rank terms: ``_pair_step``'s inputs."""
        d, ranks, dB, C2, D = self._cached("lowrank", self._lowrank_step)
        return torch.view_as_real(d), dB, C2, D, ranks

    # constant GBT step, O(N r) per channel, on one mode of each pair (the others are conjugates):
    # x_k = d ⊙ x_{k−1} − U (W x_{k−1}) + B̄ u_k,  y_k = Re(C x_k) + D u_k  (W x and C x over all N modes)
    def _step_ssm(self, u, state, dt):
        """u (batch, H), state (batch, H, N/2), dt (batch,) or None → y (batch, H), state (batch, H, N/2)."""
        if dt is None and self.discretization != "zoh":
            d, ranks, dB, C2, D = self._cached("lowrank", self._lowrank_step)
            x = torch.view_as_real(state)  # (batch, H, n, 2)
            new = torch.addcmul(_input_term(dB, u), d, state)  # (batch, H, n): d ⊙ x + B̄ u
            for negU, W2 in ranks:  # rank 1 for LegS
                Wx = (W2 * x).sum((-2, -1), keepdim=True)  # (batch, H, 1, 1): W x, real
                torch.view_as_real(new).addcmul_(negU, Wx)  # (batch, H, n): − U (W x)
            y = (C2 * torch.view_as_real(new)).sum((-2, -1))  # (batch, H): Re(C x_k)
            return torch.addcmul(y, D, u), new  # (batch, H)
        y, full = self._full_step(u, _conj_expand(state), dt)
        return y, full[..., : self.d_state // 2].contiguous()

    # all N modes: the constant ZOH step (dense Ā) or an irregular one (Woodbury, S4 App. C.2)
    def _full_step(self, u, state, dt, system=None, dense=None):
        """u (batch, H), state (batch, H, N) of all N modes, dt (batch,) or None → y (batch, H), state;
        ``system`` (the expanded Λ, P, B, C) and ``dense`` (A, B of the full system, ZOH only) may
        be passed in by a caller that loops, so they are built once per sequence."""
        Lf, Pf, Bf, Cf = self._full_system() if system is None else system
        if dt is None:  # constant ZOH step: one dense (N × N) product per channel
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
        # all N modes (the Woodbury step couples a mode and its conjugate), complex of x's and Λ's precision
        dtype = torch.promote_types(torch.promote_types(x.dtype, self.log_neg_re.dtype), torch.complex64)
        state = torch.zeros(x.shape[0], self.d_model, self.d_state, dtype=dtype, device=x.device)  # (batch, H, N)
        # the expanded system is built once per sequence, not at each of the L steps (under autograd
        # the step cache is off)
        system = tuple(_conj_expand(p) for p in self._params())
        dense = self._dense_full()[:2] if self.discretization == "zoh" else None
        ys = []
        for k in range(x.shape[-1]):
            y, state = self._full_step(x[..., k], state, dt[:, k], system, dense)  # (batch, H)
            ys.append(y)
        return torch.stack(ys, dim=-1)  # (batch, H, L)
