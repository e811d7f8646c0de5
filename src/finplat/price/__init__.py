"""Price service: Binance feed, normalisation, candles, sinks and the gRPC API."""
