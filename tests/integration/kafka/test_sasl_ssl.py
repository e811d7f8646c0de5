"""The stack's SASL_SSL listener: PriceUpdates from the price service's producer to the backtest's
consumer through it; a wrong password and a plaintext client get nothing.

Its address, the SCRAM user and the CA come from the stack's settings (FINPLAT_STACK_*), so the
tests run against whichever stack the session uses; the registry stays the one of
FINPLAT_KAFKA_SCHEMA_REGISTRY_URL.
"""

import logging
import uuid
from collections.abc import Iterator

import pytest

from finance.market.v1 import market_pb2
from finplat.core.connections import KafkaSettings
from finplat.kafka.admin import delete_topic, ensure_topic
from finplat.kafka.consumer import PriceUpdateConsumer
from finplat.kafka.errors import KafkaAdapterError
from finplat.kafka.producer import PriceUpdateProducer
from finplat.kafka.serde import PriceUpdateDeserializer, PriceUpdateSerializer, registry_client
from finplat.stack.kafka import sasl_ssl_client_settings
from finplat.stack.settings import StackSettings
from tests.support import eventually

pytestmark = pytest.mark.integration

PARTITIONS = 3
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


@pytest.fixture
def sasl_settings(kafka_settings: KafkaSettings) -> Iterator[KafkaSettings]:
    """The stack's SASL_SSL listener as its SCRAM user, on a topic of this test's own."""
    secured = sasl_ssl_client_settings(StackSettings(), kafka_settings)
    topic = f"test-sasl-ssl-{uuid.uuid4().hex}"
    # The admin client goes through the same door as the producer and the consumer.
    ensure_topic(secured, topic, PARTITIONS)
    yield secured.model_copy(update={"topic": topic})
    delete_topic(secured, topic)


def _update(index: int) -> market_pb2.PriceUpdate:
    return market_pb2.PriceUpdate(
        symbol=SYMBOLS[index % len(SYMBOLS)],
        price=f"{60000 + index}.50000000",
        timestamp=1_700_000_000_000 + index,
        volume="0.25000000",
        service="test-sasl-ssl",
        kind=market_pb2.EVENT_KIND_TRADE,
        event_id=f"sasl-{index}",
        exchange="binance",
    )


def _publish(settings: KafkaSettings, updates: list[market_pb2.PriceUpdate]) -> None:
    with registry_client(settings) as registry:
        producer = PriceUpdateProducer(settings, PriceUpdateSerializer(registry, settings.topic))
        for update in updates:
            producer.send(update)
        assert producer.flush(30) == 0
    assert (producer.delivered, producer.failed) == (len(updates), 0)


def _with(settings: KafkaSettings, **changes: object) -> KafkaSettings:
    # Validated again, unlike model_copy: the changed settings must be a legal combination.
    return KafkaSettings.model_validate({**settings.model_dump(), **changes})


def test_price_updates_cross_the_sasl_ssl_listener_from_producer_to_consumer(
    sasl_settings: KafkaSettings,
) -> None:
    sent = [_update(index) for index in range(300)]

    _publish(sasl_settings, sent)
    with registry_client(sasl_settings) as registry:
        decode = PriceUpdateDeserializer(registry)
        consumer = PriceUpdateConsumer(sasl_settings, f"test-sasl-ssl-{uuid.uuid4().hex}")
        consumer.subscribe()  # a new group: from the beginning, as the backtest's first start
        received: list[market_pb2.PriceUpdate] = []
        try:

            def all_received() -> bool | None:
                received.extend(decode(r.value) for r in consumer.poll(500, 0.5))
                return True if len(received) >= len(sent) else None

            eventually(all_received, timeout_s=30)
        finally:
            consumer.close()

    assert sorted(received, key=lambda update: int(update.event_id.removeprefix("sasl-"))) == sent


def test_a_wrong_password_is_refused_with_an_authentication_error(
    sasl_settings: KafkaSettings, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = _with(sasl_settings, sasl_password="not-the-password")

    with registry_client(wrong) as registry, caplog.at_level(logging.WARNING):
        producer = PriceUpdateProducer(
            wrong,
            PriceUpdateSerializer(registry, wrong.topic),
            {"message.timeout.ms": 3000},
        )
        producer.send(_update(0))

        def refusal() -> str | None:
            producer.poll(0.1)
            reported = [
                r.getMessage()
                for r in caplog.records
                if getattr(r, "code", None) == "_AUTHENTICATION"
            ]
            return reported[0] if reported else None

        reason = eventually(refusal, timeout_s=10)
        # What is queued expires instead of being delivered.
        assert producer.flush(10) == 0

    assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in reason
    assert (producer.delivered, producer.failed) == (0, 1)


def test_a_plaintext_client_on_the_sasl_ssl_port_gets_nothing(
    sasl_settings: KafkaSettings,
) -> None:
    _publish(sasl_settings, [_update(index) for index in range(5)])
    plaintext = _with(
        sasl_settings,
        security_protocol="PLAINTEXT",
        sasl_username=None,
        sasl_password=None,
        ssl_ca_location=None,
    )
    consumer = PriceUpdateConsumer(plaintext, f"test-plaintext-{uuid.uuid4().hex}")
    try:
        consumer.assign(dict.fromkeys(range(PARTITIONS), 0))
        records = [record for _ in range(4) for record in consumer.poll(100, 0.5)]
        with pytest.raises(KafkaAdapterError, match="cannot read offsets"):
            consumer.topic_end_offsets(timeout_s=3)
    finally:
        consumer.close()

    assert records == []
