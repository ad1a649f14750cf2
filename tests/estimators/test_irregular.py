"""Irregular time stamps: the time between observations is the SSM step, forecasts at any time."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.integrate import solve_ivp
from sktime.forecasting.base import ForecastingHorizon

from ssmforecast import MambaForecaster, S4DForecaster
from ssmforecast.estimators._time import InSampleForecastError
from ssmforecast.estimators._windows import instance_stats, tokens
from ssmforecast.nn import S4DLayer

SMALL = {"d_model": 16, "n_layers": 1, "d_state": 8, "batch_size": 64, "random_state": 0}


def irregular(n: int, keep: float, seed: int) -> pd.Series:
    """sin(2πt/24) + 0.6 sin(2πt/9.7 + 1) at a random ``keep`` fraction of the hours 0 … n−1."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.choice(np.arange(n), int(keep * n), replace=False))
    values = np.sin(2 * np.pi * t / 24) + 0.6 * np.sin(2 * np.pi * t / 9.7 + 1.0)
    return pd.Series(values, index=pd.Timestamp("2022-01-01") + pd.to_timedelta(t, unit="h"), name="v")


# ----------------------------------------------------------------------------- the layer is exact


def test_s4d_layer_with_true_system_follows_a_damped_oscillator_exactly():
    """ẍ + 2ζωẋ + ω²x = u(t), u piecewise constant, observed at Poisson times: a one-mode S4D layer
    holding the oscillator's eigenvalues (ZOH, Δ = the gaps) reproduces x(t_k) to 1e-8 (float64)
    against an adaptive ODE solver."""
    zeta, omega = 0.15, 2.0
    A = np.array([[0.0, 1.0], [-(omega**2), -2 * zeta * omega]])
    b, c = np.array([0.0, 1.0]), np.array([1.0, 0.0])
    lam, V = np.linalg.eig(A)
    k = int(np.argmax(lam.imag))  # the mode with positive imaginary part; the other is its conjugate
    B_mode = np.linalg.solve(V, b)[k]
    C_mode = (c @ V)[k]

    rng = np.random.default_rng(0)
    t = np.cumsum(rng.exponential(0.4, size=200))  # Poisson observation times
    u = rng.standard_normal(200)  # u(t) = u_k on (t_{k−1}, t_k]
    dt = np.diff(t, prepend=0.0)

    layer = S4DLayer(1, d_state=2, discretization="zoh").double()
    with torch.no_grad():
        layer.log_dt.zero_()  # Δ = dt exactly
        layer.log_neg_re.fill_(np.log(-lam[k].real))
        layer.im.fill_(lam[k].imag)
        layer.B.copy_(torch.tensor([[[B_mode.real, B_mode.imag]]]))
        layer.C.copy_(torch.tensor([[[C_mode.real, C_mode.imag]]]))
        layer.D.zero_()
        y = layer._scan(torch.tensor(u)[None, None], torch.tensor(dt)[None])[0, 0].numpy()

    def rhs(s, x):
        j = min(np.searchsorted(t, s, side="left"), len(t) - 1)
        return A @ x + b * u[j]

    x, exact = np.zeros(2), []
    for j, (t0, t1) in enumerate(zip(np.concatenate([[0.0], t[:-1]]), t)):
        x = solve_ivp(lambda s, z: A @ z + b * u[j], (t0, t1), x, method="DOP853", rtol=1e-12, atol=1e-14).y[:, -1]
        exact.append(c @ x)
    np.testing.assert_allclose(y, exact, atol=1e-8)


# ----------------------------------------------------------------------------- estimator behaviour


def test_a_regular_series_behaves_exactly_as_without_time_stamps():
    values = irregular(300, 1.0, 0).to_numpy()
    hourly = pd.Series(values, index=pd.date_range("2022-01-01", periods=300, freq="h"), name="v")
    rows = pd.Series(values, index=pd.RangeIndex(300), name="v")
    kw = dict(context_length=24, horizon=6, max_epochs=2, **SMALL)
    a = S4DForecaster(**kw).fit(hourly)
    b = S4DForecaster(**kw).fit(rows)
    c = S4DForecaster(time_unit="1h", **kw).fit(hourly)
    assert a.time_unit_ == pd.Timedelta("1h") and b.time_unit_ == 1.0
    pa, pb, pc = (f.predict(fh=[1, 3, 6]).to_numpy() for f in (a, b, c))
    np.testing.assert_array_equal(pa, pb)
    np.testing.assert_array_equal(pa, pc)


@pytest.fixture(scope="module")
def irregular_fit():
    y = irregular(900, 0.6, 1)
    return y, MambaForecaster(context_length=32, horizon=8, max_epochs=3, **SMALL).fit(y.iloc[:-10])


