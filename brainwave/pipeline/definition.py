"""`service_def.json`: the pipeline a model.zip describes, as Project Brainwave defined it.

    {"aml_runtime_version": "1.1",
     "pipeline": [{"type": "tensorflow", "model_path": ..., "input_tensor": ..., "output_tensor": ...},
                  {"type": "brainwave", "model_ref": ..., "model_version": ..., "output_tensor_dims": [...]},
                  ...]}

A `brainwave` stage names a catalog featurizer (`model_ref`) or brings its own network as a file inside
model.zip (`model_path`: an ONNX `.onnx` or Keras `.keras` file). An `onnx` stage runs an ONNX model on the CPU
through onnxruntime, like a `tensorflow` stage.

Several outputs (a detector's heads): a featurizer with several outputs (`ssd-vgg`) passes them all to the next
stage, whose `input_tensor` is then a list taking them in order; a `tensorflow` stage's `output_tensor` may be a
list too, and a `brainwave` stage may list its featurizer's output names in `output_tensor` (checked at load).
The last stage's outputs are what Predict returns, keyed by tensor name when there are several.

Parsing is strict: unknown fields and wrong types are errors naming the stage index and the field, so a
typo fails at `brainwave package` time instead of at serve time.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, Union

import numpy as np

from brainwave.errors import DefinitionError, brief

SUPPORTED_RUNTIME_VERSIONS = ("1.0", "1.1")
MAX_STAGES = 64  # a pipeline is a handful of stages; each one loads a graph, so the count bounds load time
MAX_JSON_DEPTH = 16  # service_def.json needs 4 levels (object, pipeline list, stage, output_tensor_dims)
DEFAULT_RUNTIME_VERSION = "1.1"
_TENSOR_NAME = re.compile(r"^[A-Za-z0-9_.\-/>]+(:\d+)?$")
_ONNX_NAME = re.compile(r"^[\x21-\x7e][\x20-\x7e]{0,255}$")  # ONNX value names: printable ASCII, e.g. 'onnx::Gemm_12'
FEATURIZER_SUFFIXES = (".onnx", ".keras")


def _check_member_path(value: str, where: str) -> str:
    """A path inside model.zip: relative, POSIX, no '..' (the archive reader enforces this again)."""
    path = PurePosixPath(value)
    if not value or path.is_absolute() or ".." in path.parts or "\\" in value:
        raise DefinitionError(f"{where}: must be a relative path inside model.zip without '..', got {brief(value)}")
    return str(path)


def _tensor_names(value: Any, where: str, check) -> None:
    """A tensor name, or (several inputs or outputs) a non-empty list of distinct ones, each passing `check`."""
    names = value if isinstance(value, list) else [value]
    if not names or len(set(map(str, names))) != len(names) or not all(isinstance(n, str) for n in names):
        raise DefinitionError(f"{where} must be a tensor name or a non-empty list of distinct names, got {brief(value)}")
    for name in names:
        if not check(name):
            raise DefinitionError(f"{where} is not a tensor name like 'input:0': {brief(name)}")


def names_of(value: "str | list[str] | None") -> list[str]:
    """A stage field that holds one tensor name or a list of them, as a list."""
    return [] if value is None else list(value) if isinstance(value, list) else [value]


@dataclass
class TensorflowStage:
    """A TensorFlow graph run on the CPU: a frozen GraphDef `.pb` (TF1 or TF2) or a SavedModel directory.

    For a SavedModel, `input_tensor` / `output_tensor` name tensors of its `serving_default` signature
    (either the signature keys or the graph tensor names). Either may be a list (several inputs or outputs).
    """

    model_path: str
    input_tensor: str | list[str]
    output_tensor: str | list[str]
    # Where `save` reads the graph from (a .pb file or a SavedModel directory); None for loaded definitions.
    source: Path | None = field(default=None, compare=False, repr=False)
    type: ClassVar[str] = "tensorflow"
    _fields: ClassVar[tuple[str, ...]] = ("model_path", "input_tensor", "output_tensor")

    @classmethod
    def from_graph_def(cls, graph_def, model_path: str, input_tensor: str, output_tensor: str, workdir: Path):
        """Write `graph_def` to `workdir/model_path` and describe it as a stage."""
        target = Path(workdir) / model_path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(graph_def.SerializeToString())
        return cls(model_path, input_tensor, output_tensor, source=target)

    @classmethod
    def from_keras(cls, model, model_path: str, workdir: Path, input_name: str = "Input", output_name: str = "Output"):
        """Freeze a Keras model into a GraphDef stage (see `brainwave.pipeline.freeze`)."""
        from brainwave.pipeline.freeze import freeze_keras

        graph_def, input_tensor, output_tensor = freeze_keras(model, input_name, output_name)
        return cls.from_graph_def(graph_def, model_path, input_tensor, output_tensor, workdir)

    def to_json(self) -> dict[str, Any]:
        return {"model_path": self.model_path, "input_tensor": self.input_tensor,
                "output_tensor": self.output_tensor, "type": self.type}

    def sources(self) -> list[tuple[str, Path | None]]:
        """(member inside model.zip, file to package it from) for every file the stage reads."""
        return [(self.model_path, self.source)]

    @classmethod
    def from_json(cls, data: dict, index: int) -> "TensorflowStage":
        values = _take_fields(data, index, cls._fields, (), lists=("input_tensor", "output_tensor"))
        where = f"stage {index}"
        _check_member_path(values["model_path"], f"{where}: field 'model_path'")
        for name in ("input_tensor", "output_tensor"):
            _tensor_names(values[name], f"{where}: field {name!r}", _TENSOR_NAME.match)
        return cls(**values)


@dataclass
class BrainwaveStage:
    """The featurizer run on the NPU / emulator / float: a catalog network (`model_ref`, `model_version`), or
    the user's own network in a file inside model.zip (`model_path`, .onnx or .keras)."""

    model_ref: str | None = None
    model_version: str | None = None
    output_tensor_dims: list[int] | list[list[int]] | None = None  # a list per output when it has several
    output_tensor: list[str] | None = None  # the featurizer's output names, when it has several
    # Optional weights file inside model.zip; without it the catalog's own weights are used.
    weights_path: str | None = None
    weights_source: Path | None = field(default=None, compare=False, repr=False)
    model_path: str | None = None
    # Where `save` reads the model_path file from; None for loaded definitions.
    source: Path | None = field(default=None, compare=False, repr=False)
    type: ClassVar[str] = "brainwave"
    _required: ClassVar[tuple[str, ...]] = ()
    _optional: ClassVar[tuple[str, ...]] = ("model_ref", "model_version", "output_tensor_dims", "output_tensor",
                                            "weights_path", "model_path")

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"model_ref": self.model_ref} if self.model_ref is not None else \
            {"model_path": self.model_path}
        if self.model_version is not None:
            data["model_version"] = self.model_version
        if self.output_tensor_dims is not None:
            data["output_tensor_dims"] = list(self.output_tensor_dims)
        if self.output_tensor is not None:
            data["output_tensor"] = list(self.output_tensor)
        if self.weights_path is not None:
            data["weights_path"] = self.weights_path
        data["type"] = self.type
        return data

    def sources(self) -> list[tuple[str, Path | None]]:
        files = [(self.model_path, self.source), (self.weights_path, self.weights_source)]
        return [(member, source) for member, source in files if member is not None]

    @classmethod
    def from_json(cls, data: dict, index: int) -> "BrainwaveStage":
        values = _take_fields(data, index, cls._required, cls._optional, lists=("output_tensor",))
        where = f"stage {index}"
        if ("model_ref" in values) == ("model_path" in values):
            raise DefinitionError(f"{where}: a brainwave stage needs exactly one of 'model_ref' (a catalog "
                                  "featurizer) and 'model_path' (an .onnx or .keras file inside model.zip)")
        if "model_path" in values:
            _check_member_path(values["model_path"], f"{where}: field 'model_path'")
            if not values["model_path"].endswith(FEATURIZER_SUFFIXES):
                raise DefinitionError(f"{where}: field 'model_path' must name an .onnx or .keras file, "
                                      f"got {brief(values['model_path'])}")
            if "model_version" in values or "weights_path" in values:
                raise DefinitionError(f"{where}: 'model_version' and 'weights_path' go with 'model_ref'; a "
                                      "model_path file carries its own weights")
        dims = values.get("output_tensor_dims")
        if dims is not None:
            lists = dims if isinstance(dims, list) and dims and all(isinstance(d, list) for d in dims) else [dims]
            if not all(_positive_ints(d) for d in lists):
                raise DefinitionError(f"{where}: field 'output_tensor_dims' must be a non-empty list of positive "
                                      f"integers (a list of them per output), got {brief(dims)}")
        if "output_tensor" in values:
            if not isinstance(values["output_tensor"], list):
                raise DefinitionError(f"{where}: field 'output_tensor' lists the featurizer's output names, got "
                                      f"{brief(values['output_tensor'])}")
            _tensor_names(values["output_tensor"], f"{where}: field 'output_tensor'", _TENSOR_NAME.match)
        if values.get("weights_path") is not None:
            _check_member_path(values["weights_path"], f"{where}: field 'weights_path'")
        return cls(**values)


