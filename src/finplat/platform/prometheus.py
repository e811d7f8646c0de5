"""Prometheus beside the services: Debian's binary with the repository's configuration.

prometheus.yml names its rules and its file_sd target list relative to its own directory, so a
directory of links to the repository's files plus a target list written for this run's ports
gives the configuration compose uses, scraping wherever the settings put the services.
"""

import functools
import json
import shutil
from collections.abc import Mapping
from pathlib import Path

from finplat.platform import probes
from finplat.platform.errors import PlatformError
from finplat.platform.settings import PlatformSettings
from finplat.platform.spec import ChildSpec
from finplat.stack.component import Port

_SHARED_FILES = ("prometheus.yml", "alerts.yml")
_RETENTION = "2d"


def prometheus_child(platform: PlatformSettings, targets: Mapping[str, str]) -> ChildSpec:
    """Prometheus on loopback, scraping `targets` (service name: host:port)."""
    etc = platform.prometheus_dir.absolute() / "etc"
    port = platform.prometheus_port
    argv = [
        "prometheus",
        f"--config.file={etc / 'prometheus.yml'}",
        f"--storage.tsdb.path={platform.prometheus_dir.absolute() / 'data'}",
        f"--storage.tsdb.retention.time={_RETENTION}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    return ChildSpec(
        "prometheus",
        argv,
        ports=[Port(port, "Prometheus", "FINPLAT_PLATFORM_PROMETHEUS_PORT")],
        probe=functools.partial(
            probes.http_ok, f"http://127.0.0.1:{port}/-/ready", platform.probe_timeout_s
        ),
        prepare=functools.partial(write_config, platform.prometheus_config_dir, etc, targets),
    )


def write_config(source: Path, etc: Path, targets: Mapping[str, str]) -> None:
    """Link the shared files from `source` into `etc` and write `etc/targets.yml`."""
    if shutil.which("prometheus") is None:
        raise PlatformError(
            "prometheus is not installed: `make system-deps` installs Debian's package "
            "(prometheus), or set FINPLAT_PLATFORM_PROMETHEUS_PORT=0 to run without it"
        )
    etc.mkdir(parents=True, exist_ok=True)
    for name in _SHARED_FILES:
        shared = source.absolute() / name
        if not shared.is_file():
            raise PlatformError(
                f"{shared} is missing; FINPLAT_PLATFORM_PROMETHEUS_CONFIG_DIR names the directory "
                "of prometheus.yml and alerts.yml"
            )
        link = etc / name
        link.unlink(missing_ok=True)
        link.symlink_to(shared)
    groups = [
        {"targets": [address], "labels": {"service": service}}
        for service, address in targets.items()
    ]
    # JSON is YAML; the file keeps the name prometheus.yml's file_sd entry gives it.
    text = "# Written by `finplat up` for the ports of this run.\n" + json.dumps(groups, indent=2)
    (etc / "targets.yml").write_text(text + "\n")
