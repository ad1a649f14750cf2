"""The ETT benchmark command: one tiny run through ``main`` (ETTh1 S, H = 24, L = 24, a one-epoch
S4D of width 8), checked against the data layer: the naive rows are ``evaluate_naive``'s, the
published cells are ``published()``'s, the model is scored on the protocol's 2881 − H test
windows, and fitting (with its early stopping) never receives a test row.

The ETT files are read from ``ett_dir`` (never copied: CC BY-ND 4.0).
"""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ssmforecast.benchmarks import ett as bench
from ssmforecast.datasets import evaluate_naive, load_ett, mse_mae, published, split, windows
from ssmforecast.estimators import S4DForecaster, _loop

L, H = 24, 24
KEY = ("ETTh1", "informer", "S", H, "s4d")
ARGS = ["--data", "ETTh1", "--protocol", "informer", "--features", "S", "--horizons", str(H), "--models", "s4d",
        "--lookback", str(L), "--epochs", "1", "--d-model", "8", "--n-layers", "1", "--batch-size", "256"]  # fmt: skip


def recorded_main(argv: list[str]):
    """Run ``bench.main(argv)``, recording what S4DForecaster.fit and the loop's validation split
    received → (run, seen {"fit": [y, ...], "split": [(n_samples, n_train), ...]})."""
    seen = {"fit": [], "split": []}
    fit, split_validation = S4DForecaster.fit, _loop.split_validation

    def recording_fit(self, y, X=None, fh=None):
        seen["fit"].append(y.copy())
        return fit(self, y, X=X, fh=fh)

    def recording_split(n_samples, validation_fraction):
        n_train = split_validation(n_samples, validation_fraction)
        seen["split"].append((n_samples, n_train))
        return n_train

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(S4DForecaster, "fit", recording_fit)
        mp.setattr(_loop, "split_validation", recording_split)
        run = bench.main(argv, keep_predictions=True)
    return run, seen


@pytest.fixture(scope="module")
def tiny(ett_dir, tmp_path_factory):
    """One run of main; records what S4DForecaster.fit and the loop's validation split received."""
    out = tmp_path_factory.mktemp("ett_bench")
    run, seen = recorded_main([*ARGS, "--data-dir", str(ett_dir), "--out", str(out)])
    df = load_ett("ETTh1", path=ett_dir)
    return run, seen, df, split(df, "ETTh1", L, "S")


