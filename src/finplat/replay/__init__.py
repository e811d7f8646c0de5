"""A fake Binance for development, tests and benchmarks: it replays recorded market data over
Binance's WebSocket and REST protocols, with faults on demand.
"""
