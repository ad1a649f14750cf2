"""MambaLayer: the parallel view (chunked selective scan) equals the recurrent ``step`` and a brute-force
float64 loop written here from the paper (Gu & Dao 2023, Fig. 3 and Alg. 2); causality, time steps,
long sequences, input validation and optimizer hints."""

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import needs_fused

import ssmforecast.nn.mamba as mamba_module
from ssmforecast.nn.mamba import MambaLayer

from _stepping import run_steps as _step_all

f64 = torch.float64


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def _layer(dtype=f64, seed=0, **kwargs):
    """A small layer with steps large enough for the state to decay within the test sequences."""
    torch.manual_seed(seed)
    kwargs = dict(d_model=4, d_state=5, d_conv=3, dt_min=0.05, dt_max=0.5) | kwargs
    return MambaLayer(**kwargs).to(dtype)


def _inputs(batch, L, d_model, dtype=f64, seed=1):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(batch, L, d_model, generator=g, dtype=dtype)  # (batch, L, H)
    log_dt = torch.empty(batch, L, dtype=dtype).uniform_(math.log(0.1), math.log(10.0), generator=g)
    return u, torch.exp(log_dt)  # irregular dt, log-uniform in [0.1, 10]




def _reference(layer, u, dt):
    """Brute force, float64, explicit loops over batch and time, from the layer's own weights.

    x, z = in_proj(u_k); x = SiLU(Σ_j w_j x_{k−K+1+j} + b); (δ, B, C) = x_proj(x);
    Δ = dt_k · log(1 + exp(dt_proj(δ))); h = exp(Δ A) h + Δ B x; y = (C · h + D x) · SiLU(z); out_proj(y).
    """
    p = {name: t.detach().to(f64) for name, t in layer.named_parameters()}
    H, N, K, R = layer.d_inner, layer.d_state, layer.d_conv, layer.dt_rank
    A = -torch.exp(p["A_log"])  # (H, N)
    w_conv = p["conv1d.weight"][:, 0, :]  # (H, K)
    out = torch.zeros(u.shape[0], u.shape[1], layer.d_model, dtype=f64)
    for b in range(u.shape[0]):
        history, h = [], torch.zeros(H, N, dtype=f64)
        for k in range(u.shape[1]):
            xz = p["in_proj.weight"] @ u[b, k].to(f64) + p.get("in_proj.bias", 0.0)  # (2H,)
            history.append(xz[:H])
            z = xz[H:]
            c = p["conv1d.bias"].clone()
            for j in range(K):
                if k - (K - 1) + j >= 0:
                    c = c + w_conv[:, j] * history[k - (K - 1) + j]
            x = c / (1 + torch.exp(-c))  # SiLU, (H,)
            proj = p["x_proj.weight"] @ x  # (R + 2N,)
            low, B, C = proj[:R], proj[R : R + N], proj[R + N :]
            delta = torch.log1p(torch.exp(p["dt_proj.weight"] @ low + p["dt_proj.bias"]))  # (H,)
            if dt is not None:
                delta = delta * float(dt[b, k])
            for n in range(N):
                h[:, n] = torch.exp(delta * A[:, n]) * h[:, n] + delta * B[n] * x
            y = (h @ C + p["D"] * x) * (z / (1 + torch.exp(-z)))  # (H,)
            out[b, k] = p["out_proj.weight"] @ y + p.get("out_proj.bias", 0.0)
    return out


# --- the views agree ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-8), (torch.float32, 1e-4)])
@pytest.mark.parametrize("irregular", [False, True])
def test_step_equals_forward(dtype, tol, irregular):
    layer = _layer(dtype, scan_chunk_size=4)  # L = 37: 10 chunks of 4, carries scanned recursively
    u, dt = _inputs(3, 37, layer.d_model, dtype)
    dt = dt if irregular else None
    with torch.no_grad():
        y = layer(u, dt)
        y_step, _ = _step_all(layer, u, dt)
    assert y.shape == (3, 37, layer.d_model)
    assert _rel(y_step, y) < tol


