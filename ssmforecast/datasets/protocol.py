"""The ETT benchmark protocol of Informer (Zhou et al., AAAI 2021), reused by the "LTSF" papers.

Pure numpy/pandas, written to match ``Informer2020/data/data_loader.py`` (``Dataset_ETT_hour``,
``Dataset_ETT_minute``) and ``utils/metrics.py`` line for line; the LTSF papers (DLinear,
PatchTST, Time-Series-Library) use the same borders, scaler and metrics and change only the
horizons and the lookback. Notation: L lookback (``seq_len``), H horizon (``pred_len``),
F input channels, C target channels, T rows.

Splits: 12 / 4 / 4 "months" of 30 days, ``month`` = 720 rows (hourly) or 2,880 (15-minute)::

    train  [0,               12·month)        rows 0 … 8639 (ETTh)
    val    [12·month − L,    16·month)        first target row 8640
    test   [16·month − L,    20·month)        first target row 11520 (46080 for ETTm)

The val/test segments start L rows early, so that their first window's target is the first row of
the segment whatever L; rows from 20·month on (14,400 … 17,419 for ETTh) are never used.

Scaling: z = (x − μ_train) / σ_train per channel, μ and σ (ddof 0) from the train rows only, as
scikit-learn's ``StandardScaler`` fitted on ``data[0:12·month]``. Metrics are computed on the
scaled data: MSE = mean((ŷ − y)²), MAE = mean|ŷ − y| over windows × steps × channels.

Windows: every start row, stride 1, ``T − L − H + 1`` of them; on the test segment
T = 4·month + L, so there are ``4·month + 1 − H`` windows whatever L: 2881 − H for ETTh,
11521 − H for ETTm. Informer's test loader (and DLinear's before 2023-03-15, PatchTST's) used
batch 32 with ``drop_last=True``, which silently drops the last ``n mod 32`` windows; ``drop_last``
reproduces it (it is how the DLinear paper's "Repeat" column was computed).

Features: "S" OT in, OT out; "M" all 7 in, all 7 out; "MS" all 7 in, OT out (the target column
is placed last, as Informer's loader does; for ETT it already is).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from .ett import COLUMNS, ETT_NAMES, TARGET

PROTOCOLS = ("informer", "ltsf")
FEATURES = ("S", "M", "MS")
NAIVE_METHODS = ("repeat", "seasonal")

# Horizons H of the papers' tables. Informer (AAAI 2021, Tables 1-2): ETTh* 24…720, ETTm1 24…672
# (ETTm2 is not in the Informer paper). LTSF (Autoformer onwards, DLinear, PatchTST): all four files.
INFORMER_HORIZONS = {
    "ETTh1": (24, 48, 168, 336, 720),
    "ETTh2": (24, 48, 168, 336, 720),
    "ETTm1": (24, 48, 96, 288, 672),
}
LTSF_HORIZONS = (96, 192, 336, 720)

# Default lookback L: Informer's main_informer.py default seq_len; the LTSF "Look-Back-96"
# convention (Autoformer, FEDformer, TimesNet, iTransformer, S-Mamba; DLinear's Repeat baseline).
# Models that search L report it with their numbers (DLinear 336, PatchTST/42 336, PatchTST/64 512;
# see ssmforecast.datasets.published).
DEFAULT_LOOKBACK = {"informer": 96, "ltsf": 96}

# seq_len used by Informer's own scripts (scripts/ETTh1.sh, ETTh2.sh, ETTm1.sh), per (file, features):
# {H: L}. These produced the paper's Informer numbers.
INFORMER_SCRIPT_LOOKBACK = {
    ("ETTh1", "M"): {24: 48, 48: 96, 168: 168, 336: 168, 720: 336},
    ("ETTh1", "S"): {24: 720, 48: 720, 168: 720, 336: 720, 720: 720},
    ("ETTh2", "M"): {24: 48, 48: 96, 168: 336, 336: 336, 720: 720},
    ("ETTh2", "S"): {24: 48, 48: 96, 168: 336, 336: 336, 720: 336},
    ("ETTm1", "M"): {24: 672, 48: 96, 96: 384, 288: 672, 672: 672},
    ("ETTm1", "S"): {24: 96, 48: 96, 96: 384, 288: 384, 672: 384},
}


def horizons(protocol: str, name: str) -> tuple[int, ...]:
    """The horizons H reported under ``protocol`` ("informer" or "ltsf") for the file ``name``."""
    _check_choice("protocol", protocol, PROTOCOLS)
    _check_choice("name", name, ETT_NAMES)
    if protocol == "ltsf":
        return LTSF_HORIZONS
    if name not in INFORMER_HORIZONS:
        raise ValueError(f"{name} is not part of the Informer protocol (it reports {', '.join(INFORMER_HORIZONS)})")
    return INFORMER_HORIZONS[name]


def rows_per_month(name: str) -> int:
    """Rows in a 30-day "month": 720 for the hourly files, 2,880 for the 15-minute ones."""
    _check_choice("name", name, ETT_NAMES)
    steps_per_hour = 1 if name.startswith("ETTh") else 4
    return 30 * 24 * steps_per_hour


def seasonal_period(name: str) -> int:
    """One day in rows, the default seasonal-naive period p: 24 (hourly) or 96 (15-minute)."""
    return rows_per_month(name) // 30


@dataclass(frozen=True)
class Borders:
    """Row ranges ``[start, stop)`` of the three segments of one ETT file for one lookback.

    Attributes
    ----------
    train, val, test : tuple of (int, int)
        ``[start, stop)`` rows of each segment. ``val`` and ``test`` start ``lookback`` rows
        before their first target row (8640 and 11520 for ETTh).
    lookback : int
        The lookback L these borders were made for.
    """

    train: tuple[int, int]
    val: tuple[int, int]
    test: tuple[int, int]
    lookback: int


def borders(name: str, lookback: int) -> Borders:
    """Informer's split borders (``Dataset_ETT_hour`` / ``Dataset_ETT_minute``) for lookback L.

    ::

        border1s = [0, 12·month − L, 16·month − L]      border2s = [12·month, 16·month, 20·month]

    Parameters
    ----------
    name : {"ETTh1", "ETTh2", "ETTm1", "ETTm2"}
        The file; fixes ``month`` (720 rows hourly, 2,880 every 15 minutes).
    lookback : int
        L ≥ 1 rows of history per window, at most the train length.

    Returns
    -------
    Borders
        ETTh: train (0, 8640), val (8640 − L, 11520), test (11520 − L, 14400).
    """
    month = rows_per_month(name)
    _check_int("lookback", lookback, 1, 12 * month)
    train_end, val_end, test_end = 12 * month, 16 * month, 20 * month
    return Borders(
        train=(0, train_end),
        val=(train_end - lookback, val_end),
        test=(val_end - lookback, test_end),
        lookback=lookback,
    )


@dataclass(frozen=True, eq=False)
class Splits:
    """One ETT file cut and scaled by the protocol; made by :func:`split`.

    Attributes
    ----------
    name : str
        The file ("ETTh1", ...).
    features : {"S", "M", "MS"}
        Feature mode.
    lookback : int
        L, the lookback the val/test segments were cut for.
    columns : tuple of str
        The F input channels, in array order (target last).
    targets : tuple of str
        The C target channels.
    target_index : ndarray of shape (C,)
        Positions of ``targets`` in ``columns``.
    borders : Borders
        Row ranges of the segments in the file.
    mean, std : ndarray of shape (F,)
        Scaler statistics, from the train rows only (ddof 0; a constant column gets std 1, as in
        scikit-learn's ``StandardScaler``).
    train : ndarray of shape (12·month, F)
    val : ndarray of shape (4·month + L, F)
    test : ndarray of shape (4·month + L, F)
        The segments, scaled (unless ``split(..., scale=False)``).
    """

    name: str
    features: str
    lookback: int
    columns: tuple[str, ...]
    targets: tuple[str, ...]
    target_index: np.ndarray
    borders: Borders
    mean: np.ndarray
    std: np.ndarray
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def inverse_transform(self, values: np.ndarray) -> np.ndarray:
        """Scaled targets (..., C) → original units (..., C): x = z·σ + μ over the target channels."""
        values = np.asarray(values, dtype=np.float64)
        if values.shape[-1] != len(self.targets):
            raise ValueError(f"the last axis must hold the {len(self.targets)} targets {self.targets}, got shape {values.shape}")
        return values * self.std[self.target_index] + self.mean[self.target_index]


def split(df: pd.DataFrame, name: str, lookback: int, features: str = "M", *, scale: bool = True) -> Splits:
    """Cut one ETT frame into train/val/test by Informer's borders and z-score it with train statistics.

    Parameters
    ----------
    df : pandas.DataFrame
        The file as returned by :func:`~ssmforecast.datasets.load_ett` (columns HUFL … OT, at
        least ``20·month`` rows).
    name : {"ETTh1", "ETTh2", "ETTm1", "ETTm2"}
        Which file ``df`` is; fixes the borders.
    lookback : int
        L: the val/test segments start L rows before their first target.
    features : {"S", "M", "MS"}, default="M"
        "S": OT → OT; "M": 7 → 7; "MS": 7 → OT.
    scale : bool, default=True
        z-score with the train rows' mean and std (ddof 0), as every published ETT number does.

    Returns
    -------
    Splits
    """
    _check_choice("features", features, FEATURES)
    cut = borders(name, lookback)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"df lacks the ETT columns {missing}")
    if len(df) < cut.test[1]:
        raise ValueError(f"{name} needs at least {cut.test[1]:,} rows for the protocol, df has {len(df):,}")

    # Informer's loader: inputs are the target alone (S) or every column with the target last (M, MS)
    columns = (TARGET,) if features == "S" else tuple(c for c in COLUMNS if c != TARGET) + (TARGET,)
    targets = columns if features == "M" else (TARGET,)
    target_index = np.array([columns.index(c) for c in targets])  # (C,)

    x = df.loc[:, list(columns)].to_numpy(dtype=np.float64)  # (T, F)
    bad = ~np.isfinite(x[: cut.test[1]])
    if bad.any():  # one NaN in the train rows would make every scaled value NaN
        row, col = np.argwhere(bad)[0]
        raise ValueError(f"{name}: column {columns[col]!r} is {x[row, col]} at row {row} ({df.index[row]}); the protocol needs finite values")
    x_train = x[slice(*cut.train)]  # (12·month, F)
    mean = x_train.mean(axis=0)  # (F,)
    std = x_train.std(axis=0)  # (F,) ddof 0
    std = np.where(std == 0.0, 1.0, std)  # StandardScaler's guard for constant columns
    z = (x - mean) / std if scale else x  # (T, F)
    return Splits(
        name=name,
        features=features,
        lookback=lookback,
        columns=columns,
        targets=targets,
        target_index=target_index,
        borders=cut,
        mean=mean,
        std=std,
        train=z[slice(*cut.train)],
        val=z[slice(*cut.val)],
        test=z[slice(*cut.test)],
    )


def n_windows(n_rows: int, lookback: int, horizon: int, *, drop_last: bool = False, batch_size: int = 32) -> int:
    """Number of windows: n = max(T − L − H + 1, 0) (stride 1); with ``drop_last``, ⌊n / batch⌋·batch.

    On a test segment (T = 4·month + L) this is 2881 − H for ETTh, 11521 − H for ETTm.
    """
    _check_int("batch_size", batch_size, 1, None)
    n = max(n_rows - lookback - horizon + 1, 0)  # (T, L, H) that hold no window: none
    return (n // batch_size) * batch_size if drop_last else n


def windows(
    values: np.ndarray,
    lookback: int,
    horizon: int,
    target_index: np.ndarray | None = None,
    *,
    drop_last: bool = False,
    batch_size: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """Every (lookback, horizon) window of a segment, stride 1, as Informer's ``Dataset_ETT_*``.

    Window i reads rows ``i … i+L−1`` and forecasts the target channels of rows ``i+L … i+L+H−1``.

    Parameters
    ----------
    values : ndarray of shape (T, F)
        A segment, e.g. ``Splits.test``.
    lookback : int
        L.
    horizon : int
        H.
    target_index : array-like of int of shape (C,), default=None
        Target channels (``Splits.target_index``); default all F.
    drop_last : bool, default=False
        Drop the last ``n mod batch_size`` windows, as a test loader with ``drop_last=True`` does
        (Informer, PatchTST, DLinear before 2023-03-15). Off for an honest full test set.
    batch_size : int, default=32
        Batch size of that loader; used only with ``drop_last``.

    Returns
    -------
    X : ndarray of shape (n, L, F)
    Y : ndarray of shape (n, H, C)
        Read-only views into ``values`` (no copy); ``n = T − L − H + 1``, or the ``drop_last`` count.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"values must have shape (T, F), got {values.shape}")
    T = values.shape[0]
    _check_int("lookback", lookback, 1, None)
    _check_int("horizon", horizon, 1, None)
    _check_int("batch_size", batch_size, 1, None)
    n = n_windows(T, lookback, horizon, drop_last=drop_last, batch_size=batch_size)
    if n < 1:
        kept = f" after dropping the last incomplete batch of {batch_size}" if drop_last else ""
        raise ValueError(f"no window of lookback {lookback} + horizon {horizon} fits in {T} rows{kept}")
    index = np.arange(values.shape[1]) if target_index is None else np.asarray(target_index)
    y = values[:, index]  # (T, C)

    X = np.lib.stride_tricks.sliding_window_view(values[: T - horizon], lookback, axis=0)  # (T−L−H+1, F, L)
    Y = np.lib.stride_tricks.sliding_window_view(y[lookback:], horizon, axis=0)  # (T−L−H+1, C, H)
    return X[:n].transpose(0, 2, 1), Y[:n].transpose(0, 2, 1)  # (n, L, F), (n, H, C)


