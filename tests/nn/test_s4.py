"""S4 and S4D layers: recurrent == parallel, causality, time steps, resampling, gradients, errors."""

import copy
import math
import re

import pytest
import torch
import torch.nn.functional as F

from ssmforecast.math.discretize import zoh_diag
from ssmforecast.nn.s4 import S4DLayer, S4Layer

from _stepping import run_steps as _stepped
from conftest import needs_fused

f64 = torch.float64

CONFIGS = {
    "s4d-lin-zoh": (S4DLayer, {}),
    "s4d-legs-bilinear": (S4DLayer, {"init": "legs", "discretization": "bilinear"}),
    "s4d-inv-zoh": (S4DLayer, {"init": "inv"}),
    "s4d-lin-foh": (S4DLayer, {"discretization": "foh"}),
    "s4-bilinear": (S4Layer, {}),
    "s4-zoh": (S4Layer, {"discretization": "zoh"}),
}


def _layer(name, d_model=4, d_state=8, dtype=f64, seed=0, log_dt=-1.0):
    torch.manual_seed(seed)
    cls, kw = CONFIGS[name]
    layer = cls(d_model, d_state, **kw).to(dtype)
    with torch.no_grad():  # Δ ≈ 0.37: dynamics that visibly move within a short test sequence
        layer.log_dt.copy_(log_dt + 0.3 * torch.randn(d_model, dtype=dtype))
    return layer.eval()




