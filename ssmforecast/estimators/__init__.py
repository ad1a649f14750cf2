"""Estimators: scikit-learn regressors (and, next, sktime forecasters) on one training loop."""

from .regressors import MambaRegressor, S4DRegressor, S4Regressor

__all__ = ["S4Regressor", "S4DRegressor", "MambaRegressor"]
