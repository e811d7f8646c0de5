"""Pure backtest domain: bars, indicators, strategies, engine, metrics, sweep plans, and the
exact statistics of the price stream with their de-duplication window."""
