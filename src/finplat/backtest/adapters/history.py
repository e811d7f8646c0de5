"""Historical bars for a backtest: from the price service's GetCandles (paged by
`finplat.client.candles`, closed candles only), or from local files."""

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import numpy as np

from finance.market.v1 import market_pb2, price_service_pb2_grpc
from finplat.backtest.adapters.kline_files import load_bars
from finplat.backtest.domain.bars import Bars
from finplat.backtest.domain.errors import DataFileError
from finplat.backtest.errors import BarsUnavailableError, NoDataError
from finplat.binance.archive import daily_kline_paths
from finplat.client.candles import fetch_candles


def candles_to_bars(candles: Sequence[market_pb2.Candle]) -> Bars:
    """Bars from candles in ascending open time; a repeated open time keeps the last one."""
    by_time = {candle.open_time: candle for candle in candles}
    times = sorted(by_time)
    rows = [by_time[t] for t in times]
    return Bars(
        np.asarray(times, dtype=np.int64),
        np.asarray([float(c.open) for c in rows]),
        np.asarray([float(c.high) for c in rows]),
        np.asarray([float(c.low) for c in rows]),
        np.asarray([float(c.close) for c in rows]),
        np.asarray([float(c.volume) for c in rows]),
    )


class PriceServiceBars:
    """Bars from a PriceService over gRPC."""

    def __init__(
        self,
        stub: "price_service_pb2_grpc.PriceServiceAsyncStub",
        chunk: int = 5000,
        timeout_s: float = 30.0,
        metadata: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self._stub = stub
        self._chunk = chunk
        self._timeout_s = timeout_s
        self._metadata = metadata

    async def load(self, symbol: str, interval: str, start_ms: int, end_ms: int) -> Bars:
        """Closed bars opening in [start_ms, end_ms); NoDataError when there are none."""
        try:
            candles = await fetch_candles(
                self._stub,
                symbol,
                interval,
                start_ms,
                end_ms,
                page=self._chunk,
                timeout_s=self._timeout_s,
                metadata=self._metadata,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise NoDataError(f"price service: {exc.details()}") from exc
            raise BarsUnavailableError(
                f"price service GetCandles failed: {exc.code().name}: {exc.details()}"
            ) from exc
        if not candles:
            raise NoDataError(f"no {interval} candles for {symbol} in the requested range")
        return candles_to_bars(candles)


class LocalKlineBars:
    """Bars from Binance daily kline archives (`<dir>/klines/spot/<SYMBOL>/<interval>/`)."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir

    def load_sync(self, symbol: str, interval: str, start_ms: int, end_ms: int) -> Bars:
        """Bars opening in [start_ms, end_ms), read from every day file the range touches."""
        first = datetime.fromtimestamp(start_ms / 1000, UTC).date()
        last = datetime.fromtimestamp((end_ms - 1) / 1000, UTC).date()
        paths = daily_kline_paths(self._data_dir, symbol, interval, first, last)
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise NoDataError(
                f"{len(missing)} of {len(paths)} day files missing, first {missing[0]}"
            )
        try:
            bars = load_bars(paths)
        except DataFileError as exc:
            raise NoDataError(str(exc)) from exc
        times = bars.open_time_ms
        lo, hi = np.searchsorted(times, [start_ms, end_ms])
        if hi - lo == 0:
            raise NoDataError(f"no {interval} bars for {symbol} in the requested range")
        return bars.slice(int(lo), int(hi))

    async def load(self, symbol: str, interval: str, start_ms: int, end_ms: int) -> Bars:
        """`load_sync` off the event loop."""
        return await asyncio.to_thread(self.load_sync, symbol, interval, start_ms, end_ms)


def utc_ms(moment: datetime) -> int:
    """Epoch milliseconds of a datetime; a naive one is taken as UTC."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return (aware - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
