"""Backbone: the stack keeps the layer contract (step == forward, causal, dt-aware) for every layer."""

import math

import pytest
import torch

from ssmforecast.nn import LAYERS, Backbone, ResidualBlock, S4DLayer, interval_means

from _stepping import run_steps as _stepped

f64 = torch.float64


def _backbone(layer="s4d", dtype=f64, seed=0, **kw):
    torch.manual_seed(seed)
    kw = {"d_output": 2, "ff_expand": 2, "layer_kwargs": {"d_state": 4}} | kw
    return Backbone(3, 8, 2, layer=layer, **kw).to(dtype).eval()


def _dt(batch, L, dtype=f64, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.exp(torch.empty(batch, L, dtype=dtype).uniform_(math.log(0.1), math.log(10.0), generator=g))




def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("layer", [*LAYERS, "s4d-foh"])
@pytest.mark.parametrize("irregular", [False, True])
@pytest.mark.parametrize("dtype,tol", [(f64, 1e-8), (torch.float32, 1e-4)])
def test_backbone_step_equals_forward(layer, irregular, dtype, tol):
    foh = {"layer": "s4d", "layer_kwargs": {"d_state": 4, "discretization": "foh"}}  # the first-order hold
    model = _backbone(layer, dtype) if layer != "s4d-foh" else _backbone(dtype=dtype, **foh)
    u = torch.randn(2, 48, 3, dtype=dtype)
    dt = _dt(2, 48, dtype) if irregular else None
    y = model(u, dt)
    assert y.shape == (2, 48, 2) and y.dtype == dtype
    assert _rel(_stepped(model, u, dt)[0], y) < tol


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("irregular", [False, True])
def test_linear_hold_step_equals_forward_and_reads_interval_means(layer, irregular):
    """hold="linear": the recurrent step (keeping v_{k−1}) equals the convolutional/scan forward,
    which equals each block's layer run by hand on ½ (v_{k−1} + v_k); the constant hold differs."""
    model = _backbone(layer, hold="linear")
    u = torch.randn(2, 40, 3, dtype=f64)
    dt = _dt(2, 40) if irregular else None
    with torch.no_grad():
        y = model(u, dt)
        assert _rel(_stepped(model, u, dt)[0], y) < 1e-8
        x = model.encoder(u)
        for block in model.blocks:  # by hand: interval means of the normalised input, v_0 first
            v = block.norm(x)
            means = torch.cat([v[:, :1], (v[:, 1:] + v[:, :-1]) / 2], dim=1)
            x = block._feed_forward(x + block.layer(means, dt))
        torch.testing.assert_close(y, model.head(model.norm(x)), rtol=1e-12, atol=1e-12)
        for block in model.blocks:
            block.hold = "constant"
        assert _rel(model(u, dt), y) > 1e-3
    assert model.compile_step(backend="eager") is model  # linear blocks: never compiled
    torch.testing.assert_close(interval_means(u[:, :2]), torch.stack([u[:, 0], (u[:, 0] + u[:, 1]) / 2], 1))
    with pytest.raises(ValueError, match="hold"):
        Backbone(3, 8, 1, hold="cubic")


@pytest.mark.parametrize("layer", LAYERS)
def test_backbone_causal_and_dt_ones(layer):
    model = _backbone(layer)
    u, dt = torch.randn(1, 32, 3, dtype=f64), _dt(1, 32)
    for t in (0, 11, 31):
        v = u.clone()
        v[:, t] += 1.0
        for d in (None, dt):
            y0, y1 = model(u, d), model(v, d)
            assert t == 0 or (y0[:, :t] - y1[:, :t]).abs().max() < 1e-12
            assert (y0[:, t] - y1[:, t]).abs().max() > 1e-8
    torch.testing.assert_close(model(u, torch.ones(1, 32, dtype=f64)), model(u), rtol=0, atol=1e-12)


def test_backbone_without_head_returns_d_model_features():
    model = _backbone("s4d", d_output=None, ff_expand=None)
    assert model(torch.randn(2, 5, 3, dtype=f64)).shape == (2, 5, 8)
    assert isinstance(model.blocks[0], ResidualBlock) and model.blocks[0].ff is None


def test_training_mode_dropout_is_active_and_eval_is_deterministic():
    model = _backbone("s4d", dropout=0.5).train()
    u = torch.randn(2, 20, 3, dtype=f64)
    assert not torch.equal(model(u), model(u))
    model.eval()
    assert torch.equal(model(u), model(u))


def test_errors():
    with pytest.raises(ValueError, match="unknown layer 'lstm'; valid choices are 's4', 's4d', 'mamba'"):
        Backbone(3, 8, 2, layer="lstm")
    with pytest.raises(ValueError, match="n_layers must be a positive int"):
        Backbone(3, 8, 0)
    with pytest.raises(ValueError, match="dropout must lie in"):
        ResidualBlock(S4DLayer(4, 4), dropout=1.0)
    model = _backbone("s4d")
    with pytest.raises(ValueError, match=r"input must have shape \(batch, L, 3\)"):
        model(torch.randn(2, 5, 4, dtype=f64))
    with pytest.raises(ValueError, match=r"step input must have shape \(batch, 3\)"):
        model.step(torch.randn(2, 4, dtype=f64), model.allocate_state(2))
    with pytest.raises(TypeError):
        Backbone(3, 8, 2, layer_kwargs={"d_sate": 4})  # a misspelt option is an error, not swallowed


# --- streaming: cheap checks, one thread, the opt-in compiled step ------------------------------


def test_step_checks_dt_once_and_rejects_bad_values():
    model = _backbone("s4d")
    state = model.allocate_state(2)
    for bad in (torch.tensor([1.0, float("nan")]), torch.tensor([1.0, float("inf")]), torch.tensor([1.0, 0.0])):
        with pytest.raises(ValueError, match="dt must be finite and strictly positive"):
            model.step(torch.randn(2, 3, dtype=f64), state, bad.to(f64))
    with pytest.raises(ValueError, match=r"dt must have shape \(batch,\)"):
        model.step(torch.randn(2, 3, dtype=f64), state, torch.ones(3, dtype=f64))


def test_small_step_runs_on_one_thread_and_restores_the_count(monkeypatch):
    from ssmforecast.nn import _base

    seen = []
    model = _backbone("s4d")
    inner = model._step
    monkeypatch.setattr(model, "_step", lambda *a: (seen.append(torch.get_num_threads()), inner(*a))[1])
    threads = torch.get_num_threads()
    with torch.no_grad():
        model.step(torch.randn(2, 3, dtype=f64), model.allocate_state(2))
        model.step(torch.randn(_base.SERIAL_STEP_BATCH + 1, 3, dtype=f64), model.allocate_state(_base.SERIAL_STEP_BATCH + 1))
    assert seen == [1, threads] and torch.get_num_threads() == threads


@pytest.mark.parametrize("layer", LAYERS)
def test_backbone_clear_cache_clears_its_layers(layer):
    """After a write through ``.data`` to a layer's parameter, ``Backbone.clear_cache()`` makes the
    forward and the (memoised) step those of a fresh Backbone loaded with the same state."""
    model = _backbone(layer)
    u = torch.randn(2, 16, 3, dtype=f64)
    with torch.no_grad():
        y0 = model(u)
        _stepped(model, u)  # the layers' memos filled
        for block in model.blocks:
            ssm = block.layer
            (ssm.A_log if layer == "mamba" else ssm.log_dt).data.add_(0.7)
            ssm.D.data.mul_(-1.0)
        assert model.clear_cache() is model
        y, ys = model(u), _stepped(model, u)[0]
        fresh = _backbone(layer, seed=5)
        fresh.load_state_dict(model.state_dict())
        ref = fresh(u)
        assert _rel(ref, y0) > 1e-3 and _rel(y, ref) < 1e-13 and _rel(ys, _stepped(fresh, u)[0]) < 1e-13


@pytest.mark.parametrize("layer", LAYERS)
def test_step_rejects_a_state_of_another_batch(layer):
    """Eager and compiled step (eager backend): a state allocated for 3 series with u of 1 is named,
    not broadcast."""
    model = _backbone(layer)
    u, state = torch.randn(1, 3, dtype=f64), model.allocate_state(3)
    with torch.no_grad():
        with pytest.raises(ValueError, match=r"state must have shape .*\(1, \d+, \d+\), got \(3, \d+, \d+\)"):
            model.step(u, state)
        model.compile_step(backend="eager")
        with pytest.raises(ValueError, match=r"state must have shape .*\(1, \d+, \d+\), got \(3, \d+, \d+\)"):
            model.step(u, state)
    model.compile_step(False)


def _compiled_stream(model, u, dt=None):
    """Step model over u (batch, L, d_input) under inference_mode: (batch, L, ·)."""
    with torch.inference_mode():
        return _stepped(model, u, dt)[0]


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("ff_expand", [None, 2])
def test_compiled_step_graph_equals_eager_step(layer, ff_expand):
    """compile_step's graph (traced by dynamo, run by the eager backend: fast) equals the eager step."""
    model = _backbone(layer, ff_expand=ff_expand)
    u = torch.randn(2, 24, 3, dtype=f64)
    eager = _compiled_stream(model, u)
    model.compile_step(backend="eager")
    compiled = _compiled_stream(model, u)
    assert _rel(compiled, eager) < 1e-10 and _rel(compiled, model(u).detach()) < 1e-8
    model.compile_step(False)
    torch.testing.assert_close(_compiled_stream(model, u), eager, rtol=0, atol=0)


def test_compile_step_on_cpu_defaults_to_the_cpp_wrapper_options(monkeypatch):
    """No options: inductor with CPU_STEP_INDUCTOR_OPTIONS (a copy); any option given replaces them."""
    from ssmforecast.nn import backbone as bb

    seen = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: seen.append(kwargs) or fn)
    _backbone("s4d").compile_step()
    _backbone("s4d").compile_step(backend="eager")
    assert seen[0] == {"dynamic": False, "fullgraph": True, "options": {"cpp_wrapper": True, "size_asserts": False}}
    assert seen[0]["options"] is not bb.CPU_STEP_INDUCTOR_OPTIONS
    assert seen[1] == {"dynamic": False, "fullgraph": True, "backend": "eager"}


