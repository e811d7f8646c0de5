"""Where `make install` puts grpcurl, so `finplat up` shows a command that runs as printed."""

import shutil
from pathlib import Path

GRPCURL_VERSION = "1.9.4"
"""The version the Makefile builds (its GRPCURL_VERSION; a unit test keeps the two equal)."""
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "finplat"
"""The Makefile's CACHE_DIR unless overridden on its command line."""


def cached_grpcurl(cache_dir: Path = DEFAULT_CACHE_DIR) -> Path:
    """The binary `make install` builds with Go: `<cache>/tools/grpcurl-<version>/grpcurl`."""
    return cache_dir / "tools" / f"grpcurl-{GRPCURL_VERSION}" / "grpcurl"


def grpcurl_example(address: str, cache_dir: Path = DEFAULT_CACHE_DIR) -> str:
    """A `list` call of the service at `address` that works as printed on this machine.

    grpcurl by name when it is on PATH (the user's own), else the cached build by its path
    (`make install` puts nothing on PATH), else by name with how to get it.
    """
    arguments = f"-plaintext {address} list"
    if shutil.which("grpcurl"):
        return f"grpcurl {arguments}"
    cached = cached_grpcurl(cache_dir)
    if cached.is_file():
        return f"{cached} {arguments}"
    return f"grpcurl {arguments}   (`make install` builds grpcurl into {cached.parent})"
