"""sktime workflow: backtest SSM forecasters with ``evaluate`` and tune ``context_length`` with
``ForecastingGridSearchCV``, against naive baselines.

Data: log airline passengers (monthly, 144 points, shipped with sktime). On the log scale the
seasonal swings have a constant size, and an absolute error of 0.05 is an error of about 5%.

1. Backtest. ``ExpandingWindowSplitter`` with fh = 1…6 months and a step of 12 months: each fold
   trains on all months up to its cutoff and forecasts the next 6 (4 folds from a first window of
   96 months; 2 from 120 in quick mode). ``evaluate(..., strategy="refit")`` refits every
   forecaster on every fold and scores it with ``MeanAbsoluteError``. Forecasters: an
   :class:`~ssmforecast.S4DForecaster`, a :class:`~ssmforecast.MambaForecaster` (full mode
   only), ``NaiveForecaster(strategy="last")`` (repeat the last month) and, as the stronger
   baseline for a seasonal series, ``NaiveForecaster(strategy="last", sp=12)`` (repeat the same
   month of the last year).
2. Tuning. ``ForecastingGridSearchCV`` over the S4D's ``context_length`` with the same splitter
   and metric, refitted with the best value on the whole series.

The per-fold errors of step 1 are written as CSV to ``--out``.

Run: ``python examples/sktime_evaluate.py`` (about 2-3 minutes on 2 CPU cores), ``--quick`` for a
smaller S4D, fewer epochs and folds, no Mamba (the configuration of the test suite).
"""

from __future__ import annotations

import argparse
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from sktime.datasets import load_airline
from sktime.forecasting.model_evaluation import evaluate
from sktime.forecasting.model_selection import ForecastingGridSearchCV
from sktime.forecasting.naive import NaiveForecaster
from sktime.performance_metrics.forecasting import MeanAbsoluteError
from sktime.split import ExpandingWindowSplitter

from ssmforecast import MambaForecaster, S4DForecaster

HORIZON = 6  # months ahead of every cutoff
STEP = 12  # months between cutoffs
OUTPUT = Path(__file__).resolve().parent / "output"

FULL = {
    "initial_window": 96,
    "network": {"d_model": 32, "n_layers": 2, "max_epochs": 100},
    "mamba": True,
    "contexts": [12, 24, 36],
}
QUICK = {
    "initial_window": 120,
    "network": {"d_model": 16, "n_layers": 1, "max_epochs": 30},
    "mamba": False,
    "contexts": [12, 24],
}


@contextmanager
def hide_remember_data_warning():
    """Hide sktime 1.2's FutureWarning about the coming default of ``remember_data``, raised each
    time a forecaster is built or cloned; other warnings are re-issued afterwards. (A plain
    ``warnings.filterwarnings`` does not hold: sktime re-enables FutureWarning while it runs.)"""
    with warnings.catch_warnings(record=True) as caught:
        yield
    for w in caught:
        if "``remember_data``" not in str(w.message):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def ssm_params(config: dict, context_length: int, seed: int) -> dict:
    """Constructor arguments shared by the S4D and Mamba forecasters."""
    return {"context_length": context_length, "horizon": HORIZON, "random_state": seed, **config["network"]}


def forecasters(config: dict, context_length: int, seed: int) -> dict:
    """The competitors of the backtest, by name."""
    models = {"S4D": S4DForecaster(**ssm_params(config, context_length, seed))}
    if config["mamba"]:
        models["Mamba"] = MambaForecaster(**ssm_params(config, context_length, seed))
    models["naive (last)"] = NaiveForecaster(strategy="last")
    models["seasonal naive (sp=12)"] = NaiveForecaster(strategy="last", sp=12)
    return models


def run(config: dict, out: Path, context_length: int = 24, seed: int = 0) -> dict:
    """Backtest every forecaster, grid-search the S4D's context length → figures."""
    start = time.perf_counter()
    y = np.log(load_airline())  # pd.Series, PeriodIndex (monthly)
    fh = np.arange(1, HORIZON + 1)
    cv = ExpandingWindowSplitter(fh=fh, initial_window=config["initial_window"], step_length=STEP)
    metric = MeanAbsoluteError()
    column = f"test_{metric.name}"

    folds, seconds = {}, {}
    for name, forecaster in forecasters(config, context_length, seed).items():
        result = evaluate(forecaster, cv, y, strategy="refit", scoring=metric, error_score="raise")
        folds[name] = result[column].to_numpy()
        seconds[name] = float(result["fit_time"].sum())
    per_fold = pd.DataFrame(folds, index=pd.Index(y.index[cv.get_cutoffs(y)].astype(str), name="cutoff"))

    search = ForecastingGridSearchCV(
        S4DForecaster(**ssm_params(config, context_length, seed)),
        cv=cv,
        param_grid={"context_length": config["contexts"]},
        scoring=metric,
        error_score="raise",
        backend=None,  # sequential: torch already uses the cores (sktime's default is joblib's loky)
    )
    search.fit(y)
    grid = search.cv_results_[["params", f"mean_{column}"]]

    out.mkdir(parents=True, exist_ok=True)
    csv = out / "sktime_evaluate_folds.csv"
    per_fold.to_csv(csv)
    return {
        "per_fold": per_fold,
        "mean_mae": per_fold.mean().to_dict(),
        "fit_seconds": seconds,
        "grid": [(params, float(score)) for params, score in grid.itertuples(index=False)],
        "best_params": search.best_params_,
        "best_mae": float(search.best_score_),
        "csv": str(csv),
        "seconds": time.perf_counter() - start,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small S4D, few epochs and folds, no Mamba")
    parser.add_argument(
        "--context-length", type=int, default=24, help="months the SSMs read in the backtest (default 24)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=OUTPUT, help="folder for the per-fold CSV (default: examples/output)"
    )
    args = parser.parse_args(argv)
    config = QUICK if args.quick else FULL
    print(
        f"log airline passengers; fh 1..{HORIZON}, expanding window from {config['initial_window']} months, "
        f"step {STEP}; SSMs: context_length={args.context_length}, "
        + ", ".join(f"{k}={v}" for k, v in config["network"].items()),
        flush=True,
    )
    with hide_remember_data_warning():
        r = run(config, args.out, args.context_length, args.seed)
    table = r["per_fold"]
    print()
    print("MAE of log passengers per fold (evaluate, strategy='refit'):")
    print("| cutoff | " + " | ".join(table.columns) + " |")
    print("|" + "---|" * (len(table.columns) + 1))
    for cutoff, row in table.iterrows():
        print(f"| {cutoff} | " + " | ".join(f"{v:.4f}" for v in row) + " |")
    print("| **mean** | " + " | ".join(f"**{r['mean_mae'][name]:.4f}**" for name in table.columns) + " |")
    print("fit time over the folds: " + ", ".join(f"{k} {v:.1f} s" for k, v in r["fit_seconds"].items()))
    print()
    print("ForecastingGridSearchCV of S4D context_length (mean MAE over the same folds):")
    for params, score in r["grid"]:
        print(f"  context_length={params['context_length']:>3}: {score:.4f}")
    print(f"best params: {r['best_params']} (mean MAE {r['best_mae']:.4f})")
    print(f"per-fold errors: {r['csv']}; done in {r['seconds']:.1f} s")
    return r


if __name__ == "__main__":
    main()
