"""Ticks and candles in InfluxDB 2.

Schema, chosen for the candle queries:
- `candles`, tags `symbol` and `interval`, time = open time (ms); integer fields `open_e8`,
  `high_e8`, `low_e8`, `close_e8`, `volume_e8`, `quote_volume_e8` (values x 10^8, exact),
  `trade_count`, `close_time`, and boolean `closed`. A forming candle is rewritten at the same
  point until it closes, so the stored point is always its latest state.
- `ticks`, tags `symbol`, `kind` and `exchange`, integer fields `price_e8`, `volume_e8` and the
  string `event_id`. Several trades share a millisecond, and InfluxDB keeps one point per series
  and time, so a tick's time is its event time in ms plus, in the nanoseconds below it, its
  numeric event id modulo 10^6.

One bad point never costs its batch. InfluxDB refuses a whole batch over one line it cannot
parse (400), so every point is checked first (64-bit integers, times within InfluxDB's range,
tags of a known alphabet; there are no float fields, so no NaN) and a failing one is left out.
What only InfluxDB can tell (a field type conflict with what is stored, 422) is found by halving
a refused batch until the refused lines stand alone. Both are counted in `refused_ticks` and
`refused_candles` by `Refusal`; the rest of the batch is written.
"""

import functools
import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import NamedTuple, TypeVar

from aiohttp import ClientError
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from finance.market.v1 import market_pb2
from finplat.core.connections import InfluxSettings
from finplat.market.fixed import FixedPointError, from_e8, to_e8
from finplat.market.intervals import IntervalSpec, interval_from_proto
from finplat.market.symbols import is_symbol
from finplat.price.adapters.errors import Refusal, StoreRejectedError, StoreUnavailableError

logger = logging.getLogger(__name__)
T = TypeVar("T")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
_NS_PER_MS = 1_000_000
# InfluxDB's time range in ns (its parser refuses the int64 extremes themselves).
_TIME_NS = range(-9_223_372_036_854_775_806, 9_223_372_036_854_775_807)
# What an exchange's name may not carry into the `exchange` tag.
_NOT_IN_A_TAG = re.compile(r"[^a-z0-9_]")
_CANDLE_FIELDS = ("open", "high", "low", "close", "volume", "quote_volume")
_KIND_TAGS = {
    market_pb2.EVENT_KIND_UNSPECIFIED: "unspecified",
    market_pb2.EVENT_KIND_TRADE: "trade",
    market_pb2.EVENT_KIND_AGG_TRADE: "agg_trade",
    market_pb2.EVENT_KIND_KLINE: "kline",
    market_pb2.EVENT_KIND_TICKER: "ticker",
}


def _symbol(symbol: str) -> str:
    # Symbols become tags; anything but Binance's alphabet would need escaping, so it is refused.
    if not is_symbol(symbol):
        raise StoreRejectedError(f"symbol {symbol!r} is not a Binance symbol")
    return symbol


def _time(value: int, ns_per_unit: int) -> int:
    if value * ns_per_unit not in _TIME_NS:
        raise StoreRejectedError(f"time {value} is outside InfluxDB's range (years 1677-2262)")
    return value


def _scaled(name: str, text: str) -> str:
    try:
        return f"{name}_e8={to_e8(text or '0')}i"
    except FixedPointError as exc:
        raise StoreRejectedError(f"{name}: {exc}") from exc


@functools.lru_cache(maxsize=64)
def _exchange_tag(exchange: str) -> str:
    # Once per exchange rather than per tick: the substitution was 3% of the price service.
    return _NOT_IN_A_TAG.sub("_", exchange.lower()) or "unknown"


def tick_line(update: market_pb2.PriceUpdate) -> str:
    """The line-protocol point of one update (nanosecond precision)."""
    sequence = int(update.event_id) % _NS_PER_MS if update.event_id.isdigit() else 0
    kind = _KIND_TAGS.get(update.kind, "unspecified")
    exchange = _exchange_tag(update.exchange)
    event_id = update.event_id.replace("\\", "\\\\").replace('"', '\\"')
    return (
        f"ticks,symbol={_symbol(update.symbol)},kind={kind},exchange={exchange} "
        f"{_scaled('price', update.price)},{_scaled('volume', update.volume)},"
        f'event_id="{event_id}" {_time(update.timestamp * _NS_PER_MS + sequence, 1)}'
    )


