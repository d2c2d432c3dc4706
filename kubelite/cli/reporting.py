"""How a failure reaches the user: one readable line on stderr, exit code 1.

Server errors read as kubectl's do (`Error from server (NotFound): ...`); a
server that cannot be reached, a bad file or a bad argument reads
`error: ...`. Nothing the user can cause ends in a traceback.
"""

from __future__ import annotations

from kubelite import errors

# The CLI raises the library's BadRequestError where Kubernetes answers 400
# (logs of a pod that has no node yet, of a container that is still waiting).
BadRequestError = errors.BadRequestError

class CliError(Exception):
    """A failure the CLI reports as `error: <message>` and exit code 1."""


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def is_connect_failure(err: errors.ApiError) -> bool:
    """True when the call never reached an apiserver (as opposed to the server failing):
    an UNAVAILABLE that gRPC made itself, with no Status from the apiserver."""
    return isinstance(err, errors.UnavailableError) and not err.from_server


def is_fatal(err: errors.ApiError) -> bool:
    """True when no further request can succeed either: stop instead of going on."""
    return is_connect_failure(err) or isinstance(err, errors.DeadlineExceededError)


def api_error_line(err: errors.ApiError, *, server: str, timeout: float) -> str:
    """The one line that reports an error from (or on the way to) the apiserver."""
    if is_connect_failure(err):
        return f"error: cannot connect to the apiserver at {server}: {connect_reason(err)}"
    if isinstance(err, errors.DeadlineExceededError):
        return f"error: the apiserver at {server} did not answer within {timeout:g}s"
    return f"Error from server ({err.reason}): {one_line(str(err))}"


def connect_reason(err: errors.ApiError) -> str:
    """grpc's long connect error cut to its last, telling clause ('Connection refused')."""
    text = one_line(err.message)
    tail = text.rsplit(": ", 1)[-1]
    return tail if tail and len(tail) < len(text) else text
