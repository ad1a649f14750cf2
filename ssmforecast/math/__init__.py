"""Pure tensor math of structured state space models: no ``nn.Module``, only torch functions.

Modules
-------
hippo
    HiPPO transition matrices (LegS, LegT, LagT), the normal-plus-low-rank split of LegS and the
    diagonal (S4D) initialisations.
discretize
    Continuous (A, B) → discrete (Ā, B̄) with a step Δ that may differ per time step: ZOH and the
    generalized bilinear transform GBT(α), dense, diagonal and diagonal-plus-low-rank.
kernels
    Convolution kernels K̄ = (C̄B̄, C̄ĀB̄, …, C̄Ā^{L−1}B̄): naive powers, Vandermonde (S4D) and
    Cauchy + Woodbury at the roots of unity (S4).
conv
    Causal FFT convolution y = K̄ * u + D u.
scan
    Linear recurrences with a per-step diagonal transition: sequential reference and chunked
    parallel scan.
"""
