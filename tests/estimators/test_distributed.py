"""Data-parallel training (``devices`` > 1): Lightning Fabric's DDP on CPU processes (gloo).

The fast tests check the parameter; the slow ones start two processes per fit (about 20 s each
on two cores, most of it spent importing torch and the package in the new processes).
"""

import os

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import ssmforecast.estimators as est
from ssmforecast.estimators import S4DForecaster, S4DRegressor
from ssmforecast.estimators._loop import TrainConfig, resolve_device, train

BAD_DEVICES = [0, -1, 1.5, "2", True, None]


# ---------------------------------------------------------------------------- parameter checks


@pytest.mark.parametrize("name", est.__all__)
def test_every_estimator_has_devices_1_by_default(name):
    assert getattr(est, name)().get_params()["devices"] == 1


@pytest.mark.parametrize("devices", BAD_DEVICES)
def test_devices_must_be_a_positive_int(devices):
    X, y = np.random.default_rng(0).standard_normal((20, 6)), np.arange(20.0)
    with pytest.raises(ValueError, match="devices"):
        S4DRegressor(devices=devices, max_epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="devices"):
        S4DForecaster(devices=devices, context_length=4, horizon=2, max_epochs=1).fit(pd.Series(np.arange(30.0)))
    with pytest.raises(ValueError, match="devices must be an int >= 1"):
        resolve_device("cpu", devices)


def test_any_number_of_cpu_processes_but_no_more_processes_than_gpus(monkeypatch):
    assert resolve_device("cpu", 3) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda", 1) == "cuda"
    for device in ("cuda", "auto"):
        with pytest.raises(ValueError, match="devices=2 processes need 2 GPUs .* but 1 are available"):
            resolve_device(device, 2)
    X, y = np.random.default_rng(0).standard_normal((20, 6)), np.arange(20.0)
    with pytest.raises(ValueError, match="but 1 are available"):  # raised before any training
        S4DRegressor(device="cuda", devices=2, max_epochs=1).fit(X, y)


# ---------------------------------------------------------------------------- two processes


class RecordingLoss(nn.Module):
    """MSE that appends, per call, the world size, train (1) or eval (0), and the targets of the
    batch to one file per process. Defined at module level: the processes unpickle it."""

    def __init__(self, folder):
        super().__init__()
        self.folder = str(folder)

    def forward(self, pred, target):
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        ids = " ".join(str(int(v)) for v in target.flatten().tolist())
        with open(os.path.join(self.folder, f"rank{rank}.txt"), "a") as f:
            f.write(f"{world} {int(torch.is_grad_enabled())} {ids}\n")
        return F.mse_loss(pred, target)


def _calls(path) -> list[tuple[int, int, list[int]]]:
    out = []
    for line in path.read_text().splitlines():
        world, training, *ids = map(int, line.split())
        out.append((world, training, ids))
    return out


@pytest.mark.slow
def test_each_process_trains_on_its_half_of_every_epoch_and_all_agree_on_the_validation_loss(tmp_path):
    n, epochs = 40, 2  # 30 training samples (targets 0…29), validation tail 30…39
    x = torch.linspace(-1, 1, n)[:, None]
    y = torch.arange(n, dtype=torch.float32)[:, None]  # each target is its sample's index
    torch.manual_seed(0)
    module = nn.Linear(1, 1)
    config = TrainConfig(max_epochs=epochs, batch_size=8, validation_fraction=0.25, patience=None, device="cpu", devices=2)
    module, history = train(module, (x,), y, RecordingLoss(tmp_path), config)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["rank0.txt", "rank1.txt"]
    calls = [_calls(tmp_path / f"rank{r}.txt") for r in (0, 1)]
    assert all(world == 2 for rank_calls in calls for world, _, _ in rank_calls)
    # per process and epoch: two training steps over its 15 samples (8 + 7), then one validation batch
    assert [[(t, len(ids)) for _, t, ids in c] for c in calls] == [[(1, 8), (1, 7), (0, 5)] * epochs] * 2
    for e in range(epochs):
        seen = [[i for _, t, ids in c[3 * e : 3 * e + 3] if t for i in ids] for c in calls]
        assert not set(seen[0]) & set(seen[1]) and sorted(seen[0] + seen[1]) == list(range(30))
        val = [c[3 * e + 2][2] for c in calls]
        assert sorted(val[0] + val[1]) == list(range(30, 40))
    # the validation loss in the history is the mean over both halves, and the best epoch's
    # weights come back into the caller's module
    with torch.no_grad():
        best_val = float(F.mse_loss(module(x[30:]), y[30:]))
    assert min(h["val_loss"] for h in history) == pytest.approx(best_val, rel=1e-5)
    assert len(history) == epochs and not module.training


