"""Shared test fixtures: where the ETT data lives (read only, never copied: CC BY-ND)."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def ett_dir() -> Path:
    """Folder with the verbatim ETTh1/ETTh2 files: $SSMFORECAST_ETT_DIR or ../shared/data/ETT.

    Missing data skips the test on a developer's machine but fails it in CI (CI=true), where
    ../shared is always beside the checkout.
    """
    path = Path(os.environ.get("SSMFORECAST_ETT_DIR", REPO.parent / "shared" / "data" / "ETT"))
    require_shared((path / "ETTh1.csv").is_file(), f"ETT data not found in {path} (set SSMFORECAST_ETT_DIR)")
    return path


def require_shared(found: bool, message: str) -> None:
    """Files from ../shared missing: skip on a developer's machine, fail in CI (CI=true), where
    ../shared is always beside the checkout."""
    if not found:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


def needs_fused() -> None:
    """The fused CPU code (ssmforecast/math/_fused_scan.cpp) is built with the system's C++ compiler:
    without one there is nothing to test (the torch paths run instead) and the test is skipped; with
    one, the build must succeed."""
    import shutil

    from ssmforecast.math import _fused

    if shutil.which(os.environ.get("CXX", "c++")) is None:
        pytest.skip("no C++ compiler: the fused CPU code cannot be built here")
    assert _fused.library() is not None, "a C++ compiler is here, yet the fused CPU code did not build"
