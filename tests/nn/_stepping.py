"""Shared by the layer tests: run a layer's recurrent view over a whole sequence."""

import torch


def run_steps(layer, u, dt=None, state=None):
    """``step`` over the time axis: u (batch, L, H), dt (batch, L) or None → (y (batch, L, ·), state)."""
    state = layer.allocate_state(u.shape[0]) if state is None else state
    ys = []
    for k in range(u.shape[1]):
        y, state = layer.step(u[:, k], state, None if dt is None else dt[:, k])
        ys.append(y)
    return torch.stack(ys, dim=1), state
