"""The `finplat` entry point."""

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from finplat.cli import finplat
from tests.paths import FINPLAT, SCHEMA_DIR


def test_help_lists_the_subcommands() -> None:
    result = subprocess.run(
        [str(FINPLAT), "--help"],
        capture_output=True,
        text=True,
        check=True,
    )

    commands = ["proto", "schemas", "stack", "kafka", "price", "replay", "backtest", "gateway"]
    for command in [*commands, "health", "settings-doc", "up", "down"]:
        assert f"  {command} " in result.stdout


def test_schemas_generate_is_idempotent(tmp_path: Path) -> None:
    runner = CliRunner()

    first = runner.invoke(finplat, ["schemas", "--schema-dir", str(tmp_path), "generate"])
    content = (tmp_path / "price_update.avsc").read_bytes()
    second = runner.invoke(finplat, ["schemas", "--schema-dir", str(tmp_path), "generate"])

    assert first.exit_code == 0
    assert f"wrote {tmp_path / 'price_update.avsc'}" in first.output
    assert second.exit_code == 0
    assert second.output == "Avro schemas already up to date\n"
    assert (tmp_path / "price_update.avsc").read_bytes() == content
    assert content == (SCHEMA_DIR / "price_update.avsc").read_bytes()


def test_starting_finplat_imports_no_area() -> None:
    """Areas load when their command runs: `finplat stack status` needs no numba or FastAPI."""
    probe = (
        "import sys; from finplat.cli import finplat; "
        "print(' '.join(m for m in ('numba', 'scipy', 'fastapi', 'influxdb_client', "
        "'finplat.backtest', 'finplat.gateway', 'finplat.price') if m in sys.modules))"
    )

    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()

    assert loaded == []
