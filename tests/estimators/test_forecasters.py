"""The sktime forecasters: accuracy on known signals, calibrated intervals, global panels,
exogenous inputs, update semantics, persistence, integrations and errors."""

import copy
import pickle
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sktime.forecasting.base import ForecastingHorizon
from sktime.forecasting.model_evaluation import evaluate
from sktime.forecasting.model_selection import ForecastingGridSearchCV
from sktime.split import ExpandingWindowSplitter

from ssmforecast import MambaForecaster, S4DForecaster, S4Forecaster
from ssmforecast.estimators._loop import split_validation
from ssmforecast.estimators._windows import instance_stats, sliding_windows, tokens
from ssmforecast.estimators.forecasters import MIN_SIGMA, _ForecastNet, _HeadLoss, skip_lstsq
from ssmforecast.nn import Backbone

SMALL = {"d_model": 16, "n_layers": 1, "d_state": 8, "batch_size": 64, "random_state": 0}


def two_sines(n: int) -> pd.Series:
    t = np.arange(n)
    return pd.Series(np.sin(2 * np.pi * t / 24) + np.sin(2 * np.pi * t / 168), index=pd.RangeIndex(n), name="y")


def ar1(n: int, phi: float, seed: int) -> pd.Series:
    rng = np.random.default_rng(seed)
    eps = rng.standard_normal(n)
    x = np.zeros(n)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + eps[t]
    return pd.Series(x, index=pd.date_range("2021-01-01", periods=n, freq="h"), name="ar")


# ----------------------------------------------------------------------------- accuracy


# Each fit takes well under a minute on 2 CPU cores (S4D ≈ 7 s, S4 ≈ 15 s, Mamba ≈ 45 s): a
# noiseless target needs no distribution head, so the point loss is used.
SINE_CONFIGS = {
    S4DForecaster: {"lr": 1e-2, "max_epochs": 8, "loss": "mse"},
    S4Forecaster: {"lr": 1e-2, "max_epochs": 8, "loss": "mse"},
    MambaForecaster: {"lr": 1e-2, "max_epochs": 8, "loss": "mse", "d_state": 8},
}


@pytest.mark.parametrize("cls", list(SINE_CONFIGS), ids=lambda c: c.__name__)
def test_two_sinusoids_horizon_24_below_5_percent_of_variance(cls):
    """Noiseless sin(2πt/24) + sin(2πt/168): MSE over four held-out 24-step forecasts < 5% of var."""
    y = two_sines(1000)
    train = y.iloc[:-96]
    f = cls(context_length=96, horizon=24, batch_size=64, random_state=0, **SINE_CONFIGS[cls]).fit(train)
    errors = []
    for start in range(len(train), len(y), 24):
        pred = f.predict(fh=np.arange(1, 25))
        errors.append(np.mean((pred.to_numpy() - y.iloc[start : start + 24].to_numpy()) ** 2))
        f.update(y.iloc[start : start + 24], update_params=False)
    assert np.mean(errors) < 0.05 * y.var()


def test_intervals_are_calibrated_on_gaussian_ar1():
    """AR(1), φ = 0.7: empirical coverage of the 80% and 95% intervals on held-out forecasts
    (100 origins × 6 steps) lies within ±5 points of nominal."""
    y = ar1(2700, phi=0.7, seed=1)
    train, test = y.iloc[:2000], y.iloc[2000:]
    f = S4DForecaster(context_length=32, horizon=6, max_epochs=15, lr=1e-2, **SMALL).fit(train)
    hits = {0.8: [], 0.95: []}
    for start in range(0, 600, 6):
        iv = f.predict_interval(fh=np.arange(1, 7), coverage=[0.8, 0.95])
        truth = test.iloc[start : start + 6].to_numpy()
        for c in hits:
            lower, upper = iv[("ar", c, "lower")].to_numpy(), iv[("ar", c, "upper")].to_numpy()
            hits[c].extend((lower <= truth) & (truth <= upper))
        f.update(test.iloc[start : start + 6], update_params=False)
    for c, h in hits.items():
        assert abs(np.mean(h) - c) <= 0.05, f"coverage of the {c:.0%} interval: {np.mean(h):.3f}"


# ----------------------------------------------------------------------------- shared fitted models


@pytest.fixture(scope="module")
def sines():
    return two_sines(400)


@pytest.fixture(scope="module")
def fitted(sines):
    return S4DForecaster(context_length=48, horizon=24, max_epochs=3, **SMALL).fit(sines)


def test_any_subset_of_the_horizon(fitted, sines):
    full = fitted.predict(fh=np.arange(1, 25))
    subset = fitted.predict(fh=[3, 7, 24])
    np.testing.assert_allclose(subset.to_numpy(), full.iloc[[2, 6, 23]].to_numpy(), rtol=1e-6, atol=1e-6)
    assert list(subset.index) == [sines.index[-1] + k for k in (3, 7, 24)]
    absolute = fitted.predict(fh=ForecastingHorizon(sines.index[-1] + np.array([3, 7, 24]), is_relative=False))
    np.testing.assert_allclose(absolute.to_numpy(), subset.to_numpy())


def test_horizon_beyond_the_trained_one_is_an_error(fitted):
    with pytest.raises(ValueError, match=r"reaches step 30.*horizon=24"):
        fitted.predict(fh=[1, 30])
    with pytest.raises(NotImplementedError, match="in-sample"):  # sktime's own check, from our tag
        fitted.predict(fh=[0, 1])


