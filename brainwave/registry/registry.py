"""The model registry: named models, numbered versions, tags, on any BlobStore.

Layout in the store:
    models/<name>/payloads/<sha256>-<random>.zip     the model.zip bytes (written first)
    models/<name>/versions/<version:010d>.json       the manifest that *publishes* a version

A version exists exactly when its manifest exists. Registering uploads the payload, then creates the
manifest for N+1 with a conditional create; if another registration took N+1 meanwhile, it tries N+2.
So an interrupted upload leaves no version (at most an unreferenced payload), and concurrent registrations
never share or skip-and-lose a number. The manifest records the payload's sha256, checked on download.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from brainwave.errors import BrainwaveError
from brainwave.registry.store import BlobExistsError, BlobNotFoundError, BlobStore, Progress

log = logging.getLogger("brainwave.registry")

NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$")


class RegistryError(BrainwaveError):
    pass


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    sha256: str
    size: int
    payload: str
    created: str
    tags: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode()


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name or ""):
        raise RegistryError(f"model name {name!r} is not allowed: use 1-64 lower-case letters, digits, '.', '_' or '-', "
                            f"starting and ending with a letter or digit")
    return name


class ModelRegistry:
    def __init__(self, store: BlobStore, cache_dir: str | Path | None = None,
                 validate: Callable[[Path], object] | None = None) -> None:
        self.store = store
        self.cache_dir = Path(cache_dir or Path(tempfile.gettempdir()) / "brainwave-registry-cache")
        if validate is None:
            from brainwave.pipeline import load_service_definition as validate
        self.validate = validate

    # --- writing ----------------------------------------------------------------------------------
    def register(self, zip_path: str | Path, name: str, tags: dict[str, str] | None = None,
                 progress: Progress | None = None) -> ModelVersion:
        """Validate and upload model.zip; returns the new version (N+1)."""
        check_name(name)
        zip_path = Path(zip_path)
        self.validate(zip_path)  # raises DefinitionError / ArchiveError with the reason
        digest, size = _sha256(zip_path)
        payload = f"models/{name}/payloads/{digest}-{secrets.token_hex(4)}.zip"
        with open(zip_path, "rb") as source:
            self.store.put(payload, source, size, progress)
        version = self._next_version(name)
        while True:
            record = ModelVersion(name, version, digest, size, payload,
                                  dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), dict(tags or {}))
            try:
                self.store.create(_manifest_name(name, version), record.to_json())
                return record
            except BlobExistsError:  # someone else published this number first
                version = max(version + 1, self._next_version(name))

    def delete(self, name: str, version: int | None = None) -> list[int]:
        """Delete one version, or all of a model's versions; the manifest goes first (the version vanishes
        at once), then the payload."""
        records = self.versions(name)
        doomed = [r for r in records if version is None or r.version == version]
        if not doomed:
            raise RegistryError(f"model {name!r} has no version {version}" if version else f"no model named {name!r}")
        for record in doomed:
            self.store.delete(_manifest_name(name, record.version))
            try:
                self.store.delete(record.payload)
            except BlobNotFoundError:
                pass
        return [r.version for r in doomed]

    def _next_version(self, name: str) -> int:
        stems = (Path(blob).stem for blob in self.store.list(f"models/{name}/versions/"))
        numbers = [int(stem) for stem in stems if stem.isdigit()]
        return max(numbers, default=0) + 1

    # --- reading ----------------------------------------------------------------------------------
    def names(self) -> list[str]:
        names = {blob.split("/")[1] for blob in self.store.list("models/") if "/versions/" in blob}
        return sorted(names)

    def versions(self, name: str) -> list[ModelVersion]:
        """Readable versions, ascending. A damaged manifest is skipped with a warning naming it: one bad
        version must not hide the others (or every other model)."""
        check_name(name)
        records = []
        for blob in self.store.list(f"models/{name}/versions/"):
            try:
                records.append(_parse_manifest(self.store.read(blob), blob))
            except BlobNotFoundError:  # deleted while listing
                continue
            except RegistryError as exc:
                log.warning("%s", exc)
        return sorted(records, key=lambda r: r.version)

    def get(self, name: str, version: int | None = None, label: str | None = None) -> ModelVersion:
        """A version by number, by tag (`label` is KEY or KEY=VALUE: the highest version tagged so), or the latest."""
        records = self.versions(name)
        if not records:
            raise RegistryError(f"no model named {name!r} in {self.store.describe()}")
        if version is not None:
            for record in records:
                if record.version == version:
                    return record
            raise RegistryError(f"model {name!r} has no version {version} (it has {[r.version for r in records]})")
        if label is not None:
            key, has_value, value = label.partition("=")
            tagged = [r for r in records if key in r.tags and (not has_value or r.tags[key] == value)]
            if not tagged:
                raise RegistryError(f"no version of {name!r} carries the tag {label!r}")
            return tagged[-1]
        return records[-1]

    def download(self, name: str, version: int | None = None, label: str | None = None,
                 progress: Progress | None = None) -> Path:
        """The version's model.zip in the local cache, its sha256 verified; nothing is left on a mismatch."""
        record = self.get(name, version, label)
        target = self.cache_dir / name / str(record.version) / "model.zip"
        if target.is_file() and _sha256(target) == (record.sha256, record.size):
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=".download-", dir=target.parent)
        hasher = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as sink:
                for chunk in self.store.stream(record.payload):
                    hasher.update(chunk)
                    sink.write(chunk)
                    if progress:
                        progress(len(chunk))
            if hasher.hexdigest() != record.sha256:
                raise RegistryError(f"{name} version {record.version} is corrupted in {self.store.describe()}: "
                                    f"sha256 {hasher.hexdigest()} does not match the recorded {record.sha256}")
            os.replace(temp, target)
        except BlobNotFoundError:
            raise RegistryError(f"{name} version {record.version}: its payload {record.payload} is missing") from None
        finally:
            Path(temp).unlink(missing_ok=True)
        return target

    def clear_cache(self) -> None:
        shutil.rmtree(self.cache_dir, ignore_errors=True)


def _parse_manifest(raw: bytes, blob: str) -> ModelVersion:
    try:
        record = ModelVersion(**json.loads(raw))
    except (ValueError, TypeError) as exc:  # truncated JSON, missing or unknown fields
        raise RegistryError(f"skipping the unreadable manifest {blob}: {type(exc).__name__}: {exc}") from None
    if not isinstance(record.version, int) or not isinstance(record.tags, dict):
        raise RegistryError(f"skipping the manifest {blob}: its version or tags have the wrong type")
    return record


def _manifest_name(name: str, version: int) -> str:
    return f"models/{name}/versions/{version:010d}.json"


def _sha256(path: Path) -> tuple[str, int]:
    hasher, size = hashlib.sha256(), 0
    with open(path, "rb") as source:
        while chunk := source.read(4 << 20):
            hasher.update(chunk)
            size += len(chunk)
    return hasher.hexdigest(), size

