"""One body, every executor: the native executor on each SIMD path this CPU has, the HLS kernel's C simulation
and the simulated board (the `executor` fixture, tests/npu/conftest.py), byte for byte:

- the randomized single-instruction sweep (tests/support/cases.py) equals the plain reading of the spec
  (tests/support/spec_ref.py);
- ResNet-50 and EfficientNet-Lite0, compiled in bfp20 and bfp16, equal C-sim on a real photo;
- a program the NPU refuses raises ProgramError with the kernel's status on every executor;
- the batch-axis convention, input shape errors and load / unload of the Executor protocol.

What only one executor has is tested beside it: tests/npu/test_native.py (threads, concurrency, the caller's
float environment, the out-of-order mutant), tests/hls (the test bench, hand-computed results, other builds of
the kernel), tests/fpga (device faults, resident weights)."""
from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest

from brainwave.errors import InvalidInputError
from brainwave.npu.executor import Executor
from brainwave.npu.isa import Program, ProgramError
from tests.support import assert_same_bits, cases, handmade, photo_input
from tests.support.executors import run_case

SWEEP = cases.sweep()
SMOKE = handmade.smoke_program()  # (program bytes, weights bytes, input, hand-computed output)


def smoke() -> Program:
    return Program.from_bytes(SMOKE[0], SMOKE[1])


# ---------------------------------------------------------------------------------------------------------------
# The sweep: every instruction kind, precision and edge case of the spec


@pytest.mark.parametrize("case", SWEEP, ids=[c.name for c in SWEEP])
def test_sweep_matches_the_spec(executor_id, executor, case):
    assert_same_bits(run_case(executor, case), case.expected, f"{executor_id}: {case.name}")


def test_sweep_is_not_degenerate():
    """The sweep must exercise real values: most expected outputs nonzero and distinct."""
    for case in SWEEP:
        e = case.expected.reshape(-1)
        finite = e[np.isfinite(e)]
        if "zeros" in case.name or "equal" in case.name or "tiny" in case.name or "signedzeros" in case.name:
            continue
        if "nonfinite" in case.name and finite.size == 0:
            continue
        assert finite.size and np.count_nonzero(finite) > finite.size // 5, case.name


# ---------------------------------------------------------------------------------------------------------------
# Whole networks on a real photo


@functools.cache
def network(name: str, precision: str) -> tuple[Program, np.ndarray, np.ndarray]:
    """(program, photo input, C-sim output), compiled and simulated once per session."""
    from brainwave.models import build_featurizer, resolve_featurizer
    from brainwave.npu.compiler import compile_keras
    from brainwave.npu.csim import CsimExecutor

    program = compile_keras(build_featurizer(resolve_featurizer(name)), precision=precision)
    x = photo_input(name)
    want = CsimExecutor().run(program, x)
    assert np.all(np.isfinite(want)) and np.count_nonzero(want) > want.size // 4, "degenerate features"
    return program, x, want


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["bfp20", "bfp16"])
@pytest.mark.parametrize("name", ["resnet50", "efficientnet-lite0"])
def test_network_matches_csim(executor_id, executor, name, precision):
    """On csim itself this runs the kernel again after other programs: the same bytes show that it keeps no
    state between calls."""
    program, x, want = network(name, precision)
    try:
        assert_same_bits(executor.run(program, x), want, f"{executor_id}: {name} {precision}")
    finally:
        executor.unload(program)  # the next network's weights need the room more


# ---------------------------------------------------------------------------------------------------------------
# Refused programs: the kernel's status, whichever executor finds the problem

# A wrong magic never becomes a Program (Program.from_bytes refuses it: tests/npu/test_isa.py), and a wrong
# version reaches an executor only as a Program's isa_version.
MUTATIONS = [m for m in handmade.SMOKE_MUTATIONS if m.name != "magic"]


def mutated(mutation: handmade.Mutation) -> Program:
    if mutation.header:
        return dataclasses.replace(smoke(), isa_version=mutation.value)
    return Program.from_bytes(*mutation.apply(SMOKE[0], SMOKE[1]))


@pytest.mark.parametrize("mutation", MUTATIONS, ids=[m.name for m in MUTATIONS])
def test_refused_program_raises_the_kernels_status(executor_id, executor, mutation):
    bad = mutated(mutation)
    with pytest.raises(ProgramError) as err:
        executor.run(bad, SMOKE[2])
    assert err.value.status == mutation.status, f"{executor_id}: {err.value}"
    assert_same_bits(executor.run(smoke(), SMOKE[2]), SMOKE[3], f"{executor_id}: a good program after the refusal")


# ---------------------------------------------------------------------------------------------------------------
# The Executor protocol


def test_batch_axis_and_shape_errors(executor_id, executor):
    """(H, W, C) in, (h, w, c) out; (1, H, W, C) in, (1, h, w, c) out, with the same bytes; any other shape
    (a batch of two, a wrong channel count, a flat vector) is an InvalidInputError."""
    program, (_, _, x, expected) = smoke(), SMOKE
    assert isinstance(executor, Executor)
    assert_same_bits(executor.run(program, x), expected, f"{executor_id}: (H, W, C)")
    assert_same_bits(executor.run(program, x[np.newaxis]), expected[np.newaxis], f"{executor_id}: (1, H, W, C)")
    assert_same_bits(executor.run(program, x.astype(np.float64)), expected, f"{executor_id}: float64 input")
    for bad in (np.stack([x, x]), x[..., :-1], x[np.newaxis, ..., :-1], x.reshape(-1)):
        with pytest.raises(InvalidInputError):
            executor.run(program, bad)


def test_load_run_unload(executor_id, executor):
    program, (_, _, x, expected) = smoke(), SMOKE
    executor.load(program)
    executor.load(program)  # idempotent
    assert_same_bits(executor.run(program, x), expected, f"{executor_id}: loaded")
    executor.unload(program)
    executor.unload(program)  # not loaded: nothing to do
    assert_same_bits(executor.run(program, x), expected, f"{executor_id}: run after unload loads it again")
