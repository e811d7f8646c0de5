"""Binance spot: wire format, stream names, WebSocket feed and REST client."""
