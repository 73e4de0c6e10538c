"""The TF Serving API, compiled from `protos/` into a *private* descriptor pool.

Why not generated `_pb2` modules: those register `tensorflow.TensorProto` and friends in protobuf's
process-wide default pool, where TensorFlow (server side) and the official `tensorflow-serving-api`
package (many clients) register the same names; two definitions of one name in one process is an error.
A private pool keeps the exact fully qualified names (so the wire format, method paths, `Any` type URLs and
server reflection match TF Serving) without touching the default pool. grpcio-tools' protoc compiles the
sources once per process into a FileDescriptorSet.
"""
from __future__ import annotations

import functools
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path
from types import SimpleNamespace

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"
ADMIN_SERVICE = "brainwave.admin.v1.ModelAdmin"
SIGNATURE_DEF_MAP_URL = "type.googleapis.com/tensorflow.serving.SignatureDefMap"

_ROOT_FILES = (
    "tensorflow_serving/apis/prediction_service.proto",
    "tensorflow_serving/apis/model_service.proto",
    "brainwave/admin/v1/admin.proto",
    "tensorflow_serving/apis/prediction_log.proto",
)
_MESSAGES = {
    "TensorProto": "tensorflow.TensorProto",
    "TensorShapeProto": "tensorflow.TensorShapeProto",
    "SignatureDef": "tensorflow.SignatureDef",
    "TensorInfo": "tensorflow.TensorInfo",
    "ModelSpec": "tensorflow.serving.ModelSpec",
    "PredictRequest": "tensorflow.serving.PredictRequest",
    "PredictResponse": "tensorflow.serving.PredictResponse",
    "PredictLog": "tensorflow.serving.PredictLog",
    "PredictionLog": "tensorflow.serving.PredictionLog",
    "GetModelMetadataRequest": "tensorflow.serving.GetModelMetadataRequest",
    "GetModelMetadataResponse": "tensorflow.serving.GetModelMetadataResponse",
    "SignatureDefMap": "tensorflow.serving.SignatureDefMap",
    "GetModelStatusRequest": "tensorflow.serving.GetModelStatusRequest",
    "GetModelStatusResponse": "tensorflow.serving.GetModelStatusResponse",
    "ModelVersionStatus": "tensorflow.serving.ModelVersionStatus",
    "StatusProto": "tensorflow.serving.StatusProto",
    "ReloadConfigRequest": "tensorflow.serving.ReloadConfigRequest",
    "ReloadConfigResponse": "tensorflow.serving.ReloadConfigResponse",
    "ModelServerConfig": "tensorflow.serving.ModelServerConfig",
    "ModelConfig": "tensorflow.serving.ModelConfig",
    "ClassificationRequest": "tensorflow.serving.ClassificationRequest",
    "ClassificationResponse": "tensorflow.serving.ClassificationResponse",
    "RegressionRequest": "tensorflow.serving.RegressionRequest",
    "RegressionResponse": "tensorflow.serving.RegressionResponse",
    "MultiInferenceRequest": "tensorflow.serving.MultiInferenceRequest",
    "MultiInferenceResponse": "tensorflow.serving.MultiInferenceResponse",
    "VersionFigures": "brainwave.admin.v1.VersionFigures",
    "GetVersionFiguresRequest": "brainwave.admin.v1.GetVersionFiguresRequest",
    "GetVersionFiguresResponse": "brainwave.admin.v1.GetVersionFiguresResponse",
    "SetCanaryRequest": "brainwave.admin.v1.SetCanaryRequest",
    "SetCanaryResponse": "brainwave.admin.v1.SetCanaryResponse",
    "PromoteRequest": "brainwave.admin.v1.PromoteRequest",
    "PromoteResponse": "brainwave.admin.v1.PromoteResponse",
    "RollbackRequest": "brainwave.admin.v1.RollbackRequest",
    "RollbackResponse": "brainwave.admin.v1.RollbackResponse",
    "Any": "google.protobuf.Any",
    "Int64Value": "google.protobuf.Int64Value",
}


def proto_root() -> Path:
    """The directory holding the .proto sources (shipped in the package as `_protos`)."""
    return Path(str(resources.files("brainwave") / "_protos"))


def compile_descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    # protoc runs in a child process: grpc_tools' in-process compiler crashes (SIGSEGV) once TensorFlow's
    # native libraries, which bundle their own protobuf C++, are loaded in the same process.
    well_known = Path(str(resources.files("grpc_tools") / "_proto"))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "api.pb"
        command = [sys.executable, "-m", "grpc_tools.protoc", f"-I{proto_root()}", f"-I{well_known}",
                   "--include_imports", f"--descriptor_set_out={out}", *_ROOT_FILES]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"protoc failed compiling {', '.join(_ROOT_FILES)} under {proto_root()}: {result.stderr}")
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


@functools.cache
def api() -> SimpleNamespace:
    """Message classes and the pool: `api().PredictRequest`, `api().pool`, `api().DataType` (name -> number)."""
    pool = descriptor_pool.DescriptorPool()
    for file_proto in compile_descriptor_set().file:  # --include_imports lists dependencies first
        pool.Add(file_proto)
    classes = {alias: message_factory.GetMessageClass(pool.FindMessageTypeByName(full))
               for alias, full in _MESSAGES.items()}
    data_type = pool.FindEnumTypeByName("tensorflow.DataType")
    return SimpleNamespace(
        pool=pool,
        DataType={v.name: v.number for v in data_type.values},
        DataTypeName={v.number: v.name for v in data_type.values},
        ModelVersionState={v.name: v.number for v in pool.FindEnumTypeByName("tensorflow.serving.ModelVersionStatus.State").values},
        **classes,
    )


def method_path(service: str, method: str) -> str:
    return f"/{service}/{method}"
