"""The catalog's networks compiled once per test session (bfp20) with a photo prepared as each one's pipeline
prepares it: tests/npu/test_catalog_networks.py runs them on the executors, tests/models/test_catalog_figures.py
checks brainwave/models/figures.json against them. VGG-16, ResNet-152 and SSD-VGG take 10-25 s each to build and
compile, which is why they are shared."""
from __future__ import annotations

import functools

import numpy as np

from brainwave.npu.isa import Program

VGG_MEANS_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def photo(model_ref: str, size: int) -> np.ndarray:
    """scikit-image's astronaut (people, a flag, a rocket) resized to size x size, preprocessed for `model_ref`
    as its pipeline or Keras' applications do: (1, size, size, 3) float32."""
    import skimage.data
    from PIL import Image

    from brainwave.models import ssd_vgg
    from brainwave.models.efficientnet_lite import preprocess_image

    rgb = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((size, size), Image.Resampling.BILINEAR))
    x = rgb.astype(np.float32)
    if model_ref.startswith("efficientnet"):
        return preprocess_image(rgb, size, size)
    if model_ref == "ssd-vgg":
        return (x - np.array(ssd_vgg.RGB_MEANS, np.float32))[None]
    if model_ref == "densenet121":
        return ((x / np.float32(255) - IMAGENET_MEAN) / IMAGENET_STD)[None]
    return (x[..., ::-1] - VGG_MEANS_BGR)[None]  # resnet50, resnet152, vgg16: BGR minus the VGG means


@functools.cache
def model(model_ref: str):
    from brainwave.models import build_featurizer, resolve_featurizer

    return build_featurizer(resolve_featurizer(model_ref))


@functools.cache
def compiled(model_ref: str) -> tuple[Program, np.ndarray]:
    """(the bfp20 program, the photo it reads)."""
    from brainwave.models import resolve_featurizer
    from brainwave.npu.compiler import compile_keras

    size = resolve_featurizer(model_ref).input_shape[0]
    return compile_keras(model(model_ref), precision="bfp20"), photo(model_ref, size)
