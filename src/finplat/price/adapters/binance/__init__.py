"""The live Binance client: WebSocket connections and rollover, the feed, REST, backfill and
limits.
"""
