"""Fixtures every test package shares."""

from pathlib import Path

import pytest

from tests.paths import market_data_dir


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real Binance data set; a test that needs it fails, never skips, without it."""
    path = market_data_dir()
    if not (path / "SOURCE.md").is_file():
        pytest.fail(f"market data not found under {path}; set FINPLAT_DATA_DIR")
    return path
