"""A person's own pictures (PNG, JPEG, anything Pillow reads) as the arrays a network takes.

A photo is rarely the model's size or mode: it is turned upright (its EXIF orientation), its
mode converted (RGBA, palette, greyscale, 16-bit ... to RGB or greyscale, as the model has
channels), cropped to the model's aspect ratio around its centre, and resized; every change is
said, so that nobody mistakes a squashed 32x32 thumbnail for what the network saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageFileError

_ORIENTATION = 0x0112  # the EXIF tag saying how a camera held the picture


@dataclass(frozen=True)
class Picture:
    """An image file as the model takes it: uint8 (C, H, W), and what was done to get there."""

    path: Path
    pixels: np.ndarray
    original_size: tuple[int, int]  # (width, height) as stored
    original_mode: str
    changes: tuple[str, ...]


def read_picture(path: str | Path, shape: tuple[int, int, int]) -> Picture:
    """The image at `path` for a model taking (channels, height, width) `shape`; a file that is not a
    readable image raises ImageFileError."""
    path = Path(path)
    channels, height, width = shape
    try:
        with Image.open(path) as opened:
            opened.load()  # decodes now: a truncated file fails here, not later
            stored_size, stored_mode = opened.size, opened.mode
            upright = opened.getexif().get(_ORIENTATION, 1) in (1, None)
            image = ImageOps.exif_transpose(opened)
    except FileNotFoundError:
        raise ImageFileError(f"no image file at {path}") from None
    except IsADirectoryError:
        raise ImageFileError(f"{path} is a folder; give image files such as photo.jpg") from None
    except Image.DecompressionBombError as error:
        raise ImageFileError(f"{path} is too large to be read safely ({error}); give a smaller image") from None
    except UnidentifiedImageError:
        raise ImageFileError(f"{path} is not an image Pillow can read; give a PNG or JPEG file") from None
    except (OSError, SyntaxError, ValueError) as error:  # truncated or corrupt data
        raise ImageFileError(f"{path} is damaged or truncated ({str(error)[:100]}); give a whole image file") from None
    changes: list[str] = []
    if not upright:
        changes.append("turned upright as its EXIF orientation says")
    image, converted = _convert(image, channels)
    if converted:
        changes.append(converted)
    image, cropped = _crop_to_aspect(image, width / height)
    if cropped:
        changes.append(cropped)
    if image.size != (width, height):
        changes.append(f"resized from {image.size[0]}x{image.size[1]} to {width}x{height}")
        image = image.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)
    pixels = np.asarray(image, dtype=np.uint8)
    pixels = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    return Picture(path, np.ascontiguousarray(pixels), stored_size, stored_mode, tuple(changes))


def _convert(image: Image.Image, channels: int) -> tuple[Image.Image, str | None]:
    """The image in 8-bit RGB (3 channels) or greyscale (1), and the sentence for the change."""
    target = {1: "L", 3: "RGB"}.get(channels)
    if target is None:
        raise ImageFileError(f"a model for {channels}-channel images cannot take picture files (only 1 or 3)")
    mode = image.mode
    if mode == target:
        return image, None
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit or wider greyscale: scale to 8 bits
        values = np.asarray(image, dtype=np.float64)
        top = max(float(values.max()), 1.0)
        image = Image.fromarray(np.round(values * (255.0 / top)).clip(0, 255).astype(np.uint8), "L")
        note = f"converted from {mode} (greyscale, scaled to 8 bits)"
        return (image if target == "L" else image.convert(target)), f"{note} to {target}"
    if "A" in mode or (mode == "P" and "transparency" in image.info):
        # Transparent parts over white, as a viewer shows them, rather than over whatever colour they hide.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
        return image.convert(target), f"converted from {mode} to {target} (transparency over white)"
    return image.convert(target), f"converted from {mode} to {target}"


def _crop_to_aspect(image: Image.Image, aspect: float) -> tuple[Image.Image, str | None]:
    """The largest central part of the image with the model's width/height ratio."""
    width, height = image.size
    if abs(width / height - aspect) < 1e-3 or min(width, height) < 2:
        return image, None
    if width / height > aspect:
        new_width, new_height = max(1, round(height * aspect)), height
    else:
        new_width, new_height = width, max(1, round(width / aspect))
    left, top = (width - new_width) // 2, (height - new_height) // 2
    cropped = image.crop((left, top, left + new_width, top + new_height))
    return cropped, f"cropped to its central {new_width}x{new_height}"
