"""Where the repository is, for defaults that point into it or beside it (the shared data)."""

from pathlib import Path

# src/finplat/core/paths.py: the repository root is three folders above this one's.
REPOSITORY = Path(__file__).resolve().parents[3]
SHARED_BINANCE_DATA = REPOSITORY.parent / "shared" / "data" / "binance"
"""The real Binance data set beside the repository, the documented default of FINPLAT_DATA_DIR."""
