"""CONCAT (ISA v3) and programs with several outputs, from the compiler's side: Keras Concatenate becomes
CONCAT instructions (n operands: n - 1 pairwise), a model with several outputs becomes one program whose output
packs them (Program.outputs), the packing survives a .bwnp file, and the result matches float Keras. The
executors' bytes for CONCAT are held to the spec by the sweep (tests/support/cases.py) in
tests/npu/test_executors.py."""
from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
from keras import layers  # noqa: E402

from brainwave.npu.compiler import compile_keras  # noqa: E402
from brainwave.npu.executor import create_executor  # noqa: E402
from brainwave.npu.isa import Opcode, OutputSlice, Program, ProgramError  # noqa: E402


def _model():
    """Three branches concatenated (two CONCATs), and two outputs: the concatenation's conv and a pooled branch."""
    rng = np.random.default_rng(3)
    inp = keras.Input((6, 5, 3))
    a = layers.Conv2D(4, 3, padding="same", activation="relu", name="a")(inp)
    b = layers.Conv2D(5, 1, name="b")(inp)
    c = layers.Conv2D(17, 3, padding="same", name="c")(inp)
    cat = layers.Concatenate(name="cat")([a, b, c])
    head = layers.Conv2D(6, 1, name="head")(cat)
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name="pooled")(c)
    model = keras.Model(inp, [head, pooled])
    for layer in model.layers:
        if layer.get_weights():
            layer.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) for w in layer.get_weights()])
    return model


@pytest.fixture(scope="module")
def model():
    return _model()


def test_concatenate_and_several_outputs_compile(model, tmp_path):
    program = compile_keras(model, precision="bfp20")
    concats = [d for d in program.instructions if d.opcode == Opcode.CONCAT]
    assert [(d.in_c, d.out_c) for d in concats[:2]] == [(4, 9), (9, 26)]  # cat: a + b, then + c
    assert concats[1].name == "cat" and concats[0].name == "cat"
    assert program.outputs == (OutputSlice("head", (6, 5, 6), 0), OutputSlice("pooled", (1, 1, 17), 180))
    assert program.output_shape == (1, 1, 197)
    again = Program.load(program.save(tmp_path / "two.bwnp"))
    assert again.outputs == program.outputs and again.digest == program.digest


def test_several_outputs_match_float_keras(model):
    program = compile_keras(model, precision="bfp20")
    x = np.random.default_rng(0).normal(size=(1, 6, 5, 3)).astype(np.float32)
    executor = create_executor("native", threads=2)
    try:
        y = executor.run(program, x)
    finally:
        executor.close()
    head, pooled = program.split(y)
    want_head, want_pooled = (np.asarray(t) for t in model(x))
    assert head.shape == want_head.shape and pooled.shape == want_pooled.shape
    np.testing.assert_allclose(head, want_head, rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(pooled, want_pooled, rtol=2e-3, atol=2e-3)


def test_output_slices_must_lie_in_the_output():
    program = compile_keras(_model(), precision="bfp16")
    with pytest.raises(ProgramError, match="outside the program's output"):
        Program.from_bytes(program.program_bytes(), program.weights, outputs=(OutputSlice("x", (1, 1, 198), 0),))