@dataclass
class OnnxStage:
    """An ONNX model run on the CPU by onnxruntime. `input_tensor` / `output_tensor` name ONNX values; they may
    be left out when the model has one input / one output."""

    model_path: str
    input_tensor: str | None = None
    output_tensor: str | None = None
    source: Path | None = field(default=None, compare=False, repr=False)
    type: ClassVar[str] = "onnx"
    _required: ClassVar[tuple[str, ...]] = ("model_path",)
    _optional: ClassVar[tuple[str, ...]] = ("input_tensor", "output_tensor")

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"model_path": self.model_path}
        data.update({k: getattr(self, k) for k in self._optional if getattr(self, k) is not None})
        data["type"] = self.type
        return data

    def sources(self) -> list[tuple[str, Path | None]]:
        return [(self.model_path, self.source)]

    @classmethod
    def from_json(cls, data: dict, index: int) -> "OnnxStage":
        values = _take_fields(data, index, cls._required, cls._optional)
        where = f"stage {index}"
        _check_member_path(values["model_path"], f"{where}: field 'model_path'")
        for name in cls._optional:
            if name in values and not _ONNX_NAME.match(values[name]):
                raise DefinitionError(f"{where}: field {name!r} is not an ONNX value name: {brief(values[name])}")
        return cls(**values)


