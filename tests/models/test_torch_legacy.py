"""The torch-free reader of PyTorch's legacy serialization, on files written here in pure Python."""
from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from brainwave.models.torch_legacy import (
    MAGIC_NUMBER,
    PROTOCOL_VERSION,
    TorchFormatError,
    UnsafePickleError,
    load_state_dict,
)

_TORCH_TYPES = {
    np.dtype(np.float32): "FloatStorage",
    np.dtype(np.float64): "DoubleStorage",
    np.dtype(np.float16): "HalfStorage",
    np.dtype(np.int64): "LongStorage",
    np.dtype(np.int32): "IntStorage",
    np.dtype(np.uint8): "ByteStorage",
    np.dtype(np.bool_): "BoolStorage",
}


class _Emitter:
    """Writes pickle protocol 2 opcodes by hand, the way torch's legacy `_save` lays out a state dict."""

    def __init__(self):
        self.out = bytearray(b"\x80\x02")  # PROTO 2

    def op(self, code: bytes):
        self.out += code

    def global_(self, module: str, name: str):
        self.out += b"c" + module.encode() + b"\n" + name.encode() + b"\n"

    def str_(self, value: str):
        data = value.encode()
        self.out += b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE

    def int_(self, value: int):
        self.out += b"J" + struct.pack("<i", value)  # BININT

    def tuple_(self, values):
        self.out += b"("  # MARK
        for v in values:
            self.int_(v)
        self.out += b"t"  # TUPLE

    def empty_ordered_dict(self):
        self.global_("collections", "OrderedDict")
        self.op(b")R")  # EMPTY_TUPLE, REDUCE


def write_legacy(path: Path, storages: dict[str, np.ndarray], tensors: list[tuple], raw_main: bytes | None = None,
                 key_order: list[str] | None = None, truncate: int = 0, magic: int = MAGIC_NUMBER) -> Path:
    """`storages`: key -> flat array; `tensors`: (name, storage_key, offset, size, stride)."""
    head = b"".join(pickle.dumps(v, protocol=2) for v in (
        magic, PROTOCOL_VERSION, {"protocol_version": PROTOCOL_VERSION, "little_endian": True,
                                  "type_sizes": {"short": 2, "int": 4, "long": 4}}))
    if raw_main is None:
        e = _Emitter()
        e.empty_ordered_dict()
        e.op(b"(")  # MARK for SETITEMS
        for name, key, offset, size, stride in tensors:
            flat = storages[key]
            e.str_(name)
            e.global_("torch._utils", "_rebuild_tensor_v2")
            e.op(b"(")  # MARK: args tuple
            e.op(b"(")  # MARK: persistent id tuple
            e.str_("storage")
            e.global_("torch", _TORCH_TYPES[flat.dtype])
            e.str_(key)
            e.str_("cpu")
            e.int_(flat.size)
            e.op(b"N")  # no view metadata
            e.op(b"tQ")  # TUPLE, BINPERSID
            e.int_(offset)
            e.tuple_(size)
            e.tuple_(stride)
            e.op(b"\x89")  # NEWFALSE: requires_grad
            e.empty_ordered_dict()  # backward hooks
            e.op(b"tR")  # TUPLE, REDUCE
        e.op(b"u.")  # SETITEMS, STOP
        raw_main = bytes(e.out)
    keys = key_order if key_order is not None else list(storages)
    data = bytearray(head + raw_main + pickle.dumps(keys, protocol=2))
    for key in keys:
        flat = storages[key]
        data += struct.pack("<q", flat.size) + flat.astype(flat.dtype.newbyteorder("<")).tobytes()
    path.write_bytes(bytes(data[: len(data) - truncate]))
    return path


