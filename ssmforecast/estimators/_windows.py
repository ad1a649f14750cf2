"""Training windows and per-window instance normalization (RevIN) for the forecasters, in numpy.

A window is ``context`` observed steps followed by ``horizon`` steps to forecast. The network
reads one token per step: the masked sequence-to-sequence setup of the S4 paper's forecasting
experiments (Gu, Goel, Ré, ICLR 2022, Appendix D.3.5: context + mask tokens, forecasts read at the
masked positions):

    token_t = [ y_t · m_t  (C) ,  m_t  (1) ,  x_t  (E) ]      m_t = 1 on the context, 0 on the horizon

so exogenous values x_t, known in advance, reach the model at the very step they describe.

RevIN (Kim et al., ICLR 2022, §3): each window's targets are standardised with the mean and
standard deviation of its own context, per channel, and forecasts are mapped back with them:

    ỹ = (y − μ_ctx) / σ_ctx ,   σ_ctx = max( sqrt(var_ctx + ε) , σ_min )

The floor σ_min (in units of the series' training standard deviation, the forecasters' global
scale) keeps a window whose context is flat (a sensor stuck for days, as in ETTh2) from turning
a later jump into a target of hundreds: with ε alone a constant context divides by √ε ≈ 0.003.
"""

from __future__ import annotations

import numpy as np

REVIN_EPS = 1e-5


def sliding_windows(values: np.ndarray, length: int) -> np.ndarray:
    """values (T, C) → (T − length + 1, length, C): every window of ``length`` consecutive rows (a copy)."""
    return np.lib.stride_tricks.sliding_window_view(values, length, axis=0).transpose(0, 2, 1).copy()


def instance_stats(context: np.ndarray, enabled: bool = True, min_std: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """context (n, L, C) → (μ (n, 1, C), σ (n, 1, C)) with σ ≥ min_std; μ = 0 and σ = 1 when RevIN is off."""
    if not enabled:
        shape = (context.shape[0], 1, context.shape[2])
        return np.zeros(shape), np.ones(shape)
    mu = context.mean(axis=1, keepdims=True)  # (n, 1, C)
    sigma = np.maximum(np.sqrt(context.var(axis=1, keepdims=True) + REVIN_EPS), min_std)  # (n, 1, C)
    return mu, sigma


def tokens(context: np.ndarray, n_future: int, exog: np.ndarray | None) -> np.ndarray:
    """Masked-future tokens.

    context (n, L, C) normalized targets, exog (n, L + n_future, E) or None
    → (n, L + n_future, C + 1 + E): [y·m, m, x] with m = 1 on the L context steps, 0 after.
    """
    n, L, C = context.shape
    y = np.concatenate([context, np.zeros((n, n_future, C))], axis=1)  # (n, L+k, C)
    mask = np.zeros((n, L + n_future, 1))
    mask[:, :L] = 1.0
    parts = [y, mask] if exog is None else [y, mask, exog]
    return np.concatenate(parts, axis=2)  # (n, L+k, C+1+E)
