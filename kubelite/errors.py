"""One exception tree for the whole API, with Kubernetes' reasons and causes.

The apiserver raises these and sends each as a gRPC status whose code is the
class's, with a `kubelite.api.v1.Status` (Kubernetes' metav1.Status: reason,
causes, retryAfterSeconds) in the standard rich-status details. The client
rebuilds the same class from those details, so callers branch on the class,
`reason`, `causes` or `retryable`, never on message text. Lower layers (redis,
grpc) never leak past either boundary.

Errors split in two: retryable ones (the server is unavailable or overloaded,
a write lost a race) may succeed if the same call is made again later;
permanent ones will fail the same way until the object or request changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc

# An error names its problem in about 1 KiB at most: a 200 KB name must not come
# back inside the message (and push the status past gRPC's metadata limit).
MAX_MESSAGE = 1024
MAX_CAUSES = 10
MAX_CAUSE_MESSAGE = 256
MAX_FIELD = 256

# Kubernetes' metav1.CauseType values, keyed by the text field.Error puts first.
_CAUSE_TYPES = (
    ("Required value", "FieldValueRequired"),
    ("Invalid value", "FieldValueInvalid"),
    ("Unsupported value", "FieldValueNotSupported"),
    ("Duplicate value", "FieldValueDuplicate"),
    ("Forbidden", "FieldValueForbidden"),
    ("Too long", "FieldValueTooLong"),
    ("Too many", "FieldValueTooMany"),
    ("Not found", "FieldValueNotFound"),
    ("unknown field", "FieldValueUnknownField"),
    ("Invalid type", "FieldValueTypeInvalid"),
)


def clip(text: str, limit: int) -> str:
    """text cut to at most `limit` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    tail = f"... ({len(text) - limit} more characters)"
    return text[: max(limit - len(tail), 0)] + tail


@dataclass(frozen=True)
class Cause:
    """One thing wrong with a request: Kubernetes' metav1.StatusCause."""

    type: str
    message: str
    field: str = ""

    @classmethod
    def from_message(cls, field: str, message: str) -> Cause:
        """A cause from a field.Error-style message ("Required value", "Invalid value: ...")."""
        kind = next((t for prefix, t in _CAUSE_TYPES if message.startswith(prefix)),
                    "FieldValueInvalid")
        return cls(kind, clip(message, MAX_CAUSE_MESSAGE), clip(field, MAX_FIELD))

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class ApiError(Exception):
    """Base of every error the API returns."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    reason: str = "Unknown"
    retryable: bool = False
    http_status: int = 500
    # True when the apiserver sent this error (with its Status), False when gRPC
    # made it on the client's side: the call may never have reached a server.
    from_server: bool = False

    def __init__(self, message: str, *, field: str | None = None,
                 causes: list[Cause] | tuple[Cause, ...] = (), reason: str | None = None,
                 retry_after: int = 0) -> None:
        if field and not causes:
            causes = [Cause.from_message(field, message)]
        self.message = clip(message, MAX_MESSAGE)
        self.field = field
        self.causes: tuple[Cause, ...] = tuple(causes)[:MAX_CAUSES]
        if reason:
            self.reason = reason
        self.retry_after = retry_after
        super().__init__(clip(f"{field}: {message}" if field else message, MAX_MESSAGE))

    def status(self) -> dict[str, Any]:
        """The error as Kubernetes' Status object (as the REST API sends it)."""
        out: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                               "status": "Failure", "message": str(self),
                               "reason": self.reason, "code": self.http_status}
        details: dict[str, Any] = {}
        if self.causes:
            details["causes"] = [{"reason": c.type, "message": c.message, "field": c.field}
                                 for c in self.causes]
        if self.retry_after:
            details["retryAfterSeconds"] = self.retry_after
        if details:
            out["details"] = details
        return out


class InvalidError(ApiError):
    """The object fails validation (schema, names, per-kind rules): Kubernetes' 422."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "Invalid"
    http_status = 422


class BadRequestError(InvalidError):
    """The request itself is malformed (not JSON, a bad selector or token): a 400."""

    reason = "BadRequest"
    http_status = 400


class NotFoundError(ApiError):
    code = grpc.StatusCode.NOT_FOUND
    reason = "NotFound"
    http_status = 404


class AlreadyExistsError(ApiError):
    code = grpc.StatusCode.ALREADY_EXISTS
    reason = "AlreadyExists"
    http_status = 409


class ConflictError(ApiError):
    """A write carried a stale resourceVersion, or lost a race; read again and retry."""

    code = grpc.StatusCode.ABORTED
    reason = "Conflict"
    retryable = True
    http_status = 409


class ExpiredError(ApiError):
    """A list or watch asked for history that has been trimmed; list again (410)."""

    code = grpc.StatusCode.OUT_OF_RANGE
    reason = "Expired"
    http_status = 410


class PreconditionFailedError(ApiError):
    """A uid or resourceVersion precondition, or a namespace's state, forbids the write.

    Kubernetes answers these 409 Conflict (preconditions) or 403 Forbidden (a
    terminating namespace); unlike a Conflict, the same call fails again.
    """

    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "Conflict"
    http_status = 409


class TooManyRequestsError(ApiError):
    """The server sheds load; retry after `retry_after` seconds."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "TooManyRequests"
    retryable = True
    http_status = 429


