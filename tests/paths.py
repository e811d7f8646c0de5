"""Where the repository's own files are, for tests that read or copy them."""

import os
import sys
from pathlib import Path

from finplat.core.paths import SHARED_BINANCE_DATA

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = REPO_ROOT / "proto"
SRC_DIR = REPO_ROOT / "src"
SCHEMA_DIR = REPO_ROOT / "schemas"
FINPLAT = Path(sys.executable).parent / "finplat"
"""The `finplat` console script of the interpreter running the tests."""


def market_data_dir() -> Path:
    """The real Binance data the tests read in place: FINPLAT_DATA_DIR, else ../shared beside
    the repository (never copied into it)."""
    return Path(os.environ.get("FINPLAT_DATA_DIR", SHARED_BINANCE_DATA))