def test_quantiles_are_normal_and_ordered(fitted):
    q = fitted.predict_quantiles(fh=[1, 5], alpha=[0.05, 0.5, 0.95])
    mean = fitted.predict(fh=[1, 5]).to_numpy()
    np.testing.assert_allclose(q[("y", 0.5)].to_numpy(), mean, atol=1e-9)
    assert np.all(q[("y", 0.05)] < q[("y", 0.5)]) and np.all(q[("y", 0.5)] < q[("y", 0.95)])
    var = fitted.predict_var(fh=[1, 5]).to_numpy()[:, 0]
    # symmetric normal quantiles: q95 − q50 = 1.6449 σ
    np.testing.assert_allclose(q[("y", 0.95)] - q[("y", 0.5)], 1.6448536 * np.sqrt(var), rtol=1e-6)
    # predict_proba (skpro) is the same normal distribution
    dist = fitted.predict_proba(fh=[1, 5])
    np.testing.assert_allclose(dist.ppf(0.05).to_numpy()[:, 0], q[("y", 0.05)].to_numpy(), rtol=1e-9)


def test_update_without_params_equals_forecast_from_the_extended_history(fitted):
    """update(update_params=False) moves the context only: the forecast equals the fitted network
    run by hand on the last context_length points of the extended history, streaming one point at
    a time gives the same, and the kept state stays context_length rows however long the history."""
    new = two_sines(400 + 500).iloc[400:]
    f = copy.deepcopy(fitted)
    f.update(new, update_params=False)
    g = copy.deepcopy(fitted)
    for i in range(len(new) - 30, len(new)):  # the last 30 points one by one, after a bulk update
        g.update(new.iloc[: len(new) - 30] if i == len(new) - 30 else new.iloc[i - 1 : i], update_params=False)
    g.update(new.iloc[-1:], update_params=False)
    pred = f.predict(fh=np.arange(1, 25)).to_numpy()
    np.testing.assert_allclose(g.predict(fh=np.arange(1, 25)).to_numpy(), pred, rtol=1e-10, atol=1e-12)

    # reference: normalise the last 48 points, run the module, map back
    ctx = ((new.to_numpy()[-48:] - f.y_mean_) / f.y_scale_)[None, :, None]  # (1, 48, 1)
    mu, sd = instance_stats(ctx)
    device = next(f.module_.parameters()).device  # "auto": the GPU where there is one
    with torch.no_grad():
        tok = torch.as_tensor(tokens((ctx - mu) / sd, 24, None), dtype=torch.float32, device=device)
        out = f.module_(tok, torch.arange(1.0, 25.0, device=device)[None]).double().cpu().numpy()
    expected = (out[0, :, 0] * sd[0, 0, 0] + mu[0, 0, 0]) * f.y_scale_[0] + f.y_mean_[0]
    np.testing.assert_allclose(pred, expected, rtol=1e-6, atol=1e-6)
    assert len(f.context_[()]) == 48
    assert list(pred.shape) == [24]
    assert f.cutoff[0] == new.index[-1]
    assert all(torch.equal(a, b) for a, b in zip(f.module_.state_dict().values(), fitted.module_.state_dict().values()))


def test_update_with_params_fine_tunes(fitted):
    f = copy.deepcopy(fitted)
    new = two_sines(600).iloc[400:]
    f.update(new, update_params=True)
    assert len(f.history_) == len(fitted.history_) + f.update_epochs
    changed = [not torch.equal(a, b) for a, b in zip(f.module_.state_dict().values(), fitted.module_.state_dict().values())]
    assert any(changed)
    assert f.context_[()].index[-1] == new.index[-1]


def test_fit_is_reproducible_and_leaves_the_global_rng_alone(sines):
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = S4DForecaster(context_length=24, horizon=6, max_epochs=2, **SMALL).fit(sines).predict(fh=[1, 2, 3])
    after = torch.rand(3)
    np.testing.assert_array_equal(before, after)
    b = S4DForecaster(context_length=24, horizon=6, max_epochs=2, **SMALL).fit(sines).predict(fh=[1, 2, 3])
    c = S4DForecaster(context_length=24, horizon=6, max_epochs=2, **{**SMALL, "random_state": 1}).fit(sines).predict(fh=[1, 2, 3])
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())
    assert not np.array_equal(a.to_numpy(), c.to_numpy())


def test_pickle_joblib_and_sktime_save_load_round_trips(fitted, tmp_path):
    from sktime.base import load

    expected = fitted.predict_interval(fh=[1, 2, 3], coverage=0.9)
    joblib.dump(fitted, tmp_path / "f.joblib")
    fitted.save(tmp_path / "f")
    for clone in (pickle.loads(pickle.dumps(fitted)), joblib.load(tmp_path / "f.joblib"), load(tmp_path / "f.zip")):
        pd.testing.assert_frame_equal(clone.predict_interval(fh=[1, 2, 3], coverage=0.9), expected)


# ----------------------------------------------------------------------------- panels and exogenous


def test_one_global_model_serves_a_panel_of_20_series():
    rng = np.random.default_rng(0)
    t = np.arange(240)
    frames = []
    for i in range(20):
        a, phase, level = rng.uniform(0.5, 2), rng.uniform(0, 2 * np.pi), rng.uniform(-3, 3)
        frames.append(pd.DataFrame({"v": level + a * np.sin(2 * np.pi * t / 24 + phase)}, index=pd.MultiIndex.from_product([[f"s{i}"], t], names=["series", "time"])))
    panel = pd.concat(frames)
    train = panel[panel.index.get_level_values("time") < 228]
    f = S4DForecaster(context_length=48, horizon=12, max_epochs=6, lr=1e-2, loss="mse", **SMALL).fit(train)
    pred = f.predict(fh=np.arange(1, 13))
    assert isinstance(pred.index, pd.MultiIndex) and pred.index.names == ["series", "time"]
    assert list(pred.index.get_level_values("series").unique()) == [f"s{i}" for i in range(20)]
    assert list(pred.index.get_level_values("time")[:12]) == list(range(228, 240))
    assert len(f.context_) == 20  # one network, one context per series
    truth = panel[panel.index.get_level_values("time") >= 228]
    mse = np.mean((pred["v"].to_numpy() - truth["v"].loc[pred.index].to_numpy()) ** 2)
    # the per-series variance is a²/2 ≈ 0.8 on average: the global model is far below it
    assert mse < 0.1