Stage = Union[TensorflowStage, BrainwaveStage, OnnxStage]
# In the order the types were added (error messages list them so).
_STAGE_TYPES: dict[str, type] = {"brainwave": BrainwaveStage, "tensorflow": TensorflowStage, "onnx": OnnxStage}


def _positive_ints(dims: Any) -> bool:
    return isinstance(dims, list) and bool(dims) and all(isinstance(d, int) and not isinstance(d, bool) and d > 0
                                                         for d in dims)


def _take_fields(data: dict, index: int, required: tuple[str, ...], optional: tuple[str, ...],
                 lists: tuple[str, ...] = ()) -> dict[str, Any]:
    """The stage's fields, every one a string except output_tensor_dims and the fields in `lists` (a string or
    a list of strings, checked by the caller)."""
    where = f"stage {index}"
    unknown = sorted(set(data) - set(required) - set(optional) - {"type"})
    if unknown:
        allowed = ", ".join(sorted((*required, *optional, "type")))
        raise DefinitionError(f"{where}: unknown field {brief(unknown[0])} for type {brief(data['type'])}; allowed fields: {allowed}")
    values: dict[str, Any] = {}
    for name in required:
        if name not in data:
            raise DefinitionError(f"{where}: missing required field {name!r}")
        values[name] = data[name]
    for name in optional:
        if data.get(name) is not None:
            values[name] = data[name]
    for name, value in values.items():
        if name != "output_tensor_dims" and not isinstance(value, str) and not (name in lists and isinstance(value, list)):
            raise DefinitionError(f"{where}: field {name!r} must be a string, got {type(value).__name__}")
    return values


