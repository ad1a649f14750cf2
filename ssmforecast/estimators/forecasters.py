"""sktime forecasters: ``S4Forecaster``, ``S4DForecaster``, ``MambaForecaster``.

One network reads windows of ``context_length`` observed steps followed by mask tokens for the
``horizon`` steps ahead (see :mod:`._windows`) and answers at the masked positions, so every
requested step of the horizon comes from one forward pass. Each window is normalised by its own
context (RevIN) after a global standardisation with training statistics.

Panels and hierarchies (pandas MultiIndex) are fitted as one global model: the windows of all
series train the same network, and each series is forecast from its own last context. The fitted
forecaster keeps only the last ``context_length`` rows of every series (for a model fitted on
regular steps, the rows of the last ``context_length`` time units), so ``update`` and ``predict``
cost the same however long the history grows. A series with fewer rows than that is not forecast
(a warning names it) until ``update`` brings it to ``context_length``.

Probabilistic forecasts come from a trained distribution head: with ``loss="normal"`` the network
outputs a mean and a standard deviation per step and channel and is trained by Gaussian negative
log-likelihood; intervals and quantiles are those of that normal distribution.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real
from statistics import NormalDist

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.utils._param_validation import Interval, StrOptions, validate_parameter_constraints
from sktime.forecasting.base import BaseForecaster, ForecastingHorizon
from torch import nn

from ..nn import HOLDS, Backbone
from ._loop import resolve_device, split_validation
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
from ._time import (
    ROWS,
    InSampleForecastError,
    calendar_grid,
    check_index,
    resolve_unit,
    shift,
    steps,
    time_ints,
    unit_label,
)
from ._windows import instance_stats, sliding_windows, tokens

#: Training losses; "normal" trains a Gaussian head and enables intervals and quantiles.
LOSSES = ("normal", "mse", "mae")
#: Units of the training loss: each window's RevIN-normalised values, or the series' (``_HeadLoss``).
LOSS_SCALES = ("window", "series")
#: Floor of the predicted standard deviation, in RevIN-normalised units.
MIN_SIGMA = 1e-3
_MTYPES = ["pd.DataFrame", "pd-multiindex", "pd_multiindex_hier"]
#: The forecasters' ``hold`` values: the blocks' holds and "foh", S4D's exact first-order hold.
FORECAST_HOLDS = (*HOLDS, "foh")


class _ForecastNet(nn.Module):
    """Backbone over [context ‖ mask tokens], read at the masked steps and at the last context step.

    The forecast of a query τ time units after the last observation is  head(z_q) + W(τ) z_L :
    a per-position head on the backbone's features z_q at the query's mask token, plus a direct
    linear map from the features z_L of the last observed step (z_L summarises the context).
    W(τ) is one (C·P × d_model) block per whole step ahead, W_1 … W_H, linearly interpolated
    between them for a τ off the grid and held constant outside [1, H].

    With ``skip_targets`` = C (the forecasters' ``linear_skip``) the mean of each target c also gets a linear map of that target's own
    context, the L RevIN-normalised values ỹ_c (NLinear, Zeng et al., AAAI 2023, §4, one map
    shared by the targets):  W_τ z_L + V_τ ỹ_c + v_τ ,  V (H × L) and v (H,) initialised at zero,
    so that training starts from the network without it, or set by :meth:`start_from_skip`. It
    reads the context row by row, so it needs exactly L context tokens one time unit apart.

    forward(tokens (batch, L + k, d_input), ahead (batch, k), dt (batch, L + k) or None)
        → (batch, k, C · P), P = 2 for the normal head, else 1. L may differ from the training
    context length (a history sampled at another rate covers the same time span in more tokens).
    The network is causal, so the first k outputs do not depend on how many mask tokens follow.

    How each SSM layer reads its input over the gap before a token (``hold``) is the backbone's
    (:class:`~ssmforecast.nn.ResidualBlock`).
    """

    def __init__(
        self, backbone: Backbone, context_length: int, horizon: int, d_out: int, skip_targets: int | None = None
    ):
        super().__init__()
        self.backbone = backbone
        self.context_length, self.horizon, self.d_out = context_length, horizon, d_out
        self.head = nn.Linear(backbone.d_model, d_out)
        self.direct = nn.Linear(backbone.d_model, horizon * d_out)
        self.n_skip = skip_targets  # C: the first C token features and outputs are the targets' (values, means)
        self.skip = None
        if skip_targets:
            self.skip = nn.Linear(context_length, horizon)  # V (H × L), v (H,)
            nn.init.zeros_(self.skip.weight)
            nn.init.zeros_(self.skip.bias)

    def start_from_skip(self, V: np.ndarray, v: np.ndarray) -> None:
        """Make the network the linear map alone: the skip's V (H, L), v (H,) set (e.g. to
        :func:`skip_lstsq`'s), the head and the direct map W zeroed, so that the first output
        is V ỹ_c + v on the means and 0 on the σ columns; training then adds the SSM's part."""
        with torch.no_grad():
            self.skip.weight.copy_(torch.as_tensor(V))
            self.skip.bias.copy_(torch.as_tensor(v))
            for layer in (self.head, self.direct):
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)

    def __setstate__(self, state):
        # networks pickled when the linear hold lived here (``hold``) and not in the blocks
        hold = state.pop("hold", "constant")
        super().__setstate__(state)
        if "n_skip" not in self.__dict__:  # networks pickled before linear_skip
            self.n_skip, self.skip = None, None
        for block in self.backbone.blocks:
            block.hold = getattr(block, "hold", hold)

    def forward(self, tokens: torch.Tensor, ahead: torch.Tensor, dt: torch.Tensor | None = None) -> torch.Tensor:
        H = self.horizon
        L = tokens.shape[1] - ahead.shape[1]  # observed tokens: context_length, or the tokens of its time span
        z = self.backbone(tokens, dt)  # (batch, L+k, d_model)
        W = self.direct(z[:, L - 1]).unflatten(-1, (H, self.d_out))  # (batch, H, C·P): W_1 z_L … W_H z_L
        if self.skip is not None:
            W = W + F.pad(self._skip(tokens, L, dt), (0, self.d_out - self.n_skip))  # (batch, H, C·P)
        pos = (ahead - 1).clamp(0, H - 1)  # (batch, k) fractional index into 1…H
        i0 = pos.floor().long()
        i1 = (i0 + 1).clamp(max=H - 1)
        w = (pos - i0.to(pos.dtype)).unsqueeze(-1)  # (batch, k, 1)
        pick = lambda i: W.gather(1, i.unsqueeze(-1).expand(-1, -1, self.d_out))  # noqa: E731  (batch, k, C·P)
        return self.head(z[:, L:]) + (1 - w) * pick(i0) + w * pick(i1)  # (batch, k, C·P)

    def _skip(self, tokens: torch.Tensor, L: int, dt: torch.Tensor | None) -> torch.Tensor:
        """V_τ ỹ_c + v_τ for τ = 1 … H: (batch, H, C) from the context values tokens[:, :L, :C]."""
        if L != self.context_length or (dt is not None and not bool((dt[:, 1:L] == 1).all())):
            found = f"{L} rows" if L != self.context_length else "rows at other steps"
            raise ValueError(
                f"linear_skip reads exactly context_length = {self.context_length} context rows one time unit "
                f"apart; this history has {found}: forecast from a history at the training rate, or fit with "
                "linear_skip=False"
            )
        context = tokens[:, :L, : self.n_skip].transpose(1, 2)  # (batch, C, L)
        return self.skip(context).transpose(1, 2)  # (batch, H, C)


