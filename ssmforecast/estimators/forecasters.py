"""sktime forecasters: ``S4Forecaster``, ``S4DForecaster``, ``MambaForecaster``.

One network reads windows of ``context_length`` observed steps followed by mask tokens for the
``horizon`` steps ahead (see :mod:`._windows`) and answers at the masked positions, so every
requested step of the horizon comes from one forward pass. Each window is normalised by its own
context (RevIN) after a global standardisation with training statistics.

Panels and hierarchies (pandas MultiIndex) are fitted as one global model: the windows of all
series train the same network, and each series is forecast from its own last context. The fitted
forecaster keeps only the last ``context_length`` rows of every series, so ``update`` and
``predict`` cost the same however long the history grows.

Probabilistic forecasts come from a trained distribution head: with ``loss="normal"`` the network
outputs a mean and a standard deviation per step and channel and is trained by Gaussian negative
log-likelihood; intervals and quantiles are those of that normal distribution.
"""

from __future__ import annotations

from numbers import Integral
from statistics import NormalDist

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.utils._param_validation import Interval, StrOptions, validate_parameter_constraints
from sktime.forecasting.base import BaseForecaster, ForecastingHorizon
from torch import nn

from ..nn import Backbone
from ._loop import resolve_device
from ._shared import (
    NETWORK_DOC,
    RUNTIME_DOC,
    SHARED_CONSTRAINTS,
    build_backbone,
    check_even_state,
    fit_network,
    predict_batches,
    safe_scale,
)
from ._windows import instance_stats, sliding_windows, tokens

#: Training losses; "normal" trains a Gaussian head and enables intervals and quantiles.
LOSSES = ("normal", "mse", "mae")
#: Floor of the predicted standard deviation, in RevIN-normalised units.
MIN_SIGMA = 1e-3
_MTYPES = ["pd.DataFrame", "pd-multiindex", "pd_multiindex_hier"]


class _ForecastNet(nn.Module):
    """Backbone over [context ‖ mask tokens], read at the masked steps and at the last context step.

    The forecast of step k is  head(z_{L+k}) + W_k z_L : a per-position head on the backbone's
    features at the masked step, plus a direct linear map from the features of the last observed
    step (z_L summarises the context; W_k is one (C·P × H) block per step ahead).
    forward(tokens (batch, L + k, d_input)) → (batch, k, C · P), P = 2 for the normal head, else 1.
    The network is causal, so the first k outputs do not depend on how many mask tokens follow.
    """

    def __init__(self, backbone: Backbone, context_length: int, horizon: int, d_out: int):
        super().__init__()
        self.backbone = backbone
        self.context_length, self.horizon, self.d_out = context_length, horizon, d_out
        self.head = nn.Linear(backbone.d_model, d_out)
        self.direct = nn.Linear(backbone.d_model, horizon * d_out)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        L = self.context_length
        z = self.backbone(tokens)  # (batch, L+k, H)
        k = z.shape[1] - L
        direct = self.direct(z[:, L - 1]).unflatten(-1, (self.horizon, self.d_out))[:, :k]  # (batch, k, C·P)
        return self.head(z[:, L:]) + direct  # (batch, k, C·P)


def _softplus(x):
    return F.softplus(x) if isinstance(x, torch.Tensor) else np.logaddexp(0.0, x)


def split_head(out, n_targets: int, normal: bool):
    """Head output (..., k, C·P) → (mean (..., k, C), standard deviation (..., k, C) or None)."""
    if not normal:
        return out, None
    return out[..., :n_targets], _softplus(out[..., n_targets:]) + MIN_SIGMA