def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def _irregular_dt(batch, L, dtype=f64, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.exp(torch.empty(batch, L, dtype=dtype).uniform_(math.log(0.1), math.log(10.0), generator=g))


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("irregular", [False, True])
def test_step_equals_forward_float64(name, irregular):
    layer = _layer(name)
    u = torch.randn(3, 60, 4, dtype=f64)
    dt = _irregular_dt(3, 60) if irregular else None
    y = layer(u, dt)
    ys, _ = _stepped(layer, u, dt)
    assert y.shape == (3, 60, 4)
    assert _rel(ys, y) < 1e-8


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("irregular", [False, True])
def test_step_equals_forward_float32(name, irregular):
    layer = _layer(name, dtype=torch.float32)
    u = torch.randn(2, 200, 4)
    dt = _irregular_dt(2, 200, torch.float32) if irregular else None
    y = layer(u, dt)
    ys, _ = _stepped(layer, u, dt)
    assert y.dtype == torch.float32
    assert _rel(ys, y) < 1e-4


@pytest.mark.parametrize("name", ["s4d-lin-zoh", "s4-bilinear"])
def test_state_continues_a_stream(name):
    """forward on the whole == step through the first half, then step the rest from that state."""
    layer = _layer(name)
    u, dt = torch.randn(2, 40, 4, dtype=f64), _irregular_dt(2, 40)
    _, state = _stepped(layer, u[:, :25], dt[:, :25])
    rest, _ = _stepped(layer, u[:, 25:], dt[:, 25:], state)
    assert _rel(rest, layer(u, dt)[:, 25:]) < 1e-8


@pytest.mark.parametrize("name", CONFIGS)
def test_causality(name):
    layer = _layer(name)
    u, dt = torch.randn(1, 40, 4, dtype=f64), _irregular_dt(1, 40)
    for t in (0, 17, 39):
        for irregular in (False, True):
            d = dt if irregular else None
            v = u.clone()
            v[:, t] += 1.0
            y0, y1 = layer(u, d), layer(v, d)
            assert torch.equal(y0[:, :t], y1[:, :t]) or (y0[:, :t] - y1[:, :t]).abs().max() < 1e-12
            assert (y0[:, t] - y1[:, t]).abs().max() > 1e-6
        if t:  # a later gap changes nothing before it
            d2 = dt.clone()
            d2[:, t] *= 3.0
            assert (layer(u, dt)[:, :t] - layer(u, d2)[:, :t]).abs().max() < 1e-12


@pytest.mark.parametrize("name", CONFIGS)
def test_dt_ones_equals_no_dt_and_constant_dt_scales_delta(name):
    layer = _layer(name)
    u = torch.randn(2, 50, 4, dtype=f64)
    y = layer(u)
    torch.testing.assert_close(layer(u, torch.ones(2, 50, dtype=f64)), y, rtol=0, atol=1e-12)
    # dt = c everywhere equals a model whose Δ is multiplied by c
    c = 2.5
    scaled = _layer(name)
    with torch.no_grad():
        scaled.log_dt.add_(math.log(c))
    if hasattr(scaled, "C_tilde"):  # S4 learns C̃ = C(I − Ā^L₀), which moves with Δ: keep the same C
        scaled._set_C(layer._C().detach())
    torch.testing.assert_close(layer(u, torch.full((2, 50), c, dtype=f64)), scaled(u), rtol=0, atol=1e-10)
    # and the scan/recurrence path (dt not constant across the batch) gives the same
    dt = torch.full((2, 50), c, dtype=f64)
    dt[1] = 1.0
    y_mixed = layer(u, dt)
    assert _rel(y_mixed[0], scaled(u)[0]) < 1e-9 and _rel(y_mixed[1], y[1]) < 1e-9


def test_s4d_kernel_matches_explicit_ssm():
    """The layer's kernel is 2 Re Σ C B̄ Ā^l of its own parameters under ZOH."""
    layer = _layer("s4d-lin-zoh")
    Lambda = torch.complex(-torch.exp(layer.log_neg_re), layer.im)
    dA, dB = zoh_diag(Lambda, torch.view_as_complex(layer.B), torch.exp(layer.log_dt))
    C = torch.view_as_complex(layer.C)
    l = torch.arange(30, dtype=f64)
    ref = 2 * (C[..., None] * dB[..., None] * dA[..., None] ** l).sum(-2).real
    torch.testing.assert_close(layer.kernel(30), ref, rtol=1e-10, atol=1e-12)


def _resampling_gap(rate, name="s4d-lin-zoh"):
    """Max gap at the shared instants, after the first half (the start transient differs: the input
    before the first sample is read as flat over one step of each rate), between the S4D layer run on
    f sampled at `rate` (dt = 1) and at 2·rate (dt = ½), f smooth in physical time; the model's time
    unit is 1/rate."""
    layer = _layer(name, d_model=3, d_state=16, log_dt=-0.5)
    L = 40 * rate
    s_coarse = torch.arange(L, dtype=f64) / rate
    s_fine = torch.arange(2 * L, dtype=f64) / (2 * rate)

    def f(s):
        return torch.stack([torch.sin(2 * math.pi * s / 10), torch.cos(2 * math.pi * s / 7.3), torch.sin(s / 3) ** 2], -1)[None]

    y_coarse = layer(f(s_coarse), torch.ones(1, L, dtype=f64))[:, L // 2 :]
    y_fine = layer(f(s_fine), torch.full((1, 2 * L), 0.5, dtype=f64))[:, L::2]  # the instants of y_coarse
    return (y_fine - y_coarse).abs().max().item() / y_coarse.abs().max().item()


def test_zero_shot_resampling():
    """Same signal at rate r (dt = 1) and 2r (dt = ½): outputs agree at the shared instants, and better
    as r grows: S4's Speech Commands resampling result in miniature. The zero-order hold's error
    is O(1/r) (measured 0.054, 0.020, 0.0051 at r = 2, 8, 32); the first-order hold, exact for
    the straight lines between samples, is O(1/r²) (measured 0.0067, 7.3e-4, 5.0e-5)."""
    zoh = {r: _resampling_gap(r) for r in (2, 8, 32)}
    foh = {r: _resampling_gap(r, "s4d-lin-foh") for r in (2, 8, 32)}
    assert 2 < zoh[2] / zoh[8] < 6 and 2 < zoh[8] / zoh[32] < 6, zoh  # first order: 4× per 4× rate
    assert foh[2] / foh[8] > 8 and foh[8] / foh[32] > 8, foh  # second order: 16× per 4× rate
    assert foh[32] < zoh[32] / 50, (zoh, foh)


@pytest.mark.parametrize("name", ["s4d-lin-zoh", "s4-bilinear"])
def test_gradients_finite_at_L_16384(name):
    torch.manual_seed(0)
    cls, kw = CONFIGS[name]
    layer = cls(4, 8, **kw)
    u = torch.randn(1, 16384, 4)
    y = layer(u)
    y.square().mean().backward()
    assert torch.isfinite(y).all()
    for pname, p in layer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("name", ["s4d-lin-zoh", "s4d-legs-bilinear", "s4d-lin-foh"])
def test_s4d_irregular_scan_in_checkpointed_blocks_equals_one_block(name, monkeypatch):
    """Irregular steps: S4D's scan in time blocks (checkpointed under autograd; the first-order
    hold's u_{k−1} carried across a block border) gives the values and parameter gradients of one
    block over the whole sequence (float64), with and without grad, and autograd keeps a fraction
    of the one-block memory. (The torch path: the fused C++ scan switched off.)"""
    import ssmforecast.nn.s4 as s4
    from ssmforecast.math import _fused

    monkeypatch.setenv(_fused.ENV_SWITCH, "0")
    layer = _layer(name).train()
    u, dt = torch.randn(3, 75, 4, dtype=f64, generator=torch.Generator().manual_seed(2)), _irregular_dt(3, 75)
    runs = {}
    for numel in (10**9, 3 * 4 * 4 * s4.IRREGULAR_MIN_BLOCK):  # one block; blocks of 16 steps (five)
        monkeypatch.setattr(s4, "IRREGULAR_BLOCK_NUMEL", numel)
        saved = []
        layer.zero_grad()
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel() * t.element_size()) or t, lambda t: t):
            y = layer(u, dt)
        y.square().sum().backward()
        with torch.no_grad():
            y_no_grad = layer(u, dt)
        runs[numel] = (sum(saved), [y.detach(), y_no_grad] + [p.grad.clone() for p in layer.parameters()])
    (one_bytes, one), (blocks_bytes, blocks) = runs.values()
    for a, b in zip(blocks, one):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert blocks_bytes < one_bytes / 4


