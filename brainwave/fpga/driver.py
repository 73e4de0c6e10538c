"""PYNQ driver for the NPU overlay: `NpuIP` (bound to the kernel's VLNV) and `NpuAccelerator` (one device).

Run sequence (hls/README.md): write the four buffer addresses (64-bit: low word, high word), write ap_start,
poll AP_CTRL until ap_done with a deadline, invalidate and read the status word and the output.

Fault handling:
- ap_done not raised by the deadline -> BackendTimeoutError; the device is reset (the PL reprogrammed, which
  is what resets an HLS block whose ap_rst_n comes from the PS) and checked with the known-answer self-test.
- ap_done raised but the status word still holds the sentinel the host wrote -> the kernel did not run
  ("spurious done") -> BackendUnavailableError, reset.
- status != 0 -> ProgramError with the kernel's status (a program the kernel rejects).
- corrupted output: guard words past the arena must be intact, the output must be finite; with
  `verify=True` every request runs twice and the two outputs must be byte-identical (the kernel is
  deterministic), which catches a silent bit flip. Each -> BackendUnavailableError, reset.
Weights stay resident in device memory: each program's program and weights buffers are copied to the device
once and kept (least recently used ones are freed past `resident_bytes`), so models served side by side do not
re-copy their weights; the arena and status buffers are shared.
One request at a time (a lock); thread-safe.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np

from brainwave.featurizer.backend import BackendError, BackendTimeoutError, BackendUnavailableError
from brainwave.npu.executor import split_batch
from brainwave.npu.isa import Program, ProgramError, RunMode, Status
from brainwave.npu.ops import validate

from .boards import BITSTREAMS_DIR, HLS_DIR, NPU_INSTANCE, npu_buffer_of, npu_ip, npu_pointer_args, npu_vlnv
from .compat import import_pynq
from .hwh import OverlayError, check_hwh, load_manifest

STATUS_SENTINEL = 0xDEADBEEF
GUARD_WORDS = 16
GUARD_PATTERN = np.uint32(0x7FA5A5A5)  # a NaN pattern the kernel never writes (it canonicalises NaNs)


def _npu_ip_class():
    pynq = import_pynq()

    class NpuIP(pynq.DefaultIP):
        """Register-level driver PYNQ binds to every NPU cell (the VLNV of hls/npu_ip.json)."""

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

        def set_mode(self, mode: RunMode) -> None:
            self.write(self.reg["mode"], int(mode))

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


def selftest_program() -> tuple[Program, np.ndarray, np.ndarray]:
    """The kernel's known-answer vectors (hls/tb/vectors/smoke): program, input, expected output."""
    d = HLS_DIR / "tb" / "vectors" / "smoke"
    program = Program.from_bytes((d / "program.bin").read_bytes(), (d / "weights.bin").read_bytes())
    x = np.fromfile(d / "input.f32", dtype="<f4").reshape(program.input_shape)
    expected = np.fromfile(d / "expected.f32", dtype="<f4").reshape(program.output_shape)
    return program, x, expected


