"""What `brainwave models` prints about each catalog network besides its spec: multiply-accumulates, the size
of the NPU weights blob in each precision and the kv260 latency ESTIMATE in bfp20 (brainwave.fpga.perf).

Computing them means building and compiling every network (about a minute for the catalog, VGG-16 alone 25 s),
so they are kept in figures.json beside this file and regenerated with

    python -m brainwave.models.figures --write

tests/models/test_catalog_figures.py compiles each network and fails when the file is stale.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from brainwave.npu.isa import Opcode, Program
from brainwave.npu.numerics import Precision

FIGURES_FILE = Path(__file__).with_name("figures.json")
ESTIMATE_BOARD = "kv260"
ESTIMATE_PRECISION = "bfp20"


def program_figures(program: Program) -> dict:
    """The figures of a network from its bfp20 program (the blob sizes of the other precisions follow from its
    instructions: the same blocks, other block sizes)."""
    from brainwave.fpga.perf import estimate_program
    from brainwave.npu.compiler.packing import blob_bytes
    from brainwave.npu.ops import program_macs

    convs = [(d.weight_blocks, d.out_c) for d in program.instructions if d.opcode == Opcode.CONV2D]
    estimate = estimate_program(program, ESTIMATE_BOARD, ESTIMATE_PRECISION)
    return {"gmac": round(program_macs(program) / 1e9, 2),
            "weights_mb": {p.label: round(blob_bytes(convs, p) / 1e6, 1) for p in Precision},
            f"{ESTIMATE_BOARD}_{ESTIMATE_PRECISION}_ms": round(estimate.latency_ms, 2)}


def compute(model_ref: str) -> dict:
    from brainwave.models import build_featurizer, resolve_featurizer
    from brainwave.npu.compiler import compile_keras

    return program_figures(compile_keras(build_featurizer(resolve_featurizer(model_ref)), ESTIMATE_PRECISION))


def load() -> dict[str, dict]:
    """model_ref -> figures, as last written (an entry may be missing: a network added since)."""
    return json.loads(FIGURES_FILE.read_text()) if FIGURES_FILE.is_file() else {}


def main(argv: list[str] | None = None) -> int:
    from brainwave.models import catalog_entries

    parser = argparse.ArgumentParser(prog="python -m brainwave.models.figures", description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"recompute every network and write {FIGURES_FILE.name}")
    args = parser.parse_args(argv)
    figures = {spec.model_ref: compute(spec.model_ref) for spec in catalog_entries()} if args.write else load()
    text = json.dumps(figures, indent=1) + "\n"
    if args.write:
        FIGURES_FILE.write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
