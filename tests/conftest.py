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
