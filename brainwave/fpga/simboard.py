"""A simulated PYNQ board whose programmable logic is the HLS NPU kernel (C-simulation through libnpu.so).

`SimBoard` is a `pynq.Device`: the unmodified `pynq.Overlay`, `DefaultIP.read/write` (through `pynq.MMIO`'s
REGISTER_RW path) and `pynq.allocate` run against it.

- Download of a bitstream = parsing its .hwh with PYNQ's own HWH parser (the Zynq or Zynq UltraScale+ one, by
  the processing system found in the .hwh) and instantiating one `SimNpu` per cell whose VLNV is the NPU's.
  Only the .hwh is needed: pass the .hwh path as the bitstream (no fake .bit exists).
- DDR: one byte array of `board.ddr_bytes` at physical address `board.ddr_base`. `allocate()` returns a
  `pynq.buffer.PynqBuffer` (the CPU's cached view, separate memory) with a physical address; `flush()` copies
  the CPU view to DDR and `invalidate()` copies DDR back, so a driver that forgets to sync sees stale data, as
  on a non-coherent port.
- The NPU: a 128-byte s_axi_control register file (AP_CTRL/GIE/IER/ISR, six 64-bit pointers, `mode`). A write
  of ap_start latches the pointers and the mode and runs `npu_run` on the DDR those addresses map to, on a
  worker thread; ap_done rises when it returns (clear on read), ap_idle/ap_ready as Vitis HLS generates them.
- Fault knobs (`board.inject_fault(kind, count)`): "hang" (done never rises until the PL is re-downloaded),
  "spurious_done" (done rises without running), "corrupt_output" (a NaN written into the output tensor),
  "bitflip_output" (one mantissa bit of the output flipped: finite, only a second run can see it).
- The PS clock controller: `pynq.ps.Clocks` on x86 has no implementation; `SimClocks` records what
  `Overlay.download()` programs (the .hwh's fclk divisors).
"""
from __future__ import annotations

import struct
import threading
import weakref
from pathlib import Path

import numpy as np

from brainwave.npu.isa import HEADER_WORDS, INSN_WORDS, RunMode, decode_header

from .boards import Board, get_board, npu_ip, npu_pointer_args
from .hwh import OverlayError, parse_hwh

_ALIGN = 4096


def _pynq():
    from .compat import import_pynq  # imported lazily: the float/emulator backends never need PYNQ

    return import_pynq()


class SimClocks:
    """Stands in for pynq.ps's clock controller (fclk/pl_clk dividers from a 1000 MHz PLL)."""

    SRC_MHZ = 1000.0

    def __init__(self):
        self.divisors = {i: (10, 1) for i in range(4)}
        self.enabled = {i: False for i in range(4)}

    def set_pl_clk(self, clk_idx, div0=None, div1=None, clk_mhz=100.0):
        if clk_idx not in range(4):
            raise ValueError("Valid PL clock index is 0 - 3.")
        if div0 is None or div1 is None:
            div0, div1 = max(1, round(self.SRC_MHZ / clk_mhz)), 1
        self.divisors[clk_idx] = (int(div0), int(div1))
        self.enabled[clk_idx] = True

    def get_pl_clk(self, clk_idx):
        d0, d1 = self.divisors[clk_idx]
        return round(self.SRC_MHZ / (d0 * d1), 6)

    def get_cpu_mhz(self):
        return 1200.0


