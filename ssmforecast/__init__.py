"""ssmforecast: structured state space models (S4, S4D, Mamba) for time-series forecasting.

Layers, each depending only on the ones before it:

- :mod:`ssmforecast.math`: pure tensor math (HiPPO, discretization, convolution kernels, scans).
"""

__version__ = "0.1.0.dev0"
