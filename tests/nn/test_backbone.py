"""Backbone: the stack keeps the layer contract (step == forward, causal, dt-aware) for every layer."""

import math

import pytest
import torch

from ssmforecast.nn import LAYERS, Backbone, ResidualBlock, S4DLayer

from _stepping import run_steps as _stepped

f64 = torch.float64


def _backbone(layer, dtype=f64, seed=0, **kw):
    torch.manual_seed(seed)
    kw = {"d_output": 2, "ff_expand": 2, "layer_kwargs": {"d_state": 4}} | kw
    return Backbone(3, 8, 2, layer=layer, **kw).to(dtype).eval()


def _dt(batch, L, dtype=f64, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.exp(torch.empty(batch, L, dtype=dtype).uniform_(math.log(0.1), math.log(10.0), generator=g))




def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("irregular", [False, True])
@pytest.mark.parametrize("dtype,tol", [(f64, 1e-8), (torch.float32, 1e-4)])
def test_backbone_step_equals_forward(layer, irregular, dtype, tol):
    model = _backbone(layer, dtype)
    u = torch.randn(2, 48, 3, dtype=dtype)
    dt = _dt(2, 48, dtype) if irregular else None
    y = model(u, dt)
    assert y.shape == (2, 48, 2) and y.dtype == dtype
    assert _rel(_stepped(model, u, dt)[0], y) < tol


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
