"""The native stack serves exactly where the services look for it."""

from pathlib import Path
from urllib.parse import urlparse

import pytest
from pydantic import SecretStr

from finplat.core.connections import InfluxSettings, KafkaSettings, RedisSettings
from finplat.stack.errors import StackError
from finplat.stack.kafka import Kafka, sasl_ssl_client_settings, topic_shape
from finplat.stack.process import StackDirs
from finplat.stack.settings import StackSettings


def test_stack_defaults_match_the_connection_defaults() -> None:
    stack = StackSettings()
    kafka, redis, influx = KafkaSettings(), RedisSettings(), InfluxSettings()

    assert kafka.bootstrap_servers == f"{stack.host}:{stack.kafka_port}"
    assert urlparse(kafka.schema_registry_url).port == stack.registry_port
    assert (kafka.topic, kafka.topic_partitions) == (
        stack.kafka_topic,
        topic_shape(stack).partitions,
    )
    assert urlparse(redis.url).port == stack.redis_port
    assert urlparse(influx.url).port == stack.influxdb_port
    assert (influx.org, influx.bucket) == (stack.influxdb_org, stack.influxdb_bucket)
    assert influx.token.get_secret_value() == stack.influxdb_token.get_secret_value()


def test_clients_of_the_sasl_ssl_listener_use_the_stacks_user_and_ca() -> None:
    stack = StackSettings(
        data_dir=Path("/srv/finplat-stack"),
        kafka_sasl_ssl_port=29094,
        kafka_scram_username="alice",
        kafka_scram_password=SecretStr("alice-secret"),
    )
    plaintext = KafkaSettings(bootstrap_servers="127.0.0.1:9092", security_protocol="PLAINTEXT")

    secured = sasl_ssl_client_settings(stack, plaintext)

    assert secured.client_config() == {
        "bootstrap.servers": "127.0.0.1:29094",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "alice",
        "sasl.password": "alice-secret",
        "ssl.ca.location": "/srv/finplat-stack/kafka/tls/ca.pem",
    }


def test_without_a_sasl_ssl_port_there_is_no_such_listener_to_dial() -> None:
    stack = StackSettings(kafka_sasl_ssl_port=0)
    kafka = Kafka(stack, StackDirs(stack.data_dir))

    with pytest.raises(StackError, match="no SASL_SSL listener"):
        sasl_ssl_client_settings(stack, KafkaSettings())
    assert "SASL_SSL" not in kafka.address()
    assert [port.number for port in kafka.ports()] == [
        stack.kafka_port,
        stack.kafka_controller_port,
    ]


def test_the_sasl_ssl_listener_has_a_port_of_its_own_and_shows_its_ca() -> None:
    stack = StackSettings(data_dir=Path("/srv/finplat-stack"), kafka_sasl_ssl_port=29094)
    kafka = Kafka(stack, StackDirs(stack.data_dir))

    assert [(port.number, port.setting) for port in kafka.ports()][-1] == (
        29094,
        "FINPLAT_STACK_KAFKA_SASL_SSL_PORT",
    )
    assert kafka.address().endswith(
        "; SASL_SSL 127.0.0.1:29094 (SCRAM-SHA-512 user finplat, "
        "CA /srv/finplat-stack/kafka/tls/ca.pem)"
    )
