"""ETT data and protocol: loading, download and verification, Informer's borders, scaler and
windows, and the naive baselines pinned to the numbers recomputed in the project notes
(``../shared/notes/ett_protocol.md`` §5, ``naive_results.csv``).

The ETT files are read from ``ett_dir`` (never copied into the repository: CC BY-ND 4.0). Downloads
are served from a local ``http.server`` on 127.0.0.1; modified copies live only in ``tmp_path``.
"""

import contextlib
import functools
import http.server
import threading

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import StandardScaler

from conftest import REPO, require_shared
from ssmforecast.datasets import (
    CACHE_ENV,
    COLUMNS,
    DEFAULT_LOOKBACK,
    INFORMER_SCRIPT_LOOKBACK,
    SHA256,
    SOURCES,
    borders,
    evaluate_naive,
    horizons,
    load_ett,
    mse_mae,
    n_windows,
    naive_forecast,
    published,
    split,
    windows,
)
from ssmforecast.datasets.ett import sha256

NOTES = REPO.parent / "shared" / "notes"


# ----------------------------------------------------------------------------------------------
# fixtures and helpers


@pytest.fixture(scope="module")
def frames(ett_dir):
    return {name: load_ett(name, path=ett_dir) for name in ("ETTh1", "ETTh2")}


@pytest.fixture(scope="session")
def notes_dir():
    """../shared/notes (the reference numbers): skip locally, fail in CI when missing, as ``ett_dir``."""
    require_shared((NOTES / "naive_results.csv").is_file(), f"project notes not found in {NOTES}")
    return NOTES


@pytest.fixture(scope="session")
def naive_table(notes_dir):
    table = pd.read_csv(notes_dir / "naive_results.csv")
    return table.set_index(["data", "protocol", "features", "H", "method"])


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def _serve(folder):
    """Serve ``folder`` on 127.0.0.1 (a free port) in a thread; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """urllib honours *_proxy variables; the local server must be reached directly."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _corrupt(source, target):
    """A copy of ``source`` at ``target`` with one digit of the first data row changed."""
    text = source.read_text()
    header, first, rest = text.split("\n", 2)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join([header, first[:-1] + ("1" if first[-1] != "1" else "2"), rest]))
    return target


@pytest.fixture(scope="module")
def ettm_text():
    """A made-up file with the ETTm layout (random values, not ETT data): 69,680 rows, 15-minute grid."""
    index = pd.date_range("2016-07-01", periods=69_680, freq="15min").strftime("%Y-%m-%d %H:%M:%S")
    values = np.random.default_rng(0).integers(0, 100, size=(69_680, len(COLUMNS))).astype(str)
    rows = [",".join(r) for r in np.column_stack([index, values])]
    return "\n".join([",".join(["date", *COLUMNS]), *rows]) + "\n"


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------------------------
# load_ett


@pytest.mark.parametrize("name", ["ETTh1", "ETTh2"])
def test_load_ett_round_trip(ett_dir, name):
    before = {p.name: (sha256(p), p.stat().st_mtime_ns) for p in ett_dir.glob("*.csv")}
    df = load_ett(name, path=ett_dir)
    assert df.shape == (17_420, 7)
    assert list(df.columns) == list(COLUMNS) == ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
    assert (df.dtypes == np.float64).all()
    assert isinstance(df.index, pd.DatetimeIndex) and df.index.name == "date"
    assert df.index[0] == pd.Timestamp("2016-07-01 00:00") and df.index[-1] == pd.Timestamp("2018-06-26 19:00")
    assert pd.infer_freq(df.index) == "h"
    raw = pd.read_csv(ett_dir / f"{name}.csv")
    np.testing.assert_array_equal(df.to_numpy(), raw[list(COLUMNS)].to_numpy())
    pd.testing.assert_frame_equal(load_ett(name, path=ett_dir / f"{name}.csv"), df)  # a file or its folder
    after = {p.name: (sha256(p), p.stat().st_mtime_ns) for p in ett_dir.glob("*.csv")}
    assert after == before, "load_ett must never modify the files it reads"


