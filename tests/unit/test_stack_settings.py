"""The native stack serves exactly where the services look for it."""

from urllib.parse import urlparse

from finplat.core.connections import InfluxSettings, KafkaSettings, RedisSettings
from finplat.stack.settings import StackSettings


def test_stack_defaults_match_the_connection_defaults() -> None:
    stack = StackSettings()
    kafka, redis, influx = KafkaSettings(), RedisSettings(), InfluxSettings()

    assert kafka.bootstrap_servers == f"{stack.host}:{stack.kafka_port}"
    assert urlparse(kafka.schema_registry_url).port == stack.registry_port
    assert (kafka.topic, kafka.topic_partitions) == (
        stack.kafka_topic,
        stack.kafka_topic_partitions,
    )
    assert urlparse(redis.url).port == stack.redis_port
    assert urlparse(influx.url).port == stack.influxdb_port
    assert (influx.org, influx.bucket) == (stack.influxdb_org, stack.influxdb_bucket)
    assert influx.token.get_secret_value() == stack.influxdb_token.get_secret_value()