def test_writes_table_csv_figure_and_run_record(tiny):
    run, *_ = tiny
    for name in ("results.md", "results.csv", "forecast.png", "run.json"):
        assert (run.out / name).is_file() and (run.out / name).stat().st_size > 0, name
    assert (run.out / "forecast.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    info = json.loads((run.out / "run.json").read_text())
    assert {"command", "seed", "lookback", "device", "torch", "seconds"} <= set(info)
    assert info["seed"] == 0 and info["lookback"] == {"informer": L}
    assert info["device"] == ("cuda" if torch.cuda.is_available() else "cpu")  # --device auto, resolved
    assert "--lookback 24" in info["command"]
    csv = pd.read_csv(run.out / "results.csv")
    assert len(csv) == len(run.results) and set(csv.kind) == {"ours", "naive", "published"}


def test_hide_test_logs_validation_only_and_still_writes_the_test_scores(ett_dir, tmp_path, capsys):
    run = bench.main([*ARGS, "--data-dir", str(ett_dir), "--out", str(tmp_path / "blind"), "--hide-test"])
    out, err = capsys.readouterr()
    ours = run.results[run.results.kind == "ours"].iloc[0]
    assert f"val MSE {ours.val_mse:.4f}" in err and "test MSE" not in err and f"{ours.mse:.4f}" not in err
    assert "| H |" not in out and f"{ours.mse:.4f}" not in out  # no table on stdout
    assert f"{ours.mse:.4f}" in (run.out / "results.md").read_text()  # the test scores are written


def test_naive_rows_are_evaluate_naive(tiny):
    run, _, _, splits = tiny
    naive = run.results[run.results.kind == "naive"].set_index("method")
    repeat, seasonal = evaluate_naive(splits, H, "repeat"), evaluate_naive(splits, H, "seasonal", 24)
    assert (naive.loc["repeat-last", "mse"], naive.loc["repeat-last", "mae"]) == (repeat.mse, repeat.mae)
    assert (naive.loc["seasonal p=24", "mse"], naive.loc["seasonal p=24", "mae"]) == (seasonal.mse, seasonal.mae)
    assert round(repeat.mse, 4) == 0.0343  # the notes' recomputed value (ett_protocol.md §5.2)
    assert set(naive.n_windows) == {2881 - H}
    table = (run.out / "results.md").read_text().replace("**", "")  # bold marks the row's best MSE
    assert f"{repeat.mse:.4f} / {repeat.mae:.4f}" in table and "| 24 | 2857 |" in table


def test_published_cells_come_from_published(tiny):
    run, *_ = tiny
    pub = run.results[run.results.kind == "published"]
    table = (run.out / "results.md").read_text().replace("**", "")
    for source, model in (("informer", "Informer"), ("s4", "S4")):
        ref = published(data="ETTh1", features="S", horizon=H, source=source)
        ref = ref[ref.model == model].iloc[0]
        ours = pub[(pub.source == source) & (pub.method == model)].iloc[0]
        assert (ours.mse, ours.mae) == (ref.mse, ref.mae)
        assert f"{ref.mse:.3f} / {ref.mae:.3f}" in table
    assert "0.098 / 0.247 (L=720)" in table and "0.061 / 0.191" in table


def test_model_scored_on_every_protocol_test_window(tiny):
    run, _, _, splits = tiny
    mean, std = run.predictions[KEY]
    X, Y = windows(splits.test, L, H, splits.target_index)
    assert mean.shape == Y.shape == (2881 - H, H, 1) and std.shape == Y.shape
    assert np.isfinite(mean).all() and (std > 0).all()  # loss "normal" by default: a std per step
    row = run.results[run.results.kind == "ours"].iloc[0]
    assert np.isfinite(row.mse) and row.n_windows == 2881 - H
    assert (row.mse, row.mae) == mse_mae(mean, Y)
    assert row.n_params > 0 and row.windows_per_s > 0 and row.train_s > 0


def test_fitting_never_sees_a_test_row(tiny):
    run, seen, df, splits = tiny
    (y,) = seen["fit"]
    times = y.index.get_level_values(-1)
    first_test_target = df.index[16 * 720]  # row 11520
    assert times.max() < first_test_target and times.max() == df.index[16 * 720 - 1]
    assert times.min() == df.index[0]
    assert list(dict.fromkeys(y.index.get_level_values(0))) == ["train", "val"]
    assert y.loc["val"].index[0] == df.index[12 * 720 - L]  # the protocol's val segment, L rows early
    np.testing.assert_array_equal(y.loc["train"].to_numpy(), splits.train)
    np.testing.assert_array_equal(y.loc["val"].to_numpy(), splits.val)
    # early stopping holds out exactly the val segment's windows, trains on exactly the train ones
    n_train, n_val = 12 * 720 - L - H + 1, 2881 - H
    assert seen["split"] == [(n_train + n_val, n_train)]
    fit = run.fits[KEY]
    assert (fit.first_row, fit.last_row, fit.n_train_windows, fit.n_val_windows) == (0, 16 * 720 - 1, n_train, n_val)


def test_quick_and_full_configurations():
    parser = bench.build_parser()
    quick = bench._configs(parser.parse_args(["--quick"]), bench.QUICK["models"])
    assert set(quick) == {"s4d", "mamba"} and all(c["max_epochs"] <= 3 for c in quick.values())
    full = bench._configs(parser.parse_args(["--epochs", "5", "--loss", "mse"]), ["s4"])
    assert full["s4"] == {**bench.FULL_CONFIG, "max_epochs": 5, "loss": "mse"}
    regularised = bench._configs(parser.parse_args(["--dropout", "0.1", "--weight-decay", "0"]), ["s4d"])["s4d"]
    assert regularised["dropout"] == 0.1 and regularised["weight_decay"] == 0.0
    assert bench.config_text(regularised, "S") == "dropout=0.1, weight_decay=0"
    assert bench.make_forecaster("s4d", regularised, 96, 24, 0, "cpu").get_params()["weight_decay"] == 0.0
    scaled = bench._configs(parser.parse_args(["--loss", "mse", "--loss-scale", "series"]), ["s4d"], "M")["s4d"]
    assert bench.config_text(scaled, "M") == "loss=mse, loss_scale=series"
    assert bench._note(scaled, True) == "loss=mse (series scale), channels=independent"
    assert bench.make_forecaster("s4d", scaled, 96, 96, 0, "cpu").get_params()["loss_scale"] == "series"
    assert "linear_skip" not in scaled  # an option left out leaves the configuration (and old runs' tables) as they were
    skip = bench._configs(parser.parse_args(["--linear-skip"]), ["s4d"], "M")["s4d"]
    assert bench.config_text(skip, "M") == "linear_skip=True"
    assert bench._note(skip, True) == "loss=normal, channels=independent, linear skip"
    assert bench.make_forecaster("s4d", skip, 96, 96, 0, "cpu").get_params()["linear_skip"] is True
    lstsq = bench._configs(parser.parse_args(["--linear-skip", "lstsq", "--dropout", "0.1"]), ["s4d"], "M")["s4d"]
    assert bench.config_text(lstsq, "M") == "dropout=0.1, linear_skip=lstsq"
    assert bench._note(lstsq, True) == "loss=normal, channels=independent, linear skip (lstsq)"
    assert bench.make_forecaster("s4d", lstsq, 96, 96, 0, "cpu").get_params()["linear_skip"] == "lstsq"
    with pytest.raises(SystemExit):
        parser.parse_args(["--linear-skip", "ridge"])
    plain = bench._configs(parser.parse_args(["--no-revin", "--linear-skip", "lstsq"]), ["s4d"], "M")["s4d"]
    assert bench.config_text(plain, "M") == "revin=False, linear_skip=lstsq"
    assert bench._note(plain, True) == "loss=normal, channels=independent, no RevIN, linear skip (lstsq)"
    assert bench.make_forecaster("s4d", plain, 96, 96, 0, "cpu").get_params()["revin"] is False
    assert bench.config_text(bench._configs(parser.parse_args(["--revin"]), ["s4d"], "M")["s4d"], "M") == "default"
    assert "revin" not in lstsq  # RevIN on unless asked: old runs' configurations unchanged
    # patience by features (chosen on the val curves): 0 on S, 3 on M; an explicit option wins
    assert bench._configs(parser.parse_args([]), ["s4d"], "S")["s4d"]["patience"] == 0
    assert bench._configs(parser.parse_args([]), ["s4d"], "M")["s4d"]["patience"] == 3
    assert bench._configs(parser.parse_args(["--patience", "1"]), ["s4d"], "M")["s4d"]["patience"] == 1
    with pytest.raises(SystemExit):
        parser.parse_args(["--data", "ETTm1"])


def test_mixture_pools_normals_by_the_law_of_total_variance():
    """mixture(): the mean and variance of an equal-weight mixture of K normals, against the
    moments of the mixture's density integrated numerically in float64."""
    rng = np.random.default_rng(0)
    means, stds = rng.normal(size=(3, 2, 4, 1)), rng.uniform(0.2, 2.0, size=(3, 2, 4, 1))  # (K, n, H, C)
    mean, std = bench.mixture(means, stds)
    assert mean.shape == std.shape == (2, 4, 1)
    x = np.linspace(-30, 30, 600_001)  # a grid far past every component's tails
    for i, h in np.ndindex(2, 4):
        mu, sd = means[:, i, h, 0, None], stds[:, i, h, 0, None]  # (K, 1)
        density = (np.exp(-0.5 * ((x - mu) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))).mean(axis=0)  # (grid,)
        m1 = np.trapezoid(x * density, x)
        var = np.trapezoid((x - m1) ** 2 * density, x)
        assert abs(mean[i, h, 0] - m1) < 1e-9 and abs(std[i, h, 0] ** 2 - var) < 1e-8
    # identical members: the member itself; no std (loss without a normal head): no std
    same_mean, same_std = bench.mixture(np.stack([means[0]] * 4), np.stack([stds[0]] * 4))
    np.testing.assert_allclose(same_mean, means[0], rtol=1e-15)
    np.testing.assert_allclose(same_std, stds[0], rtol=1e-15)
    assert np.isnan(bench.mixture(means, np.full_like(stds, np.nan))[1]).all()


def test_ensemble_pools_k_fits_with_consecutive_seeds(tiny, ett_dir, tmp_path):
    """--ensemble 2: two fits, seeds 0 and 1, their forecasts pooled: the seed-0 member is the
    one-model run of the `tiny` fixture (same seed, same forecast), the seed-1 member a fit made
    here by hand; the row's test scores, parameters and record are the pooled run's."""
    run1, _, _, splits = tiny
    run2, seen = recorded_main([*ARGS, "--ensemble", "2", "--data-dir", str(ett_dir), "--out", str(tmp_path)])
    assert len(seen["fit"]) == 2
    config = json.loads((tmp_path / "run.json").read_text())["configs"]["S"]["s4d"]
    assert config["ensemble"] == 2 and bench.config_text(config, "S").endswith("ensemble=2")
    other = bench.make_forecaster("s4d", config, L, H, 1, "cpu")
    assert other.get_params()["random_state"] == 1 and "ensemble" not in other.get_params()
    bench.fit_forecaster(other, splits, load_ett("ETTh1", path=ett_dir).index, H)
    mean0, std0 = run1.predictions[KEY]
    mean1, std1, Y, _, _ = bench.forecast_segment(other, splits, splits.test, H)
    mean, std = run2.predictions[KEY]
    np.testing.assert_allclose(mean, (mean0 + mean1) / 2, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(std**2, (std0**2 + std1**2) / 2 + (mean0 - mean1) ** 2 / 4, rtol=1e-5)
    row = run2.results[run2.results.kind == "ours"].iloc[0]
    assert (row.mse, row.mae) == mse_mae(mean, Y) and "ensemble=2" in row.note
    assert row.n_params == 2 * run1.results[run1.results.kind == "ours"].iloc[0].n_params
    fit = run2.fits[KEY]
    assert len(fit.members) == 2 and fit.seconds == sum(m.seconds for m in fit.members)
    assert fit.epochs == sum(m.epochs for m in fit.members) and fit.members[0].val_losses == run1.fits[KEY].val_losses


def test_ensemble_size_must_be_a_positive_integer():
    parser = bench.build_parser()
    with pytest.raises(SystemExit):
        bench.main(["--ensemble", "0", "--models", "s4d"])
    assert bench._configs(parser.parse_args(["--ensemble", "3"]), ["s4d"])["s4d"]["ensemble"] == 3
    with pytest.raises(ValueError, match="ensemble must be a positive integer"):
        bench.make_ensemble("s4d", {**bench.FULL_CONFIG, "ensemble": 0}, 96, 24, 0, "cpu")
    assert [f.random_state for f in bench.make_ensemble("s4d", {**bench.FULL_CONFIG, "ensemble": 3}, 96, 24, 5, "cpu")] == [5, 6, 7]


def test_channel_panel_is_one_univariate_series_per_segment_and_channel():
    index = pd.date_range("2020-01-01", periods=5, freq="h", name="date")
    panel = pd.concat(
        {"train": pd.DataFrame({"a": np.arange(3.0), "b": 10 + np.arange(3.0)}, index=index[:3]),
         "val": pd.DataFrame({"a": np.arange(3.0, 5.0), "b": 13 + np.arange(2.0)}, index=index[3:])},
        names=["segment", "date"],
    )  # fmt: skip
    long = bench.channel_panel(panel)
    assert list(long.columns) == ["value"] and long.index.names == ["segment", "channel", "date"]
    assert long.loc[("train", "b")]["value"].tolist() == [10.0, 11.0, 12.0]
    assert long.loc[("val", "a")].index.tolist() == list(index[3:])
    assert len(long) == panel.size


def test_channel_independent_m_run_fits_one_univariate_model_on_all_channels(ett_dir, tmp_path):
    """features M (channel-independent by default): one forecaster of one target column, trained on the
    7 channels' train windows and early-stopped on exactly their val windows; every test window of
    every channel scored; and the val split never leaks into the train windows."""
    args = ["--data", "ETTh1", "--protocol", "ltsf", "--features", "M", "--horizons", str(H), "--models", "s4d",
            "--lookback", str(L), "--epochs", "1", "--d-model", "8", "--n-layers", "1", "--batch-size", "512",
            "--device", "cpu"]  # fmt: skip: no --channels: independent is the default on M
    run, seen = recorded_main([*args, "--data-dir", str(ett_dir), "--out", str(tmp_path)])
    (y,) = seen["fit"]
    assert list(y.columns) == ["value"] and y.index.get_level_values("channel").nunique() == 7
    n_train, n_val = 7 * (12 * 720 - L - H + 1), 7 * (2881 - H)
    assert seen["split"] == [(n_train + n_val, n_train)]
    key = ("ETTh1", "ltsf", "M", H, "s4d")
    assert (run.fits[key].n_train_windows, run.fits[key].n_val_windows) == (n_train, n_val)
    mean, std = run.predictions[key]
    splits = split(load_ett("ETTh1", path=ett_dir), "ETTh1", L, "M")
    X, Y = windows(splits.test, L, H, splits.target_index)
    assert mean.shape == Y.shape == (2881 - H, H, 7) and np.isfinite(mean).all()
    row = run.results[run.results.kind == "ours"].iloc[0]
    assert "channels=independent" in row.note and (row.mse, row.mae) == mse_mae(mean, Y)
    assert json.loads((tmp_path / "run.json").read_text())["channels"] == {"M": "independent"}


def test_channel_independent_forecasts_map_each_channel_to_its_own_context(ett_dir):
    """forecast_segment with channels="independent": channel c of window i is the univariate
    forecast from channel c of window i's context (a stub that repeats its window's last value)."""

    class RepeatLast:
        def predict_windows(self, X):  # X (n, L, 1) → mean, std (n, H, 1)
            assert X.shape[-1] == 1
            return np.repeat(X[:, -1:, :], H, axis=1), np.ones((len(X), H, 1))

    splits = split(load_ett("ETTh1", path=ett_dir), "ETTh1", L, "M")
    mean, std, truth, context, _ = bench.forecast_segment(RepeatLast(), splits, splits.test, H, "independent")
    X, Y = windows(splits.test, L, H, splits.target_index)
    np.testing.assert_array_equal(mean, np.repeat(X[:, -1:, :], H, axis=1))
    np.testing.assert_array_equal(truth, Y)
    assert std.shape == Y.shape
    with pytest.raises(ValueError, match="features M"):
        bench.forecast_segment(RepeatLast(), split(load_ett("ETTh1", path=ett_dir), "ETTh1", L, "MS"), splits.test, H, "independent")


def test_merge_runs_split_by_horizon_gives_back_the_one_run(tmp_path):
    """A committed run cut into one folder per horizon and merged again: the same rows, the same
    tables, every run's record kept; overlapping runs of our model are refused."""
    whole = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "etth1-S-informer-s4d"
    results = pd.read_csv(whole / "results.csv")
    info = json.loads((whole / "run.json").read_text())
    folders = []
    for H in sorted(results.horizon.unique())[::-1]:  # out of order on purpose
        folder = tmp_path / f"H{H}"
        folder.mkdir()
        results[results.horizon == H].to_csv(folder / "results.csv", index=False)
        (folder / "run.json").write_text(json.dumps({**info, "seconds": float(H)}))
        folders.append(folder)
    run = bench.main(["--merge", *map(str, folders), "--out", str(tmp_path / "merged")])
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "merged" / "results.csv"), results)
    assert (tmp_path / "merged" / "results.md").read_text() == (whole / "results.md").read_text()
    assert run.info["seconds_each"] == sorted(results.horizon.unique().astype(float))[::-1]
    (tmp_path / "H24" / "results.csv").write_text((folders[-1] / "results.csv").read_text())  # H=24 twice
    with pytest.raises(ValueError, match="overlap"):
        bench.merge_runs([folders[-1], tmp_path / "H24"], tmp_path / "bad")


