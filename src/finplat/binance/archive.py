"""Readers of the market data files (data.binance.vision CSVs, REST JSON), gzipped or not.

* kline CSV: no header, 12 columns (open_time, open, high, low, close, volume, close_time,
  quote_volume, trades, taker_buy_base, taker_buy_quote, ignore); open/close times are ms
  until 2024 and µs from 2025-01-01 (16 digits): both are read as ms.
* OHLCV-only CSV: header `timestamp,open,high,low,close,volume`, timestamp
  `YYYY-MM-DD HH:MM:SS` (UTC open time), numbers without trailing zeros. Missing columns come
  out empty (quote volume, taker volumes) or 0 (trade count); numbers are re-printed with
  Binance's 8 decimals.
* trades CSV: no header, trade_id, price, qty, quote_qty, time (ms), is_buyer_maker,
  is_best_match (`True`/`False`).
* REST JSON: the `/api/v3/klines` response, an array of 12-element arrays.

This is the one reader of those files: the replay exchange serves them, the backtest builds its
bars from them. Klines are kept as compact canonical CSV lines (`KlineTable`) and turned into
`Candle`s on demand: a quarter of 1m klines as protobuf objects would take several times the
memory.
"""

import csv
import gzip
import io
import re
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import msgspec

from finance.market.v1 import market_pb2
from finplat.binance.errors import DataError
from finplat.binance.wire import REST_KLINES, rest_kline_candle
from finplat.market.decimals import normalise8
from finplat.market.intervals import IntervalSpec, parse_interval

_ONE_MINUTE = parse_interval("1m")
_MICROSECONDS_FROM = 10**15  # a 16-digit epoch timestamp is in µs
_OHLCV_HEADER = ["timestamp", "open", "high", "low", "close", "volume"]
_DATE_IN_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})")


@dataclass(frozen=True, slots=True)
class TradeRow:
    """One trade of a data.binance.vision trades file."""

    trade_id: int
    price: str
    quantity: str
    quote_quantity: str
    time_ms: int
    is_buyer_maker: bool


@dataclass(frozen=True, slots=True)
class KlineTable:
    """One symbol's klines of one interval in open-time order, as canonical CSV lines.

    A line holds open_time, open, high, low, close, volume, close_time, quote_volume, trades,
    taker_buy_base, taker_buy_quote (times in ms, decimals in Binance's format).
    """

    symbol: str
    interval: IntervalSpec
    open_times: "array[int]"
    lines: list[str]

    def __len__(self) -> int:
        return len(self.lines)

    def index(self, open_ms: int) -> int:
        """Position of the first kline opening at or after `open_ms`."""
        return bisect_left(self.open_times, open_ms)

    def fields(self, i: int) -> list[str]:
        return self.lines[i].split(",")

    def candle(self, i: int) -> market_pb2.Candle:
        f = self.fields(i)
        return market_pb2.Candle(
            symbol=self.symbol,
            interval=self.interval.proto,
            open_time=int(f[0]),
            close_time=int(f[6]),
            open=f[1],
            high=f[2],
            low=f[3],
            close=f[4],
            volume=f[5],
            trade_count=int(f[8]),
            closed=True,
            quote_volume=f[7],
        )

    def candles(
        self, start_ms: int | None = None, end_ms: int | None = None
    ) -> list[market_pb2.Candle]:
        """Candles with open time in [start_ms, end_ms)."""
        lo = 0 if start_ms is None else self.index(start_ms)
        hi = len(self) if end_ms is None else self.index(end_ms)
        return [self.candle(i) for i in range(lo, hi)]


def open_text(path: Path) -> io.TextIOBase:
    """A text reader of `path`, gunzipping `.gz` files."""
    try:
        if path.suffix == ".gz":
            return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
        return open(path, encoding="utf-8", newline="")
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc


def _kline_lines(path: Path) -> Iterator[str]:
    with open_text(path) as text:
        rows = csv.reader(text)
        for number, row in enumerate(rows, 1):
            if number == 1 and row == _OHLCV_HEADER:
                yield from _ohlcv_lines(rows, path)
                return
            if len(row) < 11:
                raise DataError(f"{path}:{number}: expected 12 kline columns, got {len(row)}")
            try:
                open_time, close_time = int(row[0]), int(row[6])
            except ValueError as exc:
                raise DataError(f"{path}:{number}: {exc}") from None
            if open_time >= _MICROSECONDS_FROM:
                open_time, close_time = open_time // 1000, close_time // 1000
            yield ",".join((str(open_time), *row[1:6], str(close_time), *row[7:11]))


