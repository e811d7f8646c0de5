"""The gateway's web page in a real browser: headless Chromium (Debian's package) driven by
playwright-core through web/e2e/page-check.mjs, against the platform under test."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import Platform
from tests.paths import REPO_ROOT

pytestmark = pytest.mark.integration

_WEB = REPO_ROOT / "web"
_CHECK = _WEB / "e2e" / "page-check.mjs"
_CHROMIUM = Path("/usr/bin/chromium")
# The script bounds each of its own waits (prices 30 s, the backtest 90 s, ...); this only
# catches a hung browser.
_TIMEOUT_S = 300
_PNG = b"\x89PNG\r\n\x1a\n"


def test_page_shows_live_prices_candles_a_backtest_a_sweep_and_the_docs(
    platform: Platform, tmp_path: Path
) -> None:
    node = shutil.which("node")
    assert node, "node is not on PATH"
    assert (_WEB / "node_modules" / "playwright-core").is_dir(), (
        "web/node_modules is missing: run `make install`"
    )
    assert _CHROMIUM.is_file(), f"{_CHROMIUM} is missing: run `make system-deps` (as root)"

    run = subprocess.run(
        [
            node,
            str(_CHECK),
            "--url",
            platform.gateway_url,
            "--out",
            str(tmp_path),
            "--chromium",
            str(_CHROMIUM),
        ],
        cwd=_WEB,
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_S,
        check=False,
    )

    assert run.returncode == 0, f"{run.stderr.strip()}\n{run.stdout.strip()}"
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["price"]["changed"] != seen["price"]["first"]
    assert seen["chart"]["candles"] > 0
    assert seen["chart"]["grownTo"] > seen["chart"]["lastOpen"]
    assert seen["backtest"]["metrics"]["finalEquity"] not in ("", "0")
    assert seen["backtest"]["points"] > 0
    assert seen["docs"]["operations"] >= 2
    # A sweep of 2 x 2 combinations started from the page, its progress bar fed over SSE.
    sweep = seen["sweep"]
    assert (sweep["progress"]["value"], sweep["progress"]["max"]) == (4, 4)
    assert sweep["progress"]["frames"] >= 1
    assert sweep["columns"][:2] == ["fast", "slow"]
    assert len(sweep["results"]) == 4
    assert (sweep["csv"]["status"], sweep["csv"]["rows"]) == (200, 4)
    screenshot = Path(seen["screenshots"]["web-page"])
    assert screenshot.read_bytes().startswith(_PNG)
    print(f"screenshots: {screenshot} and {seen['screenshots']['docs']}")
