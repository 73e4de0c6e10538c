"""Build the Project Brainwave quickstart pipeline for ResNet-50 as model.zip.

    python pipelines/resnet50/build.py --out build/resnet50/model.zip [--classifier-weights W.npz]

Stage 0 is a TF1 graph built with `tf.compat.v1` exactly as Brainwave users wrote it (decode, cast, batch
dim, VGG mean subtraction, BGR), except that it resizes any input image to 224x224 instead of assuming
that size. Stage 1 is the `resnet50` featurizer. Stage 2 is a dense 2048 -> 1000 softmax classifier
whose weights are deterministic from a seed, or read from an .npz with arrays `kernel` (2048, 1000)
and `bias` (1000,).
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from brainwave.pipeline import ServiceDefinition
from brainwave.tf_runtime import tf

HERE = Path(__file__).resolve().parent
VGG_MEANS_RGB = (123.68, 116.779, 103.939)
IMAGE_SIZE = 224


def input_transform_graph() -> tf.compat.v1.GraphDef:
    graph = tf.Graph()
    with graph.as_default():
        in_images = tf.compat.v1.placeholder(tf.string, shape=[], name="in_images")
        image = tf.io.decode_image(in_images, channels=3, expand_animations=False)
        image = tf.cast(image, tf.float32)
        image = tf.expand_dims(image, 0)
        image = tf.compat.v1.image.resize_bilinear(image, [IMAGE_SIZE, IMAGE_SIZE])
        red, green, blue = tf.split(image, 3, axis=3)
        tf.concat(
            [blue - VGG_MEANS_RGB[2], green - VGG_MEANS_RGB[1], red - VGG_MEANS_RGB[0]],
            axis=3, name="transferred_input")
    return graph.as_graph_def()


def classifier_weights(path: Path | None, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    if path is not None:
        with np.load(path) as arrays:
            return arrays["kernel"].astype(np.float32), arrays["bias"].astype(np.float32)
    rng = np.random.default_rng(seed)
    # Seeded pool5 features are ~1e2 in magnitude; this scale keeps the softmax from saturating.
    kernel = rng.normal(0.0, 0.02 / np.sqrt(2048), (2048, 1000)).astype(np.float32)
    return kernel, np.zeros(1000, np.float32)


def classifier_graph(kernel: np.ndarray, bias: np.ndarray) -> tf.compat.v1.GraphDef:
    graph = tf.Graph()
    with graph.as_default():
        features = tf.compat.v1.placeholder(tf.float32, shape=[None, 1, 1, 2048], name="Input")
        flat = tf.reshape(features, [-1, 2048])
        logits = tf.matmul(flat, tf.constant(kernel)) + tf.constant(bias)
        tf.nn.softmax(logits, name="resnet_v1_50/logits/Softmax")
    return graph.as_graph_def()


def build_model_zip(out: Path, classifier_weights_path: Path | None = None) -> Path:
    workdir = Path(tempfile.mkdtemp(prefix="resnet50-pipeline-"))
    try:
        (workdir / "input_trans.pb").write_bytes(input_transform_graph().SerializeToString())
        kernel, bias = classifier_weights(classifier_weights_path)
        (workdir / "resnet50_classifier.pb").write_bytes(classifier_graph(kernel, bias).SerializeToString())
        # The seed's service_def.json, as the user wrote it.
        definition = ServiceDefinition.from_json(json.loads((HERE / "service_def.json").read_text()))
        definition.pipeline[0].source = workdir / "input_trans.pb"
        definition.pipeline[2].source = workdir / "resnet50_classifier.pb"
        return definition.save(out)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("build/resnet50/model.zip"))
    parser.add_argument("--classifier-weights", type=Path, default=None)
    args = parser.parse_args()
    print(build_model_zip(args.out, args.classifier_weights))


if __name__ == "__main__":
    main()