def test_compiled_step_falls_back_to_eager():
    """Irregular dt, grad enabled, active dropout and S4 under ZOH take the eager step."""
    from ssmforecast.nn.backbone import _COMPILED_STEPS

    u, dt = torch.randn(2, 12, 3, dtype=f64), _dt(2, 12)
    model = _backbone("s4").compile_step(backend="eager")
    with torch.inference_mode():
        irregular = _stepped(model, u, dt)[0]
    assert _rel(irregular, model(u, dt).detach()) < 1e-8
    y = _stepped(model, u)[0]  # grad enabled: eager, differentiable
    assert y.requires_grad and _rel(y, model(u)) < 1e-8
    dropout = _backbone("s4d", dropout=0.5).train().compile_step(backend="eager")
    with torch.inference_mode():
        assert not torch.equal(_stepped(dropout, u)[0], _stepped(dropout, u)[0])  # dropout is on
    zoh = _backbone("s4", layer_kwargs={"d_state": 4, "discretization": "zoh"}).compile_step(backend="eager")
    assert zoh not in _COMPILED_STEPS
    foh = _backbone("s4d", layer_kwargs={"d_state": 4, "discretization": "foh"}).compile_step(backend="eager")
    assert foh not in _COMPILED_STEPS  # S4D's first-order hold keeps u_{k−1}: eager
    with torch.inference_mode():
        assert _rel(_stepped(foh, u)[0], foh(u)) < 1e-8
    copy = __import__("copy").deepcopy(model)  # the compiled function stays out of the module
    assert copy not in _COMPILED_STEPS and model in _COMPILED_STEPS


@pytest.mark.slow
@pytest.mark.parametrize("layer", LAYERS)
def test_compiled_step_inductor_equals_forward(layer):
    """The real compile (inductor, tens of seconds per layer) in float32, as the benchmark runs it."""
    model = Backbone(1, 32, 2, layer=layer).eval().compile_step()
    u = torch.randn(1, 40, 1)
    assert _rel(_compiled_stream(model, u), model(u).detach()) < 1e-4
