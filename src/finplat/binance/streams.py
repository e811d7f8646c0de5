"""Binance stream names (`btcusdt@kline_1m`), their split across connections and URLs."""

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from finplat.market.intervals import INTERVALS

# Per Binance's WebSocket Streams documentation (spot).
MAX_STREAMS_PER_CONNECTION = 1024
FIXED_KINDS = frozenset(("trade", "aggTrade", "miniTicker", "ticker"))
_SYMBOL = re.compile(r"[a-z0-9]{2,30}")


@dataclass(frozen=True, slots=True)
class Stream:
    """One stream: a lower-case symbol and a kind ("trade", "kline_1m", ...)."""

    symbol: str
    kind: str

    @property
    def name(self) -> str:
        return f"{self.symbol}@{self.kind}"

    @property
    def kline_interval(self) -> str | None:
        """The interval code of a kline stream ("1m"), None for other kinds."""
        return self.kind.removeprefix("kline_") if self.kind.startswith("kline_") else None


def validate_kind(kind: str) -> str:
    """Return `kind` if we can decode its stream, else raise ValueError."""
    if kind in FIXED_KINDS:
        return kind
    if kind.startswith("kline_") and kind.removeprefix("kline_") in INTERVALS:
        return kind
    raise ValueError(
        f"unsupported stream kind {kind!r}: expected trade, aggTrade, miniTicker, ticker "
        f"or kline_<interval> with an interval among {', '.join(INTERVALS)}"
    )


def parse_stream(name: str) -> Stream:
    """Parse `btcusdt@kline_1m`; ValueError for anything else."""
    symbol, sep, kind = name.partition("@")
    if not sep or not _SYMBOL.fullmatch(symbol):
        raise ValueError(f"not a stream name: {name!r}")
    return Stream(symbol, validate_kind(kind))


def build_streams(symbols: Iterable[str], kinds: Iterable[str]) -> list[Stream]:
    """Every (symbol, kind) pair, symbols lower-cased as Binance wants, without repeats."""
    kinds = [validate_kind(kind) for kind in kinds]
    seen: dict[str, Stream] = {}
    for symbol in symbols:
        for kind in kinds:
            stream = Stream(symbol.lower(), kind)
            seen.setdefault(stream.name, stream)
    return list(seen.values())


def partition(streams: Sequence[Stream], max_per_connection: int) -> list[tuple[Stream, ...]]:
    """Split streams into groups a single connection may carry."""
    if not 1 <= max_per_connection <= MAX_STREAMS_PER_CONNECTION:
        raise ValueError(f"max_per_connection must be within 1..{MAX_STREAMS_PER_CONNECTION}")
    return [
        tuple(streams[i : i + max_per_connection])
        for i in range(0, len(streams), max_per_connection)
    ]


def combined_url(ws_base_url: str, streams: Sequence[Stream]) -> str:
    """`<base>/stream?streams=a/b/c`: every frame arrives in the combined-stream envelope."""
    base = ws_base_url.rstrip("/")
    if not streams:
        return f"{base}/stream"
    return f"{base}/stream?streams={'/'.join(stream.name for stream in streams)}"
