"""Quickstart: a probabilistic S4D forecast of the airline passengers, against seasonal-naive.

The airline series (monthly totals 1949-1960, shipped with sktime) grows in trend and in seasonal
amplitude together, i.e. it is multiplicative. The forecaster therefore runs on log passengers:
sktime's ``TransformedTargetForecaster`` applies a ``LogTransformer`` before an
:class:`~ssmforecast.S4DForecaster` and exponentiates its point forecasts and interval bounds back
(the log is monotonic, so a normal interval on the log scale is a valid interval on the original
scale, and the exponentiated mean of the log is the median forecast of passengers).

The last 12 months (1960) are held out. The script fits on the 132 months before, forecasts the 12
held-out months in one pass (``horizon=12``), asks for 80% and 95% prediction intervals from the
Gaussian head (``loss="normal"``), and prints MAE and MAPE beside a seasonal-naive forecast (each
month's value one year earlier), plus the share of held-out months inside each interval (with 12
points, a coverage is only a rough check). A PNG of history, truth, forecast and both interval
bands is written to ``--out``.

Run: ``python examples/quickstart.py`` (10-20 s of training on 2 CPU cores), ``--quick`` for a
smaller model that trains in a few seconds (the configuration of the test suite).
"""

from __future__ import annotations

import argparse
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sktime.datasets import load_airline
from sktime.forecasting.compose import TransformedTargetForecaster
from sktime.transformations.series.boxcox import LogTransformer

from ssmforecast import S4DForecaster

HOLDOUT = 12  # months held out, and the horizon the network is trained for
SEASON = 12  # months per seasonal cycle
COVERAGES = (0.8, 0.95)
OUTPUT = Path(__file__).resolve().parent / "output"

# network and training configurations (context_length, horizon, loss and seed are shared)
FULL = {"d_model": 64, "n_layers": 4, "max_epochs": 200, "patience": 20}
QUICK = {"d_model": 32, "n_layers": 2, "max_epochs": 60}


@contextmanager
def hide_remember_data_warning():
    """Hide sktime 1.2's FutureWarning about the coming default of ``remember_data``, raised each
    time the pipeline is built or cloned; other warnings are re-issued afterwards. (A plain
    ``warnings.filterwarnings`` does not hold: sktime re-enables FutureWarning while it runs.)"""
    with warnings.catch_warnings(record=True) as caught:
        yield
    for w in caught:
        if "``remember_data``" not in str(w.message):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def mae(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(np.abs(pred - truth)))


def mape(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean absolute percentage error, in percent."""
    return float(100 * np.mean(np.abs(pred - truth) / np.abs(truth)))


def coverage_key(cov: float) -> str:
    """Result key of the empirical coverage of the ``cov`` interval: 0.8 → "coverage_80"."""
    return f"coverage_{round(100 * cov)}"


def coverage(lower: np.ndarray, upper: np.ndarray, truth: np.ndarray) -> float:
    """Share of the true values inside [lower, upper]."""
    return float(np.mean((lower <= truth) & (truth <= upper)))


def plot(history: pd.Series, truth: pd.Series, forecast: pd.Series, intervals: pd.DataFrame, path: Path) -> None:
    """History, held-out truth, forecast and the interval bands (widest first) → PNG at ``path``."""
    fig = Figure(figsize=(9, 4.5))
    FigureCanvasAgg(fig)  # the Agg canvas: no display and no global pyplot state
    ax = fig.subplots()
    ax.plot(history.index.to_timestamp(), history.to_numpy(), color="black", lw=1, label="history")
    ax.plot(truth.index.to_timestamp(), truth.to_numpy(), color="black", lw=1, ls="--", label="held-out truth")
    months = forecast.index.to_timestamp()
    for cov, alpha in zip(sorted(COVERAGES, reverse=True), (0.2, 0.35)):
        ax.fill_between(
            months, intervals[(cov, "lower")], intervals[(cov, "upper")], color="tab:blue", alpha=alpha, lw=0,
            label=f"{cov:.0%} interval",
        )  # fmt: skip
    ax.plot(months, forecast.to_numpy(), color="tab:blue", lw=1.5, label="S4D forecast")
    ax.set_title("Airline passengers: S4D forecast of the last 12 months")
    ax.set_ylabel("passengers (thousands)")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def run(config: dict, out: Path, context_length: int = 36, seed: int = 0) -> dict:
    """Fit on all but the last year, forecast it, score against seasonal-naive, plot → figures."""
    y = load_airline()  # pd.Series, PeriodIndex (monthly), 144 points
    train, test = y.iloc[:-HOLDOUT], y.iloc[-HOLDOUT:]
    fh = np.arange(1, HOLDOUT + 1)
    s4d = S4DForecaster(context_length=context_length, horizon=HOLDOUT, loss="normal", random_state=seed, **config)
    forecaster = TransformedTargetForecaster([("log", LogTransformer()), ("s4d", s4d)])
    start = time.perf_counter()
    forecaster.fit(train)
    fit_seconds = time.perf_counter() - start
    forecast = forecaster.predict(fh=fh)
    intervals = forecaster.predict_interval(fh=fh, coverage=list(COVERAGES)).droplevel(0, axis=1)  # (cov, bound)
    naive = y.iloc[-HOLDOUT - SEASON : -SEASON].to_numpy()  # the same month one year earlier
    truth = test.to_numpy()
    out.mkdir(parents=True, exist_ok=True)
    png = out / "quickstart_airline.png"
    plot(train, test, forecast, intervals, png)
    result = {
        "mae": mae(forecast.to_numpy(), truth),
        "mape": mape(forecast.to_numpy(), truth),
        "naive_mae": mae(naive, truth),
        "naive_mape": mape(naive, truth),
        "epochs": len(forecaster.get_fitted_params()["s4d"].history_),
        "fit_seconds": fit_seconds,
        "png": str(png),
        "forecast": forecast,
        "intervals": intervals,
    }
    for cov in COVERAGES:
        lower, upper = intervals[(cov, "lower")].to_numpy(), intervals[(cov, "upper")].to_numpy()
        result[coverage_key(cov)] = coverage(lower, upper, truth)
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small model, few epochs (a few seconds)")
    parser.add_argument("--context-length", type=int, default=36, help="months the network reads (default 36)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUTPUT, help="folder for the PNG (default: examples/output)")
    args = parser.parse_args(argv)
    config = QUICK if args.quick else FULL
    print("S4DForecaster on log airline passengers:", ", ".join(f"{k}={v}" for k, v in config.items()), flush=True)
    with hide_remember_data_warning():
        r = run(config, args.out, args.context_length, args.seed)
    print(f"trained {r['epochs']} epochs in {r['fit_seconds']:.1f} s; held out: {HOLDOUT} months of 1960")
    print()
    print("| forecast | MAE | MAPE |")
    print("|---|---|---|")
    print(f"| S4D (log scale, context {args.context_length}) | {r['mae']:.1f} | {r['mape']:.1f}% |")
    print(f"| seasonal naive (one year earlier) | {r['naive_mae']:.1f} | {r['naive_mape']:.1f}% |")
    print()
    verdict = "beats" if r["mae"] < r["naive_mae"] else "does NOT beat"
    print(f"S4D {verdict} seasonal-naive on MAE ({r['mae']:.1f} vs {r['naive_mae']:.1f}).")
    covered = ", ".join(f"{cov:.0%} interval {r[coverage_key(cov)]:.0%}" for cov in COVERAGES)
    print(f"share of the {HOLDOUT} held-out months inside the intervals: {covered}")
    print(f"plot: {r['png']}")
    return r


if __name__ == "__main__":
    main()
