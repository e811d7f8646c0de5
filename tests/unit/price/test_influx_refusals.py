"""One bad point never costs its batch: invalid ones are left out before the write, and a
refused write is halved until the lines InfluxDB refuses stand alone; each counted once."""

from collections import Counter
from collections.abc import Sequence

import pytest

from finplat.price.adapters.errors import StoreRejectedError, StoreUnavailableError
from finplat.price.adapters.influx_market import write_points


class FakeInfluxWrites:
    """A fake of InfluxDB's write endpoint: refuses a whole request holding any line of
    `refuse` (as InfluxDB's 400 does), is down for request number `down_at` (1-based), and
    records every request and every line stored."""

    def __init__(self, refuse: frozenset[str] = frozenset(), down_at: int = 0) -> None:
        self.refuse = refuse
        self.down_at = down_at
        self.requests: list[list[str]] = []
        self.stored: list[str] = []

    async def post(self, lines: Sequence[str]) -> None:
        self.requests.append(list(lines))
        if len(self.requests) == self.down_at:
            raise StoreUnavailableError("fake influxdb is down")
        if self.refuse.intersection(lines):
            raise StoreRejectedError("fake influxdb: 400")
        self.stored.extend(lines)


def _line(item: int) -> str:
    """Item n becomes line "pn"; a negative item fails the check before the write."""
    if item < 0:
        raise StoreRejectedError(f"invalid item {item}")
    return f"p{item}"


@pytest.mark.asyncio
async def test_a_good_batch_is_one_request_and_nothing_refused() -> None:
    influx = FakeInfluxWrites()
    refused: Counter[str] = Counter()

    await write_points([0, 1, 2], _line, influx.post, refused)

    assert influx.requests == [["p0", "p1", "p2"]]
    assert refused == {}


@pytest.mark.asyncio
async def test_a_refused_line_is_found_by_halving_and_the_rest_is_written() -> None:
    influx = FakeInfluxWrites(refuse=frozenset({"p5"}))
    refused: Counter[str] = Counter()

    await write_points(list(range(8)), _line, influx.post, refused)

    assert influx.requests == [
        ["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7"],
        ["p0", "p1", "p2", "p3"],
        ["p4", "p5", "p6", "p7"],
        ["p4", "p5"],
        ["p4"],
        ["p5"],
        ["p6", "p7"],
    ]
    assert influx.stored == ["p0", "p1", "p2", "p3", "p4", "p6", "p7"]
    assert refused == {"store": 1}


@pytest.mark.asyncio
async def test_two_refused_lines_are_each_counted() -> None:
    influx = FakeInfluxWrites(refuse=frozenset({"p0", "p3"}))
    refused: Counter[str] = Counter()

    await write_points([0, 1, 2, 3], _line, influx.post, refused)

    assert influx.stored == ["p1", "p2"]
    assert refused == {"store": 2}


@pytest.mark.asyncio
async def test_invalid_items_are_left_out_before_the_write() -> None:
    influx = FakeInfluxWrites()
    refused: Counter[str] = Counter()

    await write_points([0, -1, 2, -3], _line, influx.post, refused)

    assert influx.requests == [["p0", "p2"]]
    assert refused == {"invalid": 2}


@pytest.mark.asyncio
async def test_a_batch_of_only_invalid_items_makes_no_request() -> None:
    influx = FakeInfluxWrites()
    refused: Counter[str] = Counter()

    await write_points([-1, -2], _line, influx.post, refused)

    assert influx.requests == []
    assert refused == {"invalid": 2}


@pytest.mark.asyncio
async def test_an_outage_while_halving_resumes_where_it_stopped_and_counts_each_once() -> None:
    # Items 0-7; 1 refused by InfluxDB, -6 (item 6) invalid. Requests: the 7 lines (refused),
    # p0-p2 (refused), p0, p1-p2 (refused), p1 (refused), p2, then p3-p7: down.
    influx = FakeInfluxWrites(refuse=frozenset({"p1"}), down_at=7)
    refused: Counter[str] = Counter()
    items = [0, 1, 2, 3, 4, 5, -6, 7]

    with pytest.raises(StoreUnavailableError) as raised:
        await write_points(items, _line, influx.post, refused)
    written = raised.value.written
    # The sink retries from the first item not done: the invalid item is checked again there.
    counted_before_retry = dict(refused)
    await write_points(items[written:], _line, influx.post, refused)

    assert written == 3
    assert influx.requests[-2:] == [["p3", "p4", "p5", "p7"], ["p3", "p4", "p5", "p7"]]
    assert influx.stored == ["p0", "p2", "p3", "p4", "p5", "p7"]
    assert counted_before_retry == {"store": 1}
    assert refused == {"store": 1, "invalid": 1}
