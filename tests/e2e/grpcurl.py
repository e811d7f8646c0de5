"""grpcurl, the binary a gRPC user reaches for, run by the e2e tests exactly as a user runs it.

The binary is FINPLAT_GRPCURL, or the one `make install` builds into the cache. The services are
those of the platform under test (tests/e2e/conftest.py).
A missing binary fails the test with the command that builds it: it never skips.
"""

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pytest

from finplat.platform.grpcurl import cached_grpcurl
from tests.e2e.conftest import backtest_grpc_address, price_grpc_address

GRPCURL_VARIABLE = "FINPLAT_GRPCURL"
PRICE_GRPC = price_grpc_address()
BACKTEST_GRPC = backtest_grpc_address()
# grpcurl exits with 64 + the gRPC status code when the call itself fails (its documented
# convention), so a script can tell NOT_FOUND from a connection error.
GRPCURL_STATUS_EXIT_BASE = 64


def grpcurl_binary() -> str:
    """The grpcurl to run; fails the calling test with the fix when there is none."""
    path = Path(os.environ.get(GRPCURL_VARIABLE) or cached_grpcurl())
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"no grpcurl at {path}: run `make install` (it builds grpcurl with Go into the "
            f"cache), or point {GRPCURL_VARIABLE} at a grpcurl binary",
            pytrace=False,
        )
    return str(path)


def grpcurl(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """Run grpcurl with `args` to its end; the caller checks the exit code."""
    return subprocess.run(
        [grpcurl_binary(), *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


@contextmanager
def grpcurl_stream(*args: str, timeout_s: float = 30) -> Iterator[subprocess.Popen[str]]:
    """Start grpcurl with `args` for a streaming call; killed on exit, or after `timeout_s`."""
    process = subprocess.Popen(
        [grpcurl_binary(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    # A stream that goes quiet must not hang the test on a blocked read.
    watchdog = threading.Timer(timeout_s, process.kill)
    watchdog.start()
    try:
        yield process
    finally:
        watchdog.cancel()
        process.kill()
        process.communicate()


def read_messages(stdout: IO[str], count: int) -> list[dict[str, Any]]:
    """Up to `count` streamed messages; fewer when the stream ends first.

    grpcurl pretty-prints each message as JSON whose closing brace stands alone on a line.
    """
    messages: list[dict[str, Any]] = []
    lines: list[str] = []
    for line in stdout:
        lines.append(line)
        if line.rstrip("\n") == "}":
            messages.append(json.loads("".join(lines)))
            lines = []
            if len(messages) == count:
                break
    return messages
