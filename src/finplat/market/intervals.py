"""Kline intervals in Binance notation, their proto enum and their UTC bucket boundaries."""

from dataclasses import dataclass
from datetime import UTC, datetime

from finance.market.v1 import market_pb2

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS
# 1970-01-01 was a Thursday; Binance weeks start on Monday, four days later.
_MONDAY_OFFSET_MS = 4 * DAY_MS


@dataclass(frozen=True, slots=True)
class IntervalSpec:
    """One kline interval: its Binance code, proto enum value and fixed length (if any)."""

    code: str
    proto: market_pb2.Interval.ValueType
    # None for calendar months, the only interval without a fixed length.
    fixed_ms: int | None

    def start(self, ts_ms: int) -> int:
        """Open time of the bucket holding `ts_ms`, aligned to UTC boundaries."""
        if self.fixed_ms is None:
            moment = datetime.fromtimestamp(ts_ms / 1000, UTC)
            return _month_ms(moment.year, moment.month)
        if self.code == "1w":
            return ts_ms - (ts_ms - _MONDAY_OFFSET_MS) % WEEK_MS
        # Sub-week intervals are aligned to the epoch (3d included; Binance does not document
        # its 3d grid, this follows the epoch like every other fixed interval).
        return ts_ms - ts_ms % self.fixed_ms

    def next_start(self, open_ms: int) -> int:
        """Open time of the bucket after the one opening at `open_ms`."""
        if self.fixed_ms is not None:
            return open_ms + self.fixed_ms
        moment = datetime.fromtimestamp(open_ms / 1000, UTC)
        year, month = (
            (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
        )
        return _month_ms(year, month)

    def close_time(self, open_ms: int) -> int:
        """Binance-style inclusive close time: the last millisecond of the bucket."""
        return self.next_start(open_ms) - 1


def _month_ms(year: int, month: int) -> int:
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp()) * 1000


_SPECS = (
    IntervalSpec("1s", market_pb2.INTERVAL_1S, 1000),
    IntervalSpec("1m", market_pb2.INTERVAL_1M, MINUTE_MS),
    IntervalSpec("3m", market_pb2.INTERVAL_3M, 3 * MINUTE_MS),
    IntervalSpec("5m", market_pb2.INTERVAL_5M, 5 * MINUTE_MS),
    IntervalSpec("15m", market_pb2.INTERVAL_15M, 15 * MINUTE_MS),
    IntervalSpec("30m", market_pb2.INTERVAL_30M, 30 * MINUTE_MS),
    IntervalSpec("1h", market_pb2.INTERVAL_1H, HOUR_MS),
    IntervalSpec("2h", market_pb2.INTERVAL_2H, 2 * HOUR_MS),
    IntervalSpec("4h", market_pb2.INTERVAL_4H, 4 * HOUR_MS),
    IntervalSpec("6h", market_pb2.INTERVAL_6H, 6 * HOUR_MS),
    IntervalSpec("8h", market_pb2.INTERVAL_8H, 8 * HOUR_MS),
    IntervalSpec("12h", market_pb2.INTERVAL_12H, 12 * HOUR_MS),
    IntervalSpec("1d", market_pb2.INTERVAL_1D, DAY_MS),
    IntervalSpec("3d", market_pb2.INTERVAL_3D, 3 * DAY_MS),
    IntervalSpec("1w", market_pb2.INTERVAL_1W, WEEK_MS),
    IntervalSpec("1M", market_pb2.INTERVAL_1MO, None),
)
INTERVALS: dict[str, IntervalSpec] = {spec.code: spec for spec in _SPECS}
_BY_PROTO = {spec.proto: spec for spec in _SPECS}
# Proto JSON spelling of each interval ("INTERVAL_1M", "INTERVAL_1MO"), taken from the enum.
_BY_ENUM_NAME = {market_pb2.Interval.Name(spec.proto): spec for spec in _SPECS}


def parse_interval(code: str) -> IntervalSpec:
    """The interval for a Binance code such as "1m" or "1M" (case matters: "1M" is a month)."""
    try:
        return INTERVALS[code]
    except KeyError:
        raise ValueError(
            f"unknown interval {code!r}; expected one of {', '.join(INTERVALS)}"
        ) from None


def parse_interval_or_enum_name(text: str) -> IntervalSpec:
    """The interval for a Binance code ("1m") or an `Interval` enum name ("INTERVAL_1M").

    For string fields a client may fill from a `Candle.interval` it received as JSON. Both
    forms are exact: "1M" is a month, "INTERVAL_1M" a minute and "INTERVAL_1MO" a month.
    The result's `.code` is the Binance notation, the canonical form to store and echo.
    """
    spec = INTERVALS.get(text) or _BY_ENUM_NAME.get(text)
    if spec is None:
        raise ValueError(
            f"unknown interval {text!r}; expected a Binance code ({', '.join(INTERVALS)})"
            f" or an Interval enum name ({', '.join(_BY_ENUM_NAME)})"
        )
    return spec


def interval_from_proto(value: market_pb2.Interval.ValueType) -> IntervalSpec:
    """The interval for a proto enum value."""
    try:
        return _BY_PROTO[value]
    except KeyError:
        raise ValueError(f"unsupported interval enum value {value}") from None