@pytest.mark.parametrize("irregular", [False, True])
def test_state_continues_across_calls(irregular):
    layer = _layer(scan_chunk_size=4)
    u, dt = _inputs(2, 30, layer.d_model)
    dt = dt if irregular else None
    first = None if dt is None else dt[:, :17]
    second = None if dt is None else dt[:, 17:]
    with torch.no_grad():
        y_whole = layer(u, dt)
        y_first = layer(u[:, :17], first)
        _, state = _step_all(layer, u[:, :17], first)
        y_second, _ = _step_all(layer, u[:, 17:], second, state)
    assert _rel(torch.cat([y_first, y_second], dim=1), y_whole) < 1e-10


def test_forward_matches_brute_force_reference():
    """Δ_k = dt_k · softplus(dt_proj(δ_k)) and the rest of the layer, against loops written from the paper."""
    layer = _layer(bias=True, d_model=5, d_state=3, d_conv=4, dt_rank=2)
    u, dt = _inputs(2, 23, layer.d_model)
    with torch.no_grad():
        assert _rel(layer(u, dt), _reference(layer, u, dt)) < 1e-10
        assert _rel(layer(u), _reference(layer, u, None)) < 1e-10
        # dt really enters: doubling it changes the output
        assert _rel(layer(u, 2 * dt), layer(u, dt)) > 1e-3


def test_fused_sequential_and_chunked_scans_agree():
    fused = _layer()
    chunked, sequential = _layer(scan_chunk_size=3, scan_method="chunked"), _layer(scan_method="sequential")
    u, dt = _inputs(2, 50, fused.d_model)
    with torch.no_grad():
        y = fused(u, dt)
        assert _rel(chunked(u, dt), y) < 1e-12
        assert _rel(sequential(u, dt), y) < 1e-12


def test_dt_ones_equals_none():
    layer = _layer()
    u, _ = _inputs(2, 21, layer.d_model)
    with torch.no_grad():
        assert torch.equal(layer(u, torch.ones(2, 21, dtype=f64)), layer(u))
        state = layer.allocate_state(2)
        y1, s1 = layer.step(u[:, 0], state, torch.ones(2, dtype=f64))
        y0, s0 = layer.step(u[:, 0], state)
    assert torch.equal(y1, y0) and all(torch.equal(a, b) for a, b in zip(s1, s0))


@pytest.mark.parametrize("what", ["u", "dt"])
def test_causal(what):
    layer = _layer(scan_chunk_size=4)
    u, dt = _inputs(2, 40, layer.d_model)
    t = 22
    u2, dt2 = u.clone(), dt.clone()
    if what == "u":
        u2[:, t] += 1.0
    else:
        dt2[:, t] *= 3.0
    with torch.no_grad():
        y, y2 = layer(u, dt), layer(u2, dt2)
    assert torch.equal(y[:, :t], y2[:, :t])
    assert (y[:, t] - y2[:, t]).abs().min() > 1e-6


# --- long sequences, precision ------------------------------------------------------------------


