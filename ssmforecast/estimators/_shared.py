"""What the regressors and the forecasters share: the network and training hyper-parameters
(their constraints and their documentation), building the Backbone, and one seeded call of the
training loop.

Each estimator only turns its data into (inputs, targets) tensors and its predictions back.
"""

from __future__ import annotations

import copy
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions

from ..nn import Backbone
from ._loop import DEVICES, PRECISIONS, TrainConfig, seed_from, train

#: Constraints (scikit-learn's declarative format) of the parameters every estimator has.
SHARED_CONSTRAINTS: dict = {
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
    "random_state": ["random_state"],
    "device": [StrOptions(set(DEVICES))],
    "devices": [Interval(Integral, 1, None, closed="left")],
    "precision": [StrOptions(set(PRECISIONS))],
    "verbose": ["boolean"],
}

NETWORK_DOC = """\
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
        Learning rate of the SSM parameters (Λ, Δ, B, P; Mamba's A_log, D); None uses ``lr``.
    grad_clip : float or None, default=1.0
        Maximum gradient norm; None for no clipping.
    validation_fraction : float, default=0.1
        The last fraction of the samples (in time order) is held out for early stopping; the
        weights of the best validation epoch are kept. 0 for none.
    patience : int or None, default=10
        Epochs without validation improvement before stopping; None for no early stopping.
"""

RUNTIME_DOC = """\
    random_state : int, RandomState instance or None, default=None
        Seed of the initial weights, shuffling and dropout; an int makes ``fit`` reproducible.
    device : {"auto", "cpu", "cuda"}, default="auto"
        "auto" uses a CUDA GPU when one is available.
    devices : int, default=1
        Number of data-parallel training processes (Lightning Fabric's DDP): one per GPU on
        "cuda" (at most the number of GPUs), any number of CPU processes (gloo) on "cpu". Each
        process takes ``batch_size`` samples per step, so a step sees ``devices * batch_size``.
        With more than one, ``fit`` starts the processes with the spawn method: a script must
        guard its entry point with ``if __name__ == "__main__":``.
    precision : {"32", "64", "bf16-mixed", "16-mixed"}, default="32"
        Training precision (Lightning Fabric); the SSM kernels and scans always run in float32
        or higher.
    verbose : bool, default=False
        Show a tqdm progress bar of the epochs.
"""


def check_even_state(est) -> None:
    """S4 and S4D store N/2 conjugate pairs: d_state must be even."""
    if est.d_state is not None and est._layer in ("s4", "s4d") and est.d_state % 2:
        raise ValueError(f"d_state must be even for {type(est).__name__} (N/2 conjugate pairs), got {est.d_state}")


def build_backbone(est, d_input: int, d_output: int, hold: str = "constant") -> Backbone:
    """The Backbone described by an estimator's network parameters (and the forecasters' hold:
    "foh" is S4D's first-order-hold discretization under blocks that pass their input as is)."""
    layer_kwargs = {} if est.d_state is None else {"d_state": est.d_state}
    if hold == "foh":
        layer_kwargs["discretization"], hold = "foh", "constant"
    return Backbone(
        d_input,
        est.d_model,
        est.n_layers,
        layer=est._layer,
        d_output=d_output,
        dropout=est.dropout,
        ff_expand=est.ff_expand,
        layer_kwargs=layer_kwargs,
        hold=hold,
    )


def model_dtype(est) -> torch.dtype:
    return torch.float64 if est.precision == "64" else torch.float32


def fit_network(est, build, inputs: tuple[np.ndarray, ...], targets: np.ndarray, loss_fn, module=None, **overrides):
    """Seeded training: ``build()`` makes the module (unless a fitted ``module`` is given to
    fine-tune) under the estimator's seed; the global torch RNG is left as it was.

    ``overrides`` replace fields of the :class:`TrainConfig` built from the estimator (e.g.
    ``max_epochs`` for fine-tuning). → (module, history).
    """
    seed = seed_from(est.random_state)
    dtype = model_dtype(est)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if module is None:
            module = build().to(dtype)
        else:  # fine-tuning: a copy, so that a failed run (e.g. a non-finite loss) leaves the fitted module as it was
            module = copy.deepcopy(module)
        tensors = tuple(torch.as_tensor(x, dtype=dtype) for x in inputs)
        config = TrainConfig(
            max_epochs=est.max_epochs,
            batch_size=est.batch_size,
            lr=est.lr,
            weight_decay=est.weight_decay,
            ssm_lr=est.ssm_lr,
            grad_clip=est.grad_clip,
            validation_fraction=est.validation_fraction,
            patience=est.patience,
            seed=seed,
            device=est.device,
            devices=est.devices,
            precision=est.precision,
            verbose=est.verbose,
        )
        for name, value in overrides.items():
            setattr(config, name, value)
        return train(module, tensors, torch.as_tensor(targets, dtype=dtype), loss_fn, config)


def predict_batches(module: torch.nn.Module, *inputs: np.ndarray | None, batch: int = 1024) -> np.ndarray:
    """module(*inputs) in batches of ``batch`` samples (axis 0), without gradients → float64 ndarray."""
    param = next(module.parameters())
    tensors = [torch.as_tensor(x, dtype=param.dtype, device=param.device) for x in inputs]
    with torch.no_grad():
        out = [module(*(t[i : i + batch] for t in tensors)) for i in range(0, len(tensors[0]), batch)]
    return torch.cat(out).double().cpu().numpy()


def safe_scale(std: np.ndarray) -> np.ndarray:
    """Standard deviations with zeros (constant columns) replaced by one."""
    std = np.asarray(std, dtype=np.float64)
    return np.where(std > 0, std, 1.0)
