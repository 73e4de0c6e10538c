"""ModelService.GetModelStatus (and HandleReloadConfigRequest, not supported yet)."""
from __future__ import annotations

import grpc

from brainwave.serving.protocol import api
from brainwave.serving.servables import ServableManager, ServableNotFoundError
from brainwave.serving.status import RequestError


class ModelStatusHandlers:
    def __init__(self, manager: ServableManager) -> None:
        self.manager = manager

    def get_model_status(self, request, context):
        spec = request.model_spec
        if not spec.name:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "Missing model name in request.")
        servables = self.manager.versions(spec.name)
        kind = spec.WhichOneof("version_choice")
        if kind == "version":
            servables = [s for s in servables if s.version == spec.version.value]
            if not servables:
                raise ServableNotFoundError(f"Could not find version {spec.version.value} of model {spec.name}")
        elif kind == "version_label":
            servables = [self.manager.resolve(spec.name, label=spec.version_label)]
        response = api().GetModelStatusResponse()
        states = api().ModelVersionState
        for servable in servables:
            status = response.model_version_status.add()
            status.version = servable.version
            status.state = states[servable.state]
            status.status.error_code = 0
        return response

    def handle_reload_config_request(self, request, context):
        raise RequestError(grpc.StatusCode.UNIMPLEMENTED,
                           "HandleReloadConfigRequest is not implemented yet: restart the server with the new model")
