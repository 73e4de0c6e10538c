"""NPU compiler: networks -> programs (docs/isa.md). `compile_keras` for Keras models, `ProgramBuilder` by hand."""
from .builder import CompileError, ProgramBuilder, Tensor
from .keras_frontend import UnsupportedLayerError, compile_keras

__all__ = ["CompileError", "ProgramBuilder", "Tensor", "UnsupportedLayerError", "compile_keras"]
