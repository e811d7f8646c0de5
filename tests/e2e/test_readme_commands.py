"""The README's `finplat` commands, run as written against the platform's stack.

Two are left to other tests: `finplat stack down` would stop the stack under these tests (the
stack and platform integration tests stop theirs), and `finplat backtest run` writes a file,
so tests/unit/test_readme.py runs it as written in a directory of its own.
"""

import shlex
import subprocess

import pytest

from tests.paths import FINPLAT, REPO_ROOT
from tests.readme import commands

pytestmark = pytest.mark.integration

_LEFT_TO_OTHER_TESTS = (["stack", "down"], ["backtest", "run"])


def _runnable() -> list[str]:
    return [
        line
        for line in commands("finplat")
        if shlex.split(line, comments=True)[1:3] not in _LEFT_TO_OTHER_TESTS
    ]


def test_readme_commands_cover_the_stack_kafka_and_schemas() -> None:
    shown = {" ".join(shlex.split(line, comments=True)[1:3]) for line in _runnable()}

    assert {"stack status", "stack logs", "kafka probe", "schemas check"} <= shown


@pytest.mark.usefixtures("platform")
@pytest.mark.parametrize("example", _runnable())
def test_readme_command_succeeds(example: str) -> None:
    words = shlex.split(example, comments=True)

    result = subprocess.run(
        [str(FINPLAT), *words[1:]],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )

    assert result.returncode == 0, f"{example}\n{result.stdout}\n{result.stderr}"
    assert result.stdout.strip(), f"{example} printed nothing"