@pytest.mark.parametrize("name", ["s4d-lin-zoh", "s4d-legs-bilinear", "s4d-inv-zoh", "s4d-lin-foh"])
def test_s4d_irregular_fused_scan_equals_the_torch_blocks(name, monkeypatch):
    """Irregular steps on the CPU: the layer runs the fused diagonal scan (ZOH, GBT and the
    first-order hold), with the values and parameter gradients of the torch path (float64), with
    and without grad."""
    import ssmforecast.nn.s4 as s4
    from ssmforecast.math import _fused

    layer = _layer(name).train()
    u, dt = torch.randn(3, 75, 4, dtype=f64, generator=torch.Generator().manual_seed(2)), _irregular_dt(3, 75)
    calls = []
    original = s4.diagonal_scan
    monkeypatch.setattr(s4, "diagonal_scan", lambda *a, **k: calls.append(k) or original(*a, **k))
    runs = {}
    for switch in ("1", "0"):
        monkeypatch.setenv(_fused.ENV_SWITCH, switch)
        layer.zero_grad()
        y = layer(u, dt)
        y.square().sum().backward()
        with torch.no_grad():
            y_no_grad = layer(u, dt)
        runs[switch] = [y.detach(), y_no_grad] + [p.grad.clone() for p in layer.parameters()]
    needs_fused()
    assert len(calls) == 2 and [k["method"] for k in calls] == [layer.discretization] * 2
    for a, b in zip(runs["1"], runs["0"]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_s4d_irregular_gradients_finite_at_L_16384():
    torch.manual_seed(0)
    layer = S4DLayer(4, 8)
    u, dt = torch.randn(1, 16384, 4), _irregular_dt(1, 16384, torch.float32)
    y = layer(u, dt)
    y.square().mean().backward()
    assert torch.isfinite(y).all()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())


@pytest.mark.parametrize("name", ["s4d-lin-zoh", "s4-bilinear"])
def test_bfloat16_autocast_is_close_to_float32(name):
    layer = _layer(name, dtype=torch.float32)
    u = torch.randn(2, 128, 4)
    y = layer(u)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        yb = layer(u)
    assert torch.isfinite(yb).all()
    assert _rel(yb.float(), y) < 5e-2


def test_ssm_parameters_carry_optimizer_hints():
    layer = S4Layer(4, 8, lr=1e-3)
    hinted = {n for n, p in layer.named_parameters() if hasattr(p, "_optim")}
    assert hinted == {"log_dt", "log_neg_re", "im", "P", "B"}
    assert all(p._optim == {"weight_decay": 0.0, "lr": 1e-3} for n, p in layer.named_parameters() if n in hinted)
    assert not hasattr(layer.C_tilde, "_optim") and not hasattr(layer.output_linear.weight, "_optim")


def test_errors_and_inputs_untouched():
    layer = _layer("s4d-lin-zoh")
    u = torch.randn(2, 10, 4, dtype=f64)
    dt = torch.ones(2, 10, dtype=f64)
    u0, dt0 = u.clone(), dt.clone()
    layer(u, dt)
    assert torch.equal(u, u0) and torch.equal(dt, dt0)
    with pytest.raises(ValueError, match=r"input must have shape \(batch, L, 4\)"):
        layer(u[..., :3])
    with pytest.raises(ValueError, match=r"dt must have shape \(batch, L\)"):
        layer(u, dt[:, :5])
    bad = dt.clone()
    bad[0, 3] = 0.0
    with pytest.raises(ValueError, match="dt must be finite and strictly positive"):
        layer(u, bad)
    bad[0, 3] = float("nan")
    with pytest.raises(ValueError, match="dt must be finite and strictly positive"):
        layer(u, bad)
    with pytest.raises(ValueError, match=r"step input must have shape \(batch, 4\)"):
        layer.step(u[:, 0, :2], layer.allocate_state(2))
    with pytest.raises(ValueError, match="d_state must be an even int"):
        S4DLayer(4, 7)
    with pytest.raises(ValueError, match="unknown init 'fourier'"):
        S4DLayer(4, 8, init="fourier")
    with pytest.raises(ValueError, match="unknown discretization 'tustin'"):
        S4Layer(4, 8, discretization="tustin")
    with pytest.raises(ValueError, match="unknown discretization 'foh' for S4Layer; valid choices are 'zoh', 'bilinear'"):
        S4Layer(4, 8, discretization="foh")  # the first-order hold is S4D's (diagonal A) only
    with pytest.raises(ValueError, match="dt_min"):
        S4Layer(4, 8, dt_min=0.1, dt_max=0.01)


