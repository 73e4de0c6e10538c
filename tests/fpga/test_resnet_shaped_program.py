"""A full-size program (ResNet-50's 53 convs, max pool, global pool at 224x224, random weights, built by
tests/support/synthetic.py) through PYNQ and the simulated board gives the same bytes as calling the kernel
directly, on a real photo; and the performance model reads the same MACs from it as from the Keras network."""
from __future__ import annotations

import numpy as np
import pytest

from tests.support import synthetic


@pytest.fixture(scope="module")
def resnet_program():
    return synthetic.resnet50_like(prec=1, seed=3)


def test_fpga_path_equals_direct_kernel_call(accel, resnet_program):
    from skimage import data

    from brainwave.npu.csim import CsimExecutor
    from brainwave.npu.isa import Program

    img = Program.from_bytes(*resnet_program)
    assert img.input_shape == (224, 224, 3)
    photo = data.chelsea()[:224, 50:274].astype(np.float32) / np.float32(255.0)
    want = CsimExecutor().run(img, photo)
    got = accel.run(img, photo)
    assert got.shape == want.shape == (1, 1, 2048)
    assert got.tobytes() == want.tobytes()
    assert np.isfinite(got).all() and np.count_nonzero(got) > 100


def test_estimate_of_hand_packed_program_matches_compiled_resnet50(resnet_program):
    """The hand-packed ResNet-50-shaped program (bfp16) and the compiler's bfp16 ResNet-50 do the same MACs and
    cost the same."""
    from brainwave.fpga import perf
    from brainwave.models.catalog import build_featurizer, resolve_featurizer
    from brainwave.npu.isa import Program

    from_program = perf.estimate_program(Program.from_bytes(*resnet_program), "kv260")
    from_keras = perf.estimate_model(build_featurizer(resolve_featurizer("resnet50")), "kv260", precision="bfp16")
    assert from_program.macs == from_keras.macs
    conv_p = from_program.by_op()["CONV2D"][1]
    conv_k = from_keras.by_op()["CONV2D"][1]
    assert abs(conv_p - conv_k) / conv_k < 0.05


def test_deadline_shorter_than_the_kernel(resnet_program):
    """A real run that outlasts its deadline: DEADLINE_EXCEEDED, the PL is reset (the late run's results are
    discarded), and the next request with a sufficient deadline is exact."""
    from brainwave.featurizer.backend import BackendTimeoutError
    from brainwave.fpga.driver import NpuAccelerator
    from brainwave.npu.csim import CsimExecutor
    from brainwave.npu.isa import Program

    img = Program.from_bytes(*resnet_program)
    x = np.random.default_rng(1).normal(0, 1, img.input_shape).astype(np.float32)
    acc = NpuAccelerator("kv260", simulate=True, timeout_s=0.05)
    try:
        with pytest.raises(BackendTimeoutError, match="did not finish within 0.05 s"):
            acc.run(img, x)
        assert acc.resets == 1
        acc.timeout_s = 60.0
        want = CsimExecutor().run(img, x)
        assert acc.run(img, x).tobytes() == want.tobytes()
    finally:
        acc.close()
