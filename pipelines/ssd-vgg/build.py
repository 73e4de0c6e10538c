"""Build model.zip for the SSD-VGG object detection pipeline (Azure's SSD-VGG sample, end to end).

    stage 0  tensorflow  preprocess.pb   encoded PNG/JPEG string -> RGB -> 300x300 (bilinear) -> minus the RGB
                                         means -> float32 (1, 300, 300, 3)
    stage 1  brainwave   ssd-vgg 1.1.3   one NPU program, twelve outputs: the class and box heads of blocks
                                         7-11 (Azure's tensor names), conv4_3 and block4's nine head taps
    stage 2  tensorflow  postprocess.pb  block4: L2-normalize conv4_3 and add up its taps (brainwave.models.ssd_vgg
                                         says why this is on the CPU); Azure's twelve head tensors; softmax,
                                         box decoding with the SSD300 anchors, per-class non-maximum suppression
                                         -> detection_boxes / _scores / _classes, num_detections

The service returns the sixteen outputs of stage 2 by tensor name: Azure's twelve (a client written for
Azure's SsdVgg decodes them itself) and the decoded detections. service_def.json beside this file is the
definition as written; the graphs are generated here.

    python pipelines/ssd-vgg/build.py --out build/ssd-vgg/model.zip
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from brainwave.models import ssd_vgg
from brainwave.pipeline import ServiceDefinition
from brainwave.tf_runtime import tf

HERE = Path(__file__).resolve().parent
SELECT_THRESHOLD = 0.01  # SSD's evaluation threshold on a class score
NMS_THRESHOLD = 0.45
CANDIDATES = 200  # (anchor, class) pairs that enter non-maximum suppression, best first
MAX_DETECTIONS = 20
DETECTIONS = ("detection_boxes:0", "detection_scores:0", "detection_classes:0", "num_detections:0")


def featurizer_input_name(name: str) -> str:
    """Stage 2's placeholder for one of the featurizer's outputs."""
    return "featurizer/" + name.removeprefix(ssd_vgg.SCOPE + "/").removesuffix(":0")


def preprocess_graph() -> tf.compat.v1.GraphDef:
    graph = tf.Graph()
    with graph.as_default():
        data = tf.compat.v1.placeholder(tf.string, shape=[], name="in_images")
        image = tf.cast(tf.io.decode_image(data, channels=3, expand_animations=False), tf.float32)
        image = tf.compat.v1.image.resize_bilinear(image[tf.newaxis], [ssd_vgg.INPUT_SIZE] * 2)
        tf.subtract(image, tf.constant(ssd_vgg.RGB_MEANS, tf.float32), name="preprocessed")
    return graph.as_graph_def()


def block4_heads(conv4_3: tf.Tensor, taps: tf.Tensor, bias: np.ndarray) -> tf.Tensor:
    """Block4's 3x3 heads over the L2-normalized conv4_3 from the NPU's taps: each pixel's taps scaled by
    1 / ||conv4_3|| (tf.nn.l2_normalize's epsilon), then tap (ky, kx) of pixel (y + ky - 1, x + kx - 1) summed
    into output pixel (y, x) ('same' padding: taps from outside the map are zero), plus the bias."""
    size, channels = ssd_vgg.FEATURE_SIZES[0], ssd_vgg.block4_channels()
    inv_norm = tf.math.rsqrt(tf.maximum(tf.reduce_sum(tf.square(conv4_3), axis=-1, keepdims=True), 1e-12))
    scaled = tf.reshape(taps * inv_norm, [1, size, size, ssd_vgg.TAPS, channels])
    padded = tf.pad(scaled, [[0, 0], [1, 1], [1, 1], [0, 0], [0, 0]])
    heads = tf.add_n([padded[:, ky:ky + size, kx:kx + size, ky * 3 + kx] for ky in range(3) for kx in range(3)])
    return heads + tf.constant(bias, tf.float32)


def _decode(loc: tf.Tensor, anchors) -> tf.Tensor:
    """SSD box regression (1, H, W, A, 4) -> (H * W * A, 4) boxes (ymin, xmin, ymax, xmax), clipped to [0, 1]."""
    y, x, h, w = (tf.constant(a, tf.float32) for a in anchors)
    sy, sx, sh, sw = ssd_vgg.PRIOR_SCALING
    cx = loc[0, ..., 0] * w * sx + x
    cy = loc[0, ..., 1] * h * sy + y
    bw = w * tf.exp(loc[0, ..., 2] * sw)
    bh = h * tf.exp(loc[0, ..., 3] * sh)
    boxes = tf.stack([cy - bh / 2, cx - bw / 2, cy + bh / 2, cx + bw / 2], axis=-1)
    return tf.clip_by_value(tf.reshape(boxes, [-1, 4]), 0.0, 1.0)


def _iou(boxes: tf.Tensor) -> tf.Tensor:
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    area = (ymax - ymin) * (xmax - xmin)
    ih = tf.maximum(tf.minimum(ymax[:, None], ymax[None]) - tf.maximum(ymin[:, None], ymin[None]), 0.0)
    iw = tf.maximum(tf.minimum(xmax[:, None], xmax[None]) - tf.maximum(xmin[:, None], xmin[None]), 0.0)
    inter = ih * iw
    return tf.math.divide_no_nan(inter, area[:, None] + area[None] - inter)


def _detections(cls: list[tf.Tensor], loc: list[tf.Tensor]) -> None:
    """Softmax, decoding and greedy per-class non-maximum suppression over the best CANDIDATES (anchor, class)
    pairs, written with the ops a served graph may use (brainwave.pipeline.graph_policy: a while loop, no NMS
    kernel); the four outputs are named as in DETECTIONS."""
    classes = ssd_vgg.NUM_CLASSES
    probs = tf.concat([tf.reshape(tf.nn.softmax(c[0], axis=-1), [-1, classes]) for c in cls], axis=0)
    boxes = tf.concat([_decode(lc, a) for lc, a in zip(loc, ssd_vgg.anchors())], axis=0)
    scores, pairs = tf.math.top_k(tf.reshape(probs[:, 1:], [-1]), k=CANDIDATES)  # background (class 0) dropped
    labels = pairs % (classes - 1) + 1
    boxes = tf.gather(boxes, pairs // (classes - 1))
    later = tf.range(CANDIDATES)[None, :] > tf.range(CANDIDATES)[:, None]
    suppresses = (_iou(boxes) > NMS_THRESHOLD) & tf.equal(labels[:, None], labels[None]) & later

    def step(i, keep):
        return i + 1, keep & ~(suppresses[i] & keep[i])

    _, keep = tf.while_loop(lambda i, keep: i < CANDIDATES, step, [tf.constant(0), scores > SELECT_THRESHOLD])
    best, order = tf.math.top_k(tf.where(keep, scores, -1.0), k=MAX_DETECTIONS)  # kept ones, best first
    found = best > 0
    tf.identity(tf.where(found[:, None], tf.gather(boxes, order), 0.0)[None], name="detection_boxes")
    tf.identity(tf.where(found, best, 0.0)[None], name="detection_scores")
    tf.identity(tf.where(found, tf.cast(tf.gather(labels, order), tf.float32), 0.0)[None], name="detection_classes")
    tf.identity(tf.reduce_sum(tf.cast(found, tf.float32))[None], name="num_detections")


def postprocess_graph(bias: np.ndarray) -> tf.compat.v1.GraphDef:
    """Stage 2: the featurizer's outputs (placeholders named by featurizer_input_name) -> Azure's twelve head
    tensors (under Azure's names) and the decoded detections."""
    graph = tf.Graph()
    with graph.as_default():
        inputs = {o.name: tf.compat.v1.placeholder(tf.float32, [1, *o.dims], name=featurizer_input_name(o.name))
                  for o in ssd_vgg.featurizer_outputs()}
        heads = block4_heads(inputs[ssd_vgg.CONV4_3], inputs[ssd_vgg.BLOCK4_TAPS], bias)
        split = ssd_vgg.anchors_per_location(0) * ssd_vgg.NUM_CLASSES
        made = {ssd_vgg.cls_name("block4"): heads[..., :split], ssd_vgg.loc_name("block4"): heads[..., split:]}
        outputs = {}
        for name in ssd_vgg.AZURE_OUTPUTS:
            value = made.get(name, inputs.get(name))
            outputs[name] = tf.reshape(value, [1, *ssd_vgg.azure_dims(name)], name=name.removesuffix(":0"))
        _detections([outputs[ssd_vgg.cls_name(b)] for b in ssd_vgg.BLOCKS],
                    [outputs[ssd_vgg.loc_name(b)] for b in ssd_vgg.BLOCKS])
    return graph.as_graph_def()


def build_model_zip(out: Path, weights: Path | None = None) -> Path:
    """model.zip from service_def.json as written, with the two graphs generated into a temporary directory.
    `weights`: the featurizer's .npz weights file (it must then also hold 'block4_box/bias'), else seeded."""
    workdir = Path(tempfile.mkdtemp(prefix="ssd-vgg-pipeline-"))
    try:
        definition = ServiceDefinition.from_json(json.loads((HERE / "service_def.json").read_text()))
        (workdir / "preprocess.pb").write_bytes(preprocess_graph().SerializeToString())
        bias = ssd_vgg.block4_box_bias(weights, seed=0)
        (workdir / "postprocess.pb").write_bytes(postprocess_graph(bias).SerializeToString())
        definition.pipeline[0].source = workdir / "preprocess.pb"
        definition.pipeline[2].source = workdir / "postprocess.pb"
        if weights is not None:
            definition.pipeline[1].weights_path = "ssd_vgg.npz"
            definition.pipeline[1].weights_source = Path(weights)
        return definition.save(out)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def expected_definition() -> dict:
    """service_def.json as this module's constants say it must read (tests compare it with the file)."""
    featurizer = ssd_vgg.featurizer_outputs()
    return {
        "aml_runtime_version": "1.1",
        "pipeline": [
            {"model_path": "preprocess.pb", "input_tensor": "in_images:0", "output_tensor": "preprocessed:0",
             "type": "tensorflow"},
            {"model_ref": ssd_vgg.SPEC.model_ref, "model_version": ssd_vgg.SPEC.versions[0],
             "output_tensor": [o.name for o in featurizer], "type": "brainwave"},
            {"model_path": "postprocess.pb", "input_tensor": [featurizer_input_name(o.name) + ":0" for o in featurizer],
             "output_tensor": [*ssd_vgg.AZURE_OUTPUTS, *DETECTIONS], "type": "tensorflow"},
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("build/ssd-vgg/model.zip"))
    parser.add_argument("--weights", type=Path, default=None, help="featurizer weights (.npz); default: seeded")
    args = parser.parse_args()
    print(build_model_zip(args.out, args.weights))


if __name__ == "__main__":
    main()