@dataclass
class ServiceDefinition:
    """An ordered pipeline of stages; `save` writes model.zip, `load` reads and validates one."""

    pipeline: list[Stage] = field(default_factory=list)
    aml_runtime_version: str = DEFAULT_RUNTIME_VERSION
    # Warm-up inputs `save` packs into model.zip (brainwave/pipeline/warmup.py): encoded images or arrays.
    warmup_inputs: list = field(default_factory=list, compare=False, repr=False)
    # A TF Serving warm-up file (TFRecord of PredictionLog) `save` packs as assets.extra/tf_serving_warmup_requests.
    tf_serving_warmup_file: Path | None = field(default=None, compare=False, repr=False)

    def add(self, stage: Stage) -> "ServiceDefinition":
        self.pipeline.append(stage)
        return self

    def add_warmup_input(self, sample: "bytes | Path | Any") -> "ServiceDefinition":
        """A sample the server runs at load before taking traffic: encoded image bytes, an image or .npy file,
        or a numpy array with its batch axis (for pipelines that take tensors)."""
        if isinstance(sample, (str, Path)):
            path = Path(sample)
            sample = np.load(path, allow_pickle=False) if path.suffix == ".npy" else path.read_bytes()
        self.warmup_inputs.append(sample)
        return self

    def to_json(self) -> dict[str, Any]:
        return {"aml_runtime_version": self.aml_runtime_version, "pipeline": [s.to_json() for s in self.pipeline]}

    @classmethod
    def from_json(cls, data: Any) -> "ServiceDefinition":
        if not isinstance(data, dict):
            raise DefinitionError(f"service_def.json must hold a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - {"aml_runtime_version", "pipeline"})
        if unknown:
            raise DefinitionError(f"service_def.json: unknown top-level field {brief(unknown[0])}; allowed: aml_runtime_version, pipeline")
        version = data.get("aml_runtime_version", DEFAULT_RUNTIME_VERSION)
        if version not in SUPPORTED_RUNTIME_VERSIONS:
            raise DefinitionError(
                f"service_def.json: aml_runtime_version {brief(version)} is not supported; use one of {', '.join(SUPPORTED_RUNTIME_VERSIONS)}")
        stages = data.get("pipeline")
        if not isinstance(stages, list) or not stages:
            raise DefinitionError("service_def.json: field 'pipeline' must be a non-empty list of stages")
        if len(stages) > MAX_STAGES:
            raise DefinitionError(f"service_def.json: {len(stages)} stages, more than the limit of {MAX_STAGES}")
        parsed: list[Stage] = []
        for index, stage in enumerate(stages):
            if not isinstance(stage, dict):
                raise DefinitionError(f"stage {index}: must be a JSON object, got {type(stage).__name__}")
            kind = stage.get("type")
            if not isinstance(kind, str) or kind not in _STAGE_TYPES:
                raise DefinitionError(
                    f"stage {index}: unknown type {brief(kind)}; expected one of: {', '.join(_STAGE_TYPES)}")
            parsed.append(_STAGE_TYPES[kind].from_json(stage, index))
        return cls(parsed, version)

    def files(self) -> list[str]:
        """Paths inside model.zip that the stages reference."""
        return [member for stage in self.pipeline for member, _ in stage.sources()]

    def save(self, path: str | Path) -> Path:
        from brainwave.pipeline.archive import write_model_zip

        return write_model_zip(self, Path(path))

    @classmethod
    def load(cls, path: str | Path) -> "ServiceDefinition":
        """Read and validate model.zip's service definition and check every referenced file is present."""
        from brainwave.pipeline.archive import read_definition

        return read_definition(Path(path))


def parse_service_json(raw: bytes) -> ServiceDefinition:
    """service_def.json bytes -> ServiceDefinition; every malformed input is a DefinitionError."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DefinitionError(f"service_def.json is not UTF-8: {exc}") from None
    depth = json_nesting_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise DefinitionError(f"service_def.json nests {depth} levels deep, more than the limit of {MAX_JSON_DEPTH}")
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, ValueError) as exc:  # ValueError: e.g. an integer literal past Python's limit
        raise DefinitionError(f"service_def.json is not valid JSON: {exc}") from None
    return ServiceDefinition.from_json(data)


def json_nesting_depth(text: str) -> int:
    """Deepest [ / { nesting outside strings. Checked before json.loads, whose recursive parser would hit
    Python's recursion limit (RecursionError) on a few kilobytes of brackets."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest
