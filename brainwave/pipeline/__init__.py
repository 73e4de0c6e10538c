"""Pipelines: service_def.json, model.zip, and running the stages.

`Pipeline` (which needs TensorFlow) is imported on first use, so that reading and validating a model.zip,
which the registry commands do, stays free of TensorFlow's start-up cost.
"""
from __future__ import annotations

from importlib import import_module
from pathlib import Path

from brainwave.pipeline.archive import ArchiveLimits, extract_model_zip, read_definition
from brainwave.pipeline.definition import BrainwaveStage, OnnxStage, ServiceDefinition, TensorflowStage


def load_service_definition(model_zip) -> ServiceDefinition:
    """Validate a model.zip without loading graphs: its structure, service_def.json, the files it references,
    and that every featurizer it names is in the catalog."""
    definition = read_definition(Path(model_zip))
    check_featurizers(definition)
    return definition


def check_featurizers(definition: ServiceDefinition) -> None:
    """Every `brainwave` stage with a `model_ref` names a catalog featurizer and version (else DefinitionError
    naming the stage)."""
    from brainwave.errors import DefinitionError
    from brainwave.models.catalog import UnknownFeaturizerError, resolve_featurizer

    for index, stage in enumerate(definition.pipeline):
        if isinstance(stage, BrainwaveStage) and stage.model_ref is not None:  # else the user's own file
            try:
                resolve_featurizer(stage.model_ref, stage.model_version)
            except UnknownFeaturizerError as exc:
                raise DefinitionError(f"stage {index}: {exc}") from None


def __getattr__(name: str):
    if name in ("Pipeline", "RunResult"):
        return getattr(import_module("brainwave.pipeline.pipeline"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ArchiveLimits", "BrainwaveStage", "OnnxStage", "Pipeline", "RunResult", "ServiceDefinition", "TensorflowStage",
           "check_featurizers", "extract_model_zip", "load_service_definition", "read_definition"]
