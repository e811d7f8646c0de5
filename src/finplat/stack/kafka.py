"""Kafka 4.x in KRaft mode, classpath resolved by Maven: one node, or a cluster of several.

Each node is a broker and a controller in one JVM. A single node is the default; with
`kafka_brokers` of 3 or more the nodes form one cluster (every node a voter of the controller
quorum) and topics get Kafka's production shape: 3 replicas, 2 of them in sync for a write.

Clients have two doors: PLAINTEXT, the default of every service, and SASL_SSL (SCRAM-SHA-512
over TLS with a certificate of the stack's own CA). The SCRAM user is set through the admin API
at every `up` rather than at storage format time, so a data dir formatted before the listener
existed gets it too. Broker and controller keep talking PLAINTEXT among themselves.
"""

import base64
import importlib.resources
import logging
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException

# The Scram* names are public, but confluent_kafka.admin does not re-export them for mypy.
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from confluent_kafka.cimpl import NewPartitions, NewTopic

from finplat.core.connections import KafkaSettings
from finplat.stack.component import Component, Port
from finplat.stack.errors import StackError
from finplat.stack.process import Launch, StackDirs, tcp_open
from finplat.stack.settings import StackSettings
from finplat.stack.tls import ServerTls, ensure_server_tls, server_tls_files
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
_SCRAM_MECHANISM = "SCRAM-SHA-512"
# Kafka's minimum for SCRAM-SHA-512, and what its own kafka-configs tool uses.
_SCRAM_ITERATIONS = 4096
_SASL_SSL = "listener.name.sasl_ssl."
# Kafka's recommended production shape, where there are enough nodes for it: three copies of
# every partition, a write acknowledged once two hold it, so one node can be lost at any time.
_CLUSTER_REPLICAS = 3
_CLUSTER_PARTITIONS = 6
_SINGLE_PARTITIONS = 3
_CLUSTER_ID_FILE = "kafka-cluster.id"
_BROKERS_POLL_S = 0.5
# The nodes of a cluster are launched from threads of one `up` (which holds the data dir's lock
# against other processes) and share the cluster id and the listeners' certificates.
_SHARED_FILES = threading.Lock()


@dataclass(frozen=True)
class TopicShape:
    """How the platform's topic (and Kafka's internal ones) are laid out over the nodes."""

    partitions: int
    replication_factor: int
    min_insync_replicas: int


def topic_shape(settings: StackSettings) -> TopicShape:
    """3 replicas and 2 in sync on a cluster of 3 or more; as many as there are nodes below."""
    replicas = min(_CLUSTER_REPLICAS, settings.kafka_brokers)
    default_partitions = _SINGLE_PARTITIONS if settings.kafka_brokers == 1 else _CLUSTER_PARTITIONS
    return TopicShape(
        partitions=settings.kafka_topic_partitions or default_partitions,
        replication_factor=replicas,
        # With 2 replicas, requiring both would stop every write while either node is down.
        min_insync_replicas=max(1, replicas - 1),
    )


def kafka_nodes(settings: StackSettings, dirs: StackDirs) -> "list[Kafka]":
    """Every Kafka node `settings` describes, the first one first."""
    return [Kafka(settings, dirs, index) for index in range(settings.kafka_brokers)]


def bootstrap_servers(settings: StackSettings) -> str:
    """Every node's PLAINTEXT address, for clients that must survive the loss of any one."""
    dirs = StackDirs(settings.data_dir)
    return ",".join(node.bootstrap for node in kafka_nodes(settings, dirs))


