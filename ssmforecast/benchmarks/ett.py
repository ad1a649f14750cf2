"""The ETT benchmark: S4 / S4D / Mamba forecasters beside the naive baselines and published numbers.

``python -m ssmforecast.benchmarks.ett --quick --data-dir ../shared/data/ETT`` (see ``docs/benchmark.md``).

Everything follows the protocol of :mod:`ssmforecast.datasets.protocol` (Informer's borders,
reused by the LTSF papers), with the forecasters used through their public API:

1. **Scale.** :func:`~ssmforecast.datasets.split` z-scores every column with the mean and
   standard deviation of the train rows; the models see and predict the scaled data (their own
   global standardisation and per-window RevIN sit on top and are undone on output).
2. **Fit** on the train segment, with the val segment as the early-stopping set and nothing else
   (:func:`fit_forecaster`). ``y`` is a two-series panel, ``"train"`` = rows [0, 12·month) and
   ``"val"`` = rows [12·month − L, 16·month), hourly ``DatetimeIndex``. The forecaster orders the
   windows of a panel by forecast origin, and every train window's origin precedes every val
   window's, so a ``validation_fraction`` set from the window counts makes the validation tail
   exactly the protocol's val windows (2881 − H for ETTh) and the training set exactly the
   protocol's train windows (8640 − L − H + 1): no window straddles the border. The only val
   information the training side sees is the forecaster's internal mean/std of ``y``, taken over
   both series (an affine map undone on output). Test rows (from 16·month on) are never passed.
3. **Test** on every stride-1 window of the test segment (2881 − H for ETTh, no ``drop_last``),
   in one batched :meth:`predict_windows` call; MSE / MAE on the scaled data over windows × steps ×
   scored channels. Features "S": OT → OT; "M": 7 → 7, all scored; "MS": the model forecasts all
   7 channels jointly and only OT is scored (Informer's MS trains on OT's loss alone).

The naive baselines (repeat-last, seasonal naive with p = one day) come from
:func:`~ssmforecast.datasets.evaluate_naive`, the published numbers from
:func:`~ssmforecast.datasets.published` (sources and citations in ``SOURCES``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..datasets import (
    DEFAULT_LOOKBACK,
    FEATURES,
    PROTOCOLS,
    SOURCES,
    Splits,
    borders,
    evaluate_naive,
    horizons,
    load_ett,
    mse_mae,
    n_windows,
    published,
    seasonal_period,
    split,
    windows,
)
from ..estimators import MambaForecaster, S4DForecaster, S4Forecaster

#: Our models, by CLI name.
MODELS = {"s4": S4Forecaster, "s4d": S4DForecaster, "mamba": MambaForecaster}
LABELS = {"s4": "S4", "s4d": "S4D", "mamba": "Mamba"}
#: Files with published numbers under both protocols (ETTm* have no verified copy, see the notes).
DATA = ("ETTh1", "ETTh2")
#: z of the central 80% interval of a normal: mean ± z·std, z = Φ⁻¹(0.9).
INTERVAL_Z = 1.2816

#: The default ("full") configuration of every model. Loss chosen on ETTh1 S, H = 24 by the
#: validation MSE only (docs/benchmark.md); early stopping on the val split after ``patience``
#: epochs without improvement of the validation loss, best epoch restored (0: at the first epoch
#: that does not improve it). Features M and MS override the patience (:data:`FEATURE_CONFIG`).
FULL_CONFIG = {
    "d_model": 64,
    "n_layers": 2,
    "d_state": None,
    "dropout": 0.0,
    "weight_decay": 0.01,
    "max_epochs": 10,
    "patience": 0,
    "batch_size": 64,
    "lr": 3e-3,
    "loss": "normal",
    "ensemble": 1,
}

#: Configuration keys of the benchmark itself, not of the forecaster: ``ensemble`` = K, the number
#: of fits (seeds ``seed`` … ``seed + K − 1``) whose forecasts are pooled (:func:`mixture`).
BENCHMARK_KEYS = ("ensemble",)

#: Full-mode settings by features, over :data:`FULL_CONFIG`, chosen on the validation losses of
#: every epoch (``val_losses`` in run.json): on S (ETTh1 and ETTh2, all horizons) each fit's best
#: epoch was followed by a worse one, so patience 0 keeps exactly the epochs patience 3 kept, at
#: half the epochs; on M the ETTh2 validation loss rose and fell again (best after a worse epoch),
#: so M and MS keep patience 3.
FEATURE_CONFIG = {"S": {}, "M": {"patience": 3}, "MS": {"patience": 3}}

#: ``--quick``: one setting, two horizons, small models, few epochs; about 2 minutes on 2 CPU cores.
QUICK = {"data": ["ETTh1"], "protocol": ["informer"], "features": ["S"], "horizons": [24, 168], "models": ["s4d", "mamba"]}
_QUICK_BASE = {**FULL_CONFIG, "patience": 3, "batch_size": 128}  # patience as before: at most 3 epochs anyway
QUICK_CONFIG = {
    "s4": {**_QUICK_BASE, "d_model": 32, "n_layers": 2, "max_epochs": 3},
    "s4d": {**_QUICK_BASE, "d_model": 32, "n_layers": 2, "max_epochs": 3},
    "mamba": {**_QUICK_BASE, "d_model": 16, "n_layers": 1, "max_epochs": 1},
}

PROTOCOL_NAMES = {"informer": "Informer", "ltsf": "LTSF"}
#: ``--channels``: M as one model over all channels, or one shared univariate model per channel.
CHANNELS = ("mixed", "independent")
#: The default ``--channels`` by features. M: independent, chosen on the validation MSE of full
#: runs (ETTh1 and ETTh2, LTSF protocol, all 4 horizons: lower than mixed at each of the 8; see
#: benchmarks/results/README.md). S has one channel; MS forecasts OT from all 7 jointly.
DEFAULT_CHANNELS = {"S": "mixed", "M": "independent", "MS": "mixed"}

#: Published columns of the Markdown table: (source key in SOURCES, model name in published()).
PUBLISHED_COLUMNS = (("informer", "Informer"), ("s4", "S4"), ("dlinear", "DLinear"), ("patchtst", "PatchTST/42"))

#: The benchmark's accuracy targets (docs/benchmark.md, "Reading the output"), per (protocol, features): the
#: table columns whose MSE our model chosen on validation must beat ("<") or be at or below ("≤":
#: ours rounded to the three decimals the papers print), at every horizon.
TARGETS = {
    ("informer", "S"): (("S4 (paper)", "<"), ("repeat-last", "<")),
    ("ltsf", "M"): (("DLinear (paper)", "≤"),),
}

RESULT_COLUMNS = (
    "data", "protocol", "features", "horizon", "kind", "method", "source", "lookback", "mse", "mae", "n_windows",
    "val_mse", "coverage80", "train_s", "epochs", "best_epoch", "windows_per_s", "n_params", "drop_last", "verified", "note",
)  # fmt: skip


@dataclass
class FitRecord:
    """What one :func:`fit_forecaster` call gave the forecaster and what it did.

    Attributes
    ----------
    first_row, last_row : int
        File rows (0-based) of the earliest and latest row passed to ``fit``; ``last_row`` is
        16·month − 1 (11519 for ETTh): no test target is ever seen.
    n_train_windows, n_val_windows : int
        Windows the forecaster trained on and validated on (8640 − L − H + 1 and 2881 − H for ETTh).
    validation_fraction : float
        The fraction that makes the validation tail exactly the val windows.
    seconds : float
        Wall-clock time of ``fit``.
    epochs : int
        Epochs run (early stopping may end before ``max_epochs``).
    best_epoch : int
        The epoch (0-based) with the lowest validation loss, whose weights were kept; −1 when
        the starting weights were (``linear_skip="lstsq"``: the closed-form linear model).
    val_losses : list of float
        The validation loss after each epoch (the training loss, e.g. the normal negative
        log-likelihood), so that the effect of another patience can be read off a run; with
        ``linear_skip="lstsq"`` the starting weights' first.
    members : list of FitRecord
        Only for an ensemble (:func:`fit_ensemble`, K > 1): each fit's own record, seeds in order.
        The ensemble's record then holds the total ``seconds`` and ``epochs`` of its K fits, the
        latest ``best_epoch`` among them and no ``val_losses``.
    """

    first_row: int
    last_row: int
    n_train_windows: int
    n_val_windows: int
    validation_fraction: float
    seconds: float
    epochs: int
    best_epoch: int
    val_losses: list = field(default_factory=list)
    members: list = field(default_factory=list)


@dataclass
class BenchmarkRun:
    """What :func:`main` returns.

    Attributes
    ----------
    results : pandas.DataFrame
        One row per (setting, horizon, method), columns :data:`RESULT_COLUMNS`; also ``results.csv``.
    fits : dict
        (data, protocol, features, horizon, model) → :class:`FitRecord`.
    predictions : dict
        (data, protocol, features, horizon, model) → (mean, std), each (n_windows, H, C) over the
        scored channels, in window order of :func:`~ssmforecast.datasets.windows` on the test
        segment; filled only with ``main(..., keep_predictions=True)``.
    out : pathlib.Path
        The output folder.
    info : dict
        The contents of ``run.json``.
    """

    results: pd.DataFrame
    fits: dict = field(default_factory=dict)
    predictions: dict = field(default_factory=dict)
    out: Path | None = None
    info: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------- fit / predict


def protocol_panel(splits: Splits, index: pd.DatetimeIndex) -> pd.DataFrame:
    """The train and val segments as a two-series panel for ``fit``: rows (T_train + T_val, F).

    Level 0 ``segment`` ∈ {"train", "val"}, level 1 the file's time stamps (``index`` sliced by
    ``splits.borders``); columns ``splits.columns`` (all are targets of the model).
    """
    cut, columns = splits.borders, list(splits.columns)
    train = pd.DataFrame(splits.train, index=index[slice(*cut.train)], columns=columns)  # (12·month, F)
    val = pd.DataFrame(splits.val, index=index[slice(*cut.val)], columns=columns)  # (4·month + L, F)
    return pd.concat({"train": train, "val": val}, names=["segment", index.name or "time"])


def make_forecaster(model: str, config: dict, lookback: int, horizon: int, seed: int, device: str):
    """An unfitted forecaster of ``model`` ("s4", "s4d", "mamba") with ``config`` (see :data:`FULL_CONFIG`)."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(map(repr, MODELS))}; got {model!r}")
    params = {k: v for k, v in config.items() if k not in BENCHMARK_KEYS}
    return MODELS[model](context_length=lookback, horizon=horizon, random_state=seed, device=device, **params)


