"""A Binance look-alike that replays real recorded market data, with fault injection."""
