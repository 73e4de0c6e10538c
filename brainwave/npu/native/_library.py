"""ctypes bindings for libbwnative.so (the C API in src/bwnative.h), built on first use by brainwave.toolchain."""
from __future__ import annotations

import ctypes
import threading
from pathlib import Path

import numpy as np

from brainwave.errors import BrainwaveError
from brainwave.npu.isa import ProgramError, Status

SOURCE_DIR = Path(__file__).resolve().parent / "src"
SIMD_PATHS = ("avx512vnni", "avx2", "portable")  # fastest first
# bwn_observer: (user, instruction index, arena)
OBSERVER = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32, ctypes.POINTER(ctypes.c_float))
_ERR_LEN = 512


class NativeError(BrainwaveError):
    """The native executor cannot do what was asked: a SIMD path this CPU lacks, a bad option, no memory."""


def _isa_header() -> Path:
    from brainwave.paths import hls_dir

    return hls_dir() / "src" / "npu_isa.h"


def _make_vars(defines: tuple[str, ...]) -> dict[str, str]:
    make_vars = {"ISA_INCLUDE": str(_isa_header().parent)}
    if defines:
        make_vars["DEFINES"] = " ".join(f"-D{d}" for d in defines)
    return make_vars


class Library:
    """One build of libbwnative.so. `Library.get()` is the real one; `Library.get(("BW_MUTATE_ORDER",))` the
    test-only variant that adds two chunks out of order (so the tests can show they would catch it)."""

    _loaded: dict[tuple[str, ...], "Library"] = {}
    _lock = threading.Lock()

    @classmethod
    def get(cls, defines: tuple[str, ...] = ()) -> "Library":
        from brainwave.toolchain import build_library

        with cls._lock:
            if defines not in cls._loaded:
                shared = (_isa_header(), _isa_header().parent / "npu_format.h")  # hls/src headers the build reads
                cls._loaded[defines] = cls(build_library("bwnative", SOURCE_DIR, _make_vars(defines),
                                                         extra_files=shared))
            return cls._loaded[defines]

    def __init__(self, path: Path):
        self.path = path
        lib = ctypes.CDLL(str(path))
        vp, sz, cp = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p
        for name, restype, argtypes in (
            ("bwn_simd_supported", ctypes.c_int, [cp]),
            ("bwn_simd_best", cp, []),
            ("bwn_engine_create", vp, [cp, ctypes.c_int, cp, sz]),
            ("bwn_engine_destroy", None, [vp]),
            ("bwn_engine_simd", cp, [vp]),
            ("bwn_program_load", vp, [vp, sz, vp, sz, ctypes.POINTER(ctypes.c_uint32), cp, sz]),
            ("bwn_program_free", None, [vp]),
            ("bwn_run", ctypes.c_int, [vp, vp, vp, vp]),
            ("bwn_run_observed", ctypes.c_int, [vp, vp, vp, vp, OBSERVER, vp]),
        ):
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, argtypes
        self._lib = lib

    def simd_paths(self) -> list[str]:
        """The SIMD paths this build has and this CPU can run, fastest first."""
        return [p for p in SIMD_PATHS if self._lib.bwn_simd_supported(p.encode())]

    def create_engine(self, simd: str | None, threads: int) -> tuple[int, str]:
        """(engine handle, the SIMD path it runs); simd None picks the fastest."""
        err = ctypes.create_string_buffer(_ERR_LEN)
        engine = self._lib.bwn_engine_create(simd.encode() if simd else None, threads, err, _ERR_LEN)
        if not engine:
            raise NativeError(err.value.decode())
        return engine, self._lib.bwn_engine_simd(engine).decode()

    def destroy_engine(self, engine: int) -> None:
        self._lib.bwn_engine_destroy(engine)

    def load_program(self, program_bytes: bytes, weights: bytes) -> int:
        """Validate (the kernel's rules) and repack; C keeps its own copy of everything it needs."""
        words = np.frombuffer(program_bytes, dtype="<u4")
        blob = np.frombuffer(weights, dtype=np.uint8) if len(weights) else np.zeros(1, np.uint8)
        status = ctypes.c_uint32(0)
        err = ctypes.create_string_buffer(_ERR_LEN)
        handle = self._lib.bwn_program_load(words.ctypes.data, words.size, blob.ctypes.data, len(weights),
                                            ctypes.byref(status), err, _ERR_LEN)
        if handle:
            return handle
        if status.value != Status.OK:
            raise ProgramError(Status(status.value), "the native executor refuses the program, as the kernel would")
        raise NativeError(err.value.decode())

    def free_program(self, handle: int) -> None:
        self._lib.bwn_program_free(handle)

    def run(self, engine: int, program: int, x: np.ndarray, out: np.ndarray, observer=None) -> None:
        """x, out: C-contiguous float32 of the program's input and output sizes (the caller checks shapes).
        `observer(index, arena_pointer)`, if given, is called after every instruction."""
        if observer is None:
            status = self._lib.bwn_run(engine, program, x.ctypes.data, out.ctypes.data)
        else:
            callback = OBSERVER(lambda user, index, arena: observer(index, arena))
            status = self._lib.bwn_run_observed(engine, program, x.ctypes.data, out.ctypes.data, callback, None)
        if status != 0:
            raise NativeError("out of memory for the run's arena")
