"""Performance model of the NPU on a board: cycles, DDR bytes and resources per instruction. AN ESTIMATE.

Nothing here is measured: no synthesis, no board. The model is derived from the kernels' structure, and works
on compiled programs (brainwave.npu.isa.Program); the op table (brainwave.npu.ops.OPS) says which unit runs
each opcode and so which cost function applies.

- **v1 as coded / idealised** (`v1.py`): the kernel before the v2 rewrite with its port requests counted,
  beside the figure the old model printed (one block per cycle).
- **v2 kernel** (`plan.py`, `v2.py`): hls/src/npu_kernel.cpp as it is now, behind this interface (two ports
  onto the weights and two onto the arena, each stream on its own; float32 arena; the program checked once at
  load). `plan_conv` is the kernel's own tiling.
- **v2 design** (docs/hardware.md): the same engine with the next-step interface, each effect listed
  separately (`estimate.py`): any stream on any HP port, activations stored quantized where all consumers are
  convolutions of one precision, and on Alveo the weights resident in URAM across calls.

Modules: window (which cells a window reads), plan (the v2 tiling), v1, v2 (per-instruction costs, dispatched
by the op table's unit), resources (DSP/URAM/BRAM/LUT), estimate (a program on a target), report (text, JSON,
command lines). Board and engine parameters come from brainwave/fpga/boards.py (TARGETS), the same table the
kernel's hls/src/npu_config.h is generated from.
"""
from .estimate import Estimate, estimate_model, estimate_program, quantized_tensors
from .plan import ConvPlan, plan_conv
from .report import (add_estimate_arguments, estimate_record, format_estimate, main, print_estimate,
                     run_estimate)
from .resources import PROVISIONAL_LANES, lane_figures, resources, rtl_lane_figures, within
from .v1 import V1Cost, v1_as_coded, v1_idealised_cycles
from .v2 import (UNIT_COSTS, LayerCost, Placement, Variant, design_variant, kernel_variant, v2_conv, v2_cost,
                 v2_vector_op)

__all__ = [
    "ConvPlan", "Estimate", "LayerCost", "PROVISIONAL_LANES", "Placement", "UNIT_COSTS", "V1Cost", "Variant",
    "add_estimate_arguments", "design_variant", "estimate_model", "estimate_program", "estimate_record",
    "format_estimate", "kernel_variant", "lane_figures", "main", "plan_conv", "print_estimate",
    "quantized_tensors", "resources", "rtl_lane_figures", "run_estimate", "v1_as_coded", "v1_idealised_cycles",
    "v2_conv", "v2_cost", "v2_vector_op", "within",
]
