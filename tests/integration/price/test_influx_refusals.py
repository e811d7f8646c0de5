"""A point the real InfluxDB refuses costs only itself: the rest of its batch is stored.

The refused points are ones no check of ours can know are bad: a field type conflict. InfluxDB fixes
a field's type per measurement and shard (a week here), so once `open_e8` is a float in the
first week of 2000, an integer `open_e8` there is refused (422, a partial write), while the
same candle in 2024 is stored.
"""

import pytest
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync

from finance.market.v1 import market_pb2
from finplat.core.connections import InfluxSettings
from finplat.market.intervals import INTERVALS
from finplat.price.adapters.influx_market import InfluxMarketStore

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

MINUTE = 60_000
T0 = 1_727_740_800_000  # 2024-10-01T00:00:00Z
Y2000 = 946_684_800_000  # 2000-01-01T00:00:00Z, a shard of its own


def _candle(open_time: int, price: str) -> market_pb2.Candle:
    return market_pb2.Candle(
        symbol="BTCUSDT",
        interval=market_pb2.INTERVAL_1M,
        open_time=open_time,
        close_time=open_time + MINUTE - 1,
        open=price,
        high=price,
        low=price,
        close=price,
        volume="1.00000000",
        quote_volume=price,
        trade_count=1,
        closed=True,
    )


async def _stored_in_2000(client: InfluxDBClientAsync, bucket: str) -> set[tuple[int, str]]:
    query = f"""
from(bucket: "{bucket}")
  |> range(start: 2000-01-01T00:00:00Z, stop: 2000-01-02T00:00:00Z)
  |> filter(fn: (r) => r._measurement == "candles")
"""
    tables = await client.query_api().query(query)
    return {
        (int(record.values["_time"].timestamp() * 1000), record.values["_field"])
        for table in tables
        for record in table.records
    }


async def test_a_point_influxdb_refuses_is_left_out_and_the_rest_is_stored(
    influx_settings: InfluxSettings,
) -> None:
    settings = influx_settings
    async with InfluxDBClientAsync(
        url=settings.url, token=settings.token.get_secret_value(), org=settings.org
    ) as client:
        await client.write_api().write(
            bucket=settings.bucket,
            record=f"candles,symbol=BTCUSDT,interval=1m open_e8=1.5 {Y2000}",
            write_precision="ms",  # type: ignore[arg-type]
        )
        good = [
            _candle(T0, "100.00000000"),
            _candle(T0 + MINUTE, "101.00000000"),
            _candle(T0 + 2 * MINUTE, "102.00000000"),
            _candle(T0 + 3 * MINUTE, "103.00000000"),
            _candle(T0 + 4 * MINUTE, "104.00000000"),
            _candle(T0 + 5 * MINUTE, "105.00000000"),
            _candle(T0 + 6 * MINUTE, "106.00000000"),
            _candle(T0 + 7 * MINUTE, "107.00000000"),
            _candle(T0 + 8 * MINUTE, "108.00000000"),
        ]
        refused = [_candle(Y2000 + MINUTE, "98.00000000"), _candle(Y2000 + 2 * MINUTE, "99.0")]
        store = InfluxMarketStore(settings)
        try:
            await store.write_candles([*good[:2], refused[0], *good[2:7], refused[1], *good[7:]])

            stored = await store.candles("BTCUSDT", INTERVALS["1m"], T0, T0 + 9 * MINUTE)
            refused_counts = dict(store.refused_candles)
        finally:
            await store.close()
        stored_in_2000 = await _stored_in_2000(client, settings.bucket)

    assert stored == good
    assert refused_counts == {"store": 2}
    # Only the float written to set up the conflict: nothing of the refused candles.
    assert stored_in_2000 == {(Y2000, "open_e8")}
