"""Read PyTorch state dicts into numpy arrays without importing torch.

The main target is PyTorch's *legacy* serialization (what `torch.save(..., _use_new_zipfile_serialization=
False)` writes and what every release before 1.6 wrote by default). Such a file is a sequence of:

1. a pickle of the magic number 0x1950a86a20f9469cfc6c,
2. a pickle of the protocol version (1001),
3. a pickle of `sys_info` (`{'protocol_version', 'little_endian', 'type_sizes'}`),
4. the pickled object itself; each storage in it is a *persistent id*
   `('storage', <torch.XStorage class>, root_key, location, numel, view_metadata)`,
   each tensor a call `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)`,
5. a pickle of the list of storage keys, in the order their data follows,
6. for each of those keys: the element count as an 8-byte little-endian integer, then the raw data
   (little-endian, element count x element size bytes).

The zip-based format (torch >= 1.6 default: `archive/data.pkl` plus `archive/data/<key>`) is read too,
with the same restricted unpickler.

Unpickling runs with a restricted `pickle.Unpickler`: only the handful of globals a state dict needs
(`collections.OrderedDict`, the tensor rebuild functions, the storage classes) are resolved; any other
global (`os.system`, `builtins.eval`, ...) raises `UnsafePickleError` before anything is called.
"""
from __future__ import annotations

import io
import pickle
import struct
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

from brainwave.errors import BrainwaveError

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

# torch storage class name -> numpy dtype (little-endian; byte order fixed up from sys_info)
STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
_BFLOAT16 = "BFloat16Storage"  # no numpy dtype: widened to float32 on read


class TorchFormatError(BrainwaveError, ValueError):
    """The file is not a PyTorch serialization this reader understands."""


class UnsafePickleError(TorchFormatError):
    """The pickle asks for a global that a state dict never needs."""