def test_merge_with_select_keeps_the_lowest_validation_mse_and_never_reads_the_test(tmp_path):
    """Two runs of one model at two lookbacks, merged with --select: at each horizon the row of
    lower val MSE is kept even where the other has the lower test MSE; every candidate is listed
    (candidates.csv, results.md) and a cell from the other lookback says so."""
    whole = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "etth2-S-informer-s4d"
    short = pd.read_csv(whole / "results.csv")
    info = json.loads((whole / "run.json").read_text())
    long = short.copy()
    ours = long.kind == "ours"
    # the L = 336 run: better on validation at H = 168 and 720 only, better on test everywhere
    lower_val = ours & long.horizon.isin([168, 720])
    long.loc[ours, "lookback"] = 336
    long.loc[ours, "mse"] = short.loc[ours, "mse"] / 2
    long.loc[ours, "val_mse"] = np.where(lower_val[ours], short.loc[ours, "val_mse"] - 0.01, short.loc[ours, "val_mse"] + 0.01)
    folders = []
    lower_lr = {**info, "configs": {"S": {"s4d": {**info["configs"]["S"]["s4d"], "lr": 1e-3}}}}
    for name, frame, record in (("L96", short, info), ("L336", long, lower_lr)):
        (tmp_path / name).mkdir()
        frame.to_csv(tmp_path / name / "results.csv", index=False)
        (tmp_path / name / "run.json").write_text(json.dumps(record))
        folders.append(str(tmp_path / name))
    with pytest.raises(ValueError, match="--select"):
        bench.merge_runs([Path(f) for f in folders], tmp_path / "refused")
    with pytest.raises(SystemExit):
        bench.main(["--select", "--out", str(tmp_path / "x")])
    run = bench.main(["--merge", *folders, "--out", str(tmp_path / "merged"), "--select"])

    kept = run.results[run.results.kind == "ours"].set_index("horizon")
    assert kept.lookback.to_dict() == {24: 96, 48: 96, 168: 336, 336: 96, 720: 336}
    expected = short[ours].set_index("horizon")
    for H, row in kept.iterrows():
        source = long[ours].set_index("horizon") if row.lookback == 336 else expected
        assert row.mse == source.loc[H, "mse"] and row.val_mse == source.loc[H, "val_mse"]
    others = run.results[run.results.kind != "ours"]
    pd.testing.assert_frame_equal(others.reset_index(drop=True), short[short.kind != "ours"].reset_index(drop=True))
    candidates = pd.read_csv(tmp_path / "merged" / "candidates.csv")
    assert len(candidates) == 10 and candidates.chosen.sum() == 5
    assert set(candidates.run) == {"L96", "L336"}
    assert set(zip(candidates.run, candidates.config)) == {("L96", "default"), ("L336", "lr=0.001")}  # from run.json
    text = (tmp_path / "merged" / "results.md").read_text()
    assert "Chosen on the validation split" in text
    main_table = text.split("\n\n")[1]  # after the title
    s4d_cells = {int(line.split("|")[1]): line.split("|")[3].strip() for line in main_table.splitlines() if line[:4] in ("| 24", "| 48", "| 16", "| 33", "| 72")}
    assert {H: cell.endswith("(L=336)") for H, cell in s4d_cells.items()} == {24: False, 48: False, 168: True, 336: False, 720: True}
    assert run.info["selected_on"] == "val_mse"