def test_a_series_shorter_than_the_context_is_named_and_forecast_once_update_completes_it():
    """Panel with one series of 20 rows < context_length 48: fit and predict warn naming it and
    predict leaves it out; updates of 20 rows at a time accumulate (not dropped for being short):
    after the third it is forecast, exactly as after one update with all its 60 rows."""
    t = np.arange(200)
    frame = lambda name, times: pd.DataFrame(  # noqa: E731
        {"v": np.sin(2 * np.pi * times / 24) + (name == "s2")}, index=pd.MultiIndex.from_product([[name], times], names=["series", "time"])
    )
    panel = pd.concat([frame("s0", t), frame("s1", t), frame("s2", t[:20])])
    with pytest.warns(UserWarning, match=r"1 series with fewer than context_length=48 observations \(s2\)"):
        f = S4DForecaster(context_length=48, horizon=6, max_epochs=1, loss="mse", **SMALL).fit(panel)
    once = copy.deepcopy(f)
    with pytest.warns(UserWarning, match="s2"):
        pred = f.predict(fh=[1, 2])
    assert list(pred.index.get_level_values("series").unique()) == ["s0", "s1"]
    with pytest.warns(UserWarning, match="s2"):
        f.update(frame("s2", t[20:40]), update_params=False)  # 40 rows: still short
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        f.update(frame("s2", t[40:60]), update_params=False)  # 60 rows: complete, no warning
    once.update(frame("s2", t[20:60]), update_params=False)
    pred, expected = f.predict(fh=[1, 2]), once.predict(fh=[1, 2])
    assert list(pred.index.get_level_values("series").unique()) == ["s0", "s1", "s2"]
    assert list(pred.loc["s2"].index) == [60, 61]
    pd.testing.assert_frame_equal(pred, expected)


def test_exogenous_inputs_are_used_and_required():
    rng = np.random.default_rng(0)
    n = 600
    X = pd.DataFrame({"driver": rng.standard_normal(n)})
    y = pd.Series(2.0 * X["driver"].to_numpy() + 0.1 * rng.standard_normal(n), name="y")
    kw = dict(context_length=16, horizon=4, max_epochs=8, lr=1e-2, loss="mse", **SMALL)
    with_x = S4DForecaster(**kw).fit(y.iloc[:-4], X=X.iloc[:-4])
    without = S4DForecaster(**kw).fit(y.iloc[:-4])
    truth = y.iloc[-4:].to_numpy()
    err_x = np.mean((with_x.predict(fh=[1, 2, 3, 4], X=X.iloc[-4:]).to_numpy() - truth) ** 2)
    err = np.mean((without.predict(fh=[1, 2, 3, 4]).to_numpy() - truth) ** 2)
    assert err_x < 0.25 * err
    with pytest.raises(ValueError, match="fitted with exogenous X"):
        with_x.predict(fh=[1, 2])
    with pytest.raises(ValueError, match="no values at forecast time"):
        with_x.predict(fh=[1, 4], X=X.iloc[-4:-1])
    # X only at the requested times: the steps between are interpolated
    assert np.isfinite(with_x.predict(fh=[2, 4], X=X.iloc[[-3, -1]]).to_numpy()).all()


def test_multivariate_target_keeps_columns():
    t = np.arange(200)
    y = pd.DataFrame({"a": np.sin(t / 5), "b": np.cos(t / 7)}, index=pd.period_range("2000-01", periods=200, freq="M"))
    f = S4DForecaster(context_length=24, horizon=6, max_epochs=2, **SMALL).fit(y)
    pred = f.predict(fh=[1, 6])
    assert list(pred.columns) == ["a", "b"] and list(pred.index) == [y.index[-1] + 1, y.index[-1] + 6]
    iv = f.predict_interval(fh=[1], coverage=0.5)
    assert list(iv.columns) == [("a", 0.5, "lower"), ("a", 0.5, "upper"), ("b", 0.5, "lower"), ("b", 0.5, "upper")]


# ----------------------------------------------------------------------------- sktime workflows


@pytest.mark.filterwarnings("ignore::FutureWarning")  # remember_data default of sktime's own search forecaster
def test_sktime_evaluate_and_grid_search():
    y = two_sines(160)
    f = S4DForecaster(context_length=16, horizon=3, max_epochs=2, **SMALL)
    cv = ExpandingWindowSplitter(fh=[1, 2, 3], initial_window=100, step_length=20)
    results = evaluate(f, cv, y)
    assert len(results) == 3 and np.isfinite(results.iloc[:, 0]).all()
    search = ForecastingGridSearchCV(f, cv, param_grid={"context_length": [8, 16], "lr": [1e-3, 1e-2]})
    search.fit(y, fh=[1, 2, 3])
    assert set(search.best_params_) == {"context_length", "lr"}
    assert len(search.cv_results_) == 4
    assert search.predict().shape == (3,)


