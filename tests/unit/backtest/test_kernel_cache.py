"""The compiled-kernel cache sees a change to a function a kernel inlines from another file."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import finplat.backtest.domain._jit as jit

# pkg/b.py: g, jitted; pkg/a.py: f, jitted, calling g (numba inlines it into f's machine code).
_CALLEE = "from pkg._jit import njit\n\n@njit\ndef g():\n    return {value}\n"
_KERNEL = "from pkg._jit import njit\nfrom pkg.b import g\n\n@njit\ndef f():\n    return g()\n"


def _kernel_result(root: Path) -> str:
    """f() in a process of its own, as a service or sweep worker would start."""
    # No .pyc: Python checks one against its source's mtime in whole seconds and its size, so
    # b.py rewritten within the second of the first run, to a text of the same length, would
    # be run from the old bytecode, whatever the kernel cache does.
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("NUMBA_CACHE_DIR", None)
    done = subprocess.run(
        [sys.executable, "-c", "from pkg.a import f; print(f())"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_a_kernel_is_compiled_again_when_a_function_it_inlines_changes(tmp_path: Path) -> None:
    # numba alone stamps a cached f with a.py only: after b.py changed, f would still give 1.
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    shutil.copy(jit.__file__, package / "_jit.py")
    (package / "a.py").write_text(_KERNEL)
    (package / "b.py").write_text(_CALLEE.format(value=1))

    first = _kernel_result(tmp_path)
    cached = sorted(path.name for path in (package / "__pycache__").rglob("*.nbi"))
    (package / "b.py").write_text(_CALLEE.format(value=2))
    second = _kernel_result(tmp_path)

    assert (first, second) == ("1", "2")
    assert any(name.startswith("a.f-") for name in cached)  # the first run did cache f