@pytest.mark.parametrize("name", ["s4d-lin-zoh", "s4-bilinear", "s4-zoh"])
def test_cached_step_matrices_follow_parameter_updates(name):
    """Under no_grad the constant-step matrices are memoised; an in-place update (as an optimizer
    step does) must invalidate them."""
    layer = _layer(name)
    u = torch.randn(2, 30, 4, dtype=f64)
    with torch.no_grad():
        before, _ = _stepped(layer, u)
        assert _rel(before, layer(u)) < 1e-8
        layer.log_dt.add_(0.5)
        (layer.C_tilde if hasattr(layer, "C_tilde") else layer.C).mul_(-1.0)  # C̃ = C(I − Ā^L₀) is linear in C
        after, _ = _stepped(layer, u)
        assert _rel(after, layer(u)) < 1e-8
        assert _rel(after, before) > 1e-3
    with torch.inference_mode():
        ys, _ = _stepped(layer, u)
    assert _rel(ys, layer(u)) < 1e-8


@pytest.mark.parametrize("name", CONFIGS)
def test_clear_cache_after_an_edit_through_data(name):
    """A write through ``.data`` (an EMA of the weights written that way) bumps no version, so the
    memo cannot see it; after ``clear_cache()`` forward and step are those of a fresh layer loaded
    with the same state (float64). ``load_state_dict`` needs no ``clear_cache`` (it bumps versions)."""
    layer = _layer(name)
    u = torch.randn(2, 20, 4, dtype=f64)
    with torch.no_grad():
        y0 = layer(u)  # the kernel and the step matrices memoised
        _stepped(layer, u)
        layer.log_dt.data.add_(0.7)
        layer.B.data.copy_(2 * layer.B.data)
        assert layer.clear_cache() is layer
        y, ys = layer(u), _stepped(layer, u)[0]
    fresh = _layer(name, seed=5)
    fresh.load_state_dict(layer.state_dict())
    with torch.no_grad():
        ref, ref_s = fresh(u), _stepped(fresh, u)[0]
        assert _rel(ref, y0) > 1e-2  # the edit changes the function
        assert _rel(y, ref) < 1e-13 and _rel(ys, ref_s) < 1e-13
        other = _layer(name, seed=9)
        other(u)
        _stepped(other, u)
        other.load_state_dict(layer.state_dict())
        assert _rel(other(u), ref) < 1e-13 and _rel(_stepped(other, u)[0], ref_s) < 1e-13


@pytest.mark.parametrize("name", CONFIGS)
def test_step_rejects_a_state_of_another_shape(name):
    """A state of another batch would broadcast, one of another N/2 fail inside an op: both are
    named instead (S4D's first-order hold: the pair (x, u_prev) is checked)."""
    layer = _layer(name)  # H = 4, N = 8
    foh = layer.discretization == "foh"
    u = torch.randn(1, 4, dtype=f64)
    wrap = (lambda x: (x, None)) if foh else (lambda x: x)
    with torch.no_grad():
        with pytest.raises(ValueError, match=re.escape("state must have shape (batch, H, N/2) = (1, 4, 4), got (3, 4, 4)")):
            layer.step(u, layer.allocate_state(3))
        with pytest.raises(ValueError, match=re.escape("state must have shape (batch, H, N/2) = (2, 4, 4), got (2, 4, 3)")):
            layer.step(torch.randn(2, 4, dtype=f64), wrap(torch.zeros(2, 4, 3, dtype=torch.complex128)))
        with pytest.raises(ValueError, match="state must be the (tensor|pair)"):
            layer.step(u, [torch.zeros(1, 4, 4, dtype=torch.complex128)] * 3)
        if foh:
            x = torch.zeros(1, 4, 4, dtype=torch.complex128)
            with pytest.raises(ValueError, match=re.escape("u_prev of the state must be None or have shape (batch, H) = (1, 4), got (2, 4)")):
                layer.step(u, (x, torch.zeros(2, 4, dtype=f64)))
        y, state = layer.step(u, layer.allocate_state(1))
        assert y.shape == (1, 4)


