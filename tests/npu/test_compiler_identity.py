"""The catalog networks compile to the same bytes as before the compiler became a pass pipeline.

The digests were recorded from the single-walker Keras compiler (commit bdb113f) with
`compile_keras(build_featurizer(resolve_featurizer(name)), precision=...)`: sha256 of program bytes + weights
(`Program.digest`). Any change to folding order, float rounding, instruction order or arena layout changes
them. The layer names (layers.json, used by per-layer reports) are pinned too. ISA v3 (CONCAT) changed one
header word, isa_version 2 -> 3, and nothing else: with isa_version set back to 2 the programs give the digests
recorded before it.
"""
from __future__ import annotations

import hashlib

import pytest

pytest.importorskip("keras")

from brainwave.models import build_featurizer, resolve_featurizer  # noqa: E402
from brainwave.models.efficientnet_lite import MissingWeightsError  # noqa: E402
from brainwave.npu.compiler import compile_keras  # noqa: E402

DIGESTS = {
    ("resnet50", "bfp20"): "3eb3ab72bd4f716b7a28a1a61fcd4dc1c1ac87768894ea30a190bcd86650a779",
    ("resnet50", "bfp16"): "0956d6418eb6715ecb2507e984bd503b0da07557911754ddfa1d3725349c2cff",
    ("resnet50", "bfp12"): "bf24967e473cb6cbdb97100c242729a138fccf1af314bd41b2459cf0f1cbc3bc",
    ("efficientnet-lite0", "bfp20"): "a6c4d2dc08550fed6a55ff560a412059b89104c1b13137fc149a38c9492a99b3",
    ("efficientnet-lite0", "bfp16"): "d2bf6323476e514157a047e0d911057ebdc23d2a79cedd4d0254ff9830574b34",
    ("efficientnet-lite0", "bfp12"): "8abfd6e6314670aa3865aa6870fd6cdf54614155139a474f040c47c8f99a029d",
}
# sha256 of the instruction names joined by newlines (the same in every precision)
NAMES = {
    "resnet50": "f17dbf3bbde1a2d410711f81e17f1bd94e02dcee17c1cbf269b4eb967be12cc4",
    "efficientnet-lite0": "d5af42ed9c3dd76f4ff7a48787bd58543479293f9158c5bcd41e30925ea7afd2",
}


@pytest.fixture(scope="module", params=sorted(NAMES))
def catalog_model(request):
    try:
        return request.param, build_featurizer(resolve_featurizer(request.param))
    except MissingWeightsError as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("precision", ["bfp20", "bfp16", "bfp12"])
def test_catalog_programs_are_byte_identical(catalog_model, precision):
    name, model = catalog_model
    program = compile_keras(model, precision=precision)
    assert hashlib.sha256(program.program_bytes() + program.weights).hexdigest() == DIGESTS[name, precision]
    names = "\n".join(insn.name for insn in program.instructions)
    assert hashlib.sha256(names.encode()).hexdigest() == NAMES[name]