class _HeadLoss(nn.Module):
    """Loss on the head output (batch, k, C·P) against targets (batch, k, C)."""

    def __init__(self, kind: str, n_targets: int):
        super().__init__()
        self.kind, self.n_targets = kind, n_targets

    def forward(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        mean, sigma = split_head(out, self.n_targets, self.kind == "normal")
        if self.kind == "mse":
            return F.mse_loss(mean, target)
        if self.kind == "mae":
            return F.l1_loss(mean, target)
        # Gaussian negative log-likelihood without the constant ½ log 2π: log σ + ½ ((y − μ)/σ)²
        return (torch.log(sigma) + 0.5 * ((target - mean) / sigma) ** 2).mean()


def _instances(df: pd.DataFrame) -> list[tuple[tuple, pd.DataFrame]]:
    """A single series → [((), df)]; a panel or hierarchy → [(instance key, its rows by time)]."""
    if df.index.nlevels == 1:
        return [((), df)]
    levels = list(range(df.index.nlevels - 1))
    out = []
    for key, rows in df.groupby(level=levels, sort=False):
        out.append((key if isinstance(key, tuple) else (key,), rows.droplevel(levels)))
    return out


def _exog_rows(X: pd.DataFrame, key: tuple, cache: dict) -> pd.DataFrame:
    """The rows (by time) of series ``key`` in X; ``cache`` holds X split by series."""
    if not cache:
        cache.update(_instances(X))
    if key not in cache:
        raise ValueError(f"X has no rows for series {key}")
    return cache[key]


def _time_values(index: pd.Index) -> np.ndarray:
    """Times as float64: nanoseconds for datetimes, ordinals for periods, the values otherwise."""
    if isinstance(index, pd.DatetimeIndex):
        return index.as_unit("ns").asi8.astype(np.float64)
    if isinstance(index, pd.PeriodIndex):
        return index.asi8.astype(np.float64)
    return np.asarray(index, dtype=np.float64)


def _where(key: tuple) -> str:
    return "" if not key else f" (series {key[0] if len(key) == 1 else key})"


def _check_numeric(df: pd.DataFrame, name: str) -> None:
    bad = [str(c) for c in df.columns if not pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c])]
    if bad:
        raise ValueError(f"{name} has non-numeric columns {bad}; encode them as numbers first")


def _check_finite(values: np.ndarray, index: pd.Index, columns, name: str, key: tuple) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(
            f"{name}{_where(key)} contains NaN or inf: column {columns[col]!r} at {index[row]!r} is {values[row, col]}"
        )


def _check_regular(index: pd.Index, key: tuple) -> None:
    """The index must lie on a regular grid (irregular timestamps are not supported yet)."""
    if len(index) < 3:
        return
    if isinstance(index, pd.DatetimeIndex):
        regular = index.freq is not None or pd.infer_freq(index) is not None
    else:
        steps = np.diff(_time_values(index))
        regular = bool(np.all(steps == steps[0])) and steps[0] > 0
    if not regular:
        raise ValueError(
            f"the time index{_where(key)} is not regularly spaced; these forecasters need a regular "
            "time grid (one observation per period, no gaps)"
        )


