"""`finplat price export`: every candle of a range, paged through GetCandles, to Parquet or CSV.

The price service here is the tests' fake (real Binance klines from ../shared, the real
service's paging contract) on a real gRPC server; the files are read back with pyarrow.
"""

import asyncio
import csv
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import pytest_asyncio
from click.testing import CliRunner, Result

from finance.market.v1 import market_pb2, price_service_pb2_grpc
from finplat.core.grpc_server import ServiceBinding, start_server
from finplat.price.cli import price
from tests.unit.backtest.fake_price_service import FakePriceService, btc_candles

pytestmark = pytest.mark.asyncio(loop_scope="module")

DAYS = (date(2024, 11, 1), date(2024, 11, 5))  # 7,200 minutes: two pages of GetCandles


@pytest.fixture(scope="module")
def day_candles(data_dir: Path) -> list[market_pb2.Candle]:
    return btc_candles(data_dir, *DAYS)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def address(day_candles: list[market_pb2.Candle]) -> AsyncIterator[str]:
    fake = FakePriceService({"BTCUSDT": day_candles})
    binding = ServiceBinding(
        "finance.market.v1.PriceService",
        lambda s: price_service_pb2_grpc.add_PriceServiceServicer_to_server(fake, s),
    )
    server = await start_server("127.0.0.1:0", [binding])
    yield f"127.0.0.1:{server.port}"
    await server.stop(0)


async def _export(address: str, *args: str) -> Result:
    # The command runs its own event loop: in a thread, beside the server's.
    return await asyncio.to_thread(
        CliRunner().invoke, price, ["export", *args, "--address", address]
    )


async def test_a_range_of_two_pages_is_written_to_parquet_exactly(
    address: str, day_candles: list[market_pb2.Candle], tmp_path: Path
) -> None:
    output = tmp_path / "btc.parquet"

    result = await _export(
        address, "BTCUSDT", "1m", "--start", "2024-11-01", "--end", "2024-11-06", "-o", str(output)
    )

    assert result.exit_code == 0, result.output
    assert "7200 candles written" in result.output
    table = pq.read_table(output)
    assert table.num_rows == len(day_candles) == 7200
    rows = table.to_pylist()
    first, last = day_candles[0], day_candles[-1]
    assert int(rows[0]["open_time"].timestamp() * 1000) == first.open_time
    assert rows[0]["close"] == Decimal(first.close)
    assert rows[-1]["high"] == Decimal(last.high)
    assert rows[-1]["trade_count"] == last.trade_count
    opens = [int(row["open_time"].timestamp() * 1000) for row in rows]
    assert opens == [c.open_time for c in day_candles]  # each minute once, in order


async def test_csv_keeps_the_exact_decimals(
    address: str, day_candles: list[market_pb2.Candle], tmp_path: Path
) -> None:
    output = tmp_path / "btc.csv"

    result = await _export(
        address, "BTCUSDT", "1m", "--start", "2024-11-01", "--end", "2024-11-01T00:10", "-o",
        str(output),
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    with output.open() as lines:
        rows = list(csv.DictReader(lines))
    assert len(rows) == 10
    assert [Decimal(row["close"]) for row in rows] == [Decimal(c.close) for c in day_candles[:10]]


async def test_an_unknown_symbol_and_a_wrong_suffix_are_clear_errors(
    address: str, tmp_path: Path
) -> None:
    unknown = await _export(
        address, "NOPEUSDT", "1m", "--start", "2024-11-01", "--end", "2024-11-02", "-o",
        str(tmp_path / "x.parquet"),
    )  # fmt: skip
    wrong_suffix = await _export(
        address, "BTCUSDT", "1m", "--start", "2024-11-01", "--end", "2024-11-02", "-o",
        str(tmp_path / "x.xlsx"),
    )  # fmt: skip

    assert unknown.exit_code == 1
    assert "GetCandles: NOT_FOUND" in unknown.output
    assert wrong_suffix.exit_code == 2
    assert "must end in .parquet or .csv" in wrong_suffix.output
    assert not (tmp_path / "x.parquet").exists()
