"""The gRPC model server: TF Serving's PredictionService and ModelService, health and reflection."""
from __future__ import annotations

import logging
import signal
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2
from google.protobuf import descriptor_pb2

from brainwave.errors import BrainwaveError, CancelledError, clip
from brainwave.pipeline import Pipeline
from brainwave.protocol.api import ADMIN_SERVICE, MODEL_SERVICE, PREDICTION_SERVICE, api
from brainwave.serving.admin import AdminHandlers
from brainwave.serving.auth import KeyAuthInterceptor, MethodGate
from brainwave.serving.limits import PixelBudget, RequestLimits
from brainwave.serving.metrics import (REQUEST_ID_HEADER, GrpcMetricsInterceptor, ServingMetrics, note_model,
                                       request_id, request_scope)
from brainwave.serving.model_status import ModelStatusHandlers
from brainwave.serving.prediction import PredictionHandlers
from brainwave.serving.rest_server import AsgiServer, TlsFiles
from brainwave.serving.servables import ServableManager
from brainwave.serving.status import status_for
from brainwave.serving.versions import AVAILABILITY_PRESERVING, VersionController

log = logging.getLogger("brainwave.serving")

DEFAULT_MAX_MESSAGE_BYTES = 64 << 20  # gRPC's default of 4 MB is too small for photos
ADMIN_METHODS = (f"/{MODEL_SERVICE}/HandleReloadConfigRequest", f"/{ADMIN_SERVICE}/")


@dataclass
class ServerConfig:
    host: str = "0.0.0.0"
    port: int = 50051  # 0 picks a free port
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    workers: int = 16
    # RPCs in flight (running or queued) before gRPC answers RESOURCE_EXHAUSTED: bounds the queue and its memory
    max_concurrent_rpcs: int = 64
    limits: RequestLimits = field(default_factory=RequestLimits)
    max_inflight_pixels: int = 80_000_000  # decoded pixels of all requests in flight (~1.1 GB of decode buffers)
    metrics_port: int | None = None
    metrics_host: str | None = None  # None: the gRPC host
    rest_port: int | None = None  # TF Serving's REST API on this port (0 picks a free one); None: off
    # Order of loading and unloading when versions change: "availability" (load first) or "resource" (unload first)
    load_policy: str = AVAILABILITY_PRESERVING
    # API keys: a KeyRing or KeyFile (see serving/auth.py); None serves without keys.
    keys: object | None = None
    # Without keys the admin surface (reloads, canary, promote, rollback) is refused unless this is set.
    admin_without_keys: bool = False
    # Directories a reload may name as base paths (with their subdirectories).
    model_roots: tuple[Path, ...] = ()
    # TLS: PEM files. With client_ca, clients must present a certificate signed by it (mutual TLS).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None

    def credentials(self) -> grpc.ServerCredentials | None:
        """Server credentials, after checking the PEM files exist, parse and belong together."""
        if self.tls_cert is None and self.tls_key is None:
            if self.tls_client_ca is not None:
                raise ConfigError("--tls-client-ca needs --tls-cert and --tls-key (mutual TLS is TLS first)")
            return None
        if self.tls_cert is None or self.tls_key is None:
            raise ConfigError("TLS needs both a certificate (--tls-cert) and its private key (--tls-key)")
        check_tls_files(self.tls_cert, self.tls_key, self.tls_client_ca)
        pair = [(Path(self.tls_key).read_bytes(), Path(self.tls_cert).read_bytes())]
        client_ca = Path(self.tls_client_ca).read_bytes() if self.tls_client_ca else None
        return grpc.ssl_server_credentials(pair, root_certificates=client_ca, require_client_auth=client_ca is not None)


class ConfigError(BrainwaveError):
    """The server cannot start as configured (port taken, TLS files missing or mismatched...)."""


def check_tls_files(cert: Path, key: Path, client_ca: Path | None = None) -> None:
    """The checks gRPC does not do up front (it only says "Failed to bind"): files exist, parse, and match."""
    for flag, path in (("--tls-cert", cert), ("--tls-key", key), ("--tls-client-ca", client_ca)):
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"{flag} {path} does not exist")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(str(cert), str(key))
    except ssl.SSLError as exc:
        reason = "do not belong together" if "KEY_VALUES_MISMATCH" in str(exc) else f"are not usable ({exc.reason})"
        raise ConfigError(f"the TLS certificate {cert} and key {key} {reason}") from None
    if client_ca is not None:
        try:
            context.load_verify_locations(str(client_ca))
        except ssl.SSLError as exc:
            raise ConfigError(f"--tls-client-ca {client_ca} is not a PEM CA certificate ({exc.reason})") from None


