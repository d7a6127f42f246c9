"""A throwaway certificate authority for local clusters (``raftka up --tls``) and tests.

Production clusters bring their own CA (see docs/security.md); this one exists so a secure
local cluster is one command. Keys are EC P-256 (fast to make, small); certificates carry
SAN IP 127.0.0.1 and DNS localhost by default, so clients verify the node's name without any
target-name override. Key files are written 0600.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_VALIDITY = datetime.timedelta(days=365)
LOCAL_HOSTS = ("127.0.0.1", "localhost")
ORGANIZATIONAL_UNIT = "raftka"


@dataclass(frozen=True, slots=True)
class CertFiles:
    """Where one certificate, its key and the CA that signed it are."""

    cert: Path
    key: Path
    ca: Path


class CertificateAuthority:
    """A self-signed CA that issues server/client certificates into a directory."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate, ca_file: Path):
        self.key = key
        self.cert = cert
        self.ca_file = ca_file

    @classmethod
    def create(cls, directory: Path, name: str = "raftka-local-ca") -> CertificateAuthority:
        """A new CA; writes ``ca.crt`` and ``ca.key`` under ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + 10 * DEFAULT_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        ca_file = directory / "ca.crt"
        _write(ca_file, cert.public_bytes(serialization.Encoding.PEM), private=False)
        _write(directory / "ca.key", _key_pem(key), private=True)
        return cls(key, cert, ca_file)

    @classmethod
    def load(cls, directory: Path) -> CertificateAuthority:
        """The CA that :meth:`create` wrote under ``directory``."""
        cert = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
        key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{directory / 'ca.key'} is not an EC private key")
        return cls(key, cert, directory / "ca.crt")

    def issue(
        self,
        directory: Path,
        common_name: str,
        *,
        hosts: tuple[str, ...] = LOCAL_HOSTS,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
        file_stem: str | None = None,
    ) -> CertFiles:
        """A certificate for ``CN=<common_name>,OU=raftka`` usable as server and client
        certificate, with ``hosts`` as SANs; writes ``<stem>.crt`` and ``<stem>.key``."""
        directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        # Most general first, as certificates usually are: the RFC 2253 form (which lists the
        # last attribute first) is then "CN=<name>,OU=raftka", what mapping rules expect.
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ORGANIZATIONAL_UNIT),
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            ]
        )
        sans: list[x509.GeneralName] = []
        for host in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - datetime.timedelta(minutes=5))
            .not_valid_after(not_after or now + DEFAULT_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        stem = file_stem or common_name
        cert_file, key_file = directory / f"{stem}.crt", directory / f"{stem}.key"
        # Key first, certificate last: a node reloading on a changed mtime sees a matching pair.
        _write(key_file, _key_pem(key), private=True)
        _write(cert_file, cert.public_bytes(serialization.Encoding.PEM), private=False)
        return CertFiles(cert=cert_file, key=key_file, ca=self.ca_file)


def certificate_serial(cert_file: Path) -> int:
    """The serial number of the (first) certificate in a PEM file."""
    return x509.load_pem_x509_certificate(cert_file.read_bytes()).serial_number


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, *, private: bool) -> None:
    """Write atomically (temp file + rename) so a reader never sees half a PEM file."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
