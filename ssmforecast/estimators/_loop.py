"""The one training loop every estimator uses.

``train(module, inputs, targets, loss_fn, config)`` fits a ``torch.nn.Module`` whose ``forward``
takes the tensors of ``inputs`` (each with the sample axis first) and returns predictions shaped
like ``targets``. It owns what would otherwise be copied into each estimator:

- a time-ordered validation tail (the last ``validation_fraction`` of the samples, never shuffled
  into training) for early stopping with best-weights restore;
- AdamW with parameter groups built from the ``_optim`` hints of
  :func:`ssmforecast.nn.register_ssm_param` (SSM parameters: no weight decay, optional own lr;
  biases and norms: no weight decay), a linear warm-up + cosine schedule, gradient clipping;
- devices and precision through Lightning Fabric (``device="auto"|"cpu"|"cuda"``,
  ``precision="32"|"bf16-mixed"|"16-mixed"``; ``"64"``: module and tensors in float64, converted
  here, since Fabric's own float64 plugin hands float32 outputs to the loss);
- data-parallel training on ``devices`` > 1 processes with Fabric's DDP strategy (gloo on CPU,
  NCCL on GPUs), started by ``Fabric.launch`` with the spawn method; each process trains on its
  share of every epoch's permutation, gradients are averaged by DDP, and the losses that drive
  early stopping are averaged over the processes, so every process stops at the same epoch;
- seeding: with an integer ``random_state`` the initial weights, the shuffling and dropout are
  reproducible, and the caller's global torch RNG is left as it was;
- a tqdm progress bar when ``verbose``, and the per-epoch history of train and validation loss.
"""

from __future__ import annotations

import copy
import math
import os
import pickle
import tempfile
import warnings
from dataclasses import dataclass
from numbers import Integral

