"""Helpers shared by the test modules (import them from here; conftest.py only holds fixtures)."""
from __future__ import annotations

import contextlib
import datetime
import functools
import importlib.util
import io
import ipaddress
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import grpc
import numpy as np

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on loopback that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def skimage_image(name: str) -> Path:
    import skimage

    path = Path(skimage.__file__).parent / "data" / name
    assert path.is_file(), f"scikit-image should ship {name}"
    return path


@functools.cache
def _scripts():
    """benchmarks/common.py, which loads scripts that are not in a package (benchmarks, pipelines) by path. It is
    registered as `common`, the name the benchmark scripts import it by."""
    spec = importlib.util.spec_from_file_location("common", REPO / "benchmarks" / "common.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["common"] = module
    spec.loader.exec_module(module)
    return module


def pipeline_builder(name: str):
    """pipelines/<name>/build.py as a module (the pipelines are user-facing scripts, not a package)."""
    return _scripts().pipeline_builder(name)


def benchmark_module(name: str):
    """benchmarks/<name>.py as a module (the benchmarks are scripts, not a package), loaded once."""
    return _scripts().script_module(REPO / "benchmarks" / f"{name}.py", name)


def photo_input(network: str) -> np.ndarray:
    """scikit-image's chelsea.png at 224x224, preprocessed as `network`'s pipeline does: (1, 224, 224, 3) float32.
    The one definition is the benchmarks' (benchmarks/accuracy_report.py), so tests and benchmarks feed the same
    bytes."""
    return benchmark_module("accuracy_report").photo_input(network)


def synthetic_png(width: int = 64, height: int = 48) -> bytes:
    """A small valid PNG (a gradient)."""
    from PIL import Image

    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def same_bits(got: np.ndarray, want: np.ndarray) -> bool:
    """`got` is a float32 array of `want`'s shape with the same bytes."""
    want = np.asarray(want, dtype=np.float32)
    return got.dtype == np.float32 and got.shape == want.shape and got.tobytes() == want.tobytes()


def assert_same_bits(got: np.ndarray, want: np.ndarray, what: str = "") -> None:
    """`got` is a float32 array of `want`'s shape with the same bytes; otherwise report the first differing element."""
    assert got.dtype == np.float32, f"{what}: {got.dtype}, not float32"
    got = np.ascontiguousarray(got)
    want = np.ascontiguousarray(want, dtype=np.float32)
    assert got.shape == want.shape, f"{what}: shape {got.shape} vs {want.shape}"
    a, b = got.reshape(-1).view(np.uint32), want.reshape(-1).view(np.uint32)
    bad = np.flatnonzero(a != b)
    assert bad.size == 0, (f"{what}: {bad.size}/{a.size} floats differ; first at {bad[0]}: "
                           f"0x{a[bad[0]]:08x} ({got.reshape(-1)[bad[0]]!r}) vs 0x{b[bad[0]]:08x} ({want.reshape(-1)[bad[0]]!r})")


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`brainwave ARGS` as a user runs it, output captured."""
    return subprocess.run([sys.executable, "-m", "brainwave.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


@contextlib.contextmanager
def serve_process(*args: str, timeout: float = 300) -> Iterator[tuple[subprocess.Popen, str]]:
    """`brainwave ARGS --host 127.0.0.1 --port P` (ARGS: "serve" or "deploy" and its options) as its own process,
    yielded with its address once its health service answers; SIGTERM on exit (kill if it does not stop)."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "brainwave.cli", *args, "--host", "127.0.0.1", "--port",
                                str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(address) as channel:
            check = health_pb2_grpc.HealthStub(channel).Check
            while True:
                assert process.poll() is None, process.stdout.read()
                try:
                    if check(health_pb2.HealthCheckRequest(), timeout=1).status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.RpcError:
                    pass
                assert time.monotonic() < deadline, f"brainwave {args[0]} never became healthy"
                time.sleep(0.3)
        yield process, address
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


class RunningServer:
    def __init__(self, server, manager) -> None:
        self.server = server
        self.manager = manager
        self.address = f"127.0.0.1:{server.port}"


def start_server(manager, **config) -> RunningServer:
    from brainwave.serving.server import ModelServer, ServerConfig

    server = ModelServer(manager, ServerConfig(**{"host": "127.0.0.1", "port": 0, **config}))
    server.start()
    return RunningServer(server, manager)


def small_pipeline_zip(path: Path, seed: int) -> Path:
    """A two-stage TF pipeline (decode + resize to 16x16, then a seeded 10-class softmax) that loads in
    well under a second: for version-management tests that load and unload many times."""
    import numpy as np
    from brainwave.tf_runtime import tf

    from brainwave.pipeline import ServiceDefinition, TensorflowStage

    work = path.parent
    work.mkdir(parents=True, exist_ok=True)
    graph = tf.Graph()
    with graph.as_default():
        data = tf.compat.v1.placeholder(tf.string, shape=[], name="in_images")
        image = tf.cast(tf.io.decode_image(data, channels=3, expand_animations=False), tf.float32)
        tf.identity(tf.compat.v1.image.resize_bilinear(image[tf.newaxis], [16, 16]) / 255.0, name="small")
    (work / "input.pb").write_bytes(graph.as_graph_def().SerializeToString())
    weights = np.random.default_rng(seed).normal(0, 0.2, (16 * 16 * 3, 10)).astype(np.float32)
    graph = tf.Graph()
    with graph.as_default():
        features = tf.compat.v1.placeholder(tf.float32, shape=[None, 16, 16, 3], name="Input")
        tf.nn.softmax(tf.matmul(tf.reshape(features, [-1, 16 * 16 * 3]), weights), name="probs")
    (work / "classifier.pb").write_bytes(graph.as_graph_def().SerializeToString())
    definition = ServiceDefinition([
        TensorflowStage("input.pb", "in_images:0", "small:0", source=work / "input.pb"),
        TensorflowStage("classifier.pb", "Input:0", "probs:0", source=work / "classifier.pb"),
    ])
    return definition.save(path)


def tensor_pipeline_zip(path: Path) -> Path:
    """One TF stage taking float32 [None, 4] (no images): softmax of a fixed 4 -> 3 layer."""
    from brainwave.tf_runtime import tf

    from brainwave.pipeline import ServiceDefinition, TensorflowStage

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, shape=[None, 4], name="x")
        weights = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
        tf.nn.softmax(tf.matmul(x, weights), name="probs")
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.parent / "numbers.pb").write_bytes(graph.as_graph_def().SerializeToString())
    stage = TensorflowStage("numbers.pb", "x:0", "probs:0", source=path.parent / "numbers.pb")
    return ServiceDefinition([stage]).save(path)


# --- TLS material for tests: a CA, and a server and a client certificate signed by it -----------------------
def _certificate(subject: str, key, issuer_cert=None, issuer_key=None, ca=False, server=False):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name)
               .issuer_name(issuer_cert.subject if issuer_cert else name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def make_pki(folder: Path) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("brainwave test CA", ca_key, ca=True)
    files = {}
    for role in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(role, key, ca, ca_key, server=role == "server")
        files[f"{role}.crt"] = cert.public_bytes(serialization.Encoding.PEM)
        files[f"{role}.key"] = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption())
    files["ca.crt"] = ca.public_bytes(serialization.Encoding.PEM)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder
