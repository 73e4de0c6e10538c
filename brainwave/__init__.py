"""brainwave: open Brainwave-style real-time inference service.

`ServiceDefinition`, `TensorflowStage`, `BrainwaveStage` build pipelines; `PredictionClient` scores them.
Imports are lazy so that `import brainwave` stays cheap (TensorFlow loads only when a pipeline does).
"""
from importlib import import_module

_EXPORTS = {
    "ServiceDefinition": "brainwave.pipeline.definition",
    "TensorflowStage": "brainwave.pipeline.definition",
    "BrainwaveStage": "brainwave.pipeline.definition",
    "Pipeline": "brainwave.pipeline.pipeline",
    "PredictionClient": "brainwave.client",
}

__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'brainwave' has no attribute {name!r}")
