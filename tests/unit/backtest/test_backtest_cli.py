"""`finplat backtest run` on the shared kline files."""

from pathlib import Path

from click.testing import CliRunner

from finplat.backtest.cli import backtest
from tests.paths import market_data_dir

ARGS = [
    "run", "--strategy", "sma_crossover", "--param", "fast=10", "--param", "slow=30",
    "--symbol", "BTCUSDT", "--interval", "1m", "--start", "2024-11-01", "--end", "2024-11-02",
    "--fee-bps", "10",
]  # fmt: skip


def test_run_prints_the_metrics_table_and_writes_a_chart(tmp_path: Path) -> None:
    chart = tmp_path / "out.html"

    result = CliRunner().invoke(
        backtest, [*ARGS, "--data-dir", str(market_data_dir()), "--chart", str(chart)]
    )

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == (
        "sma_crossover fast=10 slow=30 on BTCUSDT 1m, 2024-11-01 00:00 to 2024-11-02 00:00 UTC, "
        "1440 bars"
    )
    names = [line.split()[0] for line in lines[2:16]]
    assert names[:3] == ["total_return", "cagr", "volatility"]
    assert "trade_count" in names
    assert "<svg" in chart.read_text()


def test_missing_files_and_bad_params_are_clear_errors(tmp_path: Path) -> None:
    runner = CliRunner()

    missing = runner.invoke(backtest, [*ARGS, "--data-dir", str(tmp_path)])
    bad_param = runner.invoke(backtest, [*ARGS, "--param", "fast"])
    unknown = runner.invoke(backtest, [*ARGS[:2], "nope", *ARGS[3:], "--data-dir", str(tmp_path)])

    assert missing.exit_code == 1
    assert "FAILED_PRECONDITION: 1 of 1 day files missing" in missing.output
    assert bad_param.exit_code == 2
    assert "expected NAME=NUMBER" in bad_param.output
    assert "NOT_FOUND: unknown strategy 'nope'" in unknown.output