class _SSMForecaster(BaseForecaster):
    _layer: str = ""

    _tags = {
        "authors": ["ssmforecast developers"],
        "maintainers": ["ssmforecast developers"],
        "python_dependencies": "torch",
        "y_inner_mtype": _MTYPES,
        "X_inner_mtype": _MTYPES,
        "capability:multivariate": True,
        "capability:exogenous": True,
        "capability:insample": False,
        "capability:pred_int": True,
        "capability:pred_int:insample": False,
        "capability:missing_values": False,
        "capability:update": True,
        "capability:unequal_length": True,
        "capability:categorical_in_X": False,
        "capability:random_state": True,
        "property:randomness": "derandomized",
        "requires-fh-in-fit": False,
        "X-y-must-have-same-index": True,
    }
    # The forecaster keeps its own context (the last context_length rows): sktime need not keep
    # the whole history in _y/_X (its default will become False in sktime 1.3).
    _config = {"remember_data": False}

    _parameter_constraints: dict = {
        "context_length": [Interval(Integral, 1, None, closed="left")],
        "horizon": [Interval(Integral, 1, None, closed="left"), None],
        "revin": ["boolean"],
        **SHARED_CONSTRAINTS,
        "loss": [StrOptions(set(LOSSES))],
        "update_epochs": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        context_length=96,
        horizon=None,
        revin=True,
        d_model=32,
        n_layers=2,
        d_state=None,
        dropout=0.0,
        ff_expand=None,
        max_epochs=50,
        batch_size=32,
        lr=3e-3,
        weight_decay=0.01,
        ssm_lr=None,
        grad_clip=1.0,
        validation_fraction=0.1,
        patience=10,
        loss="normal",
        update_epochs=5,
        random_state=None,
        device="auto",
        precision="32",
        verbose=False,
    ):
        self.context_length = context_length
        self.horizon = horizon
        self.revin = revin
        self.d_model = d_model
        self.n_layers = n_layers
        self.d_state = d_state
        self.dropout = dropout
        self.ff_expand = ff_expand
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.ssm_lr = ssm_lr
        self.grad_clip = grad_clip
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.loss = loss
        self.update_epochs = update_epochs
        self.random_state = random_state
        self.device = device
        self.precision = precision
        self.verbose = verbose
        super().__init__()
        self.set_tags(**{"requires-fh-in-fit": horizon is None, "capability:pred_int": loss == "normal"})
        self._y, self._X = None, None  # sktime keeps them only if the remember_data config is set

    # ------------------------------------------------------------------ data → arrays

    def _series(self, y: pd.DataFrame, X: pd.DataFrame | None, fit: bool) -> list[tuple[tuple, pd.DataFrame]]:
        """Validated (instance key, rows) pairs; rows hold the target columns then the exogenous ones."""
        _check_numeric(y, "y")
        if X is not None:
            _check_numeric(X, "X")
        out, x_split = [], {}
        for key, rows in _instances(y):
            if not rows.index.is_monotonic_increasing or rows.index.has_duplicates:
                raise ValueError(f"the time index of y{_where(key)} must be sorted and free of duplicates")
            _check_finite(rows.to_numpy(np.float64), rows.index, list(rows.columns), "y", key)
            if self.exog_names_:
                if X is None:
                    raise ValueError(
                        f"{type(self).__name__} was fitted with exogenous X ({self.exog_names_}); pass X here too"
                    )
                x = _exog_rows(X, key, x_split).reindex(rows.index)[self.exog_names_]
                _check_finite(x.to_numpy(np.float64), rows.index, self.exog_names_, "X (aligned to y)", key)
                rows = pd.concat([rows, x], axis=1)
            # positional column names: y and X may share labels (e.g. both have a column 0)
            rows = rows.set_axis([f"y{i}" for i in range(rows.shape[1] - len(self.exog_names_))] + [f"x{j}" for j in range(len(self.exog_names_))], axis=1)
            if fit:
                _check_regular(rows.index, key)
            out.append((key, rows))
        return out

    def _normalise(self, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """rows (T, C + E) → (globally standardised targets (T, C), exogenous (T, E) or None)."""
        values = rows.to_numpy(np.float64)
        C = len(self.target_names_)
        y = (values[:, :C] - self.y_mean_) / self.y_scale_
        x = (values[:, C:] - self.x_mean_) / self.x_scale_ if self.exog_names_ else None
        return y, x

    def _windows(self, series: list[tuple[tuple, pd.DataFrame]]):
        """(tokens (n, L+H, d_in), targets (n, H, C)) of every window of every series, in order of
        forecast origin time, so that the validation tail is the latest windows."""
        L, H = self.context_length, self.horizon_
        all_tokens, all_targets, origins = [], [], []
        for _key, rows in series:
            if len(rows) < L + H:
                continue
            y, x = self._normalise(rows)
            win = sliding_windows(y, L + H)  # (n, L+H, C)
            mu, sigma = instance_stats(win[:, :L], self.revin)  # (n, 1, C)
            win = (win - mu) / sigma
            exog = None if x is None else sliding_windows(x, L + H)  # (n, L+H, E)
            all_tokens.append(tokens(win[:, :L], H, exog))
            all_targets.append(win[:, L:])
            origins.append(_time_values(rows.index)[L - 1 : len(rows) - H])
        if not all_tokens:
            return None, None
        order = np.argsort(np.concatenate(origins), kind="stable")
        return np.concatenate(all_tokens)[order], np.concatenate(all_targets)[order]

    # ------------------------------------------------------------------ sktime interface

    def _fit(self, y, X=None, fh=None):
        """Fit the global network on every window of every series in y (and X).

        Writes to self: ``module_``, ``history_``, ``horizon_``, ``target_names_``,
        ``exog_names_``, ``index_names_``, ``y_mean_``, ``y_scale_``, ``x_mean_``, ``x_scale_``, ``context_``.
        """
        validate_parameter_constraints(
            self._parameter_constraints, self.get_params(deep=False), caller_name=type(self).__name__
        )
        check_even_state(self)
        resolve_device(self.device)
        self.horizon_ = self._resolve_horizon(fh)
        self.target_names_ = list(y.columns)
        self.index_names_ = list(y.index.names)
        self.exog_names_ = [] if X is None else list(X.columns)
        series = self._series(y, X, fit=True)
        L, H = self.context_length, self.horizon_
        lengths = {key: len(rows) for key, rows in series}
        if max(lengths.values()) < L + H:
            short = min(lengths, key=lengths.get)
            raise ValueError(
                f"y{_where(short)} has {lengths[short]} observations, but {type(self).__name__} needs at least "
                f"{L + H} (context_length {L} + horizon {H}); lower context_length or horizon, or give a longer series"
            )
        values = np.concatenate([rows.to_numpy(np.float64) for _, rows in series])  # (ΣT, C+E)
        C = len(self.target_names_)
        self.y_mean_, self.y_scale_ = values[:, :C].mean(axis=0), safe_scale(values[:, :C].std(axis=0))
        self.x_mean_, self.x_scale_ = values[:, C:].mean(axis=0), safe_scale(values[:, C:].std(axis=0))
        inputs, targets = self._windows(series)
        n_params = 2 if self.loss == "normal" else 1
        d_input = C + 1 + len(self.exog_names_)
        self.module_, self.history_ = fit_network(
            self,
            lambda: _ForecastNet(build_backbone(self, d_input, None), L, H, C * n_params),
            (inputs,),
            targets,
            _HeadLoss(self.loss, C),
        )
        self.context_ = {key: rows.iloc[-L:] for key, rows in series if len(rows) >= L}
        return self

    def _resolve_horizon(self, fh) -> int:
        if self.horizon is not None:
            if fh is not None:
                self._check_steps(fh.to_relative(self.cutoff).to_numpy(), self.horizon)
            return self.horizon
        steps = fh.to_relative(self.cutoff).to_numpy()
        self._check_steps(steps, None)
        return int(steps.max())

    def _check_steps(self, steps: np.ndarray, horizon: int | None) -> None:
        if steps.min() <= 0:
            raise ValueError(
                f"{type(self).__name__} forecasts only after the last observation: the horizon contains "
                f"step {int(steps.min())} (in-sample forecasts are not supported)"
            )
        if horizon is not None and steps.max() > horizon:
            raise ValueError(
                f"the forecasting horizon reaches step {int(steps.max())}, but {type(self).__name__} was "
                f"{'fitted' if hasattr(self, 'horizon_') else 'set up'} with horizon={horizon}; refit with "
                f"horizon >= {int(steps.max())}"
            )

    def _update(self, y, X=None, update_params=True):
        """Move each series' context to the end of the new data; fine-tune on it if update_params.

        Writes to self: ``context_`` (the last ``context_length`` rows per series); with
        ``update_params`` and at least one full window of new data, the weights of ``module_``
        and ``history_`` (extended by the fine-tuning epochs).
        """
        L = self.context_length
        merged = []
        for key, rows in self._series(y, X, fit=False):
            old = self.context_.get(key)
            if old is not None:
                rows = pd.concat([old[old.index < rows.index[0]], rows])
            merged.append((key, rows))
        if update_params:
            inputs, targets = self._windows(merged)
            if inputs is not None:
                self.module_, history = fit_network(
                    self,
                    None,
                    (inputs,),
                    targets,
                    _HeadLoss(self.loss, len(self.target_names_)),
                    module=self.module_,
                    max_epochs=self.update_epochs,
                    validation_fraction=0.0,
                )
                self.history_ = self.history_ + history
        for key, rows in merged:
            if len(rows) >= L:
                self.context_[key] = rows.iloc[-L:]
        return self

    def _predict(self, fh, X=None):
        """Point forecasts (the mean of the head) at fh for every series."""
        index, mean, _ = self._forecast(fh, X)
        return pd.DataFrame(mean, index=index, columns=self.target_names_)

    def _predict_quantiles(self, fh, X, alpha):
        """Quantiles of the normal predictive distribution at fh: columns (variable, alpha)."""
        self._check_probabilistic()
        index, mean, sigma = self._forecast(fh, X)
        columns = pd.MultiIndex.from_product([self.target_names_, list(alpha)])
        z = np.array([NormalDist().inv_cdf(a) for a in alpha])  # (A,)
        q = mean[:, :, None] + sigma[:, :, None] * z  # (rows, C, A)
        return pd.DataFrame(q.reshape(len(index), -1), index=index, columns=columns)

    def _predict_var(self, fh, X=None, cov=False):
        """Variance of the normal predictive distribution at fh (marginal, per step and variable)."""
        self._check_probabilistic()
        if cov:
            raise NotImplementedError(f"{type(self).__name__} predicts marginal variances only (cov=False)")
        index, _, sigma = self._forecast(fh, X)
        return pd.DataFrame(sigma**2, index=index, columns=self.target_names_)

    def _check_probabilistic(self) -> None:
        if self.loss != "normal":
            raise ValueError(
                f"intervals, quantiles and variances need loss='normal' (a trained Gaussian head); "
                f"this {type(self).__name__} was fitted with loss={self.loss!r}"
            )

    # ------------------------------------------------------------------ forecasting

    def _future(self, last: pd.Index, fh) -> tuple[np.ndarray, pd.Index]:
        """Steps ahead of one series' last observation, and their times, for fh."""
        if fh.is_relative:
            steps = fh.to_numpy().astype(np.int64)
            times = fh.to_absolute_index(last)
        else:
            steps = fh.to_relative(last).to_numpy().astype(np.int64)
            times = fh.to_absolute_index(last)
        self._check_steps(steps, self.horizon_)
        return steps, times

    def _forecast(self, fh, X):
        """→ (index, mean (rows, C), standard deviation (rows, C); NaN without a normal head), rows = series × fh."""
        L, C = self.context_length, len(self.target_names_)
        if self.exog_names_ and X is None:
            raise ValueError(
                f"{type(self).__name__} was fitted with exogenous X ({self.exog_names_}); "
                "pass X with their future values to predict"
            )
        plans, x_split = [], {}
        for key, ctx in self.context_.items():
            steps, times = self._future(ctx.index[-1:], fh)
            k = int(steps.max())
            y, x = self._normalise(ctx)  # (L, C), (L, E)
            if x is not None:
                ahead = ForecastingHorizon(np.arange(1, k + 1), is_relative=True, freq=fh.freq)
                ahead = ahead.to_absolute_index(ctx.index[-1:])
                last = ctx.iloc[-1, C:].to_numpy(np.float64)  # (E,) unnormalised
                x = np.concatenate([x, self._future_exog(_exog_rows(X, key, x_split), key, last, ahead, times)])
            plans.append((key, steps, times, y, x, k))
        results = {}
        for k in sorted({plan[5] for plan in plans}):  # one forward pass per distinct reach k
            group = [plan for plan in plans if plan[5] == k]
            ctx = np.stack([plan[3] for plan in group])  # (n, L, C)
            mu, sd = instance_stats(ctx, self.revin)  # (n, 1, C)
            exog = np.stack([plan[4] for plan in group]) if self.exog_names_ else None  # (n, L+k, E)
            out = predict_batches(self.module_, tokens((ctx - mu) / sd, k, exog))  # (n, k, C·P)
            mean, sigma = split_head(out, C, self.loss == "normal")
            mean = (mean * sd + mu) * self.y_scale_ + self.y_mean_  # (n, k, C)
            sigma = sigma * sd * self.y_scale_ if sigma is not None else np.full_like(mean, np.nan)
            for i, (key, steps, times, *_) in enumerate(group):
                results[key] = (times, mean[i, steps - 1], sigma[i, steps - 1])
        keys = list(results)  # in the order of the series in fit
        mean = np.concatenate([results[key][1] for key in keys])
        sigma = np.concatenate([results[key][2] for key in keys])
        if keys == [()]:
            return results[()][0], mean, sigma
        tuples = [key + (t,) for key in keys for t in results[key][0]]
        return pd.MultiIndex.from_tuples(tuples, names=self.index_names_), mean, sigma

    def _future_exog(self, X_rows: pd.DataFrame, key: tuple, last: np.ndarray, times: pd.Index, needed: pd.Index) -> np.ndarray:
        """Standardised exogenous values (k, E) of one series at the k steps ``times`` after its
        last observation. X must hold every forecast time in ``needed``; steps in between that X
        lacks are interpolated linearly from the last observed row and the next given one."""
        rows = X_rows.reindex(times)[self.exog_names_]
        given = rows.notna().all(axis=1).to_numpy()
        missing = needed[~needed.isin(times[given])]
        if len(missing):
            raise ValueError(
                f"X{_where(key)} has no values at forecast time {missing[0]!r}; predict needs the future "
                "exogenous values at every forecast time"
            )
        _check_finite(rows.to_numpy(np.float64)[given], times[given], self.exog_names_, "X", key)
        values = rows.to_numpy(np.float64)  # (k, E)
        if not given.all():
            filled = pd.DataFrame(np.vstack([last, values]))
            values = filled.interpolate(method="linear", limit_direction="forward").to_numpy()[1:]
        return (values - self.x_mean_) / self.x_scale_

    @classmethod
    def get_test_params(cls, parameter_set="default"):
        """Small, fast configurations for sktime's estimator checks, covering the normal and point
        heads, RevIN on and off, a horizon fixed in advance or taken from fh, and the feed-forward."""
        small = {"d_model": 8, "n_layers": 1, "d_state": 4, "batch_size": 64, "random_state": 0}
        return [
            {**small, "context_length": 6, "max_epochs": 2},
            {**small, "context_length": 4, "horizon": 5, "loss": "mse", "revin": False, "ff_expand": 1, "max_epochs": 1, "validation_fraction": 0.0},
        ]


_PARAMS_DOC = f"""
    Parameters
    ----------
    context_length : int, default=96
        Observed steps L the network reads before each forecast (the lookback window).
    horizon : int or None, default=None
        Steps ahead H the network is trained to answer; any subset of 1…H can be predicted.
        None takes the largest step of the ``fh`` passed to ``fit`` (which is then required).
    revin : bool, default=True
        Normalise each window by the mean and standard deviation of its own context (RevIN).
{NETWORK_DOC}    loss : {{"normal", "mse", "mae"}}, default="normal"
        "normal" trains a Gaussian head by negative log-likelihood: point forecasts are its mean,
        and ``predict_interval``, ``predict_quantiles`` and ``predict_var`` are available.
        "mse" and "mae" train point forecasts only.
    update_epochs : int, default=5
        Fine-tuning epochs of ``update(..., update_params=True)`` on the windows of the new data.
{RUNTIME_DOC}
    Attributes
    ----------
    module_ : torch.nn.Module
        The fitted network (Backbone read at the masked horizon steps), in eval mode.
    history_ : list of dict
        Per epoch: ``epoch``, ``train_loss``, ``val_loss`` (None without validation), ``lr``;
        fine-tuning epochs of ``update`` are appended.
    horizon_ : int
        The horizon H the network answers.
    context_ : dict
        The last ``context_length`` rows (targets then exogenous columns) of every series, by
        series key (``()`` for a single series): all that ``predict`` reads.
    target_names_, exog_names_ : list
        Columns of y and of X seen in ``fit``.
    y_mean_, y_scale_, x_mean_, x_scale_ : ndarray
        Training statistics of the global standardisation.
"""


def _forecaster(name: str, layer: str, summary: str) -> type:
    examples = f"""
    Examples
    --------
    >>> from sktime.datasets import load_airline
    >>> from ssmforecast import {name}
    >>> y = load_airline()
    >>> forecaster = {name}(context_length=24, horizon=12, max_epochs=2, random_state=0)
    >>> _ = forecaster.fit(y)
    >>> forecaster.predict(fh=[1, 6, 12]).shape
    (3,)
    >>> forecaster.predict_interval(fh=[1, 2], coverage=0.9).shape
    (2, 2)
"""
    doc = f"{summary}\n\n    y may be univariate, multivariate, a panel or a hierarchy (one global model).\n{_PARAMS_DOC}{examples}"
    return type(name, (_SSMForecaster,), {"_layer": layer, "__doc__": doc, "__module__": __name__})


S4Forecaster = _forecaster("S4Forecaster", "s4", "Forecaster on an S4 backbone (DPLR HiPPO-LegS SSMs, Cauchy kernel).")
S4DForecaster = _forecaster("S4DForecaster", "s4d", "Forecaster on an S4D backbone (diagonal SSMs, Vandermonde kernel).")
MambaForecaster = _forecaster("MambaForecaster", "mamba", "Forecaster on a Mamba backbone (selective scan).")
