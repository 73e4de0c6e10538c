"""deploy/local/cluster.py as a module: deploy/ holds what operators run, it is not a package."""
from __future__ import annotations

import importlib.util
import sys
import threading

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support import REPO


def _load(name: str = "brainwave_local_cluster"):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "deploy" / "local" / "cluster.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the class is made
        spec.loader.exec_module(module)
    return sys.modules[name]


cluster = _load()


def watch_health(address: str, seen: list[str]) -> threading.Thread:
    """Record every status the server's health Watch stream sends until the stream ends (the server stops)."""
    channel = grpc.insecure_channel(address)
    stream = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())

    def run() -> None:
        try:
            for reply in stream:
                seen.append(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
        except grpc.RpcError:
            pass  # the stream ends when the server stops
        channel.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread
