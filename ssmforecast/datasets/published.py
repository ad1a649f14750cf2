"""Published ETTh1/ETTh2 results to print beside ours, with where each number comes from.

Every number is copied from the project notes (``../shared/notes/ett_protocol.md`` §3), which read
them from the papers' repositories at the commits named in :data:`SOURCES`. All are MSE / MAE on
data z-scored with train statistics (the protocol of :mod:`ssmforecast.datasets.protocol`). Read
the caveats before comparing:

* ``lookback`` differs between rows (Informer's per-script L, DLinear 336, PatchTST 336 / 512, the
  Repeat baseline 96); numbers with different L are not like for like.
* ``drop_last``: Informer, DLinear (paper) and PatchTST scored a test set missing its last
  ``n mod 32`` windows; the FITS re-runs did not. :func:`ssmforecast.datasets.evaluate_naive`
  reproduces both.
* ``verified=False`` marks numbers the notes could not check against the paper itself (S4: a
  third-party transcription of its appendix).
* Informer's first (Dec 2020) numbers, scaled with statistics of the whole file, are left out on
  purpose; so are PatchTST's univariate results (not retrieved) and S-Mamba/TimeMachine (no
  verified per-horizon numbers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .ett import ETT_NAMES
from .protocol import FEATURES, INFORMER_SCRIPT_LOOKBACK, _check_choice


@dataclass(frozen=True)
class Source:
    """One published table.

    Attributes
    ----------
    key : str
        Short name used in :data:`RESULTS` ("informer", "s4", "dlinear", "patchtst", "fits").
    citation : str
        The paper.
    table : str
        The table (or figure) in that paper.
    read_from : str
        Where the notes read the numbers (repository @ commit : file).
    protocol : {"informer", "ltsf"}
        Horizons 24…720 (Informer) or 96…720 (LTSF); borders, scaler and metrics are the same.
    drop_last : bool or None
        Whether the test loader dropped its last incomplete batch of 32 when the numbers were
        produced; None where the notes do not record it.
    verified : bool
        False where the notes could not check the numbers against the paper.
    note : str
        Caveats.
    """

    key: str
    citation: str
    table: str
    read_from: str
    protocol: str
    drop_last: bool | None
    verified: bool
    note: str = ""


SOURCES = {
    "informer": Source(
        key="informer",
        citation="Zhou et al., Informer: Beyond Efficient Transformer for Long Sequence Time-Series Forecasting, AAAI 2021",
        table="Table 1 (univariate, S) and Table 2 (multivariate, M), updated results",
        read_from="zhouhaoyi/Informer2020 @29f2a739: img/result_univariate.png, img/result_multivariate.png (replaced 2021-03-23, 69be8fc)",
        protocol="informer",
        drop_last=True,
        verified=True,
        note=(
            "The README's results after the train-only scaling fix (PR #42), the set S4 and later papers quote. "
            "Not verified: which of the two versions the AAAI proceedings PDF prints. Informer† = canonical "
            "full attention. Lookback: Informer's scripts/*.sh per experiment."
        ),
    ),
    "s4": Source(
        key="s4",
        citation="Gu, Goel, Ré, Efficiently Modeling Long Sequences with Structured State Spaces, ICLR 2022",
        table="Appendix D.3.5, Table 13 (univariate, S) and Table 14 (multivariate, M)",
        read_from=(
            "third-party transcription of arXiv 2111.00396 v3: viktor-shcherb/msc_thesis @d8817a68 "
            "references/2022-04-s4-structured-state-spaces/sections/10b_appendix-d3.5-d4-d5.md"
        ),
        protocol="informer",
        drop_last=None,
        verified=False,
        note=(
            "Not checked against the paper PDF (internally consistent: 40/50 best results, as the paper says). "
            "Lookback not recorded per experiment (state-spaces/s4 loader default size [384, 96, 96])."
        ),
    ),
    "dlinear": Source(
        key="dlinear",
        citation="Zeng et al., Are Transformers Effective for Time Series Forecasting?, AAAI 2023",
        table="Table 2 (multivariate, M) and the univariate table (S)",
        read_from="cure-lab/LTSF-Linear @0c113668: pics/Mul-results.png, pics/Uni-results.png, LTSF-Benchmark.md",
        protocol="ltsf",
        drop_last=True,
        verified=True,
        note=(
            "Linear/NLinear/DLinear use L = 336; Repeat (repeat the last lookback value, L = 96) is reproduced "
            "exactly by evaluate_naive(..., drop_last=True). Test loader drop_last=True, batch 32, until 6fe4c28 "
            "(2023-03-15), after these numbers."
        ),
    ),
    "patchtst": Source(
        key="patchtst",
        citation="Nie et al., A Time Series is Worth 64 Words: Long-term Forecasting with Transformers, ICLR 2023",
        table="Table 3 (supervised, multivariate M)",
        read_from="yuqinie98/PatchTST @204c21ef: pic/table3.png",
        protocol="ltsf",
        drop_last=True,
        verified=True,
        note="PatchTST/64: L = 512; PatchTST/42: L = 336. Univariate results (appendix) not retrieved.",
    ),
    "fits": Source(
        key="fits",
        citation="Xu, Zeng, Xu, FITS: Modeling Time Series with 10k Parameters, ICLR 2024",
        table="README 'Result Update' (2023-12-25): baselines re-run with drop_last=False",
        read_from="VEWOXIC/FITS @d040bb01: README.md",
        protocol="ltsf",
        drop_last=False,
        verified=True,
        note="MSE only (mae is None); each model with its original lookback (not stated per model).",
    ),
}

# Lookback L per (source, model) where the notes state it; Informer's comes from its scripts.
_LOOKBACK = {
    ("dlinear", "Linear"): 336,
    ("dlinear", "NLinear"): 336,
    ("dlinear", "DLinear"): 336,
    ("dlinear", "Repeat"): 96,
    ("patchtst", "PatchTST/64"): 512,
    ("patchtst", "PatchTST/42"): 336,
}

# Notes on single cells: (source, model, data, features, H) → text.
CELL_NOTES = {
    ("dlinear", "DLinear", "ETTh1", "S", 720): (
        "an older repository figure (pics/DLinear/DLinear_Univariate_Results.png) has 0.119 / 0.274; "
        "the README says some DLinear results changed"
    ),
}

# (source, model, data, features, H, MSE, MAE)
RESULTS = (
    # Informer (Source A), Tables 1 and 2: Informer and Informer†
    ("informer", "Informer", "ETTh1", "S", 24, 0.098, 0.247),
    ("informer", "Informer†", "ETTh1", "S", 24, 0.092, 0.246),
    ("informer", "Informer", "ETTh1", "S", 48, 0.158, 0.319),
    ("informer", "Informer†", "ETTh1", "S", 48, 0.161, 0.322),
    ("informer", "Informer", "ETTh1", "S", 168, 0.183, 0.346),
    ("informer", "Informer†", "ETTh1", "S", 168, 0.187, 0.355),
    ("informer", "Informer", "ETTh1", "S", 336, 0.222, 0.387),
    ("informer", "Informer†", "ETTh1", "S", 336, 0.215, 0.369),
    ("informer", "Informer", "ETTh1", "S", 720, 0.269, 0.435),
    ("informer", "Informer†", "ETTh1", "S", 720, 0.257, 0.421),
    ("informer", "Informer", "ETTh2", "S", 24, 0.093, 0.240),
    ("informer", "Informer†", "ETTh2", "S", 24, 0.099, 0.241),
    ("informer", "Informer", "ETTh2", "S", 48, 0.155, 0.314),
    ("informer", "Informer†", "ETTh2", "S", 48, 0.159, 0.317),
    ("informer", "Informer", "ETTh2", "S", 168, 0.232, 0.389),
    ("informer", "Informer†", "ETTh2", "S", 168, 0.235, 0.390),
    ("informer", "Informer", "ETTh2", "S", 336, 0.263, 0.417),
    ("informer", "Informer†", "ETTh2", "S", 336, 0.258, 0.423),
    ("informer", "Informer", "ETTh2", "S", 720, 0.277, 0.431),
    ("informer", "Informer†", "ETTh2", "S", 720, 0.285, 0.442),
    ("informer", "Informer", "ETTh1", "M", 24, 0.577, 0.549),
    ("informer", "Informer†", "ETTh1", "M", 24, 0.620, 0.577),
    ("informer", "Informer", "ETTh1", "M", 48, 0.685, 0.625),
    ("informer", "Informer†", "ETTh1", "M", 48, 0.692, 0.671),
    ("informer", "Informer", "ETTh1", "M", 168, 0.931, 0.752),
    ("informer", "Informer†", "ETTh1", "M", 168, 0.947, 0.797),
    ("informer", "Informer", "ETTh1", "M", 336, 1.128, 0.873),
    ("informer", "Informer†", "ETTh1", "M", 336, 1.094, 0.813),
    ("informer", "Informer", "ETTh1", "M", 720, 1.215, 0.896),
    ("informer", "Informer†", "ETTh1", "M", 720, 1.241, 0.917),
    ("informer", "Informer", "ETTh2", "M", 24, 0.720, 0.665),
    ("informer", "Informer†", "ETTh2", "M", 24, 0.753, 0.727),
    ("informer", "Informer", "ETTh2", "M", 48, 1.457, 1.001),
    ("informer", "Informer†", "ETTh2", "M", 48, 1.461, 1.077),
    ("informer", "Informer", "ETTh2", "M", 168, 3.489, 1.515),
    ("informer", "Informer†", "ETTh2", "M", 168, 3.485, 1.612),
    ("informer", "Informer", "ETTh2", "M", 336, 2.723, 1.340),
    ("informer", "Informer†", "ETTh2", "M", 336, 2.626, 1.285),
    ("informer", "Informer", "ETTh2", "M", 720, 3.467, 1.473),
    ("informer", "Informer†", "ETTh2", "M", 720, 3.548, 1.495),
    # S4, Tables 13 and 14 (unverified transcription)
    ("s4", "S4", "ETTh1", "S", 24, 0.061, 0.191),
    ("s4", "S4", "ETTh1", "M", 24, 0.525, 0.542),
    ("s4", "S4", "ETTh1", "S", 48, 0.079, 0.220),
    ("s4", "S4", "ETTh1", "M", 48, 0.641, 0.615),
    ("s4", "S4", "ETTh1", "S", 168, 0.104, 0.258),
    ("s4", "S4", "ETTh1", "M", 168, 0.980, 0.779),
    ("s4", "S4", "ETTh1", "S", 336, 0.080, 0.229),
    ("s4", "S4", "ETTh1", "M", 336, 1.407, 0.910),
    ("s4", "S4", "ETTh1", "S", 720, 0.116, 0.271),
    ("s4", "S4", "ETTh1", "M", 720, 1.162, 0.842),
    ("s4", "S4", "ETTh2", "S", 24, 0.095, 0.234),
    ("s4", "S4", "ETTh2", "M", 24, 0.871, 0.736),
    ("s4", "S4", "ETTh2", "S", 48, 0.191, 0.346),
    ("s4", "S4", "ETTh2", "M", 48, 1.240, 0.867),
    ("s4", "S4", "ETTh2", "S", 168, 0.167, 0.333),
    ("s4", "S4", "ETTh2", "M", 168, 2.580, 1.255),
    ("s4", "S4", "ETTh2", "S", 336, 0.189, 0.361),
    ("s4", "S4", "ETTh2", "M", 336, 1.980, 1.128),
    ("s4", "S4", "ETTh2", "S", 720, 0.187, 0.358),
    ("s4", "S4", "ETTh2", "M", 720, 2.650, 1.340),
    # DLinear paper: Table 2 (M: Linear, NLinear, DLinear, Repeat) and the univariate table (S)
    ("dlinear", "Linear", "ETTh1", "M", 96, 0.375, 0.397),
    ("dlinear", "NLinear", "ETTh1", "M", 96, 0.374, 0.394),
    ("dlinear", "DLinear", "ETTh1", "M", 96, 0.375, 0.399),
    ("dlinear", "Repeat", "ETTh1", "M", 96, 1.295, 0.713),
    ("dlinear", "Linear", "ETTh1", "M", 192, 0.418, 0.429),
    ("dlinear", "NLinear", "ETTh1", "M", 192, 0.408, 0.415),
    ("dlinear", "DLinear", "ETTh1", "M", 192, 0.405, 0.416),
    ("dlinear", "Repeat", "ETTh1", "M", 192, 1.325, 0.733),
    ("dlinear", "Linear", "ETTh1", "M", 336, 0.479, 0.476),
    ("dlinear", "NLinear", "ETTh1", "M", 336, 0.429, 0.427),
    ("dlinear", "DLinear", "ETTh1", "M", 336, 0.439, 0.443),
    ("dlinear", "Repeat", "ETTh1", "M", 336, 1.323, 0.744),
    ("dlinear", "Linear", "ETTh1", "M", 720, 0.624, 0.592),
    ("dlinear", "NLinear", "ETTh1", "M", 720, 0.440, 0.453),
    ("dlinear", "DLinear", "ETTh1", "M", 720, 0.472, 0.490),
    ("dlinear", "Repeat", "ETTh1", "M", 720, 1.339, 0.756),
    ("dlinear", "Linear", "ETTh2", "M", 96, 0.288, 0.352),
    ("dlinear", "NLinear", "ETTh2", "M", 96, 0.277, 0.338),
    ("dlinear", "DLinear", "ETTh2", "M", 96, 0.289, 0.353),
    ("dlinear", "Repeat", "ETTh2", "M", 96, 0.432, 0.422),
    ("dlinear", "Linear", "ETTh2", "M", 192, 0.377, 0.413),
    ("dlinear", "NLinear", "ETTh2", "M", 192, 0.344, 0.381),
    ("dlinear", "DLinear", "ETTh2", "M", 192, 0.383, 0.418),
    ("dlinear", "Repeat", "ETTh2", "M", 192, 0.534, 0.473),
    ("dlinear", "Linear", "ETTh2", "M", 336, 0.452, 0.461),
    ("dlinear", "NLinear", "ETTh2", "M", 336, 0.357, 0.400),
    ("dlinear", "DLinear", "ETTh2", "M", 336, 0.448, 0.465),
    ("dlinear", "Repeat", "ETTh2", "M", 336, 0.591, 0.508),
    ("dlinear", "Linear", "ETTh2", "M", 720, 0.698, 0.595),
    ("dlinear", "NLinear", "ETTh2", "M", 720, 0.394, 0.436),
    ("dlinear", "DLinear", "ETTh2", "M", 720, 0.605, 0.551),
    ("dlinear", "Repeat", "ETTh2", "M", 720, 0.588, 0.517),
    ("dlinear", "Linear", "ETTh1", "S", 96, 0.189, 0.359),
    ("dlinear", "NLinear", "ETTh1", "S", 96, 0.053, 0.177),
    ("dlinear", "DLinear", "ETTh1", "S", 96, 0.056, 0.180),
    ("dlinear", "Linear", "ETTh1", "S", 192, 0.078, 0.212),
    ("dlinear", "NLinear", "ETTh1", "S", 192, 0.069, 0.204),
    ("dlinear", "DLinear", "ETTh1", "S", 192, 0.071, 0.204),
    ("dlinear", "Linear", "ETTh1", "S", 336, 0.091, 0.237),
    ("dlinear", "NLinear", "ETTh1", "S", 336, 0.081, 0.226),
    ("dlinear", "DLinear", "ETTh1", "S", 336, 0.098, 0.244),
    ("dlinear", "Linear", "ETTh1", "S", 720, 0.172, 0.340),
    ("dlinear", "NLinear", "ETTh1", "S", 720, 0.080, 0.226),
    ("dlinear", "DLinear", "ETTh1", "S", 720, 0.189, 0.359),
    ("dlinear", "Linear", "ETTh2", "S", 96, 0.133, 0.283),
    ("dlinear", "NLinear", "ETTh2", "S", 96, 0.129, 0.278),
    ("dlinear", "DLinear", "ETTh2", "S", 96, 0.131, 0.279),
    ("dlinear", "Linear", "ETTh2", "S", 192, 0.176, 0.330),
    ("dlinear", "NLinear", "ETTh2", "S", 192, 0.169, 0.324),
    ("dlinear", "DLinear", "ETTh2", "S", 192, 0.176, 0.329),
    ("dlinear", "Linear", "ETTh2", "S", 336, 0.213, 0.371),
    ("dlinear", "NLinear", "ETTh2", "S", 336, 0.194, 0.355),
    ("dlinear", "DLinear", "ETTh2", "S", 336, 0.209, 0.367),
    ("dlinear", "Linear", "ETTh2", "S", 720, 0.292, 0.440),
    ("dlinear", "NLinear", "ETTh2", "S", 720, 0.225, 0.381),
    ("dlinear", "DLinear", "ETTh2", "S", 720, 0.276, 0.426),
    # PatchTST, Table 3 (M)
    ("patchtst", "PatchTST/64", "ETTh1", "M", 96, 0.370, 0.400),
    ("patchtst", "PatchTST/42", "ETTh1", "M", 96, 0.375, 0.399),
    ("patchtst", "PatchTST/64", "ETTh1", "M", 192, 0.413, 0.429),
    ("patchtst", "PatchTST/42", "ETTh1", "M", 192, 0.414, 0.421),
    ("patchtst", "PatchTST/64", "ETTh1", "M", 336, 0.422, 0.440),
    ("patchtst", "PatchTST/42", "ETTh1", "M", 336, 0.431, 0.436),
    ("patchtst", "PatchTST/64", "ETTh1", "M", 720, 0.447, 0.468),
    ("patchtst", "PatchTST/42", "ETTh1", "M", 720, 0.449, 0.466),
    ("patchtst", "PatchTST/64", "ETTh2", "M", 96, 0.274, 0.337),
    ("patchtst", "PatchTST/42", "ETTh2", "M", 96, 0.274, 0.336),
    ("patchtst", "PatchTST/64", "ETTh2", "M", 192, 0.341, 0.382),
    ("patchtst", "PatchTST/42", "ETTh2", "M", 192, 0.339, 0.379),
    ("patchtst", "PatchTST/64", "ETTh2", "M", 336, 0.329, 0.384),
    ("patchtst", "PatchTST/42", "ETTh2", "M", 336, 0.331, 0.380),
    ("patchtst", "PatchTST/64", "ETTh2", "M", 720, 0.379, 0.422),
    ("patchtst", "PatchTST/42", "ETTh2", "M", 720, 0.379, 0.422),
    # FITS re-runs without drop_last (M, MSE only)
    ("fits", "PatchTST", "ETTh1", "M", 96, 0.385, None),
    ("fits", "PatchTST", "ETTh1", "M", 192, 0.413, None),
    ("fits", "PatchTST", "ETTh1", "M", 336, 0.44, None),
    ("fits", "PatchTST", "ETTh1", "M", 720, 0.456, None),
    ("fits", "PatchTST", "ETTh2", "M", 96, 0.274, None),
    ("fits", "PatchTST", "ETTh2", "M", 192, 0.338, None),
    ("fits", "PatchTST", "ETTh2", "M", 336, 0.367, None),
    ("fits", "PatchTST", "ETTh2", "M", 720, 0.391, None),
    ("fits", "DLinear", "ETTh1", "M", 96, 0.384, None),
    ("fits", "DLinear", "ETTh1", "M", 192, 0.443, None),
    ("fits", "DLinear", "ETTh1", "M", 336, 0.446, None),
    ("fits", "DLinear", "ETTh1", "M", 720, 0.504, None),
    ("fits", "DLinear", "ETTh2", "M", 96, 0.282, None),
    ("fits", "DLinear", "ETTh2", "M", 192, 0.350, None),
    ("fits", "DLinear", "ETTh2", "M", 336, 0.414, None),
    ("fits", "DLinear", "ETTh2", "M", 720, 0.588, None),
    ("fits", "FITS", "ETTh1", "M", 96, 0.372, None),
    ("fits", "FITS", "ETTh1", "M", 192, 0.404, None),
    ("fits", "FITS", "ETTh1", "M", 336, 0.427, None),
    ("fits", "FITS", "ETTh1", "M", 720, 0.424, None),
    ("fits", "FITS", "ETTh2", "M", 96, 0.271, None),
    ("fits", "FITS", "ETTh2", "M", 192, 0.331, None),
    ("fits", "FITS", "ETTh2", "M", 336, 0.354, None),
    ("fits", "FITS", "ETTh2", "M", 720, 0.377, None),
)

COLUMNS = ("source", "model", "data", "features", "horizon", "lookback", "mse", "mae", "verified", "note")


def _lookback(source: str, model: str, data: str, features: str, horizon: int) -> int | None:
    if source == "informer":
        return INFORMER_SCRIPT_LOOKBACK[(data, features)][horizon]
    return _LOOKBACK.get((source, model))


def published(
    data: str | None = None,
    features: str | None = None,
    horizon: int | None = None,
    source: str | None = None,
) -> pd.DataFrame:
    """The published results as a frame, optionally filtered.

    Parameters
    ----------
    data : {"ETTh1", "ETTh2"}, default=None
    features : {"S", "M"}, default=None
    horizon : int, default=None
    source : {"informer", "s4", "dlinear", "patchtst", "fits"}, default=None
        Keep only these rows (None: all).

    Returns
    -------
    pandas.DataFrame
        Columns source, model, data, features, horizon, lookback (<NA> where the notes do not record it),
        mse, mae (NaN for the MSE-only FITS rows), verified, note. ``SOURCES[source]`` gives
        the citation of each row.
    """
    for label, value, choices in (("source", source, SOURCES), ("data", data, ETT_NAMES), ("features", features, FEATURES)):
        if value is not None:
            _check_choice(label, value, choices)
    if horizon is not None and (isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer))):
        raise ValueError(f"horizon must be an int; got {horizon!r}")
    rows = []
    for src, model, d, feat, H, mse, mae in RESULTS:
        lookback, note = _lookback(src, model, d, feat, H), CELL_NOTES.get((src, model, d, feat, H), "")
        rows.append((src, model, d, feat, H, lookback, mse, mae, SOURCES[src].verified, note))
    frame = pd.DataFrame(rows, columns=list(COLUMNS)).astype({"mse": float, "mae": float, "lookback": "Int64"})
    keep = pd.Series(True, index=frame.index)
    for column, value in (("data", data), ("features", features), ("horizon", horizon), ("source", source)):
        if value is not None:
            keep &= frame[column] == value
    return frame[keep].reset_index(drop=True)
