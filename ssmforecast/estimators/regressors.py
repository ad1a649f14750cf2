"""scikit-learn regressors on sequences: ``S4Regressor``, ``S4DRegressor``, ``MambaRegressor``.

X of shape (n_samples, seq_len) is read as n_samples univariate sequences; X of shape
(n_samples, seq_len, n_features) as multivariate ones. A :class:`~ssmforecast.nn.Backbone` runs
over each sequence and a linear head reads its last time step: y (n_samples,) or
(n_samples, n_outputs). Inputs and targets are standardised with training statistics inside the
estimator, so callers need no scaler (a ``StandardScaler`` in a ``Pipeline`` still works).
The three classes share one implementation and differ only in the sequence layer.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data
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

LOSSES = {"mse": nn.MSELoss(), "mae": nn.L1Loss(), "huber": nn.HuberLoss()}


class _LastStep(nn.Module):
    """Backbone over the sequence, prediction from the last step: (batch, L, F) → (batch, n_outputs)."""

    def __init__(self, backbone: Backbone):
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)[:, -1]  # (batch, n_outputs)


_PARAMS_DOC = f"""
    Parameters
    ----------
{NETWORK_DOC}    loss : {{"mse", "mae", "huber"}}, default="mse"
{RUNTIME_DOC}
    Attributes
    ----------
    module_ : torch.nn.Module
        The fitted network (Backbone + last-step readout), in eval mode.
    history_ : list of dict
        Per epoch: ``epoch``, ``train_loss``, ``val_loss`` (None without validation), ``lr``.
    n_features_in_ : int
        Sequence length seen in ``fit`` (scikit-learn's second axis of X).
    sequence_shape_ : tuple
        (seq_len, n_features) of the training sequences.
    n_outputs_ : int
        Number of targets.
    x_mean_, x_scale_ : ndarray
        Per-feature standardisation of X (over samples and steps), from ``fit``.
    y_mean_, y_scale_ : ndarray
        Per-target standardisation of y, from ``fit``.
"""


class _SSMRegressor(RegressorMixin, BaseEstimator):
    _layer: str = ""

    _parameter_constraints: dict = {**SHARED_CONSTRAINTS, "loss": [StrOptions(set(LOSSES))]}

    def __init__(
        self,
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
        loss="mse",
        random_state=None,
        device="auto",
        devices=1,
        precision="32",
        verbose=False,
    ):
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
        self.random_state = random_state
        self.device = device
        self.devices = devices
        self.precision = precision
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.target_tags.multi_output = True
        return tags

    def _sequences(self, X) -> np.ndarray:
        """(n, L) → (n, L, 1); (n, L, F) unchanged; float64."""
        X = np.asarray(X, dtype=np.float64)
        return X[:, :, None] if X.ndim == 2 else X

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fit on sequences X (n_samples, seq_len[, n_features]) and targets y (n_samples[, n_outputs]).

        Returns
        -------
        self : object
        """
        X, y = validate_data(self, X, y, allow_nd=True, multi_output=True, y_numeric=True, dtype=np.float64)
        if X.ndim > 3:
            raise ValueError(f"X must have shape (n_samples, seq_len) or (n_samples, seq_len, n_features), got {X.shape}")
        check_even_state(self)
        resolve_device(self.device, self.devices)
        seqs = self._sequences(X)  # (n, L, F)
        if 0 in seqs.shape[1:]:
            raise ValueError(f"X holds sequences of shape {seqs.shape[1:]} (seq_len, n_features): both must be at least 1")
        self.sequence_shape_ = seqs.shape[1:]
        y2 = y.reshape(len(y), -1)  # (n, n_outputs)
        self.n_outputs_ = y2.shape[1]
        self._y_1d = y.ndim == 1
        self.x_mean_ = seqs.mean(axis=(0, 1))  # (F,)
        self.x_scale_ = safe_scale(seqs.std(axis=(0, 1)))
        self.y_mean_ = y2.mean(axis=0)  # (n_outputs,)
        self.y_scale_ = safe_scale(y2.std(axis=0))
        self.module_, self.history_ = fit_network(
            self,
            lambda: _LastStep(build_backbone(self, seqs.shape[2], self.n_outputs_)),
            ((seqs - self.x_mean_) / self.x_scale_,),
            (y2 - self.y_mean_) / self.y_scale_,
            LOSSES[self.loss],
        )
        return self

    def predict(self, X):
        """Predict y for sequences X (n_samples, seq_len[, n_features]).

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        """
        check_is_fitted(self)
        X = validate_data(self, X, allow_nd=True, reset=False, dtype=np.float64)
        seqs = self._sequences(X)
        if seqs.shape[1:] != self.sequence_shape_:
            raise ValueError(f"X has sequences of shape {seqs.shape[1:]}, but the model was fitted on {self.sequence_shape_}")
        x = (seqs - self.x_mean_) / self.x_scale_
        out = predict_batches(self.module_, x) if len(x) else np.zeros((0, self.n_outputs_))
        pred = out * self.y_scale_ + self.y_mean_  # (n, n_outputs)
        return pred[:, 0] if self._y_1d else pred


def _regressor(name: str, layer: str, summary: str) -> type:
    doc = f"{summary}\n\n    X (n_samples, seq_len) or (n_samples, seq_len, n_features) is read as sequences.\n{_PARAMS_DOC}"
    return type(name, (_SSMRegressor,), {"_layer": layer, "__doc__": doc, "__module__": __name__})


S4Regressor = _regressor("S4Regressor", "s4", "Sequence regressor on an S4 backbone (DPLR HiPPO-LegS SSMs, Cauchy kernel).")
S4DRegressor = _regressor("S4DRegressor", "s4d", "Sequence regressor on an S4D backbone (diagonal SSMs, Vandermonde kernel).")
MambaRegressor = _regressor("MambaRegressor", "mamba", "Sequence regressor on a Mamba backbone (selective scan).")