class _StorageType:
    """Stand-in for a `torch.XStorage` class named in a pickle."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self):
        return f"torch.{self.name}"


class _StorageRef:
    """A storage named by a persistent id; its data is attached once read."""

    def __init__(self, key: str, type_name: str, numel: int | None):
        self.key = key
        self.type_name = type_name
        self.numel = numel
        self.data: np.ndarray | None = None


class _StorageView:
    """Legacy storage view: `numel` elements starting at element `offset` of a root storage."""

    def __init__(self, root: _StorageRef, offset: int, numel: int):
        self.root = root
        self.offset = offset
        self.numel = numel


class _TensorRef:
    """A tensor rebuilt during unpickling; materialised after the storage data has been read."""

    def __init__(self, storage, offset, size, stride):
        if isinstance(storage, _StorageView):
            offset = storage.offset + offset
            storage = storage.root
        if not isinstance(storage, _StorageRef):
            raise TorchFormatError(f"tensor rebuilt from {type(storage).__name__}, not a storage")
        if not (isinstance(offset, int) and offset >= 0):
            raise TorchFormatError(f"bad storage offset {offset!r}")
        size, stride = tuple(size), tuple(stride)
        if len(size) != len(stride) or not all(isinstance(v, int) for v in size + stride):
            raise TorchFormatError(f"bad tensor geometry size={size!r} stride={stride!r}")
        if any(v < 0 for v in size + stride):
            raise TorchFormatError(f"negative size or stride in size={size!r} stride={stride!r}")
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def materialize(self) -> np.ndarray:
        data = self.storage.data
        if data is None:
            raise TorchFormatError(f"no data was read for storage {self.storage.key!r}")
        if 0 in self.size:
            return np.zeros(self.size, dtype=data.dtype)
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if last >= data.size:
            raise TorchFormatError(
                f"tensor (offset {self.offset}, size {self.size}, stride {self.stride}) reaches element "
                f"{last} of storage {self.storage.key!r}, which has {data.size}"
            )
        item = data.itemsize
        view = np.lib.stride_tricks.as_strided(
            data[self.offset:],
            shape=self.size,
            strides=tuple(s * item for s in self.stride),
            writeable=False,
        )
        return np.array(view, copy=True, order="C")  # (ascontiguousarray would turn 0-d into 1-d)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_tensor(storage, storage_offset, size, stride):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    if not isinstance(data, _TensorRef):
        raise TorchFormatError("parameter rebuilt from something that is not a tensor")
    return data


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}
_STORAGE_NAMES = set(STORAGE_DTYPES) | {_BFLOAT16}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, storages: dict[str, _StorageRef], zip_mode: bool = False):
        super().__init__(file, encoding="latin1")
        self._storages = storages
        self._zip_mode = zip_mode

    def find_class(self, module, name):
        if module == "torch" and name in _STORAGE_NAMES:
            return _StorageType(name)
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load global {module}.{name}: not something a tensor state dict contains"
            ) from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise TorchFormatError(f"unknown persistent id {pid!r}")
        if self._zip_mode:
            if len(pid) != 5:
                raise TorchFormatError(f"bad storage persistent id {pid!r}")
            _, storage_type, key, _location, numel = pid
            view_metadata = None
        else:
            if len(pid) != 6:
                raise TorchFormatError(f"bad storage persistent id {pid!r}")
            _, storage_type, key, _location, numel, view_metadata = pid
        if not isinstance(storage_type, _StorageType):
            raise TorchFormatError(f"storage {key!r} has type {storage_type!r}, not a torch storage class")
        key = str(key)
        root = self._storages.get(key)
        if root is None:
            root = self._storages[key] = _StorageRef(key, storage_type.name, numel)
        elif root.type_name != storage_type.name:
            raise TorchFormatError(f"storage {key!r} appears as both {root.type_name} and {storage_type.name}")
        if view_metadata is not None:
            _view_key, view_offset, view_numel = view_metadata
            return _StorageView(root, int(view_offset), int(view_numel))
        return root


def _storage_array(type_name: str, raw: bytes, little_endian: bool) -> np.ndarray:
    order = "<" if little_endian else ">"
    if type_name == _BFLOAT16:
        halves = np.frombuffer(raw, dtype=f"{order}u2").astype(np.uint32) << 16
        return halves.view(np.float32)
    dtype = np.dtype(STORAGE_DTYPES[type_name])
    if dtype.itemsize > 1:
        dtype = dtype.newbyteorder(order)
    return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="), copy=False)


def _item_size(type_name: str) -> int:
    return 2 if type_name == _BFLOAT16 else np.dtype(STORAGE_DTYPES[type_name]).itemsize


def _flatten(obj, prefix: str, out: dict[str, np.ndarray]) -> None:
    if isinstance(obj, _TensorRef):
        out[prefix] = obj.materialize()
    elif isinstance(obj, dict):
        for key, value in obj.items():
            _flatten(value, f"{prefix}.{key}" if prefix else str(key), out)
    # anything else (numbers, strings, metadata) is not a tensor and is skipped


def _read_legacy(buffer: io.BytesIO, source: str) -> dict[str, np.ndarray]:
    def plain_load():
        return _RestrictedUnpickler(buffer, {}).load()

    try:
        magic = plain_load()
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        if isinstance(exc, UnsafePickleError):
            raise
        raise TorchFormatError(f"{source}: not a PyTorch file ({exc})") from None
    if magic != MAGIC_NUMBER:
        raise TorchFormatError(f"{source}: bad magic number {magic!r}, not a PyTorch legacy file")
    protocol = plain_load()
    if protocol != PROTOCOL_VERSION:
        raise TorchFormatError(f"{source}: unsupported protocol version {protocol!r}")
    sys_info = plain_load()
    if not isinstance(sys_info, dict):
        raise TorchFormatError(f"{source}: bad sys_info record")
    little_endian = bool(sys_info.get("little_endian", True))

    storages: dict[str, _StorageRef] = {}
    result = _RestrictedUnpickler(buffer, storages).load()
    keys = plain_load()
    if not isinstance(keys, list):
        raise TorchFormatError(f"{source}: bad storage key list")
    for key in keys:
        key = str(key)
        if key not in storages:
            raise TorchFormatError(f"{source}: data for storage {key!r} that no tensor uses")
        ref = storages[key]
        header = buffer.read(8)
        if len(header) != 8:
            raise TorchFormatError(f"{source}: truncated before storage {key!r}")
        numel = struct.unpack("<q" if little_endian else ">q", header)[0]
        nbytes = numel * _item_size(ref.type_name)
        raw = buffer.read(nbytes)
        if numel < 0 or len(raw) != nbytes:
            raise TorchFormatError(f"{source}: storage {key!r} truncated ({len(raw)} of {nbytes} bytes)")
        ref.data = _storage_array(ref.type_name, raw, little_endian)
    missing = [k for k in storages if storages[k].data is None]
    if missing:
        raise TorchFormatError(f"{source}: no data for storage {missing[0]!r}")
    return _collect(result, source)


def _read_zip(archive: zipfile.ZipFile, source: str) -> dict[str, np.ndarray]:
    names = archive.namelist()
    pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(pkl) != 1:
        raise TorchFormatError(f"{source}: zip file without a single data.pkl")
    prefix = pkl[0][: -len("data.pkl")]
    storages: dict[str, _StorageRef] = {}
    result = _RestrictedUnpickler(io.BytesIO(archive.read(pkl[0])), storages, zip_mode=True).load()
    byteorder_name = f"{prefix}byteorder"
    little_endian = archive.read(byteorder_name).decode() != "big" if byteorder_name in names else True
    for key, ref in storages.items():
        raw = archive.read(f"{prefix}data/{key}")
        ref.data = _storage_array(ref.type_name, raw, little_endian)
    return _collect(result, source)


def _collect(result, source: str) -> dict[str, np.ndarray]:
    if isinstance(result, dict) and "state_dict" in result and isinstance(result["state_dict"], dict):
        result = result["state_dict"]  # training checkpoints wrap the state dict
    if not isinstance(result, dict):
        raise TorchFormatError(f"{source}: holds a {type(result).__name__}, not a state dict")
    out: dict[str, np.ndarray] = {}
    _flatten(result, "", out)
    return out


def load_state_dict(source: str | Path | bytes) -> dict[str, np.ndarray]:
    """Read a PyTorch state dict (legacy or zip format) as `{name: np.ndarray}` without torch.

    Tensors are returned as contiguous copies laid out as in torch (e.g. conv weights OIHW), honouring
    each tensor's storage offset and strides.
    """
    if isinstance(source, (bytes, bytearray)):
        data, name = bytes(source), "<bytes>"
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist")
        data, name = path.read_bytes(), str(path)
    if data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return _read_zip(archive, name)
    return _read_legacy(io.BytesIO(data), name)
