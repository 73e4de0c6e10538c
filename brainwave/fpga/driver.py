"""PYNQ driver for the NPU overlay: `NpuIP` (bound to the kernel's VLNV) and `NpuAccelerator` (one device).

Run sequence (hls/README.md): write the four buffer addresses (64-bit: low word, high word), write ap_start,
poll AP_CTRL until ap_done with a deadline, invalidate and read the status word and the output.

Fault handling:
- ap_done not raised by the deadline -> BackendTimeoutError; the device is reset (the PL reprogrammed, which
  is what resets an HLS block whose ap_rst_n comes from the PS) and checked with the known-answer self-test.
- ap_done raised but the status word still holds the sentinel the host wrote -> the kernel did not run
  ("spurious done") -> BackendUnavailableError, reset.
- status != 0 -> BackendUnavailableError naming the status (a program the kernel rejects).
- corrupted output: guard words past the arena must be intact, the output must be finite; with
  `verify=True` every request runs twice and the two outputs must be byte-identical (the kernel is
  deterministic), which catches a silent bit flip. Each -> BackendUnavailableError, reset.
Weights stay resident in device memory: each program's program and weights buffers are copied to the device
once and kept (least recently used ones are freed past `resident_bytes`), so models served side by side do not
re-copy their weights; the arena and status buffers are shared.
One request at a time (a lock); thread-safe.
"""
from __future__ import annotations

import hashlib
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brainwave.featurizer.backend import BackendError, BackendTimeoutError, BackendUnavailableError
from brainwave.npu.isa import HEADER_WORDS, MAGIC

from .boards import BITSTREAMS_DIR, HLS_DIR, NPU_INSTANCE, compiler_isa_version, npu_ip, npu_vlnv
from .compat import import_pynq
from .hwh import OverlayError, check_hwh, load_manifest

STATUS_SENTINEL = 0xDEADBEEF
GUARD_WORDS = 16
GUARD_PATTERN = np.uint32(0x7FA5A5A5)  # a NaN pattern the kernel never writes (it canonicalises NaNs)


@dataclass
class ProgramImage:
    """A compiled NPU program as the device needs it: the two blobs and the header fields the host uses."""

    program: bytes
    weights: bytes
    arena_words: int
    input_offset: int
    input_shape: tuple
    output_offset: int
    output_shape: tuple
    key: str = field(default="")

    def __post_init__(self):
        if not self.key:
            h = hashlib.sha256(self.program)
            h.update(self.weights)
            self.key = h.hexdigest()

    @classmethod
    def from_bytes(cls, program: bytes, weights: bytes) -> "ProgramImage":
        """From raw blobs: the 64-byte header (docs/isa.md) gives offsets and shapes."""
        program, weights = bytes(program), bytes(weights)
        if len(program) < HEADER_WORDS * 4:
            raise ValueError(f"program of {len(program)} bytes has no 64-byte header")
        h = struct.unpack_from("<16I", program)
        if h[0] != MAGIC:
            raise ValueError(f"program magic 0x{h[0]:08X} is not 0x{MAGIC:08X}")
        if h[1] != compiler_isa_version():
            raise ValueError(f"program is ISA version {h[1]}, this software speaks {compiler_isa_version()}")
        if len(weights) < h[4]:
            raise ValueError(f"weights blob has {len(weights)} bytes, the program needs {h[4]}")
        return cls(program, weights, h[3], h[5], tuple(h[6:9]), h[9], tuple(h[10:13]))

    @classmethod
    def from_program(cls, program) -> "ProgramImage":
        """From brainwave.npu.isa.Program (or anything with program_bytes() and weights)."""
        pb = program.program_bytes() if callable(getattr(program, "program_bytes", None)) else program.program
        w = program.weights
        w = w() if callable(w) else w
        w = w.tobytes() if isinstance(w, np.ndarray) else bytes(w)
        img = cls.from_bytes(pb, w)
        for attr in ("arena_words", "input_offset", "output_offset"):
            if hasattr(program, attr) and int(getattr(program, attr)) != getattr(img, attr):
                raise ValueError(f"program {attr} {getattr(program, attr)} disagrees with its header")
        return img


