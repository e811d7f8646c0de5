"""The README's examples are commands that exist, take the options shown, and work."""

import json
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from finplat.cli import finplat
from tests.paths import REPO_ROOT
from tests.readme import code_blocks, commands


def _examples() -> list[list[str]]:
    return [shlex.split(line, comments=True)[1:] for line in commands("finplat")]


def test_readme_shows_finplat_examples() -> None:
    assert len(_examples()) >= 8


@pytest.mark.parametrize("args", _examples(), ids=" ".join)
def test_example_parses(args: list[str]) -> None:
    """Every example names a real command with real options (help stops before running)."""
    result = CliRunner().invoke(finplat, [*args, "--help"])

    assert result.exit_code == 0, result.output


def test_backtest_example_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (example,) = [args for args in _examples() if args[:2] == ["backtest", "run"]]
    monkeypatch.chdir(tmp_path)

    result = CliRunner().invoke(finplat, example)

    assert result.exit_code == 0, result.output
    assert "1440 bars" in result.output.splitlines()[0]
    assert "<svg" in (tmp_path / "out.html").read_text()


def test_every_test_the_operations_section_names_exists() -> None:
    """The guarantees name the tests that check them: a renamed or deleted one fails here."""
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("## Operations", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`(tests/[\w/]+\.py)`", section))
    # Short names in a row stand for files of the directory named earlier in that row.
    short = set(re.findall(r"`(test_\w+\.py)`", section))

    assert len(named) >= 10
    assert [path for path in named if not (REPO_ROOT / path).is_file()] == []
    everywhere = {path.name for path in (REPO_ROOT / "tests").rglob("test_*.py")}
    assert short <= everywhere


def test_the_strategy_shown_is_the_example_file_started_as_shown() -> None:
    """The e2e platform starts with the same directory and runs the strategy through the
    gateway (tests/e2e/test_backtests.py)."""
    (shown,) = [block for block in code_blocks("python") if "finplat.strategy import" in block]
    bash = [line for block in code_blocks("bash") for line in block.splitlines()]
    (start,) = [line for line in bash if line.startswith("FINPLAT_BACKTEST_STRATEGY_DIRS=")]
    setting, *command = shlex.split(start)

    assert shown == (REPO_ROOT / "examples/strategies/numpy_sma_crossover.py").read_text()
    assert json.loads(setting.split("=", 1)[1]) == ["examples/strategies"]
    assert command == ["make", "up"]