class ModelServer:
    def __init__(self, manager: ServableManager, config: ServerConfig | None = None,
                 loader: Callable[[Path], Pipeline] | None = None, registry=None) -> None:
        """`loader` turns a model.zip into a Pipeline for versions loaded at run time (reloads, rollbacks)."""
        self.manager = manager
        self.config = config or ServerConfig()
        self.controller = VersionController(manager, loader or Pipeline.load, self.config.load_policy)
        self.registry = registry
        self.metrics = ServingMetrics()
        self.port: int | None = None
        self._server: grpc.Server | None = None
        self.rest: AsgiServer | None = None
        self.metrics_server: AsgiServer | None = None
        self._health = health.HealthServicer()
        self._log = RateLimitedLog(log)

    def bind(self) -> int:
        """Create the gRPC server and listen on the port (TLS files checked first); returns the port.
        `start` calls it too; calling it early turns a taken port or bad TLS material into an error before any
        model loads."""
        if self._server is not None:
            return self.port
        cfg = self.config
        credentials = cfg.credentials()
        options = [("grpc.max_receive_message_length", cfg.max_message_bytes),
                   ("grpc.max_send_message_length", cfg.max_message_bytes),
                   ("grpc.so_reuseport", 0)]
        interceptors = [GrpcMetricsInterceptor(self.metrics)]  # first: it sees refused calls too
        if cfg.keys is not None:
            interceptors.append(KeyAuthInterceptor(cfg.keys))
        elif not cfg.admin_without_keys:
            interceptors.append(MethodGate(ADMIN_METHODS, grpc.StatusCode.PERMISSION_DENIED,
                                           "the admin API is off on a server without API keys: start it with "
                                           "--keys-file (or --admin-without-keys on a trusted network)"))
        server = grpc.server(self.metrics.executor("grpc", max_workers=cfg.workers, thread_name_prefix="grpc"),
                             options=options, interceptors=interceptors,
                             maximum_concurrent_rpcs=cfg.max_concurrent_rpcs)
        self._add_services(server)
        address = f"{cfg.host}:{cfg.port}"
        try:
            port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
        except RuntimeError:  # grpcio raises RuntimeError("Failed to bind to address ...")
            port = 0
        if port == 0:
            raise ConfigError(f"cannot listen on {address}: the port is in use or the address is not this host's; "
                              "pick another with --port/--host")
        self.port, self._server = port, server
        self._bind_http()
        return port

    def _bind_http(self) -> None:
        """The REST API and the metrics endpoint, each on its own port, with the same TLS as gRPC (REST)."""
        cfg = self.config
        servers = []
        if cfg.rest_port is not None:
            from brainwave.serving.rest import RestApi

            tls = TlsFiles(cfg.tls_cert, cfg.tls_key, cfg.tls_client_ca) if cfg.tls_cert else None
            api_ = RestApi(self.prediction, self.status_handlers, self.metrics, self.failure, cfg.keys,
                           max_body_bytes=cfg.max_message_bytes, max_concurrent=cfg.max_concurrent_rpcs,
                           workers=cfg.workers)
            self.rest = AsgiServer(api_.app(), cfg.host, cfg.rest_port, tls, name="REST")
            servers.append((self.rest, "--rest-port"))
        if cfg.metrics_port is not None:
            self.metrics_server = AsgiServer(self.metrics.asgi_app(), cfg.metrics_host or cfg.host, cfg.metrics_port,
                                             name="metrics")
            servers.append((self.metrics_server, "--metrics-port"))
        for http, flag in servers:
            try:
                http.bind()
            except OSError as exc:
                raise ConfigError(f"cannot listen on {http.host}:{http.port} ({exc.strerror or exc}): the port is "
                                  f"in use or the address is not this host's; pick another with {flag}") from None

    def _add_services(self, server: grpc.Server) -> None:
        cfg = self.config
        pixels = PixelBudget(cfg.max_inflight_pixels)
        prediction = self.prediction = PredictionHandlers(self.manager, self.metrics, cfg.limits, pixels)
        status = self.status_handlers = ModelStatusHandlers(self.manager, self.controller, self.registry, cfg.model_roots)
        self.metrics.watch(self.manager, pixels)
        admin = AdminHandlers(self.manager, self.controller)
        a = api()
        server.add_generic_rpc_handlers((
            self._service(PREDICTION_SERVICE, {
                "Predict": (prediction.predict, a.PredictRequest, a.PredictResponse),
                "GetModelMetadata": (prediction.get_model_metadata, a.GetModelMetadataRequest, a.GetModelMetadataResponse),
                "Classify": (prediction.unimplemented("Classify"), a.ClassificationRequest, a.ClassificationResponse),
                "Regress": (prediction.unimplemented("Regress"), a.RegressionRequest, a.RegressionResponse),
                "MultiInference": (prediction.unimplemented("MultiInference"), a.MultiInferenceRequest, a.MultiInferenceResponse),
            }),
            self._service(MODEL_SERVICE, {
                "GetModelStatus": (status.get_model_status, a.GetModelStatusRequest, a.GetModelStatusResponse),
                "HandleReloadConfigRequest": (status.handle_reload_config_request, a.ReloadConfigRequest, a.ReloadConfigResponse),
            }),
            self._service(ADMIN_SERVICE, {
                "GetVersionFigures": (admin.get_version_figures, a.GetVersionFiguresRequest, a.GetVersionFiguresResponse),
                "SetCanary": (admin.set_canary, a.SetCanaryRequest, a.SetCanaryResponse),
                "Promote": (admin.promote, a.PromoteRequest, a.PromoteResponse),
                "Rollback": (admin.rollback, a.RollbackRequest, a.RollbackResponse),
            }),
        ))
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        _enable_reflection(server)

    def start(self) -> int:
        port = self.bind()
        self._server.start()
        self.manager.on_change(self._update_health)
        for http in (self.rest, self.metrics_server):
            if http is not None:
                http.start()
        log.debug("serving %s on %s:%d", ", ".join(self.manager.model_names()) or "no model yet", self.config.host, port)
        return port

    def _update_health(self) -> None:
        """SERVING while some version can answer; NOT_SERVING otherwise, so load balancers look elsewhere."""
        status = health_pb2.HealthCheckResponse.SERVING if self.manager.any_available() \
            else health_pb2.HealthCheckResponse.NOT_SERVING
        for service in ("", PREDICTION_SERVICE):
            self._health.set(service, status)
        for service in (MODEL_SERVICE, ADMIN_SERVICE):
            self._health.set(service, health_pb2.HealthCheckResponse.SERVING)

    def _service(self, service: str, methods: dict):
        handlers = {
            name: grpc.unary_unary_rpc_method_handler(
                self._guarded(f"{service.rsplit('.', 1)[-1]}/{name}", fn),
                request_deserializer=request_cls.FromString,
                response_serializer=response_cls.SerializeToString)
            for name, (fn, request_cls, response_cls) in methods.items()
        }
        return grpc.method_handlers_generic_handler(service, handlers)

    def _guarded(self, method: str, fn):
        """Every error becomes a status code and a one-line message; nothing escapes to kill the server. Each
        call gets a request id (the client's x-request-id, or a new one), returned in trailing metadata."""
        def handler(request, context):
            presented = dict(context.invocation_metadata() or ()).get(REQUEST_ID_HEADER)
            with request_scope("grpc", method, request_id(presented)) as scope:
                context.set_trailing_metadata(((REQUEST_ID_HEADER, scope.request_id),))
                start = time.perf_counter()
                try:
                    if not context.is_active():  # cancelled while queued: do no work at all
                        raise CancelledError("the client cancelled the request before it started")
                    response = fn(request, context)
                    code, message = grpc.StatusCode.OK, ""
                except Exception as exc:  # noqa: BLE001 - the boundary where errors become statuses
                    code, message = self.failure(method, exc)
                spec = getattr(request, "model_spec", None)
                note_model(getattr(spec, "name", "") or self.manager.default_model_name(), self.manager.model_names())
                self.metrics.observe_request(scope, code.name, time.perf_counter() - start)
            if code != grpc.StatusCode.OK:
                context.abort(code, message)
            return response
        return handler

    def failure(self, method: str, exc: Exception) -> tuple[grpc.StatusCode, str]:
        """(status, one-line message) for a failed call of either protocol, logged at most a few times in a
        window: INTERNAL with its cause (which stays in the log), the others as warnings."""
        code, message = status_for(exc)
        if code == grpc.StatusCode.INTERNAL:
            self._log.error(method, "%s failed: %s: %s", method, type(exc).__name__, clip(str(exc)),
                            exc_info=log.isEnabledFor(logging.DEBUG))
        else:
            self._log.warning((method, code), "%s -> %s: %s", method, code.name, message)
        return code, message

    def stop(self, grace: float | None = 5.0) -> None:
        """Stop accepting requests; in-flight ones get `grace` seconds to finish."""
        if self._server is None:
            return
        self._health.enter_graceful_shutdown()
        self._server.stop(grace).wait()
        self._server = None
        for http in (self.rest, self.metrics_server):
            if http is not None:
                http.stop(grace)

    def wait(self) -> None:
        if self._server is not None:
            self._server.wait_for_termination()

    def serve_until_signal(self, grace: float = 5.0, on_signal: Callable[[str], None] | None = None,
                           drain_delay: float = 0.0) -> None:
        """Block until SIGINT or SIGTERM, then drain as a replica behind a load balancer must: health turns
        NOT_SERVING at once while calls are still answered for `drain_delay` seconds (the time a balancer or
        probe needs to notice and stop sending), then the listener closes and calls in flight get `grace`
        seconds to finish. SIGINT (Ctrl-C at a terminal, no balancer) skips the delay."""
        stopping = threading.Event()

        def drain(delay: float) -> None:
            self._health.enter_graceful_shutdown()
            time.sleep(delay)
            self.stop(grace)

        def handle(signum, frame) -> None:
            if not stopping.is_set():
                stopping.set()
                if on_signal is not None:
                    on_signal(signal.Signals(signum).name)
                delay = drain_delay if signum == signal.SIGTERM else 0.0
                threading.Thread(target=drain, args=(delay,), daemon=True).start()

        signal.signal(signal.SIGINT, handle)
        signal.signal(signal.SIGTERM, handle)
        self.wait()


