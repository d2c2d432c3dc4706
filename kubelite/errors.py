"""One exception tree for the whole API, mapped one-to-one onto gRPC codes.

The apiserver raises these and turns them into gRPC statuses at its boundary;
the client turns gRPC statuses back into them. Lower layers (redis, grpc) never
leak past either boundary.
"""

from __future__ import annotations

import grpc


class ApiError(Exception):
    """Base of every error the API returns."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.message = message
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class InvalidError(ApiError):
    """The object or request is malformed (schema, name, size, selector)."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFoundError(ApiError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(ApiError):
    code = grpc.StatusCode.ALREADY_EXISTS


class ConflictError(ApiError):
    """A write carried a stale resourceVersion; read again and retry."""

    code = grpc.StatusCode.ABORTED


class ExpiredError(ApiError):
    """A watch asked for history that has been trimmed; list again."""

    code = grpc.StatusCode.OUT_OF_RANGE


class PreconditionFailedError(ApiError):
    """A uid or resourceVersion precondition, or a namespace's state, forbids the write."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class UnavailableError(ApiError):
    """The server or its storage is unreachable; the call may be retried."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceededError(ApiError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


_BY_CODE: dict[grpc.StatusCode, type[ApiError]] = {
    cls.code: cls
    for cls in (
        InvalidError, NotFoundError, AlreadyExistsError, ConflictError, ExpiredError,
        PreconditionFailedError, UnavailableError, DeadlineExceededError,
    )
}


def from_rpc_error(err: grpc.RpcError) -> ApiError:
    """Translates a gRPC error from the API into the matching ApiError."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = (err.details() if hasattr(err, "details") else None) or str(code)
    cls = _BY_CODE.get(code, ApiError)
    exc = cls(details)
    exc.code = code
    return exc
