"""Freeze TensorFlow functions and Keras models into self-contained GraphDefs for `tensorflow` stages."""
from __future__ import annotations

from brainwave.tf_runtime import tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2


def freeze_function(fn, input_spec: tf.TensorSpec, output_name: str):
    """Trace `fn(x)` for `input_spec` and fold its variables into constants.

    Returns (graph_def, input_tensor_name, output_tensor_name); the input placeholder is named after
    `input_spec.name` and the output is an Identity op named `output_name`.
    """
    if not input_spec.name:
        raise ValueError("input_spec needs a name: it becomes the stage's input tensor")

    @tf.function(input_signature=[input_spec], autograph=False)
    def named(x):
        return tf.identity(fn(x), name=output_name)

    concrete = named.get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete)
    graph_def = frozen.graph.as_graph_def()
    input_tensor = frozen.inputs[0].name
    output_op = next(node.name for node in graph_def.node if node.name.split("/")[-1] == output_name or node.name == output_name)
    return graph_def, input_tensor, f"{output_op}:0"


def freeze_keras(model, input_name: str = "Input", output_name: str = "Output"):
    """Freeze a Keras model (any batch size) into (graph_def, input_tensor, output_tensor)."""
    shape = (None, *model.inputs[0].shape[1:])
    spec = tf.TensorSpec(shape, model.inputs[0].dtype, name=input_name)
    return freeze_function(lambda x: model(x, training=False), spec, output_name)
