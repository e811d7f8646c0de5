"""Apicurio Registry 3 as the Schema Registry: in-memory storage, Confluent-compatible API.

Its `all` assembly (a Quarkus fast-jar) comes from Maven Central. Apicurio checks nothing on
registration until a compatibility rule exists, and a per-subject rule cannot be set before the
subject exists, so `up` sets a global rule.
"""

import logging
import shutil
import tarfile
from pathlib import Path

import httpx

from finplat.stack.component import Component, Port
from finplat.stack.errors import StackError
from finplat.stack.process import Launch
from finplat.stack.tools import Report, find_java, missing_java, missing_tool, run_maven

logger = logging.getLogger(__name__)

# Apicurio 3.3 is compiled for Java 21 (class file 65).
_MIN_JAVA = 21
_ARTIFACT = "io.apicurio:apicurio-registry-app:{version}:tar.gz:all"
_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
_RUNNER = "quarkus-run.jar"
CCOMPAT_PATH = "/apis/ccompat/v7"
_RULES_PATH = "/apis/registry/v3/admin/rules"
_HTTP_CONFLICT = 409


class Registry(Component):
    """Apicurio Registry on loopback with a global compatibility rule."""

    name = "registry"

    @property
    def install_dir(self) -> Path:
        """Unpacked assembly of this Apicurio version."""
        return self.settings.cache_dir / "apicurio" / self.settings.registry_version

    @property
    def url(self) -> str:
        """Root of the registry's HTTP APIs."""
        return f"http://{self.settings.host}:{self.settings.registry_port}"

    @property
    def health_url(self) -> str:
        """Readiness endpoint on the Quarkus management interface."""
        return f"http://{self.settings.host}:{self.settings.registry_management_port}/health/ready"

    def ports(self) -> list[Port]:
        return [
            Port(self.settings.registry_port, "Schema Registry", "FINPLAT_STACK_REGISTRY_PORT"),
            Port(
                self.settings.registry_management_port,
                "Schema Registry management (health)",
                "FINPLAT_STACK_REGISTRY_MANAGEMENT_PORT",
            ),
        ]

    def address(self) -> str:
        return (
            f"{self.url}{CCOMPAT_PATH} (Apicurio {self.settings.registry_version}, "
            f"{self.settings.registry_compatibility}; health {self.health_url})"
        )

    def prerequisites(self) -> list[str]:
        problems = [
            missing_java(
                _MIN_JAVA,
                self.settings.registry_java_home,
                f"Apicurio Registry {self.settings.registry_version}",
                "FINPLAT_STACK_REGISTRY_JAVA_HOME",
            )
        ]
        if self._runner() is None:
            problems.append(
                missing_tool(
                    "mvn", f"to download Apicurio Registry {self.settings.registry_version} once"
                )
            )
        return [problem for problem in problems if problem]

    def _runner(self) -> Path | None:
        if not self.install_dir.is_dir():
            return None
        return next(self.install_dir.rglob(_RUNNER), None)

    def install(self, report: Report) -> None:
        if self._runner() is not None:
            return
        version = self.settings.registry_version
        report(f"downloading Apicurio Registry {version} (about 160 MB, once)")
        partial = self.install_dir.with_name(f"{version}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        run_maven(
            [
                f"{_DEPENDENCY_PLUGIN}:copy",
                f"-Dartifact={_ARTIFACT.format(version=version)}",
                f"-DoutputDirectory={partial}",
            ],
            what=f"downloading Apicurio Registry {version} with Maven",
            report=report,
            cwd=partial,
        )
        archives = list(partial.glob("*.tar.gz"))
        if len(archives) != 1:
            raise StackError(f"expected one Apicurio archive in {partial}, found {archives}")
        report(f"unpacking {archives[0].name}")
        with tarfile.open(archives[0]) as archive:
            archive.extractall(partial, filter="data")
        archives[0].unlink()
        if next(partial.rglob(_RUNNER), None) is None:
            raise StackError(f"no {_RUNNER} in the Apicurio {version} assembly")
        partial.rename(self.install_dir)
        report(f"Apicurio Registry {version} cached in {self.install_dir}")

    def launch(self, report: Report) -> Launch:
        java = find_java(_MIN_JAVA, self.settings.registry_java_home)
        runner = self._runner()
        if java is None or runner is None:
            raise StackError("Apicurio Registry is not installed or has no Java 21+")
        s = self.settings
        home = self.dirs.component(self.name)
        tmp = home / "tmp"
        tmp.mkdir(exist_ok=True)
        env = {
            "QUARKUS_HTTP_HOST": s.host,
            "QUARKUS_HTTP_PORT": str(s.registry_port),
            # The management interface is enabled at build time and cannot be switched off;
            # it carries /health, so it is kept and moved off 9000 onto loopback.
            "QUARKUS_MANAGEMENT_HOST": s.host,
            "QUARKUS_MANAGEMENT_PORT": str(s.registry_management_port),
            # Apicurio 3's in-memory storage is the SQL storage on an in-memory H2 database.
            "APICURIO_STORAGE_KIND": "sql",
            "APICURIO_STORAGE_SQL_KIND": "h2",
            "APICURIO_DATASOURCE_URL": "jdbc:h2:mem:registry",
            # The default pool keeps 20 connections open: pointless for one in-memory database.
            "APICURIO_DATASOURCE_JDBC_INITIAL_SIZE": "2",
            "APICURIO_DATASOURCE_JDBC_MIN_SIZE": "2",
            "APICURIO_DATASOURCE_JDBC_MAX_SIZE": "10",
            "APICURIO_STORAGE_SNAPSHOT_LOCATION": str(tmp),
        }
        argv = [
            str(java.executable),
            "-Xms64m",
            f"-Xmx{s.registry_heap_mb}m",
            # A small heap and little garbage: the serial collector has the smallest footprint.
            "-XX:+UseSerialGC",
            "-XX:+ExitOnOutOfMemoryError",
            f"-Djava.io.tmpdir={tmp}",
            "-jar",
            str(runner),
        ]
        return Launch(argv=argv, cwd=home, env=env)

    def _client(self) -> httpx.Client:
        return httpx.Client(timeout=self.settings.probe_timeout_s)

    def probe(self) -> None:
        try:
            with self._client() as client:
                health = client.get(self.health_url)
                if health.status_code != httpx.codes.OK or health.json().get("status") != "UP":
                    raise StackError(f"{self.health_url} answered {health.status_code}")
                subjects = client.get(f"{self.url}{CCOMPAT_PATH}/subjects")
                if subjects.status_code != httpx.codes.OK:
                    raise StackError(
                        f"{self.url}{CCOMPAT_PATH}/subjects answered {subjects.status_code}"
                    )
        except httpx.HTTPError as exc:
            raise StackError(f"registry not answering: {exc!r}") from exc

    def configure(self, report: Report) -> None:
        level = self.settings.registry_compatibility
        rule = {"ruleType": "COMPATIBILITY", "config": level}
        try:
            with httpx.Client(base_url=self.url, timeout=self.settings.start_timeout_s) as client:
                created = client.post(_RULES_PATH, json=rule)
                if created.status_code == _HTTP_CONFLICT:
                    # Already there (a running registry): make sure it has the configured level.
                    client.put(f"{_RULES_PATH}/COMPATIBILITY", json=rule).raise_for_status()
                else:
                    created.raise_for_status()
                    report(f"global compatibility rule {level}")
                config = client.get(f"{CCOMPAT_PATH}/config")
                config.raise_for_status()
        except httpx.HTTPError as exc:
            raise StackError(f"setting the global {level} rule on {self.url}: {exc!r}") from exc
        effective = config.json().get("compatibilityLevel")
        if effective != level:
            raise StackError(f"registry reports compatibility {effective!r}, expected {level!r}")
