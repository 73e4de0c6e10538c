"""Building the project's C/C++ shared libraries (the HLS kernel's C-sim, the native NPU executor) on first use.

Each library has a source directory with a Makefile whose target writes `$(BUILD)/lib<name>.so`; the Makefile
is the one place its compiler flags are written down. The library is built into a cache directory keyed by a
hash of every source file, so an editable checkout, an installed wheel (read-only site-packages) and a
container all work the same way, and a changed source is never served from a stale build. Builds are
serialized across processes with a file lock and land atomically.

Where it goes: $BRAINWAVE_BUILD_DIR, else $XDG_CACHE_HOME/brainwave, else ~/.cache/brainwave.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from brainwave.errors import BrainwaveError


class BuildError(BrainwaveError):
    """A native library could not be built (no compiler, a compile error)."""


def build_root() -> Path:
    env = os.environ.get("BRAINWAVE_BUILD_DIR")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "brainwave"


_NOT_SOURCES = {"build", "__pycache__"}


def _source_hash(source_dir: Path, extra: tuple[str, ...], extra_files: tuple[Path, ...]) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in source_dir.rglob("*")
                       if p.is_file() and not _NOT_SOURCES & set(p.relative_to(source_dir).parts)):
        digest.update(path.relative_to(source_dir).as_posix().encode())
        digest.update(path.read_bytes())
    for path in extra_files:
        digest.update(Path(path).read_bytes())
    for item in extra:
        digest.update(item.encode())
    return digest.hexdigest()[:16]


def build_library(name: str, source_dir: Path, make_vars: dict[str, str] | None = None,
                  extra_files: tuple[Path, ...] = ()) -> Path:
    """`make -C source_dir lib BUILD=<cache>/<name>-<hash> ...`, once; the path of lib<name>.so.

    `make_vars` are passed to make (e.g. an include directory); they enter the cache key, and so do the contents
    of `extra_files` (sources outside source_dir the build reads, e.g. a shared header).
    """
    source_dir = Path(source_dir)
    extra = tuple(f"{k}={v}" for k, v in sorted((make_vars or {}).items()))
    target_dir = build_root() / f"{name}-{_source_hash(source_dir, extra, tuple(extra_files))}"
    library = target_dir / f"lib{name}.so"
    if library.is_file():
        return library
    if shutil.which("make") is None or shutil.which(os.environ.get("CXX", "g++")) is None:
        raise BuildError(f"building lib{name}.so needs make and a C++ compiler (apt-get install g++ make)")
    build_root().mkdir(parents=True, exist_ok=True)
    with open(build_root() / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building the same library right now
        if library.is_file():
            return library
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=build_root()))
        try:
            proc = subprocess.run(["make", "-s", "-C", str(source_dir), "lib", f"BUILD={staging}", *extra],
                                  capture_output=True, text=True)
            if proc.returncode != 0 or not (staging / f"lib{name}.so").is_file():
                tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
                raise BuildError(f"building lib{name}.so from {source_dir} failed:\n{tail}")
            if target_dir.exists():
                shutil.rmtree(target_dir)
            staging.rename(target_dir)  # atomic: readers see no library or a complete one
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return library
