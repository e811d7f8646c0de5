"""The README's examples are commands that exist, take the options shown, and work."""

import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from finplat.cli import finplat
from tests.readme import commands


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
