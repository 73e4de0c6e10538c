"""`pip install` of the built wheel, outside the checkout: the C-sim kernel builds from the installed copy of
hls/ and the simulated board finds its overlay; and the light core scores over gRPC without TensorFlow."""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.support import REPO

pytestmark = pytest.mark.slow


def run(*command, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=900, **kwargs)
    assert result.returncode == 0, f"{command}: {result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", out, REPO)
    (path,) = out.glob("brainwave-*.whl")
    return path


def fresh_venv(path: Path) -> Path:
    run(sys.executable, "-m", "venv", path)
    return path / "bin" / "python"


def clean_env(tmp_path: Path) -> dict:
    """No checkout on the path and a fresh build cache: everything must come from the installed wheel."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "BRAINWAVE_NPU_LIB")}
    return {**env, "BRAINWAVE_BUILD_DIR": str(tmp_path / "build-cache")}


def test_installed_wheel_runs_the_csim_kernel_and_the_simulated_board(wheel, tmp_path):
    python = fresh_venv(tmp_path / "venv")
    run(python, "-m", "pip", "install", "-q", "--no-deps", wheel)
    # Dependencies (TensorFlow, PYNQ...) come from this environment, appended after the wheel's own copy.
    from brainwave.fpga.compat import PYNQ_DIR

    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    (site / "test_dependencies.pth").write_text(f"{sysconfig.get_paths()['purelib']}\n{PYNQ_DIR}\n")
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        import numpy as np
        import brainwave
        from brainwave.paths import hls_dir
        from brainwave.npu.csim import CsimExecutor, library_path
        from brainwave.npu.isa import Program

        installed = Path({str(tmp_path / "venv")!r})
        assert installed in Path(brainwave.__file__).resolve().parents, brainwave.__file__
        assert installed in hls_dir().resolve().parents, hls_dir()
        assert Path({str(tmp_path / "build-cache")!r}) in library_path().parents
        smoke = hls_dir() / "tb" / "vectors" / "smoke"
        program = Program.from_bytes((smoke / "program.bin").read_bytes(), (smoke / "weights.bin").read_bytes())
        x = np.fromfile(smoke / "input.f32", dtype="<f4").reshape(program.input_shape)
        out = CsimExecutor().run(program, x)
        assert out.tobytes() == (smoke / "expected.f32").read_bytes(), "C-sim of the installed kernel"
        from brainwave.fpga.driver import NpuAccelerator
        NpuAccelerator("kv260", simulate=True, timeout_s=60)  # loads the installed overlay, runs its self-test
        print("ok")
        """)
    result = run(python, "-c", script, cwd=tmp_path, env=clean_env(tmp_path))
    assert result.stdout.strip().endswith("ok")


def test_the_light_core_scores_without_tensorflow(wheel, tmp_path, resnet50_server, resnet50_pipeline, chelsea):
    python = fresh_venv(tmp_path / "client")
    run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel)  # the core's dependencies only
    image = tmp_path / "cat.png"
    image.write_bytes(chelsea)
    script = textwrap.dedent(f"""
        import importlib.util, sys
        import numpy as np
        assert importlib.util.find_spec("tensorflow") is None, "the client environment has TensorFlow"
        from brainwave import PredictionClient
        with PredictionClient({resnet50_server.address!r}) as client:
            scores = client.score_image({str(image)!r})
        np.save(sys.argv[1], scores)
        """)
    out = tmp_path / "scores.npy"
    run(python, "-c", script, out, cwd=tmp_path, env=clean_env(tmp_path))
    assert np.load(out).tobytes() == resnet50_pipeline.run(chelsea).output[0].tobytes()
    brainwave = tmp_path / "client" / "bin" / "brainwave"
    score = run(brainwave, "score", "--address", resnet50_server.address, image)
    assert "rank" in score.stdout
    serve = subprocess.run([brainwave, "serve", "model.zip"], capture_output=True, text=True, timeout=120)
    assert serve.returncode == 1 and "pip install 'brainwave[serve]'" in serve.stderr
    assert "Traceback" not in serve.stderr
