"""Who is on a Kafka connection: SaslHandshake (v0-v1) and SaslAuthenticate (v0-v2) before
anything else, or the TLS client certificate.

A SASL_SSL connection starts unauthenticated: only ApiVersions, SaslHandshake and
SaslAuthenticate are served, one at a time, in frames of at most
:data:`MAX_UNAUTHENTICATED_BYTES` (Kafka's sasl.server.max.receive.size); anything else
closes the connection. The client picks a mechanism with SaslHandshake, then sends its SASL
messages inside SaslAuthenticate requests (v1 handshake), or as bare size-prefixed frames
(v0 handshake, as Kafka's oldest clients do). The mechanisms:

- SCRAM-SHA-256 / SCRAM-SHA-512: a real SCRAM exchange (common/security/scram_server.py)
  against the user's stored credential for that mechanism; no password crosses the wire.
- PLAIN: the password (over TLS only, which the configuration ensures) checked against the
  user's stored SCRAM credential, as a gRPC bearer token is.

Credentials are read from the broker's metadata image at each exchange, so a user removed
from the cluster cannot start new sessions (open ones keep theirs, as in Kafka without
re-authentication). A failure answers SASL_AUTHENTICATION_FAILED (or the handshake's
UNSUPPORTED_SASL_MECHANISM / ILLEGAL_SASL_STATE) and the connection is closed with one
``kafka_connection_closed`` line naming the user, never a password.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from kio.schema.errors import ErrorCode

from raftka.broker.kafka.dispatch import API_VERSIONS_KEY, ApiTable, RequestContext
from raftka.broker.kafka.framing import (
    FrameError,
    Limits,
    encode_response,
    parse_request,
    peek_head,
)
from raftka.broker.kafka.schema import build, response_type
from raftka.broker.kafka.security_config import PLAIN, SCRAM_MECHANISMS
from raftka.common.metadata.security_image import SecurityImage
from raftka.common.security.authentication import Authenticator
from raftka.common.security.caller import Caller
from raftka.common.security.model import ScramCredential, user_principal
from raftka.common.security.scram_server import ScramError, ScramServer
from raftka.common.security_errors import AuthenticationFailedError

SASL_HANDSHAKE_KEY = 17
SASL_AUTHENTICATE_KEY = 36
SASL_APIS = (SASL_HANDSHAKE_KEY, SASL_AUTHENTICATE_KEY)
MAX_UNAUTHENTICATED_BYTES = 512 * 1024
NO_SESSION_LIFETIME = datetime.timedelta(0)
"""No re-authentication asked for (KIP-368): a session lasts as long as its connection."""


class SaslFailed(Exception):
    """The exchange failed: ``message`` is for the client and the log (no secrets)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _Exchange(Protocol):
    def step(self, data: bytes) -> tuple[bytes, str | None]:
        """The answer to the client's message, and the principal once authenticated."""
        ...


class _ScramExchange:
    def __init__(self, mechanism: int, credential_of: Callable[[str], ScramCredential | None]):
        self._server = ScramServer(mechanism, credential_of)
        self._steps = 0

    def step(self, data: bytes) -> tuple[bytes, str | None]:
        self._steps += 1
        try:
            if self._steps == 1:
                return self._server.first(data), None
            if self._steps == 2:
                user, final = self._server.final(data)
                return final, user_principal(user)
        except ScramError as e:
            raise SaslFailed(e.message) from None
        raise SaslFailed("a SCRAM message after the exchange ended")


class _PlainExchange:
    def __init__(self, authenticator: Authenticator) -> None:
        self._authenticator = authenticator

    def step(self, data: bytes) -> tuple[bytes, str | None]:
        parts = data.split(b"\0")
        if len(parts) != 3:
            raise SaslFailed("a PLAIN message is authzid NUL user NUL password")
        try:
            authzid, user, password = (p.decode() for p in parts)
        except UnicodeDecodeError:
            raise SaslFailed("the PLAIN message is not UTF-8") from None
        if not user:
            raise SaslFailed("the PLAIN message names no user")
        if authzid and authzid != user:
            raise SaslFailed("an authorization id other than the user is not supported")
        try:
            return b"", self._authenticator.password_principal(user, password)
        except AuthenticationFailedError as e:
            raise SaslFailed(e.message) from None


