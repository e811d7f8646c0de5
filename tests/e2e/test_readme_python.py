"""The README's Python examples (the WebSocket client, the notebook client), run as written
against the platform under test."""

import re
import subprocess
import sys

import pytest

from tests.e2e.conftest import Platform, backtest_grpc_address, price_grpc_address
from tests.readme import code_blocks

pytestmark = pytest.mark.integration

_README_WS = "ws://127.0.0.1:8080"
_README_PRICE_GRPC = "127.0.0.1:50051"
_README_BACKTEST_GRPC = "127.0.0.1:50052"


def _python_examples() -> list[str]:
    """The examples a test runs as a program; the strategy file is loaded by the platform."""
    return [block for block in code_blocks("python") if "finplat.strategy import" not in block]


def _example(marker: str) -> str:
    (example,) = [example for example in _python_examples() if marker in example]
    return example


def _run(platform: Platform, example: str) -> list[str]:
    source = (
        example.replace(_README_WS, platform.ws_url)
        .replace(_README_PRICE_GRPC, price_grpc_address())
        .replace(_README_BACKTEST_GRPC, backtest_grpc_address())
    )
    result = subprocess.run(
        [sys.executable, "-c", source], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.splitlines()


def test_readme_shows_two_python_examples() -> None:
    assert len(_python_examples()) == 2


def test_the_websocket_example_prints_three_prices(platform: Platform) -> None:
    lines = _run(platform, _example("/ws/prices"))

    assert len(lines) == 3, lines
    for line in lines:
        symbol, price, timestamp = line.split()
        assert symbol in {"BTCUSDT", "ETHUSDT"}
        assert float(price) > 0
        assert int(timestamp) > 1_500_000_000_000  # epoch milliseconds


def test_the_notebook_example_prints_candles_a_backtest_and_a_sweep(platform: Platform) -> None:
    lines = _run(platform, _example("finplat.client"))

    assert len(lines) == 3, lines
    candles = re.fullmatch(r"600 candles, last close (\d+\.\d+)", lines[0])
    assert candles is not None, lines[0]
    assert float(candles.group(1)) > 0
    run = re.fullmatch(r"total return (-?\d+\.\d+(?:e-?\d+)?) over (\d+) trades", lines[1])
    assert run is not None, lines[1]
    # fast 5..20 step 5 x slow 30..60 step 10: 16 combinations, every one valid.
    sweep = re.fullmatch(r"16 combinations, best \[(\d+)\.0, (\d+)\.0, (.+)\]", lines[2])
    assert sweep is not None, lines[2]
    assert (int(sweep.group(1)), int(sweep.group(2))) in {
        (fast, slow) for fast in (5, 10, 15, 20) for slow in (30, 40, 50, 60)
    }
