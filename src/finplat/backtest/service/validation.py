"""Request checks of the backtest API, each failure with the gRPC status it deserves."""

import math
from collections.abc import Mapping
from dataclasses import dataclass

import grpc

from finance.backtest.v1 import backtest_pb2
from finplat.backtest.domain.engine import EngineConfig
from finplat.backtest.domain.errors import (
    InvalidConfigError,
    InvalidParameterError,
    UnknownStrategyError,
)
from finplat.backtest.domain.strategies import REGISTRY, Params, StrategySpec
from finplat.backtest.service.convert import PROTO_METRICS, PROTO_TO_DOMAIN_METRIC, engine_config
from finplat.market.intervals import parse_interval_or_enum_name
from finplat.market.symbols import is_symbol

DEFAULT_RANK_BY = "sharpe"


class RequestError(Exception):
    """A request that cannot be served as asked."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _invalid(message: str) -> RequestError:
    return RequestError(grpc.StatusCode.INVALID_ARGUMENT, message)


@dataclass(frozen=True, slots=True)
class DataQuery:
    """A checked DataRange, times in epoch milliseconds, `end_ms` exclusive."""

    symbol: str
    interval: str
    start_ms: int
    end_ms: int

    def proto(self) -> backtest_pb2.DataRange:
        """The normalised range as stored with a run."""
        data = backtest_pb2.DataRange(symbol=self.symbol, interval=self.interval)
        data.start_time.FromMilliseconds(self.start_ms)
        data.end_time.FromMilliseconds(self.end_ms)
        return data


def strategy(name: str, *, one_symbol: bool = True) -> StrategySpec:
    """The registered strategy, NOT_FOUND otherwise; for a call on one symbol, one that can
    run on one (a portfolio strategy cannot: FAILED_PRECONDITION, before any work)."""
    try:
        spec = REGISTRY.get(name)
    except UnknownStrategyError as exc:
        raise RequestError(grpc.StatusCode.NOT_FOUND, str(exc)) from None
    if one_symbol and spec.signal_fn is None:
        raise RequestError(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"strategy {name!r} is a portfolio strategy: it runs on several symbols (RunPortfolio)",
        )
    return spec


def parameters(spec: StrategySpec, raw: Mapping[str, float]) -> Params:
    """Validated parameters, defaults filled in."""
    try:
        return spec.parse(dict(raw))
    except InvalidParameterError as exc:
        raise _invalid(str(exc)) from exc


def config(raw: backtest_pb2.BacktestConfig) -> EngineConfig:
    """The engine config, INVALID_ARGUMENT when out of range."""
    try:
        return engine_config(raw)
    except InvalidConfigError as exc:
        raise _invalid(f"config: {exc}") from exc


def data_range(data: backtest_pb2.DataRange, max_bars: int) -> DataQuery:
    """A checked symbol, interval and non-empty time range of at most `max_bars` bars.

    The interval may be a Binance code ("1m") or an `Interval` enum name ("INTERVAL_1M");
    the query carries the Binance code.
    """
    symbol = data.symbol.strip().upper()
    if not is_symbol(symbol):
        raise _invalid(f"data.symbol must be 1-32 letters or digits, got {data.symbol!r}")
    try:
        interval = parse_interval_or_enum_name(data.interval)
    except ValueError as exc:
        raise _invalid(f"data.interval: {exc}") from exc
    step_ms = interval.fixed_ms
    if not (data.HasField("start_time") and data.HasField("end_time")):
        raise _invalid("data.start_time and data.end_time are required")
    start, end = data.start_time.ToMilliseconds(), data.end_time.ToMilliseconds()
    if start >= end:
        raise _invalid(f"empty or inverted time range: start {start} ms >= end {end} ms")
    if step_ms is not None and (end - start) // step_ms > max_bars:
        raise _invalid(f"time range holds more than {max_bars} {interval.code} bars")
    # The Binance code whichever form was sent: it is what is fetched, stored and echoed.
    return DataQuery(symbol, interval.code, start, end)


def grid(
    spec: StrategySpec, ranges: Mapping[str, backtest_pb2.ParameterRange], max_combos: int
) -> dict[str, list[float]]:
    """Values per swept parameter, `start..stop` inclusive by `step`; bounded in total."""
    names = {p.name for p in spec.schema}
    values: dict[str, list[float]] = {}
    combos = 1
    for name, span in sorted(ranges.items()):
        if name not in names:
            raise _invalid(f"grid: unknown parameter {name!r}; expected {sorted(names)}")
        if not (math.isfinite(span.step) and span.step > 0):
            raise _invalid(f"grid.{name}: step must be positive, got {span.step}")
        if not (math.isfinite(span.start) and math.isfinite(span.stop)) or span.stop < span.start:
            raise _invalid(f"grid.{name}: stop must be >= start, got {span.start}..{span.stop}")
        # The epsilon keeps a stop reached by float steps (0.1 * 3) inside the range.
        steps = (span.stop - span.start) / span.step + 1e-9
        if not steps < max_combos:  # also an overflow to inf, from a step of 1e-300
            raise _invalid(f"grid has more than {max_combos} combinations")
        count = math.floor(steps) + 1
        combos *= count
        if combos > max_combos:
            raise _invalid(f"grid has more than {max_combos} combinations")
        values[name] = [round(span.start + i * span.step, 12) for i in range(count)]
    return values


def rank_by(name: str) -> tuple[str, str]:
    """(proto name, domain attribute) of the ranking metric; sharpe when empty."""
    proto_name = name or DEFAULT_RANK_BY
    if proto_name not in PROTO_METRICS:
        raise _invalid(f"rank_by must be one of {', '.join(PROTO_METRICS)}; got {name!r}")
    return proto_name, PROTO_TO_DOMAIN_METRIC.get(proto_name, proto_name)
