"""ssmforecast: structured state space models (S4, S4D, Mamba) for time-series forecasting.

Layers, each depending only on the ones before it:

- :mod:`ssmforecast.math`: pure tensor math (HiPPO, discretization, convolution kernels, scans).
- :mod:`ssmforecast.nn`: S4, S4D and Mamba layers, residual blocks and the ``Backbone``.
- :mod:`ssmforecast.estimators`: sktime forecasters and scikit-learn regressors on one shared
  training loop; the forecasters read time from the index (irregular series, any forecast time).
- :mod:`ssmforecast.datasets`: the ETT data (downloaded and verified, never shipped) and the
  Informer / LTSF benchmark protocols with naive baselines and published numbers.
"""

from .estimators import MambaForecaster, MambaRegressor, S4DForecaster, S4DRegressor, S4Forecaster, S4Regressor

__version__ = "0.1.0.dev0"
__all__ = ["S4Forecaster", "S4DForecaster", "MambaForecaster", "S4Regressor", "S4DRegressor", "MambaRegressor"]