def test_finite_gradients_on_a_long_sequence():
    torch.manual_seed(0)
    layer = MambaLayer(8, d_state=4)
    g = torch.Generator().manual_seed(0)
    L = 16384
    u = torch.randn(1, L, 8, generator=g)
    dt = torch.exp(torch.empty(1, L).uniform_(math.log(0.1), math.log(10.0), generator=g))
    y = layer(u, dt)
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    for name, param in layer.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_bfloat16_autocast_scans_in_float32(monkeypatch):
    seen, real_scan, real_selective = [], mamba_module.ssm_scan, mamba_module.selective_scan

    def recording_scan(u, dA, dB, C, D=None, **kwargs):
        seen.append({t.dtype for t in (u, dA, dB, C, D)})
        return real_scan(u, dA, dB, C, D, **kwargs)

    def recording_selective(u, delta, A, B, C, D=None, x0=None):
        seen.append({t.dtype for t in (u, delta, A, B, C, D)})
        return real_selective(u, delta, A, B, C, D, x0)

    monkeypatch.setattr(mamba_module, "ssm_scan", recording_scan)  # the chunked path
    monkeypatch.setattr(mamba_module, "selective_scan", recording_selective)  # the fused sequential path
    layer = _layer(torch.float32)
    u, dt = _inputs(2, 20, layer.d_model, torch.float32)
    with torch.no_grad():
        y32 = layer(u, dt)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y16 = layer(u, dt)
            y_step, state = layer.step(u[:, 0], layer.allocate_state(2), dt[:, 0])
    assert seen == [{torch.float32}, {torch.float32}]  # the float32 call, then the autocast one
    assert y16.dtype == torch.bfloat16 and torch.isfinite(y16).all()
    assert _rel(y16.float(), y32) < 0.05
    assert state[1].dtype == torch.float32 and _rel(y_step.float(), y32[:, 0]) < 0.05


# --- construction, state, parameters ------------------------------------------------------------


def test_sizes_and_initialization():
    layer = MambaLayer(40, d_state=6, expand=3, dt_min=1e-3, dt_max=1e-1)
    assert (layer.d_model, layer.d_inner, layer.d_state, layer.dt_rank) == (40, 120, 6, 3)  # ceil(40/16)
    A = -torch.exp(layer.A_log.detach())
    assert torch.allclose(A, -torch.arange(1.0, 7.0).expand(120, 6))  # S4D-Real
    assert torch.equal(layer.D.detach(), torch.ones(120))
    delta0 = F.softplus(layer.dt_proj.bias.detach())  # initial Δ per inner channel
    assert delta0.min() >= 1e-3 * (1 - 1e-5) and delta0.max() <= 1e-1 * (1 + 1e-5)
    assert layer.dt_proj.weight.abs().max() <= 3**-0.5
    y = layer(torch.randn(2, 5, 40))
    assert y.shape == (2, 5, 40)


def test_allocate_state():
    layer = _layer(d_conv=4)
    conv_state, ssm_state = layer.allocate_state(3)
    assert conv_state.shape == (3, layer.d_inner, 3) and ssm_state.shape == (3, layer.d_inner, layer.d_state)
    assert conv_state.dtype == ssm_state.dtype == f64
    assert not conv_state.any() and not ssm_state.any()
    # d_conv = 1: no conv buffer, and step still equals forward
    layer = _layer(d_conv=1)
    u, dt = _inputs(2, 9, layer.d_model)
    assert layer.allocate_state(2)[0].shape == (2, layer.d_inner, 0)
    with torch.no_grad():
        assert _rel(_step_all(layer, u, dt)[0], layer(u, dt)) < 1e-10


def test_ssm_parameters_carry_no_weight_decay_hint():
    layer = _layer()
    assert layer.A_log._optim == {"weight_decay": 0.0}
    assert layer.D._optim == {"weight_decay": 0.0}
    others = [name for name, p in layer.named_parameters() if hasattr(p, "_optim")]
    assert sorted(others) == ["A_log", "D"]


