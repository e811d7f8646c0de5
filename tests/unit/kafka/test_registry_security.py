"""registry_client speaks https to a registry whose CA the settings name, with basic auth.

The registry is a loopback HTTPS server of the test's own (certificates by trustme) that
answers `GET /subjects` only to the right `Authorization` header, as a registry behind basic
auth does; the client is the real confluent-kafka one, built by `registry_client`.
"""

import base64
import http.server
import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.schema_registry.error import SchemaRegistryError
from pydantic import SecretStr

from finplat.core.connections import KafkaSettings
from finplat.kafka.serde import registry_client
from tests.support import write_certificates

USER_INFO = "registry-user:registry-password"
SUBJECTS = ["price-updates-value"]


class _BasicAuthRegistry(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        expected = "Basic " + base64.b64encode(USER_INFO.encode()).decode()
        if self.headers.get("Authorization") != expected:
            self._answer(401, {"error_code": 401, "message": "Unauthorized"})
        elif self.path.split("?")[0] == "/subjects":
            self._answer(200, SUBJECTS)
        else:
            self._answer(404, {"error_code": 404, "message": "Not Found"})

    def _answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        del format, args  # quiet: the test reads answers, not access logs


@pytest.fixture
def https_registry(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The URL of the registry and the CA file that signed its certificate."""
    ca, chain, key = write_certificates(tmp_path, "127.0.0.1")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _BasicAuthRegistry)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", ca
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _settings(url: str, ca: Path, user_info: str) -> KafkaSettings:
    return KafkaSettings(
        schema_registry_url=url,
        schema_registry_timeout_s=5,
        schema_registry_basic_auth_user_info=SecretStr(user_info),
        schema_registry_ssl_ca_location=ca,
    )


def test_the_registry_answers_over_https_to_the_configured_user(
    https_registry: tuple[str, Path],
) -> None:
    url, ca = https_registry

    with registry_client(_settings(url, ca, USER_INFO)) as registry:
        subjects = registry.get_subjects()

    assert subjects == ["price-updates-value"]


def test_a_wrong_password_gets_the_registrys_401(https_registry: tuple[str, Path]) -> None:
    url, ca = https_registry

    with (
        registry_client(_settings(url, ca, "registry-user:wrong")) as registry,
        pytest.raises(SchemaRegistryError) as refused,
    ):
        registry.get_subjects()

    assert refused.value.http_status_code == 401