def test_merge_takes_a_merged_folder_as_one_of_its_runs(tmp_path):
    """A merge of per-horizon runs merged again with a candidate run (--select): the inner merge's
    run time is the sum of its runs', its commands are kept, and its candidates' configuration is
    read from the runs it came from."""
    whole = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "etth2-S-informer-s4d"
    results = pd.read_csv(whole / "results.csv")
    info = json.loads((whole / "run.json").read_text())
    halves = []
    for name, horizons, seconds in (("short", [24, 48], 10.0), ("long", [168, 336, 720], 20.0)):
        (tmp_path / name).mkdir()
        results[results.horizon.isin(horizons)].to_csv(tmp_path / name / "results.csv", index=False)
        (tmp_path / name / "run.json").write_text(json.dumps({**info, "seconds": seconds, "command": f"run {name}"}))
        halves.append(tmp_path / name)
    bench.merge_runs(halves, tmp_path / "inner")
    candidate = results.copy()
    ours = candidate.kind == "ours"
    candidate.loc[ours, "val_mse"] -= 0.01  # better on validation everywhere
    (tmp_path / "lr").mkdir()
    candidate.to_csv(tmp_path / "lr" / "results.csv", index=False)
    lower_lr = {**info, "seconds": 5.0, "command": "run lr", "configs": {"S": {"s4d": {**info["configs"]["S"]["s4d"], "lr": 1e-3}}}}
    (tmp_path / "lr" / "run.json").write_text(json.dumps(lower_lr))
    run = bench.merge_runs([tmp_path / "inner", tmp_path / "lr"], tmp_path / "outer", select=True)
    assert run.info["seconds_each"] == [30.0, 5.0]
    assert run.info["commands"] == [["run short", "run long"], "run lr"]
    candidates = pd.read_csv(tmp_path / "outer" / "candidates.csv")
    assert set(zip(candidates.run, candidates.config, candidates.chosen)) == {("inner", "default", False), ("lr", "lr=0.001", True)}