def _strides(a: np.ndarray):
    return tuple(s // a.itemsize for s in a.strides)


def test_reads_dtypes_offsets_and_strides(tmp_path):
    rng = np.random.default_rng(0)
    f32 = rng.normal(size=60).astype(np.float32)
    f64 = rng.normal(size=12).astype(np.float64)
    f16 = rng.normal(size=8).astype(np.float16)
    i64 = np.arange(-5, 15, dtype=np.int64)
    u8 = np.arange(200, 230, dtype=np.uint8)
    b = np.array([True, False, False, True, True])
    storages = {"0": f32, "1": f64, "2": f16, "3": i64, "4": u8, "5": b}

    base = f32.reshape(3, 4, 5)
    transposed = base.transpose(2, 0, 1)  # non-contiguous: strides (1, 20, 5)
    sliced = base[1, :, 1:4]  # offset 21, strides (5, 1)
    expected = {
        "conv.weight": transposed,
        "conv.slice": sliced,
        "double.t": f64.reshape(3, 4).T,
        "half": f16.reshape(2, 4),
        "long.every3": i64[2::3],
        "bytes": u8.reshape(5, 6)[:, ::2],
        "bn.num_batches_tracked": np.array(i64[7]),
        "mask": b,
    }
    tensors = [
        ("conv.weight", "0", 0, transposed.shape, _strides(transposed)),
        ("conv.slice", "0", 21, sliced.shape, (5, 1)),
        ("double.t", "1", 0, (4, 3), (1, 4)),
        ("half", "2", 0, (2, 4), (4, 1)),
        ("long.every3", "3", 2, (6,), (3,)),
        ("bytes", "4", 0, (5, 3), (6, 2)),
        ("bn.num_batches_tracked", "3", 7, (), ()),
        ("mask", "5", 0, (5,), (1,)),
    ]
    # storages may follow in any order; the key list says which
    path = write_legacy(tmp_path / "sd.pth", storages, tensors, key_order=["3", "0", "5", "1", "4", "2"])
    state = load_state_dict(path)
    assert list(state) == [t[0] for t in tensors]  # OrderedDict order kept
    for name, want in expected.items():
        got = state[name]
        assert got.dtype == want.dtype, name
        assert got.shape == want.shape, name
        np.testing.assert_array_equal(got, want, err_msg=name)
        assert got.flags.c_contiguous and got.flags.writeable
    assert state["bn.num_batches_tracked"].ndim == 0
    # the same bytes read from memory give the same result
    again = load_state_dict(path.read_bytes())
    for name in expected:
        np.testing.assert_array_equal(again[name], state[name])


def test_tensor_past_end_of_storage_is_rejected(tmp_path):
    flat = np.arange(6, dtype=np.float32)
    path = write_legacy(tmp_path / "bad.pth", {"0": flat}, [("w", "0", 1, (2, 3), (3, 1))])
    with pytest.raises(TorchFormatError, match="reaches element 6"):
        load_state_dict(path)


def test_truncated_storage_is_rejected(tmp_path):
    flat = np.arange(6, dtype=np.float32)
    path = write_legacy(tmp_path / "short.pth", {"0": flat}, [("w", "0", 0, (6,), (1,))], truncate=3)
    with pytest.raises(TorchFormatError, match="truncated"):
        load_state_dict(path)


def test_bad_magic_is_rejected(tmp_path):
    flat = np.arange(6, dtype=np.float32)
    path = write_legacy(tmp_path / "magic.pth", {"0": flat}, [("w", "0", 0, (6,), (1,))], magic=1234)
    with pytest.raises(TorchFormatError, match="magic"):
        load_state_dict(path)
    (tmp_path / "junk.pth").write_bytes(b"not a pickle at all")
    with pytest.raises(TorchFormatError):
        load_state_dict(tmp_path / "junk.pth")


class _Boom:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        import os

        return (os.system, (self.command,))


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    evil = pickle.dumps({"w": _Boom(f"touch {marker}")}, protocol=2)
    assert b"system" in evil
    path = write_legacy(tmp_path / "evil.pth", {}, [], raw_main=evil)
    with pytest.raises(UnsafePickleError, match="system"):
        load_state_dict(path)
    assert not marker.exists()
    # a malicious first record (instead of the magic number) is refused too
    (tmp_path / "evil2.pth").write_bytes(pickle.dumps(_Boom(f"touch {marker}"), protocol=2))
    with pytest.raises(UnsafePickleError):
        load_state_dict(tmp_path / "evil2.pth")
    assert not marker.exists()


def test_other_globals_are_refused(tmp_path):
    e = _Emitter()
    e.global_("builtins", "eval")
    e.str_("1+1")
    e.op(b"\x85R.")  # TUPLE1, REDUCE, STOP
    path = write_legacy(tmp_path / "eval.pth", {}, [], raw_main=bytes(e.out))
    with pytest.raises(UnsafePickleError, match="builtins.eval"):
        load_state_dict(path)


def test_a_pickle_that_is_not_a_state_dict_is_refused(tmp_path):
    path = write_legacy(tmp_path / "list.pth", {}, [], raw_main=pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(TorchFormatError, match="not a state dict"):
        load_state_dict(path)
