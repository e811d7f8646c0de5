"""Running one portfolio backtest from its request (RunPortfolio): several symbols, one cash.

Each symbol's bars are fetched as a backtest's are; they must share their open times (the
engine neither drops nor invents bars). The strategy's weights, scaled by the position
fraction, go to the portfolio engine on a worker thread.
"""

import asyncio

import grpc

from finance.backtest.v1 import backtest_pb2, backtest_service_pb2
from finplat.backtest.domain.engine import EngineConfig
from finplat.backtest.domain.portfolio import Panel, PortfolioConfig, PortfolioResult, run_portfolio
from finplat.backtest.domain.strategies import Params, StrategySpec
from finplat.backtest.service import convert, runs, validation
from finplat.backtest.service.validation import DataQuery, RequestError

# Symbols one portfolio may hold: each is a fetch and a column of every array.
MAX_SYMBOLS = 50


def _queries(
    request: backtest_service_pb2.RunPortfolioRequest, limits: runs.Limits
) -> list[DataQuery]:
    if not 2 <= len(request.symbols) <= MAX_SYMBOLS:
        raise RequestError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"symbols: give 2 to {MAX_SYMBOLS}, got {len(request.symbols)}",
        )
    queries = [
        validation.data_range(
            backtest_pb2.DataRange(
                symbol=symbol, interval=request.interval,
                start_time=request.start_time, end_time=request.end_time,
            ),
            # The bar limit bounds memory: it holds for all the symbols together.
            limits.max_bars // len(request.symbols),
        )
        for symbol in request.symbols
    ]  # fmt: skip
    symbols = [q.symbol for q in queries]
    if len(set(symbols)) != len(symbols):
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"symbols repeat: {symbols}")
    return queries


def _config(engine: EngineConfig) -> PortfolioConfig:
    """The portfolio engine's config of the request's (checked) one."""
    if engine.stop_loss is not None or engine.take_profit is not None:
        raise RequestError(
            grpc.StatusCode.INVALID_ARGUMENT,
            "config: stop_loss and take_profit apply to one position, not to a portfolio",
        )
    return PortfolioConfig(engine.initial_capital, engine.fee_bps, engine.slippage_bps, engine.mode)


def _run(
    panel: Panel, spec: StrategySpec, params: Params, config: PortfolioConfig, fraction: float
) -> PortfolioResult:
    return run_portfolio(panel, spec.weights(panel, params) * fraction, config)


async def portfolio(
    request: backtest_service_pb2.RunPortfolioRequest, source: runs.BarSource, limits: runs.Limits
) -> backtest_pb2.Portfolio:
    """Validate, fetch every symbol's bars, run the portfolio and build its message."""
    spec = validation.strategy(request.strategy, one_symbol=False)
    params = validation.parameters(spec, request.parameters)
    engine_config = validation.config(request.config)
    config, fraction = _config(engine_config), engine_config.fraction
    queries = _queries(request, limits)
    bars = await asyncio.gather(*(runs.fetch_bars(source, q) for q in queries))
    result = await runs.compute(
        lambda: _run(
            Panel.from_bars({q.symbol: b for q, b in zip(queries, bars, strict=True)}),
            spec, params, config, fraction,
        )
    )  # fmt: skip
    first = queries[0]
    return backtest_pb2.Portfolio(
        strategy=spec.name,
        parameters={k: float(v) for k, v in params.items()},
        symbols=list(result.symbols),
        interval=first.interval,
        start_time=convert.timestamp(first.start_ms),
        end_time=convert.timestamp(first.end_ms),
        config=convert.config_proto(engine_config),
        metrics=convert.metrics_proto(result.metrics),
        contributions=[
            backtest_pb2.SymbolContribution(
                symbol=c.symbol, pnl=c.pnl, fees=c.fees, fill_count=c.n_fills,
                final_position=c.final_position,
            )
            for c in result.contributions
        ],
        equity_curve=convert.equity_curve_proto(
            result.equity, result.open_time_ms, config.initial_capital, limits.max_equity_points
        ),
        bar_count=len(result.equity),
    )  # fmt: skip
