"""Irregular time stamps: the time between observations is the SSM step, forecasts at any time."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.integrate import solve_ivp
from sktime.forecasting.base import ForecastingHorizon

from ssmforecast import MambaForecaster, S4DForecaster, S4Forecaster
from ssmforecast.estimators._time import InSampleForecastError
from ssmforecast.estimators._windows import instance_stats, tokens
from ssmforecast.estimators.forecasters import FORECAST_HOLDS, _ForecastNet
from ssmforecast.nn import Backbone, S4DLayer, interval_means

SMALL = {"d_model": 16, "n_layers": 1, "d_state": 8, "batch_size": 64, "random_state": 0}


def irregular(n: int, keep: float, seed: int) -> pd.Series:
    """sin(2πt/24) + 0.6 sin(2πt/9.7 + 1) at a random ``keep`` fraction of the hours 0 … n−1."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.choice(np.arange(n), int(keep * n), replace=False))
    values = np.sin(2 * np.pi * t / 24) + 0.6 * np.sin(2 * np.pi * t / 9.7 + 1.0)
    return pd.Series(values, index=pd.Timestamp("2022-01-01") + pd.to_timedelta(t, unit="h"), name="v")


# ----------------------------------------------------------------------------- the layer is exact


@pytest.mark.parametrize("discretization", ["zoh", "foh"])
def test_s4d_layer_with_true_system_follows_a_damped_oscillator_exactly(discretization):
    """ẍ + 2ζωẋ + ω²x = u(t), observed at Poisson times: a one-mode S4D layer holding the
    oscillator's eigenvalues (Δ = the gaps) reproduces x(t_k) to 1e-8 (float64) against an
    adaptive ODE solver, under ZOH for u piecewise constant (u_k on (t_{k−1}, t_k]) and under the
    first-order hold for u piecewise linear (the straight line from u_{k−1} to u_k, flat at u_0
    before t_0)."""
    zeta, omega = 0.15, 2.0
    A = np.array([[0.0, 1.0], [-(omega**2), -2 * zeta * omega]])
    b, c = np.array([0.0, 1.0]), np.array([1.0, 0.0])
    lam, V = np.linalg.eig(A)
    k = int(np.argmax(lam.imag))  # the mode with positive imaginary part; the other is its conjugate
    B_mode = np.linalg.solve(V, b)[k]
    C_mode = (c @ V)[k]

    rng = np.random.default_rng(0)
    t = np.cumsum(rng.exponential(0.4, size=200))  # Poisson observation times
    u = rng.standard_normal(200)
    dt = np.diff(t, prepend=0.0)

    layer = S4DLayer(1, d_state=2, discretization=discretization).double()
    with torch.no_grad():
        layer.log_dt.zero_()  # Δ = dt exactly
        layer.log_neg_re.fill_(np.log(-lam[k].real))
        layer.im.fill_(lam[k].imag)
        layer.B.copy_(torch.tensor([[[B_mode.real, B_mode.imag]]]))
        layer.C.copy_(torch.tensor([[[C_mode.real, C_mode.imag]]]))
        layer.D.zero_()
        y = layer._scan(torch.tensor(u)[None, None], torch.tensor(dt)[None])[0, 0].numpy()

    def u_at(j, s, t0, t1):
        """The input at time s in (t0, t1], the step before observation j."""
        if discretization == "zoh":
            return u[j]
        before = u[max(j - 1, 0)]
        return before + (s - t0) / (t1 - t0) * (u[j] - before)

    x, exact = np.zeros(2), []
    for j, (t0, t1) in enumerate(zip(np.concatenate([[0.0], t[:-1]]), t)):
        x = solve_ivp(
            lambda s, z: A @ z + b * u_at(j, s, t0, t1), (t0, t1), x, method="DOP853", rtol=1e-12, atol=1e-14
        ).y[:, -1]
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
    assert a.hold_ == b.hold_ == c.hold_ == "constant"  # the default hold on regular steps: the Backbone as it is
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


def _by_hand(f, ctx: pd.DataFrame, ahead: list, dt: np.ndarray) -> np.ndarray:
    """The fitted network run by hand on one series' context: RevIN of the globally scaled
    context, one mask token per query τ in ``ahead``, steps ``dt`` (context then queries) → the
    forecasts in the original units."""
    values = ((ctx.to_numpy() - f.y_mean_) / f.y_scale_)[None]  # (1, L, 1)
    mu, sd = instance_stats(values)
    device = next(f.module_.parameters()).device  # "auto": the GPU where there is one
    with torch.no_grad():
        out = f.module_(
            torch.tensor(tokens((values - mu) / sd, len(ahead), None), dtype=torch.float32, device=device),
            torch.tensor([ahead], dtype=torch.float32, device=device),
            torch.tensor(dt[None], dtype=torch.float32, device=device),
        ).double().cpu().numpy()
    return (out[0, :, 0] * sd[0, 0, 0] + mu[0, 0, 0]) * f.y_scale_[0] + f.y_mean_[0]


