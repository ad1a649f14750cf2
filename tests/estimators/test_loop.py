"""The training loop's time-ordered validation split."""

import pytest

from ssmforecast.estimators._loop import split_validation


def test_a_fraction_k_over_n_holds_out_exactly_k_samples():
    for n in range(50, 3000, 7):
        for k in range(1, n // 2, 5):
            assert n - split_validation(n, k / n) == k


def test_validation_tail_edges():
    assert split_validation(100, 0.0) == 100  # no validation
    assert split_validation(100, 0.105) == 89  # ⌈10.5⌉ = 11 held out
    with pytest.warns(UserWarning, match=r"validation_fraction=0.9 of 3 samples would leave fewer than 2"):
        assert split_validation(3, 0.9) == 3  # fewer than 2 training samples would remain: no validation
    with pytest.raises(ValueError, match="validation_fraction"):
        split_validation(100, 1.0)


def _line_data(slope_train: float, slope_val: float):
    """y = slope · x: 80 training samples with one slope, then a 20-sample validation tail with another."""
    import torch

    x = torch.linspace(-1, 1, 100).unsqueeze(1)  # (100, 1)
    y = torch.cat([slope_train * x[:80], slope_val * x[80:]])  # (100, 1)
    return (x,), y


@pytest.mark.parametrize("start_slope, kept", [(-1.0, "start"), (5.0, "epoch")])
def test_keep_start_scores_the_starting_weights_and_keeps_them_unless_an_epoch_beats_them(start_slope, kept):
    """keep_start: history begins with epoch −1, the start's validation MSE (closed form: the line's
    squared slope error times mean x² over the tail); a start that fits the validation tail
    exactly (slope −1, training pulls it towards +2) is returned unchanged, a bad one (5) is not."""
    import torch

    from ssmforecast.estimators._loop import TrainConfig, train

    inputs, y = _line_data(2.0, -1.0)
    net = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(start_slope)
    config = TrainConfig(max_epochs=5, batch_size=16, lr=0.05, weight_decay=0.0, validation_fraction=0.2, patience=None, keep_start=True, device="cpu")
    mse = torch.nn.functional.mse_loss
    net, history = train(net, inputs, y, mse, config)
    x_val = inputs[0][80:]
    assert history[0]["epoch"] == -1 and history[0]["train_loss"] is None
    assert history[0]["val_loss"] == pytest.approx((start_slope + 1.0) ** 2 * float((x_val**2).mean()), rel=1e-5)
    assert [h["epoch"] for h in history[1:]] == [0, 1, 2, 3, 4]
    if kept == "start":
        assert float(net.weight) == start_slope
    else:
        assert float(net.weight) != start_slope and min(h["val_loss"] for h in history[1:]) < history[0]["val_loss"]
    plain, history = train(torch.nn.Linear(1, 1, bias=False), inputs, y, mse, TrainConfig(max_epochs=2, validation_fraction=0.2, device="cpu"))
    assert [h["epoch"] for h in history] == [0, 1]  # off by default


def test_precision_64_computes_the_loss_in_float64():
    """precision="64": the losses of the history are float64 ones (closed form of a line through
    the origin to 1e-13), not of outputs cast back to float32 (Fabric's "64-true" plugin does
    that before the loss: about 1e-9 off here)."""
    import torch

    from ssmforecast.estimators._loop import TrainConfig, train

    inputs, y = _line_data(2.0, -1.0)
    config = TrainConfig(max_epochs=2, batch_size=8, lr=0.05, weight_decay=0.0, validation_fraction=0.2, patience=None, device="cpu", precision="64")
    net, history = train(torch.nn.Linear(1, 1, bias=False), inputs, y, torch.nn.functional.mse_loss, config)
    assert net.weight.dtype == torch.float64
    w, x_val = float(net.weight.detach()), inputs[0][80:].double()
    best = min(h["val_loss"] for h in history)  # the returned weights are the best epoch's
    assert best == pytest.approx((w + 1.0) ** 2 * float((x_val**2).mean()), rel=1e-13)


def test_fp16_gradient_overflow_is_skipped_by_the_scaler_even_with_clipping(monkeypatch):
    """"16-mixed" (on CUDA: fp16 autocast and a GradScaler, built here with the same plugin and a
    CPU scaler): a step whose scaled gradients overflow must be skipped by the scaler, as without
    clipping, not stopped by clip_grad_norm_'s non-finite error (the default grad_clip is 1.0)."""
    import lightning_fabric
    import torch
    from lightning_fabric.plugins import MixedPrecision
    from torch import nn

    from ssmforecast.estimators._loop import TrainConfig, train

    fabric = lightning_fabric.Fabric

    def fp16_on_cpu(accelerator, devices, precision, **kwargs):
        if precision == "16-mixed":
            plugin = MixedPrecision("16-mixed", device="cpu", scaler=torch.amp.GradScaler("cpu"))
            return fabric(accelerator=accelerator, devices=devices, plugins=plugin, **kwargs)
        return fabric(accelerator=accelerator, devices=devices, precision=precision, **kwargs)

    monkeypatch.setattr(lightning_fabric, "Fabric", fp16_on_cpu)
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = 300 * x.sum(1, keepdim=True)  # large targets: the scaled fp16 gradients overflow at first
    histories = []
    for clip in (None, 1.0):
        torch.manual_seed(0)
        _, history = train(nn.Linear(4, 1), (x,), y, nn.MSELoss(), TrainConfig(device="cpu", precision="16-mixed", max_epochs=3, grad_clip=clip))
        histories.append(history)
    assert all(len(h) == 3 and all(torch.isfinite(torch.tensor(e["train_loss"])) for e in h) for h in histories)
