"""The executors every cross-executor test runs on (brainwave.npu.executor): the native executor on each of its
SIMD paths, the HLS kernel's C simulation and the simulated board. tests/npu/conftest.py turns them into the
`executor` fixture; tests/npu/test_executors.py runs its bodies on each."""
from __future__ import annotations

import numpy as np

from brainwave.npu.executor import Executor, create_executor
from brainwave.npu.isa import Program
from brainwave.npu.native import SIMD_PATHS

# ids: "native-avx512vnni", "native-avx2", "native-portable", "csim", "board"
EXECUTOR_IDS = (*(f"native-{simd}" for simd in SIMD_PATHS), "csim", "board")


def unavailable(executor_id: str) -> str | None:
    """Why this machine cannot run `executor_id` (a SIMD path its CPU lacks), or None."""
    from brainwave.npu.native import available_simd

    simd = executor_id.removeprefix("native-")
    if executor_id.startswith("native-") and simd not in available_simd():
        return f"this CPU cannot run the native executor's {simd} path"
    return None


def create(executor_id: str) -> Executor:
    if executor_id.startswith("native-"):
        return create_executor("native", simd=executor_id.removeprefix("native-"), threads=2)
    if executor_id == "board":
        # check_finite off: the sweep writes NaN and Inf on purpose, which a served request treats as a fault
        return create_executor("board", board="kv260", simulate=True, timeout_s=120, check_finite=False)
    return create_executor(executor_id)


def run_case(executor: Executor, case) -> np.ndarray:
    """Run one tests/support/cases.py case (program bytes, weights bytes, input) on `executor`."""
    return executor.run(Program.from_bytes(case.program, case.weights), case.x)
