"""The Electricity Transformer Temperature (ETT) data: read, download and verify the original files.

ETT (Zhou et al., "Informer: Beyond Efficient Transformer for Long Sequence Time-Series
Forecasting", AAAI 2021; https://github.com/zhouhaoyi/ETDataset) records two years
(2016-07-01 → 2018-06-26) of a Chinese electricity transformer: six load series and the oil
temperature ``OT``, the usual target. ``ETTh1``/``ETTh2`` are hourly (17,420 rows), ``ETTm1``/
``ETTm2`` every 15 minutes (69,680 rows).

Licence: the files are published under Creative Commons Attribution-NoDerivatives 4.0 (CC BY-ND
4.0): they may be shared verbatim with attribution (cite Informer), but adapted copies may not be
shared. **ssmforecast never ships the data, nor any derived copy**: :func:`load_ett` reads the
original CSV from a path you give, or from a local cache that it fills by downloading the
original file from the ETDataset repository, and never writes to a file it reads.

Verification: ETTh1 and ETTh2 must match the SHA-256 of the upstream files (ETDataset commit
``1d16c8f4``); ETTm1 and ETTm2, for which no hash is recorded here, must hold 69,680 rows on the
15-minute grid from 2016-07-01 00:00 (a complete file; the row count is inferred from the span,
see ``docs/datasets.md``). Every file must hold the columns ``date`` + :data:`COLUMNS`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

ETT_NAMES = ("ETTh1", "ETTh2", "ETTm1", "ETTm2")
# Six loads (High/Middle/Low UseFul/UseLess Load) and the oil temperature, in file order.
COLUMNS = ("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT")
TARGET = "OT"

# Raw files of zhouhaoyi/ETDataset; the download URL is f"{BASE_URL}/{name}.csv".
BASE_URL = "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small"
# Environment variable naming the cache folder (default ~/.cache/ssmforecast).
CACHE_ENV = "SSMFORECAST_CACHE"

# SHA-256 of the upstream files (git blobs a52c4925…, 6e376077… at ETDataset 1d16c8f4).
SHA256 = {
    "ETTh1": "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066",
    "ETTh2": "a3dc2c597b9218c7ce1cd55eb77b283fd459a1d09d753063f944967dd6b9218b",
}
# Complete files: 17,420 hourly rows from 2016-07-01 00:00 to 2018-06-26 19:00 (measured for
# ETTh*); ETTm* cover the same span at 15 minutes, 4 × 17,420 rows (inferred, not measured).
N_ROWS = {"ETTh1": 17_420, "ETTh2": 17_420, "ETTm1": 69_680, "ETTm2": 69_680}
START = pd.Timestamp("2016-07-01 00:00:00")


def frequency(name: str) -> str:
    """The sampling step of an ETT file as a pandas frequency: "h" (ETTh*) or "15min" (ETTm*)."""
    _check_name(name)
    return "h" if name.startswith("ETTh") else "15min"


def default_cache_dir() -> Path:
    """The cache folder: ``$SSMFORECAST_CACHE`` if set, else ``~/.cache/ssmforecast``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ssmforecast"


def load_ett(
    name: str,
    path: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    *,
    verify: bool = True,
    base_url: str | None = None,
    timeout: float = 60.0,
) -> pd.DataFrame:
    """Load one ETT file (Zhou et al., Informer, AAAI 2021) as a frame indexed by time.

    Where the file comes from, in order:

    1. ``path``: a CSV file, or a folder holding ``<name>.csv``. It is read, never modified.
    2. The cache: ``<cache>/ETT/<name>.csv``, where ``<cache>`` is ``cache_dir``, else the
       environment variable ``SSMFORECAST_CACHE``, else ``~/.cache/ssmforecast``.
    3. Otherwise the original file is downloaded from ``f"{base_url}/{name}.csv"`` (default
       :data:`BASE_URL`, the ETDataset repository on GitHub) to a temporary file in the cache
       folder, verified, and only then moved into place (atomically); a download that fails
       verification is deleted.

    The data are CC BY-ND 4.0 and are never shipped with ssmforecast.

    Parameters
    ----------
    name : {"ETTh1", "ETTh2", "ETTm1", "ETTm2"}
        Which file.
    path : str or path-like, default=None
        A CSV file or a folder containing ``<name>.csv``. When given, the cache and the network
        are not used.
    cache_dir : str or path-like, default=None
        Cache folder; default ``$SSMFORECAST_CACHE`` or ``~/.cache/ssmforecast``.
    verify : bool, default=True
        Check the file, whatever its origin: the SHA-256 of the upstream file for ETTh1/ETTh2;
        69,680 rows on the 15-minute grid from 2016-07-01 00:00 for ETTm1/ETTm2 (and the hourly
        grid of 17,420 rows for ETTh*). ``False`` skips these checks (e.g. for a file that
        upstream has changed); the column names are always checked.
    base_url : str, default=None
        Folder URL to download from; default :data:`BASE_URL`. Tests point it at a local server.
    timeout : float, default=60.0
        Network timeout of the download, in seconds.

    Returns
    -------
    pandas.DataFrame of shape (n_rows, 7)
        Float64 columns HUFL, HULL, MUFL, MULL, LUFL, LULL, OT (file order) and a
        ``DatetimeIndex`` named "date".

    Raises
    ------
    ValueError
        Unknown ``name``; a hash, row count, time grid or header that does not match.
    FileNotFoundError
        ``path`` does not exist, or is a folder without ``<name>.csv``.
    OSError
        The download failed (the message says how to pass a local file instead).

    Examples
    --------
    >>> df = load_ett("ETTh1", path="../shared/data/ETT")  # doctest: +SKIP
    >>> df.shape, df.index[0]  # doctest: +SKIP
    ((17420, 7), Timestamp('2016-07-01 00:00:00'))
    """
    _check_name(name)
    if path is not None:
        file = Path(path).expanduser()
        if file.is_dir():
            file = file / f"{name}.csv"
        if not file.is_file():
            raise FileNotFoundError(f"{name}: no such file {file}")
    else:
        file = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        file = file / "ETT" / f"{name}.csv"
        if not file.is_file():
            return _download(name, file, base_url or BASE_URL, timeout, verify)
        try:
            return _read(name, file, verify=verify)
        except ValueError as error:  # a damaged cached copy is never downloaded again by itself
            raise ValueError(f"{error} (the cached copy: delete {file} to download it again)") from error
    return _read(name, file, verify=verify)


