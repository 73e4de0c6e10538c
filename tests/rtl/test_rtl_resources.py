"""Resources of the RTL PE lanes, synthesized with Yosys for UltraScale+ (`synth_xilinx -family xcup`):
within the targets, and equal to the figures committed in rtl/resources.json and docs/hardware.md."""
from __future__ import annotations

import json
import re
from pathlib import Path

from tests.rtl.rtl_vectors import documented_timing

REPO = Path(__file__).resolve().parents[2]
# Per lane: one DSP48E2 per bfp20 product, two bfp16 products per DSP48E2, and a LUT budget.
TARGETS = {"pe_lane_bfp20": {"dsp48e2": 16, "lut": 700}, "pe_lane_bfp16": {"dsp48e2": 8, "lut": 700}}


def test_lanes_meet_resource_targets(measured_resources):
    for lane, target in TARGETS.items():
        got = measured_resources["lanes"][lane]
        assert got["dsp48e2"] <= target["dsp48e2"], (lane, got)
        assert got["lut"] <= target["lut"], (lane, got)


def test_committed_figures_are_the_measured_ones(measured_resources):
    """rtl/resources.json is the committed copy of rtl/build/resources.json (regenerate: make -C rtl resources
    && cp rtl/build/resources.json rtl/), and the docs table shows the same numbers."""
    committed = json.loads((REPO / "rtl" / "resources.json").read_text())
    assert committed == measured_resources
    docs = (REPO / "docs" / "hardware.md").read_text()
    for lane, got in measured_resources["lanes"].items():
        row = f"| `{lane}` | {got['dsp48e2']} | {got['lut']} | {got['ff']} | {got['carry']} |"
        assert row in docs, f"docs/hardware.md should have the row {row}"


def test_reported_timing_is_the_rtl_timing(measured_resources):
    for lane in ("bfp20", "bfp16"):
        facts = measured_resources["lanes"][f"pe_lane_{lane}"]
        timing = documented_timing(lane)
        assert (facts["latency_cycles"], facts["interleave"]) == (timing["latency"], timing["interleave"])
    assert re.search(r"synth_xilinx -family xcup", measured_resources["command"])
