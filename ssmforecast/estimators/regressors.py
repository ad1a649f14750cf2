"""scikit-learn regressors on sequences: ``S4Regressor``, ``S4DRegressor``, ``MambaRegressor``.

X of shape (n_samples, seq_len) is read as n_samples univariate sequences; X of shape
(n_samples, seq_len, n_features) as multivariate ones. A :class:`~ssmforecast.nn.Backbone` runs
over each sequence and a linear head reads its last time step: y (n_samples,) or
(n_samples, n_outputs). Inputs and targets are standardised with training statistics inside the
estimator, so callers need no scaler (a ``StandardScaler`` in a ``Pipeline`` still works).
The three classes share one implementation and differ only in the sequence layer.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from ..nn import Backbone
from ._loop import DEVICES, PRECISIONS, TrainConfig, resolve_device, seed_from, train

LOSSES = {"mse": nn.MSELoss(), "mae": nn.L1Loss(), "huber": nn.HuberLoss()}


class _LastStep(nn.Module):
    """Backbone over the sequence, prediction from the last step: (batch, L, F) → (batch, n_outputs)."""

    def __init__(self, backbone: Backbone):
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)[:, -1]  # (batch, n_outputs)


_PARAMS_DOC = """
    Parameters
    ----------
    d_model : int, default=32
        Width H of the residual blocks.
    n_layers : int, default=2
        Number of residual blocks.
    d_state : int or None, default=None
        State size N of each SSM; None uses the layer's default (64 for S4 and S4D, 16 for Mamba).
    dropout : float, default=0.0
        Dropout in the residual branches.
    ff_expand : int or None, default=None
        Width factor of a GLU feed-forward sub-block in each residual block; None for none.
    max_epochs : int, default=50
        Maximum number of passes over the training samples.
    batch_size : int, default=32
    lr : float, default=3e-3
        AdamW learning rate (warm-up then cosine decay).
    weight_decay : float, default=0.01
        AdamW weight decay of the weight matrices (never of SSM parameters, biases or norms).
    ssm_lr : float or None, default=None
        Learning rate of the SSM parameters (Λ, Δ, B, P, A_log); None uses ``lr``.
    grad_clip : float or None, default=1.0
        Maximum gradient norm; None for no clipping.
    validation_fraction : float, default=0.1
        The last fraction of the samples (taken to be in time order) is held out for early
        stopping; the weights of the best validation epoch are kept. 0 for none.
    patience : int or None, default=10
        Epochs without validation improvement before stopping; None for no early stopping.
    loss : {"mse", "mae", "huber"}, default="mse"
    random_state : int, RandomState instance or None, default=None
        Seed of the initial weights, shuffling and dropout; an int makes ``fit`` reproducible.
    device : {"auto", "cpu", "cuda"}, default="auto"
        "auto" uses a CUDA GPU when one is available.
    precision : {"32", "64", "bf16-mixed", "16-mixed"}, default="32"
        Training precision (Lightning Fabric); the SSM kernels and scans always run in float32
        or higher.
    verbose : bool, default=False
        Show a tqdm progress bar of the epochs.

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
"""


class _SSMRegressor(RegressorMixin, BaseEstimator):
    _layer: str = ""

    _parameter_constraints: dict = {
        "d_model": [Interval(Integral, 1, None, closed="left")],
        "n_layers": [Interval(Integral, 1, None, closed="left")],
        "d_state": [Interval(Integral, 1, None, closed="left"), None],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "ff_expand": [Interval(Integral, 1, None, closed="left"), None],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "ssm_lr": [Interval(Real, 0, None, closed="neither"), None],
        "grad_clip": [Interval(Real, 0, None, closed="neither"), None],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "patience": [Interval(Integral, 0, None, closed="left"), None],
        "loss": [StrOptions(set(LOSSES))],
        "random_state": ["random_state"],
        "device": [StrOptions(set(DEVICES))],
        "precision": [StrOptions(set(PRECISIONS))],
        "verbose": ["boolean"],
    }

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
        if self.d_state is not None and self._layer in ("s4", "s4d") and self.d_state % 2:
            raise ValueError(f"d_state must be even for {type(self).__name__} (N/2 conjugate pairs), got {self.d_state}")
        resolve_device(self.device)
        seqs = self._sequences(X)  # (n, L, F)
        self.sequence_shape_ = seqs.shape[1:]
        y2 = y.reshape(len(y), -1)  # (n, n_outputs)
        self.n_outputs_ = y2.shape[1]
        self._y_1d = y.ndim == 1
        self.x_mean_ = seqs.mean(axis=(0, 1))  # (F,)
        self.x_scale_ = _safe_scale(seqs.std(axis=(0, 1)))
        self.y_mean_ = y2.mean(axis=0)  # (n_outputs,)
        self.y_scale_ = _safe_scale(y2.std(axis=0))
        seed = seed_from(self.random_state)
        dtype = torch.float64 if self.precision == "64" else torch.float32
        layer_kwargs = {} if self.d_state is None else {"d_state": self.d_state}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            backbone = Backbone(
                seqs.shape[2],
                self.d_model,
                self.n_layers,
                layer=self._layer,
                d_output=self.n_outputs_,
                dropout=self.dropout,
                ff_expand=self.ff_expand,
                layer_kwargs=layer_kwargs,
            )
            module = _LastStep(backbone).to(dtype)
            inputs = torch.as_tensor((seqs - self.x_mean_) / self.x_scale_, dtype=dtype)
            targets = torch.as_tensor((y2 - self.y_mean_) / self.y_scale_, dtype=dtype)
            config = TrainConfig(
                max_epochs=self.max_epochs,
                batch_size=self.batch_size,
                lr=self.lr,
                weight_decay=self.weight_decay,
                ssm_lr=self.ssm_lr,
                grad_clip=self.grad_clip,
                validation_fraction=self.validation_fraction,
                patience=self.patience,
                seed=seed,
                device=self.device,
                precision=self.precision,
                verbose=self.verbose,
            )
            self.module_, self.history_ = train(module, (inputs,), targets, LOSSES[self.loss], config)
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
        param = next(self.module_.parameters())
        x = torch.as_tensor((seqs - self.x_mean_) / self.x_scale_, dtype=param.dtype, device=param.device)
        with torch.no_grad():
            out = torch.cat([self.module_(x[i : i + 1024]) for i in range(0, len(x), 1024)]) if len(x) else x.new_zeros(0, self.n_outputs_)
        pred = out.double().cpu().numpy() * self.y_scale_ + self.y_mean_  # (n, n_outputs)
        return pred[:, 0] if self._y_1d else pred


def _safe_scale(std: np.ndarray) -> np.ndarray:
    """Standard deviations with zeros (constant columns) replaced by one."""
    std = np.asarray(std, dtype=np.float64)
    return np.where(std > 0, std, 1.0)


def _regressor(name: str, layer: str, summary: str) -> type:
    doc = f"{summary}\n\n    X (n_samples, seq_len) or (n_samples, seq_len, n_features) is read as sequences.\n{_PARAMS_DOC}"
    return type(name, (_SSMRegressor,), {"_layer": layer, "__doc__": doc, "__module__": __name__})


S4Regressor = _regressor("S4Regressor", "s4", "Sequence regressor on an S4 backbone (DPLR HiPPO-LegS SSMs, Cauchy kernel).")
S4DRegressor = _regressor("S4DRegressor", "s4d", "Sequence regressor on an S4D backbone (diagonal SSMs, Vandermonde kernel).")
MambaRegressor = _regressor("MambaRegressor", "mamba", "Sequence regressor on a Mamba backbone (selective scan).")