def sha256(file: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_name(name: str) -> None:
    if name not in ETT_NAMES:
        raise ValueError(f"unknown ETT file {name!r}; choose one of {', '.join(ETT_NAMES)}")


def _check_hash(name: str, file: Path) -> None:
    """ETTh1/ETTh2: the file's SHA-256 must equal the upstream one (no-op for ETTm*)."""
    if name not in SHA256:
        return
    actual = sha256(file)
    if actual != SHA256[name]:
        raise ValueError(
            f"{name}: SHA-256 mismatch for {file}: expected {SHA256[name]}, got {actual}. "
            "The file is not the original ETDataset file (pass verify=False to read it anyway)."
        )


def _check_grid(name: str, index: pd.DatetimeIndex) -> None:
    """The index must be the complete regular grid: N_ROWS[name] steps of frequency(name) from START."""
    expected = pd.date_range(START, periods=N_ROWS[name], freq=frequency(name))
    if len(index) != len(expected):
        raise ValueError(
            f"{name}: expected {N_ROWS[name]:,} rows, found {len(index):,} (a truncated or "
            "modified file? pass verify=False to read it anyway)"
        )
    if not index.equals(expected):
        first = int(np.flatnonzero(index != expected)[0])
        raise ValueError(
            f"{name}: row {first} is dated {index[first]}, expected {expected[first]} on the "
            f"{frequency(name)} grid from {START} (pass verify=False to read it anyway)"
        )


def _read(name: str, file: Path, *, verify: bool) -> pd.DataFrame:
    """Read ``file`` (opened read-only) and, with ``verify``, check its hash and time grid."""
    if verify:
        _check_hash(name, file)
    df = pd.read_csv(file)
    header = list(df.columns)
    if header != ["date", *COLUMNS]:
        raise ValueError(f"{name}: {file} has columns {header}, expected {['date', *COLUMNS]}")
    try:
        index = pd.DatetimeIndex(pd.to_datetime(df.pop("date"), format="%Y-%m-%d %H:%M:%S"), name="date")
    except ValueError as error:  # e.g. a file cut off in the middle of a date
        raise ValueError(f"{name}: {file} has a malformed date ({error})") from error
    df = df.astype(np.float64).set_axis(index, axis=0)  # (n_rows, 7)
    if df.isna().any().any():
        column = df.columns[df.isna().any()][0]
        raise ValueError(f"{name}: {file} has an empty or non-numeric value in column {column!r} at {df.index[df[column].isna()][0]}")
    if verify:
        _check_grid(name, df.index)
    return df


def _download(name: str, target: Path, base_url: str, timeout: float, verify: bool) -> pd.DataFrame:
    """Download ``{base_url}/{name}.csv`` to a temporary file beside ``target``, read and verify it, move it into place.

    Writes to the file system: creates ``target.parent``; on success ``target`` appears at once
    (``os.replace``); on any failure the temporary file is removed and nothing is left behind.
    Returns the frame read from the download.
    """
    url = f"{base_url.rstrip('/')}/{name}.csv"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=target.parent)
    except OSError as error:
        raise OSError(
            f"{name}: cannot write to the cache folder {target.parent} ({error}); pass another cache_dir "
            f"(or set {CACHE_ENV}), or download the file yourself and pass load_ett({name!r}, path=...)"
        ) from error
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    for chunk in iter(lambda: response.read(1 << 20), b""):
                        out.write(chunk)
            except (urllib.error.URLError, TimeoutError) as error:
                raise OSError(
                    f"{name}: could not download {url} ({error}); download the file yourself and "
                    f"pass load_ett({name!r}, path=...)"
                ) from error
        frame = _read(name, tmp, verify=verify)  # raises on a bad file, before it reaches the cache
        tmp.chmod(0o644)  # mkstemp creates 0600
        os.replace(tmp, target)
        return frame
    finally:
        tmp.unlink(missing_ok=True)
