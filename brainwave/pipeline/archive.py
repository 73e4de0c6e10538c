"""Writing model.zip, and reading it safely.

A model.zip comes from users and, through the registry, from storage: treat it as hostile. Reading
rejects absolute paths, '..', links and device files, duplicate names, too many members and too many
bytes (counted while inflating, not trusted from headers), and checks that every file the service
definition references is present. Extraction goes to a fresh private directory that is removed again
on any failure, so a bad archive never leaves a half-extracted model behind.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from brainwave.errors import ArchiveError, DefinitionError
from brainwave.pipeline.definition import BrainwaveStage, ServiceDefinition, TensorflowStage

SERVICE_DEF_NAME = "service_def.json"


@dataclass(frozen=True)
class ArchiveLimits:
    max_members: int = 10_000
    max_total_bytes: int = 4 << 30  # inflated
    max_service_def_bytes: int = 1 << 20


DEFAULT_LIMITS = ArchiveLimits()


def write_model_zip(definition: ServiceDefinition, path: Path) -> Path:
    """Write `definition` and the files its stages come from; atomic (temp file, then rename)."""
    # Round-trip through the strict parser so we never write a definition that `load` would refuse.
    ServiceDefinition.from_json(definition.to_json())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".model-", suffix=".zip.tmp", dir=path.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp_name, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(SERVICE_DEF_NAME, json.dumps(definition.to_json(), indent=2) + "\n")
            for index, stage in enumerate(definition.pipeline):
                for member, source in _stage_sources(stage):
                    if source is None:
                        raise DefinitionError(f"stage {index}: no source file to package for {member!r}")
                    _add_source(archive, member, Path(source), index)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def _stage_sources(stage) -> list[tuple[str, Path | None]]:
    if isinstance(stage, TensorflowStage):
        return [(stage.model_path, stage.source)]
    if isinstance(stage, BrainwaveStage) and stage.weights_path is not None:
        return [(stage.weights_path, stage.weights_source)]
    return []


def _add_source(archive: zipfile.ZipFile, member: str, source: Path, index: int) -> None:
    if source.is_dir():  # SavedModel directory
        for file in sorted(p for p in source.rglob("*") if p.is_file()):
            archive.write(file, f"{member.rstrip('/')}/{file.relative_to(source).as_posix()}")
    elif source.is_file():
        archive.write(source, member)
    else:
        raise DefinitionError(f"stage {index}: source {source} for {member!r} does not exist")


def _safe_members(archive: zipfile.ZipFile, limits: ArchiveLimits) -> list[zipfile.ZipInfo]:
    infos = archive.infolist()
    if len(infos) > limits.max_members:
        raise ArchiveError(f"model.zip has {len(infos)} members, more than the limit of {limits.max_members}")
    seen: set[str] = set()
    for info in infos:
        name = info.filename
        parts = PurePosixPath(name).parts
        if name.startswith("/") or "\\" in name or (parts and parts[0].endswith(":")) or ".." in parts:
            raise ArchiveError(f"model.zip member {name!r} has an unsafe path (absolute or containing '..')")
        mode = info.external_attr >> 16
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):  # 0: no type recorded (e.g. writestr)
            raise ArchiveError(f"model.zip member {name!r} is a link or special file; only regular files are allowed")
        normalized = str(PurePosixPath(name))
        if normalized in seen:
            raise ArchiveError(f"model.zip has member {name!r} twice")
        seen.add(normalized)
    return infos


def _read_definition_from(archive: zipfile.ZipFile, limits: ArchiveLimits) -> tuple[ServiceDefinition, list[zipfile.ZipInfo]]:
    infos = _safe_members(archive, limits)
    names = {str(PurePosixPath(i.filename)) for i in infos if not i.is_dir()}
    if SERVICE_DEF_NAME not in names:
        raise ArchiveError(f"model.zip has no {SERVICE_DEF_NAME} at its root (members: {', '.join(sorted(names)[:10]) or 'none'})")
    with archive.open(SERVICE_DEF_NAME) as stream:
        raw = stream.read(limits.max_service_def_bytes + 1)
    if len(raw) > limits.max_service_def_bytes:
        raise ArchiveError(f"{SERVICE_DEF_NAME} is larger than {limits.max_service_def_bytes} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DefinitionError(f"{SERVICE_DEF_NAME} is not valid JSON: {exc}") from None
    definition = ServiceDefinition.from_json(data)
    for index, stage in enumerate(definition.pipeline):
        for member, _ in _stage_sources(stage):
            member = str(PurePosixPath(member))
            if member not in names and not any(n.startswith(member + "/") for n in names):
                raise ArchiveError(f"stage {index}: model.zip has no file {member!r}")
    return definition, infos


def read_definition(path: Path, limits: ArchiveLimits = DEFAULT_LIMITS) -> ServiceDefinition:
    """Validate model.zip without extracting it."""
    with _open_zip(path) as archive:
        definition, _ = _read_definition_from(archive, limits)
    return definition


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError:
        raise ArchiveError(f"{path} does not exist") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveError(f"{path} is not a readable zip archive: {exc}") from None


class ExtractedModel:
    """A model.zip unpacked into a private directory; `close()` (or the context manager) removes it."""

    def __init__(self, definition: ServiceDefinition, root: Path) -> None:
        self.definition = definition
        self.root = root

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "ExtractedModel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def extract_model_zip(path: Path, limits: ArchiveLimits = DEFAULT_LIMITS) -> ExtractedModel:
    root = Path(tempfile.mkdtemp(prefix="brainwave-model-"))  # mode 0700: private to this user
    try:
        with _open_zip(Path(path)) as archive:
            definition, infos = _read_definition_from(archive, limits)
            budget = limits.max_total_bytes
            for info in infos:
                target = root.joinpath(*PurePosixPath(info.filename).parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                budget = _copy_limited(archive, info, target, budget, limits)
        return ExtractedModel(definition, root)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


def _copy_limited(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: int, limits: ArchiveLimits) -> int:
    try:
        with archive.open(info) as source, open(target, "xb") as sink:
            while chunk := source.read(1 << 20):
                budget -= len(chunk)
                if budget < 0:
                    raise ArchiveError(f"model.zip inflates to more than {limits.max_total_bytes} bytes")
                sink.write(chunk)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:  # CRC errors, truncated data
        if isinstance(exc, ArchiveError):
            raise
        raise ArchiveError(f"model.zip member {info.filename!r} is corrupt: {exc}") from None
    return budget
