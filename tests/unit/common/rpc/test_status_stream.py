"""transport_loss: a stream's INTERNAL from a dead connection reads as UNAVAILABLE."""

from __future__ import annotations

import grpc

from raftka.common.rpc.status import ERROR_KEY, transport_loss


def _error(
    code: grpc.StatusCode, trailing: tuple[tuple[str, str], ...] = ()
) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailing), "Internal error from Core"
    )


def test_a_core_internal_error_on_a_stream_is_an_unreachable_peer() -> None:
    seen = transport_loss(_error(grpc.StatusCode.INTERNAL))
    assert seen.code() == grpc.StatusCode.UNAVAILABLE
    assert "Internal error from Core" in (seen.details() or "")


def test_the_servers_own_errors_and_other_codes_are_kept() -> None:
    answered = _error(grpc.StatusCode.INTERNAL, ((ERROR_KEY, "UNKNOWN_SERVER_ERROR"),))
    assert transport_loss(answered) is answered
    refused = _error(grpc.StatusCode.INVALID_ARGUMENT)
    assert transport_loss(refused) is refused
