"""Irregular sampling: ETTh1 oil temperature with a random 40% of the hours removed.

The Δ-aware S4D forecaster reads the time between observations from the index and forecasts the
next observations at their true (irregular) times. It is compared, at the same training budget,
with the same forecaster fed row numbers (``time_unit="rows"``), with linear interpolation to the
hourly grid followed by the regular forecaster, and with repeat-last. The script prints an error
table and saves a plot of a few forecasts.

    python examples/irregular.py --ett-dir ../shared/data/ETT          # a few minutes on 2 cores
    python examples/irregular.py --quick                               # a smaller run (tests)
    python examples/irregular.py --hold foh                            # the Δ-aware model's hold

Without the data file it uses a synthetic daily-periodic series instead (and says so).
Errors are on the OT series z-scored with the training statistics.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from sktime.forecasting.base import ForecastingHorizon

from ssmforecast import S4DForecaster

HERE = Path(__file__).resolve().parent


def load_series(ett_dir: str, n_hours: int) -> tuple[pd.Series, str]:
    """The first ``n_hours`` of ETTh1 OT (hourly), or a synthetic stand-in if the file is absent."""
    try:
        from ssmforecast.datasets import load_ett

        ot = load_ett("ETTh1", path=ett_dir)["OT"].iloc[:n_hours]
        return ot.rename("OT"), "ETTh1 OT"
    except (FileNotFoundError, OSError, ValueError):
        t = np.arange(n_hours)
        rng = np.random.default_rng(0)
        values = 10 + 3 * np.sin(2 * np.pi * t / 24) + np.cumsum(rng.normal(0, 0.1, n_hours))
        return pd.Series(values, index=pd.date_range("2016-07-01", periods=n_hours, freq="h"), name="OT"), "synthetic"


def run(ett_dir: str, quick: bool, seed: int, out: Path, hold: str | None = None) -> dict:
    n_hours = 1500 if quick else 6000
    hourly, source = load_series(ett_dir, n_hours)
    rng = np.random.default_rng(seed)
    kept = np.sort(rng.choice(n_hours, int(0.6 * n_hours), replace=False))  # drop 40% of the hours
    n_train = int(0.8 * len(kept))
    mean, std = hourly.iloc[kept[:n_train]].mean(), hourly.iloc[kept[:n_train]].std()
    y = ((hourly - mean) / std).iloc[kept]  # z-scored with training statistics, irregular index
    train, test = y.iloc[:n_train], y.iloc[n_train:]
    config = dict(context_length=48, horizon=8, d_model=16 if quick else 32, n_layers=2, d_state=16,
                  max_epochs=3 if quick else 10, lr=1e-2, loss="mse", random_state=seed)

    models = {
        "Δ-aware S4D": S4DForecaster(hold=hold, **config).fit(train),
        "row numbers (time_unit='rows')": S4DForecaster(time_unit="rows", **config).fit(train),
        "interpolated to hourly + S4D": S4DForecaster(**{**config, "horizon": 12}).fit(
            train.resample("1h").mean().interpolate("time")
        ),
    }
    errors = {name: [] for name in [*models, "repeat-last"]}
    examples = []
    history = train
    for start in range(0, len(test) - 3, 3):
        queries, truth = test.index[start : start + 3], test.iloc[start : start + 3].to_numpy()
        if queries[-1] - history.index[-1] <= pd.Timedelta("8h"):  # within every model's horizon
            for name, model in models.items():
                if name.startswith("interpolated"):
                    grid = model.predict(fh=np.arange(1, 13))
                    pred = np.interp(queries.asi8, grid.index.asi8, grid.to_numpy())
                else:
                    pred = model.predict(fh=ForecastingHorizon(queries, is_relative=False)).to_numpy()
                errors[name].append(np.mean((pred - truth) ** 2))
                if name == "Δ-aware S4D" and len(examples) < 4 and start % 60 == 0:
                    examples.append((history.iloc[-48:], queries, truth, pred))
            errors["repeat-last"].append(np.mean((history.iloc[-1] - truth) ** 2))
        new = test.iloc[start : start + 3]
        for name, model in models.items():
            if name.startswith("interpolated"):
                grid = pd.concat([history, new]).resample("1h").mean().interpolate("time")
                model.update(grid[grid.index > model.cutoff[0]], update_params=False)
            else:
                model.update(new, update_params=False)
        history = pd.concat([history, new])

    mse = {name: float(np.mean(e)) for name, e in errors.items()}
    print(f"{source}: {len(kept)} of {n_hours} hours kept, {len(errors['repeat-last'])} test origins, "
          "next 3 observations at their own times (MSE, z-scored)\n")
    print("| model | MSE |\n|---|---|")
    for name, value in mse.items():
        print(f"| {name} | {value:.4f} |")
    png = _plot(examples, out)
    print(f"\nplot: {png}")
    return {"source": source, "mse": mse, "n_origins": len(errors["repeat-last"]), "png": str(png)}


def _plot(examples, out: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 2.6 * len(examples)))
    FigureCanvasAgg(fig)
    for i, (history, queries, truth, pred) in enumerate(examples):
        ax = fig.add_subplot(len(examples), 1, i + 1)
        ax.plot(history.index, history.to_numpy(), ".-", color="0.5", label="observed (irregular)")
        ax.plot(queries, truth, "o", color="k", label="truth")
        ax.plot(queries, pred, "x", color="C3", markersize=9, label="Δ-aware forecast")
        if i == 0:
            ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    path = out / "irregular.png"
    fig.savefig(path, dpi=90)
    return path


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ett-dir", default=str(HERE.parent.parent / "shared" / "data" / "ETT"))
    parser.add_argument("--quick", action="store_true", help="a smaller, faster run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hold", choices=["constant", "linear", "foh"], default=None,
                        help="the Δ-aware model's hold (default: the forecaster's choice for irregular steps)")
    parser.add_argument("--out", default=str(HERE / "output"))
    args = parser.parse_args(argv)
    return run(args.ett_dir, args.quick, args.seed, Path(args.out), args.hold)


if __name__ == "__main__":
    main()