def test_selecting_again_over_a_selection_keeps_its_candidates_and_their_origin(tmp_path):
    """Three candidate runs A, B, C: selecting over C and the selection of A and B gives the same
    table and the same candidates (run, configuration, chosen) as selecting over A, B and C at
    once; the rivals of the inner selection are listed again under their own runs, and the row
    chosen there keeps its run's name and configuration (not those of the inner selection's first run)."""
    whole = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "etth2-S-informer-s4d"
    base = pd.read_csv(whole / "results.csv")
    info = json.loads((whole / "run.json").read_text())
    ours = base.kind == "ours"
    # val MSE offsets per horizon 24 … 720: A wins at 24 and 48, B at 168 and 336, C at 720
    offsets = {"A": [-3, -3, 0, 0, 0], "B": [0, 0, -3, -3, -1], "C": [-1, -1, -1, -1, -3]}
    folders = {}
    for name, lr in (("A", 3e-3), ("B", 1e-3), ("C", 3e-4)):
        frame = base.copy()
        frame.loc[ours, "val_mse"] += np.array(offsets[name]) * 0.01
        frame.loc[ours, "mse"] += {"A": 0.1, "B": 0.2, "C": 0.3}[name]  # tells the rows apart
        (tmp_path / name).mkdir()
        frame.to_csv(tmp_path / name / "results.csv", index=False)
        record = {**info, "seconds": 1.0, "configs": {"S": {"s4d": {**info["configs"]["S"]["s4d"], "lr": lr}}}}
        (tmp_path / name / "run.json").write_text(json.dumps(record))
        folders[name] = tmp_path / name
    once = bench.merge_runs([folders["A"], folders["B"], folders["C"]], tmp_path / "once", select=True)
    bench.merge_runs([folders["A"], folders["B"]], tmp_path / "AB", select=True)
    again = bench.merge_runs([tmp_path / "AB", folders["C"]], tmp_path / "again", select=True)
    pd.testing.assert_frame_equal(again.results, once.results)
    columns = ["horizon", "run", "config", "val_mse", "mse", "chosen"]
    expected = pd.read_csv(tmp_path / "once" / "candidates.csv")[columns].sort_values(["horizon", "run"]).reset_index(drop=True)
    got = pd.read_csv(tmp_path / "again" / "candidates.csv")[columns].sort_values(["horizon", "run"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected)
    assert len(got) == 15 and got.chosen.sum() == 5
    chosen = got[got.chosen].set_index("horizon")
    assert chosen.run.to_dict() == {24: "A", 48: "A", 168: "B", 336: "B", 720: "C"}
    assert chosen.config.to_dict() == {24: "default", 48: "default", 168: "lr=0.001", 336: "lr=0.001", 720: "lr=0.0003"}


def test_several_lookbacks_fit_each_and_keep_the_lowest_validation_mse(ett_dir, tmp_path):
    """--lookback 24 48: the model is fitted at both (fits keyed by L), the row of lower val MSE
    is the one in the table, both are candidates; naive and published rows appear once."""
    argv = [*ARGS, "--data-dir", str(ett_dir), "--out", str(tmp_path)]
    argv[argv.index("--lookback") + 1 : argv.index("--lookback") + 2] = ["24", "48"]
    run = bench.main(argv)
    candidates = pd.read_csv(tmp_path / "candidates.csv")
    assert sorted(candidates.lookback) == [24, 48] and candidates.chosen.sum() == 1
    best = candidates.loc[candidates.val_mse.idxmin()]
    ours = run.results[run.results.kind == "ours"]
    assert len(ours) == 1 and ours.lookback.iloc[0] == best.lookback and ours.mse.iloc[0] == pytest.approx(best.mse, rel=1e-12)
    assert set(run.fits) == {(*KEY, 24), (*KEY, 48)}
    assert run.fits[(*KEY, 48)].n_train_windows == run.fits[(*KEY, 24)].n_train_windows - 24
    assert not run.results.duplicated(bench.ROW_KEYS).any() and (run.results.kind == "naive").sum() == 2
    assert run.info["lookback"] == {"informer": [24, 48]} and run.info["selected_on"] == "val_mse"
    assert "Chosen on the validation split" in (tmp_path / "results.md").read_text()
    # selected again by a merge: the same row kept, both lookbacks listed again, configuration from run.json
    again = bench.merge_runs([tmp_path], tmp_path / "again", select=True)
    kept = again.results[again.results.kind == "ours"]
    assert len(kept) == 1 and kept.lookback.iloc[0] == best.lookback and kept.mse.iloc[0] == pytest.approx(best.mse, rel=1e-12)
    relisted = pd.read_csv(tmp_path / "again" / "candidates.csv")
    assert sorted(relisted.lookback) == [24, 48] and relisted.chosen.sum() == 1 and set(relisted.run) == {tmp_path.name}
    assert set(relisted.config) == {bench.config_text(run.info["configs"]["S"]["s4d"], "S")}
    with pytest.raises(SystemExit):
        bench.main([*ARGS[:-2], "--lookback", "24", "24", "--out", str(tmp_path / "x")])


def test_table_names_our_model_chosen_on_validation_when_there_are_several():
    """Two of our models: below the table, per H the one of lower val MSE with its test numbers,
    even where the other has the lower test MSE; one model alone: no such table."""
    whole = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "etth2-S-informer-s4d"
    results = pd.read_csv(whole / "results.csv")
    s4d = results[results.kind == "ours"]
    s4 = s4d.assign(method="S4", source="s4", mse=s4d.mse / 2)  # better on test everywhere
    s4.loc[s4.horizon <= 48, "val_mse"] -= 0.01  # better on validation at H = 24, 48 only
    s4.loc[s4.horizon > 48, "val_mse"] += 0.01
    both = pd.concat([results, s4], ignore_index=True)
    text = bench.markdown_table(both, "ETTh2", "informer", "S", ["s4", "s4d"])
    picks = text.split("Our model chosen on validation")[1].split("\n\n")[1].splitlines()[2:]
    chosen = {int(line.split("|")[1]): (line.split("|")[2].strip(), float(line.split("|")[4].split("/")[0])) for line in picks}
    expected_s4d = s4d.set_index("horizon").mse.round(4)
    assert {H: m for H, (m, _) in chosen.items()} == {24: "S4", 48: "S4", 168: "S4D", 336: "S4D", 720: "S4D"}
    for H, (model, mse) in chosen.items():
        assert mse == pytest.approx(expected_s4d[H] / (2 if model == "S4" else 1), abs=6e-5)
    assert "Our model chosen on validation" not in bench.markdown_table(results, "ETTh2", "informer", "S", ["s4d"])


RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


@pytest.mark.parametrize("name", sorted(p.name for p in RESULTS.glob("*-selected")))
def test_committed_selection_is_reproduced_by_merging_it_again(name, tmp_path):
    """Merging a committed selection alone again (--select) gives back its tables byte for byte:
    the same rows chosen, the candidates listed by setting, H, model and val MSE (chosen first)."""
    folder = RESULTS / name
    bench.merge_runs([folder], tmp_path, select=True)
    for file in ("results.csv", "candidates.csv", "results.md"):
        assert (tmp_path / file).read_text() == (folder / file).read_text(), file
    candidates = pd.read_csv(folder / "candidates.csv")
    for _, group in candidates.groupby(["data", "protocol", "features", "horizon", "method"]):
        assert group.chosen.iloc[0] and group.val_mse.is_monotonic_increasing


def _target_rows(text: str) -> dict:
    """The target verdict lines of a table: H → (chosen, test MSE, verdict)."""
    block = text.split("Target: ")[1].split("\n\n")[1].splitlines()[2:]
    return {int(c[1]): (c[2].strip(), float(c[3]), c[-2].strip()) for c in (line.split("|") for line in block)}


def test_target_verdict_names_the_horizons_where_the_chosen_model_misses():
    """Informer S: met only strictly below both the published S4 and repeat-last (a tie misses);
    LTSF M: at or below DLinear at its three printed decimals (0.37549 meets 0.375, 0.37551 does
    not); the verdict is for the model chosen on validation, not the one best on test; the summary
    line lists the missed horizons; no target for MS."""
    results = pd.read_csv(RESULTS / "etth1-S-informer-s4d" / "results.csv")
    naive = results[(results.kind == "naive") & (results.method == "repeat-last")].set_index("horizon").mse
    s4 = results[(results.kind == "published") & (results.source == "s4")].set_index("horizon").mse
    assert naive[168] < s4[168] and s4[336] < naive[336]  # ETTh1: either column can be the binding one
    ours = results.kind == "ours"
    new = {24: naive[24] - 1e-4, 48: min(s4[48], naive[48]) / 2, 168: naive[168] + 1e-4, 336: s4[336], 720: 9.0}
    results.loc[ours, "mse"] = results.loc[ours, "horizon"].map(new)
    rival = results[ours].assign(method="S4", source="s4", mse=0.0, val_mse=results.loc[ours, "val_mse"] + 1)  # best on test, never chosen
    text = bench.markdown_table(pd.concat([results, rival]), "ETTh1", "informer", "S", ["s4d", "s4"])
    rows = _target_rows(text)
    assert {H: m for H, (m, _, _) in rows.items()} == dict.fromkeys(new, "S4D")
    verdict = {H: v for H, (_, _, v) in rows.items()}
    assert verdict == {24: "met", 48: "met", 168: "**missed** (repeat-last)", 336: "**missed** (S4)", 720: "**missed** (S4, repeat-last)"}
    assert "Target met at 2 of 5 horizons; **missed at H = 168, 336, 720**." in text

    m = pd.read_csv(RESULTS / "etth2-M-ltsf-s4d" / "results.csv")
    dlinear = m[(m.kind == "published") & (m.source == "dlinear") & (m.method == "DLinear")].set_index("horizon").mse
    mine = m.kind == "ours"
    m.loc[mine, "mse"] = m.loc[mine, "horizon"].map({96: dlinear[96] + 0.00049, 192: dlinear[192] + 0.00051, 336: 0.1, 720: 0.1})
    rows = _target_rows(bench.markdown_table(m, "ETTh2", "ltsf", "M", ["s4d"]))
    assert {H: v for H, (_, _, v) in rows.items()} == {96: "met", 192: "**missed** (DLinear)", 336: "met", 720: "met"}
    ms = m.assign(features="MS")
    assert "Target" not in bench.markdown_table(ms, "ETTh2", "ltsf", "MS", ["s4d"])


@pytest.mark.parametrize("name", sorted(p.name for p in RESULTS.glob("*-selected")))
def test_committed_selection_states_its_target_verdict(name):
    """Each committed selection's results.md says, per H, whether the chosen model's test MSE meets
    the target, recomputed here from results.csv (the chosen model: lowest val MSE among ours)."""
    results = pd.read_csv(RESULTS / name / "results.csv")
    text = (RESULTS / name / "results.md").read_text()
    rows = _target_rows(text)
    ours = results[results.kind == "ours"]
    for H, (model, mse, verdict) in rows.items():
        at = ours[ours.horizon == H]
        pick = at.loc[at.val_mse.idxmin()]
        assert model == pick.method and mse == pytest.approx(pick.mse, abs=5e-5)
        pub = results[(results.kind == "published") & (results.horizon == H)].set_index(["source", "method"]).mse
        naive = results[(results.kind == "naive") & (results.horizon == H)].set_index("method").mse
        if pick.protocol == "informer":
            met = pick.mse < pub["s4", "S4"] and pick.mse < naive["repeat-last"]
        else:
            met = round(pick.mse, 3) <= pub["dlinear", "DLinear"]
        assert verdict.startswith("met") == met and verdict.startswith("**missed**") == (not met)


@pytest.mark.parametrize("name", sorted(p.name for p in RESULTS.glob("*-selected")))
def test_committed_selection_is_the_validation_argmin_of_its_candidates(name):
    """Each committed selection (benchmarks/results/*-selected): per model and H, the kept row is
    the candidate of lowest val MSE, and each chosen candidate is a kept row."""
    folder = RESULTS / name
    results, candidates = pd.read_csv(folder / "results.csv"), pd.read_csv(folder / "candidates.csv")
    argmin = candidates.loc[candidates.groupby(["method", "horizon"]).val_mse.idxmin()]
    assert sorted(argmin.index) == sorted(candidates.index[candidates.chosen])
    kept = results[results.kind == "ours"].merge(argmin, on=["method", "horizon"], suffixes=("", "_c"))
    assert len(kept) == len(argmin) and (kept.lookback == kept.lookback_c).all()
    np.testing.assert_allclose(kept[["mse", "val_mse"]].to_numpy(), kept[["mse_c", "val_mse_c"]].to_numpy())


def test_linear_reference_scores_as_the_protocol_and_fits_by_least_squares(ett_dir, monkeypatch):
    """ssmforecast.benchmarks.linear: with the map fixed to "the last context value" (V = e_L, v = 0),
    σ (V x̃ + v) + μ is repeat-last, and the val/test scores are evaluate_naive's and the notes'
    reference (ETTh1 S H = 24: 0.0343); the fitted map is the σ²-weighted least-squares one (its
    training loss rises along any perturbation) and beats repeat-last on test."""
    from ssmforecast.benchmarks import linear

    splits = split(load_ett("ETTh1", path=ett_dir), "ETTh1", 96, "S")
    fitted = linear.linear_reference(splits, 24)
    e_last = lambda x, y, w: (np.eye(x.shape[1])[-1:].repeat(y.shape[1], axis=0), np.zeros(y.shape[1]))  # noqa: E731
    monkeypatch.setattr(linear, "skip_lstsq", e_last)
    naive = linear.linear_reference(splits, 24)
    assert naive["test"][0] == pytest.approx(evaluate_naive(splits, 24, "repeat").mse, rel=1e-9)
    assert round(naive["test"][0], 4) == 0.0343 and naive["windows"] == 2881 - 24
    assert fitted["test"][0] < 0.9 * naive["test"][0]
    monkeypatch.undo()
    x, y, _, sigma = linear._channel_rows(splits.train, splits.target_index, 96, 24)
    V, v = linear.skip_lstsq(x, y, sigma[:, 0] ** 2)
    loss = lambda V, v: np.mean(sigma**2 * (x @ V.T + v - y) ** 2)  # noqa: E731
    rng = np.random.default_rng(0)
    for _ in range(3):
        dV, dv = 1e-3 * rng.standard_normal(V.shape), 1e-3 * rng.standard_normal(v.shape)
        assert loss(V + dV, v + dv) > loss(V, v)


def test_linear_reference_without_revin_is_ordinary_least_squares_on_the_standardised_windows(ett_dir, monkeypatch):
    """--no-revin: the map reads the standardised context as it is; fixed to the last context value
    it is again repeat-last (0.0343), and fitted it is numpy's ordinary least squares of the train
    windows' futures on [context, 1] (unweighted: σ = 1), scored on the val windows."""
    from ssmforecast.benchmarks import linear

    splits = split(load_ett("ETTh1", path=ett_dir), "ETTh1", 96, "S")
    fitted = linear.linear_reference(splits, 24, revin=False)
    X, Y = windows(splits.train, 96, 24, splits.target_index)  # (n, 96, 1), (n, 24, 1)
    A = np.concatenate([X[..., 0], np.ones((len(X), 1))], axis=1)  # (n, 97)
    coef = np.linalg.lstsq(A, Y[..., 0], rcond=None)[0]  # (97, 24)
    Xv, Yv = windows(splits.val, 96, 24, splits.target_index)
    val = np.mean((np.concatenate([Xv[..., 0], np.ones((len(Xv), 1))], axis=1) @ coef - Yv[..., 0]) ** 2)
    assert fitted["val"] == pytest.approx(val, rel=1e-6)
    e_last = lambda x, y, w: (np.eye(x.shape[1])[-1:].repeat(y.shape[1], axis=0), np.zeros(y.shape[1]))  # noqa: E731
    monkeypatch.setattr(linear, "skip_lstsq", e_last)
    assert round(linear.linear_reference(splits, 24, revin=False)["test"][0], 4) == 0.0343


# ---------------------------------------------------------------------------------- refused before training


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--lookback", "8617", "--horizons", "24"], "lookback 8617 \\+ horizon 24 leaves 0 train and 2857 val windows"),
        (["--lookback", "9000"], "lookback 9000 \\+ horizon 24 leaves 0 train and 0 val windows"),
        (["--horizons", "24", "3000"], "lookback 96 \\+ horizon 3000 leaves 5545 train and 0 val windows"),
        (["--features", "M", "MS", "--channels", "independent"], "--channels independent is for features M .*not MS"),
        (["--epochs", "0"], "--epochs: The 'max_epochs' parameter"),
        (["--dropout", "2"], "--dropout: The 'dropout' parameter"),
        (["--horizons", "24", "24"], "--horizons must be distinct positive integers"),
        (["--models", "s4d", "s4d"], "--models names a value twice"),
    ],
)
def test_bad_options_are_refused_before_any_training(extra, message, ett_dir, tmp_path, capsys, monkeypatch):
    """What would fail hours into a run (a lookback + horizon the splits cannot hold: 8640 train
    rows give 8640 − L − H + 1 windows, 2880 + L val rows 2881 − H; channels that do not fit the
    features; a parameter out of range) is an argparse error naming the option, before any fit."""
    monkeypatch.setattr(bench, "run_setting", lambda *a, **k: pytest.fail("trained before refusing"))
    argv = ["--data", "ETTh1", "--protocol", "informer", "--features", "S", "--models", "s4d", "--horizons", "24",
            "--data-dir", str(ett_dir), "--out", str(tmp_path)]  # fmt: skip
    for option in ("--features", "--horizons", "--models"):
        if option in extra:  # the case's own value replaces the default above
            i = argv.index(option)
            del argv[i : i + 2]
    with pytest.raises(SystemExit):
        bench.main([*argv, *extra])
    assert re.search(message, capsys.readouterr().err)