def test_load_ett_rejects_unknown_names(tmp_path):
    with pytest.raises(ValueError, match="unknown ETT file 'ETTh3'.*ETTh1, ETTh2, ETTm1, ETTm2"):
        load_ett("ETTh3", path=tmp_path)


def test_load_ett_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="ETTh1"):
        load_ett("ETTh1", path=tmp_path)  # a folder without ETTh1.csv
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        load_ett("ETTh1", path=tmp_path / "nowhere.csv")


def test_user_file_with_wrong_hash_is_rejected_and_left_alone(tmp_path, ett_dir):
    bad = _corrupt(ett_dir / "ETTh1.csv", tmp_path / "ETTh1.csv")
    actual = sha256(bad)
    with pytest.raises(ValueError, match=f"expected {SHA256['ETTh1']}, got {actual}"):
        load_ett("ETTh1", path=tmp_path)
    assert bad.is_file() and sha256(bad) == actual  # a user's file is never deleted or changed
    assert load_ett("ETTh1", path=bad, verify=False).shape == (17_420, 7)


def test_download_into_cache_then_read_from_cache(tmp_path, ett_dir, monkeypatch):
    cache = tmp_path / "cache"
    with _serve(ett_dir) as url:
        df = load_ett("ETTh2", cache_dir=cache, base_url=url)
    pd.testing.assert_frame_equal(df, load_ett("ETTh2", path=ett_dir))
    assert _files(cache) == ["ETT/ETTh2.csv"]  # no temporary file left behind
    assert sha256(cache / "ETT" / "ETTh2.csv") == SHA256["ETTh2"]
    # the server is gone: a second call, through the environment variable, reads the cache
    monkeypatch.setenv(CACHE_ENV, str(cache))
    pd.testing.assert_frame_equal(load_ett("ETTh2", base_url="http://127.0.0.1:9"), df)


def test_corrupted_download_raises_and_leaves_no_file(tmp_path, ett_dir):
    served = tmp_path / "served"
    _corrupt(ett_dir / "ETTh1.csv", served / "ETTh1.csv")
    cache = tmp_path / "cache"
    with _serve(served) as url:
        with pytest.raises(ValueError, match=f"expected {SHA256['ETTh1']}, got {sha256(served / 'ETTh1.csv')}"):
            load_ett("ETTh1", cache_dir=cache, base_url=url)
        with pytest.raises(OSError, match="could not download"):  # 404: ETTh2 is not served
            load_ett("ETTh2", cache_dir=cache, base_url=url)
    assert _files(cache) == []


def test_ettm_files_are_checked_by_row_count_and_grid(tmp_path, ettm_text):
    good = _write(tmp_path / "good" / "ETTm1.csv", ettm_text)
    df = load_ett("ETTm1", path=good)
    assert df.shape == (69_680, 7) and pd.infer_freq(df.index) == "15min"

    lines = ettm_text.splitlines(keepends=True)
    short = _write(tmp_path / "short" / "ETTm2.csv", "".join(lines[:100] + lines[101:]))
    with pytest.raises(ValueError, match="expected 69,680 rows, found 69,679"):
        load_ett("ETTm2", path=short)
    assert load_ett("ETTm2", path=short, verify=False).shape == (69_679, 7)

    shifted = _write(tmp_path / "shifted" / "ETTm1.csv", ettm_text.replace("2016-07-01 01:15:00", "2016-07-01 01:16:00"))
    with pytest.raises(ValueError, match="row 5 is dated 2016-07-01 01:16:00, expected 2016-07-01 01:15:00"):
        load_ett("ETTm1", path=shifted)

    cache = tmp_path / "cache"  # a truncated download is verified before it reaches the cache
    with _serve(short.parent) as url:
        with pytest.raises(ValueError, match="69,680 rows"):
            load_ett("ETTm2", cache_dir=cache, base_url=url)
    assert _files(cache) == []


