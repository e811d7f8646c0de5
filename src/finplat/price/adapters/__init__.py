"""The price service's adapters, one per external system: the live Binance client, Redis,
InfluxDB and the Kafka publisher."""
