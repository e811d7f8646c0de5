"""The README's Python examples (the WebSocket client), run as written against the platform."""

import subprocess
import sys

import pytest

from tests.e2e.conftest import Platform
from tests.readme import code_blocks

pytestmark = pytest.mark.integration

_README_WS = "ws://127.0.0.1:8080"


def _python_examples() -> list[str]:
    return code_blocks("python")


def test_readme_shows_a_websocket_client() -> None:
    assert any("/ws/prices" in example for example in _python_examples())


@pytest.mark.parametrize("example", _python_examples())
def test_python_example_runs(platform: Platform, example: str) -> None:
    source = example.replace(_README_WS, platform.ws_url)

    result = subprocess.run(
        [sys.executable, "-c", source], capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3, result.stdout
    for line in lines:
        symbol, price, timestamp = line.split()
        assert symbol in {"BTCUSDT", "ETHUSDT"}
        assert float(price) > 0
        assert int(timestamp) > 1_500_000_000_000  # epoch milliseconds
