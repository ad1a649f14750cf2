"""Time for the forecasters: the step Δ between observations, read from the index.

An SSM is an ODE, so the time between two observations can be its discretization step. A series'
index is read as time in a *time unit* τ_u (the forecaster's ``time_unit``; by default the median
spacing of the training index), and every token carries

    dt_i = (t_i − t_{i−1}) / τ_u        (1 for the first token of a window)

while a forecast query at time t_q sits  ahead = (t_q − t_last) / τ_u  units after the last
observation. A regular series has dt = 1 everywhere and the forecasters then behave exactly as
they would without time stamps.

Index kinds (all that sktime accepts): ``DatetimeIndex`` (times in nanoseconds; the unit is a
``pd.Timedelta``), ``PeriodIndex`` (ordinals; the unit is a number of periods) and integer
indexes (the unit is a number). A ``DatetimeIndex`` whose frequency is a calendar offset of
varying length (months, business days, …) has no fixed duration: it is read on its own grid,
one step per period, and must then be regular.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: ``time_unit`` value that ignores the time stamps: every step is one unit (row numbers).
ROWS = "rows"


class InSampleForecastError(ValueError, NotImplementedError):
    """A forecast time that is not after the last observation.

    A ValueError (bad input) that is also the NotImplementedError sktime's contract expects for
    in-sample forecasts from a forecaster without that capability.
    """


def time_ints(index: pd.Index) -> np.ndarray:
    """Index → int64 time: nanoseconds for datetimes, ordinals for periods, the values otherwise."""
    if isinstance(index, pd.DatetimeIndex):
        return index.as_unit("ns").asi8
    if isinstance(index, pd.PeriodIndex):
        return index.asi8
    return np.asarray(index, dtype=np.int64)


def calendar_grid(index: pd.Index) -> bool:
    """True for a DatetimeIndex whose frequency is a calendar offset without a fixed duration
    (months, weeks, business days, …); False for fixed durations (days, hours, …) and no freq."""
    if not isinstance(index, pd.DatetimeIndex):
        return False
    freq = index.freq
    if freq is None and len(index) >= 3:
        inferred = pd.infer_freq(index)
        freq = pd.tseries.frequencies.to_offset(inferred) if inferred else None
    if freq is None:
        return False
    try:
        freq.nanos
    except ValueError:
        return True
    return False


def resolve_unit(time_unit, indexes: list[pd.Index]) -> float | str:
    """The time unit in the index's int64 time (ns, ordinals or values), or ROWS.

    None → the median spacing of all the training indexes; a ``pd.Timedelta`` or a string such as
    "30min" for datetime indexes; a positive number otherwise.
    """
    if isinstance(time_unit, str) and time_unit == ROWS:
        return ROWS
    datetime = isinstance(indexes[0], pd.DatetimeIndex)
    if time_unit is None:
        gaps = np.concatenate([np.diff(time_ints(ix)) for ix in indexes])
        gaps = gaps[gaps > 0]
        return float(np.median(gaps)) if len(gaps) else 1.0
    if datetime:
        try:
            unit = pd.Timedelta(time_unit)
        except (TypeError, ValueError) as err:
            raise ValueError(f"time_unit must be a duration such as '1h' for a DatetimeIndex, got {time_unit!r}") from err
        value = float(unit.value)
    elif isinstance(time_unit, (int, float, np.integer, np.floating)) and not isinstance(time_unit, bool):
        value = float(time_unit)
    else:
        raise ValueError(f"time_unit must be a positive number for a {type(indexes[0]).__name__}, got {time_unit!r}")
    if not value > 0:
        raise ValueError(f"time_unit must be positive, got {time_unit!r}")
    return value


def unit_label(unit: float | str, index: pd.Index):
    """The fitted ``time_unit_`` as a user reads it: a Timedelta for datetimes, else a number."""
    if unit == ROWS:
        return ROWS
    return pd.Timedelta(int(round(unit)), unit="ns") if isinstance(index, pd.DatetimeIndex) else unit


def steps(index: pd.Index, unit: float | str) -> np.ndarray:
    """dt (T,) of one series: gaps in time units, 1 for the first observation (and in ROWS mode)."""
    if unit == ROWS:
        return np.ones(len(index))
    dt = np.ones(len(index))
    dt[1:] = np.diff(time_ints(index)) / unit
    return dt


def shift(last: pd.Index, ahead: np.ndarray, unit: float) -> pd.Index:
    """Times ``ahead`` (in time units) after the one-element index ``last``, as an index of its kind."""
    t = time_ints(last)[0] + np.asarray(ahead, dtype=np.float64) * unit
    if isinstance(last, pd.DatetimeIndex):
        times = pd.DatetimeIndex(np.round(t).astype(np.int64).astype("datetime64[ns]"))  # UTC instants (time_ints)
        return (times if last.tz is None else times.tz_localize("UTC").tz_convert(last.tz)).as_unit(last.unit)
    if isinstance(last, pd.PeriodIndex):
        return pd.PeriodIndex.from_ordinals(np.round(t).astype(np.int64), freq=last.freq)
    return pd.Index(np.round(t).astype(np.int64))


def check_index(index: pd.Index, name: str) -> None:
    """ValueError naming the first offending time stamp: NaT, mixed time zones, not increasing."""
    if isinstance(index, pd.MultiIndex):
        frame = index.to_frame(index=False)
        for _, rows in frame.groupby(list(frame.columns[:-1]), sort=False):
            check_index(pd.Index(rows.iloc[:, -1]), name)
        return
    if index.dtype == object and len(index):
        zones = {getattr(t, "tzinfo", None) is not None and str(t.tzinfo) for t in index if isinstance(t, pd.Timestamp)}
        if len(zones) > 1:
            first = next(t for t in index if isinstance(t, pd.Timestamp) and str(t.tzinfo) != str(index[0].tzinfo))
            raise ValueError(f"{name} mixes time zones: {first!r} differs from the first time stamp {index[0]!r}")
    if isinstance(index, (pd.DatetimeIndex, pd.PeriodIndex)) and index.hasnans:
        i = int(np.flatnonzero(index.isna())[0])
        raise ValueError(f"{name} has a missing time stamp (NaT) at position {i}")
    if not isinstance(index, (pd.DatetimeIndex, pd.PeriodIndex)) and not pd.api.types.is_integer_dtype(index):
        return  # left to sktime's own type checks
    t = time_ints(index)
    bad = np.flatnonzero(np.diff(t) <= 0)
    if len(bad):
        i = int(bad[0]) + 1
        if t[i] == t[i - 1]:
            problem = f"a duplicate time stamp {index[i]!r}"
        else:
            problem = f"time stamps out of order: {index[i]!r} comes after {index[i - 1]!r}"
        raise ValueError(f"{name} has {problem} (position {i}); sort the index and drop duplicates")
