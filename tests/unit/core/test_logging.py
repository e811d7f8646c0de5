"""JSON log lines carry the message and the `extra` context."""

import json
import logging
from collections.abc import Iterator

import pytest

from finplat.core.logging import configure_logging


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_log_line_is_json_with_context(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")

    logging.getLogger("finplat.test").info("sent %d updates", 3, extra={"topic": "price-updates"})

    line = json.loads(capsys.readouterr().err.strip())
    assert line["message"] == "sent 3 updates"
    assert line["level"] == "INFO"
    assert line["logger"] == "finplat.test"
    assert line["topic"] == "price-updates"


def test_level_filters(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("WARNING")

    logging.getLogger("finplat.test").info("hidden")

    assert capsys.readouterr().err == ""
