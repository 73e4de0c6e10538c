"""Catalog of featurizer networks.

Each entry names an architecture, the versions it answers to, its input/output shapes, and a builder
that returns a Keras model with weights either read from a file or generated deterministically from a
seed (nothing is ever downloaded). Entries are modules listed in `_ENTRY_MODULES`; each defines `SPEC`.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from brainwave.errors import BrainwaveError

_ENTRY_MODULES = (
    "brainwave.models.resnet50",
    "brainwave.models.resnet152",
    "brainwave.models.vgg16",
    "brainwave.models.densenet121",
    "brainwave.models.ssd_vgg",
    "brainwave.models.efficientnet_lite0",
    "brainwave.models.efficientnet_lite1",
    "brainwave.models.efficientnet_lite2",
)


class UnknownFeaturizerError(BrainwaveError, LookupError):
    pass


@dataclass(frozen=True)
class FeaturizerOutput:
    """One output of a featurizer with several (a detector's heads): the tensor name a `brainwave` stage
    exposes it under, and its dims per image (without the batch axis)."""

    name: str
    dims: tuple[int, ...]


@dataclass(frozen=True)
class FeaturizerSpec:
    model_ref: str
    versions: tuple[str, ...]
    description: str
    input_shape: tuple[int, int, int]  # H, W, C of the preprocessed image the featurizer reads
    output_dims: tuple[int, ...]  # per image, without the batch dimension (of the first output, if several)
    # builder(weights_path or None, seed) -> keras.Model mapping (1, *input_shape) -> (1, *output_dims), or
    # to one tensor per entry of `outputs`, in that order
    builder: Callable = field(repr=False)
    weights_note: str = "deterministic from seed"
    outputs: tuple[FeaturizerOutput, ...] = ()  # several named outputs; () for the usual one

    def accepts(self, version: str | None) -> bool:
        return version is None or version in self.versions


def catalog_entries() -> list[FeaturizerSpec]:
    specs = []
    for module_name in _ENTRY_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # entry not shipped in this build
                continue
            raise
        specs.append(module.SPEC)
    return specs


def resolve_featurizer(model_ref: str, model_version: str | None = None) -> FeaturizerSpec:
    """Find the catalog entry for a stage; the error lists what exists."""
    entries = catalog_entries()
    for spec in entries:
        if spec.model_ref == model_ref:
            if spec.accepts(model_version):
                return spec
            raise UnknownFeaturizerError(
                f"featurizer {model_ref!r} has no version {model_version!r}; "
                f"available versions: {', '.join(spec.versions)}"
            )
    available = ", ".join(f"{s.model_ref} ({', '.join(s.versions)})" for s in entries)
    raise UnknownFeaturizerError(f"unknown featurizer model_ref {model_ref!r}; the catalog has: {available}")


def build_featurizer(spec: FeaturizerSpec, weights: str | Path | None = None, seed: int = 0):
    """Build the Keras model for `spec`; weights from `weights` if given, else deterministic from `seed`."""
    return spec.builder(Path(weights) if weights is not None else None, seed)
