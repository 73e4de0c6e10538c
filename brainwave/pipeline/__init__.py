"""Pipelines: service_def.json, model.zip, and running the stages."""
from brainwave.pipeline.archive import ArchiveLimits, extract_model_zip, read_definition
from brainwave.pipeline.definition import BrainwaveStage, ServiceDefinition, TensorflowStage
from brainwave.pipeline.pipeline import Pipeline, RunResult


def load_service_definition(model_zip) -> ServiceDefinition:
    """Validate a model.zip (structure, service_def.json, referenced files) without loading graphs."""
    from pathlib import Path

    return read_definition(Path(model_zip))


__all__ = ["ArchiveLimits", "BrainwaveStage", "Pipeline", "RunResult", "ServiceDefinition", "TensorflowStage",
           "extract_model_zip", "load_service_definition", "read_definition"]
