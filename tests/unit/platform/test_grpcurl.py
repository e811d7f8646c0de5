"""Where grpcurl is: the Makefile builds it where finplat and the tests look, and `up` says so."""

import subprocess
from pathlib import Path

import pytest

from finplat.platform.grpcurl import cached_grpcurl, grpcurl_example
from tests.paths import REPO_ROOT


def _makefile_grpcurl(cache_dir: Path) -> Path:
    """The path the Makefile's $(GRPCURL) target builds, as make itself expands it."""
    result = subprocess.run(
        [
            "make",
            "-s",
            "--no-print-directory",
            "--eval",
            "print-grpcurl: ; @echo $(GRPCURL)",
            "print-grpcurl",
            f"CACHE_DIR={cache_dir}",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return Path(result.stdout.strip())


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_finplat_looks_where_the_makefile_builds(tmp_path: Path) -> None:
    assert cached_grpcurl(tmp_path) == _makefile_grpcurl(tmp_path)


def test_readme_names_the_version_the_makefile_builds() -> None:
    built = _makefile_grpcurl(Path("/cache"))

    assert f"tools/{built.parent.name}/" in (REPO_ROOT / "README.md").read_text()


def test_example_calls_grpcurl_by_name_when_it_is_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _executable(tmp_path / "bin" / "grpcurl")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))

    example = grpcurl_example("127.0.0.1:50051", tmp_path / "cache")

    assert example == "grpcurl -plaintext 127.0.0.1:50051 list"


def test_example_calls_the_cached_build_by_path_when_none_is_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    cached = _executable(tmp_path / "cache" / "tools" / "grpcurl-1.9.4" / "grpcurl")

    example = grpcurl_example("127.0.0.1:50051", tmp_path / "cache")

    assert example == f"{cached} -plaintext 127.0.0.1:50051 list"


def test_example_says_how_to_build_grpcurl_when_there_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))

    example = grpcurl_example("127.0.0.1:50051", tmp_path / "cache")

    assert example.startswith("grpcurl -plaintext 127.0.0.1:50051 list")
    assert "make install" in example
