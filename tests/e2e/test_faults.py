"""A service of the running platform killed with SIGKILL, as the kernel's OOM killer or an
operator's `kill -9` would: `finplat up` restarts it with backoff while the rest keeps serving,
and afterwards no candle is missing and the statistics count every update in Kafka once.

The statistics are checked against the topic itself: GetStats returns the counts and the
offsets they cover in one consistent snapshot, and the test reads the topic up to those offsets
and counts each distinct event (symbol, kind, event id) on its own.
"""

import os
import re
import signal
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from finplat.core.connections import KafkaSettings
from finplat.kafka.consumer import PriceUpdateConsumer
from finplat.kafka.serde import PriceUpdateDeserializer, registry_client
from finplat.platform.processes import PlatformDirs
from finplat.stack.process import running_pid
from tests.e2e.conftest import Platform
from tests.support import eventually

pytestmark = pytest.mark.integration

MINUTE_MS = 60_000
# The first restart waits FINPLAT_PLATFORM_RESTART_DELAY_S (1 s, less jitter); a service then
# takes a few seconds to import, connect and serve.
RESTART_TIMEOUT_S = 60


def _run_dir(platform: Platform) -> Path:
    if platform.run_dir is None:
        pytest.fail("the fault tests kill services: they need the platform these tests start")
    return platform.run_dir


def _pid(platform: Platform, name: str) -> int | None:
    """The running pid of child `name`, as `finplat up` and `finplat down` read it."""
    run_dir = _run_dir(platform)
    return running_pid(PlatformDirs(run_dir.parent / "log", run_dir), name)


def _kill(platform: Platform, name: str) -> int:
    pid = _pid(platform, name)
    assert pid is not None, f"no pid file of {name}"
    os.kill(pid, signal.SIGKILL)
    return pid


def _restarted(platform: Platform, name: str, killed: int) -> int:
    """The new pid of `name` once `finplat up` has restarted it."""

    def new_pid() -> int | None:
        pid = _pid(platform, name)
        return pid if pid not in (None, killed) else None

    return eventually(new_pid, timeout_s=RESTART_TIMEOUT_S, interval_s=0.2)


def _ok(gateway: httpx.Client, path: str, **params: Any) -> Any:
    response = gateway.get(path, params=params)
    return response.json() if response.status_code == httpx.codes.OK else None


def _stats_and_keys(gateway: httpx.Client) -> tuple[dict[str, int], Counter[str]]:
    """Counts per symbol from GetStats, and distinct events per symbol read from Kafka up to
    the offsets those counts cover."""
    stats = _ok(gateway, "/stats")
    assert stats is not None
    counts = {s["symbol"]: int(s["count"]) for s in stats.get("symbols", [])}
    covered = {int(lag.get("partition", 0)): int(lag.get("committedOffset", 0))
               for lag in stats["lag"]}  # fmt: skip
    return counts, _distinct_events(covered)


def _distinct_events(until: dict[int, int]) -> Counter[str]:
    kafka = KafkaSettings()  # the e2e run's topic, from the environment the fixture set
    seen: set[tuple[str, int, str]] = set()
    with registry_client(kafka) as registry:
        decode = PriceUpdateDeserializer(registry)
        reader = PriceUpdateConsumer(kafka, f"e2e-check-{uuid.uuid4().hex}")
        try:
            reader.assign(dict.fromkeys(until, 0))
            reached = {partition: 0 for partition in until}
            for _ in range(600):
                if all(reached[p] >= until[p] for p in until):
                    break
                for record in reader.poll(5000, 0.2):
                    if record.offset < until[record.partition]:
                        update = decode(record.value)
                        seen.add((update.symbol, update.kind, update.event_id))
                    reached[record.partition] = record.offset + 1
            assert all(reached[p] >= until[p] for p in until), (reached, until)
        finally:
            reader.close()
    return Counter(symbol for symbol, _, _ in seen)


def _exact(gateway: httpx.Client) -> None:
    counts, events = _stats_and_keys(gateway)
    assert counts == dict(events), "statistics differ from the distinct events in Kafka"


def _minutes(gateway: httpx.Client, limit: int) -> list[int]:
    body = _ok(gateway, "/api/candles/BTCUSDT/1m", limit=limit)
    return [int(c["openTime"]) for c in body.get("candles", [])] if body else []


def test_a_killed_price_service_is_restarted_and_misses_no_candle(
    platform: Platform, gateway: httpx.Client
) -> None:
    killed_at_ms = platform.market_now_ms()
    killed = _kill(platform, "price")

    # While it is down, the backtest side keeps serving through the gateway.
    assert _ok(gateway, "/stats") is not None
    restarted = _restarted(platform, "price", killed)
    eventually(lambda: _ok(gateway, "/api/prices/BTCUSDT"), timeout_s=RESTART_TIMEOUT_S)
    back_at_ms = platform.market_now_ms()

    def through_the_outage() -> list[int] | None:
        minutes = _minutes(gateway, 500)
        return minutes if minutes and minutes[-1] >= back_at_ms + MINUTE_MS else None

    minutes = eventually(through_the_outage, timeout_s=60, interval_s=0.5)
    around = [m for m in minutes if killed_at_ms - 5 * MINUTE_MS <= m <= back_at_ms]
    log = platform.up_log.read_text() if platform.up_log else ""

    assert restarted != killed
    assert re.search(r"price killed by SIGKILL; restart 1 in [0-9.]+ s", log), log[-2000:]
    # Every minute across the outage, filled by the restarted service's backfill.
    assert around == list(range(around[0], around[-1] + MINUTE_MS, MINUTE_MS))
    assert around[-1] - around[0] >= back_at_ms - killed_at_ms
    _exact(gateway)


def test_a_killed_backtest_service_is_restarted_and_counts_every_update_once(
    platform: Platform, gateway: httpx.Client
) -> None:
    before = eventually(lambda: _ok(gateway, "/stats"), timeout_s=30)
    killed = _kill(platform, "backtest")

    # While it is down, prices keep flowing through the gateway.
    assert _ok(gateway, "/api/prices/BTCUSDT") is not None
    _restarted(platform, "backtest", killed)

    def counting_again() -> dict[str, Any] | None:
        stats = _ok(gateway, "/stats")
        return (
            stats if stats and int(stats["totalMessages"]) > int(before["totalMessages"]) else None
        )

    eventually(counting_again, timeout_s=RESTART_TIMEOUT_S, interval_s=0.5)
    log = platform.up_log.read_text() if platform.up_log else ""

    assert re.search(r"backtest killed by SIGKILL; restart 1 in [0-9.]+ s", log), log[-2000:]
    _exact(gateway)
