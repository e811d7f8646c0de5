"""The Avro schemas checked in under `schemas/`, generated from the proto messages."""

import json
from pathlib import Path

from google.protobuf.descriptor import Descriptor

from finance.market.v1 import market_pb2
from finplat.contract.avro import AvroSchema, schema_of
from finplat.contract.freshness import ensure_same

FIX_COMMAND = "finplat schemas generate"

# File name under schemas/ -> the message it is generated from.
SCHEMA_SOURCES: dict[str, Descriptor] = {
    "price_update.avsc": market_pb2.PriceUpdate.DESCRIPTOR,
}


def render(schema: AvroSchema) -> bytes:
    """The canonical file form: stable key order, two-space indent, final newline."""
    return (json.dumps(schema, indent=2, ensure_ascii=False) + "\n").encode()


def expected_files() -> dict[str, bytes]:
    """What `schemas/` must contain, by file name."""
    return {name: render(schema_of(descriptor)) for name, descriptor in SCHEMA_SOURCES.items()}


def generate(schema_dir: Path) -> list[Path]:
    """Write every schema; files already up to date are left untouched."""
    schema_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in expected_files().items():
        path = schema_dir / name
        if not path.exists() or path.read_bytes() != content:
            path.write_bytes(content)
            written.append(path)
    return written


def check(schema_dir: Path) -> None:
    """Raise `StaleArtefactError` when `schema_dir` differs from what the protos give."""
    actual = {
        path.name: path.read_bytes() for path in sorted(schema_dir.glob("*.avsc")) if path.is_file()
    }
    ensure_same(expected_files(), actual, f"Avro schemas in {schema_dir}", FIX_COMMAND)


def load(schema_dir: Path, name: str = "price_update.avsc") -> AvroSchema:
    """A checked-in schema, parsed."""
    loaded: AvroSchema = json.loads((schema_dir / name).read_text())
    return loaded
