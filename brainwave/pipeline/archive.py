"""Writing model.zip, and reading it safely.

A model.zip comes from users and, through the registry, from storage: treat it as hostile. Every way it can
be malformed ends in ArchiveError or DefinitionError, never another exception. Reading rejects, from the
central directory and before inflating a byte: absolute paths, '..', links and device files, duplicate names
(also './a' beside 'a'), encrypted members, compression methods other than stored and deflate, too many
members and declared sizes past the limits. Inflating still counts bytes (a header may lie) and checks CRCs.
Every file the service definition references must be present. Extraction goes to a fresh private
directory that is removed again on any failure, so a bad archive never leaves a half-extracted model behind.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import stat
import struct
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from brainwave.errors import ArchiveError, DefinitionError, brief
from brainwave.pipeline.definition import ServiceDefinition, parse_service_json
from brainwave.pipeline.warmup import TF_SERVING_WARMUP_FILE, WARMUP_DIR

SERVICE_DEF_NAME = "service_def.json"


@dataclass(frozen=True)
class ArchiveLimits:
    max_members: int = 10_000
    max_total_bytes: int = 2 << 30  # inflated (a TensorFlow GraphDef cannot pass 2 GB anyway)
    max_service_def_bytes: int = 1 << 20


# What zipfile can inflate without surprises; bzip2 and lzma bombs are no better than deflate ones, and no
# model.zip writer we know of uses them.
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
# Everything zipfile and zlib raise on damaged input (EOFError: truncated data; KeyError/ValueError: broken
# central directory fields; RuntimeError/NotImplementedError: encryption or methods the checks missed).
_CORRUPT = (zipfile.BadZipFile, zlib.error, struct.error, OSError, EOFError, KeyError, ValueError, RuntimeError,
            NotImplementedError)


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
            _add_warmup(archive, definition)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def _stage_sources(stage) -> list[tuple[str, Path | None]]:
    return stage.sources()


def _add_warmup(archive: zipfile.ZipFile, definition: ServiceDefinition) -> None:
    for index, sample in enumerate(definition.warmup_inputs):
        if isinstance(sample, (bytes, bytearray)):
            archive.writestr(f"{WARMUP_DIR}/{index:04d}.img", bytes(sample))
        else:
            buffer = io.BytesIO()
            np.save(buffer, np.asarray(sample), allow_pickle=False)
            archive.writestr(f"{WARMUP_DIR}/{index:04d}.npy", buffer.getvalue())
    if definition.tf_serving_warmup_file is not None:
        archive.write(definition.tf_serving_warmup_file, TF_SERVING_WARMUP_FILE)


def _add_source(archive: zipfile.ZipFile, member: str, source: Path, index: int) -> None:
    if source.is_dir():  # SavedModel directory
        for file in sorted(p for p in source.rglob("*") if p.is_file()):
            archive.write(file, f"{member.rstrip('/')}/{file.relative_to(source).as_posix()}")
    elif source.is_file():
        archive.write(source, member)
    else:
        raise DefinitionError(f"stage {index}: source {source} for {member!r} does not exist")


def _safe_members(archive: zipfile.ZipFile, limits: ArchiveLimits) -> dict[str, zipfile.ZipInfo]:
    """Normalized member name -> ZipInfo, after every check the central directory allows."""
    infos = archive.infolist()
    if len(infos) > limits.max_members:
        raise ArchiveError(f"model.zip has {len(infos)} members, more than the limit of {limits.max_members}")
    members: dict[str, zipfile.ZipInfo] = {}
    declared = 0
    for info in infos:
        name = info.filename
        parts = PurePosixPath(name).parts
        if name.startswith("/") or "\\" in name or (parts and parts[0].endswith(":")) or ".." in parts or "\0" in name:
            raise ArchiveError(f"model.zip member {brief(name)} has an unsafe path (absolute or containing '..')")
        mode = info.external_attr >> 16
        if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):  # 0: no type recorded (e.g. writestr)
            raise ArchiveError(f"model.zip member {brief(name)} is a link or special file; only regular files are allowed")
        if info.flag_bits & 0x1:
            raise ArchiveError(f"model.zip member {brief(name)} is encrypted; model.zip members must not be")
        if info.compress_type not in _METHODS:
            raise ArchiveError(f"model.zip member {brief(name)} uses compression method {info.compress_type}; "
                               f"only {' and '.join(_METHODS.values())} are accepted")
        declared += info.file_size
        if declared > limits.max_total_bytes:
            raise ArchiveError(f"model.zip declares more than {limits.max_total_bytes} bytes once inflated")
        normalized = str(PurePosixPath(name))
        if normalized in members or normalized == ".":
            raise ArchiveError(f"model.zip has member {brief(name)} twice")
        members[normalized] = info
    return members


def _read_definition_from(archive: zipfile.ZipFile, limits: ArchiveLimits) -> tuple[ServiceDefinition, dict[str, zipfile.ZipInfo]]:
    members = _safe_members(archive, limits)
    names = {n for n, i in members.items() if not i.is_dir()}
    if SERVICE_DEF_NAME not in names:
        listing = ", ".join(brief(n, 40) for n in sorted(names)[:10]) or "none"
        raise ArchiveError(f"model.zip has no {SERVICE_DEF_NAME} at its root (members: {listing})")
    info = members[SERVICE_DEF_NAME]
    if info.file_size > limits.max_service_def_bytes:
        raise ArchiveError(f"{SERVICE_DEF_NAME} is larger than {limits.max_service_def_bytes} bytes")
    raw = _read_member(archive, info, limits.max_service_def_bytes)
    definition = parse_service_json(raw)
    for index, stage in enumerate(definition.pipeline):
        for member, _ in _stage_sources(stage):
            member = str(PurePosixPath(member))
            if member not in names and not any(n.startswith(member + "/") for n in names):
                raise ArchiveError(f"stage {index}: model.zip has no file {brief(member)}")
    return definition, members


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    try:
        with archive.open(info) as stream:
            raw = stream.read(limit + 1)
    except _CORRUPT as exc:
        raise ArchiveError(f"model.zip member {brief(info.filename)} is corrupt: {exc}") from None
    if len(raw) > limit:
        raise ArchiveError(f"model.zip member {brief(info.filename)} inflates past its limit of {limit} bytes")
    return raw


def read_definition(path: Path, limits: ArchiveLimits = DEFAULT_LIMITS) -> ServiceDefinition:
    """Validate model.zip without extracting it."""
    with _open_zip(Path(path)) as archive:
        definition, _ = _read_definition_from(archive, limits)
    return definition


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError:
        raise ArchiveError(f"{path} does not exist") from None
    except _CORRUPT as exc:
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
            definition, members = _read_definition_from(archive, limits)
            budget = limits.max_total_bytes
            for name, info in members.items():
                target = root.joinpath(*PurePosixPath(name).parts)
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
    except _CORRUPT as exc:  # CRC errors, truncated data, damaged headers
        raise ArchiveError(f"model.zip member {brief(info.filename)} is corrupt: {exc}") from None
    return budget
