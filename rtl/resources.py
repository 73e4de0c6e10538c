"""Per-lane resource counts from Yosys `stat` reports, as JSON for the performance model (docs/hardware.md).

    python3 resources.py build/pe_lane_bfp20.stat build/pe_lane_bfp16.stat > build/resources.json

Counted from the design-hierarchy total of `synth_xilinx -family xcup -top <lane>` (Yosys maps to
UltraScale+ primitives):
  dsp48e2  DSP48E2 slices
  lut      every cell that occupies a LUT6 site: LUT1..LUT6, INV (a LUT1 once placed), SRL16E/SRLC32E
           (shift registers in LUTs) and RAM* (LUT RAM)
  ff       FDRE/FDSE/FDCE/FDPE flip-flops
  carry    CARRY4/CARRY8 carry chains (not LUTs; listed for completeness)
IBUF/OBUF/BUFG are the lane's ports seen as a top level, not lane logic, and are left out.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

# What a performance model needs besides the area: both lanes do 16 multiply-accumulates per cycle (bfp16:
# 8 lanes x 2 pixels), hand out one float32 sum per accumulation LATENCY cycles after its last chunk, and
# keep INTERLEAVE accumulations in flight. Kept equal to the localparams of pe_lane_*.sv by tests/rtl.
LANE_FACTS = {
    "pe_lane_bfp20": {"precisions": ["bfp20", "bfp16", "bfp12"], "macs_per_cycle": 16, "latency_cycles": 16,
                      "interleave": 6},
    "pe_lane_bfp16": {"precisions": ["bfp16", "bfp12"], "macs_per_cycle": 16, "latency_cycles": 16,
                      "interleave": 6},
}


def cell_counts(stat_text: str) -> dict[str, int]:
    """Cell type -> count of the last `Number of cells` block: the whole hierarchy when there are several."""
    block = stat_text.split("Number of cells:")[-1]
    block = block.split("\n\n")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^\s+(\S+)\s+(\d+)\s*$", block, re.M)}


def summarize(cells: dict[str, int]) -> dict[str, int]:
    def total(pattern: str) -> int:
        return sum(n for name, n in cells.items() if re.fullmatch(pattern, name))

    return {
        "dsp48e2": total(r"DSP48E2"),
        "lut": total(r"LUT[1-6]|INV|SRL16E|SRLC32E|RAM\w+"),
        "ff": total(r"FD[RSCP]E"),
        "carry": total(r"CARRY[48]"),
    }


def yosys_version(log: Path) -> str:
    match = re.search(r"Yosys \d+\.\d+[^\n]*", log.read_text()) if log.is_file() else None
    return match.group(0).strip() if match else "Yosys (version not recorded)"


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    lanes = {}
    tool = ""
    for path in map(Path, argv):
        lane = path.stem
        cells = cell_counts(path.read_text())
        lanes[lane] = {**summarize(cells), **LANE_FACTS[lane], "cells": dict(sorted(cells.items()))}
        tool = yosys_version(path.with_suffix(".yosys.log"))
    report = {
        "tool": tool,
        "command": "read_verilog -sv <rtl/*.sv>; synth_xilinx -family xcup -top <lane>; stat",
        "lanes": lanes,
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