class RateLimitedLog:
    """At most `burst` lines per `window_s` seconds per key; then one line saying how many were suppressed.
    A flood of bad requests must not flood the log (372 tracebacks in one hostile run, before this)."""

    def __init__(self, logger: logging.Logger, burst: int = 5, window_s: float = 10.0) -> None:
        self.logger, self.burst, self.window_s = logger, burst, window_s
        self._windows: dict = {}
        self._lock = threading.Lock()

    def _allow(self, key) -> tuple[bool, int]:
        """(log this one?, how many were suppressed in the window that just ended)."""
        now = time.monotonic()
        with self._lock:
            start, count, suppressed = self._windows.get(key, (now, 0, 0))
            reported = 0
            if now - start >= self.window_s:
                start, count, reported, suppressed = now, 0, suppressed, 0
            count += 1
            allowed = count <= self.burst
            self._windows[key] = (start, count, suppressed + (not allowed))
            return allowed, reported

    def _emit(self, level: int, key, message: str, args, exc_info=False) -> None:
        allowed, reported = self._allow(key)
        if reported:
            self.logger.log(level, "(%d similar messages suppressed)", reported)
        if allowed:
            self.logger.log(level, message, *args, exc_info=exc_info)

    def warning(self, key, message: str, *args) -> None:
        self._emit(logging.WARNING, key, message, args)

    def error(self, key, message: str, *args, exc_info=False) -> None:
        self._emit(logging.ERROR, key, message, args, exc_info)


def _enable_reflection(server: grpc.Server) -> None:
    """Reflection answers from the private pool; health and reflection descriptors are added to it."""
    pool = api().pool
    for module in (health_pb2, reflection_pb2):
        proto = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(proto)
        try:
            pool.FindFileByName(proto.name)
        except KeyError:
            pool.Add(proto)
    names = (PREDICTION_SERVICE, MODEL_SERVICE, ADMIN_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME)
    reflection.enable_server_reflection(names, server, pool=pool)
