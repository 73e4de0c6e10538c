"""DSP, URAM, BRAM36 and LUT of the v2 design on a target, and whether they fit a budget or the device.

The MAC array is built from PE lanes: one lane = one 16-lane chunk sum per cycle (16 MACs) + int->float32 + one
float32 accumulate adder with interleaved accumulators (docs/hardware.md "PE lane (RTL)"). A bfp20 build has
P x Kd lanes of 16 DSPs (one 12x16-bit product per DSP); a bfp16/bfp12 build P x Kd x 2 lanes of 8 DSPs (two
8-bit products per DSP48E2). The per-lane figures are the Yosys counts of the RTL lanes (rtl/resources.json,
or rtl/build/resources.json after `make -C rtl`) in a source checkout; an installed package has no rtl/, and
then the provisional figures below are used and the `source` of every result says so.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from brainwave.npu.numerics import BLOCK, DEFAULT_PRECISION, Precision

from ..boards import REPO, Target

PROVISIONAL_LANES = {
    "pe_lane_bfp20": {"dsp48e2": 16, "lut": 600, "ff": 550},
    "pe_lane_bfp16": {"dsp48e2": 8, "lut": 550, "ff": 450},
}
# Everything around the lanes (provisional, LUTs): quantizer (16 lanes), three m_axi masters, control and
# address generation, line-buffer read muxes, weight unpacking, pools and global pool (16 comparators, 4
# adders, a divider), the generic path's 16-lane MAC in fabric.
LUT_FIXED = {"quantizer": 1200, "axi_masters": 3000, "control_and_address": 4000, "line_buffer_muxes": 2000,
             "weight_unpack": 1000, "pools_gap": 3000, "generic_path": 3000}
RTL_FIGURES = ("rtl/resources.json", "rtl/build/resources.json")  # relative to the source checkout


def rtl_lane_figures(repo: Path = REPO) -> dict | None:
    """The RTL PE lanes' Yosys counts ({"path", "tool", "lanes": {name: {dsp48e2, lut, ff, ...}}}), if present."""
    for rel in RTL_FIGURES:
        try:
            data = json.loads((repo / rel).read_text())
        except (OSError, ValueError):
            continue
        lanes = data.get("lanes") if isinstance(data, dict) else None
        if isinstance(lanes, dict) and all(k in lanes for k in PROVISIONAL_LANES):
            return {"path": rel, "tool": data.get("tool", ""), "lanes": lanes}
    return None


def lane_figures(repo: Path = REPO) -> tuple[dict, str]:
    """(per-lane figures, where they come from): the RTL counts, else the provisional ones and why."""
    rtl = rtl_lane_figures(repo)
    if rtl:
        return rtl["lanes"], (f"lanes: {rtl['tool'] or 'Yosys'} counts of the RTL PE lanes ({rtl['path']}); "
                              "rest provisional")
    return PROVISIONAL_LANES, (f"provisional per-lane figures (PROVISIONAL_LANES in brainwave/fpga/perf/resources.py"
                               f"): no RTL lane counts at {repo / RTL_FIGURES[0]} (not a source checkout?)")


def resources(tgt: Target, precision: str | int = DEFAULT_PRECISION.label) -> dict:
    """DSP, URAM, BRAM36 and LUT of the v2 design built for one precision on a target."""
    c = tgt.npu
    prec = Precision[precision.upper()] if isinstance(precision, str) else Precision(precision)
    lanes, source = lane_figures()
    if prec == Precision.BFP20 or c.pack == 1:
        lane, n_lanes = lanes["pe_lane_bfp20"], c.pixels * c.dsp_cols
    else:
        lane, n_lanes = lanes["pe_lane_bfp16"], c.pixels * c.dsp_cols * c.pack
    dsp = n_lanes * int(lane["dsp48e2"])
    if c.pack == 1 and tgt.device.dsp_kind == "DSP48E1":
        dsp = c.pixels * c.dsp_cols * BLOCK
    uram, bram = _memories(tgt)
    lut = n_lanes * int(lane["lut"]) + sum(LUT_FIXED.values())
    return {"dsp": dsp, "uram": uram, "bram36": bram, "lut": int(lut), "lanes": n_lanes, "source": source,
            "device": {"dsp": tgt.device.dsp, "uram": tgt.device.uram, "bram36": tgt.device.bram36,
                       "lut": tgt.device.lut},
            "budget": None if tgt.budget is None else {"dsp": tgt.budget.dsp, "uram": tgt.budget.uram,
                                                       "bram36": tgt.budget.bram36, "lut": tgt.budget.lut}}


def _memories(tgt: Target) -> tuple[int, int]:
    """(URAM, BRAM36): weight banks, resident weights and the line buffer in URAM where the device has it (else
    BRAM), the pool row cache, an on-chip arena, FIFOs and burst buffers in BRAM."""
    c = tgt.npu
    uram_bytes = 32 * 1024  # a URAM used 64 bits wide: 4096 x 64
    lb_block_bits = BLOCK * 12 + 8
    if tgt.device.uram:
        # weight banks (two) + resident weights; the line buffer: P banks, a 200-bit block = 3 URAMs wide
        uram = (math.ceil(2 * c.wbuf_bytes / uram_bytes) + math.ceil(c.weights_resident_bytes / uram_bytes)
                + c.pixels * math.ceil(lb_block_bits / 72) * math.ceil(c.lb_blocks / c.pixels / 4096))
        bram_banks = 0
    else:
        uram = 0
        bram_banks = math.ceil(2 * c.wbuf_bytes / 4096) + math.ceil(c.lb_blocks * lb_block_bits / 36864)
    pool = 8 * math.ceil(c.pool_floats / BLOCK / 512)  # 16 floats wide = 8 BRAM36 at 72 bits
    arena_chip = math.ceil(c.arena_on_chip_bytes / 4096)
    return uram, bram_banks + pool + arena_chip + 24  # + FIFOs, m_axi burst buffers, generic-path and GAP buffers


def within(res: dict, limits: dict | None) -> bool | None:
    if limits is None:
        return None
    return all(res[k] <= limits[k] for k in ("dsp", "uram", "bram36", "lut"))
