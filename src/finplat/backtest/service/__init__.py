"""The backtest service's application: wiring, the gRPC API, runs and the statistics consumer's
processing.
"""
