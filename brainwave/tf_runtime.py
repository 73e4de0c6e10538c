"""TensorFlow, imported once and quietly: `from brainwave.tf_runtime import tf`.

TF 2.21 logs its oneDNN and absl banners from C++ while its shared libraries load, before it reads
TF_CPP_MIN_LOG_LEVEL, so every command that touched TensorFlow printed them. The import therefore runs with
file descriptor 2 pointed at /dev/null; stderr is restored right after, and an import that fails still
raises its Python exception normally.
"""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # later C++ INFO/WARNING lines (cpu_feature_guard, ...)


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Discard what C/C++ code writes to fd 2 inside the block (Python's sys.stderr is left alone)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


if "tensorflow" in sys.modules:
    import tensorflow as tf
else:
    with native_stderr_silenced():
        import tensorflow as tf
tf.get_logger().setLevel("ERROR")  # Python-side deprecation notices (tf.compat.v1 graphs are what users bring)



def configure_threads(intra_op: int, inter_op: int) -> None:
    """Size TensorFlow's two thread pools. Must run before TensorFlow executes its first op (afterwards
    TensorFlow keeps the pools it made, and this raises RuntimeError)."""
    tf.config.threading.set_intra_op_parallelism_threads(intra_op)
    tf.config.threading.set_inter_op_parallelism_threads(inter_op)


def __getattr__(name: str):
    if name == "keras":  # Keras 3 loads on first use, after TensorFlow is in (quietly)
        import keras

        return keras
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["configure_threads", "native_stderr_silenced", "tf"]  # and `keras`, loaded on first use
