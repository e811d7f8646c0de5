"""InfluxDB 2.x OSS, built from source once by resources/influxdb/build.sh, onboarded at start."""

import importlib.resources
import logging
from pathlib import Path

import httpx

from finplat.stack.component import Component, Port
from finplat.stack.errors import StackError
from finplat.stack.process import Launch, StackDirs
from finplat.stack.settings import StackSettings
from finplat.stack.tools import Report, missing_tool, run_streaming

logger = logging.getLogger(__name__)

_BUILD_SCRIPT = importlib.resources.files("finplat.stack") / "resources" / "influxdb" / "build.sh"
_BUILD_TOOLS = ("go", "cargo", "pkg-config", "gcc")
_MIB = 1024 * 1024


class InfluxDB(Component):
    """InfluxDB on loopback with the org, bucket, user and token from the settings."""

    name = "influxdb"

    def __init__(self, settings: StackSettings, dirs: StackDirs) -> None:
        super().__init__(settings, dirs)
        self._influxd: Path | None = None

    @property
    def url(self) -> str:
        """HTTP API root."""
        return f"http://{self.settings.host}:{self.settings.influxdb_port}"

    @property
    def built_binary(self) -> Path:
        """Where build.sh leaves influxd for this version."""
        version_dir = self.settings.cache_dir / "influxdb" / self.settings.influxdb_version
        return version_dir / "bin" / "influxd"

    def ports(self) -> list[Port]:
        return [Port(self.settings.influxdb_port, "InfluxDB", "FINPLAT_STACK_INFLUXDB_PORT")]

    def address(self) -> str:
        s = self.settings
        return (
            f"{self.url} (InfluxDB {s.influxdb_version}, "
            f"org {s.influxdb_org}, bucket {s.influxdb_bucket})"
        )

    def prerequisites(self) -> list[str]:
        if self.built_binary.is_file():
            return []
        if not _BUILD_SCRIPT.is_file():
            return [f"InfluxDB build script {_BUILD_SCRIPT} is missing from the package"]
        purpose = f"to build InfluxDB {self.settings.influxdb_version} once"
        problems = [missing_tool(tool, purpose) for tool in ("bash", *_BUILD_TOOLS)]
        return [problem for problem in problems if problem]

    def install(self, report: Report) -> None:
        if not self.built_binary.is_file():
            report(
                f"building influxd {self.settings.influxdb_version} from source "
                "(once; 10-20 min on 2 cores)"
            )
        cache = self.settings.cache_dir
        cache.mkdir(parents=True, exist_ok=True)
        with importlib.resources.as_file(_BUILD_SCRIPT) as script:
            out = run_streaming(
                ["bash", str(script), self.settings.influxdb_version, str(cache)],
                what=f"building InfluxDB {self.settings.influxdb_version}",
                report=report,
                # The script's own progress lines; compiler output stays in the error tail.
                show=lambda line: line if line.startswith("[influxdb] ") else None,
                capture_stdout=True,
            )
        lines = out.strip().splitlines()
        influxd = Path(lines[-1]) if lines else None
        if influxd is None or not influxd.is_file():
            raise StackError(f"InfluxDB build script printed no usable binary path: {out!r}")
        self._influxd = influxd

    def launch(self, report: Report) -> Launch:
        influxd = self._influxd or self.built_binary
        if not influxd.is_file():
            raise StackError(f"influxd not built: {influxd}")
        s = self.settings
        home = self.dirs.component(self.name)
        argv = [
            str(influxd),
            "--http-bind-address",
            f"{s.host}:{s.influxdb_port}",
            "--bolt-path",
            str(home / "influxd.bolt"),
            "--engine-path",
            str(home / "engine"),
            "--sqlite-path",
            str(home / "influxd.sqlite"),
            "--reporting-disabled",
            # The source build embeds no UI assets (fetching them needs GitHub).
            "--ui-disabled",
            f"--storage-cache-max-memory-size={s.influxdb_cache_max_mb * _MIB}",
            "--log-level",
            "info",
        ]
        return Launch(argv=argv, cwd=home)

    def probe(self) -> None:
        try:
            health = httpx.get(f"{self.url}/health", timeout=self.settings.probe_timeout_s)
        except httpx.HTTPError as exc:
            raise StackError(f"InfluxDB not answering: {exc!r}") from exc
        if health.status_code != httpx.codes.OK or health.json().get("status") != "pass":
            raise StackError(f"{self.url}/health answered {health.status_code}: {health.text}")

    def configure(self, report: Report) -> None:
        s = self.settings
        token = s.influxdb_token.get_secret_value()
        try:
            with httpx.Client(base_url=self.url, timeout=s.start_timeout_s) as client:
                setup = client.get("/api/v2/setup")
                setup.raise_for_status()
                if setup.json().get("allowed"):
                    report(f"onboarding org {s.influxdb_org}, bucket {s.influxdb_bucket}")
                    onboarded = client.post(
                        "/api/v2/setup",
                        json={
                            "username": s.influxdb_username,
                            "password": s.influxdb_password.get_secret_value(),
                            "org": s.influxdb_org,
                            "bucket": s.influxdb_bucket,
                            "token": token,
                            "retentionPeriodSeconds": s.influxdb_retention_s,
                        },
                    )
                    onboarded.raise_for_status()
                buckets = client.get(
                    "/api/v2/buckets",
                    params={"name": s.influxdb_bucket, "org": s.influxdb_org},
                    headers={"Authorization": f"Token {token}"},
                )
        except httpx.HTTPError as exc:
            raise StackError(f"onboarding InfluxDB at {self.url}: {exc!r}") from exc
        if buckets.status_code != httpx.codes.OK or not buckets.json().get("buckets"):
            raise StackError(
                f"InfluxDB at {self.url} has no bucket {s.influxdb_bucket!r} in org "
                f"{s.influxdb_org!r} for the configured token ({buckets.status_code}); it was "
                f"onboarded with other settings: `finplat stack down`, remove "
                f"{self.dirs.root / self.name} and run `finplat stack up` again"
            )
