"""scikit-learn workflow: an S4D sequence regressor in a Pipeline, cross-validated and grid-searched
with ``TimeSeriesSplit``, beside a Ridge regression on the same windows.

Data. A synthetic series: a sine of period 25 plus AR(1) noise (coefficient 0.7), cut into
windows of ``--seq-len`` values, each labelled with the value that follows it; X is 2-D
(n_samples, seq_len), one univariate sequence per row, in time order. The last 20% of the windows
are kept apart as a test set; everything else below uses only the first 80% ("dev"). The grid
search's ``cv_results_`` are written as CSV to ``--out``.

Workflow.

1. ``Pipeline([("scale", StandardScaler()), ("model", S4DRegressor(...))])``: with a 2-D X the
   scaler standardises each time position of the window (the regressor standardises again
   internally, which is harmless).
2. ``cross_val_score`` with ``TimeSeriesSplit(n_splits=3)``: each fold trains on the past and
   scores (R²) on the windows right after it.
3. ``GridSearchCV`` over ``model__d_model`` and ``model__lr`` (two values each) with the same
   splitter; the best configuration is refitted on all dev windows and scored on the test set.
4. The same steps for ``Pipeline([StandardScaler(), Ridge()])``. The series is a linear process,
   so a linear model on 32 lags is close to the best possible predictor here: it is the
   reference to match, not a straw man.

Run: ``python examples/sklearn_cv.py`` (about 2 minutes on 2 CPU cores), ``--quick`` for fewer
windows, a smaller network and fewer epochs (the configuration of the test suite).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, TimeSeriesSplit, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from ssmforecast import S4DRegressor

PERIOD, AR_COEF, NOISE = 25, 0.7, 0.3
TEST_FRACTION = 0.2
OUTPUT = Path(__file__).resolve().parent / "output"

# n_windows, regressor parameters and the grid (model__ prefixed) per mode
FULL = {
    "n_windows": 1200,
    "model": {"d_model": 32, "n_layers": 2, "max_epochs": 40, "batch_size": 64},
    "grid": {"model__d_model": [16, 32], "model__lr": [1e-3, 3e-3]},
}
QUICK = {
    "n_windows": 400,
    "model": {"d_model": 16, "n_layers": 1, "d_state": 16, "max_epochs": 10, "batch_size": 64},
    "grid": {"model__d_model": [8, 16], "model__lr": [3e-3, 1e-2]},
}


def make_series(n: int, seed: int) -> np.ndarray:
    """sin(2πt / PERIOD) + AR(1) noise e_t = AR_COEF · e_{t−1} + NOISE · ε_t, t = 0 … n−1."""
    rng = np.random.default_rng(seed)
    eps = NOISE * rng.standard_normal(n)
    noise = np.zeros(n)
    for t in range(1, n):
        noise[t] = AR_COEF * noise[t - 1] + eps[t]
    return np.sin(2 * np.pi * np.arange(n) / PERIOD) + noise


def make_windows(series: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Every window of ``seq_len`` values → X (n, seq_len), and the value after each → y (n,)."""
    X = np.lib.stride_tricks.sliding_window_view(series[:-1], seq_len)
    return X.copy(), series[seq_len:]


def run(config: dict, out: Path, seq_len: int = 32, seed: int = 0) -> dict:
    """Cross-validate, grid-search and test the S4D pipeline and the Ridge reference → figures;
    the grid search's ``cv_results_`` are written to ``out`` as CSV."""
    start = time.perf_counter()
    X, y = make_windows(make_series(config["n_windows"] + seq_len, seed), seq_len)
    n_dev = int(round((1 - TEST_FRACTION) * len(y)))
    X_dev, y_dev, X_test, y_test = X[:n_dev], y[:n_dev], X[n_dev:], y[n_dev:]
    cv = TimeSeriesSplit(n_splits=3)

    s4d = Pipeline([("scale", StandardScaler()), ("model", S4DRegressor(random_state=seed, **config["model"]))])
    cv_scores = cross_val_score(s4d, X_dev, y_dev, cv=cv)

    search = GridSearchCV(s4d, config["grid"], cv=cv)
    search.fit(X_dev, y_dev)
    grid = [
        (params, float(score))
        for params, score in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"])
    ]
    out.mkdir(parents=True, exist_ok=True)
    csv = out / "sklearn_cv_grid.csv"
    pd.DataFrame(search.cv_results_).drop(columns="params").to_csv(csv, index=False)

    ridge = Pipeline([("scale", StandardScaler()), ("model", Ridge(alpha=1.0))])
    ridge_scores = cross_val_score(ridge, X_dev, y_dev, cv=cv)
    ridge.fit(X_dev, y_dev)
    return {
        "n_dev": n_dev,
        "n_test": len(y_test),
        "cv_scores": cv_scores,
        "grid": grid,
        "best_params": search.best_params_,
        "best_score": float(search.best_score_),
        "test_score": float(search.score(X_test, y_test)),
        "ridge_scores": ridge_scores,
        "ridge_test_score": float(ridge.score(X_test, y_test)),
        "csv": str(csv),
        "seconds": time.perf_counter() - start,
    }


def _scores(scores: np.ndarray) -> str:
    return " ".join(f"{s:.3f}" for s in scores) + f" (mean {np.mean(scores):.3f})"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer windows, small network, few epochs")
    parser.add_argument("--seq-len", type=int, default=32, help="window length (default 32)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and of the networks")
    parser.add_argument(
        "--out", type=Path, default=OUTPUT, help="folder for the grid-search CSV (default: examples/output)"
    )
    args = parser.parse_args(argv)
    config = QUICK if args.quick else FULL
    print(
        f"{config['n_windows']} windows of length {args.seq_len} (sine of period {PERIOD} + AR(1) noise); "
        f"S4DRegressor {', '.join(f'{k}={v}' for k, v in config['model'].items())}",
        flush=True,
    )
    r = run(config, args.out, args.seq_len, args.seed)
    print(f"dev: {r['n_dev']} windows (cross-validation, grid search); test: the last {r['n_test']} windows")
    print()
    print("R² per TimeSeriesSplit fold (3 folds, dev windows):")
    print(f"  S4D pipeline   {_scores(r['cv_scores'])}")
    print(f"  Ridge pipeline {_scores(r['ridge_scores'])}")
    print()
    print("GridSearchCV (mean R² over the folds):")
    print("| " + " | ".join(config["grid"]) + " | mean R² |")
    print("|" + "---|" * (len(config["grid"]) + 1))
    for params, score in r["grid"]:
        print("| " + " | ".join(f"{params[k]:g}" for k in config["grid"]) + f" | {score:.3f} |")
    print(f"best params: {r['best_params']} (mean R² {r['best_score']:.3f})")
    print()
    print(f"test R²: S4D (best params, refitted on dev) {r['test_score']:.3f}; Ridge {r['ridge_test_score']:.3f}")
    better = "S4D" if r["test_score"] > r["ridge_test_score"] else "Ridge"
    print(f"higher test R²: {better} (Ridge is close to the best possible predictor of this linear series)")
    print(f"grid-search results: {r['csv']}; done in {r['seconds']:.1f} s")
    return r


if __name__ == "__main__":
    main()
