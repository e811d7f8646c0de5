"""A node of the 3-node cluster killed with SIGKILL while the price service ingests a replay,
then started again. With 3 replicas and min.insync.replicas 2, the other two keep taking
writes; afterwards the topic is read back: every kline the replay sent is there exactly once,
in order, and nothing was given up.
"""

import asyncio
from datetime import date
from pathlib import Path

import pytest

from finplat.core.connections import InfluxSettings
from tests.integration.cluster.conftest import Cluster
from tests.integration.conftest import StartReplay
from tests.integration.price.harness import price_service
from tests.integration.price.test_kafka_outages import BTC_DAY, _published_in_order
from tests.integration.price.test_price_service import MINUTE, _kline_rows, _ms
from tests.support import eventually_async

pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.asyncio]

# Deliveries that must go on while the node is down: writes do not wait for its return.
_WHILE_DOWN = 20


async def test_a_node_killed_mid_ingest_and_restarted_loses_and_duplicates_nothing(
    start_replay: StartReplay,
    kafka_cluster: Cluster,
    influx_settings: InfluxSettings,
    data_dir: Path,
) -> None:
    start, end = _ms("2024-10-01T21:00:00"), _ms("2024-10-02T00:00:00")
    btc = _kline_rows(data_dir / BTC_DAY, start, end)
    replay = await start_replay(kline_last_day=date(2024, 10, 1), start_ms=start, speed=300.0)
    feed = {"symbols": ("BTCUSDT",), "stream_kinds": ("kline_1m",)}

    async with price_service(replay, kafka_cluster.kafka, influx_settings, feed) as running:
        producer = running.service.publisher.producer
        await eventually_async(lambda: producer.delivered >= 20, 30)
        # The leader of the partition being written: its loss forces a leader election.
        victim = kafka_cluster.busiest_leader(running.kafka.topic)
        kafka_cluster.kill(victim)
        delivered_at_kill = producer.delivered
        await eventually_async(lambda: producer.delivered >= delivered_at_kill + _WHILE_DOWN, 60)
        await asyncio.to_thread(kafka_cluster.restart)
        await eventually_async(
            lambda: producer.delivered >= len(btc) and not producer.pending(), 120
        )

    assert delivered_at_kill + _WHILE_DOWN < len(btc)  # the node died mid-stream
    assert producer.failed == 0  # nothing given up
    # Idempotence across the leader change: no duplicate, no gap, no reordering.
    assert _published_in_order(running.kafka, len(btc)) == [row.open_time + MINUTE for row in btc]
