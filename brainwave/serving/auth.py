"""API keys: a primary and a secondary key, either accepted, rotatable while the server runs.

Clients send `authorization: Bearer <key>` (the bare key is accepted too: Brainwave's C# client sent it
that way). The health service stays open so that load balancers can probe without a key. Keys are compared
in constant time and never logged.
"""
from __future__ import annotations

import hmac
import json
import logging
import os
import threading
import time
from pathlib import Path

import grpc

log = logging.getLogger("brainwave.serving.auth")

OPEN_METHOD_PREFIXES = ("/grpc.health.v1.Health/",)


class KeyRing:
    """The keys currently accepted. `set` swaps both at once; in-flight checks see the old or the new pair."""

    def __init__(self, primary: str | None = None, secondary: str | None = None) -> None:
        self._keys: tuple[bytes, ...] = ()
        self.set(primary, secondary)

    def set(self, primary: str | None, secondary: str | None = None) -> None:
        keys = tuple(k.encode() for k in (primary, secondary) if k)
        if not keys:
            raise ValueError("at least one non-empty key is required")
        self._keys = keys

    def accepts(self, presented: str) -> bool:
        candidate = presented.encode()
        # compare against every key (no early exit) so timing does not reveal which one matched
        matches = [hmac.compare_digest(candidate, key) for key in self._keys]
        return any(matches)


class KeyFile:
    """Keys read from a JSON file {"primary": ..., "secondary": ...}; re-read when the file changes."""

    def __init__(self, path: Path, recheck_seconds: float = 1.0) -> None:
        self.path = Path(path)
        self.recheck_seconds = recheck_seconds
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self.ring = KeyRing(*self._read())

    def _read(self) -> tuple[str | None, str | None]:
        try:
            stat = self.path.stat()
            data = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read keys from {self.path}: {exc}") from None
        if not isinstance(data, dict) or not (data.get("primary") or data.get("secondary")):
            raise ValueError(f"{self.path} must hold a JSON object with 'primary' and/or 'secondary' keys")
        self._stamp = (stat.st_mtime_ns, stat.st_size)
        return data.get("primary"), data.get("secondary")

    def current(self) -> KeyRing:
        now = time.monotonic()
        if now - self._checked >= self.recheck_seconds:
            with self._lock:
                self._checked = now
                try:
                    stat = self.path.stat()
                    if (stat.st_mtime_ns, stat.st_size) != self._stamp:
                        self.ring.set(*self._read())
                        log.info("reloaded API keys from %s", self.path)
                except (OSError, ValueError) as exc:  # keep serving with the keys we have
                    log.warning("keeping the current API keys: %s", exc)
        return self.ring


def presented_key(metadata) -> str | None:
    for key, value in metadata or ():
        if key == "authorization":
            return value[7:].strip() if value[:7].lower() == "bearer " else value.strip()
    return None


class KeyAuthInterceptor(grpc.ServerInterceptor):
    def __init__(self, keys) -> None:
        """`keys`: a KeyRing, or anything with `current() -> KeyRing` (e.g. a KeyFile)."""
        self._keys = keys

    def _ring(self) -> KeyRing:
        return self._keys if isinstance(self._keys, KeyRing) else self._keys.current()

    def intercept_service(self, continuation, handler_call_details):
        if handler_call_details.method.startswith(OPEN_METHOD_PREFIXES):
            return continuation(handler_call_details)
        key = presented_key(handler_call_details.invocation_metadata)
        if key is None:
            return _deny("missing API key: send metadata 'authorization: Bearer <key>'")
        if not self._ring().accepts(key):
            return _deny("invalid API key")
        return continuation(handler_call_details)


class MethodGate(grpc.ServerInterceptor):
    """Refuses the methods whose path starts with one of `prefixes` (e.g. the admin API on a keyless server)."""

    def __init__(self, prefixes: tuple[str, ...], code: grpc.StatusCode, message: str) -> None:
        self._prefixes, self._code, self._message = prefixes, code, message

    def intercept_service(self, continuation, handler_call_details):
        if handler_call_details.method.startswith(self._prefixes):
            return _deny(self._message, self._code)
        return continuation(handler_call_details)


def _deny(message: str, code: grpc.StatusCode = grpc.StatusCode.UNAUTHENTICATED):
    def abort(request, context):
        context.abort(code, message)
    return grpc.unary_unary_rpc_method_handler(abort)


def key_from_env(name: str = "BRAINWAVE_KEY") -> str | None:
    return os.environ.get(name) or None
