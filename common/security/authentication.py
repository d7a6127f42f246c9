"""Who is calling: the server interceptor that authenticates every call and binds its Caller.

For each call, the principal comes from (first that applies):

1. a bearer token (``authorization: Bearer <base64(user:password)>``): checked against the
   user's stored SCRAM credential in the metadata image (SHA-512 preferred, SHA-256 accepted).
   As in Kafka's SASL_SSL, a token names the principal even on an mTLS connection. A token
   that does not check out is refused, always. Tokens are accepted over TLS, and over
   plaintext only from a loopback peer (a local cluster); anywhere else a token on plaintext
   has already crossed the network in clear and is refused;
2. the client certificate (TLS with client_auth): its subject DN through the principal
   mapping rules (``User:<name>``);
3. nobody: ``User:ANONYMOUS``, refused when the node's ``require_authentication`` is set.

The handler then sees the :class:`Caller` through ``current_caller()``, and every log line it
writes carries ``principal`` and ``request_id`` (structlog context variables). Works for
unary and streaming handlers alike.
"""

from __future__ import annotations

import contextlib
import inspect
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc
import structlog

from raftka.common.metadata.security_image import SecurityImage
from raftka.common.rpc.status import trailing_metadata_for
from raftka.common.security.caller import Caller, bind_caller, reset_caller
from raftka.common.security.model import ANONYMOUS, user_principal
from raftka.common.security.principal_mapping import NoMatchingRuleError, PrincipalMapper
from raftka.common.security.scram import VerificationCache
from raftka.common.security.settings import SecuritySettings
from raftka.common.security.tls import parse_bearer_token
from raftka.common.security_errors import AuthenticationFailedError
from raftka.v1.common_pb2 import SCRAM_SHA_256, SCRAM_SHA_512

log = structlog.get_logger(__name__)

AUTHORIZATION_KEY = "authorization"
BEARER = "bearer "
MECHANISM_PREFERENCE = (SCRAM_SHA_512, SCRAM_SHA_256)

HOW_TO_AUTHENTICATE = (
    "this listener requires authentication: present a client certificate signed by the "
    "cluster's CA (ssl.certificate.location / ssl.key.location), or a bearer token "
    "(sasl.username / sasl.password with security.protocol=SASL_SSL)"
)


