"""The HLS kernel's build and C-sim test bench, for the tests that need the binaries themselves."""
from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support import REPO

HLS = REPO / "hls"


def build() -> dict:
    """`make -C hls lib tb` once: the kernel as libnpu.so and the C-sim test bench."""
    proc = subprocess.run(["make", "-C", str(HLS), "lib", "tb"], capture_output=True, text=True)
    assert proc.returncode == 0, f"make failed:\n{proc.stdout}\n{proc.stderr}"
    lib = HLS / "build" / "libnpu.so"
    tb = HLS / "build" / "tb_npu"
    assert lib.is_file() and tb.is_file()
    return {"lib": lib, "tb": tb}


def run_tb(tb: Path, vec_dir: Path, out_name: str = "tb_output.f32") -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(tb), str(vec_dir / "program.bin"), str(vec_dir / "weights.bin"), str(vec_dir / "input.f32"),
         str(vec_dir / "expected.f32"), str(vec_dir / out_name)],
        capture_output=True, text=True, timeout=600,
    )