def test_forecasts_at_arbitrary_future_times(irregular_fit):
    y, f = irregular_fit
    last = y.index[-11]
    q = pd.DatetimeIndex([last + pd.Timedelta("37min"), last + pd.Timedelta("5h10min"), last + pd.Timedelta("7h59min")])
    pred = f.predict(fh=ForecastingHorizon(q, is_relative=False))
    assert list(pred.index) == list(q) and np.isfinite(pred.to_numpy()).all()
    # relative fh counts in time units (the median spacing, one hour here)
    rel = f.predict(fh=[1, 2])
    assert list(rel.index) == [last + pd.Timedelta("1h"), last + pd.Timedelta("2h")]
    with pytest.raises(ValueError, match="reaches step 9.5.*horizon=8"):
        f.predict(fh=ForecastingHorizon(pd.DatetimeIndex([last + pd.Timedelta("9h30min")]), is_relative=False))
    with pytest.raises(InSampleForecastError, match=r"2022-.*is not after it") as err:
        f.predict(fh=ForecastingHorizon(pd.DatetimeIndex([last]), is_relative=False))
    assert isinstance(err.value, ValueError)


def test_query_tokens_are_placed_at_the_query_times(irregular_fit):
    """Reference by hand: context tokens with their gaps, one mask token per query with the gap
    from the previous one, the direct head read at τ."""
    y, f = irregular_fit
    ctx = f.context_[()]
    last = ctx.index[-1]
    q = pd.DatetimeIndex([last + pd.Timedelta("90min"), last + pd.Timedelta("4h")])
    pred = f.predict(fh=ForecastingHorizon(q, is_relative=False)).to_numpy()
    values = ((ctx.to_numpy() - f.y_mean_) / f.y_scale_)[None]  # (1, 32, 1)
    mu, sd = instance_stats(values)
    gaps = np.diff(ctx.index.as_unit("ns").asi8) / pd.Timedelta("1h").value
    dt = np.concatenate([[1.0], gaps, [1.5, 2.5]])[None]
    with torch.no_grad():
        out = f.module_(
            torch.tensor(tokens((values - mu) / sd, 2, None), dtype=torch.float32),
            torch.tensor([[1.5, 4.0]]),
            torch.tensor(dt, dtype=torch.float32),
        ).double().numpy()
    expected = (out[0, :, 0] * sd[0, 0, 0] + mu[0, 0, 0]) * f.y_scale_[0] + f.y_mean_[0]
    np.testing.assert_allclose(pred, expected, rtol=1e-5, atol=1e-6)


def test_streaming_update_on_an_irregular_series_equals_a_bulk_update(irregular_fit):
    y, f = irregular_fit
    bulk, stream = copy.deepcopy(f), copy.deepcopy(f)
    bulk.update(y.iloc[-10:], update_params=False)
    for i in range(len(y) - 10, len(y)):
        stream.update(y.iloc[i : i + 1], update_params=False)
    q = ForecastingHorizon(pd.DatetimeIndex([y.index[-1] + pd.Timedelta("2h15min")]), is_relative=False)
    np.testing.assert_array_equal(bulk.predict(fh=q).to_numpy(), stream.predict(fh=q).to_numpy())
    pd.testing.assert_frame_equal(bulk.context_[()], stream.context_[()])


