"""Cheap checks on encoded images before TensorFlow decodes them.

TensorFlow's decoders allocate the full pixel buffer a header declares; a 20000x20000 PNG of a few
kilobytes would make the server allocate over a gigabyte. Pillow reads only the header here.
"""
from __future__ import annotations

import io
import re
import warnings

from PIL import Image, UnidentifiedImageError

from brainwave.errors import InvalidInputError

DEFAULT_MAX_PIXELS = 40_000_000  # ~ a 7700x5200 photo
ACCEPTED_FORMATS = ("PNG", "JPEG", "GIF", "BMP")


def check_encoded_image(data: bytes, what: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[str, int, int]:
    """Return (format, width, height) or raise InvalidInputError saying what is wrong with `data`."""
    if not data:
        raise InvalidInputError(f"{what} is empty (0 bytes); expected an encoded PNG, JPEG, GIF or BMP image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                fmt, (width, height) = image.format, image.size
    except Image.DecompressionBombError as exc:  # Pillow's own, larger limit; report it our way
        declared = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = declared.group(1) if declared else "too many"
        raise InvalidInputError(f"{what} declares {pixels} pixels, more than the limit of {max_pixels}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        head = data[:8].hex(" ")
        raise InvalidInputError(
            f"{what} is not a recognized image ({len(data)} bytes starting with {head}); "
            f"expected an encoded {', '.join(ACCEPTED_FORMATS)} image") from None
    if fmt not in ACCEPTED_FORMATS:
        raise InvalidInputError(f"{what} is a {fmt} image; expected one of {', '.join(ACCEPTED_FORMATS)}")
    if width * height > max_pixels:
        raise InvalidInputError(
            f"{what} declares {width}x{height} pixels ({width * height}), more than the limit of {max_pixels}")
    return fmt, width, height


def synthetic_png(width: int = 64, height: int = 48) -> bytes:
    """A small valid PNG (a gradient) used to warm pipelines up at load time."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
