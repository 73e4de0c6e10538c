"""Mapping errors to gRPC status codes, the way TF Serving reports them."""
from __future__ import annotations

import grpc

from brainwave.errors import (ArchiveError, BrainwaveError, CancelledError, DefinitionError, InvalidInputError,
                              ModelLoadError, ResourceLimitError, clip)
from brainwave.featurizer.backend import BackendTimeoutError, BackendUnavailableError
from brainwave.serving.servables import LabelError, ServableNotFoundError

INTERNAL_MESSAGE = "internal server error; the server's log has the cause"


class RequestError(BrainwaveError):
    """An error with an explicit gRPC status code."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_CODES: tuple[tuple[type | tuple[type, ...], grpc.StatusCode], ...] = (
    (InvalidInputError, grpc.StatusCode.INVALID_ARGUMENT),
    (ServableNotFoundError, grpc.StatusCode.NOT_FOUND),
    (ResourceLimitError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (CancelledError, grpc.StatusCode.CANCELLED),
    (BackendTimeoutError, grpc.StatusCode.DEADLINE_EXCEEDED),
    (BackendUnavailableError, grpc.StatusCode.UNAVAILABLE),
    ((DefinitionError, ArchiveError, ModelLoadError, LabelError), grpc.StatusCode.FAILED_PRECONDITION),
)


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """(code, one-line message). Anything that is not one of the project's errors is INTERNAL, and its text
    (which may hold paths or internals) stays in the server log, not in the reply."""
    if isinstance(exc, RequestError):
        return exc.code, clip(exc.message, 1000)
    for kinds, code in _CODES:
        if isinstance(exc, kinds):
            return code, clip(str(exc), 1000)
    return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE
