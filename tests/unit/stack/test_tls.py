"""The stack's CA and server certificate: made once, trusted by a real TLS client, remade when
they no longer fit the host."""

import socket
import ssl
import threading
from pathlib import Path

import pytest

from finplat.stack.tls import ServerTls, ensure_server_tls

HOSTS = ["127.0.0.1", "localhost"]


def _handshake(tls: ServerTls, server_name: str) -> str:
    """Serve one TLS handshake with the server's files; connect trusting the CA only.

    Returns the version the client negotiated; raises what the client's check raises."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tls.certificate, tls.private_key)
    client_context = ssl.create_default_context(cafile=tls.ca_certificate)
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def serve() -> None:
            connection, _ = listener.accept()
            # The client's verdict is what the test reads; a refused handshake ends here too.
            try:
                with server_context.wrap_socket(connection, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                connection.close()

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            with (
                socket.create_connection(listener.getsockname(), timeout=5) as raw,
                client_context.wrap_socket(raw, server_hostname=server_name) as secured,
            ):
                return str(secured.version())
        finally:
            thread.join(timeout=5)


def test_the_certificate_is_trusted_through_the_ca_for_each_host(tmp_path: Path) -> None:
    tls = ensure_server_tls(tmp_path / "tls", HOSTS)

    assert _handshake(tls, "127.0.0.1").startswith("TLSv1.")
    assert _handshake(tls, "localhost").startswith("TLSv1.")


def test_a_host_the_certificate_does_not_name_is_refused(tmp_path: Path) -> None:
    tls = ensure_server_tls(tmp_path / "tls", HOSTS)

    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        _handshake(tls, "example.com")


def test_the_files_are_kept_across_calls_and_the_key_is_private(tmp_path: Path) -> None:
    first = ensure_server_tls(tmp_path / "tls", HOSTS)
    ca = first.ca_certificate.read_bytes()

    again = ensure_server_tls(tmp_path / "tls", HOSTS)

    assert again.ca_certificate.read_bytes() == ca
    assert first.private_key.stat().st_mode & 0o777 == 0o600


def test_a_new_host_makes_a_new_ca_and_certificate(tmp_path: Path) -> None:
    first = ensure_server_tls(tmp_path / "tls", HOSTS)
    ca = first.ca_certificate.read_bytes()

    moved = ensure_server_tls(tmp_path / "tls", ["10.1.2.3", *HOSTS])

    assert moved.ca_certificate.read_bytes() != ca
    assert _handshake(moved, "127.0.0.1").startswith("TLSv1.")


def test_a_certificate_not_signed_by_the_ca_beside_it_is_remade(tmp_path: Path) -> None:
    tls = ensure_server_tls(tmp_path / "tls", HOSTS)
    # As after an interrupted write: the CA of another run next to this run's certificate.
    tls.ca_certificate.write_bytes(
        ensure_server_tls(tmp_path / "other", HOSTS).ca_certificate.read_bytes()
    )

    remade = ensure_server_tls(tmp_path / "tls", HOSTS)

    assert _handshake(remade, "127.0.0.1").startswith("TLSv1.")
