"""The running platform from a notebook or a script: candles, strategies, backtests and
parameter sweeps as pandas DataFrames.

The calls block (gRPC's synchronous API): a notebook's own event loop is already running, and
an asyncio client would need it. Times are UTC; prices come as floats for computing (the
services keep them exact; `finplat price export` writes the exact decimals).

    from finplat.client import Platform

    with Platform() as platform:
        candles = platform.candles("BTCUSDT", "1m", last=600)
        sweep = platform.start_sweep(
            "sma_crossover", "BTCUSDT", "1m", "2024-11-01", "2024-11-02",
            grid={"fast": range(5, 21, 5), "slow": (20, 100, 10)},
        )
        best = sweep.wait().results.iloc[0]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pandas as pd
from pydantic import SecretStr

from finance.backtest.v1 import backtest_pb2, backtest_service_pb2, backtest_service_pb2_grpc
from finance.market.v1 import market_pb2, price_service_pb2, price_service_pb2_grpc
from finplat.client.candles import MAX_PAGE, candle_request, windows
from finplat.client.operations import (
    GridAxis,
    SweepOperation,
    WalkForwardOperation,
    metrics_dict,
    sweep_grid,
)
from finplat.core.grpc_security import ChannelSecurity, bearer_metadata

Moment = datetime | pd.Timestamp | str
_PRICE_COLUMNS = ("open", "high", "low", "close", "volume", "quote_volume")


@dataclass(frozen=True)
class BacktestRun:
    """A stored backtest: its metrics, trades and equity curve, and the message itself."""

    id: str
    metrics: dict[str, float | pd.Timedelta]
    """Every field of the service's Metrics; durations as Timedelta."""
    trades: pd.DataFrame
    """One row per closed trade: side, entry and exit time and price, size, pnl, fees."""
    equity: pd.DataFrame
    """Equity and drawdown, indexed by time (thinned to the service's point limit)."""
    message: backtest_pb2.Backtest


@dataclass(frozen=True)
class PortfolioRun:
    """A portfolio backtest: its metrics, each symbol's contribution and the equity curve."""

    metrics: dict[str, float | pd.Timedelta]
    """Every field of the service's Metrics (trade_count counts fills)."""
    contributions: pd.DataFrame
    """One row per symbol: pnl (fees included, open position marked), fees, fills, final
    position."""
    equity: pd.DataFrame
    """Equity and drawdown, indexed by time (thinned to the service's point limit)."""
    message: backtest_pb2.Portfolio


