"""Recorded klines as replay events: a start past a symbol's data replays nothing, and ends."""

from pathlib import Path

import pytest

from finplat.binance import archive
from finplat.market.intervals import parse_interval
from finplat.replay.sources import kline_events

KLINE_FILE = Path("klines/spot/BTCUSDT/1m/BTCUSDT-1m-2024-10-01.csv.gz")
OCT_1_MS = 1_727_740_800_000


@pytest.mark.timeout(10)
@pytest.mark.parametrize("loop", [False, True])
def test_a_start_after_the_data_yields_nothing_and_ends(data_dir: Path, loop: bool) -> None:
    table = archive.load_kline_table("BTCUSDT", [data_dir / KLINE_FILE])
    after_the_day = OCT_1_MS + 86_400_000

    events = kline_events(0, table, [parse_interval("1m")], after_the_day, loop, {})

    assert list(events) == []


def test_a_start_within_the_data_replays_from_there(data_dir: Path) -> None:
    table = archive.load_kline_table("BTCUSDT", [data_dir / KLINE_FILE])
    last_hour = OCT_1_MS + 23 * 3_600_000

    events = list(kline_events(0, table, [parse_interval("1m")], last_hour, False, {}))

    # 60 minutes, each sent the millisecond after its close.
    assert [event[0] for event in events] == [last_hour + (i + 1) * 60_000 for i in range(60)]