def test_fit_forecaster_refuses_a_split_without_train_or_val_windows(ett_dir, monkeypatch):
    """The library call refuses too (else the loop would train on the val windows, unvalidated)."""
    splits = split(load_ett("ETTh1", path=ett_dir), "ETTh1", 8617, "S")
    forecaster = S4DForecaster()
    monkeypatch.setattr(forecaster, "fit", lambda *a, **k: pytest.fail("fitted without train windows"))
    with pytest.raises(ValueError, match="leaves 0 train and 2857 val windows"):
        bench.fit_forecaster(forecaster, splits, load_ett("ETTh1", path=ett_dir).index, 24)


def test_every_file_is_found_before_training(ett_dir, tmp_path, monkeypatch):
    only_h1 = tmp_path / "only_h1"
    only_h1.mkdir()
    (only_h1 / "ETTh1.csv").symlink_to(ett_dir / "ETTh1.csv")
    monkeypatch.setattr(bench, "run_setting", lambda *a, **k: pytest.fail("trained before the missing file was found"))
    with pytest.raises(FileNotFoundError, match="ETTh2"):
        bench.main([*ARGS, "--data", "ETTh1", "ETTh2", "--data-dir", str(only_h1), "--out", str(tmp_path / "out")])


def test_merge_checks_folders_hides_the_test_table_and_names_channels(tiny, tmp_path, capsys):
    """--merge: a folder without run.json is an argparse error; --hide-test prints nothing; two runs
    that differ only in channels are told apart in the candidates' configuration; a plain merge of
    two lookbacks does not claim a validation choice."""
    run, *_ = tiny
    with pytest.raises(SystemExit):
        bench.main(["--merge", str(tmp_path), "--out", str(tmp_path / "m")])
    assert "not a results folder" in capsys.readouterr().err
    bench.main(["--merge", str(run.out), "--out", str(tmp_path / "quiet"), "--hide-test"])
    assert capsys.readouterr().out == "" and (tmp_path / "quiet" / "results.md").exists()
    merged_by = json.loads((tmp_path / "quiet" / "run.json").read_text())["merged_by"]
    assert merged_by.endswith(f"--merge {run.out} --out {tmp_path / 'quiet'}")

    record = json.loads((run.out / "run.json").read_text())
    results = pd.read_csv(run.out / "results.csv")
    for name, channels in (("ind", "independent"), ("mixed", "mixed")):
        (tmp_path / name).mkdir()
        rows = results.assign(features="M")
        rows.loc[rows.kind == "ours", "val_mse"] += 0.01 if channels == "mixed" else 0.0
        rows.to_csv(tmp_path / name / "results.csv", index=False)
        configs = {"M": record["configs"]["S"]}
        (tmp_path / name / "run.json").write_text(json.dumps({**record, "configs": configs, "channels": {"M": channels}}))
    bench.merge_runs([tmp_path / "ind", tmp_path / "mixed"], tmp_path / "sel", select=True)
    candidates = pd.read_csv(tmp_path / "sel" / "candidates.csv").set_index("run")
    assert "channels" not in candidates.loc["ind", "config"] and candidates.loc["mixed", "config"].endswith("channels=mixed")

    other = results.copy()
    other.loc[other.kind == "ours", "lookback"] = 48
    other.loc[other.kind == "ours", "horizon"] = 48
    other.loc[other.kind != "ours", "horizon"] = 48
    (tmp_path / "L48").mkdir()
    other.to_csv(tmp_path / "L48" / "results.csv", index=False)
    (tmp_path / "L48" / "run.json").write_text(json.dumps(record))
    plain = bench.merge_runs([run.out, tmp_path / "L48"], tmp_path / "plain")
    title = (plain.out / "results.md").read_text().split("\n")[0]
    assert "unless a cell names another" in title and "chosen on validation" not in title