class Platform:
    """Blocking clients of the price and backtest services; close it, or use it in `with`."""

    def __init__(
        self,
        price_address: str = "127.0.0.1:50051",
        backtest_address: str = "127.0.0.1:50052",
        *,
        token: str | None = None,
        tls_ca_file: Path | None = None,
        timeout_s: float = 120.0,
    ) -> None:
        security = ChannelSecurity(tls_ca_file=tls_ca_file)
        self._channels = [
            security.open_blocking_channel(address) for address in (price_address, backtest_address)
        ]
        self._prices = price_service_pb2_grpc.PriceServiceStub(self._channels[0])
        self._backtests = backtest_service_pb2_grpc.BacktestServiceStub(self._channels[1])
        self._metadata = bearer_metadata(SecretStr(token) if token else None)
        self._timeout_s = timeout_s

    def close(self) -> None:
        for channel in self._channels:
            channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def candles(
        self,
        symbol: str,
        interval: str,
        start: Moment | None = None,
        end: Moment | None = None,
        *,
        last: int | None = None,
    ) -> pd.DataFrame:
        """Closed candles indexed by open time: of [start, end), or the `last` ones (at most
        5,000) when no range is given."""
        if start is not None and end is not None and last is None:
            candles = self._range(symbol, interval, _ms(start), _ms(end))
        elif start is None and end is None and last is not None and 0 < last <= MAX_PAGE:
            request = price_service_pb2.GetCandlesRequest(
                symbol=symbol, interval=interval, limit=last
            )
            candles = list(self._call(self._prices.GetCandles, request).candles)
        else:
            raise ValueError(f"give start and end, or last (1 to {MAX_PAGE}), not both")
        return _candle_frame(candles)

    def strategies(self) -> pd.DataFrame:
        """Every strategy the service runs: name, description and parameters (name: default)."""
        response = self._call(
            self._backtests.ListStrategies, backtest_service_pb2.ListStrategiesRequest()
        )
        return pd.DataFrame(
            [
                {"name": s.name, "description": s.description,
                 "parameters": {p.name: p.default_value for p in s.parameters}}
                for s in response.strategies
            ]
        ).set_index("name")  # fmt: skip

    def backtest(
        self,
        strategy: str,
        symbol: str,
        interval: str,
        start: Moment,
        end: Moment,
        parameters: Mapping[str, float] | None = None,
        *,
        fee_bps: float = 0.0,
        slippage_bps: float = 0.0,
        initial_cash: float = 0.0,
    ) -> BacktestRun:
        """Run a backtest on the service's bars of [start, end) and return it, stored."""
        request = backtest_service_pb2.RunBacktestRequest(
            strategy=strategy,
            parameters=dict(parameters or {}),
            data=_data_range(symbol, interval, start, end),
            config=backtest_pb2.BacktestConfig(
                fee_bps=fee_bps, slippage_bps=slippage_bps, initial_cash=initial_cash
            ),
        )
        return _run(self._call(self._backtests.RunBacktest, request).backtest)

    def portfolio(
        self,
        strategy: str,
        symbols: Sequence[str],
        interval: str,
        start: Moment,
        end: Moment,
        parameters: Mapping[str, float] | None = None,
        *,
        fee_bps: float = 0.0,
        slippage_bps: float = 0.0,
        initial_cash: float = 0.0,
        long_short: bool = False,
    ) -> PortfolioRun:
        """Run `strategy` over `symbols` with one cash balance on the bars of [start, end):
        a portfolio strategy's weights, or each symbol an equal share of a one-symbol
        strategy's target. Long only unless `long_short`."""
        request = backtest_service_pb2.RunPortfolioRequest(
            strategy=strategy,
            parameters=dict(parameters or {}),
            symbols=list(symbols),
            interval=interval,
            config=backtest_pb2.BacktestConfig(
                fee_bps=fee_bps, slippage_bps=slippage_bps, initial_cash=initial_cash,
                mode=(
                    backtest_pb2.POSITION_MODE_LONG_SHORT
                    if long_short
                    else backtest_pb2.POSITION_MODE_LONG_ONLY
                ),
            ),
        )  # fmt: skip
        request.start_time.FromMilliseconds(_ms(start))
        request.end_time.FromMilliseconds(_ms(end))
        message = self._call(self._backtests.RunPortfolio, request).portfolio
        contributions = pd.DataFrame(
            [(c.pnl, c.fees, c.fill_count, c.final_position) for c in message.contributions],
            columns=["pnl", "fees", "fills", "final_position"],
            index=pd.Index(list(message.symbols), name="symbol"),
        )
        return PortfolioRun(
            metrics_dict(message.metrics),
            contributions,
            _equity_frame(message.equity_curve),
            message,
        )

    def start_sweep(
        self,
        strategy: str,
        symbol: str,
        interval: str,
        start: Moment,
        end: Moment,
        grid: Mapping[str, GridAxis],
        *,
        fee_bps: float = 0.0,
        slippage_bps: float = 0.0,
        initial_cash: float = 0.0,
        rank_by: str = "sharpe",
        top_n: int = 0,
    ) -> SweepOperation:
        """Start a backtest of every combination of `grid` on the bars of [start, end), as an
        operation of the service, and return it at once (`wait()` for its results).

        `grid` maps each swept parameter to its values: a `range` (exactly its values), a
        `(start, stop, step)` tuple with `stop` included, or one number; parameters left out
        keep their defaults. Results are ranked by the Metrics field `rank_by`, best first;
        `top_n` keeps only the best ones (0: all). A bad request raises grpc.RpcError here.
        """
        request = backtest_service_pb2.RunSweepRequest(
            strategy=strategy,
            grid=sweep_grid(grid),
            data=_data_range(symbol, interval, start, end),
            config=backtest_pb2.BacktestConfig(
                fee_bps=fee_bps, slippage_bps=slippage_bps, initial_cash=initial_cash
            ),
            rank_by=rank_by,
            top_n=top_n,
        )
        return SweepOperation.start(
            self._channels[1], request, metadata=self._metadata, timeout_s=self._timeout_s
        )

    def start_walk_forward(
        self,
        strategy: str,
        symbol: str,
        interval: str,
        start: Moment,
        end: Moment,
        grid: Mapping[str, GridAxis],
        *,
        folds: int,
        in_sample_ratio: float = 1.0,
        anchored: bool = False,
        warmup_bars: int = 0,
        fee_bps: float = 0.0,
        slippage_bps: float = 0.0,
        initial_cash: float = 0.0,
        rank_by: str = "sharpe",
    ) -> WalkForwardOperation:
        """Start a walk-forward of `strategy` over the bars of [start, end) as an operation of
        the service, and return it at once (`wait()` for its folds).

        `folds` out-of-sample windows end at the last bar, each after an in-sample window
        `in_sample_ratio` times as long (rolling, or from the first bar when `anchored`); each
        fold's sweep of `grid` (as `start_sweep`'s) picks the parameters by `rank_by`.
        """
        request = backtest_service_pb2.StartWalkForwardRequest(
            strategy=strategy,
            grid=sweep_grid(grid),
            data=_data_range(symbol, interval, start, end),
            config=backtest_pb2.BacktestConfig(
                fee_bps=fee_bps, slippage_bps=slippage_bps, initial_cash=initial_cash
            ),
            rank_by=rank_by,
            folds=folds,
            in_sample_ratio=in_sample_ratio,
            mode=(
                backtest_service_pb2.WINDOW_MODE_ANCHORED
                if anchored
                else backtest_service_pb2.WINDOW_MODE_ROLLING
            ),
            warmup_bars=warmup_bars,
        )
        return WalkForwardOperation.start(
            self._channels[1], request, metadata=self._metadata, timeout_s=self._timeout_s
        )

    def sweep_operation(self, name: str) -> SweepOperation:
        """The sweep operation called `name` ("operations/..."), started here or elsewhere;
        grpc.RpcError NOT_FOUND if there is none, ValueError if it is not a sweep."""
        return SweepOperation.attach(
            self._channels[1], name, metadata=self._metadata, timeout_s=self._timeout_s
        )

    def _range(
        self, symbol: str, interval: str, start_ms: int, end_ms: int
    ) -> list[market_pb2.Candle]:
        candles: list[market_pb2.Candle] = []
        for window_start, window_end in windows(interval, start_ms, end_ms, MAX_PAGE):
            request = candle_request(symbol, interval, window_start, window_end, MAX_PAGE)
            response = self._call(self._prices.GetCandles, request)
            candles.extend(c for c in response.candles if c.closed)
        return candles

    def _call(self, method: Any, request: Any) -> Any:
        return method(request, timeout=self._timeout_s, metadata=self._metadata)