def _count_kernel_builds(layer, monkeypatch):
    """Wrap ``layer.kernel`` (the first-order hold's ``_foh_kernels``) so that every build of K̄ is
    recorded as (L, scale)."""
    name = "_foh_kernels" if layer.discretization == "foh" else "kernel"
    calls, kernel = [], getattr(layer, name)

    def counted(L, scale=1.0):
        calls.append((L, scale))
        return kernel(L, scale)

    monkeypatch.setattr(layer, name, counted)
    return calls


@pytest.mark.parametrize("name", CONFIGS)
def test_inference_reuses_the_kernel(name, monkeypatch):
    """Under no_grad / inference_mode, a forward with a regular step reuses K̄ of the same (L, step);
    the cached result equals a fresh one."""
    layer = _layer(name)
    u = torch.randn(2, 30, 4, dtype=f64)
    fresh = layer(u)  # grad enabled: built, not cached
    calls = _count_kernel_builds(layer, monkeypatch)
    with torch.no_grad():
        first = layer(u)
        second = layer(u)
        assert calls == [(30, 1.0)]
        layer(u, torch.ones(2, 30, dtype=f64))  # dt = 1 everywhere: the same step, reused
        assert len(calls) == 1
        layer(u, torch.full((2, 30), 2.0, dtype=f64))  # another step: rebuilt
        layer(u[:, :20])  # another length: rebuilt
        assert calls == [(30, 1.0), (30, 2.0), (20, 1.0)]
        layer(u, _irregular_dt(2, 30))  # irregular steps: no kernel
        assert len(calls) == 3
    with torch.inference_mode():
        third = layer(u)
        fourth = layer(u)
    assert len(calls) == 4  # one entry per layer: the last (L, step) only
    torch.testing.assert_close(second, first, rtol=0, atol=0)
    torch.testing.assert_close(fourth, third, rtol=0, atol=0)
    torch.testing.assert_close(first, fresh.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(third, fresh.detach(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["s4d-lin-zoh", "s4-bilinear"])
def test_cached_kernel_follows_parameter_changes(name, monkeypatch):
    """An in-place update (optimizer step), load_state_dict or .to(dtype) invalidates the cached K̄."""
    layer = _layer(name)
    other = _layer(name, seed=5)
    u = torch.randn(2, 30, 4, dtype=f64)
    calls = _count_kernel_builds(layer, monkeypatch)
    with torch.no_grad():
        before = layer(u)
        layer.log_dt.add_(0.5)  # as an optimizer step does
        after = layer(u)
        assert len(calls) == 2 and _rel(after, before) > 1e-3
        layer.load_state_dict(other.state_dict())
        loaded = layer(u)
        assert len(calls) == 3
        torch.testing.assert_close(loaded, other(u), rtol=1e-12, atol=1e-12)
        layer.float()
        y32 = layer(u.float())
        assert len(calls) == 4 and y32.dtype == torch.float32
    fresh = layer(u.float())  # grad enabled: a fresh kernel of the current parameters
    torch.testing.assert_close(y32, fresh.detach(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["s4d-lin-zoh", "s4-bilinear"])
def test_no_kernel_cache_under_grad(name, monkeypatch):
    layer = _layer(name)
    u = torch.randn(2, 30, 4, dtype=f64)
    calls = _count_kernel_builds(layer, monkeypatch)
    y1, y2 = layer(u), layer(u)
    assert len(calls) == 2 and "kernel" not in layer.__dict__.get("_step_cache", {})
    assert y1.requires_grad and y2.requires_grad
    y2.sum().backward()
    assert layer.log_dt.grad is not None and torch.isfinite(layer.log_dt.grad).all()


# --- the constant step (what streaming reads) -------------------------------------------------


@pytest.mark.parametrize("method", ["bilinear", "euler", "backward_euler"])
def test_lowrank_step_equals_dense_gbt(method):
    """S4's constant step Ā = diag(d) − U W, B̄ (O(N r) per channel) equals the dense dplr_gbt."""
    from ssmforecast.math.discretize import METHODS, dplr_gbt
    from ssmforecast.nn.s4 import _conj_expand, _dplr_gbt_lowrank

    layer = S4Layer(4, 8, discretization=method).double()
    with torch.no_grad():
        Lf, Pf, Bf, _ = (_conj_expand(x) for x in layer._params())
        step = layer._step_size()
        dA, dB = dplr_gbt(Lf, Pf, Pf, Bf, step, METHODS[method])  # (H, N, N), (H, N)
        d, U, W, dB_low = _dplr_gbt_lowrank(Lf, Pf, Pf, Bf, step, METHODS[method])
    torch.testing.assert_close(torch.diag_embed(d) - U @ W, dA, rtol=0, atol=1e-12)
    torch.testing.assert_close(dB_low, dB, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", CONFIGS)
def test_state_holds_one_mode_per_conjugate_pair(name):
    layer = _layer(name)
    u, dt = torch.randn(2, 20, 4, dtype=f64), _irregular_dt(2, 20)
    foh = layer.discretization == "foh"  # state (x, u_{k−1}): u_{k−1} None before the first step
    state = layer.allocate_state(2)
    x = state[0] if foh else state
    assert x.shape == (2, 4, 4) and x.is_complex() and (state[1] is None if foh else True)
    with torch.no_grad():
        for k in range(20):  # constant and irregular steps mixed: the state keeps its form
            _, state = layer.step(u[:, k], state, dt[:, k] if k % 3 else None)
            x = state[0] if foh else state
            assert x.shape == (2, 4, 4) and x.is_contiguous()
            if foh:
                assert torch.equal(state[1], u[:, k])


def test_step_memoises_one_entry_under_no_grad():
    """A constant step builds its matrices once; they do not hold an autograd graph."""
    layer = _layer("s4-bilinear")
    u = torch.randn(2, 10, 4, dtype=f64)
    with torch.no_grad():
        _stepped(layer, u)
    cache = layer.__dict__["_step_cache"]
    assert set(cache) == {"full", "lowrank"}
    layer.double()  # .to / .double / .float clear the memo
    assert "_step_cache" not in layer.__dict__


# --- S4's learned C̃ = C (I − Ā^L₀) (S4 App. C.3, as in S4's reference code) ----------------------


def _s4_power_kernel(layer, L, scale=1.0):
    """K̄_l = C Ā^l B̄, l < L, of the layer's own system (C = C̃ (I − Ā^L₀)⁻¹), by the definition."""
    from ssmforecast.math.discretize import METHODS, dplr_gbt
    from ssmforecast.math.kernels import power_kernel
    from ssmforecast.nn.s4 import _conj_expand

    Lf, Pf, Bf, Cf = (_conj_expand(x) for x in layer._params())
    dA, dB = dplr_gbt(Lf, Pf, Pf, Bf, scale * layer._step_size(), METHODS[layer.discretization])
    return power_kernel(dA, dB, Cf, L).real  # (H, L)


@pytest.mark.parametrize("method", ["bilinear", "backward_euler"])
def test_s4_kernel_is_the_power_series_at_every_length(method):
    """The Cauchy kernel from C̃ (L ≤ L₀: the first L terms of the kernel of L₀ terms; L > L₀ or
    another step: C̃ re-formed for it) is C Ā^l B̄ of one system, C = C̃ (I − Ā^L₀)⁻¹, in float64."""
    torch.manual_seed(0)
    layer = S4Layer(3, 8, discretization=method).double()
    with torch.no_grad():
        layer.log_dt.copy_(torch.tensor([-3.0, -1.0, -0.5], dtype=f64))  # slow and fast channels
        L0 = layer.kernel_length
        for L, scale in ((1, 1.0), (37, 1.0), (L0, 1.0), (L0 + 1, 1.0), (300, 1.0), (50, 2.5)):
            ref = _s4_power_kernel(layer, L, scale)
            K = layer.kernel(L, scale)
            assert K.shape == (3, L) and _rel(K, ref) < 1e-10, (L, scale)
        assert layer.kernel_length == L0  # kernel() leaves C̃ as it is


def test_s4_longer_forward_re_references_C_tilde_and_keeps_the_function():
    """A forward at L > L₀ re-references C̃ to L once (in place, no grad); C, hence every view, stays
    the same; later forwards at L or shorter need no dense matrix power."""
    layer = _layer("s4-bilinear")
    L0 = layer.kernel_length
    u = torch.randn(2, 3 * L0 + 5, 4, dtype=f64)
    with torch.no_grad():
        C0 = layer._C()
        before = layer(u[:, :40])
        ys, _ = _stepped(layer, u)  # the recurrent view of the system as it was
    y = layer(u)  # grad enabled, as in training
    assert layer.kernel_length == u.shape[1] and layer.C_tilde.grad is None
    with torch.no_grad():
        torch.testing.assert_close(layer._C(), C0, rtol=0, atol=1e-12 * C0.abs().max().item())
        assert _rel(y, ys) < 1e-8
        assert _rel(layer.kernel(u.shape[1]), _s4_power_kernel(layer, u.shape[1])) < 1e-10
        assert _rel(layer(u[:, :40]), before) < 1e-10  # shorter again: a truncated kernel, same values
    y.square().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())


def test_s4_training_forward_needs_no_dense_matrix_power(monkeypatch):
    """At the learned step and L ≤ L₀, forward and backward are Cauchy + Woodbury + FFT only."""
    layer = S4Layer(4, 8)
    layer(torch.randn(2, 100, 4))  # L₀ becomes 100
    calls = []
    power = torch.linalg.matrix_power
    monkeypatch.setattr(torch.linalg, "matrix_power", lambda *a, **k: calls.append(1) or power(*a, **k))
    for L in (100, 60):
        layer(torch.randn(2, L, 4)).square().mean().backward()
    assert calls == []
    layer(torch.randn(2, 10, 4), torch.full((2, 10), 2.0))  # another step: C̃ re-formed for it
    assert calls


def test_s4_step_forms_C_from_C_tilde_once_per_parameter_version(monkeypatch):
    """The recurrent view reads C = C̃ (I − Ā^L₀)⁻¹ from the step memo: one dense power (and solve)
    per parameter version, not per step."""
    layer = _layer("s4-bilinear")
    u = torch.randn(2, 12, 4, dtype=f64)
    calls = []
    power = torch.linalg.matrix_power
    monkeypatch.setattr(torch.linalg, "matrix_power", lambda *a, **k: calls.append(1) or power(*a, **k))
    with torch.no_grad():
        ys, _ = _stepped(layer, u)
        assert len(calls) == 1
        _stepped(layer, u)
        assert len(calls) == 1
        layer.C_tilde.mul_(2.0)  # as an optimizer step does
        ys2, _ = _stepped(layer, u)
        assert len(calls) == 2
    assert _rel(ys2, layer(u)) < 1e-8 and _rel(ys2, ys) > 1e-3


def _grads(layer):
    return {n: p.grad.clone() for n, p in layer.named_parameters()}


@pytest.mark.parametrize("first", ["shorter", "irregular"])
def test_s4_losses_at_two_lengths_backpropagate_together(first):
    """A loss at L ≤ L₀ (or with irregular dt) and one at L > L₀ back-propagated together (gradient
    accumulation, multi-length losses): the second forward writes no parameter, so the first graph
    stays valid, and the gradient of the sum is the sum of the two taken separately (float64)."""
    layer = _layer("s4-bilinear")
    L0 = layer.kernel_length
    u1, u2 = torch.randn(2, 32, 4, dtype=f64), torch.randn(2, L0 + 36, 4, dtype=f64)
    dt1 = _irregular_dt(2, 32) if first == "irregular" else None
    separate = []
    for u, dt in ((u1, dt1), (u2, None)):
        twin = copy.deepcopy(layer)
        twin(u1, dt1)  # the first forward with grad settles L₀, as it does in the joint run (graph dropped)
        twin(u, dt).square().mean().backward()
        separate.append(_grads(twin))
    C_tilde = layer.C_tilde.detach().clone()
    (layer(u1, dt1).square().mean() + layer(u2).square().mean()).backward()
    assert torch.equal(layer.C_tilde.detach(), C_tilde) and layer.kernel_length == L0
    for name, g in _grads(layer).items():
        ref = separate[0][name] + separate[1][name]
        torch.testing.assert_close(g, ref, rtol=1e-12, atol=1e-12 * ref.abs().max().item(), msg=name)


def _s4_brute_force(layer, u):
    """The layer's output by the definition: y_k = Σ_j K̄_j u_{k−j} + D u_k with K̄_j = C Ā^j B̄ of
    the power series (a direct causal convolution, no FFT, no C̃), then GELU → Linear → GLU."""
    L, H = u.shape[1], u.shape[2]
    K = _s4_power_kernel(layer, L)  # (H, L)
    x = u.transpose(1, 2)  # (batch, H, L)
    y = F.conv1d(F.pad(x, (L - 1, 0)), K.flip(-1)[:, None, :], groups=H) + layer.D[:, None] * x  # (batch, H, L)
    return layer._output(y.transpose(1, 2))  # (batch, L, H)


def test_s4_forward_at_a_longer_length_once_training_began_writes_no_parameter():
    """After the first forward with grad (L₀ settled), a forward at L > L₀, with grad or without (a
    validation pass between optimizer steps), leaves C_tilde bit for bit, its version and L₀ as
    they were, and computes the same function: the direct convolution with C Ā^j B̄ (float64)."""
    layer = _layer("s4-bilinear")
    L0 = layer.kernel_length
    opt = torch.optim.Adam(layer.parameters(), lr=1e-2)
    layer(torch.randn(2, 32, 4, dtype=f64)).square().mean().backward()
    opt.step()  # Adam's moments for C_tilde now refer to L₀
    opt.zero_grad()
    u = torch.randn(2, 2 * L0 + 7, 4, dtype=f64)
    C_tilde, version = layer.C_tilde.detach().clone(), layer.C_tilde._version
    y = layer(u)  # grad enabled
    with torch.no_grad():
        y_eval = layer(u)
    assert torch.equal(layer.C_tilde.detach(), C_tilde) and layer.C_tilde._version == version
    assert layer.kernel_length == L0
    with torch.no_grad():
        ref = _s4_brute_force(layer, u)
    assert _rel(y, ref) < 1e-10 and _rel(y_eval, ref) < 1e-10
    y.square().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters()) and layer.kernel_length_settled


def test_s4_settled_kernel_length_travels_in_the_state_dict():
    """A state dict of a layer that has trained loads as settled (an optimizer state saved beside it
    refers to its C̃): a longer forward on the copy does not re-reference C̃ either."""
    layer = _layer("s4-bilinear")
    layer(torch.randn(1, 10, 4, dtype=f64))
    other = _layer("s4-bilinear", seed=7)
    other.load_state_dict(layer.state_dict())
    C_tilde = other.C_tilde.detach().clone()
    u = torch.randn(1, 100, 4, dtype=f64)
    with torch.no_grad():
        y = other(u)
        assert torch.equal(other.C_tilde, C_tilde) and other.kernel_length == layer.kernel_length
        assert _rel(y, _s4_brute_force(other, u)) < 1e-10
    assert other.kernel_length_settled and not _layer("s4-bilinear").kernel_length_settled


def test_s4_functional_call_leaves_the_given_C_tilde():
    """torch.func.functional_call at L > L₀: the caller's C̃ tensor is read, never re-referenced in
    place, and the output is the layer's function (float64)."""
    layer = _layer("s4-bilinear")
    params = {n: p.detach().clone() for n, p in layer.named_parameters()}
    given = params["C_tilde"].clone()
    u = torch.randn(1, layer.kernel_length + 20, 4, dtype=f64)
    y = torch.func.functional_call(layer, params, (u,))
    assert torch.equal(params["C_tilde"], given) and not layer.kernel_length_settled
    with torch.no_grad():
        assert _rel(y, _s4_brute_force(layer, u)) < 1e-10


def test_s4_initial_C_is_drawn_as_before_and_stored_as_C_tilde():
    """C ~ N(0, ½) complex with the same draws as before (S4D's), converted once to C̃ = C (I − Ā^L₀)."""
    torch.manual_seed(3)
    layer = S4Layer(4, 8)
    torch.manual_seed(3)
    torch.rand(4)  # log Δ
    C = torch.randn(4, 4, dtype=torch.cfloat) * 0.5**0.5
    assert set(dict(layer.named_parameters())) == {"log_dt", "C_tilde", "D", "log_neg_re", "im", "P", "B", "output_linear.weight", "output_linear.bias"}
    torch.testing.assert_close(layer._C(), C, rtol=0, atol=1e-5)
    assert "C" in dict(S4Layer(4, 8, discretization="zoh").named_parameters())  # ZOH learns C itself


def test_s4_state_dict_carries_the_kernel_length():
    layer = _layer("s4-bilinear")
    u = torch.randn(2, 150, 4, dtype=f64)
    with torch.no_grad():
        y = layer(u)
    assert layer.kernel_length == 150
    other = _layer("s4-bilinear", seed=7)
    other.load_state_dict(layer.state_dict())
    assert other.kernel_length == 150
    with torch.no_grad():
        torch.testing.assert_close(other(u), y, rtol=0, atol=1e-13)
        torch.testing.assert_close(other._C(), layer._C(), rtol=0, atol=0)


class _KernelOf(torch.nn.Module):
    """``layer.kernel(L)`` as a forward, for ``torch.func.functional_call``."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, L):
        return self.layer.kernel(L)


@pytest.mark.parametrize("case", ["regular", "shorter", "longer-kernel", "irregular"])
def test_s4_gradcheck(case):
    """Gradients of the forward (or, for L > L₀, of the kernel) with respect to every parameter
    (C̃, Δ, Λ, P, B, D, the Linear), float64 / complex128, against finite differences."""
    torch.manual_seed(0)
    layer = S4Layer(2, 4).double().eval()
    with torch.no_grad():
        layer.log_dt.copy_(torch.tensor([-1.5, -0.5], dtype=f64))
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    L = {"regular": layer.kernel_length, "shorter": 12, "irregular": 8}.get(case)
    u = torch.randn(1, L or 1, 2, dtype=f64)
    dt = _irregular_dt(1, L) if case == "irregular" else None

    def f(*ps):
        new = dict(zip(names, ps))
        if case == "longer-kernel":  # C̃ re-formed for L > L₀ by dense powers and a solve
            return torch.func.functional_call(_KernelOf(layer), {f"layer.{n}": p for n, p in new.items()}, (layer.kernel_length + 9,))
        return torch.func.functional_call(layer, new, (u, dt))

    assert torch.autograd.gradcheck(f, params, eps=1e-6, atol=1e-7, rtol=1e-5)
