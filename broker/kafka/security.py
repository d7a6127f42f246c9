"""TLS and the principal of each Kafka connection.

The listener's TLS is the node's (``security.tls_cert_file`` / ``tls_key_file``, client
certificates chaining to ``tls_ca_file``), with ``security.client_auth`` as on the gRPC client
listener: ``required`` fails a handshake without a client certificate, ``none`` asks for
none, and ``requested`` asks without requiring (Python's ssl can, unlike gRPC Python). The
certificate files are re-read at the next handshake when their mtimes change (or after
SIGHUP's :func:`~raftka.common.security.tls.request_reload`), as the gRPC listeners do.

The principal: on SASL_SSL, the SASL user (sasl.py), even when a certificate was presented
(as Kafka and the gRPC bearer token do); on SSL, the certificate's subject through
``security.principal_mapping_rules`` (the gRPC listeners' mapping), else ``User:ANONYMOUS``
(refused with require_authentication); on PLAINTEXT, ``User:ANONYMOUS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import threading
from collections.abc import Callable

from cryptography import x509

from raftka.broker.kafka.sasl import ConnectionAuth
from raftka.broker.kafka.security_config import (
    PLAINTEXT,
    SASL_SSL,
    mechanism_list,
)
from raftka.common.metadata.security_image import SecurityImage
from raftka.common.security.authentication import Authenticator
from raftka.common.security.caller import Caller
from raftka.common.security.model import ANONYMOUS
from raftka.common.security.settings import SecuritySettings
from raftka.common.security.tls import TlsConfigError, reload_generation

_VERIFY_MODE = {
    "required": ssl.CERT_REQUIRED,
    "requested": ssl.CERT_OPTIONAL,
    "none": ssl.CERT_NONE,
}


def _load_context(settings: SecuritySettings) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
        if settings.tls_ca_file:
            context.load_verify_locations(settings.tls_ca_file)
    except (OSError, ssl.SSLError) as e:
        raise TlsConfigError(
            f"the Kafka listener cannot load its TLS files ({settings.tls_cert_file!r}, "
            f"{settings.tls_key_file!r}, CA {settings.tls_ca_file!r}): {e}"
        ) from None
    if settings.client_auth != "none" and not settings.tls_ca_file:
        raise TlsConfigError(
            f"client_auth = {settings.client_auth!r} needs security.tls_ca_file (the CA that "
            "client certificates must chain to)"
        )
    context.verify_mode = _VERIFY_MODE[settings.client_auth]
    return context


class ReloadingContext:
    """The listener's SSLContext; a handshake after the files changed gets the new one."""

    def __init__(self, settings: SecuritySettings) -> None:
        self._settings = settings
        self._files = tuple(
            f for f in (settings.tls_cert_file, settings.tls_key_file, settings.tls_ca_file) if f
        )
        self._lock = threading.Lock()
        self._stamp = self._stamp_now()
        self.context = _load_context(settings)
        """What the server is given: its SNI callback (called on every handshake, SNI or
        not) switches the connection to the reloaded context once the files changed."""
        self.context.sni_callback = self._pick
        self._current = self.context

    def _stamp_now(self) -> tuple[int, tuple[int, ...]]:
        mtimes = []
        for f in self._files:
            try:
                mtimes.append(os.stat(f).st_mtime_ns)
            except OSError:
                mtimes.append(-1)
        return reload_generation(), tuple(mtimes)

    def _pick(self, connection: ssl.SSLObject, _name: str | None, _ctx: ssl.SSLContext) -> None:
        stamp = self._stamp_now()
        if stamp != self._stamp:
            with self._lock:
                # Half-written files: keep the old certificate, retry at the next handshake.
                with contextlib.suppress(TlsConfigError):
                    self._current = _load_context(self._settings)
                self._stamp = stamp
        if self._current is not self.context:
            connection.context = self._current


def peer_certificate(ssl_object: ssl.SSLObject | None) -> tuple[str | None, list[str]]:
    """The client certificate's subject DN (RFC 2253 order, as gRPC reports it) and its
    subject alternative names; (None, []) without one."""
    if ssl_object is None:
        return None, []
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None, []
    cert = x509.load_der_x509_certificate(der)
    sans: list[str] = []
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        pass
    else:
        for name in ext.value:
            sans.append(str(name.value))
    return cert.subject.rfc4514_string(), sans


class KafkaSecurity:
    """The listener's security: its SSLContext (None on PLAINTEXT), and each connection's
    :class:`ConnectionAuth`."""

    def __init__(
        self,
        protocol: str,
        settings: SecuritySettings,
        image: Callable[[], SecurityImage | None],
        mechanisms: str = "",
    ) -> None:
        self.protocol = protocol
        self._settings = settings
        self._image = image
        self._mechanisms = mechanism_list(mechanisms)
        self._authenticator = Authenticator(settings, image)
        self._tls = ReloadingContext(settings) if protocol != PLAINTEXT else None

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        return self._tls.context if self._tls is not None else None

    def connection_auth(self, writer: asyncio.StreamWriter, host: str) -> ConnectionAuth:
        """A new connection's authentication state; AuthenticationFailedError when its
        certificate names no principal or it has none where one is required."""
        if self.protocol == SASL_SSL:
            return ConnectionAuth(
                host=host,
                caller=None,
                mechanisms=self._mechanisms,
                authenticator=self._authenticator,
                image=self._image,
            )
        if self.protocol == PLAINTEXT:
            return ConnectionAuth(host=host, caller=Caller(ANONYMOUS, host, False))
        subject, sans = peer_certificate(writer.get_extra_info("ssl_object"))
        caller = self._authenticator.authenticate(
            token=None, cert_subject=subject, cert_sans=sans, tls=True, host=host
        )
        return ConnectionAuth(host=host, caller=caller)
