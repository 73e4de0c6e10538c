"""Blob stores the model registry writes to: a local directory (no setup) or Azure Blob storage.

Two operations carry the registry's guarantees:
* `put` makes a blob visible only once it is complete (local: temp file + fsync + rename; Azure: blocks are
  staged and the blob appears when its block list is committed), so an interrupted upload leaves nothing.
* `create` is a conditional create that fails if the name exists (local: O_EXCL link; Azure: If-None-Match: *),
  which is how concurrent registrations get distinct versions without a lock service.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Callable, Iterator, Protocol

from brainwave.errors import BrainwaveError

Progress = Callable[[int], None]  # called with the number of bytes just transferred
CHUNK = 4 << 20


class BlobExistsError(BrainwaveError):
    pass


class BlobNotFoundError(BrainwaveError):
    pass


class BlobStore(Protocol):
    def put(self, name: str, source: BinaryIO, size: int, progress: Progress | None = None) -> None: ...
    def create(self, name: str, data: bytes) -> None: ...  # raises BlobExistsError
    def read(self, name: str) -> bytes: ...
    def stream(self, name: str) -> Iterator[bytes]: ...
    def list(self, prefix: str) -> list[str]: ...
    def delete(self, name: str) -> None: ...
    def describe(self) -> str: ...


class LocalDirectoryStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, name: str) -> Path:
        parts = PurePosixPath(name).parts
        if not parts or ".." in parts or name.startswith("/"):
            raise ValueError(f"bad blob name {name!r}")
        return self.root.joinpath(*parts)

    def _temp(self, path: Path) -> tuple[int, str]:
        path.parent.mkdir(parents=True, exist_ok=True)
        return tempfile.mkstemp(prefix=".upload-", dir=path.parent)

    def put(self, name: str, source: BinaryIO, size: int, progress: Progress | None = None) -> None:
        path = self._path(name)
        fd, temp = self._temp(path)
        try:
            with os.fdopen(fd, "wb") as sink:
                while chunk := source.read(CHUNK):
                    sink.write(chunk)
                    if progress:
                        progress(len(chunk))
                sink.flush()
                os.fsync(sink.fileno())
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def create(self, name: str, data: bytes) -> None:
        path = self._path(name)
        fd, temp = self._temp(path)
        try:
            with os.fdopen(fd, "wb") as sink:
                sink.write(data)
                sink.flush()
                os.fsync(sink.fileno())
            try:
                os.link(temp, path)  # atomic and fails if `path` exists: a conditional create
            except FileExistsError:
                raise BlobExistsError(name) from None
        finally:
            Path(temp).unlink(missing_ok=True)

    def read(self, name: str) -> bytes:
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError:
            raise BlobNotFoundError(name) from None

    def stream(self, name: str) -> Iterator[bytes]:
        try:
            source = open(self._path(name), "rb")
        except FileNotFoundError:
            raise BlobNotFoundError(name) from None
        with source:
            while chunk := source.read(CHUNK):
                yield chunk

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        if not base.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*")
                      if p.is_file() and not p.name.startswith(".upload-"))

    def delete(self, name: str) -> None:
        try:
            self._path(name).unlink()
        except FileNotFoundError:
            raise BlobNotFoundError(name) from None

    def describe(self) -> str:
        return f"directory {self.root}"


class AzureBlobStore:
    """One container of an Azure Storage account (or Azurite), through azure-storage-blob."""

    def __init__(self, container: str = "brainwave-models", connection_string: str | None = None,
                 account_url: str | None = None, credential=None) -> None:
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import BlobServiceClient

        if connection_string:
            service = BlobServiceClient.from_connection_string(connection_string)
        elif account_url:
            service = BlobServiceClient(account_url, credential=credential)
        else:
            raise ValueError("Azure Blob storage needs a connection string or an account URL")
        self.container = service.get_container_client(container)
        try:
            self.container.create_container()
        except ResourceExistsError:
            pass
        self._url = f"{service.url.rstrip('/')}/{container}"

    def put(self, name: str, source: BinaryIO, size: int, progress: Progress | None = None) -> None:
        reported = [0]

        def hook(current: int, total: int | None) -> None:
            if progress:
                progress(current - reported[0])
            reported[0] = current

        # Staged blocks stay invisible until the final commit of the block list.
        self.container.upload_blob(name, source, length=size, overwrite=True, max_concurrency=2,
                                   progress_hook=hook)

    def create(self, name: str, data: bytes) -> None:
        from azure.core.exceptions import ResourceExistsError

        try:
            self.container.upload_blob(name, data, overwrite=False)  # sends If-None-Match: *
        except ResourceExistsError:
            raise BlobExistsError(name) from None

    def read(self, name: str) -> bytes:
        return b"".join(self.stream(name))

    def stream(self, name: str) -> Iterator[bytes]:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            downloader = self.container.download_blob(name)
        except ResourceNotFoundError:
            raise BlobNotFoundError(name) from None
        yield from downloader.chunks()

    def list(self, prefix: str) -> list[str]:
        return sorted(blob.name for blob in self.container.list_blobs(name_starts_with=prefix))

    def delete(self, name: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self.container.delete_blob(name)
        except ResourceNotFoundError:
            raise BlobNotFoundError(name) from None

    def describe(self) -> str:
        return f"Azure Blob container {self._url}"