# ----------------------------------------------------------------------------------------------
# protocol: borders, scaler, features, windows


def test_borders_follow_informer():
    b = borders("ETTh1", 96)
    assert (b.train, b.val, b.test) == ((0, 8640), (8640 - 96, 11520), (11520 - 96, 14400))
    m = borders("ETTm2", 672)
    assert (m.train, m.val, m.test) == ((0, 34560), (34560 - 672, 46080), (46080 - 672, 57600))
    for bad in (0, 8641, 96.0):
        with pytest.raises(ValueError, match="lookback must be an integer between 1 and 8640"):
            borders("ETTh1", bad)


def test_horizon_and_lookback_tables():
    assert horizons("informer", "ETTh2") == (24, 48, 168, 336, 720)
    assert horizons("informer", "ETTm1") == (24, 48, 96, 288, 672)
    assert horizons("ltsf", "ETTm2") == (96, 192, 336, 720)
    assert DEFAULT_LOOKBACK == {"informer": 96, "ltsf": 96}
    assert INFORMER_SCRIPT_LOOKBACK[("ETTh1", "S")][24] == 720
    with pytest.raises(ValueError, match="not part of the Informer protocol"):
        horizons("informer", "ETTm2")
    with pytest.raises(ValueError, match="protocol must be one of"):
        horizons("LTSF", "ETTh1")


@pytest.mark.parametrize("lookback", [48, 96, 336, 720])
@pytest.mark.parametrize("horizon", [24, 96, 720])
def test_test_windows_2881_minus_h_first_target_row_11520(frames, lookback, horizon):
    s = split(frames["ETTh1"], "ETTh1", lookback, "M")
    X, Y = windows(s.test, lookback, horizon, s.target_index)
    assert X.shape == (2881 - horizon, lookback, 7) and Y.shape == (2881 - horizon, horizon, 7)
    z = (frames["ETTh1"].to_numpy() - s.mean) / s.std  # (17420, 7) the whole file, scaled
    np.testing.assert_array_equal(Y[0, 0], z[11520])  # first target: row 11520 whatever L
    np.testing.assert_array_equal(Y[-1, -1], z[14399])  # last target: the last test row
    np.testing.assert_array_equal(X[0, 0], z[11520 - lookback])
    _, Y32 = windows(s.test, lookback, horizon, s.target_index, drop_last=True)
    assert len(Y32) == (2881 - horizon) // 32 * 32
    _, Yval = windows(s.val, lookback, horizon, s.target_index)
    np.testing.assert_array_equal(Yval[0, 0], z[8640])
    assert n_windows(4 * 2880 + lookback, lookback, horizon) == 11521 - horizon  # ETTm


