"""A PriceService that serves real Binance klines from the shared data, GetCandles only.

It keeps the real service's contract where the backtest relies on it: half-open time range,
at most `limit` (<= 5000) candles and the newest ones when more match, NOT_FOUND for a symbol
it does not track.
"""

import csv
import gzip
from collections.abc import AsyncIterator, Sequence
from datetime import date
from pathlib import Path

import grpc
import numpy as np
from typing_extensions import override

from finance.market.v1 import market_pb2, price_service_pb2, price_service_pb2_grpc
from finplat.backtest.adapters.kline_files import load_bars
from finplat.binance.archive import daily_kline_paths, ohlcv_files

Context = grpc.aio.ServicerContext[object, object]
_MICROSECONDS = 100_000_000_000_000


def read_candles(paths: Sequence[Path], symbol: str) -> list[market_pb2.Candle]:
    """Closed 1m candles with the file's exact decimal strings."""
    candles = []
    for path in paths:
        with gzip.open(path, "rt") as lines:
            for row in csv.reader(lines):
                open_time, close_time = int(row[0]), int(row[6])
                if open_time >= _MICROSECONDS:  # 2025 archives are in microseconds
                    open_time, close_time = open_time // 1000, close_time // 1000
                candles.append(
                    market_pb2.Candle(
                        symbol=symbol, interval=market_pb2.INTERVAL_1M,
                        open_time=open_time, close_time=close_time,
                        open=row[1], high=row[2], low=row[3], close=row[4], volume=row[5],
                        quote_volume=row[7], trade_count=int(row[8]), closed=True,
                    )
                )  # fmt: skip
    return candles


def btc_candles(data_dir: Path, start: date, end: date) -> list[market_pb2.Candle]:
    """BTCUSDT 1m candles of the days `start..end`, inclusive."""
    return read_candles(daily_kline_paths(data_dir, "BTCUSDT", "1m", start, end), "BTCUSDT")


def _plain(value: float) -> str:
    # The shortest digits that read back as the same float, never in exponent notation.
    return np.format_float_positional(value, trim="-")


def eth_candles(data_dir: Path, start_ms: int, end_ms: int) -> list[market_pb2.Candle]:
    """ETHUSDT 1m candles opening in [start_ms, end_ms), from the OHLCV-only file (no quote
    volume or trade count there); prices as the shortest strings of the file's floats."""
    bars = load_bars(ohlcv_files(data_dir, "ETHUSDT"))
    rows = np.flatnonzero((bars.open_time_ms >= start_ms) & (bars.open_time_ms < end_ms))
    return [
        market_pb2.Candle(
            symbol="ETHUSDT", interval=market_pb2.INTERVAL_1M,
            open_time=int(bars.open_time_ms[i]), close_time=int(bars.open_time_ms[i]) + 59_999,
            open=_plain(bars.open[i]), high=_plain(bars.high[i]), low=_plain(bars.low[i]),
            close=_plain(bars.close[i]), volume=_plain(bars.volume[i]), closed=True,
        )
        for i in rows
    ]  # fmt: skip


class FakePriceService(price_service_pb2_grpc.PriceServiceServicer):
    """Candles per symbol (1m only); every GetCandles request is recorded."""

    def __init__(self, candles: dict[str, list[market_pb2.Candle]]) -> None:
        self.candles = candles
        self.requests: list[price_service_pb2.GetCandlesRequest] = []
        self.answered: list[int] = []

    @override
    async def GetCandles(
        self, request: price_service_pb2.GetCandlesRequest, context: Context
    ) -> price_service_pb2.GetCandlesResponse:
        self.requests.append(request)
        limit = request.limit or 500
        if not 1 <= limit <= 5000:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"limit {limit}")
        if request.interval != "1m":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "fake serves 1m only")
        if request.symbol not in self.candles:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"symbol {request.symbol} is not tracked"
            )
        # Unset bounds are open, as the real service has them (an unset end is now).
        start = request.start_time.ToMilliseconds() if request.HasField("start_time") else 0
        end = request.end_time.ToMilliseconds() if request.HasField("end_time") else 2**62
        kept = [c for c in self.candles[request.symbol] if start <= c.open_time < end]
        self.answered.append(len(kept[-limit:]))
        return price_service_pb2.GetCandlesResponse(candles=kept[-limit:])

    @override
    async def GetPrice(
        self, request: price_service_pb2.GetPriceRequest, context: Context
    ) -> price_service_pb2.GetPriceResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "fake serves candles only")

    @override
    async def ListPrices(
        self, request: price_service_pb2.ListPricesRequest, context: Context
    ) -> price_service_pb2.ListPricesResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "fake serves candles only")

    @override
    def StreamPrices(
        self, request: price_service_pb2.StreamPricesRequest, context: Context
    ) -> AsyncIterator[price_service_pb2.StreamPricesResponse]:
        raise NotImplementedError("fake serves candles only")