def naive_forecast(context: np.ndarray, horizon: int, method: str = "repeat", period: int | None = None) -> np.ndarray:
    """Repeat-last or seasonal-naive forecasts from each window's context.

    With T the last context step and h = 1 … H:

    * repeat-last ("Repeat" in the DLinear paper):  ŷ(T+h) = y(T)
    * seasonal naive with period p ≤ L:            ŷ(T+h) = y(T + h − p·⌈h/p⌉)

    Parameters
    ----------
    context : ndarray of shape (n, L, C)
        The target channels of each window's lookback, e.g. ``X[..., splits.target_index]``.
    horizon : int
        H.
    method : {"repeat", "seasonal"}, default="repeat"
    period : int, default=None
        p, required for "seasonal" (24 = a day of hourly rows, 168 = a week); at most L.

    Returns
    -------
    ndarray of shape (n, H, C)
    """
    _check_choice("method", method, NAIVE_METHODS)
    context = np.asarray(context, dtype=np.float64)
    if context.ndim != 3:
        raise ValueError(f"context must have shape (n, L, C), got {context.shape}")
    _check_int("horizon", horizon, 1, None)
    L = context.shape[1]
    if method == "repeat":
        return np.repeat(context[:, -1:, :], horizon, axis=1)  # (n, H, C)
    if period is None:
        raise ValueError("method='seasonal' needs a period p (e.g. 24 for a day of hourly rows)")
    _check_int("period", period, 1, None)
    if period > L:
        raise ValueError(f"seasonal period {period} exceeds the lookback L = {L}; use a lookback of at least {period}")
    h = np.arange(1, horizon + 1)  # (H,)
    source = (L - 1) + h - period * -(-h // period)  # (H,) context row of T + h − p·⌈h/p⌉ (T = row L − 1)
    return context[:, source, :]  # (n, H, C)


class Score(NamedTuple):
    """MSE and MAE over ``n_windows`` windows × H steps × C channels."""

    mse: float
    mae: float
    n_windows: int


def mse_mae(pred: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    """MSE = mean((ŷ − y)²), MAE = mean|ŷ − y| over every element (Informer's ``utils/metrics.py``)."""
    pred, true = np.asarray(pred, dtype=np.float64), np.asarray(true, dtype=np.float64)
    if pred.shape != true.shape:
        raise ValueError(f"pred and true must have the same shape, got {pred.shape} and {true.shape}")
    error = pred - true  # (n, H, C)
    return float(np.mean(error**2)), float(np.mean(np.abs(error)))


def evaluate_naive(
    splits: Splits,
    horizon: int,
    method: str = "repeat",
    period: int | None = None,
    *,
    drop_last: bool = False,
    batch_size: int = 32,
) -> Score:
    """Score a naive baseline on the test segment with the protocol's windows and metrics.

    The targets do not depend on the lookback (the first target is always row 16·month: 11520 for ETTh),
    and neither do these baselines as long as ``period ≤ lookback``.

    Parameters
    ----------
    splits : Splits
        From :func:`split`; its lookback is the context length.
    horizon : int
        H.
    method : {"repeat", "seasonal"}, default="repeat"
    period : int, default=None
        Seasonal period p; default one day (:func:`seasonal_period`: 24 hourly, 96 every 15 min).
    drop_last : bool, default=False
        Drop the last ``n mod batch_size`` test windows (reproduces the DLinear paper's Repeat column).
    batch_size : int, default=32

    Returns
    -------
    Score
        (mse, mae, n_windows).
    """
    if method == "seasonal" and period is None:
        period = seasonal_period(splits.name)
    X, Y = windows(splits.test, splits.lookback, horizon, splits.target_index, drop_last=drop_last, batch_size=batch_size)
    pred = naive_forecast(X[..., splits.target_index], horizon, method, period)  # (n, H, C)
    mse, mae = mse_mae(pred, Y)
    return Score(mse, mae, len(Y))


def _check_choice(label: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{label} must be one of {', '.join(map(repr, choices))}; got {value!r}")


def _check_int(label: str, value, low: int, high: int | None) -> None:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= low
    if not ok or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"≥ {low}"
        raise ValueError(f"{label} must be an integer {bound}; got {value!r}")
