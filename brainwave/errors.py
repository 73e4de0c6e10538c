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
