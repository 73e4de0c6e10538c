"""Featurizer catalog: the networks a `type: brainwave` stage can name by model_ref / model_version."""
from brainwave.models.catalog import (
    FeaturizerSpec,
    UnknownFeaturizerError,
    build_featurizer,
    catalog_entries,
    resolve_featurizer,
)

__all__ = ["FeaturizerSpec", "UnknownFeaturizerError", "build_featurizer", "catalog_entries", "resolve_featurizer"]