def _npu_ip_class():
    pynq = import_pynq()

    class NpuIP(pynq.DefaultIP):
        """Register-level driver PYNQ binds to every `brainwave.org:hls:npu_run:1.0` cell."""

        bindto = [npu_vlnv()]

        def __init__(self, description):
            super().__init__(description)
            ip = npu_ip()
            self.reg = ip["registers"]
            self.bit = {k: 1 << v for k, v in ip["ap_ctrl_bits"].items()}

        def set_pointer(self, name: str, address: int) -> None:
            off = self.reg[name]
            self.write(off, address & 0xFFFFFFFF)
            self.write(off + 4, (address >> 32) & 0xFFFFFFFF)

        def get_pointer(self, name: str) -> int:
            off = self.reg[name]
            return self.read(off) | (self.read(off + 4) << 32)

        def start(self) -> None:
            self.write(self.reg["AP_CTRL"], self.bit["ap_start"])

        def ctrl(self) -> int:
            return self.read(self.reg["AP_CTRL"])

        def idle(self) -> bool:
            return bool(self.ctrl() & self.bit["ap_idle"])

        def wait_done(self, deadline: float) -> bool:
            """Poll ap_done until `deadline` (time.monotonic()); False when it never rose."""
            spin_until = time.monotonic() + 0.002
            while True:
                if self.ctrl() & self.bit["ap_done"]:
                    return True
                now = time.monotonic()
                if now >= deadline:
                    return False
                if now > spin_until:
                    time.sleep(min(0.001, max(0.0, deadline - now)))

    return NpuIP


_ip_class = None


def npu_ip_class():
    global _ip_class
    if _ip_class is None:
        _ip_class = _npu_ip_class()
    return _ip_class


def selftest_image() -> tuple[ProgramImage, np.ndarray, np.ndarray]:
    """The kernel's known-answer vectors (hls/tb/vectors/smoke): program, input, expected output."""
    d = HLS_DIR / "tb" / "vectors" / "smoke"
    img = ProgramImage.from_bytes((d / "program.bin").read_bytes(), (d / "weights.bin").read_bytes())
    x = np.fromfile(d / "input.f32", dtype="<f4").reshape(img.input_shape)
    expected = np.fromfile(d / "expected.f32", dtype="<f4").reshape(img.output_shape)
    return img, x, expected


