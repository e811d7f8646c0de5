"""Generate the `finance` Python package (messages, gRPC stubs, typing stubs) from `proto/`.

The generated package keeps the proto package names (`finance.market.v1`), so the imports protoc
writes work unchanged; the `google.api` modules come from googleapis-common-protos, which is
generated from the same files we vendor for buf.
"""

import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from finplat.contract.errors import ContractError
from finplat.contract.freshness import ensure_same, tree_files

GENERATED_PACKAGE = "finance"
DESCRIPTOR_SET = "descriptors.binpb"
FIX_COMMAND = "make generate"


def proto_sources(proto_root: Path) -> list[Path]:
    """Our own proto files; the vendored google/ ones are only imported."""
    return sorted((proto_root / GENERATED_PACKAGE).rglob("*.proto"))


def _plugin(name: str) -> str:
    # The plugins are console scripts of mypy-protobuf, installed beside this interpreter.
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise ContractError(f"{name} not found next to {sys.executable}; run `make install`")
    return f"--plugin={name}={path}"


def _run_protoc(proto_root: Path, out_dir: Path) -> None:
    try:
        from grpc_tools import protoc  # noqa: PLC0415 - a dev-only dependency
    except ImportError as exc:
        raise ContractError("grpcio-tools is missing; run `make install`") from exc
    well_known = resources.files("grpc_tools") / "_proto"
    sources = [str(path.relative_to(proto_root)) for path in proto_sources(proto_root)]
    if not sources:
        raise ContractError(f"no .proto files under {proto_root / GENERATED_PACKAGE}")
    args = [
        "grpc_tools.protoc",
        f"--proto_path={proto_root}",
        f"--proto_path={well_known}",
        _plugin("protoc-gen-mypy"),
        _plugin("protoc-gen-mypy_grpc"),
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out=quiet:{out_dir}",
        f"--mypy_grpc_out=quiet:{out_dir}",
        # Comments are kept so the Avro docs and the gateway's OpenAPI can read them.
        f"--descriptor_set_out={out_dir / GENERATED_PACKAGE / DESCRIPTOR_SET}",
        "--include_imports",
        "--include_source_info",
        *sources,
    ]
    (out_dir / GENERATED_PACKAGE).mkdir(parents=True, exist_ok=True)
    if protoc.main(args) != 0:
        raise ContractError(f"protoc failed on {', '.join(sources)}")


def _add_init_files(package_dir: Path) -> None:
    for directory in [package_dir, *sorted(p for p in package_dir.rglob("*") if p.is_dir())]:
        init = directory / "__init__.py"
        if not init.exists():
            init.write_text('"""Generated from proto/ by `make generate`; do not edit."""\n')


def generate_into(proto_root: Path, out_dir: Path) -> Path:
    """Generate the package into `out_dir` and return the package directory."""
    _run_protoc(proto_root, out_dir)
    package_dir = out_dir / GENERATED_PACKAGE
    _add_init_files(package_dir)
    return package_dir


def generate(proto_root: Path, src_root: Path) -> Path:
    """Replace the checked-in generated package with a fresh one."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate_into(proto_root, Path(tmp))
        target = src_root / GENERATED_PACKAGE
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(fresh, target)
    return target


def check(proto_root: Path, src_root: Path) -> None:
    """Raise `StaleArtefactError` when the checked-in package differs from a fresh one."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate_into(proto_root, Path(tmp))
        ensure_same(
            tree_files(fresh),
            tree_files(src_root / GENERATED_PACKAGE),
            "generated Python code in src/finance",
            FIX_COMMAND,
        )
