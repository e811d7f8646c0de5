"""Finds the operator's strategies: the `finplat.strategies` entry points and strategy files.

User strategies are trusted code: importing one runs it with the service's rights, as a
freqtrade strategy or a Python package does. Load only what you would run yourself.

What counts as a strategy: an entry point names a `StrategySpec`, or a module (or any
iterable) of them; a directory holds `*.py` files (not starting with `_`), each contributing
every `StrategySpec` at its top level, except specs it imported that are registered already
(a file may import a built-in to reuse it). A file or entry point that fails to import, or a
name taken twice, stops the load with an `InvalidStrategyError` naming it: a service that
silently lacked a strategy would answer NOT_FOUND to the people who wrote it.
"""

import hashlib
import importlib.metadata
import importlib.util
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType

from finplat.backtest.domain.errors import InvalidStrategyError
from finplat.backtest.domain.strategies import REGISTRY, Registered, StrategyRegistry, StrategySpec

ENTRY_POINT_GROUP = "finplat.strategies"
# The package a strategy file's module is named under (it exists only in `sys.modules`): such
# a module cannot be imported elsewhere by its name, so the Ray executor ships it by value.
FILE_MODULES = "finplat_user_strategies"


def load_user_strategies(
    directories: Sequence[Path], registry: StrategyRegistry = REGISTRY
) -> list[Registered]:
    """Add the entry points' strategies, then the directories', to ``registry``.

    Loading again adds nothing new: a file is imported once per process (its module is kept
    under a name derived from its path), and specs already registered are left out, as an
    imported built-in is. Returns what this call added.
    """
    found: list[Registered] = []
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        source = f"entry point {entry.name} = {entry.value}"
        try:
            loaded = entry.load()
        except Exception as exc:  # user code: whatever its import raises
            raise InvalidStrategyError(entry.name, f"{source}: {_failure(exc)}") from exc
        found += _add(registry, _specs_in(loaded, registry), source)
    for directory in directories:
        if not directory.is_dir():
            raise InvalidStrategyError("?", f"strategy directory {directory} does not exist")
        for path in sorted(directory.glob("*.py")):
            if not path.name.startswith("_"):
                module = _import_file(path.resolve())
                found += _add(registry, _specs_in(module, registry), f"file {path}")
    return found


def _add(registry: StrategyRegistry, specs: list[StrategySpec], source: str) -> list[Registered]:
    for spec in specs:
        registry.add(spec, source)
    return [Registered(spec, source) for spec in specs]


def _specs_in(loaded: object, registry: StrategyRegistry) -> list[StrategySpec]:
    """The strategies an entry point or module offers, those registered already left out."""
    if isinstance(loaded, StrategySpec):
        candidates: Iterable[object] = [loaded]
    elif isinstance(loaded, ModuleType):
        candidates = vars(loaded).values()
    elif isinstance(loaded, Iterable):
        candidates = loaded
    else:
        raise InvalidStrategyError("?", f"{loaded!r} is not a StrategySpec, module or iterable")
    known = {entry.spec for entry in registry.entries()}
    return [c for c in candidates if isinstance(c, StrategySpec) and c not in known]


def _import_file(path: Path) -> ModuleType:
    """The module of strategy file ``path``, imported once per process."""
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    name = f"{FILE_MODULES}.{path.stem}_{digest}"
    module = sys.modules.get(name)
    if module is not None:
        return module
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InvalidStrategyError(path.stem, f"file {path} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    # In sys.modules before it runs: dataclasses and pickling look their module up there.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # user code: whatever its import raises
        del sys.modules[name]
        raise InvalidStrategyError(path.stem, f"file {path}: {_failure(exc)}") from exc
    return module


def _failure(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
