"""TLS for listeners and channels, built from PEM files.

Listeners: :func:`server_credentials` gives gRPC *dynamic* SSL credentials whose fetcher is
asked on every new handshake; it re-reads the certificate, key and CA files when their mtimes
change or after :func:`request_reload` (the node calls it on SIGHUP), so certificates rotate by
replacing files, without a restart. Connections already open keep their session.

client_auth: ``required`` makes the handshake fail without a client certificate that chains
to the CA. gRPC Python can either require a client certificate or not ask for one: it has no
"request but do not require" mode (``require_client_authentication=False`` sends no
certificate request, so clients send none). ``requested`` is therefore enforced as
``required`` at the TLS layer (fail closed: a node's identity is never silently dropped), and
the node says so when it starts; ``none`` asks for no certificate (callers use bearer tokens,
or are anonymous).

Channels: :class:`ChannelSecurity` holds what a caller needs (CA, optional client certificate
and key, optional bearer token).
"""

from __future__ import annotations

import base64
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import structlog

from raftka.common.errors import ConfigFileError
from raftka.common.security.settings import SecuritySettings

log = structlog.get_logger(__name__)

_reload_generation = 0
_reload_lock = threading.Lock()


def request_reload() -> None:
    """Make every listener re-read its TLS files on its next handshake (SIGHUP)."""
    global _reload_generation
    with _reload_lock:
        _reload_generation += 1


def reload_generation() -> int:
    return _reload_generation


class TlsConfigError(ConfigFileError):
    """A TLS file is missing, unreadable or not PEM."""


def _read(path: str, what: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise TlsConfigError(f"cannot read the {what} {path!r}: {e.strerror or e}") from None
    if b"-----BEGIN" not in data:
        raise TlsConfigError(f"the {what} {path!r} is not PEM (no -----BEGIN line)")
    return data


def requires_client_certificate(settings: SecuritySettings) -> bool:
    """Whether the TLS handshake demands a client certificate (see the module docstring)."""
    return settings.client_auth in ("required", "requested")


class ServerCertificateSource:
    """The listener's certificate configuration, re-read when its files change."""

    def __init__(self, settings: SecuritySettings) -> None:
        if not settings.tls_cert_file or not settings.tls_key_file:
            raise TlsConfigError("TLS needs both security.tls_cert_file and security.tls_key_file")
        if requires_client_certificate(settings) and not settings.tls_ca_file:
            raise TlsConfigError(
                f"client_auth = {settings.client_auth!r} needs security.tls_ca_file (the CA that "
                "client certificates must chain to)"
            )
        self._files = tuple(
            f for f in (settings.tls_cert_file, settings.tls_key_file, settings.tls_ca_file) if f
        )
        self._settings = settings
        self._lock = threading.Lock()
        self._stamp = self._stamp_now()
        self.loads = 0
        self.initial = self._load()

    def _stamp_now(self) -> tuple[int, tuple[int, ...]]:
        mtimes = []
        for f in self._files:
            try:
                mtimes.append(os.stat(f).st_mtime_ns)
            except OSError:
                mtimes.append(-1)
        return reload_generation(), tuple(mtimes)

    def _load(self) -> grpc.ServerCertificateConfiguration:
        s = self._settings
        cert = _read(s.tls_cert_file, "certificate (security.tls_cert_file)")
        key = _read(s.tls_key_file, "private key (security.tls_key_file)")
        ca = _read(s.tls_ca_file, "CA bundle (security.tls_ca_file)") if s.tls_ca_file else None
        self.loads += 1
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's fetcher: a new configuration when the files changed, else None (keep)."""
        stamp = self._stamp_now()
        if stamp == self._stamp:
            return None
        with self._lock:
            if stamp == self._stamp:
                return None
            try:
                config = self._load()
            except TlsConfigError as e:
                # Half-written files (or a bad rotation): keep serving the old certificate and
                # try again on the next handshake.
                log.warning("tls_reload_failed", error=str(e))
                return None
            self._stamp = stamp
        log.info("tls_certificates_reloaded", cert_file=self._settings.tls_cert_file)
        return config


def server_credentials(settings: SecuritySettings) -> grpc.ServerCredentials:
    """Reloading SSL credentials for a listener configured by ``settings``."""
    source = ServerCertificateSource(settings)
    if settings.client_auth == "requested":
        log.warning(
            "client_auth_requested_enforced_as_required",
            reason="gRPC Python cannot ask for a client certificate without requiring one; "
            "use client_auth = 'none' to let clients connect without one (bearer tokens)",
        )
    return grpc.dynamic_ssl_server_credentials(
        source.initial,
        source.fetch,
        require_client_authentication=requires_client_certificate(settings),
    )


@dataclass(frozen=True, slots=True)
class ChannelSecurity:
    """How a channel authenticates: TLS (with the CA to trust), an optional client certificate
    (mTLS), an optional bearer token. Files are read when a channel is opened, so a rotated
    certificate is used by the next channel."""

    tls: bool = False
    ca_file: str = ""
    """PEM CA bundle; empty uses the system roots."""
    cert_file: str = ""
    key_file: str = ""
    token: str = field(default="", repr=False)
    """``<user>:<password>`` sent as ``authorization: Bearer <token>`` (TLS only)."""

    def __post_init__(self) -> None:
        if bool(self.cert_file) != bool(self.key_file):
            raise TlsConfigError("a client certificate needs both its cert file and key file")
        if (self.cert_file or self.ca_file) and not self.tls:
            raise TlsConfigError("certificate files are given but TLS is off")

    @classmethod
    def for_node(cls, settings: SecuritySettings) -> ChannelSecurity | None:
        """What a node uses to call other nodes: its own certificate is its client
        certificate. None: plaintext."""
        if not settings.tls_enabled:
            return None
        return cls(
            tls=True,
            ca_file=settings.tls_ca_file,
            cert_file=settings.tls_cert_file,
            key_file=settings.tls_key_file,
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        ca = _read(self.ca_file, "CA bundle") if self.ca_file else None
        key = _read(self.key_file, "client private key") if self.key_file else None
        cert = _read(self.cert_file, "client certificate") if self.cert_file else None
        ssl = grpc.ssl_channel_credentials(ca, key, cert)
        if not self.token:
            return ssl
        return grpc.composite_channel_credentials(
            ssl, grpc.access_token_call_credentials(self.token)
        )


def bearer_token(user: str, password: str) -> str:
    """The bearer token of a user: base64 of ``<user>:<password>`` (UTF-8), as HTTP Basic
    does, so any password fits in a header. The user name may not contain ':'."""
    if not user or ":" in user:
        raise ValueError("a token's user name is non-empty and has no ':'")
    return base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def parse_bearer_token(token: str) -> tuple[str, str] | None:
    """(user, password) of a token, or None when it is not one."""
    try:
        text = base64.b64decode(token.encode("ascii"), validate=True).decode()
    except (ValueError, UnicodeError):
        return None
    user, colon, password = text.partition(":")
    if not colon or not user:
        return None
    return user, password