class NpuAccelerator:
    """One NPU overlay on one PYNQ device: an `Executor` (brainwave.npu.executor). Thread-safe; one request at a
    time."""

    name = "board"

    def __init__(self, board: str | None = None, *, simulate: bool | None = None, overlay_dir: Path | None = None,
                 device=None, timeout_s: float = 30.0, verify: bool = False, check_finite: bool = True,
                 selftest: bool = True, resident_bytes: int = 256 << 20):
        pynq = import_pynq()
        import pynq.ps

        board = board or os.environ.get("BRAINWAVE_FPGA_BOARD", "kv260")
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
        self._resident: Program | None = None
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

    def load(self, program: Program) -> None:
        """Make `program` resident: validated here and by the kernel (RunMode.VALIDATE) when its program and
        weights are copied to device memory; every request then runs it trusted (no per-call checks)."""
        validate(program)
        with self._lock:
            self._make_resident(program)

    def _make_resident(self, program: Program) -> None:
        """Point the device at `program`: its blobs are copied to device memory on first use only, and the
        kernel checks them then (RunMode.VALIDATE). Only validated blobs stay in `_programs`, and the driver never
        writes them again, so TRUSTED_RUN on them is safe."""
        pynq = import_pynq()
        if self._resident is not None and self._resident.digest == program.digest:
            return
        entry = self._programs.pop(program.digest, None)
        copied = entry is None
        if copied:
            blob = program.program_bytes()
            need = len(blob) + len(program.weights)
            while self._programs and need + sum(p.nbytes + w.nbytes for p, w in self._programs.values()) \
                    > self.resident_bytes:
                self._programs.pop(next(iter(self._programs)))  # least recently used
            kw = {} if self.device is None else {"target": self.device}
            prog = np.frombuffer(blob, dtype="<u4")
            wts = np.frombuffer(program.weights, dtype=np.uint8)
            p = pynq.allocate((prog.size,), dtype=np.uint32, **kw)
            p[:] = prog
            p.flush()
            w = pynq.allocate((max(wts.size, 1),), dtype=np.uint8, **kw)
            w[: wts.size] = wts
            w.flush()
            entry = (p, w)
            self.swaps += 1
        self._resident = None
        self._buffers["program"], self._buffers["weights"] = entry
        self._alloc("arena", program.arena_words + GUARD_WORDS, np.float32)
        self._alloc("status", 1, np.uint32)
        if copied:
            self._kick(RunMode.VALIDATE)  # raises ProgramError for a program the kernel refuses: not kept
        self._programs[program.digest] = entry  # most recently used last
        self._resident = program

    # ----------------------------------------------------------------------------------------- run
    def run(self, program: Program, x: np.ndarray) -> np.ndarray:
        """Run `program` on input `x` ((H, W, C) or (1, H, W, C) float32); the output keeps x's batch axis."""
        x, batched = split_batch(program, x)
        with self._lock:
            self.requests += 1
            out = self._run_locked(program, x)
            if self.verify:
                again = self._run_locked(program, x)
                if out.tobytes() != again.tobytes():
                    self._reset("two runs of the same request gave different outputs")
                    raise BackendUnavailableError("NPU output corrupted: two runs of the same request differ; "
                                                  "the device was reset, retry the request")
        return out[np.newaxis] if batched else out

    def _run_locked(self, program: Program, x: np.ndarray) -> np.ndarray:
        self._make_resident(program)
        arena = self._buffers["arena"]
        arena[: program.arena_words] = 0.0
        arena[program.input_offset: program.input_offset + x.size] = x.reshape(-1)
        guard = arena[program.arena_words: program.arena_words + GUARD_WORDS].view(np.uint32)
        guard[:] = GUARD_PATTERN
        arena.flush()
        self._kick(RunMode.TRUSTED_RUN)
        arena.invalidate()
        if not np.array_equal(arena[program.arena_words: program.arena_words + GUARD_WORDS].view(np.uint32),
                              np.full(GUARD_WORDS, GUARD_PATTERN, np.uint32)):
            self._reset("guard words past the arena were overwritten")
            raise BackendUnavailableError("NPU output corrupted: it wrote past the arena; the device was reset")
        n_out = int(np.prod(program.output_shape))
        out = np.array(arena[program.output_offset: program.output_offset + n_out], dtype=np.float32, copy=True)
        if self.check_finite and not np.isfinite(out).all():
            self._reset("non-finite values in the output")
            raise BackendUnavailableError(f"NPU output corrupted: {int((~np.isfinite(out)).sum())} non-finite "
                                          "values; the device was reset, retry the request")
        return out.reshape(program.output_shape)

    def _kick(self, mode: RunMode) -> None:
        """One kernel call on the current buffers: pointers (each second port onto its buffer), mode, start,
        wait for ap_done, then the status word."""
        status = self._buffers["status"]
        status[0] = STATUS_SENTINEL
        status.flush()
        ip = self.ip
        if not ip.idle():
            self._reset("the NPU was not idle before a request")
        for name in npu_pointer_args():  # the second ports (weights_b, arena_b) onto the same buffers
            ip.set_pointer(name, int(self._buffers[npu_buffer_of(name)].device_address))
        ip.set_mode(mode)
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
            raise ProgramError(Status(code) if code in set(Status) else Status.BAD_FIELD,
                               "the NPU refused the program")

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
        program, x, expected = selftest_program()
        saved_verify, self.verify = self.verify, False
        try:
            got = self._run_locked(program, x)
        except BackendError as exc:
            raise BackendUnavailableError(f"NPU self-test failed: {exc}") from exc
        finally:
            self.verify = saved_verify
        if got.tobytes() != expected.tobytes():
            raise BackendUnavailableError("NPU self-test failed: the known-answer program gave a wrong result")

    def reset(self) -> None:
        with self._lock:
            self._reset("requested")

    def unload(self, program: Program) -> None:
        with self._lock:
            self._programs.pop(program.digest, None)
            if self._resident is not None and self._resident.digest == program.digest:
                self._resident = None

    def close(self) -> None:
        with self._lock:
            self._buffers.clear()
            self._programs.clear()
            self._resident = None
