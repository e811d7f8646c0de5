"""The shape of a Kafka cluster of the stack: nodes, ports, voters, replication, clients."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from finplat.core.connections import KafkaSettings
from finplat.stack.errors import StackError
from finplat.stack.kafka import (
    TopicShape,
    bootstrap_servers,
    kafka_nodes,
    sasl_ssl_client_settings,
    topic_shape,
)
from finplat.stack.process import StackDirs
from finplat.stack.settings import StackSettings
from finplat.stack.stack import Stack


def _properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    return dict(pairs)


@pytest.mark.parametrize(
    ("brokers", "shape"),
    [
        (1, TopicShape(partitions=3, replication_factor=1, min_insync_replicas=1)),
        (2, TopicShape(partitions=6, replication_factor=2, min_insync_replicas=1)),
        (3, TopicShape(partitions=6, replication_factor=3, min_insync_replicas=2)),
        (5, TopicShape(partitions=6, replication_factor=3, min_insync_replicas=2)),
    ],
)
def test_topics_get_three_replicas_two_in_sync_where_there_are_nodes_for_it(
    brokers: int, shape: TopicShape
) -> None:
    assert topic_shape(StackSettings(kafka_brokers=brokers)) == shape


def test_a_configured_partition_count_wins_over_the_default() -> None:
    assert topic_shape(StackSettings(kafka_brokers=3, kafka_topic_partitions=12)).partitions == 12


def test_the_nodes_of_a_cluster_have_names_ids_and_ports_of_their_own() -> None:
    stack = StackSettings(kafka_brokers=3, kafka_sasl_ssl_port=9094)
    nodes = kafka_nodes(stack, StackDirs(Path("/srv/stack")))

    assert [node.name for node in nodes] == ["kafka-1", "kafka-2", "kafka-3"]
    assert [node.node_id for node in nodes] == [1, 2, 3]
    assert [[port.number for port in node.ports()] for node in nodes] == [
        [9092, 9093, 9094],
        [9192, 9193, 9194],
        [9292, 9293, 9294],
    ]
    assert bootstrap_servers(stack) == "127.0.0.1:9092,127.0.0.1:9192,127.0.0.1:9292"


def test_the_single_node_keeps_its_name_and_ports() -> None:
    (node,) = kafka_nodes(StackSettings(), StackDirs(Path("/srv/stack")))

    assert (node.name, node.node_id, node.bootstrap) == ("kafka", 1, "127.0.0.1:9092")


def test_every_node_votes_in_one_quorum_and_replicates_the_internal_topics(
    tmp_path: Path,
) -> None:
    stack = StackSettings(kafka_brokers=3, kafka_sasl_ssl_port=0, kafka_port=29092)
    node = kafka_nodes(stack, StackDirs(tmp_path))[1]

    properties = _properties(node._server_properties(tmp_path / "data", None))

    assert properties["node.id"] == "2"
    assert properties["controller.quorum.voters"] == (
        "1@127.0.0.1:9093,2@127.0.0.1:9193,3@127.0.0.1:9293"
    )
    assert properties["listeners"] == "PLAINTEXT://127.0.0.1:29192,CONTROLLER://127.0.0.1:9193"
    assert properties["advertised.listeners"] == "PLAINTEXT://127.0.0.1:29192"
    assert {
        key: properties[key]
        for key in (
            "offsets.topic.replication.factor",
            "transaction.state.log.replication.factor",
            "transaction.state.log.min.isr",
            "default.replication.factor",
            "min.insync.replicas",
        )
    } == {
        "offsets.topic.replication.factor": "3",
        "transaction.state.log.replication.factor": "3",
        "transaction.state.log.min.isr": "2",
        "default.replication.factor": "3",
        "min.insync.replicas": "2",
    }


def test_every_node_of_a_cluster_is_formatted_with_one_cluster_id(tmp_path: Path) -> None:
    nodes = kafka_nodes(StackSettings(kafka_brokers=3), StackDirs(tmp_path))

    ids = {node._cluster_id() for node in nodes}

    assert len(ids) == 1
    assert (tmp_path / "kafka-cluster.id").read_text() == ids.pop()


def test_sasl_ssl_clients_of_a_cluster_dial_every_node_with_one_ca() -> None:
    stack = StackSettings(data_dir=Path("/srv/stack"), kafka_brokers=3, kafka_sasl_ssl_port=9094)

    secured = sasl_ssl_client_settings(stack, KafkaSettings())

    assert secured.bootstrap_servers == "127.0.0.1:9094,127.0.0.1:9194,127.0.0.1:9294"
    assert secured.ssl_ca_location == Path("/srv/stack/kafka/tls/ca.pem")


def test_a_stack_of_only_kafka_has_every_node_and_nothing_else() -> None:
    servers = Stack(StackSettings(kafka_brokers=3), only={"kafka"})

    assert [component.name for component in servers.components] == [
        "kafka-1",
        "kafka-2",
        "kafka-3",
    ]


def test_unknown_servers_and_node_counts_are_refused() -> None:
    with pytest.raises(StackError, match="no such servers"):
        Stack(StackSettings(), only={"zookeeper"})
    with pytest.raises(ValidationError, match="kafka_brokers"):
        StackSettings(kafka_brokers=0)
