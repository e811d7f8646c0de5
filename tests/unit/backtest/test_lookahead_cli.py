"""`finplat backtest lookahead` on the shared kline files: its output and exit statuses."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from finplat.backtest.cli import backtest
from tests.paths import REPO_ROOT, market_data_dir

DAY = ["--start", "2024-11-01", "--end", "2024-11-02"]


def _invoke(*args: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(
        backtest, ["lookahead", *args, *DAY, "--data-dir", str(market_data_dir())]
    )
    return result.exit_code, result.output.splitlines()


def test_a_clean_built_in_exits_0_and_names_the_prefixes_checked() -> None:
    # Prefix ends 0, 60, ..., 1380: 24 of them.
    code, lines = _invoke("sma_crossover", "--every", "60", "--random", "0")

    assert code == 0, lines
    assert lines[:2] == [
        "sma_crossover fast=10 slow=30 on BTCUSDT 1m, 2024-11-01 00:00 to 2024-11-02 00:00 UTC, "
        "1440 bars",
        "no look-ahead: no target changed in 24 prefixes",
    ]
    assert lines[2].startswith("prefixes ending every 60 bars and at 0 random bars (seed 0)")


@pytest.mark.usefixtures("isolated_registry")
def test_look_ahead_of_the_cheating_example_exits_1_and_lists_the_bars() -> None:
    # The example reads the next bar's close. Prefixes end at bars 0 and 720; closes there,
    # then one bar on, from the file: 70311.17 -> 70318.00 (long) and 70038.01 -> 69990.01
    # (short); each prefix is flat there.
    code, lines = _invoke(
        "peek_next_close", "--every", "720", "--random", "0", "--show", "1",
        "--strategy-dir", str(REPO_ROOT / "examples" / "lookahead"),
    )  # fmt: skip

    assert code == 1, lines
    assert lines[1:5] == [
        "bar (UTC)             full  prefix  prefix ends (UTC)",
        "2024-11-01 00:00:00      1       0  2024-11-01 00:00:00",
        "... and 1 more",
        "LOOK-AHEAD: 2 of 1440 bars changed target in 2 of 2 prefixes",
    ]


def test_a_check_that_cannot_run_exits_2(tmp_path: Path) -> None:
    runner = CliRunner()

    missing = runner.invoke(
        backtest, ["lookahead", "sma_crossover", *DAY, "--data-dir", str(tmp_path)]
    )
    unknown = runner.invoke(backtest, ["lookahead", "nope", *DAY])
    bad_param = runner.invoke(backtest, ["lookahead", "sma_crossover", *DAY, "--param", "fast=40"])

    assert missing.exit_code == 2
    assert "FAILED_PRECONDITION: 1 of 1 day files missing" in missing.output
    assert unknown.exit_code == 2
    assert "NOT_FOUND: unknown strategy 'nope'" in unknown.output
    assert bad_param.exit_code == 2
    assert "INVALID_ARGUMENT: sma_crossover: fast must be < slow (30)" in bad_param.output