def _cluster_id() -> str:
    """A random cluster id as Kafka prints it: URL-safe base64 of 16 bytes, no padding."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # Kafka's own generator avoids a leading '-' so the id never reads as a CLI option.
        if not text.startswith("-"):
            return text


class Kafka(Component):
    """One KRaft node on loopback; the first node also creates the platform's topic."""

    name = "kafka"

    def __init__(self, settings: StackSettings, dirs: StackDirs, index: int = 0) -> None:
        super().__init__(settings, dirs)
        if not 0 <= index < settings.kafka_brokers:
            raise ValueError(f"node index {index} outside 0..{settings.kafka_brokers - 1}")
        self.index = index
        if settings.kafka_brokers > 1:
            # Names of their own, so a cluster never reuses the single node's data dir.
            self.name = f"kafka-{index + 1}"

    def _port(self, base: int, index: int | None = None) -> int:
        step = self.settings.kafka_node_port_step
        return base + (self.index if index is None else index) * step

    @property
    def node_id(self) -> int:
        """This node's id in the cluster."""
        return self.settings.kafka_node_id + self.index

    @property
    def broker_port(self) -> int:
        """This node's PLAINTEXT port."""
        return self._port(self.settings.kafka_port)

    @property
    def controller_port(self) -> int:
        """This node's controller port."""
        return self._port(self.settings.kafka_controller_port)

    @property
    def sasl_ssl_port(self) -> int:
        """This node's SASL_SSL port; 0 when the listener is off."""
        base = self.settings.kafka_sasl_ssl_port
        return self._port(base) if base else 0

    @property
    def lib_dir(self) -> Path:
        """Cached runtime classpath of this Kafka version."""
        return self.settings.cache_dir / "kafka" / self.settings.kafka_version / "lib"

    @property
    def bootstrap(self) -> str:
        """This node's PLAINTEXT address."""
        return f"{self.settings.host}:{self.broker_port}"

    @property
    def sasl_ssl_bootstrap(self) -> str:
        """This node's SASL_SSL address (when the listener is on)."""
        return f"{self.settings.host}:{self.sasl_ssl_port}"

    @property
    def tls_files(self) -> ServerTls:
        """The SASL_SSL listeners' CA, certificate and key (one for every node of the stack)."""
        return server_tls_files(self.dirs.root / "kafka" / "tls")

    def ports(self) -> list[Port]:
        ports = [
            Port(self.broker_port, "Kafka broker", "FINPLAT_STACK_KAFKA_PORT"),
            Port(self.controller_port, "Kafka controller", "FINPLAT_STACK_KAFKA_CONTROLLER_PORT"),
        ]
        if self.sasl_ssl_port:
            ports.append(
                Port(
                    self.sasl_ssl_port,
                    "Kafka broker (SASL_SSL)",
                    "FINPLAT_STACK_KAFKA_SASL_SSL_PORT",
                )
            )
        return ports

    def address(self) -> str:
        shape = topic_shape(self.settings)
        topic = f"topic {self.settings.kafka_topic}, {shape.partitions} partitions"
        plaintext = f"{self.bootstrap} ({topic})"
        if self.settings.kafka_brokers > 1:
            # The topic is the cluster's: shown once, on the first node.
            shown = (
                f"; {topic}, {shape.replication_factor} replicas, "
                f"min.insync.replicas {shape.min_insync_replicas}"
            )
            plaintext = f"{self.bootstrap} (node {self.node_id}{shown if self.index == 0 else ''})"
        if not self.sasl_ssl_port:
            return plaintext
        return (
            f"{plaintext}; SASL_SSL {self.sasl_ssl_bootstrap} ({_SCRAM_MECHANISM} user "
            f"{self.settings.kafka_scram_username}, CA {self.tls_files.ca_certificate})"
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
        tls = None
        if self.sasl_ssl_port:
            with _SHARED_FILES:
                tls = ensure_server_tls(self.tls_files.ca_certificate.parent, self._tls_hosts())
        # It holds the listener's private key: readable by its owner only, from the first byte.
        config.touch(mode=0o600)
        config.chmod(0o600)
        config.write_text(self._server_properties(data, tls))
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

    def _tls_hosts(self) -> list[str]:
        return list(dict.fromkeys([self.settings.host, "127.0.0.1", "localhost"]))

    def _server_properties(self, data: Path, tls: ServerTls | None) -> str:
        s = self.settings
        shape = topic_shape(s)
        broker = self.bootstrap
        controller = f"{s.host}:{self.controller_port}"
        voters = ",".join(
            f"{s.kafka_node_id + index}@{s.host}:{self._port(s.kafka_controller_port, index)}"
            for index in range(s.kafka_brokers)
        )
        listeners = {"PLAINTEXT": broker, "CONTROLLER": controller}
        advertised = {"PLAINTEXT": broker}
        protocols = {"CONTROLLER": "PLAINTEXT", "PLAINTEXT": "PLAINTEXT"}
        if tls is not None:
            listeners["SASL_SSL"] = advertised["SASL_SSL"] = self.sasl_ssl_bootstrap
            protocols["SASL_SSL"] = "SASL_SSL"
        lines = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            # A static voter set (rather than a dynamic quorum formatted with --standalone)
            # stores no controller address in the log, so moving the port needs no reformat.
            "controller.quorum.voters": voters,
            "listeners": _joined(listeners, "://"),
            "advertised.listeners": _joined(advertised, "://"),
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": _joined(protocols, ":"),
            "log.dirs": str(data),
            # Kafka's internal topics (group offsets, transactions) as safe as the platform's.
            "offsets.topic.replication.factor": str(shape.replication_factor),
            "transaction.state.log.replication.factor": str(shape.replication_factor),
            "transaction.state.log.min.isr": str(shape.min_insync_replicas),
            "share.coordinator.state.topic.replication.factor": str(shape.replication_factor),
            "share.coordinator.state.topic.min.isr": str(shape.min_insync_replicas),
            "default.replication.factor": str(shape.replication_factor),
            "min.insync.replicas": str(shape.min_insync_replicas),
            # Members of a development group start together or not at all; waiting for more
            # of them only delays the first consumer.
            "group.initial.rebalance.delay.ms": "0",
            "num.partitions": "1",
            **(_sasl_ssl_properties(tls) if tls is not None else {}),
        }
        body = "\n".join(f"{key}={value}" for key, value in lines.items())
        return f"# Written by `finplat stack up` at every start; change settings instead.\n{body}\n"

    def _cluster_id(self) -> str:
        """A new id for a single node; for a cluster, the one id every node is formatted with."""
        if self.settings.kafka_brokers == 1:
            return _cluster_id()
        path = self.dirs.root / _CLUSTER_ID_FILE
        with _SHARED_FILES:
            if not path.exists():
                path.write_text(_cluster_id())
            return path.read_text().strip()

    def _format(self, jvm: list[str], config: Path) -> None:
        cluster_id = self._cluster_id()
        argv = [*jvm, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config)]
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
        # This node's own PLAINTEXT listener, whatever FINPLAT_KAFKA_* points the clients at:
        # model_construct reads no environment.
        plaintext = KafkaSettings.model_construct(bootstrap_servers=self.bootstrap)
        return AdminClient(
            {
                **plaintext.client_config(),
                "socket.timeout.ms": int(self.settings.probe_timeout_s * 1000),
            },
            # librdkafka otherwise prints connection errors straight to stderr.
            logger=logging.getLogger(f"{__name__}.librdkafka"),
        )

    def probe(self) -> None:
        # A plain TCP check first: while the port is closed, an admin client would only retry
        # in the background and log a connection error per attempt.
        if not tcp_open(self.settings.host, self.broker_port, self.settings.probe_timeout_s):
            raise StackError(f"nothing listens on {self.bootstrap}")
        try:
            metadata = self._admin().list_topics(timeout=self.settings.probe_timeout_s)
        except KafkaException as exc:
            raise StackError(f"no metadata from {self.bootstrap}: {exc}") from exc
        if not metadata.brokers:
            raise StackError(f"{self.bootstrap} reports no brokers yet")

    def configure(self, report: Report) -> None:
        if self.index != 0:
            return  # topics and users belong to the cluster; the first node sets them once
        admin = self._admin()
        self._wait_for_brokers(admin, report)
        self._ensure_topic(admin, report)
        if self.sasl_ssl_port:
            self._ensure_scram_user(admin, report)

    def _wait_for_brokers(self, admin: AdminClient, report: Report) -> None:
        """Until every node has joined: a topic with 3 replicas needs 3 brokers to exist."""
        wanted = self.settings.kafka_brokers
        deadline = time.monotonic() + self.settings.start_timeout_s
        while True:
            try:
                joined = len(admin.list_topics(timeout=self.settings.probe_timeout_s).brokers)
            except KafkaException as exc:
                raise StackError(f"no metadata from {self.bootstrap}: {exc}") from exc
            if joined >= wanted:
                return
            if time.monotonic() > deadline:
                raise StackError(
                    f"only {joined} of {wanted} Kafka brokers joined within "
                    f"{self.settings.start_timeout_s:.0f} s"
                )
            if joined and wanted > 1:
                report(f"{joined} of {wanted} brokers have joined")
            time.sleep(_BROKERS_POLL_S)

    def _ensure_topic(self, admin: AdminClient, report: Report) -> None:
        topic = self.settings.kafka_topic
        shape = topic_shape(self.settings)
        wanted = shape.partitions
        timeout_s = self.settings.start_timeout_s
        try:
            # All topics, not just this one: asking for one topic by name may auto-create it
            # with the broker's default partition count.
            existing = admin.list_topics(timeout=timeout_s).topics.get(topic)
        except KafkaException as exc:
            raise StackError(f"listing Kafka topic {topic}: {exc}") from exc
        if existing is not None and existing.error is None:
            replicas = min(len(p.replicas) for p in existing.partitions.values())
            if replicas < shape.replication_factor:
                logger.warning(
                    "topic has fewer replicas than the cluster would give it; reassigning "
                    "partitions is an operator's decision (kafka-reassign-partitions)",
                    extra={"topic": topic, "replicas": replicas},
                )
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
        report(
            f"creating topic {topic} with {wanted} partitions, {shape.replication_factor} replicas"
        )
        new = NewTopic(
            topic,
            num_partitions=wanted,
            replication_factor=shape.replication_factor,
            # On the topic as well as the brokers' default: it travels with the topic.
            config={"min.insync.replicas": str(shape.min_insync_replicas)},
        )
        futures = admin.create_topics([new], operation_timeout=timeout_s)
        self._wait(futures, topic)

    def _ensure_scram_user(self, admin: AdminClient, report: Report) -> None:
        s = self.settings
        if not tcp_open(s.host, self.sasl_ssl_port, s.probe_timeout_s):
            # `up` found this broker running, started before the listener was configured;
            # stopping a running broker is for `down`, so say so and leave it be.
            report(
                f"no SASL_SSL listener on {self.sasl_ssl_bootstrap}: this broker was started "
                "without it; `finplat stack down` and `up` add it"
            )
            return
        user = s.kafka_scram_username
        upsertion = UserScramCredentialUpsertion(
            user,
            ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, _SCRAM_ITERATIONS),
            s.kafka_scram_password.get_secret_value().encode(),
        )
        futures = admin.alter_user_scram_credentials([upsertion], request_timeout=s.start_timeout_s)
        try:
            futures[user].result()
        except KafkaException as exc:
            raise StackError(f"cannot set the {_SCRAM_MECHANISM} user {user}: {exc}") from exc
        report(f"{_SCRAM_MECHANISM} user {user} set for SASL_SSL on {self.sasl_ssl_bootstrap}")

    def _wait(self, futures: Mapping[str, "Future[None]"], topic: str) -> None:
        try:
            futures[topic].result()
        except KafkaException as exc:
            error = exc.args[0]
            if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                return
            raise StackError(f"Kafka topic {topic}: {exc}") from exc


