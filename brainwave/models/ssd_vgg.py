"""SSD-VGG (SSD300 on VGG-16), Azure's `SsdVgg` object detector: the featurizer part that runs on the NPU.

The network is SSD-TensorFlow's `ssd_300_vgg` with the feature-map sizes Azure's model reports
(37, 19, 10, 5, 3, 1; 4 or 6 anchors per location; 21 Pascal VOC classes with background 0):

    block1-5     VGG-16's 13 convolutions; pool3 2x2/2 'valid' (75 -> 37), pool4 2x2/2 'same' (37 -> 19),
                 pool5 3x3/1 'same'
    block6, 7    conv6 3x3 x 1024 and conv7 1x1 x 1024 (SSD's fc6 / fc7)
    block8-11    the extra layers: 1x1 then 3x3 (stride 2 with one pixel of zero padding for 8 and 9, 'valid'
                 for 10 and 11)
    heads        per feature map a 3x3 class convolution (anchors x 21) and a 3x3 box convolution (anchors x 4)

Two departures, both because of what the NPU computes (docs/isa.md), and both stated by `brainwave models`:

- conv6 is an ordinary 3x3 convolution: SSD's is dilated (rate 6) and the NPU has no dilation.
- block4's heads read conv4_3 after an L2 normalization, x * gamma / ||x|| per pixel, which needs a square root
  the NPU does not have. The heads are linear, so the NPU computes their nine taps separately, as one 1x1
  convolution of conv4_3 with gamma folded in (512 -> 9 x 100 channels: the same MACs as the 3x3 heads), and
  the pipeline's CPU stage (pipelines/ssd-vgg) scales each pixel's taps by 1 / ||conv4_3|| and adds the nine
  shifted taps and the bias: SSD's arithmetic, reordered. conv4_3 is therefore an output too.

The featurizer's outputs, in order, are the ten class and box tensors of blocks 7-11 under the names of
Azure's model (`ssd_300_vgg/block7_box/Reshape_1:0` classes, `.../Reshape:0` boxes), then conv4_3 and block4's
taps; one NPU program computes them all (a program with several outputs, docs/isa.md). Weights are seeded
(brainwave.models.seeded): no registry ships SSD weights. `anchors()` and the constants below are what the CPU
stage decodes boxes with (SSD-TensorFlow's SSD300 anchors).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from brainwave.models.catalog import FeaturizerOutput, FeaturizerSpec
from brainwave.models.seeded import SEEDED_NOTE, seed_weights
from brainwave.models.weights import WeightsFileError, load_weights_file

INPUT_SIZE = 300
INPUT_SHAPE = (INPUT_SIZE, INPUT_SIZE, 3)  # RGB minus RGB_MEANS
RGB_MEANS = (123.0, 117.0, 104.0)
NUM_CLASSES = 21  # Pascal VOC's 20 and background (class 0)
SCOPE = "ssd_300_vgg"
BLOCKS = ("block4", "block7", "block8", "block9", "block10", "block11")
FEATURE_SIZES = (37, 19, 10, 5, 3, 1)
ANCHOR_SIZES = ((21.0, 45.0), (45.0, 99.0), (99.0, 153.0), (153.0, 207.0), (207.0, 261.0), (261.0, 315.0))
ANCHOR_RATIOS = ((2.0, 0.5), (2.0, 0.5, 3.0, 1 / 3), (2.0, 0.5, 3.0, 1 / 3), (2.0, 0.5, 3.0, 1 / 3), (2.0, 0.5),
                 (2.0, 0.5))
ANCHOR_STEPS = (8, 16, 32, 64, 100, 300)
PRIOR_SCALING = (0.1, 0.1, 0.2, 0.2)
L2_GAMMA = 20.0  # SSD's initial L2-normalization scale, folded into block4's taps
TAPS = 9  # block4's 3x3 heads as nine 1x1 taps, tap t = ky * 3 + kx
HEAD_SCALE = 0.003  # seeded heads of blocks 7-11 read unnormalized features (~1e2): keeps their outputs O(1)


def anchors_per_location(block: int) -> int:
    return 2 + len(ANCHOR_RATIOS[block])


def block4_channels() -> int:
    """Class then box channels of block4's heads: the width of one tap."""
    return anchors_per_location(0) * (NUM_CLASSES + 4)


def cls_name(block: str) -> str:
    return f"{SCOPE}/{block}_box/Reshape_1:0"


def loc_name(block: str) -> str:
    return f"{SCOPE}/{block}_box/Reshape:0"


CONV4_3 = f"{SCOPE}/conv4/conv4_3/Relu:0"
BLOCK4_TAPS = f"{SCOPE}/block4_box/taps:0"
# Azure's output list: the six class tensors, then the six box tensors (what the CPU stage returns)
AZURE_OUTPUTS = tuple([cls_name(b) for b in BLOCKS] + [loc_name(b) for b in BLOCKS])


def azure_dims(name: str) -> tuple[int, ...]:
    """Per-image dims of one of AZURE_OUTPUTS: (H, W, anchors, 21 or 4)."""
    block = BLOCKS.index(name.split("/")[1].removesuffix("_box"))
    size = FEATURE_SIZES[block]
    return size, size, anchors_per_location(block), NUM_CLASSES if name == cls_name(BLOCKS[block]) else 4


def featurizer_outputs() -> tuple[FeaturizerOutput, ...]:
    heads = [cls_name(b) for b in BLOCKS[1:]] + [loc_name(b) for b in BLOCKS[1:]]
    size = FEATURE_SIZES[0]
    return (*(FeaturizerOutput(name, azure_dims(name)) for name in heads),
            FeaturizerOutput(CONV4_3, (size, size, 512)),
            FeaturizerOutput(BLOCK4_TAPS, (size, size, TAPS * block4_channels())))


