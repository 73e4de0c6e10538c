"""ModelAdminClient: change what a running server serves (reload, canary, promote, rollback) and read its figures."""
from __future__ import annotations

from pathlib import Path

from brainwave.client import auth_metadata, open_channel, service_config
from brainwave.protocol.api import ADMIN_SERVICE, MODEL_SERVICE, api, method_path

# Only the reads are retried (gRPC's retry policy, on UNAVAILABLE): a change such as Promote must not run twice.
READ_METHODS = ((MODEL_SERVICE, "GetModelStatus"), (ADMIN_SERVICE, "GetVersionFigures"))
from brainwave.serving.versions import VersionPolicy


class ModelAdminClient:
    def __init__(self, address: str, *, use_ssl: bool = False, access_token: str | None = None,
                 root_certificates: bytes | None = None, timeout: float = 600.0) -> None:
        self._channel, self.target = open_channel(address, use_ssl=use_ssl, root_certificates=root_certificates,
                                                  service_config=service_config(3, 0.2, methods=READ_METHODS))
        self._metadata = auth_metadata(access_token)
        self.timeout = timeout
        a = api()
        calls = {
            "reload": (MODEL_SERVICE, "HandleReloadConfigRequest", a.ReloadConfigRequest, a.ReloadConfigResponse),
            "status": (MODEL_SERVICE, "GetModelStatus", a.GetModelStatusRequest, a.GetModelStatusResponse),
            "figures": (ADMIN_SERVICE, "GetVersionFigures", a.GetVersionFiguresRequest, a.GetVersionFiguresResponse),
            "canary": (ADMIN_SERVICE, "SetCanary", a.SetCanaryRequest, a.SetCanaryResponse),
            "promote": (ADMIN_SERVICE, "Promote", a.PromoteRequest, a.PromoteResponse),
            "rollback": (ADMIN_SERVICE, "Rollback", a.RollbackRequest, a.RollbackResponse),
        }
        self._calls = {key: self._channel.unary_unary(method_path(service, method),
                                                      request_serializer=req.SerializeToString,
                                                      response_deserializer=resp.FromString)
                       for key, (service, method, req, resp) in calls.items()}

    def _call(self, key: str, request):
        return self._calls[key](request, timeout=self.timeout, metadata=self._metadata)

    def reload(self, models: dict[str, tuple[str | Path, VersionPolicy, dict[str, int]]]) -> None:
        """Serve exactly these models: {name: (base_path, policy, labels)}; others are unloaded."""
        request = api().ReloadConfigRequest()
        for name, (base_path, policy, labels) in models.items():
            config = request.config.model_config_list.config.add()
            config.name = name
            config.base_path = str(base_path)
            version_policy = config.model_version_policy
            if policy.kind == "all":
                version_policy.all.SetInParent()
            elif policy.kind == "specific":
                version_policy.specific.versions.extend(policy.specific)
            else:
                version_policy.latest.num_versions = policy.count
            for label, version in labels.items():
                config.version_labels[label] = version
        self._call("reload", request)

    def status(self, model: str):
        request = api().GetModelStatusRequest()
        request.model_spec.name = model
        return self._call("status", request).model_version_status

    def figures(self, model: str):
        return self._call("figures", api().GetVersionFiguresRequest(model=model)).versions

    def set_canary(self, model: str, version: int | None, share: float = 0.0, mirror_share: float = 0.0) -> None:
        self._call("canary", api().SetCanaryRequest(model=model, version=version or 0, share=share, mirror_share=mirror_share))

    def promote(self, model: str, keep_previous: bool = False):
        return self._call("promote", api().PromoteRequest(model=model, keep_previous=keep_previous))

    def rollback(self, model: str, to_version: int, keep_others: bool = False):
        return self._call("rollback", api().RollbackRequest(model=model, to_version=to_version, keep_others=keep_others))

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "ModelAdminClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
