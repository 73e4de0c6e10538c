"""Cheap checks on encoded images before TensorFlow decodes them.

TensorFlow's decoders allocate the full pixel buffer a header declares; a 20000x20000 PNG of a few
kilobytes would make the server allocate over a gigabyte. Pillow reads only the header here, so the
server knows what a request will cost (its decoded pixels) before it decodes anything.
"""
from __future__ import annotations

import io
import re
import struct
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from brainwave.errors import InvalidInputError

DEFAULT_MAX_PIXELS = 40_000_000  # ~ a 7700x5200 photo
ACCEPTED_FORMATS = ("PNG", "JPEG", "GIF", "BMP")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int
    frames: int = 1  # an animated GIF decodes every frame in graphs that use decode_gif

    @property
    def pixels(self) -> int:
        return self.width * self.height * self.frames


def check_encoded_image(data: bytes, what: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """The image's format and size, or InvalidInputError saying what is wrong with `data`."""
    if not data:
        raise InvalidInputError(f"{what} is empty (0 bytes); expected an encoded PNG, JPEG, GIF or BMP image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                frames = getattr(image, "n_frames", 1) if image.format == "GIF" else 1
                info = ImageInfo(image.format, *image.size, frames)
    except Image.DecompressionBombError as exc:  # Pillow's own, larger limit; report it our way
        declared = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = declared.group(1) if declared else "too many"
        raise InvalidInputError(f"{what} declares {pixels} pixels, more than the limit of {max_pixels}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, struct.error):
        head = data[:8].hex(" ")
        raise InvalidInputError(
            f"{what} is not a recognized image ({len(data)} bytes starting with {head}); "
            f"expected an encoded {', '.join(ACCEPTED_FORMATS)} image") from None
    if info.format not in ACCEPTED_FORMATS:
        raise InvalidInputError(f"{what} is a {info.format} image; expected one of {', '.join(ACCEPTED_FORMATS)}")
    if info.pixels > max_pixels:
        frames = f" in {info.frames} frames" if info.frames > 1 else ""
        raise InvalidInputError(f"{what} declares {info.width}x{info.height} pixels{frames} ({info.pixels}), more "
                                f"than the limit of {max_pixels}")
    return info


def without_png_color_profile(data: bytes) -> bytes:
    """`data` without its iCCP chunk, if it is a PNG that has one.

    libpng prints "iCCP: known incorrect sRGB profile" to stderr on every decode of many real-world PNGs,
    one line per request; TensorFlow's decoders ignore color profiles anyway, so dropping the chunk changes
    no pixel. Hand-written because no library edits PNG chunks without re-encoding the image: a chunk is
    length (4 bytes, big-endian), type (4), data, CRC (4). Anything malformed is returned unchanged for the
    decoder to report.
    """
    if not data.startswith(_PNG_SIGNATURE) or b"iCCP" not in data:
        return data
    pieces, pos = [_PNG_SIGNATURE], len(_PNG_SIGNATURE)
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        end = pos + 12 + length
        if end > len(data):
            return data
        if data[pos + 4:pos + 8] != b"iCCP":
            pieces.append(data[pos:end])
        if data[pos + 4:pos + 8] == b"IEND":
            return b"".join(pieces)
        pos = end
    return data
