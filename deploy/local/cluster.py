"""A replica set on one machine: N `brainwave serve` processes on loopback behind HAProxy as an HTTP/2 (gRPC)
proxy that health-checks every replica through the gRPC health service.

    python deploy/local/cluster.py model.zip --replicas 3 --port 50051      (Ctrl-C stops everything)
    python deploy/local/cluster.py --print-config                           (the HAProxy configuration)

The tests (tests/deploy/test_replicas.py) and the scaling figure (benchmarks/replicas.py) drive the same
classes. What the proxy does, and why (docs/deploy.md):
- health: every `check_ms` a gRPC Health/Check; a replica is in rotation after `rise` passes in a row and out
  after `fall` failures, so one that reports NOT_SERVING (draining, or no model loaded) stops getting new calls
  within fall x check_ms (the replicas' --drain-delay must be longer);
- a connection error to a replica marks it down at once (`observe layer4`), without waiting for the next check;
- a call that could not be sent (connection refused or reset) is re-sent to another replica (`retry-on`,
  `redispatch`); one that was sent and then lost answers 502, which gRPC clients read as UNAVAILABLE and
  PredictionClient retries (Predict is idempotent);
- no per-replica limit (`maxconn`), on purpose: calls HAProxy queues for a busy replica stop reading their
  HTTP/2 connection from the client, so on a client connection that multiplexes several calls the request
  bodies of the calls already sent to replicas stall behind them until their deadline (head-of-line blocking;
  seen with 240 KB photos). Each replica bounds its own queue (--max-concurrent-rpcs, gRPC flow control).
"""
from __future__ import annotations

import argparse
import csv
import io
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

HEALTH_CHECK_PATH = "/grpc.health.v1.Health/Check"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def health_check_bytes() -> tuple[str, str]:
    """(request, expected reply) of a gRPC Health/Check for the whole server, hex-encoded for HAProxy's
    tcp-check. HAProxy 2.6's http-check cannot send a body holding NUL bytes, and every gRPC message starts
    with them (its 5-byte frame header), so the check speaks HTTP/2 itself: the h2 library writes the
    connection preface, the HEADERS and the DATA frame; the reply must carry the message `status: SERVING`.
    The check waits for the status (`rbinary`), then requires SERVING with `min-recv`, which makes a mismatch
    conclusive at once: NOT_SERVING fails the check now, not after `timeout check` (the HTTP/2 connection
    stays open, so without it HAProxy would wait for more bytes, and a draining replica would stay in
    rotation for fall x timeout)."""
    import h2.config
    import h2.connection
    from grpc_health.v1 import health_pb2

    def framed(message) -> bytes:  # gRPC length-prefixed message, uncompressed
        body = message.SerializeToString()
        return b"\0" + len(body).to_bytes(4, "big") + body

    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    conn.send_headers(1, [(":method", "POST"), (":scheme", "http"), (":path", HEALTH_CHECK_PATH),
                          (":authority", "localhost"), ("content-type", "application/grpc"), ("te", "trailers")])
    conn.send_data(1, framed(health_pb2.HealthCheckRequest()), end_stream=True)
    serving = health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)
    return conn.data_to_send().hex(), framed(serving).hex()


def haproxy_config(port: int, servers: dict[str, int], stats_socket: Path, *, check_ms: int = 200, fall: int = 2,
                   rise: int = 2, host: str = "127.0.0.1") -> str:
    request, serving = health_check_bytes()
    status_frame = serving[:-1]  # the reply's frame up to the status digit: matched as hex (HAProxy's rbinary)
    lines = "\n".join(f"    server {name} 127.0.0.1:{server_port}" for name, server_port in servers.items())
    return f"""\
global
    maxconn 4096
    stats socket {stats_socket} mode 600 level admin
    log stderr format raw local0 info

defaults
    mode http
    log global
    option httplog
    timeout connect 1s
    timeout client 120s
    timeout server 120s
    timeout check 2s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout

frontend grpc
    bind {host}:{port} proto h2
    default_backend replicas

backend replicas
    balance roundrobin
    option tcp-check
    tcp-check connect
    tcp-check send-binary {request}
    tcp-check expect rbinary {status_frame}[0-9]
    tcp-check expect min-recv 1 binary {serving}
    default-server proto h2 check inter {check_ms}ms fall {fall} rise {rise} observe layer4 error-limit 1 on-error mark-down
{lines}
"""


