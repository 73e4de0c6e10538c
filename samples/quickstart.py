"""Brainwave quickstart, end to end: build a pipeline's model.zip, serve it, score a real photo over gRPC.

    python samples/quickstart.py [--pipeline efficientnet-lite0|resnet50] [--backend emulator|float] [--image PATH]

It runs the same commands a user would: `brainwave serve` in a child process (as in a second terminal),
then PredictionClient against its port, then a clean SIGTERM shutdown.
"""
from __future__ import annotations

import argparse
import importlib.util
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
DEMO_PHOTO = REPO / "samples" / "images" / "chelsea.png"  # CC0 (samples/images/README.md)
console = Console()


def load_builder(pipeline: str):
    path = REPO / "pipelines" / pipeline / "build.py"
    spec = importlib.util.spec_from_file_location(f"pipeline_{pipeline.replace('-', '_')}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_serving(address: str, server: subprocess.Popen, timeout: float) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise SystemExit(f"the server exited with code {server.returncode} before serving")
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                time.sleep(0.5)
    raise SystemExit(f"the server did not become healthy within {timeout:.0f} s")


def class_names() -> list[str] | None:
    try:
        from brainwave.models.imagenet import imagenet_labels
        return imagenet_labels()
    except Exception:  # labels are optional: without them the table shows class indices only
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", default="efficientnet-lite0", choices=["efficientnet-lite0", "resnet50"])
    parser.add_argument("--backend", default=None, help="featurizer backend (default: the server's default, the NPU emulator)")
    parser.add_argument("--image", type=Path, default=DEMO_PHOTO, help="photo to score (default: chelsea.png, a cat)")
    parser.add_argument("--workdir", type=Path, default=REPO / "build" / "quickstart")
    parser.add_argument("--top", type=int, default=5)
    args = parser.parse_args()

    image = args.image

    with console.status(f"Building the {args.pipeline} pipeline (model.zip)..."):
        model_zip = load_builder(args.pipeline).build_model_zip(args.workdir / args.pipeline / "model.zip")
    console.print(f"[green]built[/] {model_zip}")

    port = free_port()
    address = f"127.0.0.1:{port}"
    command = [sys.executable, "-m", "brainwave.cli", "serve", str(model_zip), "--host", "127.0.0.1",
               "--port", str(port), "--name", args.pipeline]
    if args.backend:
        command += ["--backend", args.backend]
    console.print(f"$ brainwave serve {model_zip.name} --port {port}" + (f" --backend {args.backend}" if args.backend else ""))
    server = subprocess.Popen(command)
    try:
        wait_until_serving(address, server, timeout=600)
        from brainwave.client import PredictionClient

        with PredictionClient(address) as client:
            start = time.perf_counter()
            scores = np.asarray(client.score_image(image)).reshape(-1)
            elapsed = time.perf_counter() - start
            spec = client.last_model_spec
        names = class_names()
        table = Table(title=f"{image.name} scored by {spec.name} v{spec.version.value} over gRPC ({elapsed * 1000:.0f} ms)")
        for column, justify in (("rank", "right"), ("class", "right"), ("label", "left"), ("probability", "right")):
            table.add_column(column, justify=justify)
        for rank, index in enumerate(np.argsort(-scores, kind="stable")[: args.top], 1):
            table.add_row(str(rank), str(index), names[index] if names else "", f"{scores[index]:.4f}")
        console.print(table)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
