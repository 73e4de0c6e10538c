"""Exceptions shared across layers. Serving maps each to a gRPC status code (see serving/status.py)."""


class BrainwaveError(Exception):
    """Base of every error this package raises on purpose."""


class DefinitionError(BrainwaveError):
    """A service definition (service_def.json) is invalid; the message names the stage index and field."""


class ArchiveError(BrainwaveError):
    """A model.zip is unreadable or unsafe (path traversal, links, size limits, missing files)."""


class ModelLoadError(BrainwaveError):
    """A pipeline stage could not be loaded (bad graph, unknown tensor, unknown featurizer...)."""


class InvalidInputError(BrainwaveError):
    """A request's input cannot be processed (wrong dtype or shape, undecodable image...)."""


class ResourceLimitError(BrainwaveError):
    """A request would cost more memory or work than the server allows right now (maps to RESOURCE_EXHAUSTED)."""


class CancelledError(BrainwaveError):
    """The client went away (cancelled, or its deadline passed): the work was stopped."""


def clip(text: str, limit: int = 300) -> str:
    """`text` cut to at most `limit` characters, saying how long it was."""
    return text if len(text) <= limit else f"{text[:max(limit - 20, 0)]}... ({len(text)} chars)"


def brief(value: object, limit: int = 80) -> str:
    """repr(value), clipped: user-supplied values go into error messages (and gRPC trailers, whose size is
    limited) only this way, so a 20 KB model name cannot blow up a reply or a log line."""
    return clip(repr(value), limit)