def test_scaler_uses_the_train_rows_only(frames):
    df = frames["ETTh1"]
    s = split(df, "ETTh1", 96, "M")
    train = df.iloc[:8640]
    np.testing.assert_allclose(s.mean, train.mean().to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(s.std, train.std(ddof=0).to_numpy(), rtol=1e-12)
    reference = StandardScaler().fit(train.to_numpy())
    np.testing.assert_allclose(s.mean, reference.mean_, rtol=1e-12)
    np.testing.assert_allclose(s.std, reference.scale_, rtol=1e-12)
    # ... and not the whole file's (Informer's first release; notes §2.2): OT mean 13.325, std 8.567
    assert round(df["OT"].mean(), 3) == 13.325 and round(df["OT"].std(ddof=0), 3) == 8.567
    assert np.all(np.abs(s.mean - df.mean().to_numpy()) > 0.05)
    np.testing.assert_allclose(s.train.mean(axis=0), 0.0, atol=1e-12)
    unscaled = s.inverse_transform(s.test[:, s.target_index])  # (2976, 7)
    np.testing.assert_allclose(unscaled, df.iloc[11424:14400].to_numpy(), rtol=1e-12, atol=1e-12)
    raw = split(df, "ETTh1", 96, "M", scale=False)
    np.testing.assert_array_equal(raw.test, df.iloc[11424:14400].to_numpy())


def test_feature_modes(frames):
    S, M, MS = (split(frames["ETTh2"], "ETTh2", 96, f) for f in ("S", "M", "MS"))
    assert (S.columns, S.targets) == (("OT",), ("OT",))
    assert M.columns == M.targets == COLUMNS and MS.columns == COLUMNS and MS.targets == ("OT",)
    assert MS.target_index.tolist() == [6]
    XS, YS = windows(S.test, 96, 48, S.target_index)
    XMS, YMS = windows(MS.test, 96, 48, MS.target_index)
    assert XS.shape == (2833, 96, 1) and XMS.shape == (2833, 96, 7) and YMS.shape == (2833, 48, 1)
    np.testing.assert_array_equal(YS, YMS)  # the same OT targets, scaled by OT's own statistics
    with pytest.raises(ValueError, match="features must be one of 'S', 'M', 'MS'"):
        split(frames["ETTh2"], "ETTh2", 96, "U")


def test_windows_are_read_only_views_and_reject_bad_shapes():
    values = np.arange(40.0).reshape(20, 2)
    X, Y = windows(values, 4, 3, [1])
    assert X.shape == (14, 4, 2) and Y.shape == (14, 3, 1)
    assert Y[0, :, 0].tolist() == [9.0, 11.0, 13.0] and not X.flags.writeable
    with pytest.raises(ValueError, match="no window of lookback 15 \\+ horizon 10 fits in 20 rows"):
        windows(values, 15, 10)
    with pytest.raises(ValueError, match="last incomplete batch of 32"):
        windows(values, 4, 3, drop_last=True)
    with pytest.raises(ValueError, match=r"shape \(T, F\)"):
        windows(values[:, 0], 4, 3)


# ----------------------------------------------------------------------------------------------
# naive baselines and metrics


def test_naive_forecast_equations():
    context = np.arange(6.0).reshape(1, 6, 1)  # y(T) = 5 at T = row 5
    assert naive_forecast(context, 3)[0, :, 0].tolist() == [5.0, 5.0, 5.0]
    # ŷ(T+h) = y(T + h − p⌈h/p⌉), p = 3: rows 3, 4, 5, 3, 4, 5, 3
    assert naive_forecast(context, 7, "seasonal", 3)[0, :, 0].tolist() == [3.0, 4.0, 5.0, 3.0, 4.0, 5.0, 3.0]
    with pytest.raises(ValueError, match="seasonal period 7 exceeds the lookback L = 6"):
        naive_forecast(context, 2, "seasonal", 7)
    with pytest.raises(ValueError, match="needs a period"):
        naive_forecast(context, 2, "seasonal")
    with pytest.raises(ValueError, match="method must be one of 'repeat', 'seasonal'"):
        naive_forecast(context, 2, "drift")


def test_mse_mae():
    assert mse_mae(np.array([1.0, -1.0]), np.array([0.0, 1.0])) == (2.5, 1.5)
    with pytest.raises(ValueError, match="same shape"):
        mse_mae(np.zeros((2, 3)), np.zeros((3, 2)))


def test_reference_naive_numbers(frames):
    """The numbers quoted in the notes (§5.2) and docs/demo.md, to 4 decimals."""
    h1 = frames["ETTh1"]
    S = split(h1, "ETTh1", 96, "S")
    assert round(evaluate_naive(S, 24).mse, 4) == 0.0343
    assert round(evaluate_naive(S, 720).mse, 4) == 0.1292
    M168 = split(h1, "ETTh1", 168, "M")
    assert round(evaluate_naive(M168, 96, "seasonal", 24).mse, 4) == 0.5122
    # DLinear paper, Table 2, Repeat column: ETTh1 M H = 336, L = 96, test batch 32 with drop_last
    M = split(h1, "ETTh1", 96, "M")
    score = evaluate_naive(M, 336, "repeat", drop_last=True)
    assert (round(score.mse, 4), round(score.mae, 4), score.n_windows) == (1.3233, 0.7443, 2528)
    assert (round(score.mse, 3), round(score.mae, 3)) == (1.323, 0.744)
    full = evaluate_naive(M, 336, "repeat")  # the whole test set: notes 1.330 / 0.746
    assert (round(full.mse, 3), round(full.mae, 3), full.n_windows) == (1.330, 0.746, 2545)


NOTES_ROWS = [
    ("ETTh1", "Informer", "S", 24, "repeat"),
    ("ETTh1", "Informer", "M", 168, "seasonal_p168"),
    ("ETTh1", "LTSF", "S", 336, "seasonal_p24"),
    ("ETTh1", "LTSF", "M", 720, "repeat"),
    ("ETTh2", "Informer", "S", 48, "repeat"),
    ("ETTh2", "Informer", "M", 720, "seasonal_p168"),
    ("ETTh2", "LTSF", "M", 96, "seasonal_p24"),
    ("ETTh2", "LTSF", "M", 336, "repeat"),
]


@pytest.mark.parametrize("key", NOTES_ROWS, ids=["-".join(map(str, k)) for k in NOTES_ROWS])
def test_naive_matches_notes_csv(frames, naive_table, key):
    data, _, features, H, method = key
    ref = naive_table.loc[key]
    s = split(frames[data], data, int(ref["seq_len"]), features)
    args = ("repeat",) if method == "repeat" else ("seasonal", int(method.removeprefix("seasonal_p")))
    full = evaluate_naive(s, H, *args)
    dropped = evaluate_naive(s, H, *args, drop_last=True, batch_size=32)
    assert (full.n_windows, dropped.n_windows) == (ref["n_windows"], ref["n_windows_droplast32"])
    assert (full.mse, full.mae) == pytest.approx((ref["MSE"], ref["MAE"]), abs=5e-5)
    assert (dropped.mse, dropped.mae) == pytest.approx((ref["MSE_droplast32"], ref["MAE_droplast32"]), abs=5e-5)


@pytest.mark.parametrize("name", ["ETTh1", "ETTh2"])
def test_dlinear_repeat_column_is_reproduced(frames, name):
    """Every ETTh Repeat cell of the DLinear paper's Table 2 (L = 96, drop_last, batch 32), to 3 decimals."""
    s = split(frames[name], name, 96, "M")
    paper = published(data=name, features="M", source="dlinear").query("model == 'Repeat'")
    assert paper["horizon"].tolist() == [96, 192, 336, 720]
    for H, mse, mae in paper[["horizon", "mse", "mae"]].itertuples(index=False):
        score = evaluate_naive(s, H, "repeat", drop_last=True)
        assert (round(score.mse, 3), round(score.mae, 3)) == (mse, mae)


def test_naive_scores_do_not_depend_on_the_lookback(frames):
    short, long = (split(frames["ETTh2"], "ETTh2", L, "M") for L in (96, 336))
    for args in [("repeat",), ("seasonal", 24)]:
        assert evaluate_naive(short, 192, *args) == evaluate_naive(long, 192, *args)
    with pytest.raises(ValueError, match="seasonal period 168 exceeds the lookback L = 96"):
        evaluate_naive(short, 24, "seasonal", 168)


# ----------------------------------------------------------------------------------------------
# published numbers


def test_published_numbers_appear_in_the_notes(notes_dir):
    """Each published cell is on a line of the notes' tables for the same data and horizon (or model, for FITS)."""
    lines = (notes_dir / "ett_protocol.md").read_text().splitlines()
    table = published()
    assert set(table["source"]) == set(SOURCES) and table["data"].isin(["ETTh1", "ETTh2"]).all()
    for row in table.itertuples():
        if row.source == "fits":
            prefix, cell = f"| {row.model} |", repr(row.mse)
        else:
            prefix, cell = f"| {row.data} | {row.horizon} |", f"{row.mse:.3f} / {row.mae:.3f}"
        assert any(line.startswith(prefix) and cell in line for line in lines), (row.source, row.model, row.data, row.horizon)
    assert not table.query("source == 's4'")["verified"].any()
    assert published(source="fits")["mae"].isna().all()
    with pytest.raises(ValueError, match="source must be one of"):
        published(source="S4")


def test_missing_values_are_named_by_load_ett_and_split(tmp_path, ett_dir, frames):
    """An empty cell in a file read without verification, and a NaN in a frame given to split:
    a ValueError naming the column and the time (never NaN scores downstream)."""
    header, first, rest = (ett_dir / "ETTh1.csv").read_text().split("\n", 2)
    cells = first.split(",")
    cells[3] = ""  # MUFL of the first row
    holed = _write(tmp_path / "ETTh1.csv", "\n".join([header, ",".join(cells), rest]))
    with pytest.raises(ValueError, match=r"empty or non-numeric value in column 'MUFL' at 2016-07-01 00:00:00"):
        load_ett("ETTh1", path=holed, verify=False)
    df = frames["ETTh1"].copy()
    df.iloc[100, df.columns.get_loc("OT")] = np.nan
    with pytest.raises(ValueError, match=r"column 'OT' is nan at row 100"):
        split(df, "ETTh1", 96, "S")


def test_published_rejects_unknown_filters():
    for kwargs, message in [({"data": "etth1"}, "data must be one of"), ({"features": "X"}, "features must be one of"), ({"horizon": "24"}, "horizon must be an int")]:
        with pytest.raises(ValueError, match=message):
            published(**kwargs)
    assert len(published(data="ETTh1", features="S", horizon=np.int64(24))) == len(published(data="ETTh1", features="S", horizon=24)) > 0


def test_a_damaged_cache_or_an_unusable_cache_folder_says_what_to_do(tmp_path, ett_dir):
    """A cached copy that fails verification names itself and says to delete it (it is never
    downloaded again by itself); a cache folder that cannot be created is an OSError naming it and
    the way out (another cache_dir, or path=); a file cut off mid-date names the file."""
    cache = tmp_path / "cache"
    _corrupt(ett_dir / "ETTh1.csv", cache / "ETT" / "ETTh1.csv")
    with pytest.raises(ValueError, match=r"delete .*ETTh1.csv to download it again"):
        load_ett("ETTh1", cache_dir=cache, base_url="http://127.0.0.1:9")
    blocker = _write(tmp_path / "a_file", "not a folder")
    with pytest.raises(OSError, match=r"cannot write to the cache folder .*a_file.*pass another cache_dir"):
        load_ett("ETTh2", cache_dir=blocker, base_url="http://127.0.0.1:9")
    text = (ett_dir / "ETTh1.csv").read_text()
    cut = _write(tmp_path / "cut" / "ETTh1.csv", text[: text.index("\n", 1000) + 8])  # ends inside a date
    with pytest.raises(ValueError, match=r"ETTh1: .*cut/ETTh1.csv has a malformed date"):
        load_ett("ETTh1", path=cut, verify=False)


def test_n_windows_is_never_negative_and_needs_a_positive_batch():
    assert n_windows(100, 96, 24) == 0 and n_windows(120, 96, 24) == 1 and n_windows(2976, 96, 24, drop_last=True) == 2848
    with pytest.raises(ValueError, match="batch_size must be an integer ≥ 1"):
        n_windows(2976, 96, 24, drop_last=True, batch_size=0)
