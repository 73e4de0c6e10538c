"""An ASGI app (the REST API, the metrics endpoint) served by uvicorn on its own thread and event loop, beside
the gRPC server. The socket is bound up front, so a taken port is an error before any model loads."""
from __future__ import annotations

import socket
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    client_ca: Path | None = None  # set: clients must present a certificate it signed (mutual TLS)


class AsgiServer:
    def __init__(self, app, host: str, port: int, tls: TlsFiles | None = None, name: str = "http") -> None:
        self.app, self.host, self.port, self.tls, self.name = app, host, port, tls, name
        self._socket: socket.socket | None = None
        self._server = None
        self._thread: threading.Thread | None = None

    def bind(self) -> int:
        """Listen on host:port (0 picks a free port) and return the port; raises OSError when it cannot."""
        if self._socket is None:
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                # accepted connections inherit it: without it, Nagle's algorithm and delayed ACKs held every
                # response (headers and body are two writes) for 40 ms
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.bind((self.host, self.port))
                sock.listen(128)
            except OSError:
                sock.close()
                raise
            self._socket = sock
            self.port = sock.getsockname()[1]
        return self.port

    def start(self, timeout: float = 10.0) -> None:
        import uvicorn

        self.bind()
        options = {}
        if self.tls is not None:
            options = {"ssl_certfile": str(self.tls.cert), "ssl_keyfile": str(self.tls.key)}
            if self.tls.client_ca is not None:
                options |= {"ssl_ca_certs": str(self.tls.client_ca), "ssl_cert_reqs": ssl.CERT_REQUIRED}
        # log_config=None: uvicorn's records go through the process's own logging (text or JSON)
        config = uvicorn.Config(self.app, log_config=None, log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=5, **options)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name=f"{self.name}-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise OSError(f"the {self.name} server on {self.host}:{self.port} did not start")
            time.sleep(0.01)

    def stop(self, grace: float | None = 5.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join((grace or 0) + 5)
            self._server = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
