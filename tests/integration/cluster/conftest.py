"""A 3-node Kafka cluster of the stack's own (`kafka_brokers=3`), started once per session.

It has a data dir and ports of its own, beside the default stack, whose registry, Redis and
InfluxDB the tests keep using: only Kafka differs. These tests run in `make test-cluster`,
not in `make test`, so the single-node default's test time stays as it was.
"""

import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from finplat.core.connections import KafkaSettings
from finplat.stack.kafka import bootstrap_servers
from finplat.stack.process import StackDirs, running_pid, wait_gone
from finplat.stack.settings import StackSettings
from tests.paths import FINPLAT, REPO_ROOT

# Far from the default stack's 9092..9094 and the nodes' steps above them.
_FIRST_PORT = 29092


@dataclass
class Cluster:
    """The running cluster, and the faults a test injects into it."""

    environment: dict[str, str]
    """The FINPLAT_STACK_* variables that describe it to `finplat stack`."""
    kafka: KafkaSettings
    """Clients' settings: every node as a bootstrap server, the default stack's registry."""

    def stack(self, *arguments: str) -> None:
        """`finplat stack ARGUMENTS` on the cluster's data dir; fails the test if it fails."""
        done = subprocess.run(
            [str(FINPLAT), "stack", *arguments],
            cwd=REPO_ROOT,
            env={**os.environ, **self.environment},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"`finplat stack {' '.join(arguments)}` failed:\n{done.stderr}")

    def pid(self, node_id: int) -> int:
        """The process of one node (ids 1, 2, 3)."""
        dirs = StackDirs(Path(self.environment["FINPLAT_STACK_DATA_DIR"]))
        pid = running_pid(dirs, f"kafka-{node_id}")
        assert pid is not None, f"kafka-{node_id} is not running"
        return pid

    def kill(self, node_id: int) -> None:
        """SIGKILL one node: no shutdown, no flush, as a lost machine."""
        pid = self.pid(node_id)
        os.kill(pid, signal.SIGKILL)
        assert not wait_gone([pid], 10)

    def restart(self) -> None:
        """Start the nodes that are down again, and wait until all three have joined."""
        self.stack("up", "kafka")

    def busiest_leader(self, topic: str) -> int:
        """The node leading the partition of `topic` that holds the most messages."""
        metadata = AdminClient(self.kafka.client_config()).list_topics(topic, timeout=10)
        consumer = Consumer({**self.kafka.client_config(), "group.id": "watermarks"})
        try:
            sizes = {
                partition.id: consumer.get_watermark_offsets(
                    TopicPartition(topic, partition.id), timeout=10
                )[1]
                for partition in metadata.topics[topic].partitions.values()
            }
        finally:
            consumer.close()
        busiest = max(sizes, key=lambda partition: sizes[partition])
        leader: int = metadata.topics[topic].partitions[busiest].leader
        return leader


@pytest.fixture(scope="session")
def kafka_cluster(stack: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three KRaft nodes, each broker and controller, for the whole session."""
    environment = {
        "FINPLAT_STACK_DATA_DIR": str(tmp_path_factory.mktemp("kafka-cluster")),
        "FINPLAT_STACK_KAFKA_BROKERS": "3",
        "FINPLAT_STACK_KAFKA_PORT": str(_FIRST_PORT),
        "FINPLAT_STACK_KAFKA_CONTROLLER_PORT": str(_FIRST_PORT + 1),
        "FINPLAT_STACK_KAFKA_SASL_SSL_PORT": "0",
    }
    settings = StackSettings(
        data_dir=Path(environment["FINPLAT_STACK_DATA_DIR"]),
        kafka_brokers=3,
        kafka_port=_FIRST_PORT,
        kafka_controller_port=_FIRST_PORT + 1,
        kafka_sasl_ssl_port=0,
    )
    cluster = Cluster(environment, KafkaSettings(bootstrap_servers=bootstrap_servers(settings)))
    cluster.stack("up", "kafka")
    try:
        yield cluster
    finally:
        cluster.stack("down")