def test_get_fitted_params(fitted):
    params = fitted.get_fitted_params()
    assert params["horizon"] == 24 and isinstance(params["module"], torch.nn.Module)
    assert params["target_names"] == ["y"] and params["exog_names"] == []


# ----------------------------------------------------------------------------- errors


TINY = dict(context_length=8, horizon=3, max_epochs=1, **SMALL)


@pytest.mark.parametrize("bad, message", [(np.nan, "missing data"), (np.inf, "NaN or inf")])
def test_non_finite_values_are_rejected_and_the_data_left_alone(bad, message):
    y = two_sines(50)
    y.iloc[20] = bad
    X = pd.DataFrame({"x": np.arange(50.0)})
    X_bad = X.copy()
    X_bad.iloc[7, 0] = bad
    y_copy, X_copy = y.copy(), X_bad.copy()
    with pytest.raises(ValueError, match=message):
        S4DForecaster(**TINY).fit(y)
    with pytest.raises(ValueError, match=message):
        S4DForecaster(**TINY).fit(two_sines(50), X=X_bad)
    pd.testing.assert_series_equal(y, y_copy)
    pd.testing.assert_frame_equal(X_bad, X_copy)


def test_too_short_series_states_the_minimum():
    with pytest.raises(ValueError, match=r"has 10 observations.*at least 11 \(context_length 8 \+ horizon 3\)"):
        S4DForecaster(**TINY).fit(two_sines(10))


def test_non_numeric_columns_are_rejected():
    y = pd.DataFrame({"a": np.arange(40.0), "b": ["x"] * 40})
    with pytest.raises(TypeError, match="categorical"):
        S4DForecaster(**TINY).fit(y)


def test_data_is_not_modified_by_fit_update_predict():
    y = two_sines(80)
    X = pd.DataFrame({"x": np.linspace(0, 1, 90)})
    y_copy, X_copy = y.copy(), X.copy()
    f = S4DForecaster(**TINY).fit(y.iloc[:60], X=X.iloc[:60])
    f.update(y.iloc[60:], X=X.iloc[60:80], update_params=True)
    f.predict(fh=[1, 2, 3], X=X.iloc[80:83])
    pd.testing.assert_series_equal(y, y_copy)
    pd.testing.assert_frame_equal(X, X_copy)


def test_unknown_device_and_missing_gpu(monkeypatch):
    with pytest.raises(ValueError, match="device"):
        S4DForecaster(**{**TINY, "device": "tpu"}).fit(two_sines(50))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA GPU"):
        S4DForecaster(**{**TINY, "device": "cuda"}).fit(two_sines(50))


def test_horizon_smaller_than_fh_in_fit_and_missing_fh():
    with pytest.raises(ValueError, match="horizon=3"):
        S4DForecaster(**TINY).fit(two_sines(50), fh=[1, 5])
    with pytest.raises(ValueError, match="fh"):
        S4DForecaster(**{**TINY, "horizon": None}).fit(two_sines(50))