def _data_range(symbol: str, interval: str, start: Moment, end: Moment) -> backtest_pb2.DataRange:
    data = backtest_pb2.DataRange(symbol=symbol, interval=interval)
    data.start_time.FromMilliseconds(_ms(start))
    data.end_time.FromMilliseconds(_ms(end))
    return data


def _ms(moment: Moment) -> int:
    stamp = pd.Timestamp(moment)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.value // 1_000_000)


def _time(ms: list[int]) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(ms, unit="ms", utc=True))


def _candle_frame(candles: list[market_pb2.Candle]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            **{name: [float(getattr(c, name) or 0) for c in candles] for name in _PRICE_COLUMNS},
            "trade_count": [c.trade_count for c in candles],
        },
        index=_time([c.open_time for c in candles]),
    )
    frame.index.name = "open_time"
    return frame


def _run(message: backtest_pb2.Backtest) -> BacktestRun:
    metrics = metrics_dict(message.metrics)
    trades = pd.DataFrame(
        {
            "side": [backtest_pb2.Side.Name(t.side) for t in message.trades],
            "entry_time": _time([t.entry_time.ToMilliseconds() for t in message.trades]),
            "exit_time": _time([t.exit_time.ToMilliseconds() for t in message.trades]),
            **{
                name: [getattr(t, name) for t in message.trades]
                for name in ("entry_price", "exit_price", "size", "pnl", "return_fraction", "fees")
            },
        }
    )
    return BacktestRun(message.id, metrics, trades, _equity_frame(message.equity_curve), message)


def _equity_frame(points: Sequence[backtest_pb2.EquityPoint]) -> pd.DataFrame:
    equity = pd.DataFrame(
        {"equity": [p.equity for p in points], "drawdown": [p.drawdown for p in points]},
        index=_time([p.time.ToMilliseconds() for p in points]),
    )
    equity.index.name = "time"
    return equity