class ConnectionAuth:
    """The authentication state of one connection. ``caller`` is set once authenticated (at
    once for PLAINTEXT and SSL connections); until then :meth:`serve_unauthenticated` takes
    every frame."""

    def __init__(
        self,
        *,
        host: str,
        caller: Caller | None,
        mechanisms: tuple[str, ...] = (),
        authenticator: Authenticator | None = None,
        image: Callable[[], SecurityImage | None] = lambda: None,
    ) -> None:
        self.host = host
        self.caller = caller
        self._mechanisms = mechanisms
        self._authenticator = authenticator
        self._image = image
        self._exchange: _Exchange | None = None
        self._raw_tokens = False
        self.failure: str | None = None
        """Set when authentication failed: the answer is sent, then the connection closed."""

    @property
    def authenticated(self) -> bool:
        return self.caller is not None

    def limits(self, limits: Limits) -> Limits:
        """The frame limits: small ones until authenticated."""
        if self.authenticated:
            return limits
        return replace(
            limits, max_request_bytes=min(limits.max_request_bytes, MAX_UNAUTHENTICATED_BYTES)
        )

    async def serve_unauthenticated(self, frame: bytes, apis: ApiTable) -> bytes:
        """The answer frame to ``frame``; FrameError closes the connection at once."""
        if self._raw_tokens:
            return self._raw_token(frame)
        head = peek_head(frame)
        api = apis.find(head.api_key, head.api_version)
        if head.api_key not in (API_VERSIONS_KEY, *SASL_APIS):
            name = api.name if api is not None else f"API key {head.api_key}"
            raise FrameError(
                "not_authenticated",
                f"{name} before authentication: authenticate first (security.protocol="
                "SASL_SSL with sasl.mechanism and sasl.username / sasl.password)",
            )
        if api is None:
            if head.api_key == API_VERSIONS_KEY and head.api_version >= 0:
                return encode_response(head.correlation_id, apis.unsupported_api_versions())
            raise FrameError(
                "unsupported_api",
                f"API key {head.api_key} version {head.api_version} is not served: ask "
                "ApiVersions what is",
            )
        try:
            client_id, request = parse_request(frame, head)
        except Exception as e:  # kio raises several kinds for bytes that do not parse
            raise FrameError(
                "malformed_request", f"{api.name} v{head.api_version} does not parse: {e!r}"
            ) from None
        if head.api_key == SASL_HANDSHAKE_KEY:
            answer = self._handshake(request, head.api_version)
        elif head.api_key == SASL_AUTHENTICATE_KEY:
            answer = self._authenticate(request, head.api_version)
        else:
            context = RequestContext(
                head.api_key, head.api_version, head.correlation_id, client_id or "", self.host
            )
            answer = await api.handle(request, context)
        return encode_response(head.correlation_id, answer)

    def _handshake(self, request: Any, version: int) -> Any:
        answer_type = response_type(SASL_HANDSHAKE_KEY, version)
        mechanism = str(request.mechanism).upper()
        if self._exchange is not None:
            self.failure = "a second SaslHandshake on one connection"
            code = ErrorCode.illegal_sasl_state
        elif mechanism not in self._mechanisms:
            asked = str(request.mechanism)[:64]
            self.failure = (
                f"SASL mechanism {asked!r} is not enabled (this listener offers "
                f"{', '.join(self._mechanisms)}): set sasl.mechanism to one of them"
            )
            code = ErrorCode.unsupported_sasl_mechanism
        else:
            self._exchange = self._new_exchange(mechanism)
            self._raw_tokens = version == 0
            code = ErrorCode.none
        return build(answer_type, error_code=code, mechanisms=self._mechanisms)

    def _new_exchange(self, mechanism: str) -> _Exchange:
        if mechanism == PLAIN:
            assert self._authenticator is not None
            return _PlainExchange(self._authenticator)
        number = SCRAM_MECHANISMS[mechanism]
        image = self._image

        def credential_of(user: str) -> ScramCredential | None:
            current = image()
            return current.credential(user, number) if current is not None else None

        return _ScramExchange(number, credential_of)

    def _authenticate(self, request: Any, version: int) -> Any:
        answer_type = response_type(SASL_AUTHENTICATE_KEY, version)
        if self._exchange is None:
            self.failure = "SaslAuthenticate before SaslHandshake"
            return build(
                answer_type,
                error_code=ErrorCode.illegal_sasl_state,
                error_message=self.failure,
                auth_bytes=b"",
                session_lifetime=NO_SESSION_LIFETIME,
            )
        try:
            data = self._step(bytes(request.auth_bytes))
        except SaslFailed as e:
            self.failure = e.message
            return build(
                answer_type,
                error_code=ErrorCode.sasl_authentication_failed,
                error_message=f"Authentication failed: {e.message}",
                auth_bytes=b"",
                session_lifetime=NO_SESSION_LIFETIME,
            )
        return build(
            answer_type,
            error_code=ErrorCode.none,
            error_message=None,
            auth_bytes=data,
            session_lifetime=NO_SESSION_LIFETIME,
        )

    def _raw_token(self, frame: bytes) -> bytes:
        """A v0 handshake's exchange: bare SASL messages, answered bare; failure closes."""
        try:
            data = self._step(frame)
        except SaslFailed as e:
            raise FrameError("authentication_failed", e.message) from None
        if self.authenticated:
            self._raw_tokens = False
        return len(data).to_bytes(4, "big") + data

    def _step(self, data: bytes) -> bytes:
        assert self._exchange is not None
        answer, principal = self._exchange.step(data)
        if principal is not None:
            self.caller = Caller(principal, self.host, True)
        return answer
