"""Who is calling: the authenticated principal of the request being handled.

The server's authentication interceptor sets it for each call (from the client certificate or
the bearer token) before the handler runs; handlers and the authorizer read it with
:func:`current_caller`. It is a context variable, so each call's task sees its own caller and
code called from a handler needs no extra parameter.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from dataclasses import dataclass

from raftka.common.security.model import ANONYMOUS


@dataclass(frozen=True, slots=True)
class Caller:
    """The principal of one request and where it came from."""

    principal: str
    """``User:<name>``: from the certificate (mapping rules), the token's user, or
    ``User:ANONYMOUS``."""
    host: str
    """The peer's IP address ("" when unknown, e.g. a call made inside the node)."""
    authenticated: bool
    """True when a client certificate or a valid token named the principal."""
    method: str = ""
    """The gRPC method, ``/raftka.v1.Service/Method`` (for logs)."""
    request_id: str = ""
    """A per-call id that the node's log lines about this request carry."""


ANONYMOUS_CALLER = Caller(principal=ANONYMOUS, host="", authenticated=False)

_CALLER: ContextVar[Caller] = ContextVar("raftka_caller", default=ANONYMOUS_CALLER)


def current_caller() -> Caller:
    """The caller of the request this task is handling (anonymous outside of one)."""
    return _CALLER.get()


def bind_caller(caller: Caller) -> Token[Caller]:
    """Make ``caller`` the current one; pass the token to :func:`reset_caller` afterwards."""
    return _CALLER.set(caller)


def reset_caller(token: Token[Caller]) -> None:
    _CALLER.reset(token)
