"""tensorflow.serving.ModelService: GetModelStatus and HandleReloadConfigRequest."""
from __future__ import annotations

from pathlib import Path

import grpc

from brainwave.errors import BrainwaveError, clip
from brainwave.protocol.api import api
from brainwave.serving.servables import LabelError, ServableManager, ServableNotFoundError
from brainwave.serving.status import RequestError, status_for
from brainwave.serving.versions import DirectorySource, ModelPlan, VersionController, VersionPolicy

REGISTRY_SCHEME = "registry:"


class ModelStatusHandlers:
    def __init__(self, manager: ServableManager, controller: VersionController, registry=None,
                 model_roots: tuple[Path, ...] = ()) -> None:
        """`model_roots`: the directories a reload may load base paths from (resolved, symlinks followed)."""
        self.manager = manager
        self.controller = controller
        self.registry = registry
        self.model_roots = tuple(Path(root).resolve() for root in model_roots)

    def get_model_status(self, request, context):
        spec = request.model_spec
        if not spec.name:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "Missing model name in request.")
        servables = self.manager.versions(spec.name, include_ended=True)
        kind = spec.WhichOneof("version_choice")
        if kind == "version":
            servables = [s for s in servables if s.version == spec.version.value]
            if not servables:
                raise ServableNotFoundError(f"Could not find version {spec.version.value} of model {clip(spec.name, 100)}")
        elif kind == "version_label":
            servables = [self.manager.resolve(spec.name, label=spec.version_label)]
        response = api().GetModelStatusResponse()
        states = api().ModelVersionState
        for servable in servables:
            status = response.model_version_status.add()
            status.version = servable.version
            status.state = states[servable.state]
            if servable.error:
                status.status.error_code = grpc.StatusCode.UNKNOWN.value[0]
                status.status.error_message = servable.error
        return response

    def handle_reload_config_request(self, request, context):
        config = request.config
        if config.WhichOneof("config") not in (None, "model_config_list"):
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "ReloadConfigRequest.config must hold a model_config_list")
        plans = [self._plan(model_config) for model_config in config.model_config_list.config]
        if not plans:  # TF Serving would unload everything; that is never what an operator meant
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "the reload names no model: it would unload every "
                                                                 "model; list the models to keep serving")
        names = [plan.name for plan in plans]
        if len(set(names)) != len(names):
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"the model_config_list names a model twice: "
                                                                 f"{clip(', '.join(names), 200)}")
        try:
            self.controller.apply(plans)
        except (ServableNotFoundError, LabelError, ValueError) as exc:
            raise RequestError(grpc.StatusCode.FAILED_PRECONDITION, f"reload failed: {exc}") from None
        except BrainwaveError as exc:
            code, message = status_for(exc)
            raise RequestError(code, f"reload failed: {message}") from None
        return api().ReloadConfigResponse()

    def _plan(self, model_config) -> ModelPlan:
        if not model_config.name:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "every ModelConfig needs a name")
        if not model_config.base_path:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"ModelConfig {clip(model_config.name, 100)} needs a base_path")
        try:
            source = self._source(model_config.base_path)
        except ValueError as exc:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"ModelConfig {clip(model_config.name, 100)}: {exc}") from None
        policy = model_config.model_version_policy
        kind = policy.WhichOneof("policy_choice")
        if kind == "all":
            version_policy = VersionPolicy("all")
        elif kind == "specific":
            version_policy = VersionPolicy("specific", specific=tuple(policy.specific.versions))
        else:  # TF Serving's default: the latest version
            version_policy = VersionPolicy("latest", policy.latest.num_versions or 1)
        return ModelPlan(model_config.name, source, version_policy, dict(model_config.version_labels))

    def _source(self, base_path: str):
        if base_path.startswith(REGISTRY_SCHEME):
            if self.registry is None:
                raise ValueError("base_path names a registry model but the server was started without a registry")
            from brainwave.serving.registry_source import RegistrySource
            return RegistrySource(self.registry, base_path[len(REGISTRY_SCHEME):])
        path = Path(base_path).resolve()
        if not any(path == root or root in path.parents for root in self.model_roots):
            roots = ", ".join(str(r) for r in self.model_roots) or "none configured"
            raise ValueError(f"base_path {clip(base_path, 200)} is outside the server's model roots ({roots}); "
                             "start the server with --model-root")
        return DirectorySource(path)
