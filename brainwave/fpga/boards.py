"""Boards the NPU overlay is built for, the IP identity read from hls/npu_ip.json, and the ISA version.

Everything a driver, the simulated board, the .hwh generator and the performance model must agree on is read
from one place: the kernel's `hls/npu_ip.json` (VLNV, register map) and the ISA version of the compiler
(`brainwave.npu.isa.ISA_VERSION`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HLS_DIR = REPO / "hls"
BITSTREAMS_DIR = REPO / "bitstreams"
NPU_INSTANCE = "npu_run_0"  # block-design cell name of the NPU in every overlay


@dataclass(frozen=True)
class Board:
    name: str
    part: str
    family: str  # "zynq" (processing_system7) or "zynq_us" (zynq_ultra_ps_e)
    clock_mhz: float  # PL clock the NPU is closed at (fclk0 / pl_clk0)
    npu_base: int  # s_axi_control base address on the PS master port
    ddr_base: int  # first PS DDR address the PL masters may use
    ddr_bytes: int  # DDR the simulated board gives pynq.allocate
    hp_port_bits: int  # width of the PS slave port the m_axi masters use
    description: str


BOARDS: dict[str, Board] = {
    b.name: b
    for b in (
        Board("pynq-z2", "xc7z020clg400-1", "zynq", 100.0, 0x40000000, 0x10000000, 256 << 20, 64,
              "TUL PYNQ-Z2 (Zynq-7020): small fabric, 64-bit HP ports"),
        Board("zcu104", "xczu7ev-ffvc1156-2-e", "zynq_us", 200.0, 0xA0000000, 0x40000000, 512 << 20, 128,
              "AMD ZCU104 (Zynq UltraScale+ ZU7EV)"),
        Board("kv260", "xck26-sfvc784-2LV-c", "zynq_us", 200.0, 0xA0000000, 0x40000000, 512 << 20, 128,
              "AMD Kria KV260 (K26 SOM), the part hls/vitis/run_hls.tcl targets by default"),
    )
}


def get_board(name: str) -> Board:
    try:
        return BOARDS[name]
    except KeyError:
        raise ValueError(f"unknown board {name!r}; known boards: {', '.join(sorted(BOARDS))}") from None


@lru_cache(maxsize=1)
def npu_ip() -> dict:
    """hls/npu_ip.json: VLNV, register offsets, AP_CTRL bits, status codes."""
    return json.loads((HLS_DIR / "npu_ip.json").read_text())


def npu_vlnv() -> str:
    return npu_ip()["vlnv"]


def compiler_isa_version() -> int:
    """The ISA version programs are compiled for (what an overlay must implement)."""
    from brainwave.npu.isa import ISA_VERSION

    return ISA_VERSION
