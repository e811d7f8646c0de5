"""The stack's own certificate authority and a server certificate it signed, as PEM files.

Made once per data dir and kept: clients trust the CA file, so it must outlive restarts. They
are made again only when the server certificate no longer fits (another host, expired, or not
signed by the CA beside it, e.g. after an interrupted write).
"""

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# A development CA in a data dir that lives for years: expiry would only break it one day.
_VALIDITY = datetime.timedelta(days=3650)
# Certificates are dated a little in the past so a clock that is slightly behind accepts them.
_BACKDATE = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class ServerTls:
    """Where the PEM files are: the CA clients trust, the server's certificate and key."""

    ca_certificate: Path
    certificate: Path
    private_key: Path
    """Unencrypted PKCS#8, readable by its owner only."""


def server_tls_files(directory: Path) -> ServerTls:
    """The file names in `directory`, whether or not they exist yet."""
    return ServerTls(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")


def ensure_server_tls(directory: Path, hosts: Sequence[str]) -> ServerTls:
    """The CA and a server certificate for `hosts` (names or IP addresses) in `directory`."""
    files = server_tls_files(directory)
    if not _fits(files, hosts):
        _create(files, hosts)
    return files


def _fits(files: ServerTls, hosts: Sequence[str]) -> bool:
    try:
        ca = x509.load_pem_x509_certificate(files.ca_certificate.read_bytes())
        server = x509.load_pem_x509_certificate(files.certificate.read_bytes())
        serialization.load_pem_private_key(files.private_key.read_bytes(), password=None)
        server.verify_directly_issued_by(ca)
        names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    now = datetime.datetime.now(datetime.UTC)
    return set(_alternative_names(hosts)) <= set(names) and server.not_valid_after_utc > now


def _alternative_names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def _create(files: ServerTls, hosts: Sequence[str]) -> None:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "finplat development CA")])
    ca = (
        _dated(x509.CertificateBuilder(), now)
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        _dated(x509.CertificateBuilder(), now)
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(_alternative_names(hosts)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files.ca_certificate.parent.mkdir(parents=True, exist_ok=True)
    _write(
        files.private_key,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        private=True,
    )
    _write(files.certificate, server.public_bytes(serialization.Encoding.PEM))
    # The CA's key is not kept: nothing else is ever signed with it.
    _write(files.ca_certificate, ca.public_bytes(serialization.Encoding.PEM))


def _dated(builder: x509.CertificateBuilder, now: datetime.datetime) -> x509.CertificateBuilder:
    return (
        builder.serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
    )


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    # Written aside and renamed, so a reader never sees half a file; a key is never readable
    # by others, not even for a moment.
    partial = path.with_name(f"{path.name}.partial")
    partial.unlink(missing_ok=True)
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    partial.replace(path)
