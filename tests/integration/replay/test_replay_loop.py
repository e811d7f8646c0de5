"""A user's own files in the data.binance.vision layout, replayed in a loop."""

import gzip
import json
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.integration.conftest import StartReplay

pytestmark = pytest.mark.asyncio

DAY_MS = 86_400_000


def _own_data(data_dir: Path, target: Path) -> tuple[list[list[str]], list[list[str]]]:
    """Five real 1m klines and five real trades, saved as a user's own small data set."""
    with gzip.open(data_dir / "klines/spot/BTCUSDT/1m/BTCUSDT-1m-2024-10-01.csv.gz", "rt") as f:
        klines = [line.strip().split(",") for _, line in zip(range(5), f, strict=False)]
    with gzip.open(data_dir / "trades/spot/BTCUSDT/BTCUSDT-trades-2017-08-17.csv.gz", "rt") as f:
        trades = [line.strip().split(",") for _, line in zip(range(5), f, strict=False)]
    kline_dir = target / "klines/spot/TESTUSDT/1m"
    kline_dir.mkdir(parents=True)
    (kline_dir / "TESTUSDT-1m-2024-10-01.csv").write_text("\n".join(map(",".join, klines)) + "\n")
    trade_dir = target / "trades/spot/TESTUSDT"
    trade_dir.mkdir(parents=True)
    (trade_dir / "TESTUSDT-trades-2017-08-17.csv").write_text(
        "\n".join(map(",".join, trades)) + "\n"
    )
    return klines, trades


async def test_looping_keeps_times_and_ids_increasing(
    start_replay: StartReplay, data_dir: Path, tmp_path: Path
) -> None:
    klines, trades = _own_data(data_dir, tmp_path)
    server = await start_replay(
        data_dir=tmp_path, symbols=("TESTUSDT",), kline_first_day=None, speed=0, loop=True
    )

    url = f"{server.ws_url}/stream?streams=testusdt@kline_1m/testusdt@trade"
    async with connect(url, close_timeout=0.1) as ws:  # do not wait behind the flood
        frames = [json.loads(await ws.recv())["data"] for _ in range(30)]
        async with httpx.AsyncClient(base_url=server.http_url) as client:
            response = await client.get(
                "/api/v3/klines",
                params={
                    "symbol": "TESTUSDT",
                    "interval": "1m",
                    "startTime": int(klines[0][0]) + DAY_MS,
                },
            )
        rest = response.json()

    opens = [f["k"]["t"] for f in frames if f["e"] == "kline"]
    first = int(klines[0][0])
    assert opens[:10] == [first + i * 60_000 for i in range(5)] + [
        first + DAY_MS + i * 60_000 for i in range(5)
    ]
    assert [f["k"]["c"] for f in frames if f["e"] == "kline"][:10] == [k[4] for k in klines] * 2
    ids = [f["t"] for f in frames if f["e"] == "trade"]
    assert ids[:10] == list(range(10))  # the second pass continues the ids
    assert [f["p"] for f in frames if f["e"] == "trade"][:10] == [t[1] for t in trades] * 2
    assert [row[0] for row in rest][:5] == [first + DAY_MS + i * 60_000 for i in range(5)]
    assert [row[4] for row in rest][:5] == [k[4] for k in klines]
