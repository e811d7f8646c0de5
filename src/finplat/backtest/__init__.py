"""Backtesting: pure domain (indicators, strategies, engine, sweeps) and its adapters."""