class UnavailableError(ApiError):
    """The server or its storage is unreachable; the call may be retried."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = "ServiceUnavailable"
    retryable = True
    http_status = 503


class DeadlineExceededError(ApiError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED
    reason = "Timeout"
    retryable = True
    http_status = 504


class MethodNotSupportedError(ApiError):
    code = grpc.StatusCode.UNIMPLEMENTED
    reason = "MethodNotAllowed"
    http_status = 405


class InternalError(ApiError):
    """A kubelite bug. No input may cause it."""

    code = grpc.StatusCode.INTERNAL
    reason = "InternalError"
    http_status = 500


_CLASSES = (
    InvalidError, BadRequestError, NotFoundError, AlreadyExistsError, ConflictError,
    ExpiredError, PreconditionFailedError, TooManyRequestsError, UnavailableError,
    DeadlineExceededError, MethodNotSupportedError, InternalError,
)
_BY_CODE: dict[grpc.StatusCode, type[ApiError]] = {}
for _cls in _CLASSES:
    _BY_CODE.setdefault(_cls.code, _cls)
_BY_CODE_REASON = {(c.code, c.reason): c for c in _CLASSES}

# Codes gRPC itself produces (not the apiserver) that a client may retry.
_RETRYABLE_TRANSPORT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                        grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED)

STATUS_DETAILS_KEY = "grpc-status-details-bin"


def to_trailing_metadata(err: ApiError) -> tuple[tuple[str, bytes], ...]:
    """The rich-status trailer carrying err's reason and causes (google.rpc.Status)."""
    from google.protobuf import any_pb2
    from google.rpc import status_pb2

    from kubelite.api.v1 import api_pb2

    detail = api_pb2.Status(
        reason=err.reason, message=str(err), code=err.http_status,
        retry_after_seconds=err.retry_after,
        causes=[api_pb2.StatusCause(reason=c.type, message=c.message, field=c.field)
                for c in err.causes])
    packed = any_pb2.Any()
    packed.Pack(detail)
    rich = status_pb2.Status(code=err.code.value[0], message=str(err), details=[packed])
    return ((STATUS_DETAILS_KEY, rich.SerializeToString()),)


def _details(err: grpc.RpcError) -> Any:
    """The kubelite Status in err's rich-status trailer, or None."""
    from google.rpc import status_pb2

    from kubelite.api.v1 import api_pb2

    try:
        trailers = err.trailing_metadata() or ()
    except Exception:  # an error raised before any call had trailers
        return None
    for key, value in trailers:
        if key != STATUS_DETAILS_KEY:
            continue
        rich = status_pb2.Status()
        try:
            rich.ParseFromString(value)
        except Exception:
            return None
        for packed in rich.details:
            detail = api_pb2.Status()
            if packed.Unpack(detail):
                return detail
    return None


def from_rpc_error(err: grpc.RpcError) -> ApiError:
    """Translates a gRPC error from the API into the matching ApiError."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    message = (err.details() if hasattr(err, "details") else None) or str(code)
    detail = _details(err) if hasattr(err, "trailing_metadata") else None
    if detail is None:
        cls = _BY_CODE.get(code, ApiError)
        exc = cls(message)
        if cls is ApiError:
            exc.code = code
            exc.retryable = code in _RETRYABLE_TRANSPORT
        return exc
    cls = _BY_CODE_REASON.get((code, detail.reason)) or _BY_CODE.get(code, ApiError)
    exc = cls(detail.message or message, reason=detail.reason or None,
              causes=[Cause(c.reason, c.message, c.field) for c in detail.causes],
              retry_after=detail.retry_after_seconds)
    exc.from_server = True
    if cls is ApiError:
        exc.code = code
    return exc


NAMESPACE_TERMINATING = "NamespaceTerminating"
RESOURCE_VERSION_TOO_LARGE = "ResourceVersionTooLarge"


def is_resource_version_too_large(err: BaseException) -> bool:
    """Whether err refused a watch from a revision the store has not reached: list again."""
    return isinstance(err, ApiError) and any(c.type == RESOURCE_VERSION_TOO_LARGE
                                             for c in err.causes)


def is_namespace_terminating(err: BaseException) -> bool:
    """Whether err refused a create because its namespace is being deleted."""
    return isinstance(err, ApiError) and any(c.type == NAMESPACE_TERMINATING
                                             for c in err.causes)


def is_retryable(err: BaseException) -> bool:
    """Whether err may succeed if the same call is made again later."""
    return isinstance(err, ApiError) and err.retryable