def _windows(n=80, L=16, seed=0):
    rng = np.random.default_rng(seed)
    s = np.sin(2 * np.pi * np.arange(n + L) / 12) + 0.1 * rng.standard_normal(n + L)
    return np.stack([s[i : i + L] for i in range(n)]), s[L : L + n]


@pytest.mark.slow
def test_two_processes_train_the_model_of_one_process_with_twice_the_batch():
    # 72 training and 8 validation windows: each step of two processes on 16 windows each
    # averages the gradients of the same 32 windows that one process takes in one step, so the
    # two fits agree up to float64 rounding (summation order)
    X, y = _windows()
    X0, y0 = X.copy(), y.copy()
    port = os.environ.get("MASTER_PORT")
    params = {"d_model": 8, "n_layers": 1, "d_state": 8, "max_epochs": 3, "precision": "64", "device": "cpu", "random_state": 0}
    one = S4DRegressor(**params, batch_size=32).fit(X, y)
    two = S4DRegressor(**params, batch_size=16, devices=2).fit(X, y)
    np.testing.assert_allclose(two.predict(X), one.predict(X), rtol=1e-8, atol=1e-10)
    for h1, h2 in zip(one.history_, two.history_, strict=True):
        assert h2["train_loss"] == pytest.approx(h1["train_loss"], rel=1e-8)
        assert h2["val_loss"] == pytest.approx(h1["val_loss"], rel=1e-8)
        assert h2["lr"] == pytest.approx(h1["lr"], rel=1e-12)  # the same number of steps per epoch
    # a different batch on one process gives a visibly different model: the tolerance above is tight
    assert not np.allclose(S4DRegressor(**params, batch_size=16).fit(X, y).predict(X), one.predict(X), rtol=1e-4)
    assert np.array_equal(X, X0) and np.array_equal(y, y0), "fit must not modify the caller's data"
    assert os.environ.get("MASTER_PORT") == port, "the launcher's MASTER_PORT must not leak into the caller"


@pytest.mark.slow
def test_two_process_forecaster_with_dropout_is_reproducible():
    t = np.arange(150)
    y = pd.Series(np.sin(2 * np.pi * t / 12) + 0.5 * np.sin(2 * np.pi * t / 7))
    y0 = y.copy()
    params = {"context_length": 12, "horizon": 3, "d_model": 8, "n_layers": 1, "d_state": 8, "dropout": 0.1}
    fits = [
        S4DForecaster(**params, max_epochs=2, batch_size=16, device="cpu", devices=2, random_state=0).fit(y)
        for _ in range(2)
    ]
    a, b = (f.predict(fh=[1, 2, 3]).to_numpy() for f in fits)
    assert np.isfinite(a).all() and np.array_equal(a, b)
    assert fits[0].history_ == fits[1].history_ and len(fits[0].history_) == 2
    assert y.equals(y0)


# ---------------------------------------------------------------------------- parallel searches


@pytest.mark.slow
def test_searches_in_two_worker_processes_equal_sequential_searches():
    # docs/scaling.md: a search's fits run in parallel through n_jobs (scikit-learn) and
    # backend / backend_params (sktime), here with joblib's default loky backend. The workers run
    # one torch thread each (loky caps them), so float32 sums may round differently: rtol 1e-5.
    from sklearn.model_selection import GridSearchCV, TimeSeriesSplit
    from sktime.forecasting.model_selection import ForecastingGridSearchCV
    from sktime.split import ExpandingWindowSplitter

    X, y = _windows(60)
    tiny = {"d_model": 8, "n_layers": 1, "d_state": 8, "max_epochs": 2, "random_state": 0}
    grid = {"lr": [1e-3, 3e-3]}
    scores = [
        GridSearchCV(S4DRegressor(**tiny), grid, cv=TimeSeriesSplit(2), n_jobs=n_jobs).fit(X, y).cv_results_["mean_test_score"]
        for n_jobs in (1, 2)
    ]
    np.testing.assert_allclose(scores[1], scores[0], rtol=1e-5)

    series = pd.Series(np.sin(2 * np.pi * np.arange(60) / 12))
    cv = ExpandingWindowSplitter(initial_window=40, step_length=10, fh=[1, 2])
    forecaster = S4DForecaster(context_length=8, horizon=2, **tiny)
    results = [
        ForecastingGridSearchCV(forecaster, cv=cv, param_grid=grid, backend=backend, backend_params=params)
        .fit(series)
        .cv_results_["mean_test_MeanAbsolutePercentageError"]
        .to_numpy()
        for backend, params in ((None, None), ("loky", {"n_jobs": 2}))
    ]
    np.testing.assert_allclose(results[1], results[0], rtol=1e-5)
