"""Regressors in the scikit-learn and sktime machinery, reproducibility, persistence and errors."""

import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GridSearchCV, TimeSeriesSplit, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ssmforecast.estimators import MambaRegressor, S4DRegressor, S4Regressor

SMALL = {"d_model": 8, "n_layers": 1, "d_state": 8, "max_epochs": 8, "random_state": 0}


def _windows(n=160, L=24, seed=0):
    """Windows of a noisy sine and the value that follows each: X (n, L), y (n,)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n + L)
    s = np.sin(2 * np.pi * t / 12) + 0.1 * rng.standard_normal(t.size)
    X = np.stack([s[i : i + L] for i in range(n)])
    return X, s[L : L + n]


@pytest.mark.parametrize("cls", [S4Regressor, S4DRegressor, MambaRegressor])
def test_learns_next_value_of_a_sine(cls):
    X, y = _windows()
    model = cls(d_model=16, n_layers=1, d_state=16, max_epochs=40, lr=1e-2, random_state=0).fit(X[:120], y[:120])
    mse = np.mean((model.predict(X[120:]) - y[120:]) ** 2)
    assert mse < 0.1 * np.var(y), mse  # the noise floor is 0.01 = 0.02 var(y)
    assert len(model.history_) >= 1 and {"train_loss", "val_loss", "epoch", "lr"} <= set(model.history_[0])


def test_same_seed_same_predictions_and_global_rng_untouched():
    import torch

    X, y = _windows(60)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = S4DRegressor(**SMALL).fit(X, y).predict(X)
    after = torch.rand(1)
    b = S4DRegressor(**SMALL).fit(X, y).predict(X)
    assert np.array_equal(a, b)
    assert torch.equal(before, after), "fit must not consume the caller's torch RNG"
    c = S4DRegressor(**{**SMALL, "random_state": 1}).fit(X, y).predict(X)
    assert not np.array_equal(a, c)


def test_multivariate_sequences_and_multi_output():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((50, 12, 3))
    y = np.stack([X[:, -1, 0], X[:, -2, 1] - X[:, -1, 2]], axis=1)
    model = MambaRegressor(**SMALL).fit(X, y)
    assert model.predict(X).shape == (50, 2)
    assert model.n_features_in_ == 12 and model.sequence_shape_ == (12, 3) and model.n_outputs_ == 2
    with pytest.raises(ValueError, match="sequences of shape"):
        model.predict(X[:, :, :2])


def test_pipeline_gridsearch_and_time_series_cv():
    X, y = _windows(90, L=12)
    pipe = make_pipeline(StandardScaler(), S4DRegressor(**SMALL))
    scores = cross_val_score(pipe, X, y, cv=TimeSeriesSplit(n_splits=3), scoring="neg_mean_squared_error")
    assert scores.shape == (3,) and np.all(np.isfinite(scores))
    search = GridSearchCV(
        S4DRegressor(**SMALL), {"d_model": [4, 8], "lr": [1e-3, 1e-2]}, cv=TimeSeriesSplit(n_splits=2)
    ).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert search.best_params_["d_model"] in (4, 8)
    assert search.predict(X).shape == (90,)


@pytest.mark.parametrize("strategy", ["recursive", "direct"])
def test_sktime_make_reduction(strategy):
    from sktime.forecasting.base import ForecastingHorizon
    from sktime.forecasting.compose import make_reduction

    t = np.arange(120)
    y = pd.Series(np.sin(2 * np.pi * t / 12) + 5, index=pd.RangeIndex(120))
    forecaster = make_reduction(MambaRegressor(**SMALL), window_length=12, strategy=strategy)
    fh = ForecastingHorizon([1, 2, 3], is_relative=True)
    forecaster.fit(y[:108], fh=fh)
    pred = forecaster.predict(fh)
    assert list(pred.index) == [108, 109, 110]
    assert np.all(np.isfinite(pred.to_numpy()))


@pytest.mark.parametrize("dump,load", [(pickle.dumps, pickle.loads), (None, None)])
def test_persistence_round_trip(tmp_path, dump, load):
    X, y = _windows(40)
    model = S4Regressor(**SMALL).fit(X, y)
    if dump is None:
        joblib.dump(model, tmp_path / "m.joblib")
        loaded = joblib.load(tmp_path / "m.joblib")
    else:
        loaded = load(dump(model))
    assert np.array_equal(loaded.predict(X), model.predict(X))


def test_bad_input_errors_and_data_untouched():
    X, y = _windows(30)
    X0, y0 = X.copy(), y.copy()
    S4DRegressor(**SMALL).fit(X, y)
    assert np.array_equal(X, X0) and np.array_equal(y, y0)
    bad = X.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        S4DRegressor(**SMALL).fit(bad, y)
    bad[3, 4] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        S4DRegressor(**SMALL).fit(bad, y)
    with pytest.raises(ValueError, match="device"):
        S4DRegressor(**{**SMALL, "device": "tpu"}).fit(X, y)
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU is available"):
            S4DRegressor(**{**SMALL, "device": "cuda"}).fit(X, y)
    with pytest.raises(ValueError, match="d_state must be even"):
        S4DRegressor(**{**SMALL, "d_state": 5}).fit(X, y)
    with pytest.raises(ValueError, match="could not convert|numeric"):
        S4DRegressor(**SMALL).fit(np.array([["a"] * 5] * 4), np.zeros(4))
    for empty in (np.zeros((10, 0, 2)), np.zeros((10, 5, 0))):  # an empty sequence or feature axis
        with pytest.raises(ValueError, match=r"X holds sequences of shape \(\d+, \d+\) \(seq_len, n_features\): both must be at least 1"):
            S4DRegressor(**SMALL).fit(empty, np.zeros(10))
