"""Servables: model name -> versions -> loaded pipelines, with labels, a canary route and per-version figures.

Requests hold a *lease* on the version that serves them; unloading a version first stops new leases, then
waits for the in-flight ones to finish, then closes the pipeline. That is what lets versions be swapped while
traffic flows without a single failed request (TF Serving's availability-preserving policy).
"""
from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from brainwave.errors import BrainwaveError, clip
from brainwave.pipeline import Pipeline

# tensorflow.serving.ModelVersionStatus.State names
START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"


class ServableNotFoundError(BrainwaveError, LookupError):
    pass


class LabelError(BrainwaveError, ValueError):
    """A label names a version that is not loaded and available (TF Serving refuses those too)."""


@dataclass
class VersionStats:
    """Live figures for one version: traffic, errors, latency, and agreement with its peer on mirrored requests."""

    requests: int = 0
    errors: int = 0
    mirrored: int = 0
    mirror_agreements: int = 0
    latencies: deque = field(default_factory=lambda: deque(maxlen=4096))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, seconds: float, ok: bool) -> None:
        with self._lock:
            self.requests += 1
            self.errors += 0 if ok else 1
            self.latencies.append(seconds)

    def record_mirror(self, agreed: bool) -> None:
        with self._lock:
            self.mirrored += 1
            self.mirror_agreements += int(agreed)

    def percentile_ms(self, q: float) -> float | None:
        return float(np.percentile(np.asarray(self.latencies) * 1000, q)) if self.latencies else None

    @property
    def agreement(self) -> float | None:
        return self.mirror_agreements / self.mirrored if self.mirrored else None


@dataclass
class Servable:
    name: str
    version: int
    pipeline: Pipeline | None
    state: str = AVAILABLE
    error: str = ""
    in_flight: int = 0
    stats: VersionStats = field(default_factory=VersionStats)


@dataclass
class DeterministicShare:
    """Picks a share of calls without randomness: over any n calls, `take()` is true floor(n*share) or
    ceil(n*share) times, so a 10% canary gets 100 of 1000 requests, not 'about' 100."""

    share: float
    _credit: float = 0.0

    def take(self) -> bool:
        self._credit += self.share
        if self._credit >= 1.0 - 1e-12:
            self._credit -= 1.0
            return True
        return False


@dataclass
class CanaryRoute:
    version: int
    share: float  # fraction of unpinned requests sent to the canary
    mirror_share: float = 0.0  # fraction of canary-split requests also run on the other side, to compare top-1
    _traffic: DeterministicShare = field(init=False, repr=False)
    _mirroring: DeterministicShare = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._traffic = DeterministicShare(self.share)
        self._mirroring = DeterministicShare(self.mirror_share)

    def take(self) -> bool:
        return self._traffic.take()

    def mirror(self) -> bool:
        return self._mirroring.take()


@dataclass
class _Model:
    versions: dict[int, Servable] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    canary: CanaryRoute | None = None
    ended: dict[int, Servable] = field(default_factory=dict)  # unloaded or failed, kept for GetModelStatus


@dataclass(frozen=True)
class Lease:
    """The servable a request runs on, and whether its route was the canary split (for mirroring)."""

    servable: Servable
    routed: bool = False