def _ohlcv_lines(rows: Iterable[list[str]], path: Path) -> Iterator[str]:
    for row in rows:
        if len(row) != 6:
            raise DataError(f"{path}: expected 6 OHLCV columns, got {len(row)}")
        moment = datetime.fromisoformat(row[0]).replace(tzinfo=UTC)
        open_time = int(moment.timestamp()) * 1000
        numbers = [normalise8(value) for value in row[1:6]]
        yield ",".join(
            (str(open_time), *numbers, str(_ONE_MINUTE.close_time(open_time)), "", "0", "", "")
        )


def _read_kline_file(path: Path) -> list[str]:
    try:
        return list(_kline_lines(path))
    except (OSError, EOFError, ValueError, csv.Error) as exc:
        # A damaged file (truncated or corrupt gzip, bad UTF-8, a bad date) is a data error
        # like a missing one, never a crash of the reader's caller.
        raise DataError(f"cannot read klines of {path}: {exc}") from exc


def read_kline_lines(paths: Iterable[Path]) -> tuple["array[int]", list[str]]:
    """Kline files (12-column or OHLCV-only), in any order, as canonical lines sorted by open
    time, and those open times; a kline found in two files is kept once."""
    chunks = sorted((_read_kline_file(path) for path in paths), key=_first_time)
    open_times: array[int] = array("q")
    lines: list[str] = []
    for chunk in chunks:
        for line in chunk:
            open_time = int(line.partition(",")[0])
            if open_times and open_time <= open_times[-1]:
                continue  # the same kline in two files (overlapping downloads): keep the first
            open_times.append(open_time)
            lines.append(line)
    return open_times, lines


def load_kline_table(symbol: str, paths: Iterable[Path], interval: str = "1m") -> KlineTable:
    """Read kline files (12-column or OHLCV-only) into one table; files may come in any order."""
    open_times, lines = read_kline_lines(paths)
    return KlineTable(symbol.upper(), parse_interval(interval), open_times, lines)


def _first_time(lines: list[str]) -> int:
    return int(lines[0].partition(",")[0]) if lines else 0


def load_klines(path: Path, symbol: str, interval: str = "1m") -> list[market_pb2.Candle]:
    """Every kline of one file as closed candles."""
    return load_kline_table(symbol, [path], interval).candles()


def iter_trades(path: Path) -> Iterator[TradeRow]:
    """Trades of one file, in file order, read lazily (a busy day has millions)."""
    with open_text(path) as text:
        for number, row in enumerate(csv.reader(text), 1):
            if len(row) < 6:
                raise DataError(f"{path}:{number}: expected 7 trade columns, got {len(row)}")
            yield TradeRow(int(row[0]), row[1], row[2], row[3], int(row[4]), row[5] == "True")


def load_rest_klines(path: Path, symbol: str, interval: str) -> list[market_pb2.Candle]:
    """A saved `/api/v3/klines` response as closed candles."""
    spec = parse_interval(interval)
    try:
        rows = REST_KLINES.decode(path.read_bytes())
    except (OSError, msgspec.MsgspecError) as exc:
        raise DataError(f"cannot read klines JSON {path}: {exc}") from exc
    return [rest_kline_candle(row, symbol, spec, closed=True) for row in rows]


def kline_files(
    data_dir: Path, symbol: str, first: date | None = None, last: date | None = None
) -> list[Path]:
    """`klines/spot/<SYMBOL>/1m/*.csv[.gz]` whose date (in the name) is within [first, last]."""
    folder = data_dir / "klines" / "spot" / symbol.upper() / "1m"
    return [path for path in sorted(folder.glob("*.csv*")) if _date_within(path, first, last)]


def daily_kline_paths(
    data_dir: Path, symbol: str, interval: str, first: date, last: date
) -> list[Path]:
    """The daily files `first..last` (inclusive) of one interval, whether they exist or not, so
    that a caller can name the days that are missing."""
    folder = data_dir / "klines" / "spot" / symbol / interval
    days = (last - first).days + 1
    return [
        folder / f"{symbol}-{interval}-{(first + timedelta(d)).isoformat()}.csv.gz"
        for d in range(days)
    ]


def ohlcv_files(data_dir: Path, symbol: str) -> list[Path]:
    """`klines_ohlcv_only/*/<SYMBOL>_1m.csv[.gz]`."""
    return sorted((data_dir / "klines_ohlcv_only").glob(f"*/{symbol.upper()}_1m.csv*"))


def trade_files(data_dir: Path, symbol: str) -> list[Path]:
    """`trades/spot/<SYMBOL>/*.csv[.gz]`, oldest first (names carry the date)."""
    return sorted((data_dir / "trades" / "spot" / symbol.upper()).glob("*.csv*"))


def _date_within(path: Path, first: date | None, last: date | None) -> bool:
    match = _DATE_IN_NAME.search(path.name)
    if match is None:
        return True
    day = date.fromisoformat(match.group(1))
    return (first is None or day >= first) and (last is None or day <= last)
