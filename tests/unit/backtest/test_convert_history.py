"""Conversions to the proto and bar loading, on small hand-made inputs."""

from pathlib import Path

import numpy as np
import pytest

from finance.backtest.v1 import backtest_pb2
from finance.market.v1 import market_pb2
from finplat.backtest.adapters.history import LocalKlineBars, candles_to_bars
from finplat.backtest.domain.engine import PositionMode
from finplat.backtest.errors import NoDataError
from finplat.backtest.service.convert import drawdown, engine_config, sample_indices
from finplat.client.candles import windows
from tests.paths import market_data_dir


def test_drawdown_is_measured_from_the_running_peak_including_initial_capital() -> None:
    equity = np.array([90.0, 120.0, 60.0, 150.0])

    assert drawdown(equity, 100.0).tolist() == pytest.approx([0.1, 0.0, 0.5, 0.0])


def test_sampling_keeps_each_buckets_extreme_and_the_last_point() -> None:
    values = np.zeros(100)
    values[37] = 0.9  # the deepest drawdown

    kept = sample_indices(values, max_points=11)

    assert len(kept) <= 11
    assert 37 in kept
    assert kept[-1] == 99
    assert sample_indices(values[:5], max_points=11).tolist() == [0, 1, 2, 3, 4]


def test_engine_config_reads_proto_zero_values_as_defaults() -> None:
    config = engine_config(backtest_pb2.BacktestConfig(fee_bps=7))

    assert (config.initial_capital, config.fraction, config.mode) == (
        10_000.0, 1.0, PositionMode.LONG_ONLY,
    )  # fmt: skip
    assert (config.stop_loss, config.take_profit, config.fee_bps) == (None, None, 7.0)


def test_candles_to_bars_orders_and_deduplicates_open_times() -> None:
    def candle(t: int, close: str) -> market_pb2.Candle:
        return market_pb2.Candle(open_time=t, open="1", high="2", low="0.5", close=close,
                                 volume="3")  # fmt: skip

    bars = candles_to_bars([candle(120, "1.5"), candle(60, "1.25"), candle(120, "1.75")])

    assert bars.open_time_ms.tolist() == [60, 120]
    assert bars.close.tolist() == [1.25, 1.75]


def test_windows_of_a_range_hold_at_most_a_page_each_and_cover_it() -> None:
    minute = 60_000
    # 12,001 minutes in pages of 5,000: two full windows and one of a single minute.
    assert list(windows("1m", 0, 12_001 * minute, 5000)) == [
        (0, 5000 * minute),
        (5000 * minute, 10_000 * minute),
        (10_000 * minute, 12_001 * minute),
    ]
    # A month has no fixed length: the whole range is one window.
    assert list(windows("1M", 0, 10**12, 5000)) == [(0, 10**12)]
    with pytest.raises(ValueError, match="unknown interval '7m'"):
        list(windows("7m", 0, 1, 5000))


def test_local_files_are_sliced_to_the_half_open_range_across_the_microsecond_switch() -> None:
    source = LocalKlineBars(market_data_dir())
    start = 1_735_689_600_000 - 3 * 60_000  # 2024-12-31 23:57 UTC (ms file)
    end = 1_735_689_600_000 + 2 * 60_000  # 2025-01-01 00:02 UTC (µs file)

    bars = source.load_sync("BTCUSDT", "1m", start, end)

    assert bars.open_time_ms.tolist() == [start + i * 60_000 for i in range(5)]


def test_local_range_without_files_is_no_data(tmp_path: Path) -> None:
    with pytest.raises(NoDataError, match="day files missing"):
        LocalKlineBars(tmp_path).load_sync("BTCUSDT", "1m", 0, 60_000)
