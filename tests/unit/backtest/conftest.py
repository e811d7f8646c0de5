"""Shared fixtures: real Binance BTCUSDT 1m klines from the shared data directory (read-only)."""

from datetime import date

import pytest

from finplat.backtest.adapters.kline_files import load_bars
from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.strategies import REGISTRY, StrategyRegistry
from finplat.binance.archive import daily_kline_paths
from tests.paths import market_data_dir


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
