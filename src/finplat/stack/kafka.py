"""Kafka 4.x as one KRaft node (broker and controller in one JVM), classpath resolved by Maven."""

import base64
import importlib.resources
import logging
import shutil
import subprocess
import uuid
from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewPartitions, NewTopic

from finplat.stack.component import Component, Port
from finplat.stack.errors import StackError
from finplat.stack.process import Launch, tcp_open
from finplat.stack.tools import Report, find_java, missing_java, missing_tool, run_maven

logger = logging.getLogger(__name__)

_MIN_JAVA = 17
_RESOURCES = importlib.resources.files("finplat.stack") / "resources" / "kafka"
# Kafka's own defaults from kafka-run-class.sh: G1 with short pauses suits a broker's many
# small, short-lived allocations; OOM should end the process, not leave a zombie broker.
_GC_FLAGS = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
_MIN_HEAP_MB = 256


def _cluster_id() -> str:
    """A random cluster id as Kafka prints it: URL-safe base64 of 16 bytes, no padding."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # Kafka's own generator avoids a leading '-' so the id never reads as a CLI option.
        if not text.startswith("-"):
            return text


class Kafka(Component):
    """Single-node Kafka in KRaft mode on loopback, with the platform's topic."""

    name = "kafka"

    @property
    def lib_dir(self) -> Path:
        """Cached runtime classpath of this Kafka version."""
        return self.settings.cache_dir / "kafka" / self.settings.kafka_version / "lib"

    @property
    def bootstrap(self) -> str:
        """Bootstrap address for clients."""
        return f"{self.settings.host}:{self.settings.kafka_port}"

    def ports(self) -> list[Port]:
        return [
            Port(self.settings.kafka_port, "Kafka broker", "FINPLAT_STACK_KAFKA_PORT"),
            Port(
                self.settings.kafka_controller_port,
                "Kafka controller",
                "FINPLAT_STACK_KAFKA_CONTROLLER_PORT",
            ),
        ]

    def address(self) -> str:
        return (
            f"{self.bootstrap} (topic {self.settings.kafka_topic}, "
            f"{self.settings.kafka_topic_partitions} partitions)"
        )

    def prerequisites(self) -> list[str]:
        problems = [
            missing_java(
                _MIN_JAVA,
                self.settings.kafka_java_home,
                f"Kafka {self.settings.kafka_version}",
                "FINPLAT_STACK_KAFKA_JAVA_HOME",
            )
        ]
        if not self.lib_dir.is_dir():
            problems.append(
                missing_tool("mvn", f"to download Kafka {self.settings.kafka_version} once")
            )
        return [problem for problem in problems if problem]

    def install(self, report: Report) -> None:
        if self.lib_dir.is_dir():
            return
        version = self.settings.kafka_version
        report(f"resolving kafka_2.13:{version} and its runtime classpath with Maven (once)")
        partial = self.lib_dir.with_name("lib.partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.parent.mkdir(parents=True, exist_ok=True)
        with importlib.resources.as_file(_RESOURCES / "pom.xml") as pom:
            run_maven(
                [
                    "-f",
                    str(pom),
                    "dependency:copy-dependencies",
                    f"-Dkafka.version={version}",
                    f"-Dkafka.lib.dir={partial}",
                ],
                what=f"resolving Kafka {version} with Maven",
                report=report,
                cwd=partial.parent,
            )
        # The final name appears only once the classpath is complete.
        partial.rename(self.lib_dir)
        report(f"Kafka {version} cached in {self.lib_dir}")

    def launch(self, report: Report) -> Launch:
        java = find_java(_MIN_JAVA, self.settings.kafka_java_home)
        if java is None:
            raise StackError(f"no Java {_MIN_JAVA}+ for Kafka")
        home = self.dirs.component(self.name)
        data = home / "data"
        config = home / "server.properties"
        config.write_text(self._server_properties(data))
        log4j = home / "log4j2.xml"
        log4j.write_text((_RESOURCES / "log4j2.xml").read_text())
        jvm = [
            str(java.executable),
            f"-Xms{min(_MIN_HEAP_MB, self.settings.kafka_heap_mb)}m",
            f"-Xmx{self.settings.kafka_heap_mb}m",
            *_GC_FLAGS,
            f"-Dlog4j2.configurationFile={log4j}",
            f"-Dfinplat.kafka.log.file={self.dirs.log(self.name)}",
            "-cp",
            # Expanded by java itself, not by a shell.
            f"{self.lib_dir}/*",
        ]
        if not (data / "meta.properties").exists():
            report(f"formatting KRaft storage in {data}")
            self._format(jvm, config)
        return Launch(argv=[*jvm, "kafka.Kafka", str(config)], cwd=home)

    def _server_properties(self, data: Path) -> str:
        s = self.settings
        broker = f"{s.host}:{s.kafka_port}"
        controller = f"{s.host}:{s.kafka_controller_port}"
        lines = {
            "process.roles": "broker,controller",
            "node.id": str(s.kafka_node_id),
            # A static voter set (rather than a dynamic quorum formatted with --standalone)
            # stores no controller address in the log, so moving the port needs no reformat.
            "controller.quorum.voters": f"{s.kafka_node_id}@{controller}",
            "listeners": f"PLAINTEXT://{broker},CONTROLLER://{controller}",
            "advertised.listeners": f"PLAINTEXT://{broker}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(data),
            # One broker: every internal topic can only have one replica.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            # No other members will join, so waiting for them only delays the first consumer.
            "group.initial.rebalance.delay.ms": "0",
            "num.partitions": "1",
        }
        body = "\n".join(f"{key}={value}" for key, value in lines.items())
        return f"# Written by `finplat stack up` at every start; change settings instead.\n{body}\n"

    def _format(self, jvm: list[str], config: Path) -> None:
        argv = [*jvm, "kafka.tools.StorageTool", "format", "-t", _cluster_id(), "-c", str(config)]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        except subprocess.TimeoutExpired as exc:
            raise StackError("formatting Kafka storage did not finish within 120 s") from exc
        if done.returncode != 0:
            raise StackError(
                f"formatting Kafka storage failed (exit {done.returncode}):\n"
                f"{done.stdout}{done.stderr}"
            )
        logger.info("formatted kafka storage", extra={"output": done.stdout.strip()})

    def _admin(self) -> AdminClient:
        return AdminClient(
            {
                "bootstrap.servers": self.bootstrap,
                "socket.timeout.ms": int(self.settings.probe_timeout_s * 1000),
            },
            # librdkafka otherwise prints connection errors straight to stderr.
            logger=logging.getLogger(f"{__name__}.librdkafka"),
        )

    def probe(self) -> None:
        # A plain TCP check first: while the port is closed, an admin client would only retry
        # in the background and log a connection error per attempt.
        if not tcp_open(
            self.settings.host, self.settings.kafka_port, self.settings.probe_timeout_s
        ):
            raise StackError(f"nothing listens on {self.bootstrap}")
        try:
            metadata = self._admin().list_topics(timeout=self.settings.probe_timeout_s)
        except KafkaException as exc:
            raise StackError(f"no metadata from {self.bootstrap}: {exc}") from exc
        if not metadata.brokers:
            raise StackError(f"{self.bootstrap} reports no brokers yet")

    def configure(self, report: Report) -> None:
        topic = self.settings.kafka_topic
        wanted = self.settings.kafka_topic_partitions
        admin = self._admin()
        timeout_s = self.settings.start_timeout_s
        try:
            # All topics, not just this one: asking for one topic by name may auto-create it
            # with the broker's default partition count.
            existing = admin.list_topics(timeout=timeout_s).topics.get(topic)
        except KafkaException as exc:
            raise StackError(f"listing Kafka topic {topic}: {exc}") from exc
        if existing is not None and existing.error is None:
            count = len(existing.partitions)
            if count < wanted:
                report(f"growing topic {topic} from {count} to {wanted} partitions")
                self._wait(admin.create_partitions([NewPartitions(topic, wanted)]), topic)
            elif count > wanted:
                logger.warning(
                    "topic has more partitions than configured; Kafka cannot shrink it",
                    extra={"topic": topic, "partitions": count, "configured": wanted},
                )
            return
        report(f"creating topic {topic} with {wanted} partitions")
        futures = admin.create_topics(
            [NewTopic(topic, num_partitions=wanted, replication_factor=1)],
            operation_timeout=timeout_s,
        )
        self._wait(futures, topic)

    def _wait(self, futures: Mapping[str, "Future[None]"], topic: str) -> None:
        try:
            futures[topic].result()
        except KafkaException as exc:
            error = exc.args[0]
            if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                return
            raise StackError(f"Kafka topic {topic}: {exc}") from exc
