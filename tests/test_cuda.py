"""The CUDA paths against float64 references computed on the CPU.

Every test here needs a CUDA GPU and is skipped without one (the CPU-only CI machine skips the
module; the GPU-specific code it covers, e.g. the chunked and associative inner scans of
``selective_scan``, is also exercised on the CPU by tests/math/test_scan.py with ``inner=...``).
On a GPU machine: ``pytest tests/test_cuda.py``. Float64 on the GPU is compared with the CPU at
1e-9 (same function, different kernels: cuFFT, cuBLAS, CUDA elementwise); float32 with 1e-4.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ssmforecast import S4DForecaster, S4Regressor
from ssmforecast.math.conv import fft_conv
from ssmforecast.math.hippo import dplr_legs
from ssmforecast.math.kernels import dplr_kernel
from ssmforecast.math.scan import selective_scan, selective_scan_seq
from ssmforecast.nn import Backbone

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA = "cuda"


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖a − b‖ / ‖b‖, both on the CPU."""
    a, b = a.detach().cpu(), b.detach().cpu()
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


def _selective_inputs(batch=2, H=5, L=300, N=4, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(batch, H, L, generator=g, dtype=dtype)
    delta = torch.exp(torch.empty(batch, H, L, dtype=dtype).uniform_(np.log(1e-3), np.log(1.0), generator=g))
    A = -torch.exp(torch.randn(H, N, generator=g, dtype=dtype))
    B = torch.randn(batch, L, N, generator=g, dtype=dtype)
    C = torch.randn(batch, L, N, generator=g, dtype=dtype)
    D = torch.randn(H, generator=g, dtype=dtype)
    x0 = torch.randn(batch, H, N, generator=g, dtype=dtype)
    return u, delta, A, B, C, D, x0


@pytest.mark.parametrize("inner", ["auto", "loop", "chunked", "associative"])
@pytest.mark.parametrize("block_size", [None, 37])
def test_selective_scan_on_cuda_matches_the_cpu_loop_in_float64(inner, block_size):
    inputs = _selective_inputs()
    y_ref, x_ref = selective_scan_seq(*inputs)  # CPU float64 reference loop
    cotangent = torch.randn_like(y_ref)
    ref_inputs = [t.clone().requires_grad_(True) for t in inputs]
    grads_ref = torch.autograd.grad((selective_scan_seq(*ref_inputs)[0] * cotangent).sum(), ref_inputs)

    gpu_inputs = [t.to(CUDA).requires_grad_(True) for t in inputs]
    y, x_last = selective_scan(*gpu_inputs, block_size=block_size, inner=inner)
    assert y.device.type == "cuda" and x_last.device.type == "cuda"
    assert _rel(y, y_ref) < 1e-10 and _rel(x_last, x_ref) < 1e-10
    grads = torch.autograd.grad((y * cotangent.to(CUDA)).sum(), gpu_inputs)
    for name, g, g_ref in zip("u Δ A B C D x0".split(), grads, grads_ref):
        assert _rel(g, g_ref) < 1e-9, name


def test_selective_scan_auto_on_cuda_is_the_compiled_associative_scan():
    from ssmforecast.math import scan

    assert scan._auto_inner(torch.device(CUDA), torch.float32) == "associative"


def test_selective_scan_on_cuda_in_float32_stays_close_to_float64():
    inputs = _selective_inputs(L=2000, seed=1)
    y_ref, _ = selective_scan_seq(*inputs)
    y, _ = selective_scan(*(t.float().to(CUDA) for t in inputs))
    assert y.dtype == torch.float32
    assert _rel(y.double(), y_ref) < 1e-4


def test_dplr_kernel_and_its_gradients_on_cuda_match_the_cpu():
    Lambda, P, B, _ = dplr_legs(16)  # (N,), (1, N), (N,) complex128
    H, L = 3, 257
    g = torch.Generator().manual_seed(2)
    C = torch.randn(H, 16, 2, generator=g, dtype=torch.float64)
    C = torch.view_as_complex(C)  # (H, N)
    dt = torch.exp(torch.empty(H, dtype=torch.float64).uniform_(np.log(1e-3), np.log(1e-1), generator=g))
    args = (Lambda.expand(H, -1), P.expand(H, -1, -1), P.expand(H, -1, -1), B.expand(H, -1), C, dt)
    args = [a.clone().requires_grad_(True) for a in args]
    gpu = [a.detach().to(CUDA).requires_grad_(True) for a in args]
    K_ref = dplr_kernel(*args, L, conj_pairs=True)  # (H, L) real
    K = dplr_kernel(*gpu, L, conj_pairs=True)
    assert K.device.type == "cuda" and _rel(K, K_ref) < 1e-9
    w = torch.randn(H, L, generator=g, dtype=torch.float64)
    grads_ref = torch.autograd.grad((K_ref * w).sum(), [args[0], args[3], args[4], args[5]])
    grads = torch.autograd.grad((K * w.to(CUDA)).sum(), [gpu[0], gpu[3], gpu[4], gpu[5]])
    for name, a, b in zip(("Lambda", "B", "C", "dt"), grads, grads_ref):
        assert _rel(a, b) < 1e-9, name


def test_fft_conv_on_cuda_matches_the_direct_sum():
    g = torch.Generator().manual_seed(3)
    u = torch.randn(2, 3, 50, generator=g, dtype=torch.float64)  # (batch, H, L)
    K = torch.randn(3, 50, generator=g, dtype=torch.float64)  # (H, L)
    D = torch.randn(3, generator=g, dtype=torch.float64)
    # y_k = Σ_{j≤k} K_j u_{k−j} + D u_k, brute force
    ref = torch.stack([(K[:, : k + 1].flip(-1) * u[..., : k + 1]).sum(-1) for k in range(50)], dim=-1) + D[:, None] * u
    y = fft_conv(u.to(CUDA), K.to(CUDA), D.to(CUDA))
    assert y.device.type == "cuda" and _rel(y, ref) < 1e-12


@pytest.mark.parametrize("layer", ["s4", "s4d", "mamba"])
@pytest.mark.parametrize("irregular", [False, True])
def test_backbone_forward_and_step_on_cuda_match_the_cpu(layer, irregular):
    torch.manual_seed(0)
    model = Backbone(2, 8, 2, layer=layer, d_output=1, layer_kwargs={"d_state": 4}).double()
    u = torch.randn(3, 40, 2, dtype=torch.float64)
    dt = torch.exp(torch.randn(3, 40, dtype=torch.float64) * 0.5) if irregular else None
    with torch.no_grad():
        ref = model(u, dt)  # (3, 40, 1), CPU
        model_gpu = model.to(CUDA)
        out = model_gpu(u.to(CUDA), None if dt is None else dt.to(CUDA))
        assert out.device.type == "cuda" and _rel(out, ref) < 1e-9
        # recurrent view on the GPU = convolutional / scan view on the CPU
        state = model_gpu.allocate_state(3)
        steps = []
        for k in range(40):
            y, state = model_gpu.step(u[:, k].to(CUDA), state, None if dt is None else dt[:, k].to(CUDA))
            steps.append(y)
        assert _rel(torch.stack(steps, dim=1), ref) < 1e-8


def _series(n=240):
    t = np.arange(n)
    return pd.Series(np.sin(2 * np.pi * t / 24) + 0.3 * np.sin(2 * np.pi * t / 7), index=pd.RangeIndex(n), dtype=float)


def test_forecaster_trains_on_cuda_like_on_the_cpu():
    params = dict(
        context_length=24, horizon=6, max_epochs=2, d_model=16, n_layers=1, d_state=8, random_state=0, precision="64"
    )
    y = _series()
    y_before = y.copy()
    gpu = S4DForecaster(device="cuda", **params).fit(y, fh=np.arange(1, 7))
    cpu = S4DForecaster(device="cpu", **params).fit(y, fh=np.arange(1, 7))
    assert next(gpu.module_.parameters()).device.type == "cuda"
    pred_gpu, pred_cpu = gpu.predict(), cpu.predict()
    # same seed, same data, float64: only rounding differs between the devices over two epochs
    np.testing.assert_allclose(pred_gpu.to_numpy(), pred_cpu.to_numpy(), rtol=0, atol=1e-8)
    intervals = gpu.predict_interval(coverage=0.9)
    assert intervals.shape == (6, 2) and np.isfinite(intervals.to_numpy()).all()
    pd.testing.assert_series_equal(y, y_before)


def test_regressor_fits_and_predicts_on_cuda():
    g = np.random.default_rng(0)
    X = np.cumsum(g.normal(size=(64, 20)), axis=1)
    y = X[:, -1] * 0.5
    reg = S4Regressor(device="cuda", d_model=8, n_layers=1, d_state=8, max_epochs=3, random_state=0).fit(X, y)
    assert next(reg.module_.parameters()).device.type == "cuda"
    pred = reg.predict(X)
    assert pred.shape == (64,) and np.isfinite(pred).all()