def _joined(pairs: Mapping[str, str], separator: str) -> str:
    return ",".join(f"{name}{separator}{value}" for name, value in pairs.items())


def _sasl_ssl_properties(tls: ServerTls) -> dict[str, str]:
    # The key store as PEM values rather than a file: Kafka reads a PEM key *file* only when
    # the key is encrypted, and decrypts only with what its JVM supports (Java 17 cannot
    # decrypt the PBES2 keys of today's tools); an unencrypted key given as a value is read
    # by every JVM Kafka runs on. The truststore stays unset: clients show no certificate.
    return {
        f"{_SASL_SSL}sasl.enabled.mechanisms": _SCRAM_MECHANISM,
        # Credentials are looked up in the cluster metadata; the login module takes none here.
        f"{_SASL_SSL}{_SCRAM_MECHANISM.lower()}.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ),
        f"{_SASL_SSL}ssl.keystore.type": "PEM",
        f"{_SASL_SSL}ssl.keystore.certificate.chain": _pem_value(tls.certificate),
        f"{_SASL_SSL}ssl.keystore.key": _pem_value(tls.private_key),
    }


def _pem_value(path: Path) -> str:
    # A properties value is one line; `\n` is read back as a newline, which Kafka's PEM
    # parser needs between the armour lines.
    return path.read_text().strip().replace("\n", "\\n")


def sasl_ssl_client_settings(stack: StackSettings, kafka: KafkaSettings) -> KafkaSettings:
    """`kafka` dialing the stack's SASL_SSL listener as its SCRAM user, trusting its CA."""
    if not stack.kafka_sasl_ssl_port:
        raise StackError("the stack has no SASL_SSL listener (FINPLAT_STACK_KAFKA_SASL_SSL_PORT=0)")
    nodes = kafka_nodes(stack, StackDirs(stack.data_dir))
    return KafkaSettings.model_validate(
        {
            **kafka.model_dump(),
            "bootstrap_servers": ",".join(node.sasl_ssl_bootstrap for node in nodes),
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": _SCRAM_MECHANISM,
            "sasl_username": stack.kafka_scram_username,
            "sasl_password": stack.kafka_scram_password,
            "ssl_ca_location": nodes[0].tls_files.ca_certificate,
        }
    )