def make_ensemble(model: str, config: dict, lookback: int, horizon: int, seed: int, device: str) -> list:
    """The K = ``config["ensemble"]`` (default 1) unfitted forecasters of one model, seeds ``seed``,
    ``seed + 1``, … ``seed + K − 1``: the same configuration, other initialisations and batch orders."""
    K = config.get("ensemble", 1)
    if not isinstance(K, (int, np.integer)) or isinstance(K, bool) or K < 1:
        raise ValueError(f"ensemble must be a positive integer (the number of fits); got {K!r}")
    return [make_forecaster(model, config, lookback, horizon, seed + k, device) for k in range(K)]


def mixture(means: np.ndarray, stds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pool K forecasts as the equal-weight mixture of their normals N(μ_k, σ_k²).

    Mean μ̄ = (1/K) Σ_k μ_k; variance by the law of total variance, (1/K) Σ_k σ_k² +
    (1/K) Σ_k (μ_k − μ̄)²; its std is that of the mixture, whose 80% interval the tables read
    as μ̄ ± 1.2816·std (a normal approximation). NaN stds (no normal head) give a NaN std.

    Parameters
    ----------
    means, stds : ndarray of shape (K, n, H, C)

    Returns
    -------
    mean, std : ndarray of shape (n, H, C)
    """
    mean = means.mean(axis=0)  # (n, H, C)
    var = (stds**2).mean(axis=0) + ((means - mean) ** 2).mean(axis=0)  # (n, H, C)
    return mean, np.sqrt(var)


def channel_panel(panel: pd.DataFrame) -> pd.DataFrame:
    """A multivariate protocol panel as univariate series, one per (segment, channel): rows
    (F · (T_train + T_val), 1), levels ``segment``, ``channel``, time; column ``value``. One
    forecaster fitted on it is *channel-independent*: the same weights for every channel, each
    window seeing one channel only (as DLinear's "individual=False" and PatchTST do)."""
    long = panel.stack().rename("value")  # (segment, time, channel)
    long.index = long.index.set_names("channel", level=-1)
    long = long.reorder_levels([0, 2, 1]).sort_index(level=[0, 1], sort_remaining=False, kind="stable")
    return long.to_frame()


def _independent(channels: str, splits: Splits) -> bool:
    """Whether channel-independent training applies: ``channels="independent"`` on features M."""
    if channels not in CHANNELS:
        raise ValueError(f"channels must be one of {', '.join(map(repr, CHANNELS))}; got {channels!r}")
    if channels == "independent" and splits.features == "MS":
        raise ValueError("channels='independent' needs features M (MS forecasts OT from all 7 columns)")
    return channels == "independent" and len(splits.columns) > 1


def fit_forecaster(forecaster, splits: Splits, index: pd.DatetimeIndex, horizon: int, channels: str = "mixed") -> FitRecord:
    """Fit on the protocol's train windows, early-stopping on its val windows; never a test row.

    The panel of :func:`protocol_panel` is passed to ``fit`` with ``validation_fraction`` =
    (n_val − ½) / (n_train + n_val): the loop holds out the last ⌈fraction · n⌉ = n_val windows
    in forecast-origin order, which are exactly the val segment's windows (module docstring).
    With ``channels="independent"`` (features M) the panel is :func:`channel_panel`'s, F times as
    many windows of one channel each; the val windows are again the last F · n_val by origin.
    """
    L = splits.lookback
    F = len(splits.columns) if _independent(channels, splits) else 1
    n_train = F * n_windows(len(splits.train), L, horizon)
    n_val = F * n_windows(len(splits.val), L, horizon)
    problem = _windows_problem(splits.name, L, horizon)  # else the loop would train on the val windows, unvalidated
    if problem:
        raise ValueError(problem)
    # the loop holds out ⌈fraction · n⌉ windows; n_val / n itself can round up to n_val + 1
    # (e.g. L = 96, H = 48: 2834 instead of 2833), so aim half a window lower
    fraction = (n_val - 0.5) / (n_train + n_val)
    forecaster.set_params(context_length=L, horizon=horizon, validation_fraction=fraction)
    y = protocol_panel(splits, index)
    if F > 1:
        y = channel_panel(y)
    start = time.perf_counter()
    forecaster.fit(y)
    seconds = time.perf_counter() - start
    losses = [h["val_loss"] for h in forecaster.history_]
    trained = [h for h in forecaster.history_ if h["epoch"] >= 0]  # not the scored start (epoch −1, lstsq)
    return FitRecord(
        first_row=splits.borders.train[0],
        last_row=splits.borders.val[1] - 1,
        n_train_windows=n_train,
        n_val_windows=n_val,
        validation_fraction=fraction,
        seconds=seconds,
        epochs=len(trained),
        best_epoch=int(forecaster.history_[int(np.argmin(losses))]["epoch"]),
        val_losses=[float(v) for v in losses],
    )


def _windows_problem(name: str, L: int, H: int) -> str | None:
    """Why the protocol's splits of ``name`` cannot train at lookback L and horizon H (fewer than 2
    train or 1 val window: the loop would then train on the val windows), or None."""
    try:
        b = borders(name, L)
        n_train, n_val = n_windows(b.train[1] - b.train[0], L, H), n_windows(b.val[1] - b.val[0], L, H)
    except ValueError:  # L longer than the train split
        n_train = n_val = 0
    if n_train >= 2 and n_val >= 1:
        return None
    return (
        f"{name}: lookback {L} + horizon {H} leaves {n_train} train and {n_val} val windows; "
        "the protocol needs at least 2 and 1 (a shorter lookback or horizon)"
    )


def fit_ensemble(forecasters: list, splits: Splits, index: pd.DatetimeIndex, horizon: int, channels: str = "mixed") -> FitRecord:
    """:func:`fit_forecaster` for each of the K forecasters of :func:`make_ensemble`, one after
    the other → the one fit's record (K = 1), or one with the K records as ``members``."""
    records = [fit_forecaster(f, splits, index, horizon, channels) for f in forecasters]
    if len(records) == 1:
        return records[0]
    return replace(  # the rows and windows are every member's
        records[0],
        seconds=sum(r.seconds for r in records),
        epochs=sum(r.epochs for r in records),
        best_epoch=max(r.best_epoch for r in records),
        val_losses=[],
        members=records,
    )


def forecast_ensemble(forecasters: list, splits: Splits, segment: np.ndarray, horizon: int, channels: str = "mixed"):
    """:func:`forecast_segment` for each forecaster, the K forecasts pooled by :func:`mixture`
    (one forecaster: its own forecast unchanged). Same returns; ``seconds`` is the total."""
    parts = [forecast_segment(f, splits, segment, horizon, channels) for f in forecasters]
    if len(parts) == 1:
        return parts[0]
    _, _, truth, context, _ = parts[0]
    seconds = sum(p[4] for p in parts)
    mean, std = mixture(np.stack([p[0] for p in parts]), np.stack([p[1] for p in parts]))  # (n, H, C) each
    return mean, std, truth, context, seconds


def forecast_segment(forecaster, splits: Splits, segment: np.ndarray, horizon: int, channels: str = "mixed"):
    """Forecast every stride-1 window of a segment in one batched call (with ``channels=
    "independent"``, each window's F channels as F univariate windows).

    Returns
    -------
    mean, std : ndarray of shape (n, H, C)
        Over the scored channels ``splits.target_index`` (std is NaN without a normal head).
    truth : ndarray of shape (n, H, C)
    context : ndarray of shape (n, L, C)
        The scored channels of each window's lookback (for plots).
    seconds : float
        Wall-clock time of the ``predict_windows`` call.
    """
    X, Y = windows(segment, splits.lookback, horizon, splits.target_index)  # (n, L, F), (n, H, C)
    start = time.perf_counter()
    if _independent(channels, splits):
        n, _, F = X.shape
        mean, std = forecaster.predict_windows(X.transpose(0, 2, 1).reshape(n * F, -1, 1))  # (n·F, H, 1)
        mean, std = (a.reshape(n, F, -1).transpose(0, 2, 1) for a in (mean, std))  # (n, H, F)
    else:
        mean, std = forecaster.predict_windows(X)  # (n, H, F): the model's targets are all F columns
    seconds = time.perf_counter() - start
    scored = splits.target_index
    return mean[..., scored], std[..., scored], Y, X[..., scored], seconds


def count_parameters(forecaster) -> int:
    """Trainable parameters of the fitted network."""
    return int(sum(p.numel() for p in forecaster.module_.parameters() if p.requires_grad))


# ---------------------------------------------------------------------------------- one setting


def _row(**values) -> dict:
    row = dict.fromkeys(RESULT_COLUMNS)
    row.update(values)
    return row


def naive_rows(splits: Splits, protocol: str, horizon: int) -> list[dict]:
    """Repeat-last and seasonal naive (p = one day) on the test windows, by ``evaluate_naive``."""
    base = {"data": splits.name, "protocol": protocol, "features": splits.features, "horizon": horizon, "kind": "naive"}
    rows = []
    score = evaluate_naive(splits, horizon, "repeat")
    rows.append(_row(**base, method="repeat-last", lookback=splits.lookback, mse=score.mse, mae=score.mae, n_windows=score.n_windows))
    p = seasonal_period(splits.name)
    label = f"seasonal p={p}"
    if p <= splits.lookback:
        score = evaluate_naive(splits, horizon, "seasonal", p)
        rows.append(_row(**base, method=label, lookback=splits.lookback, mse=score.mse, mae=score.mae, n_windows=score.n_windows))
    else:
        rows.append(_row(**base, method=label, lookback=splits.lookback, mse=np.nan, mae=np.nan, note=f"needs lookback ≥ {p}"))
    return rows


def published_rows(name: str, protocol: str, features: str, horizon: int) -> list[dict]:
    """Every published result for (file, features, H), whatever the paper's protocol label:
    borders, scaler and metrics are the same, only the horizons and lookbacks differ."""
    rows = []
    for r in published(data=name, features=features, horizon=horizon).itertuples(index=False):
        source = SOURCES[r.source]
        rows.append(
            _row(
                data=name, protocol=protocol, features=features, horizon=horizon, kind="published",
                method=r.model, source=r.source, lookback=None if pd.isna(r.lookback) else int(r.lookback),
                mse=r.mse, mae=r.mae, drop_last=source.drop_last, verified=bool(r.verified), note=r.note,
            )  # fmt: skip
        )
    return rows


@dataclass
class _Sample:
    """A few test windows of one model for the figure."""

    key: tuple
    starts: np.ndarray  # (k,) window numbers
    context: np.ndarray  # (k, L)
    truth: np.ndarray  # (k, H)
    mean: np.ndarray  # (k, H)
    std: np.ndarray  # (k, H)
    channel: str


def run_setting(
    df: pd.DataFrame,
    name: str,
    protocol: str,
    features: str,
    horizon_list: list[int],
    models: list[str],
    lookback: int,
    configs: dict,
    seed: int,
    device: str,
    *,
    keep_predictions: bool = False,
    log=None,
    channels: str = "mixed",
    show_test: bool = True,
) -> tuple[list[dict], dict, dict, list[_Sample]]:
    """Naive, published and our models for one (file, protocol, features) at each horizon; each
    fit's log line shows its validation MSE, and its test scores only with ``show_test``.

    → (result rows, fits {key: FitRecord}, predictions {key: (mean, std)}, figure samples).
    """
    log = log or (lambda message: None)
    splits = split(df, name, lookback, features)
    rows, fits, predictions, samples = [], {}, {}, []
    for H in horizon_list:
        rows += naive_rows(splits, protocol, H)
        rows += published_rows(name, protocol, features, H)
        for model in models:
            key = (name, protocol, features, H, model)
            members = make_ensemble(model, configs[model], lookback, H, seed, device)
            fit = fit_ensemble(members, splits, df.index, H, channels)
            val_mean, _, val_truth, _, _ = forecast_ensemble(members, splits, splits.val, H, channels)
            val_mse, _ = mse_mae(val_mean, val_truth)
            mean, std, truth, context, seconds = forecast_ensemble(members, splits, splits.test, H, channels)
            mse, mae = mse_mae(mean, truth)
            inside = np.abs(truth - mean) <= INTERVAL_Z * std  # (n, H, C); all False where std is NaN
            coverage = float(inside.mean()) if np.isfinite(std).all() else np.nan
            rows.append(
                _row(
                    data=name, protocol=protocol, features=features, horizon=H, kind="ours", method=LABELS[model],
                    source=model, lookback=lookback, mse=mse, mae=mae, n_windows=len(truth), val_mse=val_mse,
                    coverage80=coverage, train_s=fit.seconds, epochs=fit.epochs, best_epoch=fit.best_epoch,
                    windows_per_s=len(truth) / seconds, n_params=sum(map(count_parameters, members)),
                    note=_note(configs[model], _independent(channels, splits)),
                )  # fmt: skip
            )
            fits[key] = fit
            if keep_predictions:
                predictions[key] = (mean, std)
            starts = np.linspace(0, len(truth) - 1, 3).round().astype(int)
            channel = len(splits.targets) - 1  # OT for S and MS, the last (OT) of the 7 for M
            samples.append(
                _Sample(key, starts, context[starts, :, channel], truth[starts, :, channel], mean[starts, :, channel], std[starts, :, channel], splits.targets[channel])
            )
            log(
                f"{name} {protocol} {features} H={H} {LABELS[model]}"
                + (f" (ensemble of {len(members)})" if len(members) > 1 else "")
                + f": fit {fit.seconds:.0f} s, {fit.epochs} epochs "
                f"(best {fit.best_epoch}), val MSE {val_mse:.4f}"
                + (f", test MSE {mse:.4f} MAE {mae:.4f}" if show_test else "")
            )
    return rows, fits, predictions, samples


def config_text(config: dict | None, features: str, channels: str | None = None) -> str:
    """The settings of ``config`` (and ``channels``) that differ from the full-mode default of
    ``features``, e.g. "lr=0.001", or "default"; "?" when the run recorded none."""
    if config is None:
        return "?"
    if channels is not None and channels != DEFAULT_CHANNELS[features]:
        return ", ".join(t for t in (config_text(config, features), f"channels={channels}") if t != "default")
    # a setting outside FULL_CONFIG (revin, revin_min_std, linear_skip, …) against the forecasters' own default
    default = {**S4DForecaster().get_params(deep=False), **FULL_CONFIG, **FEATURE_CONFIG[features]}
    changed = [
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in config.items() if (v != default[k] if k in default else bool(v))
    ]  # fmt: skip
    return ", ".join(changed) or "default"


def _note(config: dict, independent: bool) -> str:
    """What sets a fit apart from the defaults, for the tables: loss (and its scale), channels, RevIN
    off or its floor, linear skip, ensemble."""
    note = f"loss={config['loss']}" + (f" ({config['loss_scale']} scale)" if config.get("loss_scale", "window") != "window" else "")
    note += ", channels=independent" if independent else ""
    note += ", no RevIN" if config.get("revin", True) is False else ""
    note += f", revin_min_std={config['revin_min_std']:g}" if config.get("revin_min_std") else ""
    skip = config.get("linear_skip")
    note += (", linear skip (lstsq)" if skip == "lstsq" else ", linear skip") if skip else ""
    return note + (f", ensemble={config['ensemble']}" if config.get("ensemble", 1) > 1 else "")


# ---------------------------------------------------------------------------------- tables


def _pair(mse: float, mae: float, digits: int) -> str:
    mae_text = "–" if mae is None or pd.isna(mae) else f"{mae:.{digits}f}"
    return f"{mse:.{digits}f} / {mae_text}"


def markdown_table(results: pd.DataFrame, name: str, protocol: str, features: str, models: list[str], selected: bool = False) -> str:
    """The Markdown table of one setting: rows = H; cells "MSE / MAE"; bold = lowest MSE of the row.
    ``selected``: our rows were chosen on validation among candidates (other lookbacks), and the title says so."""
    res = results[(results.data == name) & (results.protocol == protocol) & (results.features == features)]
    ours = [LABELS[m] for m in models]
    naive = list(dict.fromkeys(res.loc[res.kind == "naive", "method"]))
    pub_labels = [f"{model} (paper)" for _, model in PUBLISHED_COLUMNS]
    lookback = int(res.loc[res.kind == "naive", "lookback"].iloc[0])
    header = ["H", "test windows"] + [f"{m} (ours)" for m in ours] + naive + pub_labels + [f"{m} beats" for m in ours]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    short = {**{m: m.split(" ")[0] for m in naive}, **{label: label.split(" ")[0] for label in pub_labels}}
    picks = []  # with several of our models: per H the one of lowest validation MSE (the test never read)
    targets = []  # per H: the chosen model against the target columns (TARGETS)
    for H in sorted(res.horizon.unique()):
        at = res[res.horizon == H]
        cells, mses = {}, {}
        for kind, method in [("ours", m) for m in ours] + [("naive", m) for m in naive]:
            hit = at[(at.kind == kind) & (at.method == method)]
            label = f"{method} (ours)" if kind == "ours" else method
            if len(hit) and not pd.isna(hit.mse.iloc[0]):
                cells[label], mses[label] = _pair(hit.mse.iloc[0], hit.mae.iloc[0], 4), hit.mse.iloc[0]
                if kind == "ours" and int(hit.lookback.iloc[0]) != lookback:  # chosen among lookbacks (merge_runs)
                    cells[label] += f" (L={int(hit.lookback.iloc[0])})"
            else:
                cells[label] = ""
        for (source, model), label in zip(PUBLISHED_COLUMNS, pub_labels):
            hit = at[(at.kind == "published") & (at.source == source) & (at.method == model)]
            if len(hit):
                r = hit.iloc[0]
                lb = "?" if r.lookback is None or pd.isna(r.lookback) else int(r.lookback)
                star = "" if r.verified else "*"
                cells[label], mses[label] = f"{_pair(r.mse, r.mae, 3)} (L={lb}){star}", r.mse
            else:
                cells[label] = ""
        best = min(mses, key=mses.get) if mses else None
        if best is not None:
            cells[best] = "**" + cells[best].replace(" / ", "** / ", 1)
        wins, others = {}, [label for label in naive + pub_labels if label in mses]
        for m in ours:
            mine = mses.get(f"{m} (ours)")
            beaten = [] if mine is None else [short[label] for label in others if mine < mses[label]]
            wins[m] = "" if mine is None else f"✓ {len(beaten)}/{len(others)}: " + ", ".join(beaten) if beaten else f"0/{len(others)}"
        scored = at[(at.kind == "ours") & at.method.isin(ours) & at.val_mse.notna() & at.mse.notna()]
        present = [m for m in ours if f"{m} (ours)" in mses]
        chosen = present[0] if len(present) == 1 else None
        if len(ours) > 1 and scored.method.nunique() > 1:
            pick = scored.iloc[int(np.argmin(scored.val_mse.to_numpy()))]  # ties: the first model
            picks.append(f"| {H} | {pick.method} | {pick.val_mse:.4f} | {cells[pick.method + ' (ours)'].replace('**', '')} | {wins[pick.method]} |")
            chosen = pick.method
        if (protocol, features) in TARGETS and chosen is not None:
            targets.append((H, chosen, mses[f"{chosen} (ours)"], {label: mses.get(label) for label, _ in TARGETS[protocol, features]}))
        n = at.loc[at.kind == "naive", "n_windows"].iloc[0]
        row = [str(H), str(int(n))] + [cells[f"{m} (ours)"] for m in ours] + [cells[m] for m in naive]
        row += [cells[label] for label in pub_labels] + [wins[m] for m in ours]
        lines.append("| " + " | ".join(row) + " |")
    if picks:
        picks = [
            "",
            f"Our model chosen on validation (per H the lowest val MSE among {', '.join(ours)}; its test MSE / MAE):",
            "",
            "| H | chosen | val MSE | test MSE / MAE | beats |",
            "|---|---|---|---|---|",
            *picks,
        ]
    title = {"S": "S (OT → OT)", "M": "M (7 → 7, all scored)", "MS": "MS (7 → 7, OT scored)"}[features]
    ours_lookbacks = res.loc[res.kind == "ours", "lookback"].dropna().astype(int)
    other = " unless a cell names another" + (" (chosen on validation)" if selected else "") if (ours_lookbacks != lookback).any() else ""
    notes = [
        f"**{name} · {PROTOCOL_NAMES[protocol]} protocol · features {title} · our lookback L = {lookback}{other}**",
        "",
        *lines,
        "",
        "MSE / MAE on data z-scored with train statistics, every stride-1 test window (no drop_last); ours and the naive",
        "baselines computed by this run (naive = `evaluate_naive`). **Bold**: lowest MSE of the row. \"beats\": columns whose",
        "MSE is higher than the model's. Published: lookback in brackets (`?` = not recorded); their test loaders dropped the",
        "last n mod 32 windows (Informer, DLinear, PatchTST); * = not verified against the paper (S4: a third-party",
        "transcription). Sources: " + "; ".join(f"{SOURCES[s].citation}" for s, _ in PUBLISHED_COLUMNS) + ".",
    ]
    if features == "MS":
        notes.append("MS: our models forecast all 7 channels jointly and are scored on OT only; no published MS numbers.")
    return "\n".join(notes + picks + target_table(targets, TARGETS.get((protocol, features), ()))) + "\n"


def target_met(ours: float, theirs: float, rule: str) -> bool:
    """One target cell: ours below theirs ("<"), or at or below it at the three decimals the papers print ("≤")."""
    return ours < theirs if rule == "<" else round(ours, 3) <= theirs


def target_table(targets: list[tuple], rules: tuple) -> list[str]:
    """Lines of the target verdict (:data:`TARGETS`): per H our model chosen on validation, its test
    MSE, each target column's MSE, and met / missed; then the horizons missed. [] without targets."""
    if not targets:
        return []
    wording = {"<": "below", "≤": "at or below"}
    goal = " and ".join(f"{wording[rule]} {label}" for label, rule in rules)
    lines = [
        "",
        f"Target: our test MSE {goal} at every H (where there are several of our models, the one chosen on validation; `TARGETS`):",
        "",
        "| H | model | test MSE | " + " | ".join(label for label, _ in rules) + " | target |",
        "|---|---|---|" + "---|" * len(rules) + "---|",
    ]
    missed, judged = [], 0
    for H, model, mine, theirs in targets:
        digits = {label: 3 if label.endswith("(paper)") else 4 for label, _ in rules}  # as printed: papers, ours
        cells = ["–" if theirs[label] is None else f"{theirs[label]:.{digits[label]}f}" for label, _ in rules]
        if any(theirs[label] is None for label, _ in rules):
            verdict = "– (nothing to compare with)"
        else:
            judged += 1
            lost = [label for label, rule in rules if not target_met(mine, theirs[label], rule)]
            verdict = "met" if not lost else "**missed** (" + ", ".join(label.split(" ")[0] for label in lost) + ")"
            missed += [H] if lost else []
        lines.append(f"| {H} | {model} | {mine:.4f} | " + " | ".join(cells) + f" | {verdict} |")
    summary = f"met at {judged - len(missed)} of {judged} horizons" + (f"; **missed at H = {', '.join(map(str, missed))}**" if missed else "")
    return lines + ["", f"Target {summary}." if judged else "Target: no horizon to judge."]


def cost_table(results: pd.DataFrame, name: str, protocol: str, features: str) -> str:
    """Per model and H: training time, epochs, validation MSE, the share of test targets inside the
    80% interval (mean ± 1.2816·std; loss "normal" only), inference speed, parameters."""
    res = results[(results.data == name) & (results.protocol == protocol) & (results.features == features) & (results.kind == "ours")]
    lines = [
        "| model | H | train s | epochs (best) | val MSE | test 80% coverage | test windows/s | parameters |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in res.itertuples(index=False):
        lines.append(
            f"| {r.method} ({r.note}) | {r.horizon} | {r.train_s:.1f} | {int(r.epochs)} ({'start' if r.best_epoch < 0 else int(r.best_epoch)}) | {r.val_mse:.4f} | "
            f"{'–' if pd.isna(r.coverage80) else f'{r.coverage80:.1%}'} | "
            f"{r.windows_per_s:,.0f} | {int(r.n_params):,} |"
        )
    return "\n".join(lines) + "\n"


def plot_samples(sample: _Sample, path: Path) -> None:
    """History, truth, forecast and the 80% interval (mean ± 1.2816·std) of a few test windows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name, protocol, features, H, model = sample.key
    k, L = sample.context.shape
    fig, axes = plt.subplots(k, 1, figsize=(10, 2.6 * k), squeeze=False)
    past, ahead = np.arange(-L + 1, 1), np.arange(1, H + 1)  # hours relative to the forecast origin
    for ax, i in zip(axes[:, 0], range(k)):
        ax.plot(past, sample.context[i], color="0.3", lw=1, label="history")
        ax.plot(ahead, sample.truth[i], color="k", lw=1, label="truth")
        ax.plot(ahead, sample.mean[i], color="C0", lw=1.5, label=f"{LABELS[model]} forecast")
        if np.isfinite(sample.std[i]).all():
            lo, hi = sample.mean[i] - INTERVAL_Z * sample.std[i], sample.mean[i] + INTERVAL_Z * sample.std[i]
            ax.fill_between(ahead, lo, hi, color="C0", alpha=0.25, label="80% interval")
        ax.axvline(0.5, color="0.6", lw=0.8, ls="--")
        ax.set_ylabel(f"{sample.channel} (scaled)")
        ax.set_title(f"test window {sample.starts[i]}", fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("hours after the forecast origin")
    axes[0, 0].legend(loc="upper left", fontsize=8, ncol=4)
    interval = "" if np.isfinite(sample.std).all() else " (no interval: loss is not 'normal')"
    fig.suptitle(f"{name} {features}, {PROTOCOL_NAMES[protocol]} protocol, H = {H}, L = {L}: {LABELS[model]}{interval}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------- CLI


#: What identifies one result row of a setting and horizon (the lookback and configuration aside).
ROW_KEYS = ["data", "protocol", "features", "horizon", "kind", "method", "source"]


def select_on_validation(results: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Where our model has several rows at one setting and horizon (runs with other lookbacks or
    configurations), keep the one with the lowest validation MSE; the test columns are never read.

    → (results with one row per model, setting and horizon; the candidates: every "ours" row that
    had a rival, with a boolean ``chosen`` column, listed by setting, H, model and val MSE, so
    that merging a selection again lists them in the same order).
    """
    ours = results.kind == "ours"
    rivals = ours & results.duplicated(ROW_KEYS, keep=False)
    if results.loc[rivals, "val_mse"].isna().any():
        raise ValueError("cannot choose on validation: a candidate row has no val_mse")
    candidates = results[rivals].copy()
    best = candidates.groupby(ROW_KEYS, sort=False)["val_mse"].idxmin()  # ties: the first folder's row
    candidates["chosen"] = candidates.index.isin(best.to_numpy())
    setting = candidates.groupby(["data", "protocol", "features"], sort=False).ngroup()  # in the order of the runs
    order = candidates.assign(_s=setting, _c=~candidates.chosen).sort_values(["_s", "horizon", "method", "val_mse", "_c"], kind="stable")
    return results.drop(index=candidates.index[~candidates.chosen]), candidates.loc[order.index]


def choice_table(candidates: pd.DataFrame) -> str:
    """The candidates of :func:`select_on_validation` by setting, H and model: the run (folder)
    they come from, lookback, note, validation MSE (the criterion), and the test MSE only for
    reading (chosen: ✓)."""
    runs = "run" in candidates  # merged runs: the folder of each candidate
    lines = [
        "**Chosen on the validation split** (per model, setting and H, the lowest val MSE; test MSE shown, never used)",
        "",
        "| setting | H | model |" + (" run |" if runs else "") + " L | configuration | val MSE | test MSE | chosen |",
        "|---|---|---|" + ("---|" if runs else "") + "---|---|---|---|---|",
    ]
    for r in candidates.itertuples(index=False):
        lines.append(
            f"| {r.data} {r.protocol} {r.features} | {r.horizon} | {r.method} |" + (f" `{r.run}` |" if runs else "")
            + f" {int(r.lookback)} | {getattr(r, 'config', r.note)} | {r.val_mse:.4f} | {r.mse:.4f} | {'✓' if r.chosen else ''} |"
        )
    return "\n".join(lines) + "\n"


# A folder given to merge_runs may itself be a merge (its run.json lists the runs it came from)
def _run_seconds(run: dict) -> float:
    return run["seconds"] if "seconds" in run else sum(run["seconds_each"])


def _run_commands(run: dict) -> str | list:
    return run["command"] if "command" in run else run["commands"]


def _run_configs(run: dict) -> dict:
    """The run's model configurations by features and model; a merge's from the first of its runs
    that recorded them (the runs of one merge split one command by horizon)."""
    if "configs" in run:
        return run["configs"]
    return next((c for c in map(_run_configs, run.get("merged_from", [])) if c), {})


def _run_channels(run: dict, features: str) -> str | None:
    """The channels of a run's ``features``; a merge's from its first run that recorded them.
    Runs before the option (no "channels" in run.json) could only mix the channels of M."""
    if "merged_from" in run:
        return next((c for c in (_run_channels(r, features) for r in run["merged_from"]) if c), None)
    if "channels" not in run:
        return "mixed" if features == "M" else None
    channels = run["channels"]  # by features; a single string in runs of one setting
    return channels if isinstance(channels, str) else channels.get(features)


def _read_run(folder: Path, i: int, rivals: bool) -> pd.DataFrame:
    """A results folder's rows for :func:`merge_runs`, each tagged with the run (folder) and
    configuration it comes from (``config`` None: read it from the folder's run.json). A folder
    that holds a selection (``candidates.csv``: a merge with ``--select`` or a run of several
    lookbacks) gives its chosen rows the run and configuration its candidates table names and,
    with ``rivals``, adds the candidates that lost there, so that a later selection lists them again."""
    folder = Path(folder)
    results = pd.read_csv(folder / "results.csv").assign(run=folder.name, config=None, rival=False)
    if (folder / "candidates.csv").exists():
        candidates = pd.read_csv(folder / "candidates.csv")
        if "run" not in candidates:  # a run of several lookbacks: its candidates are its own
            candidates = candidates.assign(run=folder.name)
        if "config" not in candidates:  # and its configuration is its run.json's
            candidates = candidates.assign(config=None)
        origin = {tuple(r[k] for k in ROW_KEYS): (r["run"], r["config"]) for _, r in candidates[candidates.chosen].iterrows()}
        for idx in results.index[results.kind == "ours"]:
            key = tuple(results.loc[idx, k] for k in ROW_KEYS)
            if key in origin:
                results.loc[idx, ["run", "config"]] = origin[key]
        if rivals:
            results = pd.concat([results, candidates[~candidates.chosen].drop(columns="chosen").assign(rival=True)], ignore_index=True)
    return results.assign(run_index=i)


def merge_runs(folders: list[Path], out: Path, select: bool = False) -> BenchmarkRun:
    """One results folder from runs of the same command split by horizon (e.g. one process per
    horizon on a GPU): results.csv rows concatenated (the naive and published rows once per
    setting and horizon), results.md rebuilt from them, run.json listing every run's own record.
    With ``select``, runs may hold the same model at the same setting and horizon more than once
    (other lookbacks, other configurations): :func:`select_on_validation` keeps one, and
    results.md and ``candidates.csv`` list every candidate. A folder may itself hold a merge.
    → the merged run (results: the rows, in setting and horizon order; no fits or predictions)."""
    runs = [json.loads((Path(f) / "run.json").read_text()) for f in folders]
    parts = [_read_run(f, i, rivals=select) for i, f in enumerate(folders)]
    # a nested selection's rivals that lost come last: on a tie of validation MSE the row chosen before stays
    results = pd.concat(parts, ignore_index=True).sort_values("rival", kind="stable").drop(columns="rival")
    candidates = None
    if select:
        results, candidates = select_on_validation(results)
        # what set each candidate's run apart from the defaults: a nested selection's own table, else the run's record
        candidates["config"] = [
            r.config if isinstance(r.config, str)
            else config_text(_run_configs(runs[r.run_index]).get(r.features, {}).get(r.source), r.features, _run_channels(runs[r.run_index], r.features))
            for r in candidates.itertuples(index=False)
        ]  # fmt: skip
        candidates = candidates.drop(columns="run_index")
    elif results[results.kind == "ours"].duplicated(ROW_KEYS).any():
        raise ValueError(
            "the runs overlap: the same model at the same setting and horizon twice "
            "(to keep the one with the lowest validation MSE, merge with --select)"
        )
    results = results.drop(columns=["run", "run_index", "config"])
    results = results.drop_duplicates(ROW_KEYS)  # a shared horizon's naive and published rows, once
    order = {k: i for i, k in enumerate(dict.fromkeys(zip(results.data, results.protocol, results.features)))}
    results = results.assign(_s=[order[k] for k in zip(results.data, results.protocol, results.features)])
    results = results.sort_values(["_s", "horizon"], kind="stable").drop(columns="_s").reset_index(drop=True)
    by_label = {label: key for key, label in LABELS.items()}
    models = [by_label[m] for m in dict.fromkeys(results.loc[results.kind == "ours", "method"])]
    markdown = []
    for name, protocol, feat in order:
        markdown += [markdown_table(results, name, protocol, feat, models, selected=select), cost_table(results, name, protocol, feat)]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if candidates is not None and len(candidates):
        markdown.append(choice_table(candidates))
        candidates.to_csv(out / "candidates.csv", index=False)
    (out / "results.md").write_text("\n".join(markdown))
    results.to_csv(out / "results.csv", index=False)
    info = {"merged_from": runs, "seconds_each": [_run_seconds(r) for r in runs], "commands": [_run_commands(r) for r in runs]}
    # how this merge was made (not "command": a later merge reads that key as a run's own command)
    info["merged_by"] = shlex.join([sys.executable, "-m", "ssmforecast.benchmarks.ett", "--merge", *map(str, folders), "--out", str(out), *(["--select"] if select else [])])
    if select:
        info["selected_on"] = "val_mse"
    (out / "run.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
    return BenchmarkRun(results=results, fits={}, predictions={}, out=out, info=info)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ssmforecast.benchmarks.ett",
        description="ETT benchmark: S4/S4D/Mamba forecasters beside naive baselines and published numbers (docs/benchmark.md).",
    )
    p.add_argument("--data", nargs="+", choices=DATA, help="ETT files (default ETTh1 ETTh2; quick: ETTh1)")
    p.add_argument("--protocol", nargs="+", choices=PROTOCOLS, help="horizon sets (default informer; quick: informer)")
    p.add_argument("--features", nargs="+", choices=FEATURES, help="S: OT→OT, M: 7→7, MS: 7→OT (default S M; quick: S)")
    p.add_argument("--horizons", nargs="+", type=int, help="horizons H (default: the protocol's; quick: 24 168)")
    p.add_argument("--models", nargs="+", choices=list(MODELS), help="our models (default s4 s4d mamba; quick: s4d mamba)")
    p.add_argument(
        "--lookback", type=int, nargs="+",
        help=f"lookback L (default: the protocol's, {DEFAULT_LOOKBACK}); several: each model is fitted at each, and the one of lowest validation MSE is kept",
    )  # fmt: skip
    p.add_argument("--epochs", type=int, help=f"max_epochs (default {FULL_CONFIG['max_epochs']}, early stopping on val)")
    p.add_argument("--d-model", type=int, help=f"model width (default {FULL_CONFIG['d_model']})")
    p.add_argument("--n-layers", type=int, help=f"layers (default {FULL_CONFIG['n_layers']})")
    p.add_argument("--d-state", type=int, help="state size N (default: the layer's)")
    p.add_argument("--batch-size", type=int, help=f"batch size (default {FULL_CONFIG['batch_size']})")
    p.add_argument("--lr", type=float, help=f"learning rate (default {FULL_CONFIG['lr']})")
    p.add_argument("--dropout", type=float, help=f"dropout on each residual branch (default {FULL_CONFIG['dropout']:g})")
    p.add_argument("--weight-decay", type=float, help=f"AdamW weight decay of the weight matrices, never of SSM parameters, biases or norms (default {FULL_CONFIG['weight_decay']:g})")
    p.add_argument("--patience", type=int, help=f"early-stopping patience in epochs (default {FULL_CONFIG['patience']}; {FEATURE_CONFIG['M']['patience']} on M and MS)")
    p.add_argument("--loss", choices=["normal", "mse", "mae"], help=f"training loss (default {FULL_CONFIG['loss']})")
    p.add_argument(
        "--ensemble", type=int, metavar="K",
        help="fit each model K times (seeds --seed … --seed + K − 1) and pool the K forecasts: mean of the means, mixture std (default 1)",
    )  # fmt: skip
    p.add_argument(
        "--loss-scale", choices=["window", "series"],
        help="units of the training loss: each window's RevIN-normalised values, or the series' standardised units as the test MSE (default window)",
    )  # fmt: skip
    p.add_argument(
        "--revin", action=argparse.BooleanOptionalAction, default=None,
        help="normalise each window by its own context (RevIN; the default), or, with --no-revin, forecast from the "
        "series' standardised values as they are (the level of the context is then information, as in DLinear's Linear)",
    )  # fmt: skip
    p.add_argument("--revin-min-std", type=float, help="floor of each window's RevIN std, in training-std units (default 0: plain RevIN)")
    p.add_argument(
        "--linear-skip", nargs="?", const=True, default=None, choices=["lstsq"],
        help="add a linear map of each target's context to its forecast, beside the SSM (NLinear; linear_skip of the forecasters): "
        "zero-initialised, or with 'lstsq' started at the least-squares fit of the training windows",
    )  # fmt: skip
    p.add_argument(
        "--channels", choices=CHANNELS,
        help="features M: one model over all 7 channels (mixed) or one shared univariate model per channel (independent, the default on M)",
    )  # fmt: skip
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="training device (default auto)")
    p.add_argument("--seed", type=int, default=0, help="random_state of every model (default 0)")
    p.add_argument("--data-dir", help="folder with ETTh1.csv/ETTh2.csv (default: the cache, downloading once)")
    p.add_argument("--out", help="output folder (default benchmarks/results/<timestamp>)")
    p.add_argument(
        "--merge", nargs="+", metavar="DIR",
        help="instead of running: merge the results folders of runs split by horizon into --out (tables rebuilt)",
    )  # fmt: skip
    p.add_argument(
        "--select", action="store_true",
        help="with --merge: runs may repeat a model at a setting and horizon (other --lookback or configuration); keep the lowest validation MSE",
    )  # fmt: skip
    p.add_argument(
        "--hide-test", action="store_true",
        help="while exploring candidates: log validation MSEs only and do not print the table (test scores are still written to --out)",
    )  # fmt: skip
    p.add_argument("--quick", action="store_true", help="about 2 minutes on 2 CPU cores: " + _quick_text())
    return p


def _quick_text() -> str:
    models = ", ".join(f"{LABELS[m]} d_model {c['d_model']} × {c['n_layers']} layers, {c['max_epochs']} epoch(s)" for m, c in QUICK_CONFIG.items() if m in QUICK["models"])
    return f"ETTh1 S, Informer protocol, H = {' and '.join(map(str, QUICK['horizons']))}; {models}"


def _configs(args, models: list[str], features: str = "S") -> dict:
    overrides = {
        "max_epochs": args.epochs, "d_model": args.d_model, "n_layers": args.n_layers, "d_state": args.d_state,
        "batch_size": args.batch_size, "lr": args.lr, "patience": args.patience, "loss": args.loss,
        "revin": args.revin, "revin_min_std": args.revin_min_std, "loss_scale": args.loss_scale, "dropout": args.dropout, "weight_decay": args.weight_decay,
        "ensemble": args.ensemble, "linear_skip": args.linear_skip,
    }  # fmt: skip
    overrides = {k: v for k, v in overrides.items() if v is not None}
    full = {**FULL_CONFIG, **FEATURE_CONFIG[features]}
    base = QUICK_CONFIG if args.quick else dict.fromkeys(MODELS, full)
    return {m: {**base.get(m, full), **overrides} for m in models}


#: CLI option of each forecaster parameter the options set (for errors found before training).
OPTION_OF = {
    "max_epochs": "--epochs", "d_model": "--d-model", "n_layers": "--n-layers", "d_state": "--d-state",
    "batch_size": "--batch-size", "lr": "--lr", "patience": "--patience", "revin_min_std": "--revin-min-std",
    "dropout": "--dropout", "weight_decay": "--weight-decay",
}  # fmt: skip


def _check_before_training(parser, args, data, protocols, features, models, configs, channels) -> None:
    """parser.error for what would otherwise fail after hours of training: channels that do not
    fit the features, a lookback + horizon the splits cannot hold, a model parameter out of range."""
    from sklearn.utils._param_validation import InvalidParameterError, validate_parameter_constraints

    for feat in features:
        if channels[feat] == "independent" and feat != "M":
            parser.error(f"--channels independent is for features M (one univariate model per channel); not {feat}")
    for name in data:
        for protocol in protocols:
            for L in args.lookback or [DEFAULT_LOOKBACK[protocol]]:
                for H in args.horizons or (QUICK["horizons"] if args.quick else list(horizons(protocol, name))):
                    problem = _windows_problem(name, L, H)
                    if problem:
                        parser.error(problem)
    for feat in features:
        for model in models:
            forecaster = make_forecaster(model, configs[feat][model], 96, 24, args.seed, "cpu")
            try:
                validate_parameter_constraints(forecaster._parameter_constraints, forecaster.get_params(deep=False), caller_name=LABELS[model])
            except InvalidParameterError as error:
                named = [option for param, option in OPTION_OF.items() if f"'{param}'" in str(error)]
                parser.error(f"{' / '.join(named) or 'an option'}: {error}")


def _device(requested: str, parser: argparse.ArgumentParser) -> str:
    if requested == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA GPU is available")
    return "cuda" if requested == "cuda" or (requested == "auto" and torch.cuda.is_available()) else "cpu"


def main(argv: list[str] | None = None, *, keep_predictions: bool = False) -> BenchmarkRun:
    """Run the benchmark from command-line arguments; print the tables and write them to ``--out``.

    Parameters
    ----------
    argv : list of str, default=None
        The arguments (``sys.argv[1:]`` when None); ``--help`` lists them.
    keep_predictions : bool, default=False
        Keep every model's test forecasts in the result (memory: n × H × C floats each).

    Returns
    -------
    BenchmarkRun
    """
    started, started_at = time.perf_counter(), datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.select and not args.merge:
        parser.error("--select chooses among merged runs: use it with --merge")
    if args.merge:
        if not args.out:
            parser.error("--merge needs --out")
        for folder in map(Path, args.merge):
            if not (folder / "run.json").is_file() or not (folder / "results.csv").is_file():
                parser.error(f"--merge: {folder} is not a results folder (no run.json and results.csv)")
        run = merge_runs([Path(f) for f in args.merge], Path(args.out), select=args.select)
        if not args.hide_test:
            print((run.out / "results.md").read_text())
        return run
    command = shlex.join(sys.orig_argv) if argv is None else shlex.join([sys.executable, "-m", "ssmforecast.benchmarks.ett", *argv])
    pick = lambda value, quick, full: value if value is not None else (quick if args.quick else full)  # noqa: E731
    data = pick(args.data, QUICK["data"], list(DATA))
    protocols = pick(args.protocol, QUICK["protocol"], ["informer"])
    features = pick(args.features, QUICK["features"], ["S", "M"])
    models = pick(args.models, QUICK["models"], list(MODELS))
    if args.horizons is not None and (min(args.horizons) < 1 or len(set(args.horizons)) < len(args.horizons)):
        parser.error("--horizons must be distinct positive integers")
    for option, values in (("--models", args.models), ("--data", args.data), ("--features", args.features), ("--protocol", args.protocol)):
        if values is not None and len(set(values)) < len(values):
            parser.error(f"{option} names a value twice: {' '.join(values)}")
    if args.ensemble is not None and args.ensemble < 1:
        parser.error("--ensemble must be a positive integer")
    if args.lookback is not None and (min(args.lookback) < 1 or len(set(args.lookback)) < len(args.lookback)):
        parser.error("--lookback must be distinct positive integers")
    configs = {feat: _configs(args, models, feat) for feat in features}
    channels = {feat: args.channels or DEFAULT_CHANNELS[feat] for feat in features}
    device = _device(args.device, parser)
    _check_before_training(parser, args, data, protocols, features, models, configs, channels)
    out = Path(args.out) if args.out else Path("benchmarks") / "results" / datetime.datetime.now().strftime("ett-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f} s] {message}", file=sys.stderr, flush=True)

    rows, fits, predictions, samples, lookbacks = [], {}, {}, [], {}
    frames = {name: load_ett(name, path=args.data_dir) for name in data}  # every file found before any training
    for name in data:
        df = frames[name]
        for protocol in protocols:
            horizon_list = args.horizons or (QUICK["horizons"] if args.quick else list(horizons(protocol, name)))
            lookback_list = args.lookback or [DEFAULT_LOOKBACK[protocol]]
            lookbacks[protocol] = lookback_list[0] if len(lookback_list) == 1 else lookback_list
            for feat in features:
                for lookback in lookback_list:
                    r, f, p, s = run_setting(
                        df, name, protocol, feat, horizon_list, models, lookback, configs[feat], args.seed, device,
                        keep_predictions=keep_predictions, log=log, channels=channels[feat], show_test=not args.hide_test,
                    )  # fmt: skip
                    if len(lookback_list) > 1:  # keys name the lookback: (data, protocol, features, H, model, L)
                        f, p = ({(*k, lookback): v for k, v in d.items()} for d in (f, p))
                    rows += r
                    fits.update(f)
                    predictions.update(p)
                    samples += s
    results = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    candidates = None
    if args.lookback is not None and len(args.lookback) > 1:
        results, candidates = select_on_validation(results)
        results = results.drop_duplicates(ROW_KEYS).reset_index(drop=True)  # naive and published rows once

    settings = list(dict.fromkeys(zip(results.data, results.protocol, results.features)))
    markdown = []
    for name, protocol, feat in settings:
        markdown.append(markdown_table(results, name, protocol, feat, models, selected=candidates is not None))
        markdown.append(cost_table(results, name, protocol, feat))
    if candidates is not None:
        markdown.append(choice_table(candidates))
        candidates.to_csv(out / "candidates.csv", index=False)
    text = "\n".join(markdown)
    if not args.hide_test:
        print(text)
    (out / "results.md").write_text(text)
    results.to_csv(out / "results.csv", index=False)
    if samples:
        first = samples[0].key
        # the first setting's first model at its longest horizon
        chosen = max((s for s in samples if s.key[:3] == first[:3] and s.key[4] == first[4]), key=lambda s: s.key[3])
        plot_samples(chosen, out / "forecast.png")
    info = {
        "command": command,
        "argv": sys.argv[1:] if argv is None else list(argv),
        "quick": args.quick,
        "seed": args.seed,
        **({"selected_on": "val_mse"} if candidates is not None else {}),
        "lookback": lookbacks,
        "device": device,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_threads": torch.get_num_threads(),
        "data": data,
        "data_dir": args.data_dir,
        "protocols": protocols,
        "features": features,
        "channels": channels,
        "models": {m: configs[features[0]][m] for m in models},  # the first features' (see "configs")
        "configs": configs,
        "fits": {" ".join(map(str, k)): asdict(v) for k, v in fits.items()},
        "started": started_at,
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out / "run.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
    log(f"done in {info['seconds']:.0f} s; results in {out}")
    return BenchmarkRun(results=results, fits=fits, predictions=predictions, out=out, info=info)


if __name__ == "__main__":
    main()
