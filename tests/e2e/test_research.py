"""Research through the gateway's REST routes: a 10,000-combination sweep as a long-running
operation followed over Server-Sent Events, a cancelled one, and a portfolio of two symbols."""

import io
import json
import math
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.integration

_MINUTE_MS = 60_000
_BARS = 500


def _rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _range(gateway: httpx.Client) -> tuple[str, str]:
    """The newest `_BARS` stored BTCUSDT 1m open times, [first, end), as RFC 3339."""
    response = gateway.get("/api/candles/BTCUSDT/1m", params={"limit": _BARS})
    assert response.status_code == httpx.codes.OK, response.text
    candles = response.json()["candles"]
    assert len(candles) == _BARS, "less history stored than the sweep needs"
    first, last = int(candles[0]["openTime"]), int(candles[-1]["openTime"])
    return _rfc3339(first), _rfc3339(last + _MINUTE_MS)


def _sweep_body(gateway: httpx.Client) -> dict[str, Any]:
    """fast 1..100 x slow 101..200: 10,000 combinations, every one valid."""
    start, end = _range(gateway)
    return {
        "strategy": "sma_crossover",
        "grid": {
            "fast": {"start": 1, "stop": 100, "step": 1},
            "slow": {"start": 101, "stop": 200, "step": 1},
        },
        "data": {"symbol": "BTCUSDT", "interval": "1m", "startTime": start, "endTime": end},
        "config": {"feeBps": 10},
        "rankBy": "sharpe",
        "topN": 5,
    }


def _events(gateway: httpx.Client, name: str) -> list[dict[str, Any]]:
    """The operations WatchOperation streams, read as a browser's EventSource would."""
    operations = []
    with gateway.stream(
        "GET", f"/api/{name}:watch", headers={"Accept": "text/event-stream"}, timeout=300
    ) as response:
        assert response.status_code == httpx.codes.OK
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line.removeprefix("data:"))
                assert "error" not in message, message
                operations.append(message["result"])
    return operations


def test_a_ten_thousand_combination_sweep_runs_as_an_operation_past_any_deadline(
    gateway: httpx.Client,
) -> None:
    started = gateway.post("/api/sweeps:start", json=_sweep_body(gateway))
    assert started.status_code == httpx.codes.OK, started.text
    operation = started.json()
    seen = _events(gateway, operation["name"])
    fetched = gateway.get(f"/v1/{operation['name']}")

    assert operation["done"] is False
    assert operation["metadata"]["totalCombinations"] == "10000"
    done = [int(op["metadata"].get("doneCombinations", 0)) for op in seen]
    assert done == sorted(done)
    assert len(seen) >= 3, "progress was reported along the way"
    assert seen[-1]["done"] is True
    assert done[-1] == 10_000
    final = fetched.json()
    assert final == seen[-1]
    response = final["response"]
    assert response["@type"] == "type.googleapis.com/finance.backtest.v1.Sweep"
    assert len(response["results"]) == 5
    assert response["results"][0] == final["metadata"]["best"]
    exported = gateway.get(f"/api/sweeps/{response['id']}:export")
    assert exported.status_code == httpx.codes.OK
    assert exported.content.startswith(b"PAR1")
    # The whole table, streamed: every combination, the five kept its five best.
    whole = gateway.get(f"/api/sweeps/{response['id']}:download")
    assert whole.status_code == httpx.codes.OK
    assert whole.headers["content-type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(whole.content))
    assert table.num_rows == 10_000
    sharpes = [value for value in table["sharpe"].to_pylist() if not math.isnan(value)]
    assert sorted(sharpes, reverse=True)[:5] == [
        r["metrics"]["sharpe"] for r in response["results"]
    ]


def test_a_cancelled_sweep_stops_within_a_second(gateway: httpx.Client) -> None:
    operation = gateway.post("/api/sweeps:start", json=_sweep_body(gateway)).json()
    name = operation["name"]

    asked = time.monotonic()
    cancelled = gateway.post(f"/v1/{name}:cancel", json={})
    while not (state := gateway.get(f"/v1/{name}").json())["done"]:
        assert time.monotonic() - asked < 1.0, "still running a second after the cancel"
        time.sleep(0.05)

    assert cancelled.status_code == httpx.codes.OK, cancelled.text
    assert (state["error"]["code"], state["error"]["message"]) == (1, "cancelled by the client")
    assert int(state["metadata"].get("doneCombinations", 0)) < 10_000
    waited = gateway.post(f"/v1/{name}:wait", json={"timeout": "1s"})
    listed = gateway.get("/api/operations", params={"pageSize": 50})
    assert waited.json() == state
    assert name in [op["name"] for op in listed.json()["operations"]]


def test_a_portfolio_of_two_symbols_through_the_gateway(gateway: httpx.Client) -> None:
    start, end = _range(gateway)

    response = gateway.post(
        "/api/portfolios",
        json={
            "strategy": "momentum_rotation",
            "parameters": {"lookback": 30},
            "symbols": ["BTCUSDT", "ETHUSDT"],
            "interval": "1m",
            "startTime": start,
            "endTime": end,
            "config": {"feeBps": 10},
        },
    )

    assert response.status_code == httpx.codes.OK, response.text
    portfolio = response.json()["portfolio"]
    assert portfolio["symbols"] == ["BTCUSDT", "ETHUSDT"]
    assert int(portfolio["barCount"]) == _BARS
    pnl = sum(float(c["pnl"]) for c in portfolio["contributions"])
    assert pnl == pytest.approx(float(portfolio["metrics"]["finalEquity"]) - 10_000, abs=1e-6)
