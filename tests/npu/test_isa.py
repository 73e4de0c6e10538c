"""Program encoding and files, and the host's own checks: Program.from_bytes refuses a wrong magic or version
with the kernel's status (every other refusal is checked on every executor in tests/npu/test_executors.py)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from brainwave.npu.isa import Program, ProgramError
from tests.support import handmade

HEADER_MUTATIONS = [m for m in handmade.SMOKE_MUTATIONS if m.header]


def test_round_trip_and_file(tmp_path):
    program, weights, _, _ = handmade.smoke_program()
    prog = Program.from_bytes(program, weights)
    assert prog.program_bytes() == program and prog.weights == weights
    prog.instructions[2].name = "conv"
    path = prog.save(tmp_path / "smoke.bwnp")
    again = Program.load(path)
    assert again.program_bytes() == program and again.weights == weights and again.instructions[2].name == "conv"
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize("mutation", HEADER_MUTATIONS, ids=[m.name for m in HEADER_MUTATIONS])
def test_from_bytes_refuses_a_wrong_header_with_the_kernels_status(mutation):
    program, weights, _, _ = handmade.smoke_program()
    with pytest.raises(ProgramError) as err:
        Program.from_bytes(*mutation.apply(program, weights))
    assert err.value.status == mutation.status
    assert str(int(mutation.status)) in str(err.value)


def test_framing_errors_are_clear():
    program, weights, _, _ = handmade.smoke_program()
    with pytest.raises(ProgramError, match="shorter than the 64-byte header"):
        Program.from_bytes(program[:40], weights)
    with pytest.raises(ProgramError, match="7 instructions need"):
        Program.from_bytes(program[:-4], weights)
    with pytest.raises(ProgramError, match="weights blob has"):
        Program.from_bytes(program, weights[:-1])
    (version,) = [m for m in HEADER_MUTATIONS if m.name == "isa_version 99"]
    with pytest.raises(ProgramError, match="recompile"):
        Program.from_bytes(*version.apply(program, weights))


def test_dump_cli(tmp_path):
    program, weights, _, _ = handmade.smoke_program()
    path = Program.from_bytes(program, weights).save(tmp_path / "p.bwnp")
    out = subprocess.run([sys.executable, "-m", "brainwave.npu.isa", "--dump", str(path)], capture_output=True,
                         text=True, check=True).stdout
    assert "7 instructions" in out and "CONV2D" in out and "GLOBAL_AVGPOOL" in out and "CONCAT" in out


def test_brainwave_compile_writes_a_program_file(tmp_path):
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
