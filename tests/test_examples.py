"""The examples run, and the demo reproduces the published protocol's repeat-last figure."""

import importlib.util

import numpy as np
import pytest
from sktime.datasets import load_airline

from conftest import REPO


def _load(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_on_etth1_reproduces_protocol_and_beats_repeat_last(ett_dir):
    demo = _load("demo")
    r = demo.run(str(ett_dir), horizon=24)
    # Informer protocol: 2881 − H test windows, first target row 11520
    assert r["n_test_windows"] == 2881 - 24
    assert r["first_target_row"] == 11520
    # ETTh1, S, H=24, repeat-last, recomputed in ../shared/notes/naive_results.csv: 0.03431 / 0.13941
    assert round(r["repeat_mse"], 4) == 0.0343
    assert round(r["repeat_mae"], 4) == 0.1394
    # the LegT memory + ridge readout beats repeat-last on the test split
    assert r["mse"] < 0.9 * r["repeat_mse"]


def test_demo_runs_without_data(tmp_path, capsys):
    demo = _load("demo")
    r = demo.main(["--ett-dir", str(tmp_path), "--state-size", "8", "--horizon", "12"])
    assert "synthetic" in r["source"]
    assert np.isfinite(r["mse"]) and r["mse"] < r["repeat_mse"]
    assert "| repeat-last |" in capsys.readouterr().out


def test_quickstart_beats_seasonal_naive_with_nested_intervals(tmp_path, capsys):
    quickstart = _load("quickstart")
    r = quickstart.main(["--quick", "--out", str(tmp_path)])
    png = tmp_path / "quickstart_airline.png"
    assert r["png"] == str(png)
    assert png.stat().st_size > 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # seasonal-naive on 1960 vs 1959, recomputed here from the airline numbers
    y = load_airline().to_numpy()
    assert r["naive_mae"] == pytest.approx(np.mean(np.abs(y[-24:-12] - y[-12:])))
    assert np.isfinite(r["mae"]) and 0 < r["mae"] < r["naive_mae"]
    assert 0 < r["mape"] < r["naive_mape"]
    # the 95% band contains the 80% band, which contains the forecast (exp of the log-scale mean)
    iv, forecast = r["intervals"], r["forecast"].to_numpy()
    assert np.all(iv[(0.95, "lower")] <= iv[(0.8, "lower")]) and np.all(iv[(0.8, "upper")] <= iv[(0.95, "upper")])
    assert np.all(iv[(0.8, "lower")] < forecast) and np.all(forecast < iv[(0.8, "upper")])
    assert 0 <= r["coverage_80"] <= r["coverage_95"] <= 1
    assert "| seasonal naive (one year earlier) |" in capsys.readouterr().out


def test_sklearn_cv_scores_and_grid_search(tmp_path):
    sklearn_cv = _load("sklearn_cv")
    r = sklearn_cv.main(["--quick", "--out", str(tmp_path)])
    grid = sklearn_cv.QUICK["grid"]
    assert len(r["cv_scores"]) == 3 and len(r["ridge_scores"]) == 3
    assert np.all(np.isfinite(r["cv_scores"])) and np.all(np.isfinite(r["ridge_scores"]))
    assert set(r["best_params"]) == set(grid)
    assert all(r["best_params"][k] in values for k, values in grid.items())
    assert len(r["grid"]) == 4 and r["best_score"] == max(score for _, score in r["grid"])
    # the series is mostly predictable: both models explain most of the variance of the test windows
    assert np.mean(r["ridge_scores"]) > 0.5 and r["ridge_test_score"] > 0.5
    assert np.mean(r["cv_scores"]) > 0.3 and r["test_score"] > 0.5
    assert (tmp_path / "sklearn_cv_grid.csv").stat().st_size > 0


def test_sktime_evaluate_backtest_and_grid_search(tmp_path):
    sktime_evaluate = _load("sktime_evaluate")
    r = sktime_evaluate.main(["--quick", "--out", str(tmp_path)])
    table = r["per_fold"]
    assert list(table.columns) == ["S4D", "naive (last)", "seasonal naive (sp=12)"]
    assert list(table.index) == ["1958-12", "1959-12"]  # 2 folds from 120 months, step 12, fh 1..6
    assert np.all(np.isfinite(table.to_numpy())) and np.all(table.to_numpy() > 0)
    # repeat-last recomputed here: train on the first t months, forecast the next 6 with month t (index t − 1)
    y = np.log(load_airline().to_numpy())
    for fold, t in enumerate((120, 132)):
        assert table["naive (last)"].iloc[fold] == pytest.approx(np.mean(np.abs(y[t : t + 6] - y[t - 1])))
    assert r["mean_mae"]["S4D"] < r["mean_mae"]["naive (last)"]
    assert set(r["best_params"]) == {"context_length"}
    assert r["best_params"]["context_length"] in sktime_evaluate.QUICK["contexts"]
    assert r["best_mae"] == min(score for _, score in r["grid"])
    assert (tmp_path / "sktime_evaluate_folds.csv").stat().st_size > 0


def test_irregular_quick(ett_dir, tmp_path):
    irregular = _load("irregular")
    r = irregular.main(["--quick", "--ett-dir", str(ett_dir), "--out", str(tmp_path)])
    assert r["source"] == "ETTh1 OT" and r["n_origins"] > 30
    assert set(r["mse"]) == {"Δ-aware S4D", "row numbers (time_unit='rows')", "interpolated to hourly + S4D", "repeat-last"}
    assert all(np.isfinite(v) and v > 0 for v in r["mse"].values())
    # the Δ-aware model, fitted with 3 epochs, already beats repeating the last observation
    assert r["mse"]["Δ-aware S4D"] < r["mse"]["repeat-last"]
    assert open(r["png"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