def test_query_tokens_are_placed_at_the_query_times(irregular_fit):
    """Reference by hand: context tokens with their gaps, one mask token per query with the gap
    from the previous one, the direct head read at τ."""
    y, f = irregular_fit
    ctx = f.context_[()]
    last = ctx.index[-1]
    q = pd.DatetimeIndex([last + pd.Timedelta("90min"), last + pd.Timedelta("4h")])
    pred = f.predict(fh=ForecastingHorizon(q, is_relative=False)).to_numpy()
    gaps = np.diff(ctx.index.as_unit("ns").asi8) / pd.Timedelta("1h").value
    expected = _by_hand(f, ctx, [1.5, 4.0], np.concatenate([[1.0], gaps, [1.5, 2.5]]))
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


# ----------------------------------------------------------------------------- the hold


def test_hold_defaults_to_linear_on_irregular_steps_only():
    y = irregular(300, 0.6, 3)
    kw = dict(context_length=16, horizon=4, max_epochs=1, **SMALL)
    assert S4DForecaster(**kw).fit(y).hold_ == "linear"
    assert S4DForecaster(time_unit="rows", **kw).fit(y).hold_ == "constant"  # every step one unit
    hourly = pd.Series(irregular(200, 1.0, 3).to_numpy(), index=pd.date_range("2022-01-01", periods=200, freq="h"))
    assert S4DForecaster(**kw).fit(hourly).hold_ == "constant"
    linear = S4DForecaster(hold="linear", **kw).fit(hourly)
    assert linear.hold_ == "linear" and all(b.hold == "linear" for b in linear.module_.backbone.blocks)
    assert S4DForecaster(hold="constant", **kw).fit(y).hold_ == "constant"


def test_networks_pickled_with_the_hold_on_the_network_load_it_into_the_blocks():
    """Before the hold moved into the blocks, _ForecastNet carried ``hold`` itself: such a pickle
    loads with that hold in every block (and "constant" where it had none)."""
    import pickle

    for old_hold in ("linear", "constant", None):
        net = _ForecastNet(Backbone(3, 8, 2, layer="s4d", layer_kwargs={"d_state": 4}), 12, 4, 1)
        for block in net.backbone.blocks:
            del block.hold  # as pickled then
        if old_hold is not None:
            net.hold = old_hold
        loaded = pickle.loads(pickle.dumps(net))
        assert [b.hold for b in loaded.backbone.blocks] == [old_hold or "constant"] * 2
        assert "hold" not in loaded.__dict__


def test_foh_hold_gives_s4d_layers_the_first_order_hold_and_is_s4d_only():
    y = irregular(300, 0.6, 3)
    kw = dict(context_length=16, horizon=4, max_epochs=1, **SMALL)
    f = S4DForecaster(hold="foh", **kw).fit(y)
    blocks = f.module_.backbone.blocks
    assert f.hold_ == "foh" and f.get_params()["hold"] == "foh"
    assert all(b.hold == "constant" and b.layer.discretization == "foh" for b in blocks)  # the layer holds, not the block
    assert all(b.layer.discretization == "zoh" for b in S4DForecaster(hold="linear", **kw).fit(y).module_.backbone.blocks)
    for cls in (S4Forecaster, MambaForecaster):
        with pytest.raises(ValueError, match="hold='foh' .* S4D layer only: use S4DForecaster, or hold='linear'"):
            cls(hold="foh", **kw).fit(y)


