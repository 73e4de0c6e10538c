"""Graphs are data, not code: a `tensorflow` stage may only use ops from a reviewed allowlist.

TensorFlow graphs can read, write and list files (ReadFile, WriteFile, MatchingFiles, Save/Restore,
ImmutableConst's memory-mapped files, dataset readers, PrintV2 to a file), and a model.zip may come from
anyone who can register a model. So before a stage is built, every op its output can reach is checked:
the nodes the output depends on (data and control inputs), and every node of every function those nodes
call (PartitionedCall, While, If, ... carry functions in their attributes), transitively. Nodes the output
does not reach are never run (the stage is pruned to input -> output), so they are not checked.

A refused op is named with its node and stage, e.g. "stage 0 (input_trans.pb): op WriteFile (node
'write') is not allowed in a served graph". Trusted deployments opt out with `brainwave serve --allow-any-op`.
TF Serving runs any op; this is deliberately stricter.
"""
from __future__ import annotations

from typing import Iterable

from brainwave.errors import ModelLoadError, brief

# Reviewed allowlist, grouped so a reviewer can read it: none of these touches the file system, the network
# or the process; all work on tensors in memory.
ALLOWED_OPS: frozenset[str] = frozenset({
    # graph plumbing and variables
    "Placeholder", "PlaceholderWithDefault", "Const", "Identity", "IdentityN", "NoOp", "StopGradient",
    "PreventGradient", "Snapshot", "EnsureShape", "CheckNumerics", "Assert", "ReadVariableOp", "VarHandleOp",
    "VariableV2", "VarIsInitializedOp",
    # function calls and control flow (their function bodies are checked too)
    "PartitionedCall", "StatefulPartitionedCall", "While", "StatelessWhile", "If", "StatelessIf", "Case",
    "StatelessCase", "Enter", "Exit", "Merge", "Switch", "NextIteration", "LoopCond", "ControlTrigger",
    # tensor lists and arrays (map_fn, while loops)
    "TensorListReserve", "TensorListSetItem", "TensorListGetItem", "TensorListStack", "TensorListFromTensor",
    "TensorListLength", "TensorListElementShape", "TensorListPushBack", "TensorListPopBack", "EmptyTensorList",
    "TensorListConcatV2", "TensorListGather", "TensorListScatterIntoExistingList", "TensorListResize",
    "TensorArrayV3", "TensorArrayWriteV3", "TensorArrayReadV3", "TensorArrayGatherV3", "TensorArrayScatterV3",
    "TensorArraySizeV3", "TensorArrayConcatV3", "TensorArraySplitV3", "TensorArrayCloseV3",
    # images
    "DecodeImage", "DecodePng", "DecodeJpeg", "DecodeAndCropJpeg", "DecodeGif", "DecodeBmp", "ExtractJpegShape",
    "EncodePng", "EncodeJpeg", "ResizeBilinear", "ResizeBicubic", "ResizeNearestNeighbor", "ResizeArea",
    "ScaleAndTranslate", "CropAndResize", "AdjustContrastv2", "AdjustHue", "AdjustSaturation", "RGBToHSV",
    "HSVToRGB",
    # shapes and data movement
    "Reshape", "Squeeze", "ExpandDims", "Shape", "ShapeN", "Size", "Rank", "ConcatV2", "Concat", "Pack",
    "Unpack", "Split", "SplitV", "Slice", "StridedSlice", "Gather", "GatherV2", "GatherNd", "Transpose", "Tile",
    "Fill", "ZerosLike", "OnesLike", "Pad", "PadV2", "MirrorPad", "Reverse", "ReverseV2", "BroadcastTo",
    "BroadcastArgs", "Where", "OneHot", "Range", "LinSpace", "Cast", "Bitcast", "Select", "SelectV2",
    "ClipByValue", "TopKV2", "ArgMax", "ArgMin", "Cumsum", "Cumprod", "ScatterNd", "SpaceToBatchND",
    "BatchToSpaceND", "SpaceToDepth", "DepthToSpace", "MatrixBandPart", "Unique",
    # arithmetic, activations, reductions
    "Add", "AddV2", "AddN", "Sub", "Mul", "Div", "RealDiv", "DivNoNan", "FloorDiv", "FloorMod", "Mod",
    "Maximum", "Minimum", "Neg", "Abs", "Sign", "Square", "Sqrt", "Rsqrt", "Exp", "Log", "Log1p", "Pow",
    "Reciprocal", "Floor", "Ceil", "Round", "Rint", "Sin", "Cos", "Erf", "SquaredDifference", "Sigmoid", "Tanh",
    "Relu", "Relu6", "Elu", "Selu", "LeakyRelu", "Softplus", "Softsign", "Softmax", "LogSoftmax", "Mean", "Sum",
    "Max", "Min", "Prod", "All", "Any", "Equal", "NotEqual", "Less", "LessEqual", "Greater", "GreaterEqual",
    "LogicalAnd", "LogicalOr", "LogicalNot", "IsNan", "IsInf", "IsFinite",
    # neural-network layers
    "MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum", "BiasAdd", "Conv2D",
    "Conv2DBackpropInput", "DepthwiseConv2dNative", "MaxPool", "MaxPoolV2", "AvgPool", "FusedBatchNorm",
    "FusedBatchNormV2", "FusedBatchNormV3", "LRN", "_FusedConv2D", "_FusedMatMul",
    # strings that stay in memory
    "DecodeBase64", "EncodeBase64", "AsString", "StringToNumber", "StringLength", "Substr", "StringJoin",
    "StringStrip", "StringLower", "StringUpper", "StaticRegexFullMatch", "RegexFullMatch", "StaticRegexReplace",
    "RegexReplace",  # RE2: linear time, no backtracking
})


