"""The README's curl and grpcurl examples, run as written against the running platform."""

import shlex
import signal
import subprocess

import pytest

from tests.e2e.conftest import Platform
from tests.e2e.grpcurl import (
    BACKTEST_GRPC,
    PRICE_GRPC,
    grpcurl,
    grpcurl_stream,
    read_messages,
)
from tests.readme import commands

pytestmark = pytest.mark.integration

_README_GATEWAY = "http://127.0.0.1:8080"
_README_REPLAY = "http://127.0.0.1:9443"
_README_PROMETHEUS = "http://127.0.0.1:9090"
_README_PRICE_GRPC = "127.0.0.1:50051"
_README_BACKTEST_GRPC = "127.0.0.1:50052"
# How the README marks a streaming call: it runs until the user presses Ctrl-C.
_UNTIL_CTRL_C = "# until Ctrl-C"


def _curl_examples() -> list[str]:
    return commands("curl")


def test_readme_shows_curl_examples() -> None:
    assert len(_curl_examples()) >= 5


@pytest.mark.parametrize("example", _curl_examples())
def test_curl_example_answers(platform: Platform, example: str) -> None:
    aimed = example.replace(_README_GATEWAY, platform.gateway_url)
    aimed = aimed.replace(_README_PROMETHEUS, platform.prometheus_url)
    if _README_REPLAY in aimed:
        assert platform.replay_url is not None, "the README's replay examples need the replay"
        aimed = aimed.replace(_README_REPLAY, platform.replay_url)
    command = shlex.split(aimed)

    result = subprocess.run(
        [*command, "--fail-with-body", "--max-time", "30"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("{"), result.stdout


def _grpcurl_examples() -> list[str]:
    return commands("grpcurl")


def test_readme_shows_grpcurl_examples() -> None:
    examples = " ".join(_grpcurl_examples())

    for shown in (" list", " describe ", "/GetPrice", "/StreamPrices"):
        assert shown in examples


def _as_run_here(example: str) -> list[str]:
    """The example's arguments, aimed at the platform under test (the README's ports by default)."""
    aimed = example.replace(_README_PRICE_GRPC, PRICE_GRPC).replace(
        _README_BACKTEST_GRPC, BACKTEST_GRPC
    )
    words = shlex.split(aimed, comments=True)
    return words[1:]  # the binary is the tests' grpcurl, found by tests.e2e.grpcurl


@pytest.mark.usefixtures("platform")
@pytest.mark.parametrize("example", [e for e in _grpcurl_examples() if _UNTIL_CTRL_C not in e])
def test_grpcurl_example_answers(example: str) -> None:
    result = grpcurl(*_as_run_here(example))

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip(), result.stderr


@pytest.mark.usefixtures("platform")
@pytest.mark.parametrize("example", [e for e in _grpcurl_examples() if _UNTIL_CTRL_C in e])
def test_grpcurl_stream_example_streams_until_ctrl_c(example: str) -> None:
    with grpcurl_stream(*_as_run_here(example)) as process:
        assert process.stdout is not None
        messages = read_messages(process.stdout, count=2)
        process.send_signal(signal.SIGINT)
        returncode = process.wait(timeout=10)

    assert len(messages) == 2, messages
    assert all(message["prices"] for message in messages), messages
    # Go's default for SIGINT: the process ends by the signal, at once.
    assert returncode == -signal.SIGINT