def candle_line(candle: market_pb2.Candle) -> str:
    """The line-protocol point of one candle (millisecond precision)."""
    try:
        interval = interval_from_proto(candle.interval).code
    except ValueError as exc:
        raise StoreRejectedError(str(exc)) from exc
    fields = ",".join(_scaled(name, getattr(candle, name)) for name in _CANDLE_FIELDS)
    return (
        f"candles,symbol={_symbol(candle.symbol)},interval={interval} {fields},"
        f"trade_count={candle.trade_count}i,close_time={candle.close_time}i,"
        f"closed={'true' if candle.closed else 'false'} {_time(candle.open_time, _NS_PER_MS)}"
    )


# InfluxDB OSS has no query parameters (only Cloud does), so values are rendered as Flux
# literals: every one is validated first (symbol pattern, known interval, integer times) and
# escaped by `_flux_string`.
_CANDLE_QUERY = """
from(bucket: {bucket})
  |> range(start: {start}, stop: {stop})
  |> filter(fn: (r) => r._measurement == "candles")
  |> filter(fn: (r) => r.symbol == {symbol} and r.interval == {interval})
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
  |> group()
  |> sort(columns: ["_time"])
"""

_LAST_CANDLE_QUERY = """
from(bucket: {bucket})
  |> range(start: 0)
  |> filter(fn: (r) => r._measurement == "candles" and r._field == "close_time")
  |> filter(fn: (r) => r.symbol == {symbol} and r.interval == {interval})
  |> last()
"""


def _flux_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    return f'"{escaped}"'


def _rfc3339(epoch_ms: int) -> str:
    moment = _EPOCH + epoch_ms * _MILLISECOND
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Line(NamedTuple):
    """One line of a batch and the position, in the batch, of the item it was made from."""

    item: int
    text: str


Post = Callable[[Sequence[str]], Awaitable[None]]


async def write_points(
    items: Sequence[T], to_line: Callable[[T], str], post: Post, refused: Counter[str]
) -> None:
    """Write the items that make valid lines through `post`, leaving out and counting in
    `refused` those refused by `to_line` or, alone, by `post` (StoreRejectedError).

    StoreUnavailableError from `post` propagates with `written` set to the position of the
    first item not yet done; only refusals before it are counted, as the rest is retried.
    """
    lines: list[_Line] = []
    invalid: list[tuple[int, str]] = []
    for index, item in enumerate(items):
        try:
            lines.append(_Line(index, to_line(item)))
        except StoreRejectedError as exc:
            invalid.append((index, str(exc)))
    refusals: list[tuple[_Line, str]] = []
    try:
        await _write_or_halve(lines, post, refusals)
    except StoreUnavailableError as exc:
        _count(refused, [i for i in invalid if i[0] < exc.written], refusals)
        raise
    _count(refused, invalid, refusals)


async def _write_or_halve(
    lines: Sequence[_Line], post: Post, refusals: list[tuple[_Line, str]]
) -> None:
    """Write `lines`; when refused, write each half the same way, left first, so that only
    lines refused on their own are left out (in order, for `write_points`' prefix rule)."""
    if not lines:
        return
    try:
        await post([line.text for line in lines])
    except StoreRejectedError as exc:
        if len(lines) == 1:
            refusals.append((lines[0], str(exc)))
            return
        middle = len(lines) // 2
        await _write_or_halve(lines[:middle], post, refusals)
        await _write_or_halve(lines[middle:], post, refusals)
    except StoreUnavailableError as exc:
        # Everything before this part is done (written or refused): retry from its first item.
        raise StoreUnavailableError(str(exc), written=lines[0].item) from exc


def _count(
    refused: Counter[str], invalid: Sequence[tuple[int, str]], refusals: Sequence[tuple[_Line, str]]
) -> None:
    # One log line a batch, with the first reason: a schema conflict refuses every line.
    if invalid:
        refused[Refusal.INVALID.value] += len(invalid)
        logger.warning("%d points not stored in influxdb: %s", len(invalid), invalid[0][1])
    if refusals:
        refused[Refusal.STORE.value] += len(refusals)
        line, reason = refusals[0]
        logger.warning(
            "influxdb refused %d points: %s", len(refusals), reason, extra={"line": line.text}
        )


