"""Backtest service: domain/ (pure: indicators, strategies, engine, sweeps, statistics),
adapters/ (results store, consumer state, dead letters, history, kline files, sweep executor),
service/ (wiring, the gRPC API, the statistics consumer), and its command line."""
