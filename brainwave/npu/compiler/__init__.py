"""NPU compiler: networks -> programs (docs/compiler.md, docs/isa.md).

Frontends (`keras_graph`, `onnx_graph`) build the graph IR (`ir.Graph`), `passes.run_passes` folds and fuses it,
`lowering.lower` emits the program through `ProgramBuilder`. `compile_keras` / `compile_onnx` do all three;
`ProgramBuilder` writes programs by hand.
"""
from .builder import CompileError, ProgramBuilder, Tensor
from .errors import UnsupportedOpError
from .keras_frontend import UnsupportedLayerError, compile_keras, keras_graph
from .onnx_frontend import OnnxProgram, compile_onnx, onnx_graph  # imports onnx only when called

__all__ = ["CompileError", "OnnxProgram", "ProgramBuilder", "Tensor", "UnsupportedLayerError", "UnsupportedOpError",
           "compile_keras", "compile_onnx", "keras_graph", "onnx_graph"]
