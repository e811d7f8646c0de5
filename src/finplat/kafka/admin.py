"""Topic administration: the few calls the platform and its tests need."""

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from finplat.core.connections import KafkaSettings
from finplat.kafka.errors import KafkaAdapterError


def ensure_topic(
    settings: KafkaSettings, name: str, partitions: int, timeout_s: float = 30
) -> bool:
    """Create `name` unless it exists; True when this call created it."""
    admin = AdminClient(settings.client_config())
    try:
        if name in admin.list_topics(timeout=timeout_s).topics:
            return False
        # No replication factor: the cluster's default.replication.factor (and its
        # min.insync.replicas) apply, 1 on a single node, 3 on the stack's cluster.
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions)], operation_timeout=timeout_s
        )
        futures[name].result(timeout=timeout_s)
    except KafkaException as exc:
        if exc.args and exc.args[0].name() == "TOPIC_ALREADY_EXISTS":
            return False
        raise KafkaAdapterError(f"cannot create topic {name}: {exc}") from exc
    return True


def delete_topic(settings: KafkaSettings, name: str, timeout_s: float = 30) -> None:
    """Delete `name` with its messages (the scratch topics of benchmarks)."""
    admin = AdminClient(settings.client_config())
    try:
        admin.delete_topics([name], operation_timeout=timeout_s)[name].result(timeout_s)
    except KafkaException as exc:
        raise KafkaAdapterError(f"cannot delete topic {name}: {exc}") from exc
