"""brainwave.admin.v1.ModelAdmin: canary routing, promote, rollback, per-version figures."""
from __future__ import annotations

import grpc

from brainwave.errors import clip
from brainwave.protocol.api import api
from brainwave.serving.servables import LabelError, ServableManager
from brainwave.serving.status import RequestError
from brainwave.serving.versions import VersionController


class AdminHandlers:
    def __init__(self, manager: ServableManager, controller: VersionController) -> None:
        self.manager = manager
        self.controller = controller

    def get_version_figures(self, request, context):
        response = api().GetVersionFiguresResponse()
        labels = self.manager.labels(request.model)
        canary = self.manager.canary(request.model)
        for servable in self.manager.versions(request.model, include_ended=True):
            stats = servable.stats
            figures = response.versions.add()
            figures.version = servable.version
            figures.state = servable.state
            figures.labels.extend(sorted(k for k, v in labels.items() if v == servable.version))
            figures.requests, figures.errors = stats.requests, stats.errors
            figures.p50_ms = stats.percentile_ms(50) or 0.0
            figures.p99_ms = stats.percentile_ms(99) or 0.0
            figures.mirrored = stats.mirrored
            figures.top1_agreement = stats.agreement or 0.0
            figures.canary_share = canary.share if canary and canary.version == servable.version else 0.0
            figures.in_flight = servable.in_flight
            figures.error = servable.error
        return response

    def set_canary(self, request, context):
        for name, value in (("share", request.share), ("mirror_share", request.mirror_share)):
            if not 0.0 <= value <= 1.0:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"canary {name} must be between 0 and 1, got {value:g}")
        try:
            if request.version == 0:
                self.manager.set_canary(request.model, None)
            else:
                self.controller.ensure_loaded(request.model, request.version)
                self.manager.set_canary(request.model, request.version, request.share, request.mirror_share)
        except (LabelError, ValueError) as exc:
            raise RequestError(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from None
        return api().SetCanaryResponse()

    def promote(self, request, context):
        name = request.model
        canary = self.manager.canary(name)
        if canary is None:
            raise RequestError(grpc.StatusCode.FAILED_PRECONDITION, f"model {clip(name, 100)} has no canary to promote")
        previous = self._stable_version(name, exclude=canary.version)
        labels = {k: v for k, v in self.manager.labels(name).items() if k != "canary"}
        labels["stable"] = canary.version
        self.manager.set_canary(name, None)
        self.manager.set_labels(name, labels)
        unloaded = []
        if not request.keep_previous and previous is not None and previous != canary.version:
            self.controller.unload(name, [previous])
            unloaded.append(previous)
        return api().PromoteResponse(stable_version=canary.version, unloaded=unloaded)

    def rollback(self, request, context):
        name, target = request.model, request.to_version
        if target <= 0:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "rollback needs to_version, the version to return to")
        self.controller.ensure_loaded(name, target)  # availability first: the old version is warm before traffic moves
        rolled_back = [v for v in self.controller.available_versions(name) if v != target]
        labels = {k: v for k, v in self.manager.labels(name).items() if k not in ("canary", "stable")}
        self.manager.set_canary(name, None)
        self.manager.set_labels(name, {**{k: v for k, v in labels.items() if v == target}, "stable": target})
        unloaded = []
        if not request.keep_others:
            self.controller.unload(name, rolled_back)
            unloaded = rolled_back
        return api().RollbackResponse(stable_version=target, unloaded=unloaded)

    def _stable_version(self, name: str, exclude: int) -> int | None:
        labels = self.manager.labels(name)
        if "stable" in labels:
            return labels["stable"]
        others = [v for v in self.controller.available_versions(name) if v != exclude]
        return max(others) if others else None
