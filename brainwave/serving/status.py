"""Mapping errors to gRPC status codes, the way TF Serving reports them."""
from __future__ import annotations

import grpc

from brainwave.errors import ArchiveError, DefinitionError, InvalidInputError, ModelLoadError
from brainwave.featurizer.backend import BackendTimeoutError, BackendUnavailableError
from brainwave.serving.servables import ServableNotFoundError


class RequestError(Exception):
    """An error with an explicit gRPC status code."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_CODES: tuple[tuple[type, grpc.StatusCode], ...] = (
    (InvalidInputError, grpc.StatusCode.INVALID_ARGUMENT),
    (ServableNotFoundError, grpc.StatusCode.NOT_FOUND),
    (BackendTimeoutError, grpc.StatusCode.DEADLINE_EXCEEDED),
    (BackendUnavailableError, grpc.StatusCode.UNAVAILABLE),
    ((DefinitionError, ArchiveError, ModelLoadError), grpc.StatusCode.FAILED_PRECONDITION),
)


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, RequestError):
        return exc.code, exc.message
    for kinds, code in _CODES:
        if isinstance(exc, kinds):
            return code, str(exc)
    return grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"
