"""ETT data and the long-horizon forecasting protocol (Informer / LTSF), in numpy and pandas.

- :func:`load_ett`: read, or download once into a cache, and verify the original ETT files
  (Zhou et al., Informer, AAAI 2021; CC BY-ND 4.0, never shipped with ssmforecast).
- :mod:`~ssmforecast.datasets.protocol`: Informer's borders, train-only z-score, windows, feature
  modes, metrics and the naive baselines (:func:`split`, :func:`windows`, :func:`evaluate_naive`).
- :mod:`~ssmforecast.datasets.published`: published numbers with their sources (:func:`published`).

See ``docs/datasets.md``.
"""

from .ett import BASE_URL, CACHE_ENV, COLUMNS, ETT_NAMES, SHA256, TARGET, default_cache_dir, load_ett
from .protocol import (
    DEFAULT_LOOKBACK,
    FEATURES,
    INFORMER_HORIZONS,
    INFORMER_SCRIPT_LOOKBACK,
    LTSF_HORIZONS,
    PROTOCOLS,
    Borders,
    Score,
    Splits,
    borders,
    evaluate_naive,
    horizons,
    mse_mae,
    n_windows,
    naive_forecast,
    seasonal_period,
    split,
    windows,
)
from .published import SOURCES, published

__all__ = [
    "load_ett",
    "default_cache_dir",
    "ETT_NAMES",
    "COLUMNS",
    "TARGET",
    "SHA256",
    "BASE_URL",
    "CACHE_ENV",
    "split",
    "Splits",
    "borders",
    "Borders",
    "windows",
    "n_windows",
    "naive_forecast",
    "evaluate_naive",
    "Score",
    "mse_mae",
    "horizons",
    "seasonal_period",
    "PROTOCOLS",
    "FEATURES",
    "INFORMER_HORIZONS",
    "LTSF_HORIZONS",
    "DEFAULT_LOOKBACK",
    "INFORMER_SCRIPT_LOOKBACK",
    "published",
    "SOURCES",
]