def build(weights: Path | None, seed: int):
    from brainwave.tf_runtime import keras
    from keras import layers

    def conv(x, filters, kernel, name, stride=1, padding="same", relu=True):
        return layers.Conv2D(filters, kernel, strides=stride, padding=padding, name=name,
                             activation="relu" if relu else None)(x)

    images = keras.Input(shape=INPUT_SHAPE, name="images")
    x = images
    for block, (filters, count) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)), start=1):
        for i in range(1, count + 1):
            x = conv(x, filters, 3, f"conv{block}_{i}")
        if block == 4:
            conv4_3 = x
        pool = dict(pool_size=3, strides=1, padding="same") if block == 5 else \
            dict(pool_size=2, strides=2, padding="same" if block == 4 else "valid")
        x = layers.MaxPooling2D(name=f"pool{block}", **pool)(x)
    x = conv(x, 1024, 3, "conv6")  # SSD's is dilated (rate 6): the NPU has no dilation
    features = [conv(x, 1024, 1, "conv7")]
    for block, (mid, out, stride) in zip(BLOCKS[2:], ((256, 512, 2), (128, 256, 2), (128, 256, 1), (128, 256, 1))):
        x = conv(features[-1], mid, 1, f"{block}_conv1x1")
        if stride == 2:
            x = layers.ZeroPadding2D(1, name=f"{block}_pad")(x)
        features.append(conv(x, out, 3, f"{block}_conv3x3", stride=stride, padding="valid"))
    heads = [conv(f, anchors_per_location(i) * NUM_CLASSES, 3, f"{b}_conv_cls", relu=False)
             for i, (b, f) in enumerate(zip(BLOCKS[1:], features), start=1)]
    heads += [conv(f, anchors_per_location(i) * 4, 3, f"{b}_conv_loc", relu=False)
              for i, (b, f) in enumerate(zip(BLOCKS[1:], features), start=1)]
    taps = conv(conv4_3, TAPS * block4_channels(), 1, "block4_taps", relu=False)
    model = keras.Model(images, [*heads, conv4_3, taps], name=SCOPE)
    if weights is not None:
        load_weights_file(model, weights)
    else:
        _seed(model, seed)
    return model


def _seed(model, seed: int) -> None:
    """He-normal everywhere, then the heads of blocks 7-11 scaled by HEAD_SCALE, and block4's taps made from a
    He-normal 3x3 head (over the L2-normalized conv4_3) with gamma folded in and no bias (block4_box_bias)."""
    seed_weights(model, seed)
    for layer in model.layers:
        if layer.name.endswith(("_conv_cls", "_conv_loc")):
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel * np.float32(HEAD_SCALE), bias])
    rng = np.random.default_rng([seed, 4])
    head = rng.normal(0.0, np.sqrt(2.0 / (TAPS * 512)), (3, 3, 512, block4_channels()))
    taps = model.get_layer("block4_taps")
    taps.set_weights([taps_kernel(head * L2_GAMMA).astype(np.float32), np.zeros(TAPS * block4_channels(), np.float32)])


def taps_kernel(head: np.ndarray) -> np.ndarray:
    """A 3x3 kernel (3, 3, C, N) as the 1x1 kernel (1, 1, C, 9 N) whose output channel t * N + j is tap
    t = ky * 3 + kx of output j."""
    kh, kw, c, n = head.shape
    return head.transpose(2, 0, 1, 3).reshape(1, 1, c, kh * kw * n)


def head_kernel(taps: np.ndarray) -> np.ndarray:
    """The inverse of `taps_kernel`: block4's 3x3 heads (gamma folded in) from the taps' 1x1 kernel."""
    c = taps.shape[2]
    return taps.reshape(c, 3, 3, -1).transpose(1, 2, 0, 3)


def block4_box_bias(weights: Path | None, seed: int) -> np.ndarray:
    """The bias of block4's heads (class then box channels), which the CPU stage adds after the normalization:
    zero for seeded weights, else the array 'block4_box/bias' of an .npz weights file."""
    if weights is None:
        return np.zeros(block4_channels(), np.float32)
    with np.load(weights) as arrays:
        if "block4_box/bias" not in arrays:
            raise WeightsFileError(f"{weights}: no 'block4_box/bias' array for block4's heads")
        return arrays["block4_box/bias"].astype(np.float32)


def anchors() -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """SSD-TensorFlow's SSD300 anchors per feature map: (y, x) centres (size, size, 1) and (h, w) (anchors,),
    relative to the image."""
    out = []
    for block, size in enumerate(FEATURE_SIZES):
        y, x = np.mgrid[0:size, 0:size].astype(np.float64)
        y = (y + 0.5) * ANCHOR_STEPS[block] / INPUT_SIZE
        x = (x + 0.5) * ANCHOR_STEPS[block] / INPUT_SIZE
        small, large = ANCHOR_SIZES[block]
        h = [small / INPUT_SIZE, np.sqrt(small * large) / INPUT_SIZE]
        w = list(h)
        for r in ANCHOR_RATIOS[block]:
            h.append(small / INPUT_SIZE / np.sqrt(r))
            w.append(small / INPUT_SIZE * np.sqrt(r))
        out.append((y[..., None], x[..., None], np.array(h), np.array(w)))
    return out


SPEC = FeaturizerSpec(
    model_ref="ssd-vgg",
    versions=("1.1.3",),
    description=("SSD300 on VGG-16: backbone, extra layers and box/class heads (300x300 RGB minus means); "
                 "conv6 undilated, block4's L2 norm left to the CPU stage"),
    input_shape=INPUT_SHAPE,
    output_dims=featurizer_outputs()[0].dims,
    builder=build,
    weights_note=SEEDED_NOTE,
    outputs=featurizer_outputs(),
)