@dataclass
class Replica:
    """One `brainwave serve` process on 127.0.0.1:port; its output goes to `log`."""
    name: str
    port: int
    serve_args: list[str]
    log: Path
    process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [sys.executable, "-m", "brainwave.cli", "serve", *self.serve_args, "--host", "127.0.0.1",
                   "--port", str(self.port)]
        with open(self.log, "a") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def wait_serving(self, timeout: float = 300.0) -> None:
        """Until the replica's own health service says SERVING; an error if it exits or takes too long."""
        from brainwave.client import check_health

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"replica {self.name} exited with {self.process.returncode}: {self.log_tail()}")
            try:
                if check_health(self.address, timeout=1.0) == "SERVING":
                    return
            except Exception:  # noqa: BLE001 - not listening yet
                pass
            time.sleep(0.2)
        raise TimeoutError(f"replica {self.name} not SERVING within {timeout:.0f} s: {self.log_tail()}")

    def terminate(self, timeout: float = 120.0) -> int:
        """SIGTERM (a drain), then wait for the exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> int:
        self.process.kill()
        return self.wait(30.0)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)

    def log_tail(self, lines: int = 3) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return " | ".join(text.strip().splitlines()[-lines:])


class HAProxy:
    """HAProxy in the foreground (-db) with a runtime socket for its statistics."""

    def __init__(self, workdir: Path, port: int, servers: dict[str, int], **options) -> None:
        self.port = port
        self.socket = workdir / "haproxy.sock"
        self.config = workdir / "haproxy.cfg"
        self.log = workdir / "haproxy.log"
        self.server_names = tuple(servers)
        self.config.write_text(haproxy_config(port, servers, self.socket, **options))
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        check = subprocess.run(["haproxy", "-c", "-q", "-f", str(self.config)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy rejects {self.config}: {check.stderr.strip()}")
        self.socket.unlink(missing_ok=True)  # a previous run's: the new one appears once HAProxy is up
        with open(self.log, "a") as log:
            self.process = subprocess.Popen(["haproxy", "-db", "-f", str(self.config)], stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not self.socket.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"haproxy did not start: {self.log.read_text()[-500:]}")
            time.sleep(0.05)
        # HAProxy 2.6 starts every server UP, before its first check: start them DOWN instead, so a replica
        # takes calls only after `rise` passed checks (HAProxy 3.1 and later say this with `init-state down`).
        for name in self.server_names:
            self.command(f"set server replicas/{name} health down")

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(self.socket))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def servers(self) -> dict[str, dict[str, str]]:
        """Per replica: HAProxy's statistics row (status UP/DOWN/..., stot = requests sent to it, ...)."""
        text = self.command("show stat").lstrip("# ")
        return {row["svname"]: row for row in csv.DictReader(io.StringIO(text))
                if row["pxname"] == "replicas" and row["svname"] not in ("BACKEND", "FRONTEND")}

    def requests(self) -> dict[str, int]:
        return {name: int(row["stot"] or 0) for name, row in self.servers().items()}

    def down_reasons(self, name: str) -> list[str]:
        """Why HAProxy took `name` out of rotation, each time it did (from its log), e.g. "Layer7 invalid
        response" (the check read NOT_SERVING) or "Health analyze" (a connection to it failed)."""
        marker = f"Server replicas/{name} is DOWN, reason: "
        lines = self.log.read_text(errors="replace").splitlines()
        return [line.split(marker, 1)[1].split(",", 1)[0] for line in lines
                if marker in line and not line.startswith("[")]  # each event is logged twice, once with a prefix

    def wait_status(self, name: str, status: str, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while (current := self.servers()[name]["status"]) != status:
            if time.monotonic() > deadline:
                raise TimeoutError(f"HAProxy still reports {name} {current}, not {status}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


class LocalCluster:
    """N replicas of `brainwave serve SERVE_ARGS...` behind HAProxy on `port` (all on loopback)."""

    def __init__(self, workdir: Path, serve_args: list[str], replicas: int, port: int | None = None,
                 extra: dict[str, list[str]] | None = None, **proxy_options) -> None:
        """`extra` adds replicas with their own serve arguments (e.g. a model that cannot load)."""
        workdir.mkdir(parents=True, exist_ok=True)
        specs = {f"r{i + 1}": serve_args for i in range(replicas)} | (extra or {})
        self.replicas = {name: Replica(name, free_port(), args, workdir / f"{name}.log")
                         for name, args in specs.items()}
        self.proxy = HAProxy(workdir, port or free_port(), {n: r.port for n, r in self.replicas.items()},
                             **proxy_options)

    def start(self, wait: tuple[str, ...] | None = None) -> None:
        """Start every replica and the proxy; wait until the replicas named in `wait` (default: all) are
        SERVING and in rotation."""
        for replica in self.replicas.values():
            replica.start()
        for name in wait if wait is not None else tuple(self.replicas):
            self.replicas[name].wait_serving()
        self.proxy.start()
        for name in wait if wait is not None else tuple(self.replicas):
            self.proxy.wait_status(name, "UP")

    def restart(self, name: str) -> int:
        """SIGTERM one replica (it drains), start it again and wait until the proxy has it back in rotation;
        the drained process's exit code."""
        replica = self.replicas[name]
        code = replica.terminate()
        replica.start()
        replica.wait_serving()
        self.proxy.wait_status(name, "UP")
        return code

    def stop(self) -> None:
        self.proxy.stop()
        for replica in self.replicas.values():
            replica.stop()

    def __enter__(self) -> "LocalCluster":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


@dataclass
class LoadResult:
    ok: int = 0
    failed: Counter = field(default_factory=Counter)  # "CODE: details" -> count
    seconds: float = 0.0

    @property
    def failures(self) -> int:
        return sum(self.failed.values())

    @property
    def throughput(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


class Load:
    """`clients` closed-loop clients (one PredictionClient, so one channel, each) scoring `payload` through
    `address` until stop() or `seconds` have passed, whichever is first."""

    def __init__(self, address: str, payload: bytes, clients: int = 8, seconds: float = 600.0,
                 **client_options) -> None:
        self.address, self.payload, self.clients, self.seconds = address, payload, clients, seconds
        self.client_options = client_options
        self.result = LoadResult()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._started = 0.0

    def _run(self) -> None:
        import grpc

        from brainwave.client import PredictionClient

        with PredictionClient(self.address, **self.client_options) as client:
            while not self._stop.is_set() and time.monotonic() - self._started < self.seconds:
                try:
                    client.score_image(self.payload)
                    with self._lock:
                        self.result.ok += 1
                except grpc.RpcError as exc:
                    with self._lock:
                        self.result.failed[f"{exc.code().name}: {(exc.details() or '')[:120]}"] += 1

    def start(self) -> "Load":
        self._started = time.monotonic()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(self.clients)]
        for thread in self._threads:
            thread.start()
        return self

    def wait_for(self, requests: int, timeout: float = 300.0) -> None:
        """Until at least `requests` calls have succeeded in all (the load is flowing)."""
        deadline = time.monotonic() + timeout
        while self.result.ok < requests:
            if time.monotonic() > deadline or not any(t.is_alive() for t in self._threads):
                raise TimeoutError(f"only {self.result.ok} requests succeeded; failures {dict(self.result.failed)}")
            time.sleep(0.05)

    def stop(self) -> LoadResult:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self.result.seconds = time.monotonic() - self._started
        return self.result

    def run(self) -> LoadResult:
        self.start()
        for thread in self._threads:
            thread.join()
        return self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model_zip", nargs="?", type=Path)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--port", type=int, default=50051, help="the proxy's port")
    parser.add_argument("--workdir", type=Path, default=Path("build/cluster"))
    parser.add_argument("--print-config", action="store_true", help="print an example HAProxy configuration and exit")
    args, serve_args = parser.parse_known_args(argv)
    if args.print_config:
        servers = {f"r{i + 1}": 50061 + i for i in range(args.replicas)}
        print(haproxy_config(args.port, servers, Path("/run/haproxy/admin.sock")), end="")
        return 0
    if args.model_zip is None:
        parser.error("give a model.zip (or --print-config)")
    with LocalCluster(args.workdir, [str(args.model_zip), "--drain-delay", "1", *serve_args], args.replicas,
                      port=args.port) as cluster:
        print(f"{args.replicas} replicas behind HAProxy on {cluster.proxy.address}; logs in {args.workdir}; "
              "Ctrl-C stops")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("requests per replica:", cluster.proxy.requests())
    return 0


if __name__ == "__main__":
    sys.exit(main())
