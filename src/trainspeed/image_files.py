"""A person's own pictures (PNG, JPEG, anything Pillow reads) as the arrays a network takes.

A photo is rarely the model's size or mode: it is turned upright (its EXIF orientation), its
mode converted (RGBA, palette, greyscale, 16-bit ... to RGB or greyscale, as the model has
channels), cropped to the model's aspect ratio around its centre, and resized; every change is
said, so that nobody mistakes a squashed 32x32 thumbnail for what the network saw.
"""

from __future__ import annotations

import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageFileError

_ORIENTATION = 0x0112  # the EXIF tag saying how a camera held the picture (1 upright, 2-8 turned or mirrored)
# Greyscale modes wider than 8 bits, and the value that is full white in each: PNG's 16-bit
# greyscale opens as I;16 or I; a float image is taken as 0-1 when it stays within it, else 0-255.
_WIDE_GREYSCALE = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I": 65535.0, "F": 255.0}
_WITH_ALPHA = {"RGBA", "RGBa", "LA", "La", "PA"}
# Larger than any photo: a file past it is not a picture to classify (and would be read whole first).
MAX_PICTURE_BYTES = 256 * 2**20


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
    _check_file(path)
    try:
        # Pillow's warnings (a large image, unreadable EXIF) would break the one-line output; what
        # matters of them is said among the changes.
        with warnings.catch_warnings(), Image.open(path) as opened:
            warnings.simplefilter("ignore")
            opened.load()  # decodes now: a truncated file fails here, not later
            stored_size, stored_mode = opened.size, opened.mode
            frames = getattr(opened, "n_frames", 1)
            turned = opened.getexif().get(_ORIENTATION, 1) in range(2, 9)
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
    if frames > 1:
        changes.append(f"its first frame of {frames}")
    if turned:
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


def _check_file(path: Path) -> None:
    """Only a regular file of a picture's size is opened: a named pipe would block the read forever, a
    device would never end."""
    try:
        found = path.stat()
    except FileNotFoundError:
        raise ImageFileError(f"no image file at {path}") from None
    except OSError as error:
        raise ImageFileError(f"cannot read {path} ({error.strerror or error})") from None
    if stat.S_ISDIR(found.st_mode):
        raise ImageFileError(f"{path} is a folder; give image files such as photo.jpg")
    if not stat.S_ISREG(found.st_mode):
        raise ImageFileError(f"{path} is not a regular file (a pipe, a device or a socket); give image files "
                             "such as photo.jpg")
    if found.st_size > MAX_PICTURE_BYTES:
        raise ImageFileError(f"{path} is {found.st_size / 2**20:,.0f} MB, more than any picture trainspeed reads "
                             f"({MAX_PICTURE_BYTES // 2**20} MB); give a smaller image")


def _convert(image: Image.Image, channels: int) -> tuple[Image.Image, str | None]:
    """The image in 8-bit RGB (3 channels) or greyscale (1), and the sentence for the change."""
    target = {1: "L", 3: "RGB"}.get(channels)
    if target is None:
        raise ImageFileError(f"a model for {channels}-channel images cannot take picture files (only 1 or 3)")
    mode = image.mode
    if mode == target:
        return image, None
    if mode in _WIDE_GREYSCALE:  # one fixed scale, never the picture's own range: dark stays dark
        values = np.asarray(image, dtype=np.float64)
        full_scale = 1.0 if mode == "F" and values.max() <= 1.0 else _WIDE_GREYSCALE[mode]
        image = Image.fromarray(np.round(values * (255.0 / full_scale)).clip(0, 255).astype(np.uint8), "L")
        note = f"converted from {mode} (greyscale, 0-{full_scale:g} scaled to 0-255)"
        return (image if target == "L" else image.convert(target)), f"{note} to {target}"
    if mode in _WITH_ALPHA or (mode == "P" and "transparency" in image.info):
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
