"""The README's curl examples, run as written against the running platform."""

import re
import shlex
import subprocess

import pytest

from tests.e2e.conftest import Platform
from tests.paths import REPO_ROOT

pytestmark = pytest.mark.integration

_README_GATEWAY = "http://127.0.0.1:8080"


def _curl_examples() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.startswith("curl ")]


def test_readme_shows_curl_examples() -> None:
    assert len(_curl_examples()) >= 5


@pytest.mark.parametrize("example", _curl_examples())
def test_curl_example_answers(platform: Platform, example: str) -> None:
    command = shlex.split(example.replace(_README_GATEWAY, platform.gateway_url))

    result = subprocess.run(
        [*command, "--fail-with-body", "--max-time", "30"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("{"), result.stdout