def check_graph_def(graph_def, outputs: Iterable[str], where: str) -> None:
    """Raise ModelLoadError if an op reachable from `outputs` (tensor or node names) is not allowed."""
    nodes = {node.name: node for node in graph_def.node}
    functions = {f.signature.name: f for f in graph_def.library.function}
    pending = [_node_name(name) for name in outputs]
    seen: set[str] = set()
    called: list[str] = []
    while pending:
        name = pending.pop()
        if name in seen or name not in nodes:
            continue
        seen.add(name)
        node = nodes[name]
        _check_node(node, where)
        pending.extend(_node_name(inp) for inp in node.input)
        called.extend(_called_functions(node))
    _check_functions(called, functions, where)


def _check_functions(names: list[str], functions: dict, where: str) -> None:
    checked: set[str] = set()
    while names:
        name = names.pop()
        if name in checked:
            continue
        checked.add(name)
        function = functions.get(name)
        if function is None:
            raise ModelLoadError(f"{where}: the graph calls function {brief(name)}, which it does not define")
        for node in function.node_def:
            _check_node(node, where, f" in function {brief(name, 60)}")
            names.extend(_called_functions(node))


def _check_node(node, where: str, inside: str = "") -> None:
    if node.op not in ALLOWED_OPS:
        raise ModelLoadError(
            f"{where}: op {brief(node.op, 60)} (node {brief(node.name, 60)}{inside}) is not allowed in a served "
            "graph: graphs may not touch files or the process (docs/security.md); a trusted deployment can "
            "serve it with --allow-any-op")


def _called_functions(node) -> list[str]:
    names = []
    for attr in node.attr.values():
        if attr.HasField("func"):
            names.append(attr.func.name)
        names.extend(f.name for f in attr.list.func)
    return names


def _node_name(tensor: str) -> str:
    """'^node', 'node:1' and 'node' all name the node 'node'."""
    return tensor.lstrip("^").split(":")[0]


def check_saved_model(path, where: str, signature_key: str = "serving_default") -> None:
    """The same check for a SavedModel directory: the serving signature's outputs and the init op."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    try:
        saved.ParseFromString((path / "saved_model.pb").read_bytes())
    except Exception as exc:  # noqa: BLE001 - DecodeError and OSError alike mean "not a SavedModel"
        raise ModelLoadError(f"{where}: saved_model.pb is not readable: {type(exc).__name__}: {exc}") from None
    for meta_graph in saved.meta_graphs:
        outputs = []
        for key, signature in meta_graph.signature_def.items():
            if key in (signature_key, "__saved_model_init_op"):
                outputs += [tensor.name for tensor in signature.outputs.values()]
        check_graph_def(meta_graph.graph_def, outputs, where)
