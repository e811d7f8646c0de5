"""`finplat proto ...` and `finplat schemas ...`: keep generated artefacts fresh and registered."""

from pathlib import Path

import click

from finplat.contract import protogen
from finplat.contract import schemas as avro_schemas
from finplat.contract.errors import ContractError
from finplat.contract.registry import SchemaRegistry
from finplat.contract.settings import SchemaSettings

_DIR = click.Path(file_okay=False, path_type=Path)
_SCHEMA_FILE = "price_update.avsc"


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
@click.option("--schema-dir", type=_DIR, help="Directory of the .avsc files.  [default: schemas]")
@click.pass_context
def schemas(ctx: click.Context, schema_dir: Path | None) -> None:
    """Avro schemas generated from the protos, and the Schema Registry that guards them."""
    settings = SchemaSettings()
    if schema_dir is not None:
        settings = settings.model_copy(update={"schema_dir": schema_dir})
    ctx.obj = settings


@schemas.command("generate")
@click.option("--check", is_flag=True, help="Fail when a schema is stale; write nothing.")
@click.pass_obj
def schemas_generate(settings: SchemaSettings, check: bool) -> None:
    """Generate the Avro schemas in schemas/ from the proto messages."""
    try:
        if check:
            avro_schemas.check(settings.schema_dir)
            click.echo("Avro schemas are fresh")
            return
        written = avro_schemas.generate(settings.schema_dir)
    except ContractError as exc:
        raise click.ClickException(str(exc)) from exc
    for path in written:
        click.echo(f"wrote {path}")
    if not written:
        click.echo("Avro schemas already up to date")


@schemas.command("register")
@click.pass_obj
def schemas_register(settings: SchemaSettings) -> None:
    """Register the PriceUpdate schema under its subject (the registry's rule applies)."""
    try:
        schema = avro_schemas.load(settings.schema_dir, _SCHEMA_FILE)
        with SchemaRegistry(settings.registry_url, settings.timeout_s) as registry:
            registered = registry.register(settings.subject, schema)
    except ContractError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"registered {settings.subject} version {registered.version} "
        f"(schema id {registered.schema_id})"
    )


@schemas.command("check")
@click.pass_obj
def schemas_check(settings: SchemaSettings) -> None:
    """Ask the registry whether schemas/ may follow the latest registered version."""
    try:
        schema = avro_schemas.load(settings.schema_dir, _SCHEMA_FILE)
        with SchemaRegistry(settings.registry_url, settings.timeout_s) as registry:
            verdict = registry.check(settings.subject, schema)
    except ContractError as exc:
        raise click.ClickException(str(exc)) from exc
    if verdict.against_version is None:
        click.echo(f"{settings.subject}: nothing registered yet, any schema is accepted")
    elif verdict.compatible:
        click.echo(f"{settings.subject}: compatible with version {verdict.against_version}")
    else:
        reasons = "\n  ".join(verdict.messages) or "(the registry gave no reason)"
        raise click.ClickException(
            f"{settings.subject}: NOT compatible with version {verdict.against_version}:\n"
            f"  {reasons}"
        )
