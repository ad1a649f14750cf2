"""Estimators on one shared training loop: sktime forecasters and scikit-learn regressors."""

from .forecasters import MambaForecaster, S4DForecaster, S4Forecaster
from .regressors import MambaRegressor, S4DRegressor, S4Regressor

__all__ = ["S4Forecaster", "S4DForecaster", "MambaForecaster", "S4Regressor", "S4DRegressor", "MambaRegressor"]