def peer_host(peer: str) -> str:
    """The IP address of a gRPC peer string (``ipv4:1.2.3.4:5``, ``ipv6:[::1]:5``)."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]")
    return ""


def _is_loopback(host: str) -> bool:
    return host == "::1" or host.startswith("127.")


class Authenticator:
    """The sans-gRPC decision: metadata and TLS facts in, a Caller (or an error) out."""

    def __init__(
        self,
        settings: SecuritySettings,
        image: Callable[[], SecurityImage | None],
        cache: VerificationCache | None = None,
    ) -> None:
        self.settings = settings
        self.mapper = PrincipalMapper.parse(settings.principal_mapping_rules)
        self._image = image
        self._cache = cache or VerificationCache()

    def authenticate(
        self,
        *,
        token: str | None,
        cert_subject: str | None,
        tls: bool,
        cert_sans: Sequence[str] = (),
        host: str,
        method: str = "",
        request_id: str = "",
    ) -> Caller:
        """The caller, or AuthenticationFailedError saying why not."""
        if token is not None:
            principal = self._token_principal(token, tls=tls, host=host)
        elif cert_subject:
            try:
                principal = user_principal(self.mapper.name_of(cert_subject, cert_sans))
            except NoMatchingRuleError as e:
                raise AuthenticationFailedError(
                    f"the client certificate names no principal: {e}"
                ) from None
        else:
            if self.settings.require_authentication:
                raise AuthenticationFailedError(HOW_TO_AUTHENTICATE)
            return Caller(ANONYMOUS, host, False, method, request_id)
        return Caller(principal, host, True, method, request_id)

    def _token_principal(self, token: str, *, tls: bool, host: str) -> str:
        if not tls and not _is_loopback(host):
            raise AuthenticationFailedError(
                "bearer tokens are accepted only over TLS (this connection is plaintext, so "
                "the password has crossed the network in clear: change it)"
            )
        parsed = parse_bearer_token(token)
        if parsed is None:
            raise AuthenticationFailedError("the bearer token is not base64 of '<user>:<password>'")
        user, password = parsed
        return self.password_principal(user, password)

    def password_principal(self, user: str, password: str) -> str:
        """``User:<user>`` when ``password`` checks out against the user's stored SCRAM
        credential (a bearer token; SASL PLAIN on the Kafka listener), else
        AuthenticationFailedError (one message for an unknown user and a wrong password)."""
        image = self._image()
        for mechanism in MECHANISM_PREFERENCE:
            credential = image.credential(user, mechanism) if image is not None else None
            if credential is not None:
                if self._cache.verify(credential, password):
                    return user_principal(user)
                break
        # One message for an unknown user and a wrong password: no user enumeration.
        raise AuthenticationFailedError(
            f"authentication failed for user {user!r}: wrong user name or password"
        )


def _metadata_token(metadata: tuple[tuple[str, str | bytes], ...] | None) -> str | None:
    for key, value in metadata or ():
        if key == AUTHORIZATION_KEY:
            text = value.decode(errors="replace") if isinstance(value, bytes) else value
            if text[: len(BEARER)].lower() == BEARER:
                return text[len(BEARER) :].strip()
            return text.strip()
    return None


def _first(auth: dict[str, list[bytes]], key: str) -> str | None:
    values = auth.get(key)
    return values[0].decode(errors="replace") if values else None


class AuthenticationInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Authenticates every call on a server and binds its Caller for the handler."""

    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap(handler.unary_unary, method),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap(handler.unary_stream, method),
                handler.request_deserializer,
                handler.response_serializer,
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._wrap(handler.stream_unary, method),
                handler.request_deserializer,
                handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            self._wrap(handler.stream_stream, method),
            handler.request_deserializer,
            handler.response_serializer,
        )

    async def _bind(
        self, context: grpc.aio.ServicerContext[Any, Any], method: str
    ) -> tuple[Any, Any] | None:
        """Authenticate and bind; None when the call was refused (aborted)."""
        auth = context.auth_context()
        host = peer_host(context.peer() or "")
        # One id per call: the metrics interceptor (outside this one) may have bound it.
        request_id = structlog.contextvars.get_contextvars().get("request_id") or secrets.token_hex(
            8
        )
        try:
            caller = self.authenticator.authenticate(
                token=_metadata_token(context.invocation_metadata()),
                cert_subject=_first(auth, "x509_subject"),
                cert_sans=[
                    v.decode(errors="replace")
                    for v in auth.get("x509_subject_alternative_name", ())
                ],
                tls=_first(auth, "transport_security_type") == "ssl",
                host=host,
                method=method,
                request_id=request_id,
            )
        except AuthenticationFailedError as e:
            log.warning(
                "authentication_failed",
                method=method,
                peer=host,
                request_id=request_id,
                reason=e.message,
            )
            context.set_trailing_metadata(trailing_metadata_for(e))
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, e.message)
            return None  # pragma: no cover - abort raises
        token = bind_caller(caller)
        # Left bound after the handler (each call runs in a task of its own), so the lines
        # written about the call once it is over (rpc_failed) carry the principal too.
        structlog.contextvars.bind_contextvars(principal=caller.principal, request_id=request_id)
        return token, None

    @staticmethod
    def _unbind(bound: tuple[Any, Any]) -> None:
        token, _ = bound
        # A stream closed from another context raises ValueError: that context ends anyway.
        with contextlib.suppress(ValueError):
            reset_caller(token)

    def _wrap(self, behavior: Callable[..., Any], method: str) -> Callable[..., Any]:
        if inspect.isasyncgenfunction(behavior):

            async def stream(
                request: Any, context: grpc.aio.ServicerContext[Any, Any]
            ) -> AsyncIterator[Any]:
                bound = await self._bind(context, method)
                assert bound is not None
                try:
                    async for item in behavior(request, context):
                        yield item
                finally:
                    self._unbind(bound)

            return stream

        async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            bound = await self._bind(context, method)
            assert bound is not None
            try:
                return await behavior(request, context)
            finally:
                self._unbind(bound)

        return call


def authentication_interceptor(
    settings: SecuritySettings, image: Callable[[], SecurityImage | None]
) -> AuthenticationInterceptor:
    """The interceptor a node's server uses (``image`` reads its current metadata image's
    security part)."""
    return AuthenticationInterceptor(Authenticator(settings, image))