class ServableManager:
    """Thread-safe table of what is served.

    Unpinned requests go to the canary share if one is set, otherwise to the `stable` label if set,
    otherwise to the highest available version.
    """

    def __init__(self) -> None:
        self._models: dict[str, _Model] = {}
        self._cond = threading.Condition(threading.RLock())
        self._listeners: list[Callable[[], None]] = []

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call `listener()` whenever a version becomes available or goes away (health status follows it)."""
        self._listeners.append(listener)
        listener()

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()

    def any_available(self) -> bool:
        with self._cond:
            return any(s.state == AVAILABLE for m in self._models.values() for s in m.versions.values())

    # --- loading and unloading -----------------------------------------------------------------------
    def add(self, name: str, version: int, pipeline: Pipeline) -> Servable:
        """Serve an already loaded pipeline."""
        servable = Servable(name, version, pipeline)
        with self._cond:
            model = self._models.setdefault(name, _Model())
            if version in model.versions:
                raise ValueError(f"version {version} of {name!r} is already served")
            model.ended.pop(version, None)
            model.versions[version] = servable
        self._changed()
        return servable

    def load(self, name: str, version: int, loader: Callable[[], Pipeline]) -> Servable:
        """Load (and warm up, inside `loader`) a version; it receives traffic only once AVAILABLE."""
        servable = Servable(name, version, None, state=LOADING)
        with self._cond:
            model = self._models.setdefault(name, _Model())
            if version in model.versions:
                return model.versions[version]
            model.ended.pop(version, None)
            model.versions[version] = servable
        try:
            pipeline = loader()
        except Exception as exc:
            with self._cond:
                servable.state, servable.error = END, f"{type(exc).__name__}: {exc}"
                model.versions.pop(version, None)
                model.ended[version] = servable
            raise
        with self._cond:
            servable.pipeline = pipeline
            servable.state = AVAILABLE
            self._cond.notify_all()
        self._changed()
        return servable

    def unload(self, name: str, version: int, timeout: float = 300.0) -> None:
        """Stop routing to a version, let in-flight requests finish, then free it."""
        with self._cond:
            model = self._models.get(name)
            servable = model.versions.get(version) if model else None
            if servable is None:
                raise ServableNotFoundError(f"version {version} of {name!r} is not loaded")
            in_use = [label for label, v in model.labels.items() if v == version]
            if in_use:
                raise LabelError(f"version {version} of {name!r} still carries label(s) {', '.join(in_use)}; move them first")
            if model.canary and model.canary.version == version:
                model.canary = None
            servable.state = UNLOADING
            self._changed()
            deadline = time.monotonic() + timeout
            while servable.in_flight:
                if not self._cond.wait(timeout=max(0.0, deadline - time.monotonic())):
                    break
            model.versions.pop(version, None)
            servable.state = END
            model.ended[version] = servable
        if servable.pipeline is not None:
            servable.pipeline.close()

    # --- labels and canary ---------------------------------------------------------------------------
    def set_labels(self, name: str, labels: dict[str, int]) -> None:
        """Replace a model's labels; every label must point at an AVAILABLE version."""
        with self._cond:
            model = self._require(name)
            for label, version in labels.items():
                servable = model.versions.get(version)
                if servable is None or servable.state != AVAILABLE:
                    raise LabelError(f"label {label!r} cannot point at version {version} of {name!r}: it is not available")
            model.labels = dict(labels)

    def set_label(self, name: str, label: str, version: int) -> None:
        with self._cond:
            self.set_labels(name, {**self._require(name).labels, label: version})

    def labels(self, name: str) -> dict[str, int]:
        with self._cond:
            return dict(self._require(name).labels)

    def set_canary(self, name: str, version: int | None, share: float = 0.0, mirror_share: float = 0.0) -> None:
        if not 0.0 <= share <= 1.0 or not 0.0 <= mirror_share <= 1.0:
            raise ValueError("canary share and mirror share must be between 0 and 1")
        with self._cond:
            model = self._require(name)
            if version is None:
                model.canary = None
                model.labels.pop("canary", None)
                return
            servable = model.versions.get(version)
            if servable is None or servable.state != AVAILABLE:
                raise LabelError(f"version {version} of {name!r} is not available and cannot be the canary")
            model.canary = CanaryRoute(version, share, mirror_share)
            model.labels["canary"] = version

    def canary(self, name: str) -> CanaryRoute | None:
        with self._cond:
            return self._require(name).canary

    # --- routing -------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lease(self, name: str, version: int | None = None, label: str | None = None) -> Iterator[Lease]:
        """Hold the version that serves one request; unloading waits until the lease is returned."""
        with self._cond:
            lease = self._route(name, version, label)
            lease.servable.in_flight += 1
        try:
            yield lease
        finally:
            with self._cond:
                lease.servable.in_flight -= 1
                if lease.servable.in_flight == 0:
                    self._cond.notify_all()

    def resolve(self, name: str, version: int | None = None, label: str | None = None) -> Servable:
        with self._cond:
            return self._route(name, version, label, count=False).servable

    def _route(self, name: str, version: int | None, label: str | None, count: bool = True) -> Lease:
        model = self._models.get(name)
        if label:
            if model is None or label not in model.labels:
                raise ServableNotFoundError(f"Servable not found for request: Label({clip(name, 100)}, {clip(label, 100)})")
            version = model.labels[label]
        request = f"Specific({clip(name, 100)}, {version})" if version is not None else f"Latest({clip(name, 100)})"
        available = {v: s for v, s in (model.versions.items() if model else ()) if s.state == AVAILABLE}
        if version is not None:
            if version not in available:
                raise ServableNotFoundError(f"Servable not found for request: {request}")
            return Lease(available[version])
        if not available:
            raise ServableNotFoundError(f"Servable not found for request: {request}")
        canary = model.canary
        if canary is not None and canary.version in available and count and canary.take():
            return Lease(available[canary.version], routed=True)
        stable = model.labels.get("stable")
        if stable in available:
            return Lease(available[stable], routed=canary is not None)
        primary = max(v for v in available if canary is None or v != canary.version or len(available) == 1)
        return Lease(available[primary], routed=canary is not None)

    def mirror_peer(self, name: str, servable: Servable) -> Servable | None:
        """For a canary-routed request, the other side (stable <-> canary) if mirroring picks this request."""
        with self._cond:
            model = self._models.get(name)
            canary = model.canary if model else None
            if canary is None or not canary.mirror():
                return None
            if servable.version == canary.version:
                peer_version = model.labels.get("stable")
                if peer_version is None:
                    others = [v for v, s in model.versions.items() if s.state == AVAILABLE and v != canary.version]
                    peer_version = max(others) if others else None
            else:
                peer_version = canary.version
            peer = model.versions.get(peer_version) if peer_version is not None else None
            if peer is None or peer.state != AVAILABLE:
                return None
            peer.in_flight += 1
            return peer

    def release(self, servable: Servable) -> None:
        with self._cond:
            servable.in_flight -= 1
            if servable.in_flight == 0:
                self._cond.notify_all()

    # --- inspection ----------------------------------------------------------------------------------
    def model_names(self) -> list[str]:
        with self._cond:
            return sorted(self._models)

    def default_model_name(self) -> str | None:
        """The model a request without a name goes to: the only one served, if there is exactly one."""
        names = self.model_names()
        return names[0] if len(names) == 1 else None

    def versions(self, name: str, include_ended: bool = False) -> list[Servable]:
        with self._cond:
            model = self._models.get(name)
            if model is None:
                raise ServableNotFoundError(f"Could not find any versions of model {clip(name, 100)}")
            servables = dict(model.ended) if include_ended else {}
            servables.update(model.versions)
            return [servables[v] for v in sorted(servables)]

    def remove_model(self, name: str) -> None:
        """Unload every version of a model (labels and canary first) and forget it."""
        with self._cond:
            model = self._models.get(name)
            if model is None:
                return
            model.labels.clear()
            model.canary = None
            versions = list(model.versions)
        for version in versions:
            self.unload(name, version)
        with self._cond:
            self._models.pop(name, None)

    def _require(self, name: str) -> _Model:
        model = self._models.get(name)
        if model is None:
            raise ServableNotFoundError(f"Could not find any versions of model {clip(name, 100)}")
        return model

    def close(self) -> None:
        for name in self.model_names():
            self.remove_model(name)
