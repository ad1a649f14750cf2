"""A small forecast built from the math core alone: HiPPO-LegT memory + a linear readout.

This was the README's main job before the trained S4/S4D/Mamba forecasters and the ETT benchmark
existed (``make demo`` now runs the benchmark in quick mode). It shows the convolutional view of
an SSM doing real work on real data:

1. HiPPO-LegT (:func:`ssmforecast.math.hippo.legt`) is an SSM whose state holds the Legendre
   coefficients of the last θ hours of the input. Two banks (θ = 24 h and θ = 168 h) are discretized
   with ZOH at Δ = 1 hour.
2. Their states over the whole series are one causal convolution each: kernels K̄ from
   :func:`~ssmforecast.math.kernels.power_kernel`, applied by :func:`~ssmforecast.math.conv.fft_conv`.
3. A ridge regression maps the state at the forecast origin to the next H values. The ridge
   penalty is chosen on the validation split only.

Data: ETTh1's oil temperature (OT) under the Informer protocol (12/4/4-month train/val/test
borders, z-score with train statistics, every test window with stride 1), scored on the scaled
data beside the repeat-last baseline computed by the same code (published protocol value:
MSE 0.0343 at H = 24, see ``docs/demo.md``). ETTh1 comes from the ETDataset (Zhou et al., Informer,
AAAI 2021; CC BY-ND 4.0), read from ``--ett-dir``; without it a synthetic series is used.

Run: ``python examples/demo.py --ett-dir ../shared/data/ETT`` (``make legt-demo``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ssmforecast.math.conv import fft_conv
from ssmforecast.math.discretize import discretize
from ssmforecast.math.hippo import legt
from ssmforecast.math.kernels import power_kernel

# Informer protocol borders for the hourly ETT files (12/4/4 months of 30 days)
TRAIN_END, VAL_END, TEST_END = 12 * 30 * 24, 16 * 30 * 24, 20 * 30 * 24


def load_series(ett_dir: str | None, n_synthetic: int = TEST_END) -> tuple[np.ndarray, str]:
    """ETTh1's OT column if ``ett_dir/ETTh1.csv`` exists, else a noisy daily + weekly cycle."""
    if ett_dir is not None:
        path = Path(ett_dir) / "ETTh1.csv"
        if path.is_file():
            return pd.read_csv(path)["OT"].to_numpy(dtype=np.float64), f"ETTh1 OT ({path})"
    t = np.arange(n_synthetic, dtype=np.float64)
    rng = np.random.default_rng(0)
    y = np.sin(2 * np.pi * t / 24) + 0.5 * np.sin(2 * np.pi * t / 168) + 0.1 * np.cumsum(rng.standard_normal(t.size)) / 30
    return y, "synthetic daily + weekly cycle (no ETT file found)"


def legt_features(z: np.ndarray, state_size: int, thetas: tuple[float, ...]) -> np.ndarray:
    """States of LegT memories over the series: z (L,) → features (L, len(thetas)·N + 1)."""
    u = torch.tensor(z)[None, None]  # (1, 1, L)
    feats = [torch.ones(z.size, dtype=torch.float64)]
    for theta in thetas:
        A, B = legt(state_size, theta=theta)  # (N, N), (N,)
        dA, dB = discretize(A, B, 1.0, "zoh")  # Δ = 1 hour
        # state component n is the convolution of u with K̄_n,l = e_n Ā^l B̄
        K = power_kernel(dA, dB, torch.eye(state_size, dtype=torch.float64), z.size)  # (N, L)
        feats.extend(fft_conv(u, K)[0])  # N × (L,)
    return torch.stack(feats, dim=-1).numpy()  # (L, F)


def windows(first_origin: int, last_origin: int, horizon: int, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forecast origins t (the last observed row) and their targets z[t+1 : t+1+H]."""
    origins = np.arange(first_origin, last_origin + 1)
    return origins, np.stack([z[t + 1 : t + 1 + horizon] for t in origins])


def ridge(X: np.ndarray, Y: np.ndarray, penalty: float) -> np.ndarray:
    """argmin_W ‖XW − Y‖² + penalty ‖W‖² (no penalty on the first, constant feature)."""
    G = X.T @ X
    reg = penalty * np.eye(G.shape[0])
    reg[0, 0] = 0.0
    return np.linalg.solve(G + reg, X.T @ Y)


def run(ett_dir: str | None, horizon: int = 24, state_size: int = 32, thetas=(24.0, 168.0)) -> dict:
    """Fit on train, pick the ridge penalty on validation, score on test; returns the figures."""
    start = time.perf_counter()
    y, source = load_series(ett_dir)
    y = y[:TEST_END]
    mean, std = y[:TRAIN_END].mean(), y[:TRAIN_END].std()  # train statistics, ddof = 0
    z = (y - mean) / std
    F = legt_features(z, state_size, thetas)  # (L, F)
    # origins: train uses targets inside train; val and test windows start right at their borders
    warm_up = int(max(thetas))  # the longest memory is filled after θ steps
    tr_o, tr_y = windows(warm_up, TRAIN_END - 1 - horizon, horizon, z)
    va_o, va_y = windows(TRAIN_END - 1, VAL_END - 1 - horizon, horizon, z)
    te_o, te_y = windows(VAL_END - 1, TEST_END - 1 - horizon, horizon, z)
    val_mse = {}
    for penalty in 10.0 ** np.arange(-4, 4):
        W = ridge(F[tr_o], tr_y, penalty)
        val_mse[penalty] = float(np.mean((F[va_o] @ W - va_y) ** 2))
    best = min(val_mse, key=val_mse.get)
    W = ridge(np.concatenate([F[tr_o], F[va_o]]), np.concatenate([tr_y, va_y]), best)
    pred = F[te_o] @ W  # (n_windows, H)
    last = z[te_o][:, None].repeat(horizon, axis=1)  # repeat-last baseline
    return {
        "source": source,
        "horizon": horizon,
        "n_test_windows": len(te_o),
        "first_target_row": int(te_o[0] + 1),
        "penalty": best,
        "mse": float(np.mean((pred - te_y) ** 2)),
        "mae": float(np.mean(np.abs(pred - te_y))),
        "repeat_mse": float(np.mean((last - te_y) ** 2)),
        "repeat_mae": float(np.mean(np.abs(last - te_y))),
        "seconds": time.perf_counter() - start,
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ett-dir", default=None, help="folder holding ETTh1.csv (read only)")
    parser.add_argument("--horizon", type=int, default=24)
    parser.add_argument("--state-size", type=int, default=32, help="LegT state size N per memory")
    args = parser.parse_args(argv)
    r = run(args.ett_dir, args.horizon, args.state_size)
    print(f"data: {r['source']}")
    print(
        f"Informer protocol, univariate, H={r['horizon']}: {r['n_test_windows']} test windows, "
        f"first target row {r['first_target_row']}, scaled data"
    )
    print(f"ridge penalty chosen on validation: {r['penalty']:g}")
    print()
    print("| model | MSE | MAE |")
    print("|---|---|---|")
    print(f"| LegT memory (θ = 24 h, 168 h; N = {args.state_size}) + ridge | {r['mse']:.4f} | {r['mae']:.4f} |")
    print(f"| repeat-last | {r['repeat_mse']:.4f} | {r['repeat_mae']:.4f} |")
    print()
    print(f"done in {r['seconds']:.1f} s")
    return r


if __name__ == "__main__":
    main()
