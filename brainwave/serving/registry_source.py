"""Versions served straight from the model registry (`base_path = "registry:NAME"`, `brainwave deploy`)."""
from __future__ import annotations

from pathlib import Path


class RegistrySource:
    def __init__(self, registry, name: str) -> None:
        self.registry = registry
        self.name = name

    def versions(self) -> list[int]:
        return [record.version for record in self.registry.versions(self.name)]

    def fetch(self, version: int) -> Path:
        return self.registry.download(self.name, version)  # into the local cache, sha256 verified

    def __repr__(self) -> str:
        return f"registry:{self.name} ({self.registry.store.describe()})"
