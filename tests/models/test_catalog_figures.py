"""`brainwave models` prints each network's GMAC, weights blob per precision and kv260 bfp20 estimate from
brainwave/models/figures.json: it must say what the compiler makes of the catalog today."""
from __future__ import annotations

import pytest

from brainwave.models import catalog_entries
from brainwave.models.figures import load, program_figures
from tests.support.catalog import compiled

pytest.importorskip("keras")


@pytest.mark.slow
@pytest.mark.parametrize("name", [spec.model_ref for spec in catalog_entries()])
def test_figures_file_is_current(name):
    program, _ = compiled(name)
    assert load().get(name) == program_figures(program), \
        "stale: run python -m brainwave.models.figures --write"


def test_weights_per_precision_follow_from_the_instructions():
    """figures.json's bfp16/bfp12 sizes come from the bfp20 program's instructions (packing.blob_bytes): they are
    the sizes the compiler's packer gives in those precisions."""
    from brainwave.npu.compiler import compile_keras
    from brainwave.npu.compiler.packing import blob_bytes
    from brainwave.npu.isa import Opcode
    from brainwave.npu.numerics import Precision
    from tests.support.catalog import model

    for precision in Precision:
        program = compile_keras(model("resnet50"), precision=precision)
        convs = [(d.weight_blocks, d.out_c) for d in program.instructions if d.opcode == Opcode.CONV2D]
        assert blob_bytes(convs, precision) == len(program.weights), precision.label