class SimNpu:
    """One NPU instance: its control registers and the kernel run."""

    def __init__(self, board: "SimBoard", name: str, base: int, span: int):
        ip = npu_ip()
        self.board, self.name, self.base, self.span = board, name, base, span
        self.reg = ip["registers"]
        self.bits = ip["ap_ctrl_bits"]
        self.regs = np.zeros(ip["address_range"] // 4, dtype=np.uint32)  # decoded registers; the rest reads 0
        self._lock = threading.Lock()
        self._busy = False
        self._done = False
        self._ready = False
        self._abort = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0

    # registers ------------------------------------------------------------------------------------------
    def _ctrl_value(self) -> int:
        v = 0
        if not self._busy:
            v |= 1 << self.bits["ap_idle"]
        if self._done:
            v |= 1 << self.bits["ap_done"]
        if self._ready:
            v |= 1 << self.bits["ap_ready"]
        if self._busy and not self._done:
            v |= 1 << self.bits["ap_start"]
        return v

    def read(self, offset: int) -> int:
        with self._lock:
            if offset == self.reg["AP_CTRL"]:
                v = self._ctrl_value()
                self._done = False  # ap_done and ap_ready are clear-on-read
                self._ready = False
                return v
            idx = offset // 4
            return int(self.regs[idx]) if idx < len(self.regs) else 0

    def write(self, offset: int, value: int) -> None:
        with self._lock:
            if offset == self.reg["AP_CTRL"]:
                if value & (1 << self.bits["ap_start"]) and not self._busy:
                    self._start()
                return
            if offset == self.reg["ISR"]:  # toggle-on-write
                self.regs[offset // 4] ^= np.uint32(value & 0x3)
                return
            idx = offset // 4
            if idx < len(self.regs):
                self.regs[idx] = np.uint32(value & 0xFFFFFFFF)

    def _pointer(self, name: str) -> int:
        off = self.reg[name] // 4
        return int(self.regs[off]) | (int(self.regs[off + 1]) << 32)

    # execution ------------------------------------------------------------------------------------------
    def _start(self) -> None:
        ptrs = {n: self._pointer(n) for n in npu_pointer_args()}
        ptrs["mode"] = int(self.regs[self.reg["mode"] // 4])  # a scalar argument, latched with the pointers
        fault = self.board._take_fault()
        self._busy, self._done, self._ready = True, False, False
        self.runs += 1
        if fault == "spurious_done":
            self._finish()
            return
        abort = self._abort
        self._thread = threading.Thread(target=self._run, args=(ptrs, fault, abort), daemon=True,
                                        name=f"simnpu-{self.name}")
        self._thread.start()

    def _finish(self) -> None:
        self._busy = False
        self._done = True
        self._ready = True
        ier = int(self.regs[self.reg["IER"] // 4])
        if ier & 1:
            self.regs[self.reg["ISR"] // 4] |= np.uint32(1)

    def _run(self, ptrs: dict, fault: str | None, abort: threading.Event) -> None:
        from brainwave.npu.csim import call_npu_run

        if fault == "hang":
            abort.wait()  # the PL is stuck until it is reprogrammed
            return
        board = self.board
        try:
            head = decode_header(board.ddr_view(ptrs["program"], HEADER_WORDS * 4, np.uint8))
            n_insn, arena_words, weights_bytes = head["num_instructions"], head["arena_words"], head["weights_bytes"]
            program = board.ddr_view(ptrs["program"], 4 * (HEADER_WORDS + INSN_WORDS * min(n_insn, 1 << 20)), np.uint32)
            # each port sees DDR at its own register's address, as the m_axi masters do (a driver that leaves
            # weights_b or arena_b unset gets what a board would: half the beats from the wrong place)
            weights, weights_b = (board.ddr_view(ptrs[n], max(weights_bytes, 1), np.uint8)
                                  for n in ("weights", "weights_b"))
            arena, arena_b = (board.ddr_view(ptrs[n], 4 * max(arena_words, 1), np.float32)
                              for n in ("arena", "arena_b"))
            status = board.ddr_view(ptrs["status"], 4, np.uint32)
        except MemoryError:
            # an AXI decode error on real hardware: the master stalls and done never rises
            abort.wait()
            return
        call_npu_run(program, weights, arena, status, weights_b=weights_b, arena_b=arena_b, mode=ptrs["mode"])
        if abort.is_set():
            return
        if fault in ("corrupt_output", "bitflip_output") and status[0] == 0 and ptrs["mode"] != RunMode.VALIDATE:
            i = head["output_offset"] + head["output_h"] * head["output_w"] * head["output_c"] // 2
            if fault == "corrupt_output":
                arena[i] = np.float32("nan")
            else:
                arena.view(np.uint32)[i] ^= np.uint32(1)
        with self._lock:
            if not abort.is_set():
                self._finish()

    def reset(self) -> None:
        """The PL is reprogrammed: a hung run is abandoned, a running one stops (here: the C call cannot be
        interrupted, so reprogramming waits for it; it then discards its done), registers are cleared."""
        with self._lock:
            self._abort.set()
            self._abort = threading.Event()
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with self._lock:
            self.regs[:] = 0
            self._busy = self._done = self._ready = False


class SimBoard:  # the pynq.Device subclass is created lazily (see make_board) so PYNQ stays optional
    pass


def _device_class():
    pynq = _pynq()
    from pynq.buffer import PynqBuffer
    from pynq.pl_server.hwh_parser import _HWHUltrascale, _HWHZynq

    class _SimBoard(pynq.Device, SimBoard):
        """A PYNQ device backed by simulated DDR and the C-simulated NPU."""

        def __init__(self, board: Board):
            super().__init__(f"sim-{board.name}")
            self.board = board
            self.name = f"sim-{board.name}"
            self.capabilities = {"REGISTER_RW": True, "MEMORY_MAPPED": False, "CALLABLE": False}
            self.ddr = np.zeros(board.ddr_bytes, dtype=np.uint8)
            self._free = [(0, board.ddr_bytes)]  # (offset, size) holes, sorted
            self._alloc_lock = threading.Lock()
            self._bos: dict[int, tuple[int, np.ndarray]] = {}  # bo -> (ddr offset, cpu view bytes)
            self._next_bo = 1
            self.ips: dict[int, SimNpu] = {}
            self.bitfile_name = None
            self.timestamp = ""
            self.downloads = 0
            self._faults: list[str] = []
            self._fault_lock = threading.Lock()
            self.mem_dict = {}
            self.ip_dict = {}

        # fault injection ------------------------------------------------------------------------------
        def inject_fault(self, kind: str, count: int = 1) -> None:
            if kind not in ("hang", "spurious_done", "corrupt_output", "bitflip_output"):
                raise ValueError(f"unknown fault {kind!r}")
            with self._fault_lock:
                self._faults.extend([kind] * count)

        def clear_faults(self) -> None:
            with self._fault_lock:
                self._faults.clear()

        def _take_fault(self):
            with self._fault_lock:
                return self._faults.pop(0) if self._faults else None

        # bitstream ------------------------------------------------------------------------------------
        def get_bitfile_metadata(self, bitfile_name):
            hwh = Path(bitfile_name).with_suffix(".hwh")
            root = parse_hwh(hwh)  # clear error for a missing or corrupted .hwh
            types = {m.get("MODTYPE") for m in root.iter("MODULE")}
            if "zynq_ultra_ps_e" in types:
                parser_cls = _HWHUltrascale
            elif "processing_system7" in types:
                parser_cls = _HWHZynq
            else:
                raise OverlayError(f"{hwh}: no Zynq processing system in the design")
            try:
                parser = parser_cls(str(hwh))
            except (AttributeError, KeyError, TypeError, ValueError) as exc:
                raise OverlayError(f"corrupted .hwh {hwh}: PYNQ cannot parse it ({exc!r})") from None
            parser.systemgraph = None  # PYNQ's pynqmetadata graph: only its embedded parser builds one
            return parser

        def download(self, bitstream, parser=None):
            if parser is None:
                parser = self.get_bitfile_metadata(bitstream.bitfile_name)
            for npu in self.ips.values():
                npu.reset()
            self.ips = {}
            vlnv = npu_ip()["vlnv"]
            for name, desc in parser.ip_dict.items():
                if desc.get("type") == vlnv:
                    self.ips[desc["phys_addr"]] = SimNpu(self, name, desc["phys_addr"], desc["addr_range"])
            self.downloads += 1
            super().post_download(bitstream, parser, self.name)

        def gen_cache(self, bitstream, parser=None):
            pass

        def free_bitstream(self):
            pass

        def close(self):
            pass

        # registers ------------------------------------------------------------------------------------
        def _ip_at(self, address: int) -> tuple[SimNpu, int]:
            for base, npu in self.ips.items():
                if base <= address < base + npu.span:
                    return npu, address - base
            raise RuntimeError(f"simulated AXI decode error: no IP at 0x{address:X} (is the overlay loaded?)")

        def read_registers(self, address, length):
            out = bytearray()
            for a in range(address, address + length, 4):
                npu, off = self._ip_at(a)
                out += struct.pack("<I", npu.read(off))
            return bytes(out[:length])

        def write_registers(self, address, data):
            data = bytes(data)
            if len(data) % 4:
                raise MemoryError("unaligned register write")
            for i in range(0, len(data), 4):
                npu, off = self._ip_at(address + i)
                npu.write(off, struct.unpack_from("<I", data, i)[0])

        # memory ---------------------------------------------------------------------------------------
        @property
        def default_memory(self):
            return self

        def allocate(self, shape, dtype="u4", **kwargs):
            dtype = np.dtype(dtype)
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            size = max(_ALIGN, -(-nbytes // _ALIGN) * _ALIGN)
            with self._alloc_lock:
                for i, (off, hole) in enumerate(self._free):
                    if hole >= size:
                        self._free[i] = (off + size, hole - size)
                        if self._free[i][1] == 0:
                            del self._free[i]
                        break
                else:
                    raise RuntimeError(f"simulated DDR exhausted: cannot allocate {nbytes} bytes")
                bo = self._next_bo
                self._next_bo += 1
            cpu = np.zeros(size, dtype=np.uint8)  # the CPU's (cached) view, separate from DDR
            self._bos[bo] = (off, cpu)
            weakref.finalize(cpu, self._release, bo, off, size)
            buf = PynqBuffer(shape, dtype, buffer=cpu, device=self, device_address=self.board.ddr_base + off,
                             bo=bo, coherent=False)
            return buf

        def _release(self, bo, off, size):
            with self._alloc_lock:
                self._bos.pop(bo, None)
                self._free.append((off, size))
                self._free.sort()
                merged = []
                for o, s in self._free:
                    if merged and merged[-1][0] + merged[-1][1] == o:
                        merged[-1] = (merged[-1][0], merged[-1][1] + s)
                    else:
                        merged.append((o, s))
                self._free = merged

        def flush(self, bo, offset, ptr, size):
            base, cpu = self._bos[bo]
            self.ddr[base + offset: base + offset + size] = cpu[offset: offset + size]

        def invalidate(self, bo, offset, ptr, size):
            base, cpu = self._bos[bo]
            cpu[offset: offset + size] = self.ddr[base + offset: base + offset + size]

        def ddr_view(self, address: int, nbytes: int, dtype) -> np.ndarray:
            off = address - self.board.ddr_base
            if address % 4 or off < 0 or off + nbytes > len(self.ddr):
                raise MemoryError(f"address 0x{address:X}+{nbytes} is outside the simulated DDR")
            return self.ddr[off: off + nbytes].view(dtype)

    return _SimBoard


_board_cls = None


def make_board(board: str | Board = "kv260"):
    global _board_cls
    if _board_cls is None:
        _board_cls = _device_class()
    return _board_cls(get_board(board) if isinstance(board, str) else board)


def install(board: str | Board = "kv260"):
    """Create a simulated board and make it PYNQ's active device (and the PS clocks simulated)."""
    pynq = _pynq()
    import pynq.ps as ps

    dev = make_board(board)
    if not ps.CPU_ARCH_IS_SUPPORTED and not isinstance(getattr(ps.Clocks, "_real_instance", None), SimClocks):
        ps.Clocks._real_instance = SimClocks()
    pynq.Device.active_device = dev
    return dev
