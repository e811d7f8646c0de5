"""KafkaSettings.client_config: the one librdkafka connection config, and the checks before it."""

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from finplat.core.connections import KafkaSettings

BROKERS = "broker-1:9094,broker-2:9094"


def test_plaintext_is_the_bootstrap_servers_and_the_protocol_alone() -> None:
    settings = KafkaSettings(bootstrap_servers=BROKERS, security_protocol="PLAINTEXT")

    assert settings.client_config() == {
        "bootstrap.servers": "broker-1:9094,broker-2:9094",
        "security.protocol": "PLAINTEXT",
    }


def test_sasl_ssl_carries_the_mechanism_the_credentials_and_the_ca() -> None:
    settings = KafkaSettings(
        bootstrap_servers=BROKERS,
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="finplat",
        sasl_password=SecretStr("s3cret"),
        ssl_ca_location=Path("/etc/kafka/ca.pem"),
    )

    assert settings.client_config() == {
        "bootstrap.servers": "broker-1:9094,broker-2:9094",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "finplat",
        "sasl.password": "s3cret",
        "ssl.ca.location": "/etc/kafka/ca.pem",
    }


def test_mutual_tls_carries_the_client_certificate_and_its_key() -> None:
    settings = KafkaSettings(
        bootstrap_servers=BROKERS,
        security_protocol="SSL",
        ssl_ca_location=Path("/tls/ca.pem"),
        ssl_certificate_location=Path("/tls/client.pem"),
        ssl_key_location=Path("/tls/client.key"),
        ssl_key_password=SecretStr("key-secret"),
    )

    assert settings.client_config() == {
        "bootstrap.servers": "broker-1:9094,broker-2:9094",
        "security.protocol": "SSL",
        "ssl.ca.location": "/tls/ca.pem",
        "ssl.certificate.location": "/tls/client.pem",
        "ssl.key.location": "/tls/client.key",
        "ssl.key.password": "key-secret",
    }


def test_the_secrets_stay_out_of_the_settings_repr() -> None:
    settings = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_username="finplat",
        sasl_password=SecretStr("s3cret"),
        schema_registry_basic_auth_user_info=SecretStr("registry:hunter2"),
    )

    text = repr(settings)

    assert "s3cret" not in text
    assert "hunter2" not in text


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        (
            {"security_protocol": "SASL_SSL", "sasl_username": "finplat"},
            "SASL_SSL needs sasl_username and sasl_password",
        ),
        (
            {"security_protocol": "PLAINTEXT", "sasl_username": "u", "sasl_password": "p"},
            "sasl_\\* settings need security_protocol SASL_PLAINTEXT or SASL_SSL",
        ),
        (
            {"security_protocol": "PLAINTEXT", "sasl_username": "u"},
            "sasl_\\* settings need security_protocol SASL_PLAINTEXT or SASL_SSL",
        ),
        (
            {"security_protocol": "SASL_PLAINTEXT", "sasl_username": "u", "sasl_password": "p",
             "ssl_ca_location": "/ca.pem"},
            "ssl_\\* settings need security_protocol SSL or SASL_SSL",
        ),
        (
            {"security_protocol": "SSL", "ssl_certificate_location": "/client.pem"},
            "both ssl_certificate_location and ssl_key_location",
        ),
        (
            {"security_protocol": "SSL", "ssl_key_password": "k"},
            "ssl_key_password needs ssl_key_location",
        ),
        ({"schema_registry_basic_auth_user_info": "no-colon"}, "must read user:password"),
    ],
)  # fmt: skip
def test_credentials_the_protocol_would_ignore_are_refused(
    fields: dict[str, str], complaint: str
) -> None:
    with pytest.raises(ValidationError, match=complaint):
        KafkaSettings.model_validate({"security_protocol": "PLAINTEXT", **fields})
