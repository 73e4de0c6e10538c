"""TensorFlow graphs users bring, and the seed model.zip built around them."""
from __future__ import annotations

import json
from pathlib import Path

from brainwave.pipeline import ServiceDefinition
from brainwave.tf_runtime import tf
from tests.support import pipeline_builder

VGG_MEANS_RGB = (123.68, 116.779, 103.939)


def bgr_minus_means(image):
    red, green, blue = tf.split(image, 3, axis=3)
    return tf.concat([blue - VGG_MEANS_RGB[2], green - VGG_MEANS_RGB[1], red - VGG_MEANS_RGB[0]], axis=3,
                     name="transferred_input")


def blog_fixed_224_graph():
    """The Brainwave blog's input_trans.pb: decode a PNG, take a fixed 224x224 window, VGG means, BGR."""
    graph = tf.Graph()
    with graph.as_default():
        data = tf.compat.v1.placeholder(tf.string, shape=[], name="in_images")
        image = tf.cast(tf.image.decode_png(data, channels=3), tf.float32)
        image = tf.slice(tf.expand_dims(image, 0), [0, 0, 0, 0], [1, 224, 224, 3])
        bgr_minus_means(image)
    return graph.as_graph_def()


def seed_zip(tmp_path: Path, input_graph, warmup=()) -> Path:
    """The seed flow: the seed service_def.json verbatim, `input_graph` as input_trans.pb, the ResNet-50
    featurizer and the seed classifier; `warmup` samples packed as the model's own warm-up inputs."""
    build = pipeline_builder("resnet50")
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "input_trans.pb").write_bytes(input_graph.SerializeToString())
    kernel, bias = build.classifier_weights(None)
    (tmp_path / "resnet50_classifier.pb").write_bytes(build.classifier_graph(kernel, bias).SerializeToString())
    definition = ServiceDefinition.from_json(json.loads((build.HERE / "service_def.json").read_text()))
    definition.pipeline[0].source = tmp_path / "input_trans.pb"
    definition.pipeline[2].source = tmp_path / "resnet50_classifier.pb"
    for sample in warmup:
        definition.add_warmup_input(sample)
    return definition.save(tmp_path / "model.zip")