import numpy as np
import torch
from torch import nn

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = {"32": "32-true", "64": "64-true", "bf16-mixed": "bf16-mixed", "16-mixed": "16-mixed"}


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`train` (the estimators' ``__init__`` arguments of the same names)."""

    max_epochs: int = 50
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.01
    ssm_lr: float | None = None
    grad_clip: float | None = 1.0
    validation_fraction: float = 0.1
    patience: int | None = 10
    warmup_fraction: float = 0.05
    seed: int = 0
    device: str = "auto"
    devices: int = 1
    precision: str = "32"
    verbose: bool = False
    #: Score the starting weights on the validation tail too, and keep them unless an epoch beats
    #: them: for a module that starts fitted (the forecasters' ``linear_skip="lstsq"``).
    keep_start: bool = False


def resolve_device(device: str, devices: int = 1) -> str:
    """"auto" → "cuda" if available else "cpu"; ValueError for an unknown name, a missing GPU, a
    ``devices`` that is not an int ≥ 1, or more ``devices`` than GPUs on "cuda"."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; valid choices are {', '.join(map(repr, DEVICES))}")
    if isinstance(devices, bool) or not isinstance(devices, Integral) or devices < 1:
        raise ValueError(f"devices must be an int >= 1 (the number of data-parallel processes), got {devices!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but no CUDA GPU is available; use device='cpu' or 'auto'")
    if device == "cuda" and devices > torch.cuda.device_count():
        raise ValueError(
            f"devices={devices} processes need {devices} GPUs with device='cuda', but {torch.cuda.device_count()} "
            "are available; lower devices, or use device='cpu' (one process per device, any number)"
        )
    return device


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid choices are {', '.join(map(repr, PRECISIONS))}")
    return PRECISIONS[precision]


def parameter_groups(module: nn.Module, lr: float, weight_decay: float, ssm_lr: float | None) -> list[dict]:
    """AdamW groups: SSM parameters (marked ``_optim``) with their hints, 1-D parameters (biases,
    norms) without weight decay, the other weights with ``weight_decay``."""
    groups: dict[tuple, dict] = {}
    for p in module.parameters():
        if not p.requires_grad:
            continue
        hint = getattr(p, "_optim", None)
        if hint is not None:
            opts = {"weight_decay": hint.get("weight_decay", 0.0), "lr": hint.get("lr", ssm_lr if ssm_lr is not None else lr)}
        elif p.ndim < 2:
            opts = {"weight_decay": 0.0, "lr": lr}
        else:
            opts = {"weight_decay": weight_decay, "lr": lr}
        key = tuple(sorted(opts.items()))
        groups.setdefault(key, {"params": [], **opts})["params"].append(p)
    return list(groups.values())


def _warmup_cosine(total_steps: int, warmup_fraction: float):
    warmup = max(1, int(round(warmup_fraction * total_steps)))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def split_validation(n_samples: int, validation_fraction: float) -> int:
    """Number of training samples: the validation tail is the last ⌈fraction · n⌉ samples (none
    when fraction is 0 or fewer than 2 samples would remain for training)."""
    if not 0 <= validation_fraction < 1:
        raise ValueError(f"validation_fraction must lie in [0, 1), got {validation_fraction!r}")
    # ε: a fraction written as k / n must hold out k samples, not k + 1 through rounding
    n_val = int(math.ceil(validation_fraction * n_samples - 1e-9))
    if n_val == 0 or n_samples - n_val < 2:
        if n_val:
            warnings.warn(
                f"validation_fraction={validation_fraction:g} of {n_samples} samples would leave fewer than 2 to train on: "
                "training on all of them, without validation or early stopping",
                UserWarning,
                stacklevel=2,
            )
        return n_samples
    return n_samples - n_val


def train(
    module: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    targets: torch.Tensor,
    loss_fn,
    config: TrainConfig,
) -> tuple[nn.Module, list[dict]]:
    """Fit ``module`` so that ``loss_fn(module(*inputs), targets)`` is small; → (module, history).

    Samples (axis 0 of every tensor) are taken to be in time order: the validation tail is the
    last ``config.validation_fraction`` of them. The returned module holds the weights of the
    epoch with the best validation loss (or the best training loss without validation), on the
    training device and in eval mode; ``history`` has one dict per epoch: ``epoch``, ``train_loss``,
    ``val_loss`` (None without validation), ``lr`` (the schedule's rate after the epoch's last step:
    0 after the last step of a full run). With ``config.keep_start`` (and validation) the
    starting weights are scored first, as epoch −1 (``train_loss`` None), and kept if no epoch beats them.

    With ``config.devices`` > 1, ``config.devices`` processes train copies of the module with
    Fabric's DDP strategy (``batch_size`` samples per process and step); the weights and history
    of process 0 come back into ``module``. ``loss_fn`` and ``module`` must then be picklable.
    """
    from lightning_fabric import Fabric  # heavy import: only when training

    device = resolve_device(config.device, config.devices)
    precision = check_precision(config.precision)
    if precision == "64-true":
        # Fabric's "64-true" casts the module's outputs to the default dtype (float32) before they
        # reach the loss; float64 training is a float64 module on float64 tensors under the no-op
        # "32-true" plugin instead
        module = module.double()
        inputs = tuple(x.double() if x.is_floating_point() else x for x in inputs)
        targets = targets.double() if targets.is_floating_point() else targets
        precision = "32-true"
    if config.devices == 1:
        fabric = Fabric(accelerator=device, devices=1, precision=precision)
        history = _fit(fabric, module, inputs, targets, loss_fn, config)
    else:
        # "ddp_spawn": processes started by the spawn method (safe with CUDA and with this process's
        # thread pools), gloo on CPU, NCCL on GPUs
        fabric = Fabric(accelerator=device, devices=int(config.devices), strategy="ddp_spawn", precision=precision)
        history = _fit_in_processes(fabric, module, inputs, targets, loss_fn, config)
    module.eval()
    return module, history


def _fit_in_processes(fabric, module: nn.Module, inputs, targets, loss_fn, config: TrainConfig) -> list[dict]:
    """Run :func:`_fit_process` on the processes of ``fabric`` (``fabric.launch``); load the best
    weights into ``module``, on the first device → history.

    The module goes to the processes pickled by the standard pickler: torch.multiprocessing's
    would drop the parameters' attributes (the ``_optim`` hints of the SSM parameters). The
    weights come back through a checkpoint file, not as launch's return value: tensors returned
    through its queue are shared by file descriptors that vanish when the process exits before
    this one reads them.
    """
    port = os.environ.get("MASTER_PORT")
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "trained.ckpt")
        try:
            fabric.launch(_fit_process, pickle.dumps(module), inputs, targets, loss_fn, config, path)
        finally:  # the launcher sets MASTER_PORT in this process: unset it, so that later fits (and
            # processes started from here, such as joblib workers) each pick a free port
            if port is None:
                os.environ.pop("MASTER_PORT", None)
            else:
                os.environ["MASTER_PORT"] = port
        trained = torch.load(path, map_location="cpu", weights_only=True)
    module.load_state_dict(trained["model"])
    module.to(fabric.device)  # where one-device training leaves it too
    return trained["history"]


def _fit_process(fabric, pickled_module: bytes, inputs, targets, loss_fn, config: TrainConfig, path: str) -> None:
    """One DDP process (run by ``Fabric.launch``); process 0 saves the best weights and the
    history to ``path``. Each process seeds its own dropout masks."""
    module = pickle.loads(pickled_module)
    torch.manual_seed(config.seed + fabric.global_rank)
    history = _fit(fabric, module, inputs, targets, loss_fn, config)
    fabric.save(path, {"model": module, "history": history})


def _fit(fabric, module: nn.Module, inputs, targets, loss_fn, config: TrainConfig) -> list[dict]:
    """The loop on one process of ``fabric`` (the only one, or one of ``fabric.world_size``):
    loads the best weights into ``module`` → history."""
    rank, world = fabric.global_rank, fabric.world_size  # 0, 1 on one device
    n = targets.shape[0]
    n_train = split_validation(n, config.validation_fraction)
    train_idx = torch.arange(n_train)
    val_idx = torch.arange(n_train, n)
    generator = torch.Generator().manual_seed(config.seed)  # the same permutations on every process
    groups = parameter_groups(module, config.lr, config.weight_decay, config.ssm_lr)
    optimizer = torch.optim.AdamW(groups, lr=config.lr)
    steps_per_epoch = max(1, math.ceil(math.ceil(n_train / world) / config.batch_size))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _warmup_cosine(config.max_epochs * steps_per_epoch, config.warmup_fraction)
    )
    model, optimizer = fabric.setup(module, optimizer)

    def share(order: torch.Tensor) -> torch.Tensor:
        """This process's share of ``order``, split as by torch's DistributedSampler: wrapped around
        to a multiple of world (so that every process makes the same number of forward passes),
        then every world-th sample from position rank. On one process: all of ``order``."""
        per_process = math.ceil(len(order) / world)
        return order[torch.arange(world * per_process) % len(order)][rank::world]

    def batches(order: torch.Tensor):
        for start in range(0, len(order), config.batch_size):
            b = order[start : start + config.batch_size]
            yield [fabric.to_device(x[b]) for x in inputs], fabric.to_device(targets[b])

    def mean_over_processes(total: float, count: int) -> float:
        """Σ total / Σ count over the processes: the same number on each, so that all stop at the
        same epoch (with more than one, the at most world − 1 wrapped-around samples count twice)."""
        if world > 1:
            sums = fabric.all_reduce(torch.tensor([total, count], dtype=torch.float64), reduce_op="sum")
            total, count = sums.tolist()
        return total / count

    def evaluate(idx: torch.Tensor) -> float:
        model.eval()
        total, mine = 0.0, share(idx)
        with torch.no_grad():
            for xb, yb in batches(mine):
                total += float(loss_fn(model(*xb), yb)) * len(yb)
        return mean_over_processes(total, len(mine))

    history: list[dict] = []
    best_loss, best_state, stale = math.inf, None, 0
    if config.keep_start and len(val_idx):  # "epoch −1": the weights training starts from
        best_loss, best_state = evaluate(val_idx), copy.deepcopy(module.state_dict())
        history.append({"epoch": -1, "train_loss": None, "val_loss": best_loss, "lr": 0.0})
    epochs = range(config.max_epochs)
    if config.verbose and fabric.is_global_zero:
        from tqdm.auto import tqdm

        epochs = tqdm(epochs, desc=type(module).__name__, unit="epoch")
    for epoch in epochs:
        model.train()
        total, order = 0.0, share(train_idx[torch.randperm(n_train, generator=generator)])
        for xb, yb in batches(order):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(*xb), yb)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"training loss became {float(loss)} at epoch {epoch}; lower lr (now {config.lr}) or check the data"
                )
            fabric.backward(loss)
            if config.grad_clip is not None:  # fp16's scaler skips a step whose gradients overflowed: no error there
                lenient = {"error_if_nonfinite": False} if config.precision == "16-mixed" else {}
                fabric.clip_gradients(model, optimizer, max_norm=config.grad_clip, **lenient)
            optimizer.step()
            scheduler.step()
            total += float(loss.detach()) * len(yb)
        train_loss = mean_over_processes(total, len(order))
        val_loss = evaluate(val_idx) if len(val_idx) else None
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "lr": scheduler.get_last_lr()[0]})
        if config.verbose and fabric.is_global_zero:
            epochs.set_postfix(train=f"{train_loss:.4g}", val="-" if val_loss is None else f"{val_loss:.4g}")
        monitored = train_loss if val_loss is None else val_loss
        if monitored < best_loss:
            best_loss, best_state, stale = monitored, copy.deepcopy(module.state_dict()), 0
        else:
            stale += 1
            if val_loss is not None and config.patience is not None and stale > config.patience:
                break
    if best_state is not None:
        module.load_state_dict(best_state)
    return history


def seed_from(random_state) -> int:
    """An int seed from ``random_state`` (None, int or numpy RandomState), sklearn's convention."""
    from sklearn.utils import check_random_state

    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
