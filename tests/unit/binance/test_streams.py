"""Stream names, their split across connections and the combined-stream URL."""

import pytest

from finplat.binance.streams import (
    Stream,
    build_streams,
    combined_url,
    parse_stream,
    partition,
    validate_kind,
)


def test_streams_are_every_symbol_and_kind_lower_cased() -> None:
    streams = build_streams(["BTCUSDT", "ETHUSDT"], ["trade", "kline_1m"])

    assert [s.name for s in streams] == [
        "btcusdt@trade",
        "btcusdt@kline_1m",
        "ethusdt@trade",
        "ethusdt@kline_1m",
    ]
    assert streams[1].kline_interval == "1m"
    assert streams[0].kline_interval is None


def test_more_streams_than_a_connection_carries_are_split() -> None:
    streams = build_streams([f"S{i}USDT" for i in range(1500)], ["trade"])

    groups = partition(streams, 1024)

    assert [len(g) for g in groups] == [1024, 476]
    assert [s for g in groups for s in g] == streams


def test_a_connection_carries_at_most_1024_streams() -> None:
    with pytest.raises(ValueError, match=r"1\.\.1024"):
        partition([Stream("btcusdt", "trade")], 1025)


def test_combined_url_lists_streams_after_the_base() -> None:
    streams = build_streams(["BTCUSDT"], ["trade", "kline_1m"])

    assert (
        combined_url("wss://stream.binance.com:9443/", streams)
        == "wss://stream.binance.com:9443/stream?streams=btcusdt@trade/btcusdt@kline_1m"
    )
    assert combined_url("ws://127.0.0.1:1", []) == "ws://127.0.0.1:1/stream"


@pytest.mark.parametrize(
    "kind", ["trade", "aggTrade", "miniTicker", "ticker", "kline_1M", "kline_1s"]
)
def test_supported_kinds(kind: str) -> None:
    assert validate_kind(kind) == kind


@pytest.mark.parametrize(
    "name", ["btcusdt@depth", "btcusdt@kline_7m", "BTCUSDT@trade", "trade", "@trade"]
)
def test_unsupported_stream_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="stream"):
        parse_stream(name)
