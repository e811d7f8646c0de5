"""Price service: domain/ (pure), adapters/ (Binance, Redis, InfluxDB, Kafka), service/ (wiring,
the gRPC API, the stream hub), and its command line."""