class NpuAccelerator:
    """One NPU overlay on one PYNQ device. Thread-safe; one request at a time."""

    def __init__(self, board: str = "kv260", *, simulate: bool | None = None, overlay_dir: Path | None = None,
                 device=None, timeout_s: float = 30.0, verify: bool = False, check_finite: bool = True,
                 selftest: bool = True, resident_bytes: int = 256 << 20):
        pynq = import_pynq()
        import pynq.ps

        self.board_name = board
        self.overlay_dir = Path(overlay_dir) if overlay_dir else BITSTREAMS_DIR / board
        self.timeout_s = float(timeout_s)
        self.verify = verify
        self.check_finite = check_finite
        self.selftest_enabled = selftest
        if simulate is None:
            simulate = device is None and not pynq.ps.CPU_ARCH_IS_SUPPORTED
        self.simulated = simulate
        self.manifest = load_manifest(self.overlay_dir)
        if self.manifest.get("board") != board:
            raise OverlayError(f"{self.overlay_dir}/manifest.json is for board {self.manifest.get('board')!r}, "
                               f"not {board!r}")
        hwh = self.overlay_dir / self.manifest.get("hwh", "npu.hwh")
        self.hwh_info = check_hwh(hwh)
        if device is None and simulate:
            from . import simboard

            device = simboard.install(board)
        self.device = device
        if simulate:
            self.bitfile = hwh  # the simulated board needs only the .hwh
        else:
            self.bitfile = self.overlay_dir / self.manifest.get("bitstream", "npu.bit")
            if not self.bitfile.is_file():
                raise OverlayError(
                    f"no bitstream {self.bitfile} for board {board}: build it on a machine with AMD Vivado/Vitis "
                    f"(bitstreams/README.md: `make -C bitstreams BOARD={board}`) and copy npu.bit beside npu.hwh")
        self._lock = threading.Lock()
        self._resident: ProgramImage | None = None
        self._buffers: dict[str, np.ndarray] = {}
        self._programs: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # key -> (program, weights), LRU order
        self.resident_bytes = int(resident_bytes)
        self.resets = 0
        self.requests = 0
        self.swaps = 0
        npu_ip_class()  # registers the driver before PYNQ assigns drivers
        try:
            self.overlay = pynq.Overlay(str(self.bitfile), device=self.device)
        except OverlayError:
            raise
        except Exception as exc:  # PYNQ's own errors: wrap with what to do
            raise OverlayError(f"loading overlay {self.bitfile} failed: {exc}") from exc
        self._bind()
        if selftest:
            with self._lock:
                self._selftest()

    # ----------------------------------------------------------------------------------------- setup
    def _bind(self):
        instance = self.hwh_info["instance"] or NPU_INSTANCE
        ip = getattr(self.overlay, instance)
        if not isinstance(ip, npu_ip_class()):
            raise OverlayError(f"PYNQ bound {type(ip).__name__} to {instance}, not the NPU driver "
                               f"(VLNV {self.overlay.ip_dict[instance]['type']})")
        self.ip = ip

    def _alloc(self, name: str, n: int, dtype) -> np.ndarray:
        pynq = import_pynq()
        buf = self._buffers.get(name)
        if buf is None or buf.size < n or buf.dtype != np.dtype(dtype):
            buf = pynq.allocate((max(n, 1),), dtype=dtype, target=self.device) if self.device is not None \
                else pynq.allocate((max(n, 1),), dtype=dtype)
            self._buffers[name] = buf
        return buf

    def _make_resident(self, img: ProgramImage) -> None:
        """Point the device at `img`: its program and weights are copied to device memory on first use only."""
        pynq = import_pynq()
        if self._resident is not None and self._resident.key == img.key:
            return
        entry = self._programs.pop(img.key, None)
        if entry is None:
            need = len(img.program) + len(img.weights)
            while self._programs and need + sum(p.nbytes + w.nbytes for p, w in self._programs.values()) \
                    > self.resident_bytes:
                self._programs.pop(next(iter(self._programs)))  # least recently used
            kw = {} if self.device is None else {"target": self.device}
            prog = np.frombuffer(img.program, dtype="<u4")
            wts = np.frombuffer(img.weights, dtype=np.uint8)
            p = pynq.allocate((prog.size,), dtype=np.uint32, **kw)
            p[:] = prog
            p.flush()
            w = pynq.allocate((max(wts.size, 1),), dtype=np.uint8, **kw)
            w[: wts.size] = wts
            w.flush()
            entry = (p, w)
            self.swaps += 1
        self._programs[img.key] = entry  # most recently used last
        self._buffers["program"], self._buffers["weights"] = entry
        self._alloc("arena", img.arena_words + GUARD_WORDS, np.float32)
        self._alloc("status", 1, np.uint32)
        self._resident = img

    # ----------------------------------------------------------------------------------------- run
    def run(self, img: ProgramImage, x: np.ndarray) -> np.ndarray:
        """Run program `img` on input `x` (HWC float32, optional batch 1); output shaped like the program's."""
        x = np.asarray(x, dtype=np.float32)
        n_in = int(np.prod(img.input_shape))
        if x.size != n_in:
            raise ValueError(f"input has shape {x.shape}, the program expects {img.input_shape}")
        with self._lock:
            self.requests += 1
            out = self._run_locked(img, x)
            if self.verify:
                again = self._run_locked(img, x)
                if out.tobytes() != again.tobytes():
                    self._reset(f"two runs of the same request gave different outputs")
                    raise BackendUnavailableError("NPU output corrupted: two runs of the same request differ; "
                                                  "the device was reset, retry the request")
            return out

    def _run_locked(self, img: ProgramImage, x: np.ndarray) -> np.ndarray:
        if self._resident is None or self._resident.key != img.key:
            self._make_resident(img)
        arena, status = self._buffers["arena"], self._buffers["status"]
        arena[: img.arena_words] = 0.0
        arena[img.input_offset: img.input_offset + x.size] = x.reshape(-1)
        guard = arena[img.arena_words: img.arena_words + GUARD_WORDS].view(np.uint32)
        guard[:] = GUARD_PATTERN
        arena.flush()
        status[0] = STATUS_SENTINEL
        status.flush()
        ip = self.ip
        if not ip.idle():
            self._reset("the NPU was not idle before a request")
        for name in ("program", "weights", "arena", "status"):
            ip.set_pointer(name, int(self._buffers[name].device_address))
        ip.start()
        deadline = time.monotonic() + self.timeout_s
        if not ip.wait_done(deadline):
            self._reset(f"ap_done not raised within {self.timeout_s:g} s")
            raise BackendTimeoutError(f"NPU on {self.board_name} did not finish within {self.timeout_s:g} s "
                                      "(ap_done never rose); the device was reset, retry the request")
        status.invalidate()
        code = int(status[0])
        if code == STATUS_SENTINEL:
            self._reset("ap_done rose but the kernel never wrote its status")
            raise BackendUnavailableError("NPU raised ap_done without running the program (status word "
                                          "untouched); the device was reset, retry the request")
        if code != 0:
            name = npu_ip()["status_codes"].get(str(code), "unknown")
            raise BackendUnavailableError(f"NPU rejected the program: status {code} ({name})")
        arena.invalidate()
        if not np.array_equal(arena[img.arena_words: img.arena_words + GUARD_WORDS].view(np.uint32),
                              np.full(GUARD_WORDS, GUARD_PATTERN, np.uint32)):
            self._reset("guard words past the arena were overwritten")
            raise BackendUnavailableError("NPU output corrupted: it wrote past the arena; the device was reset")
        n_out = int(np.prod(img.output_shape))
        out = np.array(arena[img.output_offset: img.output_offset + n_out], dtype=np.float32, copy=True)
        if self.check_finite and not np.isfinite(out).all():
            self._reset("non-finite values in the output")
            raise BackendUnavailableError(f"NPU output corrupted: {int((~np.isfinite(out)).sum())} non-finite "
                                          "values; the device was reset, retry the request")
        return out.reshape(img.output_shape)

    # ----------------------------------------------------------------------------------------- recovery
    def _reset(self, reason: str) -> None:
        """Reprogram the PL (resets the kernel), rebind, and check the device with the known-answer test."""
        self.resets += 1
        self.last_reset_reason = reason
        try:
            self.overlay.download()
            self._bind()
            if self.selftest_enabled:
                self._selftest()
        except BackendError:
            raise
        except Exception as exc:
            raise BackendUnavailableError(f"resetting the NPU after '{reason}' failed: {exc}") from exc

    def _selftest(self) -> None:
        img, x, expected = selftest_image()
        saved_verify, self.verify = self.verify, False
        try:
            got = self._run_locked(img, x)
        except BackendError as exc:
            raise BackendUnavailableError(f"NPU self-test failed: {exc}") from exc
        finally:
            self.verify = saved_verify
        if got.tobytes() != expected.tobytes():
            raise BackendUnavailableError("NPU self-test failed: the known-answer program gave a wrong result")

    def reset(self) -> None:
        with self._lock:
            self._reset("requested")

    def close(self) -> None:
        with self._lock:
            self._buffers.clear()
            self._programs.clear()
            self._resident = None


_shared: dict[tuple, NpuAccelerator] = {}
_shared_lock = threading.Lock()


def shared_accelerator(board: str, **kwargs) -> NpuAccelerator:
    """One accelerator per (board, options) per process: models share the device and swap their weights."""
    key = (board, tuple(sorted(kwargs.items())))
    with _shared_lock:
        acc = _shared.get(key)
        if acc is None:
            acc = NpuAccelerator(board, **kwargs)
            _shared[key] = acc
        return acc
