"""The catalog networks compile to the same bytes as before the compiler became a pass pipeline.

The digests were recorded from the single-walker Keras compiler (commit bdb113f) with
`compile_keras(build_featurizer(resolve_featurizer(name)), precision=...)`: sha256 of program bytes + weights
(`Program.digest`). Any change to folding order, float rounding, instruction order or arena layout changes
them. The layer names (layers.json, used by per-layer reports) are pinned too.
"""
from __future__ import annotations

import hashlib

import pytest

pytest.importorskip("keras")

from brainwave.models import build_featurizer, resolve_featurizer  # noqa: E402
from brainwave.models.efficientnet_lite0 import MissingWeightsError  # noqa: E402
from brainwave.npu.compiler import compile_keras  # noqa: E402

DIGESTS = {
    ("resnet50", "bfp20"): "2bd69cdb2261c6431bcff00eb62bf7650d1267cbf95f5aaaaa6b1a021fdafe09",
    ("resnet50", "bfp16"): "22e17ee3c0545ccb92e0d7d867b0cdf2fd7850b902ef8e09df6f961e9a00db29",
    ("resnet50", "bfp12"): "22f633259338942796977a06991c9518ea61b1433d77291d7387a62d592e7e00",
    ("efficientnet-lite0", "bfp20"): "e423919ba1ca42cd18bba121dbc4345cf1c1dc502cad4e7c075f00701956673f",
    ("efficientnet-lite0", "bfp16"): "7b940ecc8798945f5c9afab403503dbb84f635e5afc94812599d9e2288390530",
    ("efficientnet-lite0", "bfp12"): "b26afd23d25059df26ae75a88c2224c7c38a7b901d508c71b96911543d671f56",
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
