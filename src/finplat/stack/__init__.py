"""The native development stack: Kafka, Schema Registry, Redis and InfluxDB on loopback."""