def test_inputs_are_not_modified():
    layer = _layer()
    u, dt = _inputs(2, 12, layer.d_model)
    u.requires_grad_(True)
    u0, dt0 = u.detach().clone(), dt.clone()
    layer(u, dt).sum().backward()
    assert torch.equal(u.detach(), u0) and torch.equal(dt, dt0)
    state = tuple(s.uniform_() for s in layer.allocate_state(2))
    state0 = tuple(s.clone() for s in state)
    with torch.no_grad():
        layer.step(u[:, 0].detach(), state, dt[:, 0])
    assert all(torch.equal(a, b) for a, b in zip(state, state0))


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"d_model": 0}, "d_model"),
        ({"d_model": 4.0}, "d_model"),
        ({"d_state": 0}, "d_state"),
        ({"d_conv": 0}, "d_conv"),
        ({"expand": 0}, "expand"),
        ({"dt_rank": "full"}, "dt_rank"),
        ({"dt_rank": 0}, "dt_rank"),
        ({"dt_min": 0.0}, "dt_min"),
        ({"dt_max": float("nan")}, "dt_max"),
        ({"dt_min": 0.2, "dt_max": 0.1}, "dt_min must be <= dt_max"),
        ({"dt_init_floor": -1.0}, "dt_init_floor"),
        ({"bias": "yes"}, "bias"),
        ({"conv_bias": 1}, "conv_bias"),
        ({"scan_chunk_size": 1}, "scan_chunk_size"),
        ({"scan_method": "fast"}, "scan_method 'fast'.*'chunked', 'sequential'"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MambaLayer(**({"d_model": 4} | kwargs))


def test_bad_forward_inputs():
    layer = _layer()
    u, dt = _inputs(2, 8, layer.d_model)
    with pytest.raises(ValueError, match=r"input must have shape \(batch, L, 4\)"):
        layer(u[0])
    with pytest.raises(ValueError, match=r"input must have shape \(batch, L, 4\)"):
        layer(u[..., :3])
    with pytest.raises(ValueError, match=r"dt must have shape \(batch, L\) = \(2, 8\)"):
        layer(u, dt[:, :7])
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        dt_bad = dt.clone()
        dt_bad[1, 3] = bad
        with pytest.raises(ValueError, match="dt must be finite and strictly positive"):
            layer(u, dt_bad)


def test_bad_step_inputs():
    layer = _layer()
    u, dt = _inputs(2, 1, layer.d_model)
    state = layer.allocate_state(2)
    with pytest.raises(ValueError, match=r"step input must have shape \(batch, 4\)"):
        layer.step(u, state)
    with pytest.raises(ValueError, match=r"dt must have shape \(batch,\) = \(2,\)"):
        layer.step(u[:, 0], state, dt)
    with pytest.raises(ValueError, match="dt must be finite and strictly positive"):
        layer.step(u[:, 0], state, -dt[:, 0])
    with pytest.raises(ValueError, match="state must be the pair"):
        layer.step(u[:, 0], state[1])
    with pytest.raises(ValueError, match=r"ssm_state must have shape \(2, 8, 5\)"):
        layer.step(u[:, 0], (state[0], state[1][..., :4]))
    with pytest.raises(ValueError, match=r"conv_state must have shape \(2, 8, 2\)"):
        layer.step(u[:, 0], layer.allocate_state(3)[:1] + state[1:])
    with pytest.raises(ValueError, match="batch"):
        layer.allocate_state(0)


def test_clear_cache_after_an_edit_through_data():
    """The step memo (A, the transposed weights) cannot see a write through ``.data``; after
    ``clear_cache()`` the step equals a fresh layer's loaded with the same state (float64)."""
    layer = _layer().eval()
    u, _ = _inputs(2, 12, layer.d_model)
    with torch.no_grad():
        before = _step_all(layer, u)[0]  # the step constants memoised
        layer.A_log.data.add_(0.7)
        layer.out_proj.weight.data.mul_(-2.0)
        assert layer.clear_cache() is layer
        ys = _step_all(layer, u)[0]
        fresh = _layer(seed=5).eval()
        fresh.load_state_dict(layer.state_dict())
        ref = _step_all(fresh, u)[0]
        assert _rel(ref, before) > 1e-2 and _rel(ys, ref) < 1e-13 and _rel(ys, layer(u)) < 1e-8


# --- the fused C++ step (CPU inference) ---------------------------------------------------------


def _count_fused_steps(monkeypatch):
    from ssmforecast.math import _fused

    calls = []
    original = _fused.mamba_step
    monkeypatch.setattr(_fused, "mamba_step", lambda *a: calls.append(a[0].dtype) or original(*a))
    return calls


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("kwargs", [{}, {"conv_bias": False, "d_conv": 1}, {"d_conv": 4, "bias": True}], ids=["default", "K1-nobias", "K4-bias"])
def test_fused_step_equals_the_torch_step(monkeypatch, dtype, tol, kwargs):
    """Without grad on the CPU the layer's step runs as one C++ call (the four projections, conv +
    SiLU, SSM + gate): same outputs and states as the torch step body (float64 to rounding), over an
    irregular stream, with and without biases, and the caller's state is not modified."""
    needs_fused()
    calls = _count_fused_steps(monkeypatch)
    layer = _layer(dtype, **kwargs).eval()
    u, dt = _inputs(3, 12, layer.d_model, dtype)
    constants = layer._step_constants()
    state = layer.allocate_state(3)
    ref_state = tuple(s.clone() for s in state)
    with torch.no_grad():
        for k in range(12):
            before = tuple(s.clone() for s in state)
            y, new_state = layer.step(u[:, k], state, dt[:, k] if k % 2 else None)
            assert all(torch.equal(a, b) for a, b in zip(state, before))  # not modified in place
            y_ref, ref_state = mamba_module._step_body(u[:, k], *ref_state, dt[:, k] if k % 2 else None, constants)
            assert _rel(y, y_ref) < tol
            for s, r in zip(new_state, ref_state):
                assert s.shape == r.shape and s.dtype == r.dtype
                assert r.numel() == 0 or _rel(s, r) < tol
            state = new_state
    assert calls == [dtype] * 12


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_fused_step_softplus_and_silu_over_wide_ranges(monkeypatch, dtype, tol):
    """The C++ step's own softplus (log1p(e^r) by its float32 exp and log; r itself above 20) and SiLU
    against torch's, read through the new SSM state from zero (h = Δ x B): dt_proj's bias spread
    over [−30, 30] puts Δ = softplus(δ) on both sides of 20 and down to 1e-13, large in_proj weights
    put the SiLU inputs far into both tails."""
    needs_fused()
    calls = _count_fused_steps(monkeypatch)
    layer = _layer(dtype, d_model=4, d_state=3, expand=16).eval()  # d_inner 64
    with torch.no_grad():
        layer.dt_proj.bias.copy_(torch.linspace(-30, 30, layer.dt_proj.bias.numel(), dtype=dtype))
        layer.in_proj.weight.mul_(40)
    u, _ = _inputs(2, 1, layer.d_model, dtype)
    state = layer.allocate_state(2)
    with torch.no_grad():
        y, (_, h) = layer.step(u[:, 0], state)
        y_ref, (_, h_ref) = mamba_module._step_body(u[:, 0], *state, None, layer._step_constants())
    assert calls == [dtype]
    torch.testing.assert_close(h, h_ref, rtol=tol, atol=0)
    torch.testing.assert_close(y, y_ref, rtol=tol, atol=tol * y_ref.abs().max().item())


def test_fused_step_is_skipped_under_grad_autocast_and_the_switch(monkeypatch):
    """With autograd (training through steps), under CPU autocast, or with SSMFORECAST_FUSED_SCAN=0
    the torch step runs."""
    needs_fused()
    from ssmforecast.math import _fused

    calls = _count_fused_steps(monkeypatch)
    layer = _layer(torch.float32)
    u, _ = _inputs(2, 1, layer.d_model, torch.float32)
    state = layer.allocate_state(2)
    y, _ = layer.step(u[:, 0], state)  # grad enabled
    assert y.requires_grad and calls == []
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        layer.step(u[:, 0], state)
    assert calls == []
    monkeypatch.setenv(_fused.ENV_SWITCH, "0")
    with torch.no_grad():
        layer.step(u[:, 0], state)
    assert calls == []
    monkeypatch.delenv(_fused.ENV_SWITCH)
    with torch.no_grad():
        layer.step(u[:, 0], state)
    assert calls == [torch.float32]
