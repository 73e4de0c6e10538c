"""Servables: model name -> versions -> loaded pipelines, with labels and a default model."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from brainwave.pipeline import Pipeline


class ServableNotFoundError(LookupError):
    pass


@dataclass
class Servable:
    name: str
    version: int
    pipeline: Pipeline
    state: str = "AVAILABLE"  # a tensorflow.serving.ModelVersionStatus.State name


@dataclass
class _Model:
    versions: dict[int, Servable] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)


class ServableManager:
    """Thread-safe table of what is served. With no version asked for, the highest available one answers."""

    def __init__(self) -> None:
        self._models: dict[str, _Model] = {}
        self._lock = threading.Lock()

    def add(self, name: str, version: int, pipeline: Pipeline) -> Servable:
        servable = Servable(name, version, pipeline)
        with self._lock:
            self._models.setdefault(name, _Model()).versions[version] = servable
        return servable

    def set_label(self, name: str, label: str, version: int) -> None:
        with self._lock:
            model = self._models.get(name)
            if model is None or version not in model.versions:
                raise ServableNotFoundError(f"cannot label version {version} of {name!r}: it is not loaded")
            model.labels[label] = version

    def model_names(self) -> list[str]:
        with self._lock:
            return sorted(self._models)

    def default_model_name(self) -> str | None:
        """The model a request without a name goes to: the only one served, if there is exactly one."""
        names = self.model_names()
        return names[0] if len(names) == 1 else None

    def resolve(self, name: str, version: int | None = None, label: str | None = None) -> Servable:
        """Find a servable; errors read like TF Serving's ("Servable not found for request: ...")."""
        with self._lock:
            model = self._models.get(name)
            if label:
                request = f"Label({name}, {label})"
                if model is None or label not in model.labels:
                    raise ServableNotFoundError(f"Servable not found for request: {request}")
                version = model.labels[label]
            request = f"Specific({name}, {version})" if version is not None else f"Latest({name})"
            if model is None:
                raise ServableNotFoundError(f"Servable not found for request: {request}")
            available = {v: s for v, s in model.versions.items() if s.state == "AVAILABLE"}
            if version is None:
                if not available:
                    raise ServableNotFoundError(f"Servable not found for request: {request}")
                return available[max(available)]
            if version not in available:
                raise ServableNotFoundError(f"Servable not found for request: {request}")
            return available[version]

    def versions(self, name: str) -> list[Servable]:
        with self._lock:
            model = self._models.get(name)
            if model is None:
                raise ServableNotFoundError(f"Could not find any versions of model {name}")
            return [model.versions[v] for v in sorted(model.versions)]

    def close(self) -> None:
        with self._lock:
            models, self._models = self._models, {}
        for model in models.values():
            for servable in model.versions.values():
                servable.pipeline.close()
