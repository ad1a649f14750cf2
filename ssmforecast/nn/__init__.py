"""``nn.Module`` layers and backbones on top of :mod:`ssmforecast.math`.

Every layer takes and returns (batch, L, H), accepts an optional ``dt`` (batch, L) — the time since
the previous observation — and has a recurrent ``step`` that equals its parallel ``forward``.
"""

from ._base import SequenceLayer, register_ssm_param
from .backbone import HOLDS, LAYERS, Backbone, FeedForward, ResidualBlock, interval_means
from .mamba import MambaLayer
from .s4 import S4DLayer, S4Layer

__all__ = [
    "SequenceLayer",
    "register_ssm_param",
    "S4Layer",
    "S4DLayer",
    "MambaLayer",
    "ResidualBlock",
    "FeedForward",
    "Backbone",
    "LAYERS",
    "HOLDS",
    "interval_means",
]
