"""The configuration reference, docs/CONFIGURATION.md, rendered from the settings classes.

A field's description is read from the source: its docstring (the string literal under it) or,
failing that, the comment lines right above it, the two styles the settings modules use.
Pydantic's `use_attribute_docstrings` would see only the first; `Field(description=...)` wins
over both. Defaults are those of a class built without the environment (`model_construct`), so
the reference never depends on the shell it was generated in.
"""

import ast
import inspect
import json
import os
import re
import textwrap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, get_origin

import annotated_types
import click
from pydantic import AliasChoices, BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from finplat.backtest.service.settings import BacktestSettings
from finplat.contract.settings import SchemaSettings
from finplat.core.connections import InfluxSettings, KafkaSettings, RedisSettings
from finplat.core.paths import REPOSITORY
from finplat.gateway.service.settings import GatewaySettings
from finplat.platform.settings import PlatformSettings
from finplat.price.service.settings import PriceSettings
from finplat.replay.settings import ReplaySettings
from finplat.stack.settings import StackSettings

FIX_COMMAND = "finplat settings-doc"
DEFAULT_OUTPUT = Path("docs/CONFIGURATION.md")
# Every settings class, in the order of the reference; a test finds any class missing here.
DOCUMENTED: tuple[tuple[str, type[BaseSettings]], ...] = (
    ("Kafka and the Schema Registry", KafkaSettings),
    ("Redis", RedisSettings),
    ("InfluxDB", InfluxSettings),
    ("Price service", PriceSettings),
    ("Backtest service", BacktestSettings),
    ("Gateway", GatewaySettings),
    ("Replay server", ReplaySettings),
    ("Platform (`finplat up`)", PlatformSettings),
    ("Native stack (`finplat stack`)", StackSettings),
    ("Schemas (`finplat schemas`)", SchemaSettings),
)
# HOME while defaults are computed, so those derived from it are recognised and shown under `~`.
HOME_STAND_IN = Path("/~")
_BOUNDS = ((annotated_types.Gt, "gt", ">"), (annotated_types.Ge, "ge", "≥"),
           (annotated_types.Lt, "lt", "<"), (annotated_types.Le, "le", "≤"))  # fmt: skip
_MODULE_PATH = re.compile(r"\b(?:[a-z_][a-z0-9_]*\.)+")

_HEADER = """\
# Configuration reference

Generated from the settings classes by `finplat settings-doc`: change a class, then run it (a
test fails while this file is stale). Every setting is an environment variable, read once when
a command or service starts. Lists are JSON (`FINPLAT_PRICE_FEED__SYMBOLS='["BTCUSDT"]'`);
nested price settings join their names with `__`. In defaults, `~` is the home directory,
`<repository>` this repository's root, and other relative paths are relative to the working
directory.
"""


@dataclass(frozen=True)
class Row:
    """One setting."""

    variables: tuple[str, ...]
    type: str
    default: str
    description: str


@dataclass(frozen=True)
class Section:
    """One table: a settings class, or a model nested in one."""

    heading: str
    model: type[BaseModel]
    intro: str
    rows: tuple[Row, ...]


def render() -> str:
    """The whole reference, as written to docs/CONFIGURATION.md."""
    parts = [_HEADER]
    for title, settings in DOCUMENTED:
        with _home_as(HOME_STAND_IN):
            defaults = settings.model_construct()
        for section in sections(title, settings, defaults):
            parts.append(_markdown(section))
    return "\n".join(parts)


def sections(title: str, settings: type[BaseSettings], defaults: BaseModel) -> list[Section]:
    """The table of a settings class, followed by those of its nested models."""
    prefix = str(settings.model_config.get("env_prefix", "")).upper()
    delimiter = settings.model_config.get("env_nested_delimiter")
    return _sections(f"## {title}", settings, defaults, prefix, delimiter, "")


def _sections(
    heading: str,
    model: type[BaseModel],
    defaults: BaseModel,
    prefix: str,
    delimiter: str | None,
    intro: str,
) -> list[Section]:
    docs = field_docs(model)
    rows: list[Row] = []
    nested: list[Section] = []
    for name, field in model.model_fields.items():
        value = getattr(defaults, name)
        variable = f"{prefix}{name.upper()}"
        # Without a delimiter a nested model is one JSON variable, an ordinary row.
        if delimiter and isinstance(value, BaseModel):
            nested += _sections(
                f"### `{variable}{delimiter}*`",
                type(value),
                value,
                f"{variable}{delimiter}",
                delimiter,
                docs.get(name, ""),
            )
            continue
        rows.append(
            Row(
                _variables(field, name, variable), _type(field), _default(value), docs.get(name, "")
            )
        )
    own = Section(heading, model, " ".join(p for p in (intro, _doc(model)) if p), tuple(rows))
    return [own, *nested]


