"""The gRPC model server: TF Serving's PredictionService and ModelService, health and reflection."""
from __future__ import annotations

import logging
import time
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2
from google.protobuf import descriptor_pb2

from brainwave.pipeline import Pipeline
from brainwave.serving.admin import AdminHandlers
from brainwave.serving.auth import KeyAuthInterceptor
from brainwave.serving.metrics import ServingMetrics
from brainwave.serving.model_status import ModelStatusHandlers
from brainwave.serving.prediction import PredictionHandlers
from brainwave.serving.protocol import ADMIN_SERVICE, MODEL_SERVICE, PREDICTION_SERVICE, api
from brainwave.serving.servables import ServableManager
from brainwave.serving.status import status_for
from brainwave.serving.versions import AVAILABILITY_PRESERVING, VersionController

log = logging.getLogger("brainwave.serving")

DEFAULT_MAX_MESSAGE_BYTES = 64 << 20  # gRPC's default of 4 MB is too small for photos


@dataclass
class ServerConfig:
    host: str = "0.0.0.0"
    port: int = 50051  # 0 picks a free port
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    workers: int = 16
    max_items_per_request: int = 64
    metrics_port: int | None = None
    # Order of loading and unloading when versions change: "availability" (load first) or "resource" (unload first)
    load_policy: str = AVAILABILITY_PRESERVING
    # API keys: a KeyRing or KeyFile (see serving/auth.py); None serves without keys.
    keys: object | None = None
    # TLS: PEM files. With client_ca, clients must present a certificate signed by it (mutual TLS).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None

    def credentials(self) -> grpc.ServerCredentials | None:
        if self.tls_cert is None and self.tls_key is None:
            return None
        if self.tls_cert is None or self.tls_key is None:
            raise ValueError("TLS needs both a certificate and its private key")
        pair = [(Path(self.tls_key).read_bytes(), Path(self.tls_cert).read_bytes())]
        client_ca = Path(self.tls_client_ca).read_bytes() if self.tls_client_ca else None
        return grpc.ssl_server_credentials(pair, root_certificates=client_ca, require_client_auth=client_ca is not None)


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
        self._health = health.HealthServicer()

    def start(self) -> int:
        cfg = self.config
        options = [("grpc.max_receive_message_length", cfg.max_message_bytes),
                   ("grpc.max_send_message_length", cfg.max_message_bytes),
                   ("grpc.so_reuseport", 0)]
        interceptors = [KeyAuthInterceptor(cfg.keys)] if cfg.keys is not None else []
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=cfg.workers, thread_name_prefix="grpc"),
                             options=options, interceptors=interceptors)
        prediction = PredictionHandlers(self.manager, self.metrics, cfg.max_items_per_request)
        status = ModelStatusHandlers(self.manager, self.controller, self.registry)
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
        credentials = cfg.credentials()
        address = f"{cfg.host}:{cfg.port}"
        self.port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
        if self.port == 0:
            raise OSError(f"cannot listen on {cfg.host}:{cfg.port}")
        server.start()
        self._server = server
        for service in ("", PREDICTION_SERVICE, MODEL_SERVICE, ADMIN_SERVICE):
            self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        if cfg.metrics_port is not None:
            self.metrics.serve_http(cfg.metrics_port)
        log.info("serving %s on %s:%d", ", ".join(self.manager.model_names()), cfg.host, self.port)
        return self.port

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
        """Every error becomes a status code and a message; nothing escapes to kill the server."""
        def handler(request, context):
            start = time.perf_counter()
            model = getattr(getattr(request, "model_spec", None), "name", "") or "-"
            try:
                response = fn(request, context)
                self.metrics.observe_request(method, model, "OK", time.perf_counter() - start)
                return response
            except Exception as exc:  # noqa: BLE001 - the boundary where errors become statuses
                code, message = status_for(exc)
                if code == grpc.StatusCode.INTERNAL:
                    log.exception("%s failed", method)
                else:
                    log.info("%s -> %s: %s", method, code.name, message)
                self.metrics.observe_request(method, model, code.name, time.perf_counter() - start)
                context.abort(code, message)
        return handler

    def stop(self, grace: float | None = 5.0) -> None:
        """Stop accepting requests; in-flight ones get `grace` seconds to finish."""
        if self._server is None:
            return
        self._health.enter_graceful_shutdown()
        self._server.stop(grace).wait()
        self._server = None

    def wait(self) -> None:
        if self._server is not None:
            self._server.wait_for_termination()


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