def test_time_unit_rows_ignores_the_time_stamps():
    y = irregular(400, 0.6, 2)
    f = S4DForecaster(context_length=24, horizon=4, max_epochs=1, time_unit="rows", **SMALL).fit(y)
    g = S4DForecaster(context_length=24, horizon=4, max_epochs=1, **SMALL).fit(pd.Series(y.to_numpy(), name="v"))
    q = ForecastingHorizon(pd.DatetimeIndex([y.index[-1] + pd.Timedelta(h, unit="h") for h in (3, 10)]), is_relative=False)
    # the j-th time asked for is read as the j-th next row
    np.testing.assert_allclose(f.predict(fh=q).to_numpy(), g.predict(fh=[1, 2]).to_numpy(), rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------- bad input


def _hours(h):
    return pd.Timestamp("2022-01-01") + pd.to_timedelta(h, unit="h")


@pytest.mark.parametrize(
    "index, message",
    [
        (_hours([0, 1, 3, 2] + list(range(4, 60))), r"out of order: Timestamp\('2022-01-01 02:00:00'\) comes after"),
        (_hours([0, 1, 1] + list(range(2, 59))), r"duplicate time stamp Timestamp\('2022-01-01 01:00:00'\)"),
        (pd.DatetimeIndex(list(_hours(range(5))) + [pd.NaT] + list(_hours(range(6, 60)))), "NaT"),
    ],
    ids=["unsorted", "duplicate", "NaT"],
)
def test_bad_time_indexes_name_the_first_offending_stamp(index, message):
    y = pd.Series(np.arange(60.0), index=index)
    before = y.copy()
    with pytest.raises(ValueError, match=message):
        S4DForecaster(context_length=8, horizon=2, max_epochs=1, **SMALL).fit(y)
    pd.testing.assert_series_equal(y, before)


def test_mixed_time_zones_are_rejected():
    stamps = [pd.Timestamp("2022-01-01 00:00", tz="UTC"), pd.Timestamp("2022-01-01 03:00", tz="Europe/Paris")]
    index = pd.Index(stamps + [pd.Timestamp("2022-01-01 05:00", tz="UTC")], dtype=object)
    from ssmforecast.estimators._time import check_index

    with pytest.raises(ValueError, match="mixes time zones.*Europe/Paris"):
        check_index(index, "y")


@pytest.mark.slow
def test_dt_aware_model_beats_row_numbers_on_an_irregularly_sampled_process():
    """40% of an hourly grid dropped at random; forecast the next 3 observations at their true
    times from 30+ test origins, averaged over 3 seeds: the Δ-aware S4D forecaster's MSE is below
    half that of the same forecaster fed row numbers (time_unit="rows"), at the same budget."""
    errors = {None: [], "rows": []}
    for seed in range(3):
        y = irregular(1400, 0.6, seed)
        n_train = int(0.8 * len(y))
        for unit in errors:
            f = S4DForecaster(context_length=48, horizon=8, d_model=16, n_layers=2, d_state=16, max_epochs=8, lr=1e-2,
                              loss="mse", batch_size=64, random_state=seed, time_unit=unit).fit(y.iloc[:n_train])
            for o in range(n_train, len(y) - 3, 3):
                q = y.index[o : o + 3]
                if q[-1] - f.cutoff[0] <= pd.Timedelta("8h"):
                    pred = f.predict(fh=ForecastingHorizon(q, is_relative=False)).to_numpy()
                    errors[unit].append(np.mean((pred - y.iloc[o : o + 3].to_numpy()) ** 2))
                f.update(y.iloc[o : o + 3], update_params=False)
    assert np.mean(errors[None]) < 0.5 * np.mean(errors["rows"])


def test_multivariate_series_with_entries_missing_per_column_is_rejected():
    """Columns observed at different times (NaN where a column is missing) are out of scope: the
    error says that the data has missing values, and the data is left unchanged."""
    y = pd.DataFrame({"a": np.arange(40.0), "b": np.arange(40.0)}, index=_hours(range(40)))
    y.iloc[5, 1] = np.nan
    before = y.copy()
    with pytest.raises(ValueError, match="missing data"):
        S4DForecaster(context_length=8, horizon=2, max_epochs=1, **SMALL).fit(y)
    pd.testing.assert_frame_equal(y, before)


def test_zero_shot_resampling_uses_the_real_time_between_samples():
    """Trained on an hourly series, forecast from a half-hourly history without refitting: the
    kept context spans the training context's 48 hours (96 samples, dt = 0.5), and the forecasts
    are far better than those from the same samples fed as if they were hourly (dt = 1).
    (The issue's target, within 20% of the native-rate error, is not met: see docs/time.md.)"""
    signal = lambda h: np.sin(2 * np.pi * h / 24) + 0.6 * np.sin(2 * np.pi * h / 9.7 + 1.0)  # noqa: E731
    stamp = lambda h: pd.Timestamp("2022-01-01") + pd.to_timedelta(h, unit="h")  # noqa: E731
    hours = np.arange(1200)
    y = pd.Series(signal(hours), index=stamp(hours), name="v")
    f = S4DForecaster(context_length=48, horizon=12, d_model=16, n_layers=2, d_state=16, max_epochs=10, lr=1e-2,
                      loss="mse", batch_size=64, random_state=0).fit(y.iloc[:1000])
    errors = {"native": [], "half-hourly": [], "half-hourly read as hourly": []}
    kept = {}
    for origin in range(1000, 1180, 12):
        queries, truth = y.index[origin : origin + 12], y.iloc[origin : origin + 12].to_numpy()
        half = (origin - 1) - 0.5 * np.arange(95, -1, -1)  # 96 samples, 30 min apart, ending at the last hour
        histories = {
            "native": y.iloc[origin - 48 : origin],
            "half-hourly": pd.Series(signal(half), index=stamp(half), name="v"),
            "half-hourly read as hourly": pd.Series(signal(half)[-48:], index=y.index[origin - 48 : origin], name="v"),
        }
        for name, history in histories.items():
            g = copy.deepcopy(f)
            g.context_ = {(): g.context_[()].iloc[:0]}
            g.update(history, update_params=False)
            kept[name] = len(g.context_[()])
            pred = g.predict(fh=ForecastingHorizon(queries, is_relative=False)).to_numpy()
            errors[name].append(np.mean((pred - truth) ** 2))
    mse = {name: np.mean(e) for name, e in errors.items()}
    assert kept == {"native": 48, "half-hourly": 96, "half-hourly read as hourly": 48}
    assert mse["half-hourly"] < 0.05 * mse["half-hourly read as hourly"], mse
    assert mse["native"] < 0.01 * y.var(), mse
