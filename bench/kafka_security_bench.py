"""Benchmark: PriceUpdate producer throughput through SASL_SSL beside PLAINTEXT, in one run.

Produces `--updates` PriceUpdates as the price service publishes them (Avro through the registry
with PriceUpdateSerializer, then PriceUpdateProducer: idempotent, acks=all, lz4) to a fresh
topic on the native stack's PLAINTEXT listener and on its SASL_SSL listener (SCRAM-SHA-512 over
TLS, the stack's own CA), `--rounds` times each, alternating so that drift of the machine hits
both alike. A round is timed from the first send to the last acknowledgement; the schema is
registered before it. A second pair of rounds hands the producer values encoded before the
clock starts, so that the cost of TLS is not hidden behind the Avro encoding. Prints the median
updates/s per listener and the ratio SASL_SSL/PLAINTEXT.

A benchmark reports, it does not assert. Run with the stack up (`finplat stack up`):

    .venv/bin/python bench/kafka_security_bench.py [--updates 100000] [--rounds 3]
"""

import argparse
import statistics
import time
import uuid
from collections.abc import Callable

from finance.market.v1 import market_pb2
from finplat.core.connections import KafkaSettings
from finplat.kafka.admin import delete_topic, ensure_topic
from finplat.kafka.errors import QueueFullError
from finplat.kafka.producer import PriceUpdateProducer
from finplat.kafka.serde import PriceUpdateSerializer, registry_client
from finplat.stack.kafka import sasl_ssl_client_settings
from finplat.stack.settings import StackSettings

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT")
PARTITIONS = 3
PLAINTEXT = "PLAINTEXT"
SASL_SSL = "SASL_SSL (SCRAM-SHA-512)"


def price_updates(count: int) -> list[market_pb2.PriceUpdate]:
    return [
        market_pb2.PriceUpdate(
            symbol=SYMBOLS[index % len(SYMBOLS)],
            price=f"{60000 + index % 1000}.{index % 100:02d}000000",
            timestamp=1_700_000_000_000 + index,
            volume="0.00100000",
            service="bench",
            kind=market_pb2.EVENT_KIND_TRADE,
            event_id=str(index),
            exchange="binance",
            receive_timestamp=1_700_000_000_005 + index,
        )
        for index in range(count)
    ]


Encode = Callable[[market_pb2.PriceUpdate], bytes]


def encoded_before(encode: Encode, updates: list[market_pb2.PriceUpdate]) -> Encode:
    """`encode`, with every value computed now: at send time it costs one dict lookup."""
    values = {update.event_id: encode(update) for update in updates}
    return lambda update: values[update.event_id]


def produce_round(
    listener: KafkaSettings, updates: list[market_pb2.PriceUpdate], *, pre_encoded: bool
) -> float:
    """Seconds from the first send to the last acknowledgement, on a topic of its own."""
    topic = f"bench-security-{uuid.uuid4().hex[:12]}"
    settings = listener.model_copy(update={"topic": topic})
    ensure_topic(settings, topic, PARTITIONS)
    try:
        with registry_client(settings) as registry:
            serializer = PriceUpdateSerializer(registry, topic)
            serializer(updates[0])  # registers the schema: one HTTP call, not what is measured
            encode = encoded_before(serializer, updates) if pre_encoded else serializer
            producer = PriceUpdateProducer(settings, encode)
            started = time.perf_counter()
            for update in updates:
                while True:
                    try:
                        producer.send(update)
                        break
                    except QueueFullError:
                        producer.poll(0.01)
            left = producer.flush(120)
            elapsed = time.perf_counter() - started
            subject = f"{topic}-value"  # the serializer's topic-name strategy
            registry.delete_subject(subject)
            registry.delete_subject(subject, permanent=True)
    finally:
        delete_topic(settings, topic)
    if left or producer.delivered != len(updates):
        raise SystemExit(f"{topic}: {producer.delivered} of {len(updates)} delivered")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    updates = price_updates(args.updates)
    plaintext = KafkaSettings()
    listeners = {
        PLAINTEXT: plaintext,
        SASL_SSL: sasl_ssl_client_settings(StackSettings(), plaintext),
    }
    modes = {"Avro encode + produce": False, "produce, pre-encoded": True}
    rounds: dict[tuple[str, str], list[float]] = {
        (mode, name): [] for mode in modes for name in listeners
    }
    for _ in range(args.rounds):
        for mode, pre_encoded in modes.items():
            for name, settings in listeners.items():
                seconds = produce_round(settings, updates, pre_encoded=pre_encoded)
                rounds[mode, name].append(seconds)
    print(f"producer throughput, {len(updates)} PriceUpdates, median of {args.rounds} rounds")
    print(f"{'path':<22} {'listener':<25} {'address':<16} {'median s':>8} {'updates/s':>10}")
    for mode in modes:
        rates = {}
        for name, settings in listeners.items():
            median_s = statistics.median(rounds[mode, name])
            rates[name] = len(updates) / median_s
            print(
                f"{mode:<22} {name:<25} {settings.bootstrap_servers:<16} "
                f"{median_s:>8.3f} {rates[name]:>10,.0f}"
            )
        ratio = rates[SASL_SSL] / rates[PLAINTEXT]
        print(f"{mode:<22} ratio SASL_SSL/PLAINTEXT: {ratio:.2f}")


if __name__ == "__main__":
    main()