def test_a_history_at_another_rate_reads_its_own_step_before_the_first_token():
    """A model fitted on hourly steps keeps the last context_length hours of a 30-minute history;
    the first kept token is read over its own 30-minute step (dt = ½, not 1), so the tokens cover
    the 48 hours the training windows covered. Reference by hand, first-order hold."""
    hours = np.arange(300)
    y = pd.Series(_sinusoids(hours), index=_stamp(hours), name="v")
    f = S4DForecaster(context_length=16, horizon=4, max_epochs=1, hold="foh", **SMALL).fit(y)
    h = 299 - 0.5 * np.arange(40)[::-1]  # 30-minute samples of the last 20 hours
    f.context_ = {(): f.context_[()].iloc[:0]}
    f.update(pd.Series(_sinusoids(h), index=_stamp(h), name="v"), update_params=False)
    ctx = f.context_[()]
    assert len(ctx) == 32 and ctx.index[0] == _stamp(283.5)  # 16 hours: (283, 299]
    pred = f.predict(fh=ForecastingHorizon(_stamp(np.array([300.0, 302.0])), is_relative=False)).to_numpy()
    expected = _by_hand(f, ctx, [1.0, 3.0], np.concatenate([np.full(32, 0.5), [1.0, 2.0]]))  # first step ½ too
    np.testing.assert_allclose(pred, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("hold", ["cubic", "", 1])
def test_hold_is_validated_in_fit(hold):
    f = S4DForecaster(context_length=16, horizon=4, max_epochs=1, hold=hold, **SMALL)
    assert f.get_params()["hold"] == hold  # stored unchanged
    with pytest.raises(ValueError, match="hold"):
        f.fit(irregular(200, 0.6, 0))


def test_fit_with_the_linear_hold_is_reproducible():
    y = irregular(300, 0.6, 4)
    kw = dict(context_length=16, horizon=4, max_epochs=2, **SMALL)
    q = ForecastingHorizon(pd.DatetimeIndex([y.index[-1] + pd.Timedelta("90min"), y.index[-1] + pd.Timedelta("4h")]), is_relative=False)
    a, b = (S4DForecaster(hold="linear", **kw).fit(y).predict(fh=q).to_numpy() for _ in range(2))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("layer", ["s4d", "mamba"])
def test_linear_hold_network_is_causal_and_reads_interval_means(layer):
    """Token k's output depends on tokens ≤ k only; the features are the block's layer run by hand
    on ½ (v_{k−1} + v_k) of its normalised input; switching the hold changes the forecast."""
    torch.manual_seed(0)
    net = _ForecastNet(Backbone(3, 8, 1, layer=layer, layer_kwargs={"d_state": 4}, hold="linear"), 12, 4, 1).double()
    net.eval()
    u = torch.randn(2, 16, 3, dtype=torch.float64)
    dt = torch.rand(2, 16, dtype=torch.float64) + 0.5
    ahead = torch.cumsum(dt[:, 12:], dim=1)
    with torch.no_grad():
        out = net(u, ahead, dt)  # (2, 4, 1): the mask tokens 12 … 15
        changed = u.clone()
        changed[:, 14] += 1.0
        out2 = net(changed, ahead, dt)
        bb, block = net.backbone, net.backbone.blocks[0]
        x = bb.encoder(u)
        manual = bb.norm(x + block.layer(interval_means(block.norm(x)), dt))
        features = bb(u, dt)
        block.hold = "constant"
        constant = net(u, ahead, dt)
    torch.testing.assert_close(out2[:, :2], out[:, :2], rtol=0, atol=0)
    assert not torch.allclose(out2[:, 2], out[:, 2])
    torch.testing.assert_close(features, manual, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(out, constant)


def test_linear_hold_integrates_a_smooth_input_nearly_independently_of_the_sampling_rate():
    """An S4D SSM (D = 0, Δ = 0.03: inside the initial range) driven by sin(0.7 t): at the whole
    times, its output from samples 1 apart lies 4× closer to the output from samples 0.5 apart, and
    5× closer to a fine reference (samples 1/64 apart), with the interval means ½ (u_{k−1} + u_k)
    than with the samples themselves (zero-order hold: measured 0.25× and 0.16×)."""
    torch.manual_seed(0)
    layer = S4DLayer(1, d_state=8, discretization="zoh").double()
    with torch.no_grad():
        layer.log_dt.fill_(np.log(0.03))
        layer.D.zero_()

    def run(h, linear):
        t = np.arange(0.0, 48.0 + h / 2, h)
        u = torch.tensor(np.sin(0.7 * t))[None, :, None]  # (1, L, 1)
        if linear:
            u = interval_means(u)
        dt = torch.full((1, len(t)), h, dtype=torch.float64)
        with torch.no_grad():
            y = layer._scan(u.transpose(1, 2), dt)[0, 0].numpy()
        return y[:: int(round(1 / h))]  # at the whole times 0, 1, …, 48

    fine = run(1 / 64, True)
    err = {linear: np.abs(run(1.0, linear)[8:] - fine[8:]).max() for linear in (False, True)}
    gap = {linear: np.abs(run(1.0, linear)[8:] - run(0.5, linear)[8:]).max() for linear in (False, True)}
    assert err[True] < 0.2 * err[False], err
    assert gap[True] < 0.3 * gap[False], gap


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


def _next_three_mse(seed: int, model: str, epochs: int) -> float:
    """40% of an hourly grid of the sum of sinusoids dropped at random (seed); the first 80% of the
    observations train an S4D forecaster (``epochs`` epochs), which then forecasts the next 3
    observations at their true times from every third later origin within 8 hours, updated with
    the observations as they come (no refitting) → mean MSE. ``model``: "default" (Δ-aware, the
    default hold), "foh" (Δ-aware, first-order hold), "rows" (time_unit="rows") or "interpolated"
    (trained on the series interpolated to the hourly grid, horizon 12, its hourly forecasts
    interpolated to the query times, as in examples/irregular.py)."""
    y = irregular(1400, 0.6, seed)
    n_train = int(0.8 * len(y))
    train = y.iloc[:n_train]
    kw = dict(context_length=48, horizon=8, d_model=16, n_layers=2, d_state=16, max_epochs=epochs, lr=1e-2,
              loss="mse", batch_size=64, random_state=seed)
    if model == "interpolated":
        f = S4DForecaster(**{**kw, "horizon": 12}).fit(train.resample("1h").mean().interpolate("time"))
    else:
        f = S4DForecaster(time_unit="rows" if model == "rows" else None, hold="foh" if model == "foh" else None, **kw)
        f.fit(train)
    history, errors = train, []
    for o in range(n_train, len(y) - 3, 3):
        q, new = y.index[o : o + 3], y.iloc[o : o + 3]
        if q[-1] - history.index[-1] <= pd.Timedelta("8h"):
            if model == "interpolated":
                grid = f.predict(fh=np.arange(1, 13))
                pred = np.interp(q.asi8, grid.index.asi8, grid.to_numpy())
            else:
                pred = f.predict(fh=ForecastingHorizon(q, is_relative=False)).to_numpy()
            errors.append(np.mean((pred - new.to_numpy()) ** 2))
        if model == "interpolated":
            grid = pd.concat([history, new]).resample("1h").mean().interpolate("time")
            f.update(grid[grid.index > f.cutoff[0]], update_params=False)
        else:
            f.update(new, update_params=False)
        history = pd.concat([history, new])
    return float(np.mean(errors))


@pytest.mark.slow
def test_dt_aware_model_beats_row_numbers_on_an_irregularly_sampled_process():
    """The issue's target (a), 8 epochs, means over seeds 0, 1, 2: the Δ-aware S4D forecaster's
    MSE (linear hold, the default on irregular steps; measured 0.024) is below half that of the
    same forecaster fed row numbers (time_unit="rows"; measured 0.35)."""
    dt_aware = np.mean([_next_three_mse(seed, "default", 8) for seed in range(3)])
    rows = np.mean([_next_three_mse(seed, "rows", 8) for seed in range(3)])
    assert dt_aware < 0.5 * rows, (dt_aware, rows)


@pytest.mark.slow
def test_first_order_hold_model_beats_interpolation_when_both_are_trained_30_epochs():
    """The issue's target (b), means over seeds 0, 1, 2, both trained 30 epochs: the Δ-aware S4D
    forecaster with the first-order hold (measured 0.0062; per seed 0.0078, 0.0045, 0.0063) beats
    linear interpolation to the hourly grid + the regular S4D forecaster (measured 0.0086; per
    seed 0.0077, 0.0088, 0.0094) by more than 15%. Not at 8 epochs (0.0188 against 0.0107) nor at
    14 (0.0108 against 0.0090): the interpolated series has 1.7× as many training windows per
    epoch (docs/time.md)."""
    foh = np.mean([_next_three_mse(seed, "foh", 30) for seed in range(3)])
    interpolated = np.mean([_next_three_mse(seed, "interpolated", 30) for seed in range(3)])
    assert foh < 0.85 * interpolated, (foh, interpolated)


def test_multivariate_series_with_entries_missing_per_column_is_rejected():
    """Columns observed at different times (NaN where a column is missing) are out of scope: the
    error says that the data has missing values, and the data is left unchanged."""
    y = pd.DataFrame({"a": np.arange(40.0), "b": np.arange(40.0)}, index=_hours(range(40)))
    y.iloc[5, 1] = np.nan
    before = y.copy()
    with pytest.raises(ValueError, match="missing data"):
        S4DForecaster(context_length=8, horizon=2, max_epochs=1, **SMALL).fit(y)
    pd.testing.assert_frame_equal(y, before)


def _sinusoids(h):
    return np.sin(2 * np.pi * h / 24) + 0.6 * np.sin(2 * np.pi * h / 9.7 + 1.0)


def _stamp(h):
    return pd.Timestamp("2022-01-01") + pd.to_timedelta(h, unit="h")


def _resampling_errors(seed: int, hold=None, rates=(0.5,)) -> tuple[dict, dict]:
    """S4D fitted on 1,000 hours of the hourly sum of sinusoids, then, without refitting, asked
    for the next 12 hours from 15 origins given the last 48 hours sampled hourly ("native"), every
    r hours ("x{r}") and, for r = 0.5, the last 48 half-hourly samples read as if hourly
    → (MSE by history, number of context rows kept by history)."""
    hours = np.arange(1200)
    y = pd.Series(_sinusoids(hours), index=_stamp(hours), name="v")
    f = S4DForecaster(context_length=48, horizon=12, d_model=16, n_layers=2, d_state=16, max_epochs=10, lr=1e-2,
                      loss="mse", batch_size=64, random_state=seed, hold=hold).fit(y.iloc[:1000])
    errors, kept = {}, {}
    for origin in range(1000, 1180, 12):
        queries, truth = y.index[origin : origin + 12], y.iloc[origin : origin + 12].to_numpy()
        histories = {"native": y.iloc[origin - 48 : origin]}
        for r in rates:
            h = (origin - 1) - r * np.arange(int(round(48 / r)) - 1, -1, -1)  # 48 hours, r apart, ending at the last hour
            histories[f"x{r}"] = pd.Series(_sinusoids(h), index=_stamp(h), name="v")
        if 0.5 in rates:
            values = histories["x0.5"].to_numpy()[-48:]
            histories["x0.5 read as hourly"] = pd.Series(values, index=y.index[origin - 48 : origin], name="v")
        for name, history in histories.items():
            g = copy.deepcopy(f)
            g.context_ = {(): g.context_[()].iloc[:0]}
            g.update(history, update_params=False)
            kept[name] = len(g.context_[()])
            pred = g.predict(fh=ForecastingHorizon(queries, is_relative=False)).to_numpy()
            errors.setdefault(name, []).append(np.mean((pred - truth) ** 2))
    return {name: float(np.mean(e)) for name, e in errors.items()}, kept


def test_zero_shot_resampling_uses_the_real_time_between_samples():
    """Trained on an hourly series, forecast from a half-hourly history without refitting: the
    kept context spans the training context's 48 hours (96 samples, dt = 0.5), and the forecasts
    are far better than those from the same samples fed as if they were hourly (dt = 1).
    (How close to the native-rate error: the slow test below and docs/time.md.)"""
    mse, kept = _resampling_errors(0)
    assert kept == {"native": 48, "x0.5": 96, "x0.5 read as hourly": 48}
    assert mse["x0.5"] < 0.05 * mse["x0.5 read as hourly"], mse
    assert mse["native"] < 0.01 * np.var(_sinusoids(np.arange(1200))), mse


@pytest.mark.slow
def test_first_order_hold_makes_zero_shot_resampling_nearly_rate_independent():
    """As above (S4D fitted on hourly data, 10 epochs, no refitting), from a half-hourly and a
    2-hourly history of the same 48 hours; MSE means over seeds 0 … 5.

    The issue's target: with ``hold="foh"`` the half-hourly MSE is within 1.2× the native-rate
    MSE (measured 1.08×: 0.00197 against 0.00182; per seed 1.00–1.16×). The 2-hourly MSE is less
    than half the linear hold's (measured 0.0030 against 0.0074), and the linear hold's
    half-hourly MSE less than half the zero-order hold's (measured 0.0024 against 0.0089)."""
    runs = {hold: [_resampling_errors(seed, hold, rates=(0.5, 2.0))[0] for seed in range(6)] for hold in FORECAST_HOLDS}
    mse = {hold: {name: np.mean([r[name] for r in rs]) for name in rs[0]} for hold, rs in runs.items()}
    foh, linear, constant = mse["foh"], mse["linear"], mse["constant"]
    assert foh["x0.5"] < 1.2 * foh["native"], mse
    assert foh["x2.0"] < 0.5 * linear["x2.0"], mse
    assert linear["x0.5"] < 0.5 * constant["x0.5"], mse
    assert foh["x0.5"] < 0.05 * foh["x0.5 read as hourly"], mse
