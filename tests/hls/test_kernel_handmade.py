"""The HLS kernel against the spec text itself: hand-built programs, an independent quantizer, status codes."""
from __future__ import annotations

import struct
import time

import numpy as np
import pytest

from brainwave.npu.csim import CsimExecutor, call_npu_run
from brainwave.npu.isa import Program, ProgramError, RunMode
from tests.support import handmade, synthetic
from tests.support.hls import HLS, run_tb


def test_smoke_vectors_are_current_and_pass(hls_build, tmp_path):
    program, weights, x, expected = handmade.smoke_program()
    vec = HLS / "tb" / "vectors" / "smoke"
    assert (vec / "program.bin").read_bytes() == program
    assert (vec / "weights.bin").read_bytes() == weights
    assert (vec / "input.f32").read_bytes() == x.astype("<f4").tobytes()
    assert (vec / "expected.f32").read_bytes() == expected.astype("<f4").tobytes()
    proc = run_tb(hls_build["tb"], vec, out_name=str(tmp_path / "out.f32"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS" in proc.stdout
    assert (tmp_path / "out.f32").read_bytes() == expected.astype("<f4").tobytes()


def test_tb_reports_first_mismatch(hls_build, tmp_path):
    program, weights, x, expected = handmade.smoke_program()
    bad = expected.copy().reshape(-1)
    bad[5] = np.nextafter(bad[5], np.float32(np.inf))  # one ulp off
    handmade.write_vectors(tmp_path, program, weights, x, bad)
    proc = run_tb(hls_build["tb"], tmp_path)
    assert proc.returncode == 1
    assert "FAIL: first mismatch at float index 5" in proc.stdout


def _special_input(rng, h, w, c):
    x = (rng.standard_normal((h, w, c)) * np.exp2(rng.integers(-70, 70, (h, w, c)))).astype(np.float32)
    x[0, 0, :] = 0.0
    x[0, 1, :] = -0.0
    x[0, 2, :16] = np.float32(1e-45)  # smallest subnormal
    x[0, 2, 3] = np.nan
    x[0, 3, 5] = np.inf
    x[0, 3, 6] = -np.inf
    x[1, 0, :] = np.float32(3.0)  # all-equal block
    x[1, 1, :16] = np.arange(16) - 7.5  # exact halves at step 1 (bfp16: amax 8 -> E 3, step 1/8)
    x[1, 2, :16] = (np.arange(16) - 8) * 16.0 + 8.0  # amax 120 -> E 6, step 1: no rounding; halves for bfp12
    x[1, 3, :16] = np.float32(2.0**-140) * np.arange(16)  # subnormal block, E clamped to -50
    x[1, 4, :16] = np.float32(3e38) * np.linspace(-1, 1, 16, dtype=np.float32)  # E clamped to 50, saturation
    x[2, 0, :16] = np.float32(127.5)  # ties to 128 -> saturates
    return x


@pytest.mark.parametrize("precision,mbits", [(1, 7), (2, 3), (3, 11)])
def test_quantizer_matches_independent_reference(hls_build, precision, mbits):
    """A 1x1 conv with one-hot weights outputs the dequantized input: compare with a float64 numpy quantizer."""
    rng = np.random.default_rng(7 + precision)
    x = _special_input(rng, 3, 6, 40)
    program, weights = handmade.identity_conv_program(3, 6, 40, precision)
    out = CsimExecutor().run(Program.from_bytes(program, weights), x)
    ref = handmade.ref_dequantize_pixels(x, mbits)
    assert out.shape == ref.shape
    diff = np.flatnonzero(out.view(np.uint32) != ref.view(np.uint32))
    assert diff.size == 0, f"first difference at {diff[0]}: {out.reshape(-1)[diff[0]]} vs {ref.reshape(-1)[diff[0]]}"


def _status(program: bytes, weights: bytes, arena_words: int, mode: int = RunMode.RUN):
    prog = np.frombuffer(program, dtype="<u4").astype(np.uint32)
    w = np.frombuffer(weights, dtype=np.uint8).copy()
    arena = np.full(arena_words, 1.25, dtype=np.float32)
    status = np.full(1, 0xFFFFFFFF, dtype=np.uint32)
    call_npu_run(prog, w, arena, status, mode=mode)
    return int(status[0]), arena


@pytest.mark.parametrize("mode", [RunMode.RUN, RunMode.VALIDATE, 7], ids=["run", "validate", "unknown-mode"])
@pytest.mark.parametrize("mutation", handmade.SMOKE_MUTATIONS, ids=[m.name for m in handmade.SMOKE_MUTATIONS])
def test_status_codes_reject_before_running(hls_build, mutation, mode):
    """The raw kernel call on the mutated blobs: the status docs/isa.md gives, and a rejected program leaves the
    arena untouched (also a weight exponent outside [-50, 50], where the kernel's power-of-two scaling would no
    longer be exact: docs/numerics.md "Why the exponent is clamped"). VALIDATE checks exactly as RUN does, and a
    mode the kernel does not know is RUN (checks on)."""
    program, weights, _, _ = handmade.smoke_program()
    arena_words = struct.unpack_from("<I", program, 12)[0]
    ok_status, ok_arena = _status(program, weights, arena_words, mode)
    assert ok_status == 0
    assert np.all(ok_arena == 1.25) == (mode == RunMode.VALIDATE), "VALIDATE runs nothing; the others run"
    status, arena = _status(*mutation.apply(program, weights), arena_words, mode)
    assert status == mutation.status
    assert np.all(arena == 1.25), "a rejected program must not touch the arena"


def test_trusted_run_gives_the_checked_runs_bytes(hls_build):
    """TRUSTED_RUN (what the driver runs per request once VALIDATE passed) skips only the checks: same output
    bytes as RUN; and the C-sim executor refuses a bad program when it first sees it."""
    program, weights, x, expected = handmade.smoke_program()
    arena_words = struct.unpack_from("<I", program, 12)[0]
    outs = []
    for mode in (RunMode.RUN, RunMode.TRUSTED_RUN):
        prog = np.frombuffer(program, dtype="<u4").astype(np.uint32)
        arena = np.zeros(arena_words, np.float32)
        p = Program.from_bytes(program, weights)
        arena[p.input_offset:p.input_offset + x.size] = x.reshape(-1)
        status = np.full(1, 0xFFFFFFFF, dtype=np.uint32)
        call_npu_run(prog, np.frombuffer(weights, np.uint8).copy(), arena, status, mode=mode)
        assert status[0] == 0
        outs.append(arena[p.output_offset:p.output_offset + expected.size].tobytes())
    assert outs[0] == outs[1] == expected.astype("<f4").tobytes()
    bad = next(m for m in handmade.SMOKE_MUTATIONS if m.exponent is not None)  # framing intact, checks fail
    with pytest.raises(ProgramError) as err:
        CsimExecutor().load(Program.from_bytes(*bad.apply(program, weights)))
    assert err.value.status == bad.status


def test_c_header_matches_generator():
    """hls/src/npu_isa.h is generated from brainwave/npu/isa.py; the committed copy must be current."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "brainwave.npu.isa", "--c-header"], capture_output=True,
                          text=True, cwd=HLS.parent)
    assert proc.returncode == 0, proc.stderr
    assert (HLS / "src" / "npu_isa.h").read_text() == proc.stdout


def test_tb_and_library_agree_on_resnet50_shaped_program(hls_build, tmp_path):
    """A 55-instruction ResNet-50-shaped program (random weights): the test bench reading files and libnpu.so
    through ctypes give the same bytes, and the features are finite and not degenerate."""
    program, weights = synthetic.resnet50_like(prec=1, seed=3)
    x = (np.random.default_rng(3).standard_normal((224, 224, 3)) * 50).astype(np.float32)
    start = time.perf_counter()
    out = CsimExecutor().run(Program.from_bytes(program, weights), x)
    seconds = time.perf_counter() - start
    assert out.shape == (1, 1, 2048)
    assert np.all(np.isfinite(out)) and np.count_nonzero(out) > 1024
    handmade.write_vectors(tmp_path, program, weights, x, out)
    proc = run_tb(hls_build["tb"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS: 2048 floats identical" in proc.stdout
    print(f"\nResNet-50-shaped program, bfp16: C-sim {seconds:.2f} s")


def bfp20_rounding_program() -> tuple[bytes, bytes, np.ndarray, np.ndarray]:
    """A 1x1 conv, 32 -> 2 channels, in bfp20, whose chunk sums pass 2^24 (docs/numerics.md "Dot product").

    Input block 0 is (2^-10, 0...): E = -10, m = 1024. Input block 1 is (2047, 2047, 2047, 2047, 8, 1, 0...):
    E = 10, mantissas equal to the values. Weights (E = 4: with 15-bit weight mantissas the scale is
    2^(Ea + 4 - 10 - 14), one unit of block 1's isum is 2^-10; mantissas shown):
      output 0: block 0 (1024)         -> partial 1024 * 1024 * 2^(-10 + 4 - 24) = 2^-10, held by the accumulator;
                block 1 (2047 x 5, 5)  -> isum 16777217, (float) rounds to 16777216 -> partial 16384.0;
                2^-10 + 16384 is a tie -> 16384.0. Had the chunk sum been added unrounded, 2^-10 + 16777217 * 2^-10
                = 16384.001953125 would come out.
      output 1: block 0 all zero; block 1 (2047 x 5, 7) -> isum 16777219, nearest even 16777220 ->
                16384.00390625 (truncation would give 16384.001953125).
    """
    x = np.zeros((1, 1, 32), dtype=np.float32)
    x[0, 0, 0] = 2.0**-10
    x[0, 0, 16:22] = [2047, 2047, 2047, 2047, 8, 1]
    m = np.zeros((2, 2, 16), dtype=np.int64)  # (output, block, lane)
    m[0, 0, 0] = 1024
    m[0, 1, :6] = [2047] * 5 + [5]
    m[1, 1, :6] = [2047] * 5 + [7]
    e = np.array([[4, 4], [-50, 4]], dtype=np.int64)
    mant = handmade.pack_mantissas(m.reshape(-1, 16), 15)
    exps = e.reshape(-1).astype(np.int8).tobytes()
    exp_off = len(mant)
    bias_off = (exp_off + len(exps) + 3) // 4 * 4
    weights = mant + exps + bytes(bias_off - exp_off - len(exps)) + bytes(8)
    insn = dict(opcode="conv2d", precision=3, in_offset=0, in_h=1, in_w=1, in_c=32, out_offset=32, out_h=1,
                out_w=1, out_c=2, kernel_h=1, kernel_w=1, stride_h=1, stride_w=1, groups=1, weight_mant_offset=0,
                weight_exp_offset=exp_off, bias_offset=bias_off)
    header = dict(arena_words=34, weights_bytes=len(weights), input_offset=0, input_h=1, input_w=1, input_c=32,
                  output_offset=32, output_h=1, output_w=1, output_c=2)
    expected = np.array([16384.0, 16384.00390625], dtype=np.float32).reshape(1, 1, 2)
    return handmade.pack_program(header, [insn]), weights, x, expected


def test_bfp20_chunk_sum_rounds_once_to_nearest_even(hls_build):
    """The kernel rounds a chunk sum past 2^24 to nearest even before the float32 accumulation."""
    program, weights, x, expected = bfp20_rounding_program()
    kernel_out = CsimExecutor().run(Program.from_bytes(program, weights), x)
    assert kernel_out.tobytes() == expected.tobytes(), kernel_out


def test_second_ports_carry_half_the_traffic(hls_build):
    """weights_b and arena_b are real ports: the kernel fetches the second beat of each weight pair through
    weights_b and moves half of each activation block through arena_b. With both aimed at the buffers the
    driver gives them the output is exact; aimed elsewhere (a driver that forgot a register), it is not."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((4, 6, 48)).astype(np.float32)
    program, weights = handmade.identity_conv_program(4, 6, 48, 1)
    prog = Program.from_bytes(program, weights)
    words = np.frombuffer(program, dtype="<u4").astype(np.uint32)
    w = np.frombuffer(weights, dtype=np.uint8).copy()
    n_out = int(np.prod(prog.output_shape))

    def run(weights_b=None, arena_b=None, arena=None):
        arena = np.zeros(prog.arena_words, np.float32) if arena is None else arena
        arena[prog.input_offset:prog.input_offset + x.size] = x.reshape(-1)
        status = np.full(1, 0xFFFFFFFF, dtype=np.uint32)
        call_npu_run(words, w, arena, status, weights_b=weights_b, arena_b=arena_b)
        assert status[0] == 0
        return arena[prog.output_offset:prog.output_offset + n_out].copy()

    exact = run()
    assert exact.tobytes() == CsimExecutor().run(prog, x).reshape(-1).tobytes()
    assert run(weights_b=w.copy()).tobytes() == exact.tobytes()  # another copy of the same blob: same bytes
    assert run(weights_b=np.zeros_like(w)).tobytes() != exact.tobytes()
    elsewhere = np.zeros(prog.arena_words, np.float32)
    assert run(arena_b=elsewhere).tobytes() != exact.tobytes()
