"""Shared fixtures: real Binance BTCUSDT 1m klines from the shared data directory (read-only)."""

from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import pytest
import pytest_asyncio

from finplat.backtest.adapters.kline_files import load_bars
from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.strategies import REGISTRY, StrategyRegistry
from finplat.backtest.service.runs import Limits
from finplat.binance.archive import daily_kline_paths
from tests.paths import market_data_dir
from tests.unit.backtest.api_harness import Harness, serve_harness


def btc_1m(start: date, end: date) -> Bars:
    paths = daily_kline_paths(market_data_dir(), "BTCUSDT", "1m", start, end)
    if not paths[0].is_file():
        pytest.fail(f"kline data not found under {market_data_dir()}; set FINPLAT_DATA_DIR")
    return load_bars(paths)


@pytest.fixture(scope="session")
def q4_bars() -> Bars:
    """3 days (4,320 bars) of the Q4-2024 set, timestamps in ms."""
    return btc_1m(date(2024, 11, 1), date(2024, 11, 3))


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> StrategyRegistry:
    """The process's strategy registry, with whatever the test adds removed afterwards."""
    monkeypatch.setattr(REGISTRY, "_entries", dict(REGISTRY._entries))
    return REGISTRY


@pytest_asyncio.fixture
async def service(tmp_path: Path) -> AsyncIterator[Harness]:
    """The backtest service's API on three real days of BTCUSDT 1m (see `api_harness`)."""
    async with serve_harness(tmp_path, Limits(max_bars=100_000)) as harness:
        yield harness
