"""Backtests and live statistics: what the backtest service makes of what the price service
ingests, through the gateway."""

import subprocess
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.paths import FINPLAT, REPO_ROOT
from tests.support import eventually

pytestmark = pytest.mark.integration

_MINUTE_MS = 60_000
# The newest stored 1m candles the backtest runs over: `finplat up` loads a day of history
# (1440) before the replay starts, so these are there from the first second.
_BARS = 500
_STRATEGIES = {
    "bollinger_mean_reversion",
    "ema_crossover",
    "macd_signal_cross",
    "rsi_mean_reversion",
    "sma_crossover",
}


def _rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _counts(gateway: httpx.Client) -> dict[str, int]:
    response = gateway.get("/stats")
    assert response.status_code == httpx.codes.OK, response.text
    return {s["symbol"]: int(s["count"]) for s in response.json().get("symbols", [])}


def test_stats_count_what_the_price_service_publishes(gateway: httpx.Client) -> None:
    symbols = ("BTCUSDT", "ETHUSDT")
    before = eventually(
        lambda: counts if all((counts := _counts(gateway)).get(s) for s in symbols) else None,
        timeout_s=30,
        interval_s=0.2,
    )

    def grown() -> dict[str, int] | None:
        now = _counts(gateway)
        return now if all(now[s] > before[s] for s in symbols) else None

    assert eventually(grown, timeout_s=30, interval_s=0.2)


def test_strategies_lists_the_five_and_the_example(gateway: httpx.Client) -> None:
    response = gateway.get("/api/strategies")

    assert response.status_code == httpx.codes.OK
    names = {s["name"] for s in response.json()["strategies"]}
    assert names == {*_STRATEGIES, "numpy_sma_crossover", "momentum_rotation"}


def _ingested_range(gateway: httpx.Client) -> tuple[int, int]:
    """[first, end) open times of the newest `_BARS` stored BTCUSDT 1m candles."""
    response = gateway.get("/api/candles/BTCUSDT/1m", params={"limit": _BARS})
    assert response.status_code == httpx.codes.OK, response.text
    candles = response.json()["candles"]
    assert len(candles) == _BARS, "less history stored than a backtest needs"
    return int(candles[0]["openTime"]), int(candles[-1]["openTime"]) + _MINUTE_MS


def _backtest(gateway: httpx.Client, strategy: str, start: int, end: int) -> dict[str, Any]:
    """A backtest with fast 5 and slow 20 over [start, end), as POST /api/backtests returns it."""
    response = gateway.post(
        "/api/backtests",
        json={
            "strategy": strategy,
            "parameters": {"fast": 5, "slow": 20},
            "data": {
                "symbol": "BTCUSDT",
                "interval": "1m",
                "startTime": _rfc3339(start),
                "endTime": _rfc3339(end),
            },
        },
    )
    assert response.status_code == httpx.codes.OK, response.text
    backtest: dict[str, Any] = response.json()["backtest"]
    return backtest


@pytest.fixture
def run(gateway: httpx.Client) -> dict[str, Any]:
    """One SMA-crossover backtest over replayed history."""
    return _backtest(gateway, "sma_crossover", *_ingested_range(gateway))


def test_the_readmes_user_strategy_runs_through_the_gateway(gateway: httpx.Client) -> None:
    listed = gateway.get("/api/strategies").json()["strategies"]
    start, end = _ingested_range(gateway)

    user = _backtest(gateway, "numpy_sma_crossover", start, end)
    built_in = _backtest(gateway, "sma_crossover", start, end)

    (example,) = [s for s in listed if s["name"] == "numpy_sma_crossover"]
    assert example["source"] == f"file {REPO_ROOT}/examples/strategies/numpy_sma_crossover.py"
    assert [p["name"] for p in example["parameters"]] == ["fast", "slow"]
    assert {s["source"] for s in listed if s["name"] in _STRATEGIES} == {"built-in"}
    # The same rule as the built-in, in numpy: the same trades on the same bars.
    assert int(user["barCount"]) == _BARS
    assert user["trades"] == built_in["trades"]
    assert user["metrics"] == built_in["metrics"]


def test_backtest_over_replayed_history_has_metrics_and_trades(run: dict[str, Any]) -> None:
    assert run["id"]
    assert run["strategy"] == "sma_crossover"
    assert run["parameters"] == {"fast": 5, "slow": 20}
    assert int(run["barCount"]) == _BARS
    assert run["trades"]
    assert run["metrics"]["tradeCount"] == len(run["trades"])
    assert float(run["metrics"]["finalEquity"]) > 0
    for trade in run["trades"]:
        assert trade["entryTime"] <= trade["exitTime"]


def test_stored_backtest_and_its_chart(gateway: httpx.Client, run: dict[str, Any]) -> None:
    stored = gateway.get(f"/api/backtests/{run['id']}")
    chart = gateway.get(f"/api/backtests/{run['id']}/chart")

    assert stored.status_code == httpx.codes.OK
    assert stored.json()["backtest"] == run
    assert chart.status_code == httpx.codes.OK
    assert chart.headers["content-type"].startswith("text/html")
    assert "<html" in chart.text.lower()


def test_backtests_list_has_the_new_run_first(gateway: httpx.Client, run: dict[str, Any]) -> None:
    response = gateway.get("/api/backtests", params={"strategy": "sma_crossover", "pageSize": 5})

    assert response.status_code == httpx.codes.OK, response.text
    listed = response.json()["backtests"]
    assert listed[0]["id"] == run["id"]
    assert all(b["strategy"] == "sma_crossover" for b in listed)


def test_sweep_over_replayed_history_ranks_every_combination(gateway: httpx.Client) -> None:
    start, end = _ingested_range(gateway)

    response = gateway.post(
        "/api/sweeps",
        json={
            "strategy": "sma_crossover",
            "grid": {
                "fast": {"start": 5, "stop": 10, "step": 5},
                "slow": {"start": 20, "stop": 40, "step": 20},
            },
            "data": {
                "symbol": "BTCUSDT",
                "interval": "1m",
                "startTime": _rfc3339(start),
                "endTime": _rfc3339(end),
            },
            "rankBy": "total_return",
        },
    )

    assert response.status_code == httpx.codes.OK, response.text
    sweep = response.json()["sweep"]
    tried = {(r["parameters"]["fast"], r["parameters"]["slow"]) for r in sweep["results"]}
    assert tried == {(5, 20), (5, 40), (10, 20), (10, 40)}
    returns = [float(r["metrics"]["totalReturn"]) for r in sweep["results"]]
    assert returns == sorted(returns, reverse=True)


def test_kafka_probe_messages_reach_the_backtest_statistics(gateway: httpx.Client) -> None:
    """`finplat kafka probe` as the README shows it: through the registry, into the live topic,
    and counted by the backtest service like any update."""
    symbol = "E2EPROBEUSDT"
    before = _counts(gateway).get(symbol, 0)

    probe = subprocess.run(
        [str(FINPLAT), "kafka", "probe", "--count", "5", "--symbol", symbol],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert probe.returncode == 0, probe.stdout + probe.stderr
    assert "read back all 5 messages" in probe.stdout
    eventually(
        lambda: True if _counts(gateway).get(symbol, 0) == before + 5 else None,
        timeout_s=30,
        interval_s=0.2,
    )
