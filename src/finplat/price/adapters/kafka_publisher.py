"""The Kafka sink: PriceUpdates onto `price-updates` as Avro, buffered like the other sinks.

The buffered sink in front gives Kafka the same guarantees as Redis and InfluxDB: while the
registry or the broker is away, updates wait (within the bound) and are sent in order once it
returns. Behind it, librdkafka's own queue holds what is in flight and retries by itself.
"""

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence

from finance.market.v1 import market_pb2
from finplat.contract.errors import ContractError
from finplat.kafka.errors import QueueFullError, RegistryUnavailableError
from finplat.kafka.producer import PriceUpdateProducer
from finplat.price.adapters.errors import Refusal, StoreUnavailableError

logger = logging.getLogger(__name__)


# Updates encoded between two yields to the event loop: Avro encoding runs on the loop, and a
# batch of thousands (after a pause) would otherwise hold StreamPrices back for tens of ms.
YIELD_EVERY = 32


class KafkaPublisher:
    """Adapts the producer to the batch-write interface of a buffered sink."""

    def __init__(self, producer: PriceUpdateProducer, poll_interval_s: float = 0.05) -> None:
        self.producer = producer
        self._poll_interval_s = poll_interval_s
        # Updates the contract refused (by Refusal value, as the InfluxDB store counts its own):
        # never published, read by the metrics as refused rather than written.
        self.refused: Counter[str] = Counter()
        # The serializer keeps the schema id once it has it: from then on encoding is CPU only.
        self._schema_known = False

    async def write(self, batch: Sequence[market_pb2.PriceUpdate]) -> None:
        """Queue a batch in librdkafka; stops, saying how far it got, when it cannot go on."""
        for index, update in enumerate(batch):
            if index and not index % YIELD_EVERY:
                await asyncio.sleep(0)
            try:
                if self._schema_known:
                    self.producer.send(update)
                else:
                    # Until the schema is registered, encoding calls the registry over HTTP,
                    # which may hang for its whole timeout: off the event loop, so prices,
                    # gRPC and the other sinks go on meanwhile.
                    await asyncio.to_thread(self.producer.send, update)
                    self._schema_known = True
            except ContractError as exc:
                self.refused[Refusal.INVALID] += 1
                logger.warning("not published: %s", exc, extra={"symbol": update.symbol})
            except (QueueFullError, RegistryUnavailableError) as exc:
                raise StoreUnavailableError(f"kafka: {exc}", written=index) from exc

    async def serve_deliveries(self) -> None:
        """Run delivery callbacks until cancelled (librdkafka calls them only from poll)."""
        while True:
            self.producer.poll(0)
            await asyncio.sleep(self._poll_interval_s)

    async def flush(self, timeout_s: float) -> int:
        """Wait, off the event loop, for what librdkafka still holds; returns what is left."""
        return await asyncio.to_thread(self.producer.flush, timeout_s)
