"""Where the repository's own files are, for tests that read or copy them."""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = REPO_ROOT / "proto"
SRC_DIR = REPO_ROOT / "src"
SCHEMA_DIR = REPO_ROOT / "schemas"
FINPLAT = Path(sys.executable).parent / "finplat"
"""The `finplat` console script of the interpreter running the tests."""
