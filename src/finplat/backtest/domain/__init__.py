"""Pure backtest domain: bars, indicators, strategies, engine, metrics and sweeps."""
