"""What bench sends: image files (named, or every image in a folder), or random inputs that match the model's
metadata (random-noise PNGs for an image model, random tensors for a numeric one)."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from brainwave.bench.targets import BenchError, InputSignature

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}
RANDOM_IMAGE_SIDE = 224
_NUMPY = {"DT_FLOAT": np.float32, "DT_DOUBLE": np.float64, "DT_HALF": np.float16, "DT_INT8": np.int8,
          "DT_INT16": np.int16, "DT_INT32": np.int32, "DT_INT64": np.int64, "DT_UINT8": np.uint8,
          "DT_UINT16": np.uint16, "DT_BOOL": np.bool_}


def image_files(paths: list[Path]) -> list[bytes]:
    """The bytes of every image named, folders expanded (sorted, not recursive)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise BenchError(f"folder {path} holds no image ({', '.join(sorted(IMAGE_SUFFIXES))})")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise BenchError(f"input {path} does not exist")
    return [file.read_bytes() for file in files]


def random_inputs(signature: InputSignature, count: int, seed: int = 0) -> list[bytes | np.ndarray]:
    """`count` inputs the model accepts: noise PNGs for an image (DT_STRING) input, otherwise arrays of the
    declared shape (open dimensions as 1, batch 1) and dtype."""
    rng = np.random.default_rng(seed)
    if signature.dtype == "DT_STRING":
        from PIL import Image

        images = []
        for _ in range(count):
            buffer = io.BytesIO()
            pixels = rng.integers(0, 256, (RANDOM_IMAGE_SIDE, RANDOM_IMAGE_SIDE, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(buffer, format="PNG")
            images.append(buffer.getvalue())
        return images
    if signature.dtype not in _NUMPY:
        raise BenchError(f"the model's input is {signature.dtype}; bench makes random inputs for images and "
                         f"{', '.join(_NUMPY)}: give image files instead")
    shape = tuple(1 if size < 0 else size for size in signature.shape) or (1,)
    dtype = np.dtype(_NUMPY[signature.dtype])
    if dtype.kind == "f":
        return [rng.standard_normal(shape).astype(dtype) for _ in range(count)]
    if dtype.kind == "b":
        return [rng.integers(0, 2, shape).astype(dtype) for _ in range(count)]
    info = np.iinfo(dtype)
    return [rng.integers(max(info.min, -128), min(info.max, 127), shape, endpoint=True).astype(dtype)
            for _ in range(count)]
