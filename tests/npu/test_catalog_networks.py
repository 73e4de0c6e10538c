"""Azure's catalog on the NPU: ResNet-152, VGG-16, DenseNet-121 (CONCAT) and SSD-VGG (CONCAT and a program with
several outputs), compiled once per session in bfp20 (tests/support/catalog.py), give the same bytes on the
native executor and on the HLS kernel's C simulation for a real photo, and their outputs are finite and not
degenerate (seeded weights: no accuracy is claimed, docs/compiler.md).

Cost: 11-31 GMAC each. They run once on C-sim and once on the native executor's best SIMD path only, not on every
path and not on the simulated board (which runs the same kernel as C-sim): on two cores C-sim takes about
6 s for VGG-16 and 12 s for SSD-VGG; the SIMD paths themselves are held to the spec by the sweep and by
ResNet-50 and EfficientNet-Lite0 in tests/npu/test_executors.py."""
from __future__ import annotations

import numpy as np
import pytest

from tests.support import assert_same_bits
from tests.support.catalog import compiled

pytest.importorskip("keras")

NETWORKS = ["resnet152", "vgg16", "densenet121", "ssd-vgg"]


@pytest.fixture(scope="module")
def native():
    from brainwave.npu.executor import create_executor

    executor = create_executor("native", threads=2)
    yield executor
    executor.close()


@pytest.mark.slow
@pytest.mark.parametrize("name", NETWORKS)
def test_native_equals_csim_on_a_photo(native, name):
    from brainwave.npu.csim import CsimExecutor

    program, x = compiled(name)
    want = CsimExecutor().run(program, x)
    try:
        assert_same_bits(native.run(program, x), want, f"native vs csim: {name}")
    finally:
        native.unload(program)
    for part, name_ in zip(program.split(want), [o.name for o in program.outputs] or [name]):
        assert np.all(np.isfinite(part)), f"{name_}: not finite"
        values = np.unique(part)
        assert np.count_nonzero(part) > part.size // 4 and values.size > part.size // 10, f"{name_}: degenerate"


def test_the_programs_use_what_they_were_added_for():
    """DenseNet-121 and SSD-VGG need CONCAT; SSD-VGG's twelve outputs are packed in the program's one output in
    the catalog's order (named after the Keras layers that make them), each the size the catalog gives it."""
    from brainwave.models import resolve_featurizer
    from brainwave.npu.isa import Opcode
    from tests.support.catalog import model

    densenet, _ = compiled("densenet121")
    assert sum(d.opcode == Opcode.CONCAT for d in densenet.instructions) == 58
    ssd, _ = compiled("ssd-vgg")
    spec = resolve_featurizer("ssd-vgg")
    assert [o.name for o in ssd.outputs] == list(model("ssd-vgg").output_names)
    assert [int(np.prod(o.shape)) for o in ssd.outputs] == [int(np.prod(o.dims)) for o in spec.outputs]
    starts = [o.start for o in ssd.outputs]
    assert starts == sorted(starts) and starts[0] == 0 and ssd.output_shape == (1, 1, sum(o.size for o in ssd.outputs))