class InfluxMarketStore:
    """Writes ticks and candles, reads candles back."""

    def __init__(self, settings: InfluxSettings) -> None:
        self._client = InfluxDBClientAsync(
            url=settings.url,
            token=settings.token.get_secret_value(),
            org=settings.org,
            timeout=int(settings.timeout_s * 1000),
        )
        self._bucket = settings.bucket
        self._write = self._client.write_api()
        self._query = self._client.query_api()
        # Points left out of written batches, by `Refusal` value; read by the metrics collector.
        self.refused_ticks: Counter[str] = Counter()
        self.refused_candles: Counter[str] = Counter()

    async def close(self) -> None:
        """Release the HTTP session."""
        await self._client.close()  # type: ignore[no-untyped-call]

    async def ping(self) -> bool:
        """Whether InfluxDB answers its health check."""
        try:
            return bool(await self._client.ping())
        except (TimeoutError, ClientError, OSError):
            return False

    async def _post(self, lines: Sequence[str], precision: str) -> None:
        try:
            await self._write.write(
                bucket=self._bucket,
                # One string: a list would be walked and encoded line by line by the client, at
                # about 1 µs a line.
                record="\n".join(lines),
                # The client's constants are plain strings although its signature names the class.
                write_precision=precision,  # type: ignore[arg-type]
            )
        except ApiException as exc:
            if exc.status in {400, 422}:
                raise StoreRejectedError(f"influxdb refused: {exc.body}") from exc
            raise StoreUnavailableError(f"influxdb: HTTP {exc.status}: {exc.reason}") from exc
        except (TimeoutError, ClientError, OSError) as exc:
            raise StoreUnavailableError(f"influxdb: {exc!r}") from exc

    async def write_ticks(self, updates: Sequence[market_pb2.PriceUpdate]) -> None:
        """Write one batch of updates as ticks; refused points are counted and left out."""

        async def post(lines: Sequence[str]) -> None:
            await self._post(lines, WritePrecision.NS)

        await write_points(updates, tick_line, post, self.refused_ticks)

    async def write_candles(self, candles: Sequence[market_pb2.Candle]) -> None:
        """Write one batch of candles, closed or forming; refused points are counted and left
        out."""

        async def post(lines: Sequence[str]) -> None:
            await self._post(lines, WritePrecision.MS)

        await write_points(candles, candle_line, post, self.refused_candles)

    async def _rows(self, template: str, values: dict[str, str]) -> list[dict[str, object]]:
        query = template.format(bucket=_flux_string(self._bucket), **values)
        try:
            tables = await self._query.query(query)
        except ApiException as exc:
            raise StoreUnavailableError(f"influxdb query: HTTP {exc.status}: {exc.body}") from exc
        except (TimeoutError, ClientError, OSError) as exc:
            raise StoreUnavailableError(f"influxdb query: {exc!r}") from exc
        return [record.values for table in tables for record in table.records]

    async def last_open_time(self, symbol: str, interval: IntervalSpec) -> int | None:
        """Open time (ms) of the newest stored candle, or None when there is none."""
        values = {"symbol": _flux_string(_symbol(symbol)), "interval": _flux_string(interval.code)}
        rows = await self._rows(_LAST_CANDLE_QUERY, values)
        return _epoch_ms(rows[-1]["_time"]) if rows else None

    async def candles(
        self, symbol: str, interval: IntervalSpec, start_ms: int, stop_ms: int
    ) -> list[market_pb2.Candle]:
        """Stored candles with open time in [start_ms, stop_ms), ascending."""
        values = {
            "symbol": _flux_string(_symbol(symbol)),
            "interval": _flux_string(interval.code),
            "start": _rfc3339(start_ms),
            "stop": _rfc3339(stop_ms),
        }
        rows = await self._rows(_CANDLE_QUERY, values)
        # Each field is its own series in InfluxDB, so a read racing a write can see part of a
        # point; such a candle is left out until all of it is visible.
        return [_candle(row, symbol, interval) for row in rows if _complete(row)]


_CANDLE_COLUMNS = ("close_time", "trade_count", "closed", *(f"{n}_e8" for n in _CANDLE_FIELDS))


def _complete(row: dict[str, object]) -> bool:
    return all(row.get(column) is not None for column in _CANDLE_COLUMNS)


def _epoch_ms(value: object) -> int:
    if not isinstance(value, datetime):
        raise StoreUnavailableError(f"influxdb returned a time that is not a time: {value!r}")
    return (value - _EPOCH) // _MILLISECOND


def _candle(row: dict[str, object], symbol: str, interval: IntervalSpec) -> market_pb2.Candle:
    candle = market_pb2.Candle(
        symbol=symbol,
        interval=interval.proto,
        open_time=_epoch_ms(row["_time"]),
        close_time=int(str(row["close_time"])),
        trade_count=int(str(row["trade_count"])),
        closed=bool(row["closed"]),
    )
    for name in _CANDLE_FIELDS:
        setattr(candle, name, from_e8(int(str(row[f"{name}_e8"]))))
    return candle
