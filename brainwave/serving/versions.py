"""Where served versions come from, and moving the server from one set of versions to another.

A model's versions come from a *source*: a directory laid out like TF Serving's base paths
(`BASE/1/model.zip`, `BASE/2/model.zip`, ...) or a model registry (see brainwave.registry). A reload names
the versions to serve (TF Serving's version policy: latest N, all, or specific) and the labels; the
`VersionController` loads, relabels and unloads in an order chosen by the load policy:

* availability-preserving (default): load and warm the new versions, move labels, then unload old ones
  once their in-flight requests finish: there is always a version to answer.
* resource-preserving: unload first, then load: for a device that can hold one model (an FPGA), at the
  price of a gap during which requests for that model get NOT_FOUND.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from brainwave.errors import BrainwaveError, clip
from brainwave.pipeline import Pipeline
from brainwave.serving.servables import AVAILABLE, ServableManager, ServableNotFoundError

log = logging.getLogger("brainwave.serving")

AVAILABILITY_PRESERVING = "availability"
RESOURCE_PRESERVING = "resource"


class SourceError(BrainwaveError, ValueError):
    """A version source or policy that cannot be used as given (not a directory, a malformed policy)."""


class VersionSource(Protocol):
    def versions(self) -> list[int]:
        """Versions this source can provide, ascending."""
        ...

    def fetch(self, version: int) -> Path:
        """A local model.zip for `version`."""
        ...


class DirectorySource:
    """TF Serving's layout: numbered subdirectories of a base path, each holding model.zip."""

    def __init__(self, base_path: Path) -> None:
        self.base_path = Path(base_path)
        if not self.base_path.is_dir():
            raise SourceError(f"base path {clip(str(self.base_path), 200)} is not a directory")

    def versions(self) -> list[int]:
        return sorted(int(p.name) for p in self.base_path.iterdir()
                      if p.name.isdigit() and (p / "model.zip").is_file())

    def fetch(self, version: int) -> Path:
        path = self.base_path / str(version) / "model.zip"
        if not path.is_file():
            raise ServableNotFoundError(f"{self.base_path} has no version {version} (expected {path})")
        return path

    def __repr__(self) -> str:
        return f"DirectorySource({self.base_path})"


@dataclass(frozen=True)
class VersionPolicy:
    """TF Serving's ServableVersionPolicy: latest N (the default, N=1), all, or specific versions."""

    kind: str = "latest"
    count: int = 1
    specific: tuple[int, ...] = ()

    def choose(self, available: list[int]) -> list[int]:
        if self.kind == "all":
            return list(available)
        if self.kind == "specific":
            missing = sorted(set(self.specific) - set(available))
            if missing:
                raise ServableNotFoundError(f"versions {missing} are not in the source (it has {available})")
            return sorted(self.specific)
        return sorted(available)[-self.count:] if self.count > 0 else []

    @classmethod
    def parse(cls, text: str) -> "VersionPolicy":
        """'latest', 'latest:2', 'all', or '1,3'."""
        if text == "all":
            return cls("all")
        kind, _, count = text.partition(":")
        if kind == "latest" and (count == "" or count.isdigit()):
            return cls("latest", int(count or 1))
        versions = text.split(",")
        if not all(v.strip().isdigit() for v in versions):
            raise SourceError(f"versions must be latest[:N], all, or a list like 1,3; got {clip(text, 60)!r}")
        return cls("specific", specific=tuple(int(v) for v in versions))


@dataclass
class ModelPlan:
    name: str
    source: VersionSource
    policy: VersionPolicy = field(default_factory=VersionPolicy)
    labels: dict[str, int] = field(default_factory=dict)


class VersionController:
    """Applies plans to a ServableManager; one reconfiguration at a time."""

    def __init__(self, manager: ServableManager, loader: Callable[[Path], Pipeline],
                 load_policy: str = AVAILABILITY_PRESERVING) -> None:
        if load_policy not in (AVAILABILITY_PRESERVING, RESOURCE_PRESERVING):
            raise ValueError(f"load policy must be {AVAILABILITY_PRESERVING!r} or {RESOURCE_PRESERVING!r}")
        self.manager = manager
        self.loader = loader
        self.load_policy = load_policy
        self.sources: dict[str, VersionSource] = {}
        self._lock = threading.Lock()

    def apply(self, plans: list[ModelPlan], remove_others: bool = True) -> None:
        with self._lock:
            for plan in plans:
                self._apply_one(plan)
            if remove_others:
                keep = {p.name for p in plans}
                for name in self.manager.model_names():
                    if name not in keep:
                        log.info("unloading model %s (not in the new config)", name)
                        self.manager.remove_model(name)
                        self.sources.pop(name, None)

    def _apply_one(self, plan: ModelPlan) -> None:
        wanted = plan.policy.choose(plan.source.versions())
        if not wanted:
            raise ServableNotFoundError(f"the version policy selects no version of {plan.name} from {plan.source!r}")
        missing_labels = {k: v for k, v in plan.labels.items() if v not in wanted}
        if missing_labels:
            raise ValueError(f"labels {missing_labels} of {plan.name} point at versions that are not being served {wanted}")
        self.sources[plan.name] = plan.source
        loaded = self._loaded(plan.name)
        to_load = [v for v in wanted if v not in loaded]
        to_unload = [v for v in loaded if v not in wanted]
        if self.load_policy == RESOURCE_PRESERVING:
            self._relabel(plan.name, {k: v for k, v in self._labels(plan.name).items() if v not in to_unload})
            self._unload(plan.name, to_unload)
            self._load(plan.name, plan.source, to_load)
            self._relabel(plan.name, plan.labels)
        else:
            self._load(plan.name, plan.source, to_load)
            self._relabel(plan.name, plan.labels)
            self._unload(plan.name, to_unload)

    def ensure_loaded(self, name: str, version: int) -> None:
        """Load one more version of a served model from its source (used by rollback)."""
        with self._lock:
            if version in self._loaded(name):
                return
            source = self.sources.get(name)
            if source is None:
                raise ServableNotFoundError(f"version {version} of {name} is not loaded and the model has no source to load it from")
            self._load(name, source, [version])

    def unload(self, name: str, versions: list[int]) -> None:
        with self._lock:
            self._unload(name, versions)

    def _loaded(self, name: str) -> list[int]:
        try:
            return [s.version for s in self.manager.versions(name)]
        except ServableNotFoundError:
            return []

    def _labels(self, name: str) -> dict[str, int]:
        try:
            return self.manager.labels(name)
        except ServableNotFoundError:
            return {}

    def _load(self, name: str, source: VersionSource, versions: list[int]) -> None:
        for version in versions:
            log.info("loading %s version %d from %r", name, version, source)
            self.manager.load(name, version, lambda v=version: self.loader(source.fetch(v)))

    def _relabel(self, name: str, labels: dict[str, int]) -> None:
        canary = self.manager.canary(name) if name in self.manager.model_names() else None
        if canary is not None and "canary" not in labels:
            labels = {**labels, "canary": canary.version} if canary.version in self._loaded(name) else labels
        if name in self.manager.model_names():
            self.manager.set_labels(name, labels)

    def _unload(self, name: str, versions: list[int]) -> None:
        canary = self.manager.canary(name) if name in self.manager.model_names() else None
        for version in versions:
            if canary is not None and canary.version == version:
                self.manager.set_canary(name, None)
            log.info("unloading %s version %d", name, version)
            self.manager.unload(name, version)

    def available_versions(self, name: str) -> list[int]:
        return [s.version for s in self.manager.versions(name) if s.state == AVAILABLE]