def test_predict_windows_equals_predict_from_each_context(fitted, sines):
    """The batched backtest path gives the forecasts predict gives after moving the context there."""
    y = sines.to_numpy()
    origins = [100, 250, 399]
    contexts = np.stack([y[o - 47 : o + 1, None] for o in origins])  # (3, 48, 1)
    mean, std = fitted.predict_windows(contexts)
    for i, o in enumerate(origins):
        f = copy.deepcopy(fitted)
        f.context_ = {(): f.context_[()].iloc[:0]}  # forget, then feed the 48 points ending at o
        f.update(sines.iloc[o - 47 : o + 1], update_params=False)
        np.testing.assert_allclose(mean[i, :, 0], f.predict(fh=np.arange(1, 25)).to_numpy(), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(std[i, :, 0] ** 2, f.predict_var(fh=np.arange(1, 25)).to_numpy()[:, 0], rtol=1e-6)
    with pytest.raises(ValueError, match=r"shape \(n, 48, 1\)"):
        fitted.predict_windows(contexts[:, :10])


def test_series_scale_loss_is_the_loss_of_the_forecast_mapped_back():
    """loss_scale="series": the loss of ŷ·σ_ctx + μ_ctx against y·σ_ctx + μ_ctx (float64, by hand);
    the normal NLL is the window-scale one plus mean log σ_ctx (−log N minus ½ log 2π)."""
    rng = np.random.default_rng(1)
    out = torch.as_tensor(rng.normal(size=(5, 4, 6)))  # (batch, k, C·P): C = 3 means, then 3 raw σ
    y = rng.normal(size=(5, 4, 3))  # RevIN-normalised targets
    mu_ctx, sd_ctx = rng.normal(size=(5, 1, 3)), rng.uniform(0.01, 3.0, (5, 1, 3))
    scaled = torch.as_tensor(np.concatenate([y, np.broadcast_to(sd_ctx, y.shape)], axis=2))  # (5, 4, 6)
    mean = out[..., :3].numpy()
    truth, forecast = y * sd_ctx + mu_ctx, mean * sd_ctx + mu_ctx  # series units
    for kind, expected in [("mse", ((forecast - truth) ** 2).mean()), ("mae", np.abs(forecast - truth).mean())]:
        point = out[..., :3]  # a point head has C outputs
        assert float(_HeadLoss(kind, 3, series_scale=True)(point, scaled)) == pytest.approx(expected, rel=1e-12)
        assert float(_HeadLoss(kind, 3)(point, torch.as_tensor(y))) == pytest.approx(  # window scale
            ((mean - y) ** 2).mean() if kind == "mse" else np.abs(mean - y).mean(), rel=1e-12
        )
    sigma = np.logaddexp(0.0, out[..., 3:].numpy()) + MIN_SIGMA  # the head's σ, window units
    nll = -torch.distributions.Normal(torch.as_tensor(forecast), torch.as_tensor(sigma * sd_ctx)).log_prob(
        torch.as_tensor(truth)
    )
    expected = float(nll.mean()) - 0.5 * np.log(2 * np.pi)
    assert float(_HeadLoss("normal", 3, series_scale=True)(out, scaled)) == pytest.approx(expected, rel=1e-12)
    window = float(_HeadLoss("normal", 3)(out, torch.as_tensor(y)))
    assert window == pytest.approx(expected - np.log(sd_ctx).mean(), rel=1e-12)


def test_loss_scale_series_validates_on_the_mse_of_forecasts_in_series_units():
    """The validation loss of a loss="mse", loss_scale="series" fit is the MSE of its forecasts of
    the validation windows in the series' standardised units, recomputed here from predict_windows;
    with loss_scale="window" it is not (each window is then divided by its own σ_ctx)."""
    y = two_sines(200) + np.r_[np.zeros(150), np.linspace(0.0, 3.0, 50)]  # a trend: windows of unlike scale
    L, H = 24, 6
    T = len(y)
    n = T - L - H + 1
    n_train = split_validation(n, 0.2)
    contexts = np.stack([y.to_numpy()[i : i + L, None] for i in range(n_train, n)])  # (n_val, L, 1)
    truth = np.stack([y.to_numpy()[i + L : i + L + H, None] for i in range(n_train, n)])  # (n_val, H, 1)
    losses = {}
    for scale in ("series", "window"):
        f = S4DForecaster(
            context_length=L, horizon=H, max_epochs=1, loss="mse", loss_scale=scale, validation_fraction=0.2, **SMALL
        ).fit(y)
        mean, _ = f.predict_windows(contexts)
        mse = (((mean - truth) / f.y_scale_) ** 2).mean()  # series (standardised) units
        losses[scale] = (f.history_[0]["val_loss"], mse)
    assert losses["series"][0] == pytest.approx(losses["series"][1], rel=1e-4)
    assert losses["window"][0] != pytest.approx(losses["window"][1], rel=0.1)
    with pytest.raises(ValueError, match="loss_scale"):
        S4DForecaster(horizon=H, loss_scale="data").fit(y)


def test_linear_skip_adds_a_linear_map_of_each_targets_own_context():
    """linear_skip: out = (network without it) + [V_τ ỹ_c + v_τ in the C mean columns, 0 in the σ
    columns], V_τ interpolated between whole steps and held beyond H as W(τ) is; float64 against
    numpy. It starts at zero (the network without it), and refuses a context of other length or steps."""
    torch.manual_seed(0)
    L, H, C = 12, 4, 2
    backbone = Backbone(C + 1, 8, 1, layer="s4d", layer_kwargs={"d_state": 4})
    plain = _ForecastNet(backbone, L, H, 2 * C).double().eval()
    net = _ForecastNet(copy.deepcopy(backbone), L, H, 2 * C, skip_targets=C).double().eval()
    net.load_state_dict(plain.state_dict(), strict=False)  # all but V, v
    rng = np.random.default_rng(0)
    tok = torch.as_tensor(tokens(rng.standard_normal((3, L, C)), H, None))  # (3, L+H, C+1)
    ahead = torch.tensor([[1.0, 2.5, 4.0, 6.0]], dtype=torch.float64).expand(3, -1)  # on / off the grid, beyond H
    with torch.no_grad():
        assert torch.equal(net(tok, ahead), plain(tok, ahead))  # zero at initialisation
        V, v = rng.standard_normal((H, L)), rng.standard_normal(H)
        net.skip.weight.copy_(torch.as_tensor(V))
        net.skip.bias.copy_(torch.as_tensor(v))
        diff = (net(tok, ahead) - plain(tok, ahead)).numpy()  # (3, 4, 2C)
        steps = np.einsum("hl,blc->bhc", V, tok[:, :L, :C].numpy()) + v[None, :, None]  # (3, H, C)
        expected = np.stack([steps[:, 0], (steps[:, 1] + steps[:, 2]) / 2, steps[:, 3], steps[:, 3]], axis=1)
        np.testing.assert_allclose(diff[..., :C], expected, rtol=1e-10, atol=1e-12)
        assert np.all(diff[..., C:] == 0.0)
        with pytest.raises(ValueError, match="context_length = 12 context rows one time unit apart; this history has 11 rows"):
            net(tok[:, 1:], ahead)  # 11 context rows
        dt = torch.ones(3, L + 4, dtype=torch.float64)
        dt[:, 5] = 2.0
        with pytest.raises(ValueError, match="rows at other steps"):
            net(tok, ahead, dt)


def test_linear_skip_learns_a_sinusoid_and_needs_regular_steps():
    """A noisy 24-periodic signal, whose next values are linear in its past ones: with the same
    network and epochs, the skip lowers the held-out MSE below half; irregular steps are refused."""
    t = np.arange(700)
    rng = np.random.default_rng(1)
    y = pd.Series(np.sin(2 * np.pi * t / 24) + 0.1 * rng.standard_normal(len(t)), name="y")
    kw = dict(context_length=48, horizon=12, max_epochs=2, loss="mse", **SMALL)
    windows = sliding_windows(y.to_numpy()[:, None], 60)[560::4]  # (n, 60, 1): held out
    mse = {}
    for skip in (False, True, "lstsq"):
        f = S4DForecaster(linear_skip=skip, **kw).fit(y.iloc[:560])
        mean, _ = f.predict_windows(windows[:, :48])
        mse[skip] = np.mean((mean - windows[:, 48:]) ** 2)
    assert f.get_params()["linear_skip"] == "lstsq"
    assert mse[True] < 0.5 * mse[False], mse
    assert mse["lstsq"] < mse[True], mse  # started at the least-squares map, it gets further in 2 epochs
    irregular = pd.Series(y.to_numpy()[:300], index=pd.to_datetime(np.r_[0:150, 151:301], unit="h"), name="y")
    for skip in (True, "lstsq"):
        with pytest.raises(ValueError, match=f"linear_skip={skip!r} needs regularly spaced observations"):
            S4DForecaster(linear_skip=skip, **kw).fit(irregular)
    with pytest.raises(ValueError, match="linear_skip"):
        S4DForecaster(linear_skip="ridge", **kw).fit(y)


def test_skip_lstsq_is_weighted_least_squares():
    """skip_lstsq against scikit-learn's LinearRegression with sample weights (float64): the same
    V, v on full-rank contexts; on zero-sum (RevIN) contexts, where V is free along 1ᵀ, the same
    predictions and the V with V·1 = 0."""
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    m, L, H = 400, 9, 5
    x = rng.standard_normal((m, L))
    y = x @ rng.standard_normal((L, H)) + 0.3 + 0.1 * rng.standard_normal((m, H))  # (m, H)
    w = rng.uniform(0.1, 3.0, m)
    V, v = skip_lstsq(x, y, w)
    ref = LinearRegression().fit(x, y, sample_weight=w)
    np.testing.assert_allclose(V, ref.coef_, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(v, ref.intercept_, rtol=1e-6, atol=1e-7)
    assert not np.allclose(skip_lstsq(x, y)[0], V, atol=1e-3)  # the weights matter
    xc = x - x.mean(axis=1, keepdims=True)  # rows sum to zero, as RevIN's do
    V, v = skip_lstsq(xc, y, w)
    ref = LinearRegression().fit(xc, y, sample_weight=w)
    np.testing.assert_allclose(xc @ V.T + v, ref.predict(xc), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(V.sum(axis=1), 0.0, atol=1e-6)


@pytest.mark.parametrize("loss_scale, revin", [("window", True), ("series", True), ("series", False)])
def test_lstsq_skip_starts_at_the_least_squares_fit_of_the_training_windows(loss_scale, revin):
    """linear_skip="lstsq": the skip's initial V, v are the least-squares map from each target's
    RevIN-normalised context to its normalised future over the training windows only (the
    validation tail left out), weighted by σ_ctx² with loss_scale="series"; rebuilt here from the
    raw series in numpy; the head and direct map start at zero, so the first forecast is that
    linear model's, σ_ctx (V ỹ + v) + μ_ctx in the series' units. A learning rate of 1e-12 keeps
    the fitted weights at their start. revin=False: μ_ctx = 0, σ_ctx = 1 (the map reads the
    globally standardised context, unweighted)."""
    L, H, frac = 24, 6, 0.25
    t = np.arange(400)
    rng = np.random.default_rng(3)
    y = pd.DataFrame({"a": np.sin(2 * np.pi * t / 24) + 0.2 * rng.standard_normal(400), "b": 0.01 * t + rng.standard_normal(400)})
    f = S4DForecaster(
        context_length=L, horizon=H, linear_skip="lstsq", loss="mse", loss_scale=loss_scale, lr=1e-12, max_epochs=1,
        validation_fraction=frac, revin=revin, **SMALL,
    ).fit(y)  # fmt: skip
    z = (y.to_numpy() - y.to_numpy().mean(axis=0)) / y.to_numpy().std(axis=0)  # (T, 2): global standardisation
    win = np.lib.stride_tricks.sliding_window_view(z, L + H, axis=0).transpose(0, 2, 1)  # (n, L+H, 2)
    mu = win[:, :L].mean(axis=1, keepdims=True) * revin
    sd = np.sqrt(win[:, :L].var(axis=1, keepdims=True) + 1e-5) ** revin  # (n, 1, 2)
    norm = (win - mu) / sd
    n = len(win)
    n_train = n - int(np.ceil(frac * n))
    rows = lambda a: a.transpose(0, 2, 1).reshape(-1, a.shape[1])  # noqa: E731  (k, steps, 2) → (2k, steps)
    weight = (sd[:, 0] ** 2).reshape(-1) if loss_scale == "series" else None  # (2n,)
    V, v = skip_lstsq(rows(norm[:n_train, :L]), rows(norm[:n_train, L:]), None if weight is None else weight[: 2 * n_train])
    V_all, _ = skip_lstsq(rows(norm[:, :L]), rows(norm[:, L:]), weight)  # with the validation tail
    fitted = f.module_.skip
    np.testing.assert_allclose(fitted.weight.detach().double().numpy(), V, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fitted.bias.detach().double().numpy(), v, rtol=1e-4, atol=1e-5)
    assert np.abs(V_all - V).max() > 1e-3  # so the check above tells the two apart
    assert f.history_[0]["epoch"] == -1 and f.history_[0]["train_loss"] is None  # the start, scored on validation
    for layer in (f.module_.head, f.module_.direct):
        assert layer.weight.abs().max() < 1e-9 and layer.bias.abs().max() < 1e-9
    ctx = y.to_numpy()[-100:]  # (100, 2): windows of L from the last 100 rows
    last = np.lib.stride_tricks.sliding_window_view(ctx, L, axis=0).transpose(0, 2, 1)  # (77, L, 2)
    mean, _ = f.predict_windows(last)  # (77, H, 2)
    zc = (last - y.to_numpy().mean(axis=0)) / y.to_numpy().std(axis=0)
    mu, sd = zc.mean(axis=1, keepdims=True) * revin, np.sqrt(zc.var(axis=1, keepdims=True) + 1e-5) ** revin
    linear = np.einsum("hl,nlc->nhc", V, (zc - mu) / sd) + v[None, :, None]  # (77, H, 2): V ỹ_c + v
    expected = (sd * linear + mu) * y.to_numpy().std(axis=0) + y.to_numpy().mean(axis=0)
    np.testing.assert_allclose(mean, expected, rtol=1e-4, atol=1e-4)


def test_networks_pickled_before_linear_skip_load_without_it():
    net = _ForecastNet(Backbone(2, 8, 1, layer="s4d", layer_kwargs={"d_state": 4}), 12, 4, 1)
    del net.n_skip, net.skip  # as pickled then
    loaded = pickle.loads(pickle.dumps(net))
    assert loaded.skip is None
    tok = torch.as_tensor(tokens(np.zeros((1, 12, 1)), 4, None), dtype=torch.float32)
    assert loaded(tok, torch.arange(1.0, 5.0)[None]).shape == (1, 4, 1)


def test_revin_min_std_floors_the_scale_of_a_flat_context():
    """σ_ctx = max(sqrt(var + 1e-5), σ_min): closed form per window and channel; a constant context
    is scaled by 1/σ_min, not 1/√1e-5, and the forecast of a fitted model is mapped back with it."""
    rng = np.random.default_rng(0)
    ctx = np.concatenate([np.full((1, 30, 2), 3.0), rng.normal(0, 2.0, (1, 30, 2))])  # (2, 30, 2)
    mu, sd = instance_stats(ctx, True, 0.25)
    np.testing.assert_allclose(mu[:, 0], ctx.mean(axis=1))
    np.testing.assert_allclose(sd[0, 0], [0.25, 0.25])  # flat: the floor
    np.testing.assert_allclose(sd[1, 0], np.sqrt(ctx[1].var(axis=0) + 1e-5))  # std ≈ 2 is above it
    assert np.all(instance_stats(ctx, True)[1][0, 0] == np.sqrt(1e-5))  # default: plain RevIN

    y = pd.Series(np.r_[np.sin(np.arange(120) / 3.0), np.full(40, 0.5)], name="y")  # stuck for the last 40 steps
    f = S4DForecaster(context_length=24, horizon=6, max_epochs=1, revin_min_std=0.2, **SMALL).fit(y)
    ctx = ((y.to_numpy()[-24:] - f.y_mean_) / f.y_scale_)[None, :, None]  # (1, 24, 1), flat
    device = next(f.module_.parameters()).device
    with torch.no_grad():
        tok = torch.as_tensor(tokens((ctx - ctx.mean()) / 0.2, 6, None), dtype=torch.float32, device=device)
        out = f.module_(tok, torch.arange(1.0, 7.0, device=device)[None]).double().cpu().numpy()
    expected = (out[0, :, 0] * 0.2 + ctx.mean()) * f.y_scale_[0] + f.y_mean_[0]
    np.testing.assert_allclose(f.predict(fh=np.arange(1, 7)).to_numpy(), expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="revin_min_std"):
        S4DForecaster(horizon=6, revin_min_std=-0.1).fit(y)


# ----------------------------------------------------------------------------- time zones, columns, calendars

NET8 = {"d_model": 8, "n_layers": 1, "d_state": 8, "max_epochs": 1, "batch_size": 64, "random_state": 0}


def _noisy_sine(index) -> pd.Series:
    t = np.arange(len(index))
    return pd.Series(np.sin(t / 5) + 0.1 * np.random.default_rng(0).standard_normal(len(t)), index=index, name="y")


def test_a_time_zone_aware_index_is_forecast_at_its_own_wall_times():
    """US/Eastern hours: the forecasts of fh = 1, 2 are labelled last + 1 h and + 2 h in that zone
    (pandas' own arithmetic), and the exogenous values are read at those times: an absolute fh
    with X gives the same numbers as the relative one."""
    idx = pd.date_range("2024-01-01", periods=140, freq="h", tz="US/Eastern")
    y, X = _noisy_sine(idx[:120]), pd.DataFrame({"x": np.arange(140.0)}, index=idx)
    f = S4DForecaster(context_length=12, horizon=4, **NET8).fit(y, X=X.iloc[:120])
    relative = f.predict(fh=[1, 2], X=X.iloc[120:])
    assert list(relative.index) == [idx[119] + pd.Timedelta(hours=1), idx[119] + pd.Timedelta(hours=2)]
    assert str(relative.index.tz) == "US/Eastern"
    absolute = f.predict(fh=pd.DatetimeIndex(idx[120:122]), X=X.iloc[120:])
    np.testing.assert_array_equal(absolute.to_numpy(), relative.to_numpy())


def test_update_reads_y_by_column_name_and_names_missing_columns():
    """Multivariate y: an update with the columns in another order forecasts as the same update in
    the fitted order; a missing or renamed column is a ValueError naming it (not a silent swap)."""
    n = 150
    y = pd.DataFrame({"a": np.sin(np.arange(n) / 5), "b": 100 + np.arange(n) * 1.0}, index=pd.date_range("2024", periods=n, freq="h"))
    f = S4DForecaster(context_length=12, horizon=4, **NET8).fit(y.iloc[:120])
    g = copy.deepcopy(f)
    f.update(y.iloc[120:140], update_params=False)
    g.update(y.iloc[120:140][["b", "a"]], update_params=False)
    pd.testing.assert_frame_equal(g.predict(fh=[1, 2]), f.predict(fh=[1, 2]))
    with pytest.raises(ValueError, match=r"missing \['b'\]"):
        copy.deepcopy(f).update(y.iloc[140:][["a"]], update_params=False)
    with pytest.raises(ValueError, match=r"missing \['a'\]; not seen in fit \['zzz'\]"):
        copy.deepcopy(f).update(y.iloc[140:].rename(columns={"a": "zzz"}), update_params=False)


def test_update_with_older_or_revised_rows_keeps_the_newer_ones():
    """An update whose rows lie inside or before the kept context does not cut it short: the rows
    after them stay, values at the same time stamps are replaced by the update's."""
    y = _noisy_sine(pd.date_range("2024-01-01", periods=200, freq="h"))
    f = S4DForecaster(context_length=12, horizon=4, **NET8).fit(y.iloc[:150])
    before = f.context_[()].copy()
    f.update(y.iloc[100:110], update_params=False)  # older than the context: nothing kept changes
    pd.testing.assert_frame_equal(f.context_[()], before, check_freq=False)
    revised = y.iloc[145:147] + 10.0  # two rows inside the context, revised
    f.update(revised, update_params=False)
    ctx = f.context_[()]
    assert list(ctx.index) == list(before.index) and ctx.index[-1] == y.index[149]
    np.testing.assert_array_equal(ctx.loc[revised.index, "y0"].to_numpy(), revised.to_numpy())
    np.testing.assert_array_equal(ctx.drop(index=revised.index).to_numpy(), before.drop(index=revised.index).to_numpy())


def test_a_calendar_series_must_be_regular_and_forecasts_after_an_update_without_freq():
    """Month ends are read one step per month: a panel series that skips a month is a ValueError
    naming the gap (fit, and update); an update by one row (no freq attached to its index) is
    forecast at the next month ends."""
    idx = pd.date_range("2000-01-31", periods=100, freq="ME")
    gapped = pd.concat({"a": _noisy_sine(idx), "b": _noisy_sine(idx).drop(idx[50])}, names=["id", "t"]).to_frame("v")
    with pytest.raises(ValueError, match=r"series b\) leaves its ME calendar grid: Timestamp\('2004-02-29"):
        S4DForecaster(context_length=12, horizon=4, **NET8).fit(gapped)
    f = S4DForecaster(context_length=12, horizon=4, **NET8).fit(_noisy_sine(idx[:80]))
    f.update(pd.Series([0.3], index=pd.DatetimeIndex([idx[80]]), name="y"), update_params=False)
    assert list(f.predict(fh=[1, 2]).index) == list(idx[81:83])
    with pytest.raises(ValueError, match="leaves its ME calendar grid"):
        f.update(pd.Series([0.3], index=pd.DatetimeIndex([idx[85]]), name="y"), update_params=False)


def test_time_unit_rows_reads_an_absolute_fh_in_fit_as_the_next_rows():
    """time_unit="rows" on an irregular series: the j-th absolute time of the fh given to fit is the
    j-th next row, so two times give horizon 2, whatever the time between them."""
    rng = np.random.default_rng(1)
    y = _noisy_sine(pd.date_range("2024-01-01", periods=120, freq="h")).iloc[np.sort(np.r_[0, rng.choice(np.arange(1, 120), 90, replace=False)])]
    fh = pd.DatetimeIndex([y.index[-1] + pd.Timedelta("2h"), y.index[-1] + pd.Timedelta("7h")])
    f = S4DForecaster(context_length=12, horizon=None, time_unit="rows", **NET8).fit(y, fh=fh)
    assert f.horizon_ == 2 and list(f.predict().index) == list(fh)


def test_x_in_predict_needs_the_fitted_columns_and_unique_time_stamps():
    idx = pd.date_range("2024-01-01", periods=130, freq="h")
    y, X = _noisy_sine(idx[:120]), pd.DataFrame({"x": np.arange(130.0)}, index=idx)
    f = S4DForecaster(context_length=12, horizon=4, **NET8).fit(y, X=X.iloc[:120])
    with pytest.raises(ValueError, match=r"X has columns \['z'\], but S4DForecaster was fitted with \['x'\]: missing \['x'\]"):
        f.predict(fh=[1, 2], X=X.iloc[120:].rename(columns={"x": "z"}))
    with pytest.raises(ValueError, match="duplicate time stamp"):
        f.predict(fh=[1, 2], X=X.iloc[[120, 120, 121]])


def test_a_failed_fine_tune_leaves_the_fitted_forecaster_as_it_was():
    """update(update_params=True) whose loss becomes non-finite mid-epoch (a value of 1e38 in the
    new data) raises, and the network, history and forecasts are those of before the call."""
    y = _noisy_sine(pd.date_range("2024-01-01", periods=80, freq="h"))
    f = S4DForecaster(context_length=8, horizon=2, **{**NET8, "batch_size": 2}).fit(y.iloc[:60])
    weights = {k: v.clone() for k, v in f.module_.state_dict().items()}
    before, n_history = f.predict(fh=[1, 2]), len(f.history_)
    new = y.iloc[60:].copy()
    new.iloc[-1] = 1e38
    with pytest.raises(FloatingPointError, match="training loss became"):
        f.update(new)
    assert all(torch.equal(weights[k], v) for k, v in f.module_.state_dict().items())
    assert len(f.history_) == n_history
    pd.testing.assert_series_equal(f.predict(fh=[1, 2]), before)
