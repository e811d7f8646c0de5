"""`finplat proto ...` and `finplat schemas ...`: keep generated artefacts fresh."""

from pathlib import Path

import click

from finplat.contract import protogen
from finplat.contract import schemas as avro_schemas
from finplat.contract.errors import ContractError

_DIR = click.Path(file_okay=False, path_type=Path)


@click.group()
def proto() -> None:
    """Python code generated from proto/."""


@proto.command("generate")
@click.option("--proto-dir", type=_DIR, default=Path("proto"), show_default=True)
@click.option("--src-dir", type=_DIR, default=Path("src"), show_default=True)
@click.option("--check", is_flag=True, help="Fail when the code is stale; write nothing.")
def proto_generate(proto_dir: Path, src_dir: Path, check: bool) -> None:
    """Generate messages, gRPC stubs and typing stubs into src/finance."""
    try:
        if check:
            protogen.check(proto_dir, src_dir)
            click.echo("generated Python code is fresh")
        else:
            click.echo(f"generated {protogen.generate(proto_dir, src_dir)}")
    except ContractError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
def schemas() -> None:
    """Avro schemas generated from the protos, and the Schema Registry."""


@schemas.command("generate")
@click.option("--schema-dir", type=_DIR, default=Path("schemas"), show_default=True)
@click.option("--check", is_flag=True, help="Fail when a schema is stale; write nothing.")
def schemas_generate(schema_dir: Path, check: bool) -> None:
    """Generate the Avro schemas in schemas/ from the proto messages."""
    try:
        if check:
            avro_schemas.check(schema_dir)
            click.echo("Avro schemas are fresh")
            return
        written = avro_schemas.generate(schema_dir)
    except ContractError as exc:
        raise click.ClickException(str(exc)) from exc
    for path in written:
        click.echo(f"wrote {path}")
    if not written:
        click.echo("Avro schemas already up to date")