#: Ridge of :func:`skip_lstsq`, relative to the mean diagonal of the Gram matrix: only pins the
#: direction V + a 1ᵀ that RevIN's zero-mean contexts leave free, without shrinking the fit.
SKIP_RIDGE = 1e-8


def skip_lstsq(context: np.ndarray, target: np.ndarray, weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The least-squares linear skip (NLinear fitted in closed form, Zeng et al., AAAI 2023, §4).

    min over V, v of  Σ_i w_i ‖V x_i + v − y_i‖²  +  λ ‖V‖²,  λ = SKIP_RIDGE · tr(XᵀWX) / L,
    solved by the normal equations in float64. context (m, L) rows x_i, target (m, H) rows y_i,
    weight (m,) or None (all ones) → V (H, L), v (H,). The tiny ridge makes the solution unique
    where the contexts span less than L dimensions (RevIN's sum to zero).
    """
    x = np.asarray(context, dtype=np.float64)  # (m, L)
    y = np.asarray(target, dtype=np.float64)  # (m, H)
    w = np.ones(len(x)) if weight is None else np.asarray(weight, dtype=np.float64)  # (m,)
    m, L = x.shape
    A = np.concatenate([x, np.ones((m, 1))], axis=1)  # (m, L+1): [x_i, 1]
    gram = A.T @ (A * w[:, None])  # (L+1, L+1): Aᵀ W A
    ridge = np.zeros(L + 1)
    ridge[:L] = SKIP_RIDGE * np.trace(gram[:L, :L]) / L + np.finfo(np.float64).tiny
    solution = np.linalg.solve(gram + np.diag(ridge), A.T @ (y * w[:, None]))  # (L+1, H)
    return solution[:L].T, solution[L]  # V (H, L), v (H,)


def _softplus(x):
    return F.softplus(x) if isinstance(x, torch.Tensor) else np.logaddexp(0.0, x)


def split_head(out, n_targets: int, normal: bool):
    """Head output (..., k, C·P) → (mean (..., k, C), standard deviation (..., k, C) or None)."""
    if not normal:
        return out, None
    return out[..., :n_targets], _softplus(out[..., n_targets:]) + MIN_SIGMA


class _HeadLoss(nn.Module):
    """Loss on the head output (batch, k, C·P) against targets (batch, k, C) in RevIN-normalised
    units, or, with ``series_scale``, against (batch, k, 2C): those targets, then each window's
    RevIN σ_ctx. The loss is then that of the forecast mapped back to the series' (globally
    standardised) units, ŷ·σ_ctx + μ_ctx against y·σ_ctx + μ_ctx, as RevIN trains (Kim et al.,
    ICLR 2022, §3): a window weighs by its own scale, so a flat context (σ_ctx ≈ 0.003) followed
    by a jump no longer outweighs every other window of the batch."""

    def __init__(self, kind: str, n_targets: int, series_scale: bool = False):
        super().__init__()
        self.kind, self.n_targets, self.series_scale = kind, n_targets, series_scale

    def forward(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        mean, sigma = split_head(out, self.n_targets, self.kind == "normal")
        scale = 1.0
        if self.series_scale:
            target, scale = target[..., : self.n_targets], target[..., self.n_targets :]  # (batch, k, C) each
        error = (mean - target) * scale  # (batch, k, C): ŷ − y in the loss's units
        if self.kind == "mse":
            return (error**2).mean()
        if self.kind == "mae":
            return error.abs().mean()
        # Gaussian negative log-likelihood without the constant ½ log 2π: log σ + ½ ((y − μ)/σ)²; in
        # series units σ is σ·σ_ctx, which adds log σ_ctx (a constant: the same gradient)
        return (torch.log(sigma * scale) + 0.5 * ((target - mean) / sigma) ** 2).mean()


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


def _check_time_indexes(y, X) -> None:
    for name, data in (("y", y), ("X", X)):
        if isinstance(data, (pd.Series, pd.DataFrame)):
            check_index(data.index, name)


def _where(key: tuple) -> str:
    return "" if not key else f" (series {key[0] if len(key) == 1 else key})"


def _warn_short(keys: list, L: int, action: str) -> None:
    """Series with fewer than ``context_length`` observations are not forecast: say which."""
    if keys:
        names = ", ".join(str(k[0] if len(k) == 1 else k) for k in keys[:5]) + (", …" if len(keys) > 5 else "")
        warnings.warn(
            f"{len(keys)} series with fewer than context_length={L} observations ({names}): {action} leaves them out "
            f"until update brings each to {L}",
            UserWarning,
            stacklevel=4,
        )


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
        "time_unit": [None, str, Real, pd.Timedelta],  # checked against the index kind in fit
        "hold": [StrOptions(set(FORECAST_HOLDS)), None],
        "revin": ["boolean"],
        "revin_min_std": [Interval(Real, 0, None, closed="left")],
        "linear_skip": ["boolean", StrOptions({"lstsq"})],
        **SHARED_CONSTRAINTS,
        "loss": [StrOptions(set(LOSSES))],
        "loss_scale": [StrOptions(set(LOSS_SCALES))],
        "update_epochs": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        context_length=96,
        horizon=None,
        time_unit=None,
        hold=None,
        revin=True,
        revin_min_std=0.0,
        linear_skip=False,
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
        loss_scale="window",
        update_epochs=5,
        random_state=None,
        device="auto",
        devices=1,
        precision="32",
        verbose=False,
    ):
        self.context_length = context_length
        self.horizon = horizon
        self.time_unit = time_unit
        self.hold = hold
        self.revin = revin
        self.revin_min_std = revin_min_std
        self.linear_skip = linear_skip
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
        self.loss_scale = loss_scale
        self.update_epochs = update_epochs
        self.random_state = random_state
        self.device = device
        self.devices = devices
        self.precision = precision
        self.verbose = verbose
        super().__init__()
        self.set_tags(**{"requires-fh-in-fit": horizon is None, "capability:pred_int": loss == "normal"})
        self._y, self._X = None, None  # sktime keeps them only if the remember_data config is set

    # ------------------------------------------------------------------ public entry points

    def fit(self, y, X=None, fh=None):
        """Fit to y (and X); see sktime's ``BaseForecaster.fit``. The time indexes are checked
        first, so that a bad one is reported with its first offending time stamp."""
        _check_time_indexes(y, X)
        return super().fit(y, X=X, fh=fh)

    def update(self, y, X=None, update_params=True):
        """Update with new observations; see sktime's ``BaseForecaster.update``."""
        _check_time_indexes(y, X)
        return super().update(y, X=X, update_params=update_params)

    def _check_fh(self, fh, pred_int=False):
        """sktime's horizon check without its in-sample test: that test places absolute times on
        the grid of the cutoff's frequency, which an irregular series does not have. The forecaster
        makes the test itself (``_check_reach``), naming the first offending time, with an
        InSampleForecastError: a ValueError that is also the NotImplementedError sktime expects."""
        insample = {tag: self.get_tag(tag) for tag in ("capability:insample", "capability:pred_int:insample")}
        self.set_tags(**dict.fromkeys(insample, True))
        try:
            return super()._check_fh(fh, pred_int=pred_int)
        finally:
            self.set_tags(**insample)

    # ------------------------------------------------------------------ data → arrays

    def _series(self, y: pd.DataFrame, X: pd.DataFrame | None) -> list[tuple[tuple, pd.DataFrame]]:
        """Validated (instance key, rows) pairs; rows hold the target columns (in their order in
        fit) then the exogenous ones."""
        _check_numeric(y, "y")
        y = self._fitted_columns(y, self.target_names_, targets=True)
        if X is not None:
            _check_numeric(X, "X")
            if self.exog_names_:
                self._fitted_columns(X, self.exog_names_)
        out, x_split = [], {}
        for key, rows in _instances(y):  # time indexes already checked by fit / update
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
            n_targets, n_exog = rows.shape[1] - len(self.exog_names_), len(self.exog_names_)
            rows = rows.set_axis([f"y{i}" for i in range(n_targets)] + [f"x{j}" for j in range(n_exog)], axis=1)
            out.append((key, rows))
        return out

    def _fitted_columns(self, data: pd.DataFrame, names: list, targets: bool = False) -> pd.DataFrame:
        """A ValueError names the columns seen in fit that ``data`` lacks. With ``targets`` (y): also
        those not seen in fit, and → data with the columns in their order in fit (one column for one
        passes whatever its name: a renamed univariate series); X may hold more, read by name."""
        columns, what = list(data.columns), "y" if targets else "X"
        if columns == names or (targets and len(columns) == len(names) == 1):
            return data
        missing = [c for c in names if c not in columns]
        extra = [c for c in columns if c not in names] if targets else []
        if missing or extra:
            raise ValueError(
                f"{what} has columns {columns}, but {type(self).__name__} was fitted with {names}"
                + (f": missing {missing}" if missing else "") + (f"; not seen in fit {extra}" if extra else "")
            )
        return data[names] if targets else data

    def _normalise(self, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """rows (T, C + E) → (globally standardised targets (T, C), exogenous (T, E) or None)."""
        values = rows.to_numpy(np.float64)
        C = len(self.target_names_)
        y = (values[:, :C] - self.y_mean_) / self.y_scale_
        x = (values[:, C:] - self.x_mean_) / self.x_scale_ if self.exog_names_ else None
        return y, x

    def _keep_context(self, rows: pd.DataFrame) -> pd.DataFrame:
        """The context kept for forecasting: the last ``context_length`` rows, or, for a model
        trained on regular steps, the rows of the last ``context_length`` time units."""
        L = self.context_length
        if not getattr(self, "_span_context", False):
            return rows.iloc[-L:]
        t = time_ints(rows.index)
        return rows[t > t[-1] - L * self._unit]

    def _calendar_fh(self, fh):
        """fh on the fitted calendar frequency (sktime leaves fh.freq None once the cutoff has none)."""
        return fh if fh.freq is not None else ForecastingHorizon(fh.to_pandas(), is_relative=fh.is_relative, freq=self.time_unit_)

    def _check_calendar(self, index: pd.Index, key: tuple) -> None:
        """On a calendar frequency every step must be one period: a ValueError names the first gap."""
        gap = np.flatnonzero(index[1:] != index[:-1] + self.time_unit_)
        if len(gap):
            raise ValueError(
                f"y{_where(key)} leaves its {self.time_unit_.freqstr} calendar grid: {index[gap[0]]!r} is followed by "
                f"{index[gap[0] + 1]!r}; a calendar frequency is read one step per period, so the series must be regular "
                "(or give fixed-duration time stamps, e.g. days, to use the real gaps)"
            )

    def _dt(self, index: pd.Index) -> np.ndarray:
        """Time steps (T,) of one series in time units (all ones on a calendar grid or in "rows" mode)."""
        return np.ones(len(index)) if self._unit in (ROWS, "calendar") else steps(index, self._unit)

    def _windows(self, series: list[tuple[tuple, pd.DataFrame]]):
        """Every window of every series, in order of forecast origin time (so that the validation
        tail is the latest windows): → (inputs, targets) with inputs = (tokens (n, L+H, d_in),
        ahead (n, H)) plus dt (n, L+H) when some step is not one time unit, and targets the
        RevIN-normalised horizon (n, H, C), followed on the last axis by each window's RevIN σ
        (n, H, C) when ``loss_scale="series"`` (what :class:`_HeadLoss` reads)."""
        L, H = self.context_length, self.horizon_
        parts, origins = [], []
        for _key, rows in series:
            if len(rows) < L + H:
                continue
            y, x = self._normalise(rows)
            win = sliding_windows(y, L + H)  # (n, L+H, C)
            mu, sigma = instance_stats(win[:, :L], self.revin, self.revin_min_std)  # (n, 1, C)
            win = (win - mu) / sigma
            exog = None if x is None else sliding_windows(x, L + H)  # (n, L+H, E)
            dt = sliding_windows(self._dt(rows.index)[:, None], L + H)[..., 0]  # (n, L+H)
            dt[:, 0] = 1.0  # a window starts at its first observation
            ahead = np.cumsum(dt[:, L:], axis=1)  # (n, H): (t_{L+j} − t_{L−1}) / unit
            target = win[:, L:]  # (n, H, C)
            if self.loss_scale == "series":
                target = np.concatenate([target, np.broadcast_to(sigma, target.shape)], axis=2)  # (n, H, 2C)
            parts.append((tokens(win[:, :L], H, exog), ahead, dt, target))
            origins.append(time_ints(rows.index)[L - 1 : len(rows) - H])
        if not parts:
            return None, None
        order = np.argsort(np.concatenate(origins), kind="stable")
        tok, ahead, dt, targets = (np.concatenate(p)[order] for p in zip(*parts))
        inputs = (tok, ahead) if np.all(dt == 1.0) else (tok, ahead, dt)
        return inputs, targets

    # ------------------------------------------------------------------ sktime interface

    def _fit(self, y, X=None, fh=None):
        """Fit the global network on every window of every series in y (and X).

        Writes to self: ``module_``, ``history_``, ``horizon_``, ``hold_``, ``time_unit_``, ``target_names_``,
        ``exog_names_``, ``index_names_``, ``y_mean_``, ``y_scale_``, ``x_mean_``, ``x_scale_``, ``context_``
        (and the rows of series shorter than ``context_length``, kept for ``update``).
        """
        validate_parameter_constraints(
            self._parameter_constraints, self.get_params(deep=False), caller_name=type(self).__name__
        )
        check_even_state(self)
        if self.hold == "foh" and self._layer != "s4d":
            raise ValueError(
                f"hold='foh' (the exact first-order hold) is implemented for the diagonal S4D layer only: use "
                f"S4DForecaster, or hold='linear' (the interval mean, its approximation) with {type(self).__name__}"
            )
        resolve_device(self.device, self.devices)
        self.target_names_ = list(y.columns)
        self.index_names_ = list(y.index.names)
        self.exog_names_ = [] if X is None else list(X.columns)
        series = self._series(y, X)
        indexes = [rows.index for _, rows in series]
        if calendar_grid(indexes[0]):
            if self.time_unit not in (None, ROWS):
                raise ValueError(
                    f"time_unit={self.time_unit!r} needs fixed-duration time stamps; this index has the calendar "
                    f"frequency {indexes[0].freq or pd.infer_freq(indexes[0])!r}, read one step per period"
                )
            self._unit = "calendar"
            self.time_unit_ = indexes[0].freq or pd.tseries.frequencies.to_offset(pd.infer_freq(indexes[0]))
            for key, rows in series:
                self._check_calendar(rows.index, key)
        else:
            self._unit = resolve_unit(self.time_unit, indexes)
            self._spacing = resolve_unit(None, indexes)  # median gap: places relative fh in "rows" mode
            self.time_unit_ = unit_label(self._unit, indexes[0])
        self.horizon_ = self._resolve_horizon(fh, indexes)
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
        regular = len(inputs) == 2  # every training step is one time unit
        if self.linear_skip and not regular:
            raise ValueError(
                f"linear_skip={self.linear_skip!r} needs regularly spaced observations (every step one time unit): it maps the "
                "context row by row; this y has irregular steps, so fit with linear_skip=False"
            )
        # irregular steps: the linear hold by default (measured better; docs/time.md)
        self.hold_ = self.hold if self.hold is not None else ("constant" if regular else "linear")
        n_params = 2 if self.loss == "normal" else 1
        d_input = C + 1 + len(self.exog_names_)
        lstsq = self.linear_skip == "lstsq"  # a fitted start: early stopping may keep it

        def build() -> _ForecastNet:
            net = _ForecastNet(
                build_backbone(self, d_input, None, hold=self.hold_), L, H, C * n_params, C if self.linear_skip else None
            )
            if lstsq:
                net.start_from_skip(*self._skip_lstsq(inputs[0], targets))
            return net

        self.module_, self.history_ = fit_network(self, build, inputs, targets, self._head_loss(), keep_start=lstsq)
        # a model trained on regular steps keeps the time span of its training context (exactly
        # context_length rows at the training rate), so that a history sampled at another rate
        # covers the same span (zero-shot resampling); otherwise the last context_length rows
        self._span_context = regular and self._unit not in (ROWS, "calendar")
        self.context_ = {key: self._keep_context(rows) for key, rows in series if len(rows) >= L}
        self._short = {key: rows for key, rows in series if len(rows) < L}  # kept until update completes them
        _warn_short(list(self._short), L, "predict")
        return self

    def _skip_lstsq(self, tok: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """V (H, L), v (H,) of ``linear_skip="lstsq"``: :func:`skip_lstsq` on the training windows
        (the validation tail, the latest ``validation_fraction`` of them, left out), each target's
        context a row; with ``loss_scale="series"`` a row weighs σ_ctx², as in the loss."""
        L, C = self.context_length, len(self.target_names_)
        n = split_validation(len(tok), self.validation_fraction)
        context = tok[:n, :L, :C].transpose(0, 2, 1).reshape(n * C, L)  # (n·C, L): ỹ_c
        future = targets[:n, :, :C].transpose(0, 2, 1).reshape(n * C, -1)  # (n·C, H)
        weight = None
        if self.loss_scale == "series":
            weight = targets[:n, 0, C:].reshape(n * C) ** 2  # (n·C,): σ_ctx²
        return skip_lstsq(context, future, weight)

    def _head_loss(self) -> _HeadLoss:
        """The training loss of ``loss`` in the units of ``loss_scale`` (fit and update alike)."""
        return _HeadLoss(self.loss, len(self.target_names_), self.loss_scale == "series")

    def _resolve_horizon(self, fh, indexes: list[pd.Index]) -> int:
        """``horizon``, or the farthest step of the fh given to fit (in time units, rounded up)."""
        if fh is None:
            return self.horizon
        reach, _ = self._queries(self.cutoff[-1:], fh, self.horizon)  # as predict reads fh
        return self.horizon if self.horizon is not None else int(np.ceil(reach.max() - 1e-9))

    def _check_reach(self, ahead: np.ndarray, horizon: int | None, times: pd.Index) -> None:
        """Forecast times must come after the last observation and no farther than the horizon."""
        if ahead.min() <= 0:
            first = times[int(np.argmax(ahead <= 0))]
            raise InSampleForecastError(
                f"{type(self).__name__} forecasts only after the last observation: forecast time {first!r} is not "
                "after it (in-sample forecasts are not supported)"
            )
        if horizon is not None and ahead.max() > horizon + 1e-9:
            far = ahead.max()
            raise ValueError(
                f"the forecasting horizon reaches step {far:g}, but {type(self).__name__} was "
                f"{'fitted' if hasattr(self, 'horizon_') else 'set up'} with horizon={horizon}; refit with "
                f"horizon >= {int(np.ceil(far - 1e-9))}"
            )

    def _update(self, y, X=None, update_params=True):
        """Move each series' context to the end of the new data; fine-tune on it if update_params.

        Writes to self: ``context_`` (per series, what :meth:`_keep_context` keeps; a series still
        shorter than ``context_length`` is kept aside until it reaches it); with
        ``update_params`` and at least one full window of new data, the weights of ``module_``
        and ``history_`` (extended by the fine-tuning epochs).
        """
        L = self.context_length
        short = getattr(self, "_short", {})
        merged = []
        for key, rows in self._series(y, X):
            old = self.context_.get(key, short.get(key))
            if old is not None:  # new values replace the old at the same times; later old rows stay
                rows = pd.concat([old[~old.index.isin(rows.index)], rows]).sort_index(kind="stable")
            if self._unit == "calendar":
                self._check_calendar(rows.index, key)
            merged.append((key, rows))
        if update_params:
            inputs, targets = self._windows(merged)
            if inputs is not None:
                self.module_, history = fit_network(
                    self,
                    None,
                    inputs,
                    targets,
                    self._head_loss(),
                    module=self.module_,
                    max_epochs=self.update_epochs,
                    validation_fraction=0.0,
                )
                self.history_ = self.history_ + history
        for key, rows in merged:
            if len(rows) >= L or key in self.context_:
                self.context_[key] = self._keep_context(rows)
                short.pop(key, None)
            else:
                short[key] = rows
        self._short = short
        _warn_short(list(short), L, "predict")
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

    def predict_windows(self, y_context, X_window=None) -> tuple[np.ndarray, np.ndarray]:
        """Forecast many regular windows at once, outside sktime's one-cutoff-per-series model
        (backtests over every window of a test split, as in the ETT protocols).

        Parameters
        ----------
        y_context : array of shape (n, context_length, n_targets)
            The last ``context_length`` observations before each forecast, in the units of y.
        X_window : array of shape (n, context_length + horizon_, n_exog) or None
            Exogenous values over each window (past and future); required iff fitted with X.

        Returns
        -------
        mean, std : ndarrays of shape (n, horizon_, n_targets)
            Forecasts of the steps 1 … horizon_ (std is NaN without a normal head).
        """
        self.check_is_fitted()
        L, H, C = self.context_length, self.horizon_, len(self.target_names_)
        y_context = np.asarray(y_context, dtype=np.float64)
        if y_context.ndim != 3 or y_context.shape[1:] != (L, C):
            raise ValueError(f"y_context must have shape (n, {L}, {C}), got {y_context.shape}")
        _check_finite(y_context.reshape(-1, C), pd.RangeIndex(y_context.shape[0] * L), self.target_names_, "y_context", ())
        if bool(self.exog_names_) != (X_window is not None):
            raise ValueError(f"X_window is required exactly when the model was fitted with X (exogenous: {self.exog_names_})")
        mu, sd = instance_stats((y_context - self.y_mean_) / self.y_scale_, self.revin, self.revin_min_std)  # (n, 1, C)
        exog = None
        if X_window is not None:
            X_window = np.asarray(X_window, dtype=np.float64)
            if X_window.shape[1:] != (L + H, len(self.exog_names_)):
                raise ValueError(f"X_window must have shape (n, {L + H}, {len(self.exog_names_)}), got {X_window.shape}")
            exog = (X_window - self.x_mean_) / self.x_scale_
        ctx = ((y_context - self.y_mean_) / self.y_scale_ - mu) / sd
        ahead = np.tile(np.arange(1.0, H + 1), (len(ctx), 1))  # (n, H)
        out = predict_batches(self.module_, tokens(ctx, H, exog), ahead)  # (n, H, C·P)
        mean, sigma = split_head(out, C, self.loss == "normal")
        mean = (mean * sd + mu) * self.y_scale_ + self.y_mean_
        sigma = sigma * sd * self.y_scale_ if sigma is not None else np.full_like(mean, np.nan)
        return mean, sigma

    def _check_probabilistic(self) -> None:
        if self.loss != "normal":
            raise ValueError(
                f"intervals, quantiles and variances need loss='normal' (a trained Gaussian head); "
                f"this {type(self).__name__} was fitted with loss={self.loss!r}"
            )

    # ------------------------------------------------------------------ forecasting

    def _queries(self, last: pd.Index, fh, horizon: int | None) -> tuple[np.ndarray, pd.Index]:
        """The forecast times of one series for fh, and how far each lies after its last
        observation ``last``, in time units (in "rows" mode, the rank of each absolute time);
        checked against ``horizon`` (None: any)."""
        if self._unit == "calendar":
            fh = self._calendar_fh(fh)
            ahead = (fh if fh.is_relative else fh.to_relative(last)).to_numpy().astype(np.float64)
            times = fh.to_absolute_index(last)
        elif fh.is_relative:
            ahead = fh.to_numpy().astype(np.float64)
            times = shift(last, ahead, self._spacing if self._unit == ROWS else self._unit)
        else:
            times = fh.to_absolute_index(last)
            ahead = (time_ints(times) - time_ints(last)[0]) / (self._spacing if self._unit == ROWS else self._unit)
            if self._unit == ROWS and ahead.min() > 0:
                ahead = np.arange(1.0, len(times) + 1)  # the j-th time asked for is the j-th next row
        self._check_reach(ahead, horizon, times)
        return ahead, times

    def _plan(self, key: tuple, ctx: pd.DataFrame, fh, X, x_split: dict) -> dict:
        """What the network reads to forecast one series: its normalised context, the mask tokens
        (every whole step up to the farthest query when the context and the queries lie on the
        unit grid, else one token per query at its own time), their times and steps."""
        last = ctx.index[-1:]
        ahead, times = self._queries(last, fh, self.horizon_)
        dt_ctx = self._dt(ctx.index)
        dt_ctx[0] = np.median(dt_ctx[1:]) if getattr(self, "_span_context", False) and len(dt_ctx) > 1 else 1.0
        y, x = self._normalise(ctx)  # (L, C), (L, E)
        on_grid = np.all(dt_ctx == 1.0) and np.all(np.abs(ahead - np.round(ahead)) < 1e-9)
        if on_grid:
            k = int(round(ahead.max()))
            token_ahead, dt, select = np.arange(1.0, k + 1), None, np.round(ahead).astype(np.int64) - 1
            if self._unit == "calendar":
                token_times = ForecastingHorizon(np.arange(1, k + 1), is_relative=True, freq=self.time_unit_).to_absolute_index(last)
            elif self._unit == ROWS and not fh.is_relative:
                token_times = times
            else:
                token_times = shift(last, token_ahead, self._spacing if self._unit == ROWS else self._unit)
        else:  # one mask token per query, each at its own time: the steps are the gaps between them
            token_ahead, select, token_times = ahead, np.arange(len(ahead)), times
            dt = np.concatenate([dt_ctx, np.diff(ahead, prepend=0.0)])  # (L + Q,)
        if x is not None:
            last_x = ctx.iloc[-1, len(self.target_names_) :].to_numpy(np.float64)  # (E,) unnormalised
            x = np.concatenate([x, self._future_exog(_exog_rows(X, key, x_split), key, last_x, token_times, times)])
        return {"key": key, "times": times, "y": y, "x": x, "ahead": token_ahead, "dt": dt, "select": select}

    def _forecast(self, fh, X):
        """→ (index, mean (rows, C), standard deviation (rows, C); NaN without a normal head), rows = series × fh."""
        C = len(self.target_names_)
        if self.exog_names_ and X is None:
            raise ValueError(
                f"{type(self).__name__} was fitted with exogenous X ({self.exog_names_}); "
                "pass X with their future values to predict"
            )
        if self.exog_names_:
            check_index(X.index, "X")
            self._fitted_columns(X, self.exog_names_)
        _warn_short(list(getattr(self, "_short", {})), self.context_length, "this forecast")
        x_split: dict = {}
        plans = [self._plan(key, ctx, fh, X, x_split) for key, ctx in self.context_.items()]
        results = {}
        # one forward pass per group of series with the same number of mask tokens and kind of steps
        signature_of = lambda p: (len(p["y"]), len(p["ahead"]), p["dt"] is None)  # noqa: E731
        for signature in dict.fromkeys(map(signature_of, plans)):
            group = [p for p in plans if signature_of(p) == signature]
            ctx = np.stack([p["y"] for p in group])  # (n, L, C)
            mu, sd = instance_stats(ctx, self.revin, self.revin_min_std)  # (n, 1, C)
            exog = np.stack([p["x"] for p in group]) if self.exog_names_ else None  # (n, L+k, E)
            inputs = (tokens((ctx - mu) / sd, signature[1], exog), np.stack([p["ahead"] for p in group]))
            if not signature[2]:
                inputs += (np.stack([p["dt"] for p in group]),)
            out = predict_batches(self.module_, *inputs)  # (n, k, C·P)
            mean, sigma = split_head(out, C, self.loss == "normal")
            mean = (mean * sd + mu) * self.y_scale_ + self.y_mean_  # (n, k, C)
            sigma = sigma * sd * self.y_scale_ if sigma is not None else np.full_like(mean, np.nan)
            for i, p in enumerate(group):
                results[p["key"]] = (p["times"], mean[i, p["select"]], sigma[i, p["select"]])
        keys = [key for key in self.context_ if key in results]  # in the order of the series in fit
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
        heads, RevIN on and off, both loss scales, a horizon fixed in advance or taken from fh, the
        feed-forward and the linear skip."""
        small = {"d_model": 8, "n_layers": 1, "d_state": 4, "batch_size": 64, "random_state": 0}
        return [
            {**small, "context_length": 6, "max_epochs": 2},
            {**small, "context_length": 4, "horizon": 5, "loss": "mse", "loss_scale": "series", "revin": False, "ff_expand": 1, "linear_skip": "lstsq", "max_epochs": 1, "validation_fraction": 0.0},
        ]


_PARAMS_DOC = f"""
    Parameters
    ----------
    context_length : int, default=96
        Observed steps L the network reads before each forecast (the lookback window).
    horizon : int or None, default=None
        Steps ahead H (in time units) the network is trained to answer; any subset of 1…H, or
        any time up to H units after the last observation, can be predicted. None takes the
        farthest step of the ``fh`` passed to ``fit`` (which is then required).
    time_unit : str, pandas.Timedelta, float or None, default=None
        The time unit τ_u: the step between observations enters the SSM discretization as
        dt = gap / τ_u, and relative fh counts in τ_u. None uses the median spacing of the
        training index (an hourly series: one hour, so dt = 1 everywhere). A duration such as
        "30min" for a DatetimeIndex, a number for an integer or period index. "rows" ignores
        the time stamps (dt = 1; the j-th absolute forecast time asked for is the j-th next row).
    hold : {{"constant", "linear", "foh"}} or None, default=None
        How each SSM layer reads its input over the gap before a token (docs/time.md).
        "constant": the token's own value over the whole gap (zero-order hold). "linear": the
        mean of the linear interpolation between the previous token and this one, which makes the
        state far less dependent on the sampling rate (a model fitted on hourly data forecasts
        better from a 30-minute or 2-hour history). "foh" (S4DForecaster only): that straight
        line integrated exactly by each mode (first-order hold), of which "linear" is the
        slow-mode approximation. None: "linear" when the training steps are irregular, else
        "constant" (a regular series is then fitted exactly as without time stamps).
    revin : bool, default=True
        Normalise each window by the mean and standard deviation of its own context (RevIN).
        False reads the level too: for stationary series; on drifting ones a validation period
        next to the training data overstates it (docs/estimators.md).
    revin_min_std : float, default=0.0
        Floor of a window's RevIN standard deviation, in units of the training series' standard
        deviation: a window with a flat context (a stuck sensor) is then scaled by at most
        1 / revin_min_std instead of 1 / √1e-5 ≈ 316. 0 keeps plain RevIN.
    linear_skip : bool or "lstsq", default=False
        Add to each target's forecast a linear map of its own RevIN-normalised context, one
        weight per (step ahead, context row) shared by the targets (NLinear, Zeng et al., AAAI
        2023), beside the SSM's. True: it starts at zero; "lstsq": it starts at the least-squares
        fit of the training windows (the validation tail left out; weighted as the loss weighs
        windows) and the SSM's output layers at zero, so that training starts from that linear
        model (NLinear fitted in closed form) and the network learns what it leaves; with
        validation, that start is scored too and kept if no epoch beats it (``history_``).
        Needs regularly spaced observations, and forecasts from a history at the training rate.
{NETWORK_DOC}    loss : {{"normal", "mse", "mae"}}, default="normal"
        "normal" trains a Gaussian head by negative log-likelihood: point forecasts are its mean,
        and ``predict_interval``, ``predict_quantiles`` and ``predict_var`` are available.
        "mse" and "mae" train point forecasts only.
    loss_scale : {{"window", "series"}}, default="window"
        Units in which the loss compares forecast and truth (with ``revin``; the two are the same
        without it). "window": each window's RevIN-normalised values, so that every window weighs
        alike whatever its scale. "series": the forecast mapped back to the series' standardised
        units, as RevIN trains (Kim et al., ICLR 2022) and as the test metric scores: a window
        weighs by its context's standard deviation, so a flat context followed by a jump no
        longer dominates. With "normal" the two differ by a constant (the same gradient); the
        choice matters for "mse" and "mae".
    update_epochs : int, default=5
        Fine-tuning epochs of ``update(..., update_params=True)`` on the windows of the new data.
{RUNTIME_DOC}
    Attributes
    ----------
    module_ : torch.nn.Module
        The fitted network (Backbone read at the masked horizon steps), in eval mode.
    history_ : list of dict
        Per epoch: ``epoch``, ``train_loss``, ``val_loss`` (None without validation), ``lr``;
        fine-tuning epochs of ``update`` are appended. With ``linear_skip="lstsq"`` and validation
        the first entry, epoch −1, scores the starting (closed-form linear) model, which is kept if
        no epoch beats it.
    horizon_ : int
        The horizon H the network answers, in time units.
    hold_ : {{"constant", "linear", "foh"}}
        The hold in use (``hold``, or the one chosen for None).
    time_unit_ : pandas.Timedelta, float, str or pandas offset
        The time unit in use: a Timedelta (datetime index), a number (integer or period index),
        "rows", or the calendar frequency of a monthly, weekly, … index (read one step per period).
    context_ : dict
        The last ``context_length`` rows (targets then exogenous columns) of every series with at
        least that many, by series key (``()`` for a single series): all that ``predict`` reads.
        For a model fitted on regular steps, the rows of the last ``context_length`` time units
        (the same at the training rate; more rows for a history sampled finer).
    target_names_, exog_names_ : list
        Columns of y and of X seen in ``fit``.
    index_names_ : list
        Index level names of y seen in ``fit`` (the index of the forecasts).
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
