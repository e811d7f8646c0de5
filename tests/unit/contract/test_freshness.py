"""A stale generated file or schema fails the check and names the command that fixes it."""

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from finplat.cli import finplat
from tests.paths import PROTO_DIR, SCHEMA_DIR, SRC_DIR


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    shutil.copytree(PROTO_DIR, tmp_path / "proto")
    shutil.copytree(SRC_DIR / "finance", tmp_path / "src" / "finance")
    shutil.copytree(SCHEMA_DIR, tmp_path / "schemas")
    return tmp_path


def _check_proto(root: Path) -> tuple[int, str]:
    args = ["--proto-dir", str(root / "proto"), "--src-dir", str(root / "src")]
    result = CliRunner().invoke(finplat, ["proto", "generate", "--check", *args])
    return result.exit_code, result.output


def _check_schemas(root: Path) -> tuple[int, str]:
    result = CliRunner().invoke(
        finplat, ["schemas", "--schema-dir", str(root / "schemas"), "generate", "--check"]
    )
    return result.exit_code, result.output


def test_checked_in_code_and_schemas_are_fresh(workspace: Path) -> None:
    assert _check_proto(workspace) == (0, "generated Python code is fresh\n")
    assert _check_schemas(workspace) == (0, "Avro schemas are fresh\n")


def test_edited_generated_file_fails_naming_make_generate(workspace: Path) -> None:
    stub = workspace / "src" / "finance" / "market" / "v1" / "market_pb2.pyi"
    stub.write_text(stub.read_text() + "\n# edited by hand\n")

    code, output = _check_proto(workspace)

    assert code == 1
    assert "market/v1/market_pb2.pyi" in output
    assert "run `make generate`" in output


def test_proto_change_without_regeneration_fails(workspace: Path) -> None:
    proto = workspace / "proto" / "finance" / "market" / "v1" / "market.proto"
    proto.write_text(proto.read_text().replace("string quote_volume = 12;", "string quote = 12;"))

    code, output = _check_proto(workspace)

    assert code == 1
    assert "run `make generate`" in output


def test_edited_schema_fails_naming_schemas_generate(workspace: Path) -> None:
    schema = workspace / "schemas" / "price_update.avsc"
    schema.write_text(schema.read_text().replace('"default": ""', '"default": "x"', 1))

    code, output = _check_schemas(workspace)

    assert code == 1
    assert "price_update.avsc" in output
    assert "run `finplat schemas generate`" in output


def test_missing_schema_fails(workspace: Path) -> None:
    (workspace / "schemas" / "price_update.avsc").unlink()

    code, output = _check_schemas(workspace)

    assert code == 1
    assert "price_update.avsc" in output
