"""Program encoding, files, and validation parity: the emulator refuses exactly what the kernel refuses."""
from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from brainwave.npu import csim
from brainwave.npu.emulator import Emulator
from brainwave.npu.isa import INSN_WORDS, Program, ProgramError, Status

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hls"))
import handmade  # noqa: E402  (a 6-instruction program built by hand from the spec, with its exact answer)

HDR = 16


def insn_word(index: int, field: int) -> int:
    return HDR + index * INSN_WORDS + field


def patch(program: bytes, word: int, value: int) -> bytes:
    b = bytearray(program)
    struct.pack_into("<I", b, 4 * word, value & 0xFFFFFFFF)
    return bytes(b)


def test_round_trip_and_file(tmp_path):
    program, weights, x, expected = handmade.smoke_program()
    prog = Program.from_bytes(program, weights)
    assert prog.program_bytes() == program and prog.weights == weights
    assert Emulator(prog).run(x).tobytes() == expected.tobytes()
    prog.instructions[2].name = "conv"
    path = prog.save(tmp_path / "smoke.bwnp")
    again = Program.load(path)
    assert again.program_bytes() == program and again.instructions[2].name == "conv"
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize("mutation, status", [
    ((0, 0x12345678), Status.BAD_MAGIC),
    ((1, 1), Status.BAD_VERSION),  # ISA 1 had no bfp20 and no exponent check
    ((3, 10), Status.OUT_OF_BOUNDS),  # arena_words too small for the input
    ((insn_word(0, 0), 9), Status.BAD_OPCODE),
    ((insn_word(2, 1), 3), Status.BAD_FIELD),  # activation code
    ((insn_word(2, 2), 4), Status.BAD_FIELD),  # precision code (1-3 exist)
    ((insn_word(2, 19), 0), Status.BAD_FIELD),  # groups 0
    ((insn_word(2, 19), 3), Status.BAD_FIELD),  # groups not dividing 20
    ((insn_word(2, 11), 0), Status.BAD_FIELD),  # kernel_h 0
    ((insn_word(2, 23), 2), Status.BAD_FIELD),  # has_residual 2
    ((insn_word(2, 20), 4), Status.BAD_FIELD),  # mantissas not 16-aligned
    ((insn_word(2, 22), 2), Status.BAD_FIELD),  # bias not 4-aligned
    ((insn_word(2, 22), 1 << 20), Status.OUT_OF_BOUNDS),  # bias past the weights blob
    ((insn_word(2, 24), 1 << 30), Status.OUT_OF_BOUNDS),  # residual past the arena
    ((insn_word(3, 10), 9), Status.BAD_FIELD),  # pool out_c != in_c
    ((insn_word(4, 8), 3), Status.BAD_FIELD),  # add output shape
    ((insn_word(4, 25), 1 << 30), Status.OUT_OF_BOUNDS),  # second operand past the arena
    ((insn_word(5, 8), 2), Status.BAD_FIELD),  # global pool output not 1x1
    ((insn_word(0, 8), 5), Status.BAD_FIELD),  # pad output != input + pads
    ((insn_word(1, 7), 1 << 31), Status.OUT_OF_BOUNDS),  # output past the arena
])
def test_emulator_refuses_what_the_kernel_refuses(mutation, status):
    program, weights, x, _ = handmade.smoke_program()
    bad = patch(program, *mutation)
    with pytest.raises(csim.KernelStatusError) as kernel:
        csim.run_csim((bad, weights), x)
    assert kernel.value.status == status
    with pytest.raises(ProgramError) as emulator:
        Emulator(Program.from_bytes(bad, weights))
    assert emulator.value.status == status
    assert str(int(status)) in str(emulator.value)


def test_framing_errors_are_clear():
    program, weights, _, _ = handmade.smoke_program()
    with pytest.raises(ProgramError, match="shorter than the 64-byte header"):
        Program.from_bytes(program[:40], weights)
    with pytest.raises(ProgramError, match="6 instructions need"):
        Program.from_bytes(program[:-4], weights)
    with pytest.raises(ProgramError, match="weights blob has"):
        Program.from_bytes(program, weights[:-1])
    with pytest.raises(ProgramError, match="recompile"):
        Program.from_bytes(patch(program, 1, 7), weights)


def test_emulator_input_checks():
    program, weights, x, _ = handmade.smoke_program()
    emu = Emulator(Program.from_bytes(program, weights))
    with pytest.raises(ValueError, match="the program reads"):
        emu.run(x[:2])
    with pytest.raises(ValueError, match="batch size 1"):
        emu.run(np.stack([x, x]))
    assert emu.run(x[None]).shape == (1, 1, 1, 8)


def test_dump_cli(tmp_path):
    import subprocess

    program, weights, _, _ = handmade.smoke_program()
    path = Program.from_bytes(program, weights).save(tmp_path / "p.bwnp")
    out = subprocess.run([sys.executable, "-m", "brainwave.npu.isa", "--dump", str(path)], capture_output=True,
                         text=True, check=True).stdout
    assert "6 instructions" in out and "CONV2D" in out and "GLOBAL_AVGPOOL" in out


def test_brainwave_compile_writes_a_program_the_emulator_runs(tmp_path):
    import subprocess

    out = tmp_path / "lite0.bwnp"
    proc = subprocess.run([sys.executable, "-m", "brainwave.cli", "compile", "efficientnet-lite0", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "50 instructions" in proc.stdout
    program = Program.load(out)
    assert program.input_shape == (224, 224, 3) and program.output_shape == (1, 1, 1280)
    assert program.instructions[0].name.startswith("stem_conv")
    proc = subprocess.run([sys.executable, "-m", "brainwave.cli", "compile", "efficientnet-lite0", "--out",
                           str(tmp_path / "x.bwnp"), "--precision", "fp4"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "invalid choice: 'fp4'" in proc.stderr and "bfp20" in proc.stderr
    assert not (tmp_path / "x.bwnp").exists()
