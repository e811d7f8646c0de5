"""Binance's formats, shared by the live feed, the replay exchange and the backtest: WebSocket and
REST wire structs, stream names, and the readers of its public data archive.
"""
