"""Kafka behind one adapter: PriceUpdate as Avro through the Schema Registry."""