def field_docs(model: type[BaseModel]) -> dict[str, str]:
    """Description of each field: `Field(description=)`, else its docstring, else its comment,
    from the class that declares it (a subclass that only changes a default inherits it)."""
    docs: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        ours = (
            isinstance(cls, type)
            and issubclass(cls, BaseModel)
            and cls.__module__.startswith("finplat.")
        )
        if cls is model or ours:
            for name, text in _declared_docs(cls).items():
                if text or name not in docs:
                    docs[name] = text
    for name, field in model.model_fields.items():
        if field.description:
            docs[name] = _one_line(field.description)
    return docs


def _declared_docs(model: type[BaseModel]) -> dict[str, str]:
    source = textwrap.dedent(inspect.getsource(model))
    lines = source.splitlines()
    node = ast.parse(source).body[0]
    if not isinstance(node, ast.ClassDef):
        raise TypeError(f"{model.__name__} is not a class statement")
    docs: dict[str, str] = {}
    for index, statement in enumerate(node.body):
        if not (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)):
            continue
        following = node.body[index + 1] if index + 1 < len(node.body) else None
        if (
            isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            text = following.value.value
        else:
            text = " ".join(_comment_above(lines, statement.lineno - 1))
        docs[statement.target.id] = _one_line(text)
    return docs


def _comment_above(lines: Sequence[str], index: int) -> list[str]:
    """The comment block ending on the line before `lines[index]` (no blank line between)."""
    comment: list[str] = []
    while index > 0 and lines[index - 1].strip().startswith("#"):
        index -= 1
        comment.insert(0, lines[index].strip().removeprefix("#").strip())
    return comment


def _one_line(text: str) -> str:
    return " ".join(inspect.cleandoc(text).split())


def _doc(model: type[BaseModel]) -> str:
    # Pydantic gives every model a generic docstring when it has none of its own.
    own = model.__dict__.get("__doc__")
    return _one_line(own) if isinstance(own, str) else ""


def _variables(field: FieldInfo, name: str, variable: str) -> tuple[str, ...]:
    alias = field.validation_alias
    if isinstance(alias, str):
        return (alias.upper(),)
    if isinstance(alias, AliasChoices):
        # The field's own name among the choices is there for keyword arguments, not the env.
        return tuple(c.upper() for c in alias.choices if isinstance(c, str) and c != name)
    return (variable,)


def _type(field: FieldInfo) -> str:
    annotation = field.annotation
    if isinstance(annotation, type) and get_origin(annotation) is None:
        text = annotation.__name__
    else:
        text = _MODULE_PATH.sub("", str(annotation))
    bounds = [
        f"{symbol} {getattr(constraint, attribute)}"
        for constraint in field.metadata
        for kind, attribute, symbol in _BOUNDS
        if isinstance(constraint, kind)
    ]
    return f"{text} ({', '.join(bounds)})" if bounds else text


def _default(value: Any) -> str:
    """The default as Markdown: a value in code, or a word for none and for secrets."""
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "a development secret"
    return _code(_value(value))


def _value(value: Any) -> str:
    if isinstance(value, Path):
        return _path(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool | tuple | list):
        return json.dumps(value)
    return str(value)


def _path(path: Path) -> str:
    if path.is_relative_to(HOME_STAND_IN):
        return f"~/{path.relative_to(HOME_STAND_IN).as_posix()}"
    # Defaults derived from the package's location differ per clone: name them by the clone.
    if path.is_absolute() and path.is_relative_to(REPOSITORY.parent):
        return "<repository>/" + Path(os.path.relpath(path, REPOSITORY)).as_posix()
    return path.as_posix()


@contextmanager
def _home_as(home: Path) -> Iterator[None]:
    """Make `Path.home()` (which reads HOME) return `home` while defaults are computed."""
    saved = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    try:
        yield
    finally:
        if saved is None:
            del os.environ["HOME"]
        else:
            os.environ["HOME"] = saved


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _code(text: str) -> str:
    return f"`{_cell(text)}`"


def _markdown(section: Section) -> str:
    model = section.model
    lines = [section.heading, "", f"`{model.__name__}` (`{model.__module__}`)."]
    if section.intro:
        lines[-1] += f" {section.intro}"
    lines += ["", "| Variable | Type | Default | Description |", "|---|---|---|---|"]
    for row in section.rows:
        variables = "<br>".join(_code(v) for v in row.variables)
        lines.append(
            f"| {variables} | {_code(row.type)} | {row.default} | {_cell(row.description)} |"
        )
    return "\n".join(lines) + "\n"


@click.command("settings-doc")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_OUTPUT,
    show_default=True,
)
@click.option("--check", is_flag=True, help="Fail when the file is stale; write nothing.")
def settings_doc(output: Path, check: bool) -> None:
    """Write the configuration reference: every setting's variable, type, default, meaning."""
    text = render()
    if check:
        if not output.is_file() or output.read_text(encoding="utf-8") != text:
            raise click.ClickException(
                f"{output} is stale; run `{FIX_COMMAND}` and commit the result"
            )
        click.echo(f"{output} is fresh")
        return
    output.write_text(text, encoding="utf-8")
    click.echo(f"wrote {output}")
