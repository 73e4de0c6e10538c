"""What the benchmark scripts share: the repository's paths and demo photo, loading a sibling script or a
pipeline's build script as a module, a `brainwave serve` process to measure, and a process's memory.

The scripts are run as `python benchmarks/NAME.py`, which puts this folder on sys.path, so `import common`
works from each of them without making benchmarks/ a package.
"""
from __future__ import annotations

import importlib.util
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / "samples" / "images" / "chelsea.png"  # the demo's photo (CC0)


def script_module(path: Path, name: str) -> ModuleType:
    """A script that is not in a package (pipelines/*/build.py, deploy/local/cluster.py, a sibling benchmark) as
    a module, registered under `name` (dataclasses look their module up in sys.modules)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def pipeline_builder(name: str) -> ModuleType:
    return script_module(REPO / "pipelines" / name / "build.py", f"pipeline_build_{name.replace('-', '_')}")


def memory_mib(pid: int) -> tuple[float, float]:
    """(resident memory now, its peak) of a process in MiB, from /proc (VmRSS, VmHWM)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServeProcess:
    """`brainwave serve MODEL_ZIP ARGS` on a free loopback port with Prometheus metrics, ready once its health
    service says SERVING; `stop()` sends SIGTERM (the graceful drain) and waits."""

    def __init__(self, model_zip: Path, *args: str, timeout: float = 900) -> None:
        self.port, metrics_port = free_port(), free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "brainwave.cli", "serve", str(model_zip), "--host", "127.0.0.1", "--port",
             str(self.port), "--metrics-port", str(metrics_port), *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_until_serving(timeout)

    def _wait_until_serving(self, timeout: float) -> None:
        from brainwave.client import check_health

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"brainwave serve exited with code {self.process.returncode} before serving")
            try:
                if check_health(self.address, timeout=1) == "SERVING":
                    return
            except Exception:  # noqa: BLE001 - not listening yet
                pass
            time.sleep(0.5)
        self.stop()
        raise SystemExit(f"brainwave serve did not become healthy within {timeout:.0f} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)
